"""Reproduce the paper's CVAE run (section 3.2, Table 3): 30 epochs on MNIST, latent 2, KL warm-up 10.

    python examples/train_cvae.py [--out runs/cvae-mnist] [--epochs 30]

Same as ``npvae train``; an interrupted run continues where it stopped when started again.
"""
import argparse

from npvae.runs import RunDirectory, TrainConfig, paper_table4_text
from npvae.training import train

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", default="runs/cvae-mnist")
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

resume = RunDirectory(args.out).has_checkpoint()
rows = train(TrainConfig(model="cvae", epochs=args.epochs, seed=args.seed), args.out, resume=resume)
last = rows[-1]
print(f"final epoch: train recon {last['train_recon']:.2f}  KL {last['train_kl']:.2f}  "
      f"total {last['train_total']:.2f}   (paper, Table 4: {paper_table4_text('cvae')})")
