"""`npvae evaluate RUN_DIR`: test-set reconstruction, KL and ELBO of a saved model."""
import json
import os

import numpy as np

from ..checkpoint import atomic_write_text, load_model
from ..data import load_dataset
from ..evaluate import evaluate_elbo


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="test-set reconstruction, KL and ELBO of a trained model",
        description="Evaluate a run's model on the test set: mean BCE (summed over pixels), KL "
                    "(summed over latent dimensions) and -ELBO = recon + KL, in nats per image, "
                    "with one z ~ q(z|x) per image. Writes RUN_DIR/evaluation.json.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a model .npz file)")
    p.add_argument("--dataset", default=None, help="data set (default: the run's own)")
    p.add_argument("--data", default=None, metavar="DIR", help="folder holding the data set")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="first N test images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the eps draws (default: %(default)s)")
    p.set_defaults(run=run)


def run_config(run_dir):
    path = os.path.join(run_dir, "config.json")
    if os.path.isdir(run_dir) and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def run(args):
    model = load_model(args.run_dir)
    dataset = args.dataset or run_config(args.run_dir).get("dataset", "mnist")
    images, labels = load_dataset(dataset, "test", root=args.data)
    images, labels = images[:args.subset], labels[:args.subset].astype(np.int64)
    result = evaluate_elbo(model, images, labels, np.random.default_rng(args.seed))
    result = {"dataset": dataset, "images": int(len(images)), "elbo": -result["total"], **result}
    print(f"{model.kind.upper()} on {dataset} test ({len(images)} images), nats per image:")
    print(f"  reconstruction {result['recon']:.3f}   KL {result['kl']:.3f}   "
          f"-ELBO {result['total']:.3f}   recon/KL {result['ratio']:.1f}")
    if os.path.isdir(args.run_dir):
        path = os.path.join(args.run_dir, "evaluation.json")
        atomic_write_text(path, json.dumps(result, indent=2) + "\n")
        print(f"  written to {path}")
    return 0
