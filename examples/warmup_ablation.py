"""KL warm-up ablation (paper section 6.1): does the KL collapse early without warm-up?

    python examples/warmup_ablation.py                          # 3 runs x 30 epochs, full MNIST
    python examples/warmup_ablation.py --epochs 5 --limit 10000 --out /tmp/warmup   # a quick look

Trains the same VAE (same seed, architecture and data) three times:
    no warm-up       --warmup-epochs 0: beta = 1 from the first step
    per epoch        --warmup-epochs 10: beta = min(1, epoch / 10), the paper's eq. 31
    per step         --warmup-epochs 10 --schedule step: beta rises linearly every step
into --out/<name> (finished runs are skipped, interrupted ones resumed), then writes
    --out/warmup_ablation.png    beta, KL and reconstruction per epoch, train and test
    --out/warmup_ablation.json   the per-epoch curves and the final numbers
    --out/warmup_ablation.md     the table of final numbers (also printed)
The table also counts active latent units (Burda et al. 2016: dimension u is active when
Var_x E_q[z_u | x] > 0.01 over the test images), the usual measure of posterior collapse.
"""
import argparse
import json
import os

import numpy as np

from npvae.data import load_dataset
from npvae.evaluation import posterior_means
from npvae.evaluation.metrics import active_units
from npvae.files import atomic_write_text
from npvae.runs import RunDirectory, TrainConfig, open_model
from npvae.training import ensure_trained

RUNS = {"no-warmup": ("no warm-up", dict(warmup_epochs=0)),
        "warmup-epoch": ("warm-up 10, per epoch (paper)", dict(warmup_epochs=10, schedule="epoch")),
        "warmup-step": ("warm-up 10, per step", dict(warmup_epochs=10, schedule="step"))}
COLORS = {"no-warmup": "#d62728", "warmup-epoch": "#1f77b4", "warmup-step": "#2ca02c"}


def count_active_units(run_dir, images, labels):
    """Latent dimensions whose posterior mean varies across images (npvae.evaluation.metrics)."""
    variances, active = active_units(posterior_means(open_model(run_dir), images, labels))
    return int(active.sum()), variances.tolist()


def summarize(name, rows, units, variances):
    kl = [r["train_kl"] for r in rows]
    first = rows[0]
    last = rows[-1]
    return {"run": name, "label": RUNS[name][0], "epochs": last["epoch"],
            "train_recon": last["train_recon"], "train_kl": last["train_kl"],
            "train_total": last["train_total"], "test_recon": last["test_recon"], "test_kl": last["test_kl"],
            "test_total": last["test_total"], "kl_epoch_1": first["train_kl"],
            "min_train_kl": min(kl), "min_train_kl_epoch": rows[int(np.argmin(kl))]["epoch"],
            "active_units": units, "latent_variances": variances}


def markdown(results, latent_dim):
    lines = ["| run | train recon | train KL | train total | test recon | test KL | test total | "
             "KL epoch 1 | lowest KL (epoch) | active units |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['label']} | {r['train_recon']:.2f} | {r['train_kl']:.2f} | {r['train_total']:.2f} | "
                     f"{r['test_recon']:.2f} | {r['test_kl']:.2f} | {r['test_total']:.2f} | "
                     f"{r['kl_epoch_1']:.2f} | {r['min_train_kl']:.2f} ({r['min_train_kl_epoch']}) | "
                     f"{r['active_units']} of {latent_dim} |")
    return "\n".join(lines)


def plot(curves, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 4.4), dpi=120)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3)
    for name, rows in curves.items():
        epochs = [r["epoch"] for r in rows]
        color, label = COLORS[name], RUNS[name][0]
        axes[0].plot(epochs, [r["beta"] for r in rows], color=color, marker="o", ms=3, label=label)
        for ax, key in ((axes[1], "kl"), (axes[2], "recon")):
            ax.plot(epochs, [r[f"train_{key}"] for r in rows], color=color, marker="o", ms=3,
                    label=f"{label}, train")
            ax.plot(epochs, [r[f"test_{key}"] for r in rows], color=color, ls="--", lw=1,
                    label=f"{label}, test")
    titles = ("KL weight beta (at the epoch's last step)", "KL per image (nats)",
              "Reconstruction (BCE) per image (nats)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=7)
    recon_values = [r[k] for rows in curves.values() for r in rows for k in ("train_recon", "test_recon")]
    axes[2].set_ylim(min(recon_values) - 2, np.percentile(recon_values, 95) + 5)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("runs", "warmup-ablation"))
    parser.add_argument("--model", choices=("vae", "cvae"), default="vae")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="first N training images only")
    parser.add_argument("--test-limit", type=int, default=None, help="first N test images only")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None, metavar="DIR", help="folder holding MNIST")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    test_images, test_labels = load_dataset("mnist", "test", root=args.data)
    test_images, test_labels = test_images[:args.test_limit], test_labels[:args.test_limit].astype(np.int64)
    curves, results = {}, []
    for name, (label, options) in RUNS.items():
        config = TrainConfig(model=args.model, epochs=args.epochs, latent_dim=args.latent_dim,
                             batch_size=args.batch_size, seed=args.seed, limit=args.limit,
                             test_limit=args.test_limit, **options)
        run_dir = os.path.join(args.out, name)
        print(f"== {label} -> {run_dir}")
        ensure_trained(config, run_dir, data_root=args.data, progress=not args.no_progress)
        curves[name] = RunDirectory(run_dir).read_metrics()
        units, variances = count_active_units(run_dir, test_images, test_labels)
        results.append(summarize(name, curves[name], units, variances))

    table = markdown(results, args.latent_dim)
    plot(curves, os.path.join(args.out, "warmup_ablation.png"))
    atomic_write_text(os.path.join(args.out, "warmup_ablation.json"),
                      json.dumps({"settings": vars(args), "final": results, "curves": curves}, indent=2) + "\n")
    atomic_write_text(os.path.join(args.out, "warmup_ablation.md"), table + "\n")
    print(table)
    print(f"figure: {os.path.join(args.out, 'warmup_ablation.png')}; "
          f"numbers: warmup_ablation.json, warmup_ablation.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
