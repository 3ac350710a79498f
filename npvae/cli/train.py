"""`npvae train`: train the paper's VAE (or CVAE) into a run directory."""
import os

from ..data import DATASETS, dataset_label
from ..models import KINDS, LIKELIHOODS, VARIANCES
from ..optim import SCHEDULES
from ..runs import TrainConfig
from ..training import start_training
from .common import add_data_flag

DEFAULTS = TrainConfig()
# flag dest -> TrainConfig field, for every flag that sets the configuration
CONFIG_FLAGS = ("model", "dataset", "epochs", "batch_size", "lr", "latent_dim", "warmup_epochs",
                "beta", "schedule", "likelihood", "gaussian_variance", "pixel_variance", "seed",
                "limit", "test_limit", "workers")


def _default(name):
    return f"default: {getattr(DEFAULTS, name)}"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a VAE or CVAE (defaults: the paper's VAE on MNIST)",
        description="Train a convolutional VAE or CVAE. With no flags this is the paper's run: "
                    "VAE, MNIST, 30 epochs, batch 128, Adam lr 1e-3, latent 2, KL warm-up 10 epochs. "
                    "With --resume, the run in --out continues with its saved settings; --epochs N "
                    "extends it to N epochs, --workers changes the thread count, and any other flag "
                    "that differs from the saved settings is an error.")
    # Every configuration flag defaults to None ("not given"), so that --resume can tell the
    # flags a user typed from the defaults; the defaults are TrainConfig's.
    p.add_argument("--model", choices=KINDS, help=f"vae, or cvae to condition encoder and decoder on "
                                                  f"the label ({_default('model')})")
    p.add_argument("--dataset", metavar="NAME_OR_PATH",
                   help=f"{' or '.join(DATASETS)}, or your own data: a folder of IDX files or an .npz "
                        f"with x_train, x_test (uint8, N x 28 x 28) and optionally y_train, y_test "
                        f"({_default('dataset')})")
    p.add_argument("--epochs", type=int, help=_default("epochs"))
    p.add_argument("--batch-size", type=int, help=_default("batch_size"))
    p.add_argument("--lr", type=float, help=f"Adam learning rate ({_default('lr')})")
    p.add_argument("--latent-dim", type=int, help=_default("latent_dim"))
    p.add_argument("--warmup-epochs", type=int,
                   help="KL annealing length T_warmup, eq. 31; epoch t trains with beta*min(1, t/T) "
                        f"(epoch 1 with beta/10 by default); 0 = constant beta ({_default('warmup_epochs')})")
    p.add_argument("--beta", type=float,
                   help=f"final KL weight; with --warmup-epochs 0 a constant beta-VAE weight ({_default('beta')})")
    p.add_argument("--schedule", choices=SCHEDULES,
                   help=f"anneal beta per epoch (the paper) or linearly per step ({_default('schedule')})")
    p.add_argument("--likelihood", choices=LIKELIHOODS,
                   help="decoder p(x|z): bernoulli (the paper) or gaussian with mean sigmoid(logits) "
                        f"({_default('likelihood')})")
    p.add_argument("--gaussian-variance", choices=VARIANCES,
                   help="gaussian decoder: a fixed sigma^2, or one learned log-variance per pixel "
                        f"({_default('gaussian_variance')})")
    p.add_argument("--pixel-variance", type=float, metavar="S2",
                   help="gaussian decoder: the fixed sigma^2, or the learned one's starting value; "
                        f"smaller weights reconstruction more against the KL ({_default('pixel_variance')})")
    p.add_argument("--seed", type=int, help=_default("seed"))
    p.add_argument("--limit", type=int, metavar="N", help="train on the first N training images only, for quick tries")
    p.add_argument("--test-limit", type=int, metavar="N",
                   help="evaluate on the first N test images only (default: all 10,000)")
    add_data_flag(p)
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run directory (default: runs/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last finished epoch (or extend it with --epochs)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="threads, each training on a share of every batch (default: one per core; "
                        "a run is bit-identical for a given N)")
    p.add_argument("--tensorboard", nargs="?", const=True, default=None, metavar="DIR",
                   help="log every epoch's losses, beta, speed, image grids and the settings as "
                        "TensorBoard event files in DIR (default: RUN_DIR/tensorboard/); needs "
                        "pip install -e \".[tracking]\"")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    dataset = dataset_label(args.dataset or DEFAULTS.dataset)
    out = args.out or os.path.join("runs", f"{args.model or DEFAULTS.model}-{dataset}")
    try:
        start_training({name: getattr(args, name) for name in CONFIG_FLAGS}, out, resume=args.resume,
                       data_root=args.data, progress=not args.no_progress, tensorboard=args.tensorboard)
    except KeyboardInterrupt:
        print(f"\nnpvae train: interrupted; the last finished epoch is saved. "
              f"Continue with: npvae train --out {out} --resume")
        return 130
    print(f"npvae train: done; model in {os.path.join(out, 'model.npz')}, "
          f"metrics in {os.path.join(out, 'metrics.csv')}")
    return 0
