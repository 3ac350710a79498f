"""`npvae evaluate RUN_DIR`: test-set ELBO and, on request, log-likelihood estimates.

    npvae evaluate RUN_DIR                        reconstruction, KL, ELBO (one z per image)
    npvae evaluate RUN_DIR --iwae-k 5000          + log p(x) by importance weighting (IWAE-K)
    npvae evaluate RUN_DIR --grid [--grid-images 5]   + log p(x) by a 2-D grid, beside IWAE
    npvae evaluate RUN_DIR --iwae-k 5000 --cluster tcp://HOST:8786   the IWAE sharded over a cluster
    npvae evaluate RUN_DIR --metrics              + latent quality: active units, linear probe,
                                                    5-NN, MIG, total correlation
"""
from ..evaluation import evaluate_run
from .common import add_data_flag


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="test-set ELBO, and log p(x) by importance weighting (IWAE) or a grid",
        description="Evaluate a run's model on the test set: mean reconstruction (-log p(x|z), "
                    "summed over pixels), KL (summed over latent dimensions) and -ELBO = recon + KL "
                    "with one z ~ q(z|x) per image; with --iwae-k K also the importance-weighted "
                    "estimate log p(x) ~ log mean_k p(x|z_k) p(z_k) / q(z_k|x) (Burda et al. 2016); "
                    "with --grid (2-D latent only) log p(x) by direct numerical integration. All in "
                    "nats per image, with standard errors over the images. A CVAE is conditioned on "
                    "the true labels. Results are merged into RUN_DIR/evaluation.json (IWAE under "
                    "iwae_<K>, or iwae_<K>_first<N> with --subset; the grid under grid; the metrics under "
                    "metrics).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a model .npz file)")
    p.add_argument("--dataset", default=None, help="data set (default: the run's own)")
    add_data_flag(p)
    p.add_argument("--subset", type=int, default=None, metavar="N", help="first N test images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the eps draws (default: %(default)s)")
    p.add_argument("--iwae-k", type=int, default=None, metavar="K",
                   help="importance samples per image for the IWAE estimate of log p(x) (e.g. 5000)")
    p.add_argument("--batch-size", type=int, default=1000, metavar="B",
                   help="latent samples per decoder call in IWAE and grid (default: %(default)s)")
    p.add_argument("--grid", action="store_true",
                   help="2-D latent only: log p(x) by integrating p(x|z) p(z) over a grid, for "
                        "--grid-images images, printed beside IWAE-K (K = --iwae-k, else 5000)")
    p.add_argument("--grid-images", type=int, default=5, metavar="N",
                   help="images for --grid (the first N of the test set; default: %(default)s)")
    p.add_argument("--grid-size", type=int, default=400, metavar="G",
                   help="G x G points over mu +- 8 sigma of q(z|x) (default: %(default)s)")
    p.add_argument("--metrics", action="store_true",
                   help="latent-quality metrics on the posterior means of the whole training set and "
                        "the test set: active units (Var_x mu_u > 0.01), linear-probe and 5-NN accuracy "
                        "of the label, mutual information gap (20 bins), total correlation of the "
                        "aggregate posterior under a Gaussian fit")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads sharing each batch (default: one per core)")
    p.add_argument("--cluster", default="none", metavar="WHERE",
                   help="shard the IWAE estimate over a Dask cluster: 'local' (one worker per core "
                        "here), or 'tcp://HOST:PORT' (a running scheduler; the workers need no "
                        "files); the result is exactly that of 'none', this process "
                        "(default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args):
    evaluate_run(args.run_dir, dataset=args.dataset, data_root=args.data, subset=args.subset,
                 seed=args.seed, iwae_k=args.iwae_k, batch_size=args.batch_size, grid=args.grid,
                 grid_images=args.grid_images, grid_size=args.grid_size, workers=args.workers,
                 metrics=args.metrics, progress=not args.no_progress, cluster=args.cluster)
    return 0
