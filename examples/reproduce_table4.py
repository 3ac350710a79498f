"""Reproduce the paper's Table 4: train (or reuse) the VAE and CVAE runs, then record the
final epoch's train and test figures in benchmarks/results/reproduce_mnist.json.

    python examples/reproduce_table4.py [--runs runs] [--seed 0]

Runs that already finished are reused; interrupted ones are resumed.
"""
import argparse
import os
import statistics

from npvae.files import atomic_write_text
from npvae.runs import PAPER_TABLE4, RunDirectory, TrainConfig, json_text
from npvae.training import ensure_trained

PAPER = {kind: dict(zip(("recon", "kl", "total"), values)) for kind, values in PAPER_TABLE4.items()}

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--runs", default="runs")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "benchmarks",
                                                  "results", "reproduce_mnist.json"))
args = parser.parse_args()

results = {"command": "python examples/reproduce_table4.py", "seed": args.seed, "paper_table4": PAPER}
for kind in ("vae", "cvae"):
    run_dir = os.path.join(args.runs, f"{kind}-mnist")
    ensure_trained(TrainConfig(model=kind, seed=args.seed), run_dir)
    run = RunDirectory(run_dir)
    rows = run.read_metrics()
    last = rows[-1]
    results[kind] = {
        "run_dir": run_dir, "epochs": last["epoch"],
        "train": {"recon": last["train_recon"], "kl": last["train_kl"], "total": last["train_total"]},
        "test": {"recon": last["test_recon"], "kl": last["test_kl"], "total": last["test_total"]},
        "seconds_per_epoch": statistics.median(r["seconds"] for r in rows),
        "train_images_per_s": statistics.median(r["images_per_s"] for r in rows),
        "relative_to_paper": {k: last[f"train_{k}"] / PAPER[kind][k] - 1 for k in ("recon", "kl", "total")},
    }
    saved = run.read_evaluation()          # from `npvae evaluate RUN_DIR --iwae-k K`
    if saved:
        results[kind]["log_likelihood"] = {
            "images": saved.get("images"), "elbo": saved.get("elbo"), "elbo_se": saved.get("elbo_se"),
            **{key: {k: v[k] for k in ("k", "images", "mean", "se", "seconds")}
               for key, v in saved.items() if key.startswith("iwae_")}}
    print(f"{kind.upper():4s} train recon {last['train_recon']:.2f} kl {last['train_kl']:.2f} "
          f"total {last['train_total']:.2f}   test recon {last['test_recon']:.2f} kl {last['test_kl']:.2f} "
          f"total {last['test_total']:.2f}   paper {PAPER[kind]['recon']} / {PAPER[kind]['kl']} / {PAPER[kind]['total']}")
atomic_write_text(os.path.abspath(args.out), json_text(results))
print(f"written {os.path.abspath(args.out)}")
