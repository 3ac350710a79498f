"""A beta x latent-size study over seeds, on a Dask cluster: the same as ``npvae sweep``.

    # the study of the README: 4 betas x 4 latent sizes x 3 seeds, 10 epochs (3 of KL warm-up),
    # IWAE-1000 on 1,000 test images, on this machine's cores (about 2.6 hours on 2 idle cores):
    python examples/sweep.py --betas 0.5 1 2 4 --latents 2 8 16 32 --seeds 0 1 2 --epochs 10 \\
        --warmup-epochs 3 --iwae-k 1000 --iwae-subset 1000 --out runs/study
    # a quick look, in this process:
    python examples/sweep.py --betas 1 4 --latents 2 16 --epochs 2 --limit 6000 --cluster none --out /tmp/sweep
    # on a running Dask scheduler (runs/study and the data on a filesystem every worker shares):
    python examples/sweep.py ... --cluster tcp://scheduler-host:8786

Each grid point is a run directory under --out; the same command again skips finished runs and
resumes interrupted ones. --out gets manifest.json and results.csv (rewritten as each run
finishes), summary.csv/.txt/.md (mean and sd over seeds), rate_distortion.png and
log_likelihood.png. ``npvae sweep --help`` lists every flag.
"""
import sys

from npvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
