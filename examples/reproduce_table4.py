"""Reproduce the paper's Table 4: train (or reuse) the VAE and CVAE runs, then record the
final epoch's train and test figures in benchmarks/results/reproduce_mnist.json.

    python examples/reproduce_table4.py [--runs runs] [--seed 0]

Runs that already finished are reused; interrupted ones are resumed.
"""
import argparse
import json
import os
import statistics

from npvae.files import atomic_write_text
from npvae.runs import RunDirectory, TrainConfig
from npvae.training import train

PAPER = {"vae": {"recon": 138.00, "kl": 6.59, "total": 144.59},
         "cvae": {"recon": 124.36, "kl": 4.80, "total": 129.16}}

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--runs", default="runs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "benchmarks",
                                                  "results", "reproduce_mnist.json"))
args = parser.parse_args()

results = {"command": "python examples/reproduce_table4.py", "seed": args.seed, "paper_table4": PAPER}
for kind in ("vae", "cvae"):
    run_dir = os.path.join(args.runs, f"{kind}-mnist")
    if not os.path.exists(os.path.join(run_dir, "model.npz")):
        resume = os.path.exists(os.path.join(run_dir, "checkpoint.npz"))
        train(TrainConfig(model=kind, seed=args.seed), run_dir, resume=resume)
    rows = RunDirectory(run_dir).read_metrics()
    last = rows[-1]
    results[kind] = {
        "run_dir": run_dir, "epochs": last["epoch"],
        "train": {"recon": last["train_recon"], "kl": last["train_kl"], "total": last["train_total"]},
        "test": {"recon": last["test_recon"], "kl": last["test_kl"], "total": last["test_total"]},
        "seconds_per_epoch": statistics.median(r["seconds"] for r in rows),
        "train_images_per_s": statistics.median(r["images_per_s"] for r in rows),
        "relative_to_paper": {k: last[f"train_{k}"] / PAPER[kind][k] - 1 for k in ("recon", "kl", "total")},
    }
    evaluation = os.path.join(run_dir, "evaluation.json")     # from `npvae evaluate RUN_DIR --iwae-k K`
    if os.path.exists(evaluation):
        with open(evaluation) as f:
            saved = json.load(f)
        results[kind]["log_likelihood"] = {
            "images": saved.get("images"), "elbo": saved.get("elbo"), "elbo_se": saved.get("elbo_se"),
            **{key: {k: v[k] for k in ("k", "images", "mean", "se", "seconds")}
               for key, v in saved.items() if key.startswith("iwae_")}}
    print(f"{kind.upper():4s} train recon {last['train_recon']:.2f} kl {last['train_kl']:.2f} "
          f"total {last['train_total']:.2f}   test recon {last['test_recon']:.2f} kl {last['test_kl']:.2f} "
          f"total {last['test_total']:.2f}   paper {PAPER[kind]['recon']} / {PAPER[kind]['kl']} / {PAPER[kind]['total']}")
atomic_write_text(os.path.abspath(args.out), json.dumps(results, indent=2) + "\n")
print(f"written {os.path.abspath(args.out)}")
