"""`npvae train`: train the paper's VAE (or CVAE) into a run directory."""
import os

from ..data import DATASETS
from ..models import LIKELIHOODS, VARIANCES
from ..schedules import SCHEDULES
from ..train import TrainConfig, train

DEFAULTS = TrainConfig()


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="train a VAE or CVAE (defaults: the paper's VAE on MNIST)",
        description="Train a convolutional VAE or CVAE. With no flags this is the paper's run: "
                    "VAE, MNIST, 30 epochs, batch 128, Adam lr 1e-3, latent 2, KL warm-up 10 epochs.")
    p.add_argument("--model", choices=("vae", "cvae"), default=DEFAULTS.model,
                   help="vae, or cvae to condition encoder and decoder on the label (default: %(default)s)")
    p.add_argument("--dataset", choices=DATASETS, default=DEFAULTS.dataset, help="default: %(default)s")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="default: %(default)s")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--latent-dim", type=int, default=DEFAULTS.latent_dim, help="default: %(default)s")
    p.add_argument("--warmup-epochs", type=int, default=DEFAULTS.warmup_epochs,
                   help="KL annealing length T_warmup, eq. 31; epoch t trains with beta*min(1, t/T) "
                        "(epoch 1 with beta/10 by default); 0 = constant beta (default: %(default)s)")
    p.add_argument("--beta", type=float, default=DEFAULTS.beta,
                   help="final KL weight; with --warmup-epochs 0 a constant beta-VAE weight (default: %(default)s)")
    p.add_argument("--schedule", choices=SCHEDULES, default=DEFAULTS.schedule,
                   help="anneal beta per epoch (the paper) or linearly per step (default: %(default)s)")
    p.add_argument("--likelihood", choices=LIKELIHOODS, default=DEFAULTS.likelihood,
                   help="decoder p(x|z): bernoulli (the paper) or gaussian with mean sigmoid(logits) "
                        "(default: %(default)s)")
    p.add_argument("--gaussian-variance", choices=VARIANCES, default=DEFAULTS.gaussian_variance,
                   help="gaussian decoder: a fixed sigma^2, or one learned log-variance per pixel "
                        "(default: %(default)s)")
    p.add_argument("--pixel-variance", type=float, default=DEFAULTS.pixel_variance, metavar="S2",
                   help="gaussian decoder: the fixed sigma^2, or the learned one's starting value; "
                        "smaller weights reconstruction more against the KL (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="default: %(default)s")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="train on the first N training images only, for quick tries")
    p.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="evaluate on the first N test images only (default: all 10,000)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder holding the data set (default: $NPVAE_DATA, then ~/.cache/npvae, then download)")
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run directory (default: runs/<model>-<dataset>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out from its last finished epoch")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads, each training on a share of every batch (default: one per core; "
                        "a run is bit-identical for a given N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    config = TrainConfig(model=args.model, dataset=args.dataset, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, latent_dim=args.latent_dim,
                         warmup_epochs=args.warmup_epochs, beta=args.beta, schedule=args.schedule,
                         seed=args.seed, limit=args.limit, test_limit=args.test_limit,
                         likelihood=args.likelihood, gaussian_variance=args.gaussian_variance,
                         pixel_variance=args.pixel_variance, workers=args.workers).validate()
    out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}")
    print(f"npvae train: {config.model.upper()} on {config.dataset} -> {out}")
    try:
        train(config, out, resume=args.resume, data_root=args.data, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\nnpvae train: interrupted; the last finished epoch is saved. "
              f"Continue with: npvae train --out {out} --resume")
        return 130
    print(f"npvae train: done; model in {os.path.join(out, 'model.npz')}, "
          f"metrics in {os.path.join(out, 'metrics.csv')}")
    return 0
