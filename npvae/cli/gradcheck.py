"""`npvae gradcheck`: compare every hand-written gradient with finite differences.

    npvae gradcheck                          all standard checks (npvae.gradcheck.suite)
    npvae gradcheck conv2d kl                the standard checks of some layers
    npvae gradcheck conv2d --in 3 --out 4 --kernel 3 --stride 2 --padding 1 --batch 2 --size 9
                                             one configuration of one layer
    npvae gradcheck --model cvae             a whole model end to end (fixed eps)

Exit status 1 when any tensor's error exceeds its tolerance.
"""
import time

from ..gradcheck import suite

# Which configuration flags each single-configuration check understands, and its defaults.
SINGLE_FLAGS = {
    "conv2d": dict(in_channels=3, out_channels=4, kernel=3, stride=1, padding=0, batch=2, size=8,
                   layout="NCHW", bias=True),
    "convtranspose2d": dict(in_channels=3, out_channels=4, kernel=3, stride=1, padding=0,
                            output_padding=0, batch=2, size=5, layout="NCHW", bias=True),
    "linear": dict(in_features=5, out_features=4, batch=2, bias=True),
    "relu": dict(batch=2, in_channels=3, size=5, inplace=False, layout="NCHW"),
    "sigmoid": dict(batch=2, in_channels=1, size=28, layout="NCHW"),
    "flatten": dict(batch=2, in_channels=128, size=4, layout="NCHW"),
    "unflatten": dict(batch=2, in_channels=128, size=4),
    "bce": dict(batch=2, in_channels=1, size=28, binary=False),
    "kl": dict(batch=2, latent_dim=2, beta=1.0),
    "reparameterize": dict(batch=2, latent_dim=2),
    "vae": dict(batch=2, latent_dim=2, beta=0.5),
    "cvae": dict(batch=2, latent_dim=2, beta=0.5),
}

# command-line flag (argparse dest) -> the keyword it sets
FLAGS = {"in_": ("in_channels", "in_features"), "out": ("out_channels", "out_features"),
         "kernel": ("kernel",), "stride": ("stride",), "padding": ("padding",),
         "output_padding": ("output_padding",), "batch": ("batch",), "size": ("size",),
         "latent_dim": ("latent_dim",), "beta": ("beta",), "layout": ("layout",),
         "inplace": ("inplace",), "no_bias": ("bias",), "binary": ("binary",)}


def _size(text):
    """'9' -> 9, '9x7' -> (9, 7)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--size: expected N or HxW, got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return tuple(values)
    raise ValueError(f"--size: expected N or HxW, got {text!r}")


def _pair(text):
    """'2' -> 2, '2x1' or '2,1' -> (2, 1): kernel, stride, padding may differ per axis."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected N or HxW, got {text!r}") from None
    if len(values) not in (1, 2):
        raise ValueError(f"expected N or HxW, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def add_parser(subparsers):
    names = list(suite.CHECKS)
    p = subparsers.add_parser(
        "gradcheck", help="check every hand-written gradient against finite differences",
        description="Compare the analytic gradients of the layers, losses, reparameterisation and "
                    "whole models with central finite differences in float64. With no CHECK, runs "
                    "them all on the paper's shapes and on random configurations. With a CHECK and "
                    "configuration flags, checks that one configuration. Error = max |analytic - "
                    "numeric| / max |gradient| over the sampled entries of a tensor. Exit status 1 "
                    "on any failure.",
        epilog="standard checks: " + ", ".join(names) + ". single configurations: "
               + ", ".join(SINGLE_FLAGS) + ". Example: npvae gradcheck conv2d --in 3 --out 4 "
               "--kernel 3 --stride 2 --padding 1 --batch 2 --size 9")
    p.add_argument("checks", nargs="*", metavar="CHECK",
                   help="which checks to run (default: all); see the list below or --list")
    p.add_argument("--model", choices=("vae", "cvae"), default=None,
                   help="check a whole model end to end with a fixed eps (same as CHECK vae|cvae)")
    g = p.add_argument_group("one configuration (with a single CHECK)")
    g.add_argument("--in", dest="in_", type=int, default=None, metavar="N",
                   help="input channels (conv, relu, sigmoid, bce, flatten) or features (linear)")
    g.add_argument("--out", type=int, default=None, metavar="N", help="output channels or features")
    g.add_argument("--kernel", type=_pair, default=None, metavar="K", help="kernel size, K or KHxKW")
    g.add_argument("--stride", type=_pair, default=None, metavar="S", help="stride, S or SHxSW")
    g.add_argument("--padding", type=_pair, default=None, metavar="P", help="padding, P or PHxPW")
    g.add_argument("--output-padding", type=_pair, default=None, metavar="P",
                   help="convtranspose2d only: extra rows/columns at the end of the output")
    g.add_argument("--batch", type=int, default=None, metavar="N", help="batch size")
    g.add_argument("--size", type=_size, default=None, metavar="H",
                   help="input height and width, H or HxW")
    g.add_argument("--latent-dim", type=int, default=None, metavar="D",
                   help="latent dimension (kl, reparameterize, models)")
    g.add_argument("--beta", type=float, default=None, help="KL weight (kl, models)")
    g.add_argument("--layout", choices=("NCHW", "NHWC"), default=None,
                   help="memory of 4-D inputs: plain NCHW, or channels-last seen as NCHW (as inside "
                        "the models)")
    g.add_argument("--inplace", action="store_true", default=None, help="relu: ReLU(inplace=True)")
    g.add_argument("--no-bias", action="store_true", default=None, help="conv, linear: no bias")
    g.add_argument("--binary", action="store_true", default=None, help="bce: 0/1 targets")
    o = p.add_argument_group("how")
    o.add_argument("--max-entries", type=int, default=suite.DEFAULT_MAX_ENTRIES, metavar="N",
                   help="entries checked per tensor, a random subset (0 = all; default: %(default)s)")
    o.add_argument("--seed", type=int, default=0, help="seed for data, weights and subsets "
                                                       "(default: %(default)s)")
    o.add_argument("--tolerance", type=float, default=None,
                   help=f"largest accepted error (default: {suite.DEFAULT_TOLERANCE:g})")
    o.add_argument("--random", type=int, default=suite.DEFAULT_RANDOM, metavar="N",
                   help="random configurations per layer type in the standard checks "
                        "(default: %(default)s)")
    o.add_argument("--list", action="store_true", help="list the standard checks and exit")
    p.set_defaults(run=run)


def single_kwargs(name, args):
    """The keyword arguments of one configuration, or None when no configuration flag is set."""
    given = {dest: getattr(args, dest) for dest in FLAGS if getattr(args, dest) is not None}
    if not given:
        return None
    defaults = SINGLE_FLAGS.get(name)
    if defaults is None:
        raise ValueError(f"'{name}' has no single configuration; configuration flags work with "
                         f"{', '.join(SINGLE_FLAGS)}")
    kwargs = dict(defaults)
    for dest, value in given.items():
        keys = [k for k in FLAGS[dest] if k in defaults]
        if not keys:
            flag = "--" + dest.rstrip("_").replace("_", "-")
            raise ValueError(f"{flag} does not apply to {name}")
        kwargs[keys[0]] = (not value) if dest == "no_bias" else value
    return kwargs


def _call_single(name, kwargs, rng, max_entries, tolerance):
    kw = dict(kwargs)
    extra = {"max_entries": max_entries}
    if tolerance is not None:
        extra["tolerance"] = tolerance
    if "layout" in kw:
        kw["layout"] = "NHWC mem" if kw["layout"] == "NHWC" else "NCHW"
    if name in ("vae", "cvae"):
        return suite.model(rng, name, **kw, **extra)
    if name in ("relu", "sigmoid", "flatten", "bce"):
        size = kw.pop("size")
        h, w = (size, size) if isinstance(size, int) else size
        kw["shape"] = (kw.pop("batch"), kw.pop("in_channels"), h, w)
    elif name == "unflatten":
        size = kw.pop("size")
        h, w = (size, size) if isinstance(size, int) else size
        kw["shape"] = (kw.pop("in_channels"), h, w)
    elif name == "linear":
        kw = dict(in_features=kw["in_features"], out_features=kw["out_features"],
                  batch=kw["batch"], bias=kw["bias"])
    return suite.SINGLE[name](rng, **kw, **extra)


def run(args):
    if args.list:
        for name, text in suite.DESCRIPTIONS.items():
            print(f"{name:<16} {text}")
        return 0
    names = list(args.checks) + ([args.model] if args.model else [])
    max_entries = None if args.max_entries == 0 else args.max_entries
    if max_entries is not None and max_entries < 0:
        raise ValueError("--max-entries must be >= 0")
    if args.tolerance is not None and not args.tolerance > 0:
        raise ValueError("--tolerance must be > 0")
    if args.random < 0:
        raise ValueError("--random must be >= 0")

    kwargs = None
    if any(getattr(args, dest) is not None for dest in FLAGS):
        if len(names) != 1:
            raise ValueError("configuration flags need exactly one CHECK, e.g. "
                             "npvae gradcheck conv2d --in 3 --out 4 --kernel 3")
        kwargs = single_kwargs(names[0], args)
    elif len(names) == 1 and names[0] not in suite.CHECKS and names[0] in SINGLE_FLAGS:
        kwargs = dict(SINGLE_FLAGS[names[0]])          # flatten, unflatten: their defaults
    else:
        unknown = [n for n in names if n not in suite.CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s): {', '.join(unknown)}. Standard checks: "
                             f"{', '.join(suite.CHECKS)}; single configurations: {', '.join(SINGLE_FLAGS)}")

    entries = "all entries" if max_entries is None else f"up to {max_entries} entries"
    print(f"npvae gradcheck: float64 central differences, {entries} per tensor, seed {args.seed}. "
          f"error = max|analytic - numeric| / max|gradient|")
    print(suite.HEADER, flush=True)
    started = time.perf_counter()

    def show(rows):
        for label, check in rows:
            print(suite.format_row(label, check), flush=True)

    if kwargs is not None:
        name = names[0]
        with suite.single_threaded():
            rows = _call_single(name, kwargs, suite.check_rng(args.seed, name), max_entries, args.tolerance)
        show(rows)
    else:
        rows = suite.run(names or None, seed=args.seed, max_entries=max_entries,
                         tolerance=args.tolerance, n_random=args.random, on_rows=show)
    print()
    print(suite.summary(rows, time.perf_counter() - started))
    return 1 if suite.failures(rows) else 0
