"""`npvae gradcheck`: compare every hand-written gradient with finite differences.

    npvae gradcheck                          all standard checks (npvae.gradcheck.registry)
    npvae gradcheck conv2d kl                the standard checks of some layers
    npvae gradcheck conv2d --in 3 --out 4 --kernel 3 --stride 2 --padding 1 --batch 2 --size 9
                                             one configuration of one layer
    npvae gradcheck --model cvae             a whole model end to end (fixed eps)

Exit status 1 when any tensor's error exceeds its tolerance.
"""
import time

from .. import gradcheck
from ..gradcheck import CHECKS

# How each option of npvae.gradcheck.registry is spelled on the command line, where that
# is not simply --the-keyword.
FLAG_NAMES = {"in_channels": "--in", "out_channels": "--out", "bias": "--no-bias"}


def _flag(option):
    return FLAG_NAMES.get(option, "--" + option.replace("_", "-"))


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
    names = list(CHECKS)
    p = subparsers.add_parser(
        "gradcheck", help="check every hand-written gradient against finite differences",
        description="Compare the analytic gradients of the layers, losses, reparameterisation and "
                    "whole models with central finite differences in float64. With no CHECK, runs "
                    "them all on the paper's shapes and on random configurations. With one CHECK and "
                    "configuration flags, checks that one configuration. Error = max |analytic - "
                    "numeric| / max |gradient| over the sampled entries of a tensor. Exit status 1 "
                    "on any failure.",
        epilog="checks: " + ", ".join(names) + " (--list shows what each covers and the flags it "
               "takes). Example: npvae gradcheck conv2d --in 3 --out 4 --kernel 3 --stride 2 "
               "--padding 1 --batch 2 --size 9")
    p.add_argument("checks", nargs="*", metavar="CHECK",
                   help="which checks to run (default: all); see the list below or --list")
    p.add_argument("--model", choices=("vae", "cvae"), default=None,
                   help="check a whole model end to end with a fixed eps (same as CHECK vae|cvae)")
    g = p.add_argument_group("one configuration (with a single CHECK)")
    g.add_argument("--in", dest="in_channels", type=int, default=None, metavar="N",
                   help="input channels (conv, relu, sigmoid, bce, reshape, encoder) or features "
                        "(linear, decoder)")
    g.add_argument("--out", dest="out_channels", type=int, default=None, metavar="N",
                   help="output channels or features")
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
    g.add_argument("--no-bias", dest="bias", action="store_false", default=None,
                   help="conv, linear: no bias")
    g.add_argument("--binary", action="store_true", default=None, help="bce: 0/1 targets")
    g.add_argument("--learned", action="store_true", default=None,
                   help="gaussian: a learned per-pixel variance")
    o = p.add_argument_group("how")
    o.add_argument("--max-entries", type=int, default=gradcheck.DEFAULT_MAX_ENTRIES, metavar="N",
                   help="entries checked per tensor, a random subset (0 = all; default: %(default)s)")
    o.add_argument("--seed", type=int, default=0, help="seed for data, weights and subsets "
                                                       "(default: %(default)s)")
    o.add_argument("--tolerance", type=float, default=None,
                   help=f"largest accepted error (default: {gradcheck.DEFAULT_TOLERANCE:g})")
    o.add_argument("--random", type=int, default=gradcheck.DEFAULT_RANDOM, metavar="N",
                   help="random configurations per layer type in the standard checks "
                        "(default: %(default)s)")
    o.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(run=run)


# Every option some check takes; each is a flag above (argparse dest = the option's name).
OPTIONS = tuple(dict.fromkeys(option for check in CHECKS.values() for option in check.options))


def _options(args, name):
    """The configuration flags given, as the registry's options of check ``name``."""
    given = {option: getattr(args, option) for option in OPTIONS if getattr(args, option) is not None}
    for option in given:
        if option not in CHECKS[name].options:
            raise ValueError(f"{_flag(option)} does not apply to {name} (it takes "
                             f"{' '.join(_flag(o) for o in CHECKS[name].options)})")
    return given


def run(args):
    if args.list:
        for name, check in CHECKS.items():
            print(f"{name:<18} {check.description}\n{'':<18} one configuration: "
                  f"{' '.join(_flag(o) for o in check.options)}")
        return 0
    names = list(args.checks) + ([args.model] if args.model else [])
    max_entries = None if args.max_entries == 0 else args.max_entries
    if max_entries is not None and max_entries < 0:
        raise ValueError("--max-entries must be >= 0")
    if args.tolerance is not None and not args.tolerance > 0:
        raise ValueError("--tolerance must be > 0")
    if args.random < 0:
        raise ValueError("--random must be >= 0")
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}. Checks: {', '.join(CHECKS)}")
    single = any(getattr(args, option) is not None for option in OPTIONS)
    if single and len(names) != 1:
        raise ValueError("configuration flags need exactly one CHECK, e.g. "
                         "npvae gradcheck conv2d --in 3 --out 4 --kernel 3")
    options = _options(args, names[0]) if single else None

    entries = "all entries" if max_entries is None else f"up to {max_entries} entries"
    print(f"npvae gradcheck: float64 central differences, {entries} per tensor, seed {args.seed}. "
          f"error = max|analytic - numeric| / max|gradient|")
    print(gradcheck.header(), flush=True)
    started = time.perf_counter()

    def show(rows):
        for label, check in rows:
            print(gradcheck.format_row(label, check), flush=True)

    if single:
        rows = gradcheck.run_single(names[0], options, args.seed, max_entries, args.tolerance)
        show(rows)
    else:
        rows = gradcheck.run(names or None, seed=args.seed, max_entries=max_entries,
                             tolerance=args.tolerance, n_random=args.random, on_rows=show)
    print()
    print(gradcheck.summary(rows, time.perf_counter() - started))
    return 1 if gradcheck.failures(rows) else 0
