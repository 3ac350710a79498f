"""The README's beta x latent-size study over seeds, through the library (what ``npvae sweep`` runs).

    python examples/sweep.py                       # 4 betas x 4 latents x 3 seeds, 10 epochs, IWAE-1000 on 500 test images
    python examples/sweep.py --quick --out /tmp/sweep   # 2 x 2 x 1, 2 epochs on 6,000 images, IWAE-100, in this process

Each grid point is a run directory under --out; the same command again skips finished runs and
resumes interrupted ones. On a running Dask scheduler pass --cluster tcp://HOST:PORT (the run
directories and the data on a filesystem every worker shares). ``npvae sweep --help`` has every flag.
"""
import argparse

from npvae.experiments.grid import SweepGrid
from npvae.experiments.sweep import run_sweep

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", default="runs/study")
parser.add_argument("--cluster", default="local", help="local, none, or tcp://HOST:PORT")
parser.add_argument("--quick", action="store_true", help="a small grid for a first look")
args = parser.parse_args()

if args.quick:
    grid = SweepGrid(betas=(1.0, 4.0), latents=(2, 16), seeds=(0,), warmup_epochs=(1,))
    settings, iwae_k, cluster = dict(epochs=2, limit=6000), 100, "none"
else:
    grid = SweepGrid(betas=(0.5, 1.0, 2.0, 4.0), latents=(2, 8, 16, 32), seeds=(0, 1, 2), warmup_epochs=(3,))
    settings, iwae_k, cluster = dict(epochs=10), 1000, args.cluster
run_sweep(grid.validate(), args.out, settings=settings, iwae_k=iwae_k, iwae_subset=500, cluster=cluster)
