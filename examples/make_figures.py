"""Train a model (or reuse a finished run) and draw every figure of the paper plus the HTML report.

    python examples/make_figures.py                      # the paper's VAE: runs/vae-mnist (30 epochs)
    python examples/make_figures.py --model cvae         # the paper's CVAE: runs/cvae-mnist
    python examples/make_figures.py --epochs 2 --limit 6000 --out /tmp/quick   # a quick look
    python examples/make_figures.py --out runs/vae-mnist # reuse a finished run: figures + report only

A run directory that already holds model.npz is not retrained; one holding only a
checkpoint (an interrupted run) is resumed first. The same steps from the shell:

    npvae train --model vae --out runs/vae-mnist
    npvae plot runs/vae-mnist --seed 0
    npvae report runs/vae-mnist

The data set is found through $NPVAE_DATA (a folder holding mnist/), ~/.cache/npvae, or downloaded.
"""
import argparse
import os
import sys

from npvae.viz import make_all_figures
from npvae.viz import write_report
from npvae.runs import TrainConfig
from npvae.training import train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("vae", "cvae"), default="vae")
    parser.add_argument("--epochs", type=int, default=30, help="default: the paper's 30")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only")
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--out", default=None, help="run directory (default: runs/<model>-mnist)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the figures (default: %(default)s)")
    args = parser.parse_args(argv)
    out = args.out or os.path.join("runs", f"{args.model}-mnist")

    if os.path.exists(os.path.join(out, "model.npz")):
        print(f"reusing the finished run in {out}")
    else:
        resume = os.path.exists(os.path.join(out, "checkpoint.npz"))
        config = TrainConfig(model=args.model, epochs=args.epochs, limit=args.limit,
                             latent_dim=args.latent_dim).validate()
        print(f"{'resuming' if resume else 'training'} {config.model.upper()} into {out}")
        train(config, out, resume=resume)

    paths = make_all_figures(out, seed=args.seed, log=print)
    report = write_report(out, seed=args.seed)
    print(f"{len(paths)} figures in {os.path.join(out, 'figures')}; open {report} in a browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
