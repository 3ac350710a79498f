"""`npvae sweep`: train a grid of KL weights (beta-VAE) x latent sizes and draw the trade-off.

    npvae sweep --out runs/sweep                       # beta {0.5,1,2,4} x latent {2,8,16,32}
    npvae sweep --betas 1 4 --latents 2 16 --epochs 10 --limit 10000 --out /tmp/sweep
"""
import os

from ..runs import TrainConfig
from ..experiments.sweep import DEFAULT_BETAS, DEFAULT_LATENTS, sweep
from .common import add_data_flag


def add_parser(subparsers):
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "sweep", help="train a grid of beta x latent size; table and trade-off figure",
        description="Train one VAE (or CVAE) per (beta, latent size) pair into DIR/beta<B>-latent<D> "
                    "(finished runs are skipped, interrupted ones resumed), estimate each one's test "
                    "log-likelihood by IWAE-K, and write DIR/sweep.json, DIR/sweep.csv and "
                    "DIR/sweep.png (reconstruction vs KL; log-likelihood vs latent size).")
    p.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS), metavar="B",
                   help="final KL weights (default: %(default)s)")
    p.add_argument("--latents", type=int, nargs="+", default=list(DEFAULT_LATENTS), metavar="D",
                   help="latent sizes (default: %(default)s)")
    p.add_argument("--model", choices=("vae", "cvae"), default="vae", help="default: %(default)s")
    p.add_argument("--dataset", default=defaults.dataset, metavar="NAME_OR_PATH",
                   help="mnist, fashion-mnist, or your own data (an IDX folder or an .npz, as for "
                        "`npvae train`; default: %(default)s)")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    p.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs,
                   help="KL warm-up to each run's beta (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=defaults.lr, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N training images only")
    p.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="first N test images for the per-epoch test figures (default: all)")
    p.add_argument("--iwae-k", type=int, default=1000, metavar="K",
                   help="importance samples per image for the test log-likelihood (default: %(default)s)")
    p.add_argument("--iwae-subset", type=int, default=1000, metavar="N",
                   help="test images for the IWAE estimate (default: %(default)s)")
    p.add_argument("--iwae-batch-size", type=int, default=1000, metavar="B",
                   help="latent samples per decoder call in IWAE (default: %(default)s)")
    add_data_flag(p)
    p.add_argument("--out", default=os.path.join("runs", "sweep"), metavar="DIR",
                   help="sweep directory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run(args):
    sweep(args.betas, args.latents, args.out, iwae_k=args.iwae_k, iwae_subset=args.iwae_subset,
          iwae_batch_size=args.iwae_batch_size, data_root=args.data, progress=not args.no_progress,
          model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
          warmup_epochs=args.warmup_epochs, seed=args.seed, limit=args.limit,
          test_limit=args.test_limit)
    return 0
