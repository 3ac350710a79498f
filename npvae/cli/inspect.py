"""`npvae inspect`: a model layer by layer, then one batch through it, forward and backward."""
import json
import math
import os

import numpy as np

from ..diagnostics import inspection
from ..data import DATASETS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "inspect", help="show a model layer by layer and what one batch does inside it",
        description="Print the model's layers (input and output shapes, parameters, forward MFLOP "
                    "per image), then run one batch forward and backward and print, per layer, the "
                    "activation mean, std and fraction of zeros, the gradient norms of its input "
                    "and parameters; the loss split into reconstruction and KL, the KL per latent "
                    "dimension and the active units (Burda et al. 2016). Uses MNIST's test set when "
                    "its files are on disk, else synthetic strokes (and says so).")
    p.add_argument("run_dir", nargs="?", default=None, metavar="RUN_DIR",
                   help="a run directory or model/checkpoint .npz (default: a freshly initialised model)")
    p.add_argument("--model", choices=("vae", "cvae"), default=None,
                   help="model kind: which to build when no RUN_DIR is given (default: vae), or the "
                        "kind RUN_DIR must hold")
    p.add_argument("--latent-dim", type=int, default=2, help="for a fresh model (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N", help="default: %(default)s")
    p.add_argument("--beta", type=float, default=1.0, help="KL weight of the loss (default: %(default)s)")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: the run's data set, else mnist")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder holding the data set (default: $NPVAE_DATA, then ~/.cache/npvae)")
    p.add_argument("--download", action="store_true", help="download the data set if it is missing")
    p.add_argument("--active-images", type=int, default=2000, metavar="N",
                   help="test images over which the active units are counted, when the data set is "
                        "available (default: %(default)s; else over the batch)")
    p.add_argument("--seed", type=int, default=0, help="batch choice, eps, fresh weights (default: %(default)s)")
    p.add_argument("--save", default=None, metavar="FILE.json", help="also write the report as JSON")
    p.set_defaults(run=run)


def _run_dataset(run_dir):
    """The data set a run trained on, from its config.json, if there is one."""
    if run_dir is None:
        return None
    path = os.path.join(run_dir if os.path.isdir(run_dir) else os.path.dirname(run_dir), "config.json")
    try:
        with open(path) as f:
            return json.load(f).get("dataset")
    except (OSError, ValueError):
        return None


def _json_safe(value):
    """NaN and infinities become null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def build(args):
    """-> (model, description of where it came from)."""
    from ..models import build_model                   # noqa: PLC0415
    if args.run_dir is not None:
        from ..runs import open_model                 # noqa: PLC0415
        return open_model(args.run_dir, expect_kind=args.model), f"loaded from {args.run_dir}"
    kind = args.model or "vae"
    if args.latent_dim < 1:
        raise ValueError("--latent-dim must be >= 1")
    config = {"model": kind, "latent_dim": args.latent_dim}
    if kind == "cvae":
        config["num_classes"] = 10
    return (build_model(config, rng=np.random.default_rng(args.seed)),
            f"freshly initialised (seed {args.seed}, untrained)")


def run(args):
    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    if args.active_images < 0:
        raise ValueError("--active-images must be >= 0")
    model, source = build(args)
    dataset = args.dataset or _run_dataset(args.run_dir) or "mnist"
    rng = np.random.default_rng(args.seed)
    images, labels, au_images, au_labels, data = inspection.load_batch(
        dataset, args.batch_size, rng, args.data, args.download, args.active_images)
    if data.startswith("synthetic"):
        print(f"note: {data}; the statistics below describe synthetic input, not {dataset}.")
    eps = rng.standard_normal((len(images), model.latent_dim)).astype(model.dtype)
    report = inspection.inspect_model(model, images, labels, eps, beta=args.beta,
                                      au_images=au_images, au_labels=au_labels,
                                      source=source, data=data)
    print(inspection.format_report(report))
    if args.save:
        directory = os.path.dirname(os.path.abspath(args.save))
        os.makedirs(directory, exist_ok=True)
        with open(args.save, "w") as f:
            json.dump(_json_safe(report), f, indent=2, allow_nan=False)
            f.write("\n")
        print(f"\nsaved {args.save}")
    return 0
