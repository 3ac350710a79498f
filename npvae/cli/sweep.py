"""`npvae sweep`: train a grid of KL weights (beta-VAE) x latent sizes and draw the trade-off.

    npvae sweep --out runs/sweep                       # beta {0.5,1,2,4} x latent {2,8,16,32}
    npvae sweep --betas 1 4 --latents 2 16 --epochs 10 --limit 10000 --out /tmp/sweep

Each grid point is an ordinary run directory, DIR/beta<B>-latent<D>: finished runs are
skipped, interrupted ones resumed. Every run's test log-likelihood is estimated by IWAE-K
on the first --iwae-subset test images (cached in the run's evaluation.json). Then

    DIR/sweep.json   the settings and one record per run
    DIR/sweep.csv    the same records as a table
    DIR/sweep.png    left: test reconstruction vs test KL (colour: beta, marker: latent size);
                     right: test log-likelihood (IWAE-K) vs latent size, one line per beta

matplotlib is imported when the figure is drawn, not when the CLI starts.
"""
import json
import os
import time
from dataclasses import asdict, replace

import numpy as np

from ..checkpoint import atomic_write_text, load_model
from ..data import load_dataset
from ..likelihood import evaluate_iwae
from ..train import TrainConfig, csv_text, read_metrics, train

DEFAULT_BETAS = (0.5, 1.0, 2.0, 4.0)
DEFAULT_LATENTS = (2, 8, 16, 32)
COLUMNS = ("beta", "latent_dim", "epochs", "train_recon", "train_kl", "train_total", "test_recon",
           "test_kl", "test_elbo", "iwae_k", "iwae_images", "test_log_px", "test_log_px_se",
           "iwae_elbo", "run_dir")
MARKERS = "osD^vP*Xh<>"


def add_parser(subparsers):
    defaults = TrainConfig()
    p = subparsers.add_parser(
        "sweep", help="train a grid of beta x latent size; table and trade-off figure",
        description="Train one VAE (or CVAE) per (beta, latent size) pair into DIR/beta<B>-latent<D> "
                    "(finished runs are skipped, interrupted ones resumed), estimate each one's test "
                    "log-likelihood by IWAE-K, and write DIR/sweep.json, DIR/sweep.csv and "
                    "DIR/sweep.png (reconstruction vs KL; log-likelihood vs latent size).")
    p.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS), metavar="B",
                   help="final KL weights (default: %(default)s)")
    p.add_argument("--latents", type=int, nargs="+", default=list(DEFAULT_LATENTS), metavar="D",
                   help="latent sizes (default: %(default)s)")
    p.add_argument("--model", choices=("vae", "cvae"), default="vae", help="default: %(default)s")
    p.add_argument("--epochs", type=int, default=defaults.epochs, help="default: %(default)s")
    p.add_argument("--warmup-epochs", type=int, default=defaults.warmup_epochs,
                   help="KL warm-up to each run's beta (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default: %(default)s")
    p.add_argument("--lr", type=float, default=defaults.lr, help="default: %(default)s")
    p.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N training images only")
    p.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="first N test images for the per-epoch test figures (default: all)")
    p.add_argument("--iwae-k", type=int, default=1000, metavar="K",
                   help="importance samples per image for the test log-likelihood (default: %(default)s)")
    p.add_argument("--iwae-subset", type=int, default=1000, metavar="N",
                   help="test images for the IWAE estimate (default: %(default)s)")
    p.add_argument("--iwae-batch-size", type=int, default=1000, metavar="B",
                   help="latent samples per decoder call in IWAE (default: %(default)s)")
    p.add_argument("--data", default=None, metavar="DIR", help="folder holding the data set")
    p.add_argument("--out", default=os.path.join("runs", "sweep"), metavar="DIR",
                   help="sweep directory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(run=run)


def run_name(beta, latent_dim):
    return f"beta{beta:g}-latent{latent_dim}"


def ensure_run(config, out_dir, data_root=None, progress=True, log=print):
    """Train ``config`` into ``out_dir`` unless it is already done there; resume a partial run.

    A directory holding a run with different settings is an error, not silently reused.
    Returns the metric rows.
    """
    config.validate()
    config_path = os.path.join(out_dir, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            saved = TrainConfig.from_dict(json.load(f))
        if config.workers is None:          # "one per core" matches whatever count was recorded
            config = replace(config, workers=saved.workers)
        if asdict(saved) != asdict(config):
            changed = sorted(k for k, v in asdict(config).items() if asdict(saved)[k] != v)
            raise ValueError(f"{out_dir} holds a run with other settings ({', '.join(changed)}); "
                             f"remove it or choose another --out")
        if os.path.exists(os.path.join(out_dir, "model.npz")):
            rows = read_metrics(out_dir)
            if len(rows) == config.epochs:
                log(f"{out_dir}: finished, skipped")
                return rows
        if os.path.exists(os.path.join(out_dir, "checkpoint.npz")):
            return train(config, out_dir, resume=True, data_root=data_root, progress=progress, log=log)
    return train(config, out_dir, data_root=data_root, progress=progress, log=log)


def cached_iwae(run_dir, images, labels, k, batch_size=1000, seed=0, progress=True):
    """IWAE-K of the run's model on ``images``, stored in RUN_DIR/evaluation.json under
    ``iwae_<K>_first<N>`` (the key ``npvae evaluate --subset N --iwae-k K`` uses) and reused."""
    path = os.path.join(run_dir, "evaluation.json")
    key = f"iwae_{k}_first{len(images)}"
    stored = {}
    if os.path.exists(path):
        with open(path) as f:
            stored = json.load(f)
        if key in stored and stored[key].get("seed") == seed:
            return stored[key]
    estimate = evaluate_iwae(load_model(run_dir), images, labels, k, np.random.default_rng([seed, 1]),
                             batch_size, progress=progress)
    result = {name: estimate[name] for name in ("k", "images", "mean", "se", "elbo_mean", "elbo_se",
                                                "ess_median", "ess_min", "seconds", "samples_per_s")}
    result.update(batch_size=batch_size, seed=seed)
    atomic_write_text(path, json.dumps({**stored, key: result}, indent=2) + "\n")
    return result


def run_sweep(configs, out, iwae_k, iwae_subset, iwae_batch_size=1000, data_root=None,
              progress=True, log=print):
    """Train (or skip) each config into out/<name>, estimate IWAE, write sweep.json/csv/png.

    ``configs``: {name: TrainConfig}. Returns the list of records (dicts of COLUMNS).
    """
    records = []
    test_images = test_labels = None
    for name, config in configs.items():
        run_dir = os.path.join(out, name)
        log(f"== {name} ({config.model.upper()}, beta {config.beta:g}, latent {config.latent_dim}, "
            f"{config.epochs} epochs)")
        ensure_run(config, run_dir, data_root, progress, log)
        rows = read_metrics(run_dir)            # the recorded figures, whether trained now or before
        if test_images is None:
            test_images, test_labels = load_dataset(config.dataset, "test", root=data_root)
            test_images = test_images[:iwae_subset]
            test_labels = test_labels[:iwae_subset].astype(np.int64)
        iwae = cached_iwae(run_dir, test_images, test_labels, iwae_k, iwae_batch_size, config.seed,
                           progress)
        last = rows[-1]
        records.append({"beta": config.beta, "latent_dim": config.latent_dim, "epochs": last["epoch"],
                        "train_recon": last["train_recon"], "train_kl": last["train_kl"],
                        "train_total": last["train_total"], "test_recon": last["test_recon"],
                        "test_kl": last["test_kl"], "test_elbo": -(last["test_recon"] + last["test_kl"]),
                        "iwae_k": iwae["k"], "iwae_images": iwae["images"],
                        "test_log_px": iwae["mean"], "test_log_px_se": iwae["se"],
                        "iwae_elbo": iwae["elbo_mean"], "run_dir": run_dir})
        log(f"   test recon {last['test_recon']:.2f}  KL {last['test_kl']:.2f}  "
            f"log p(x) ~ IWAE-{iwae_k} {iwae['mean']:.2f} +- {iwae['se']:.2f}")
    write_outputs(records, out, settings={"iwae_k": iwae_k, "iwae_subset": iwae_subset,
                                          "configs": {n: asdict(c) for n, c in configs.items()}})
    return records


def records_csv(records):
    return csv_text(records, COLUMNS)


def markdown_table(records):
    lines = ["| beta | latent | train recon | train KL | test recon | test KL | test ELBO | "
             "test log p(x) (IWAE) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['beta']:g} | {r['latent_dim']} | {r['train_recon']:.2f} | {r['train_kl']:.2f} | "
                     f"{r['test_recon']:.2f} | {r['test_kl']:.2f} | {r['test_elbo']:.2f} | "
                     f"{r['test_log_px']:.2f} ± {r['test_log_px_se']:.2f} |")
    return "\n".join(lines)


def write_outputs(records, out, settings):
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, "sweep.json"),
                      json.dumps({**settings, "runs": records}, indent=2) + "\n")
    atomic_write_text(os.path.join(out, "sweep.csv"), records_csv(records))
    plot_sweep(records, os.path.join(out, "sweep.png"), settings.get("iwae_k"))


def plot_sweep(records, path, iwae_k=None):
    """The two-panel trade-off figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib import colormaps
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    betas = sorted({r["beta"] for r in records})
    latents = sorted({r["latent_dim"] for r in records})
    cmap = colormaps["viridis"]
    color = {b: cmap(i / max(1, len(betas) - 1) * 0.9) for i, b in enumerate(betas)}
    marker = {d: MARKERS[i % len(MARKERS)] for i, d in enumerate(latents)}

    fig = Figure(figsize=(12, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)
    for r in records:
        left.scatter(r["test_kl"], r["test_recon"], color=color[r["beta"]], marker=marker[r["latent_dim"]],
                     s=60, edgecolor="black", linewidth=0.5, zorder=3)
    left.set_xlabel("test KL per image (nats)")
    left.set_ylabel("test reconstruction -log p(x|z) per image (nats)")
    left.set_title("Rate-distortion trade-off")
    left.grid(alpha=0.3)
    handles = [Line2D([], [], color=color[b], marker="o", ls="", label=f"beta {b:g}") for b in betas]
    handles += [Line2D([], [], color="grey", marker=marker[d], ls="", label=f"latent {d}") for d in latents]
    left.legend(handles=handles, fontsize=8, ncol=2)

    for b in betas:
        rows = sorted((r for r in records if r["beta"] == b), key=lambda r: r["latent_dim"])
        right.errorbar([r["latent_dim"] for r in rows], [r["test_log_px"] for r in rows],
                       yerr=[r["test_log_px_se"] for r in rows], color=color[b], marker="o", capsize=3,
                       label=f"beta {b:g}")
    right.set_xscale("log", base=2)
    right.set_xticks(latents)
    right.set_xticklabels([str(d) for d in latents])
    right.set_xlabel("latent size")
    right.set_ylabel(f"test log p(x) per image, IWAE-{iwae_k} (nats)" if iwae_k else "test log p(x)")
    images = records[0]["iwae_images"] if records else 0
    right.set_title(f"Test log-likelihood (first {images} test images)")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


def run(args):
    if not args.betas or not args.latents:
        raise ValueError("need at least one --betas value and one --latents value")
    if args.iwae_k < 1 or args.iwae_subset < 1:
        raise ValueError("--iwae-k and --iwae-subset must be >= 1")
    configs = {}
    for beta in args.betas:
        for latent_dim in args.latents:
            configs[run_name(beta, latent_dim)] = TrainConfig(
                model=args.model, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                latent_dim=latent_dim, warmup_epochs=args.warmup_epochs, beta=beta, seed=args.seed,
                limit=args.limit, test_limit=args.test_limit).validate()
    started = time.perf_counter()
    print(f"npvae sweep: {len(configs)} runs ({len(args.betas)} betas x {len(args.latents)} latent sizes) "
          f"-> {args.out}")
    records = run_sweep(configs, args.out, args.iwae_k, args.iwae_subset, args.iwae_batch_size,
                        args.data, progress=not args.no_progress)
    print(markdown_table(records))
    print(f"npvae sweep: done in {time.perf_counter() - started:.0f} s; "
          f"{os.path.join(args.out, 'sweep.json')}, sweep.csv, sweep.png")
    return 0
