"""`npvae sweep`: one training run per point of a grid, on a Dask cluster or in this process.

    npvae sweep --betas 0.5 1 2 4 --latents 2 8 16 32 --seeds 0 1 2 --epochs 10 --out runs/study
    npvae sweep --betas 1 4 --latents 2 16 --epochs 1 --limit 2000 --cluster none --out /tmp/sweep
    npvae sweep ... --cluster tcp://scheduler:8786        # an existing Dask scheduler
"""
import os

from ..experiments import SweepGrid, run_sweep
from ..runs import TrainConfig
from ..runtime.cluster import default_cluster
from .common import add_data_flag, positive_int


def _listed(values):
    return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def add_parser(subparsers):
    defaults, grid = TrainConfig(), SweepGrid()
    p = subparsers.add_parser(
        "sweep", help="train a grid of settings (beta, latent size, seeds, ...) on a cluster; "
                      "mean and sd over seeds, figures",
        description="Train one run per combination of the list flags into DIR/<run name>, each "
                    "as one task (one worker thread, one BLAS thread) on a Dask cluster or in this "
                    "process; optionally estimate each run's test log-likelihood by IWAE-K. DIR "
                    "holds manifest.json and results.csv (rewritten as each run finishes), then "
                    "summary.csv/.txt/.md (mean and sd over seeds per configuration), "
                    "rate_distortion.png and log_likelihood.png. The same command again skips "
                    "finished runs and resumes interrupted ones. With a scheduler address, DIR "
                    "(and --data, or $NPVAE_DATA) must be on a filesystem every worker shares.")
    grid_flags = p.add_argument_group("the grid (each a list: one run per combination)")
    grid_flags.add_argument("--models", nargs="+", choices=("vae", "cvae"), default=list(grid.models),
                            metavar="M", help=f"vae and/or cvae (default: {_listed(grid.models)})")
    grid_flags.add_argument("--datasets", "--dataset", nargs="+", default=list(grid.datasets), metavar="D",
                            help=f"mnist, fashion-mnist, or your own data (an IDX folder or an .npz, as for "
                                 f"`npvae train`) (default: {_listed(grid.datasets)})")
    grid_flags.add_argument("--likelihoods", nargs="+", choices=("bernoulli", "gaussian"),
                            default=list(grid.likelihoods), metavar="L",
                            help=f"decoder likelihoods (default: {_listed(grid.likelihoods)})")
    grid_flags.add_argument("--warmup-epochs", nargs="+", type=int, default=list(grid.warmup_epochs),
                            metavar="T",
                            help=f"KL warm-up lengths, to each run's beta (default: {_listed(grid.warmup_epochs)})")
    grid_flags.add_argument("--betas", nargs="+", type=float, default=list(grid.betas), metavar="B",
                            help=f"final KL weights (default: {_listed(grid.betas)})")
    grid_flags.add_argument("--latents", nargs="+", type=positive_int, default=list(grid.latents),
                            metavar="D", help=f"latent sizes (default: {_listed(grid.latents)})")
    grid_flags.add_argument("--seeds", nargs="+", type=int, default=list(grid.seeds), metavar="S",
                            help=f"seeds: the summary gives mean and sd over them (default: {_listed(grid.seeds)})")
    shared = p.add_argument_group("settings shared by every run")
    shared.add_argument("--epochs", type=positive_int, default=defaults.epochs, help="default: %(default)s")
    shared.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        help="default: %(default)s")
    shared.add_argument("--lr", type=float, default=defaults.lr, help="default: %(default)s")
    shared.add_argument("--schedule", choices=("epoch", "step"), default=defaults.schedule,
                        help="KL warm-up per epoch (the paper) or per step (default: %(default)s)")
    shared.add_argument("--gaussian-variance", choices=("fixed", "learned"), default=None,
                        help="with --likelihoods gaussian (default: fixed)")
    shared.add_argument("--limit", type=positive_int, default=None, metavar="N",
                        help="first N training images only")
    shared.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                        help="first N test images for the per-epoch test figures (default: all)")
    iwae = p.add_argument_group("test log-likelihood (optional)")
    iwae.add_argument("--iwae-k", type=positive_int, default=None, metavar="K",
                      help="estimate each run's test log p(x) by IWAE-K (default: no estimate)")
    iwae.add_argument("--iwae-subset", type=positive_int, default=1000, metavar="N",
                      help="test images for the IWAE estimate (default: %(default)s)")
    iwae.add_argument("--iwae-batch-size", type=positive_int, default=1000, metavar="B",
                      help="latent samples per decoder call in IWAE (default: %(default)s)")
    engine = p.add_argument_group("where the runs go")
    engine.add_argument("--cluster", default=default_cluster(), metavar="WHERE",
                        help="'local': a Dask LocalCluster on this machine, one single-threaded "
                             "worker per core; 'tcp://HOST:PORT': a running Dask scheduler (DIR and "
                             "the data on a shared filesystem); 'none': here, one run after another, "
                             "without Dask (default: %(default)s; local needs pip install -e "
                             "\".[cluster]\")")
    engine.add_argument("--local-workers", type=positive_int, default=None, metavar="N",
                        help="worker processes of --cluster local (default: one per core)")
    add_data_flag(engine)
    engine.add_argument("--out", default=os.path.join("runs", "sweep"), metavar="DIR",
                        help="sweep directory (default: %(default)s)")
    engine.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    settings = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                "schedule": args.schedule, "gaussian_variance": args.gaussian_variance,
                "limit": args.limit, "test_limit": args.test_limit}
    run_sweep(SweepGrid(tuple(args.models), tuple(args.datasets), tuple(args.likelihoods),
                        tuple(args.warmup_epochs), tuple(args.betas), tuple(args.latents),
                        tuple(args.seeds)),
              args.out, {k: v for k, v in settings.items() if v is not None}, iwae_k=args.iwae_k,
              iwae_subset=args.iwae_subset, iwae_batch_size=args.iwae_batch_size,
              cluster=args.cluster, local_workers=args.local_workers, data_root=args.data,
              progress=not args.no_progress)
    return 0
