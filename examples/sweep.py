"""beta-VAE x latent-size sweep: train the grid, estimate test log-likelihoods, draw the trade-off.

    python examples/sweep.py                                   # beta {0.5,1,2,4} x latent {2,8,16,32}, 30 epochs
    python examples/sweep.py --epochs 10 --limit 10000 --out /tmp/sweep   # a quicker look
    python examples/sweep.py --betas 1 4 --latents 2 16 --iwae-k 5000 --iwae-subset 10000

The same as ``npvae sweep`` (see ``npvae sweep --help`` for every flag). Each grid point is a
run directory under --out (default runs/sweep); finished runs are skipped and interrupted
ones resumed, so the command can simply be started again. Writes sweep.json, sweep.csv and
sweep.png into --out and prints the table in Markdown.
"""
import sys

from npvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["sweep", *sys.argv[1:]]))
