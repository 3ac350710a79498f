"""Sweeps: one training run per setting of a grid (beta x latent size), each evaluated by IWAE.

Each grid point is an ordinary run directory, DIR/beta<B>-latent<D>: finished runs are
skipped, interrupted ones resumed. Every run's test log-likelihood is estimated by IWAE-K
on the first ``iwae_subset`` test images (filed in the run's evaluation.json). Then

    DIR/sweep.json   the settings and one record per run
    DIR/sweep.csv    the same records as a table
    DIR/sweep.png    the trade-off figure (npvae.viz.sweep)
"""
import os
import time
from dataclasses import asdict

import numpy as np

from ..data import load_dataset
from ..evaluation import evaluate_iwae
from ..files import atomic_write_text, csv_text
from ..runs import RunDirectory, TrainConfig, evaluation_key, json_text
from ..training import ensure_trained

DEFAULT_BETAS = (0.5, 1.0, 2.0, 4.0)
DEFAULT_LATENTS = (2, 8, 16, 32)
COLUMNS = ("beta", "latent_dim", "epochs", "train_recon", "train_kl", "train_total", "test_recon",
           "test_kl", "test_elbo", "iwae_k", "iwae_images", "test_log_px", "test_log_px_se",
           "iwae_elbo", "run_dir")


def run_name(beta, latent_dim):
    return f"beta{beta:g}-latent{latent_dim}"


def grid_configs(betas, latents, **settings):
    """{run name: TrainConfig} for every (beta, latent size) pair; ``settings`` are the other
    TrainConfig fields, the same for every run."""
    if not betas or not latents:
        raise ValueError("need at least one beta and one latent size")
    return {run_name(beta, latent_dim): TrainConfig(latent_dim=latent_dim, beta=beta, **settings).validate()
            for beta in betas for latent_dim in latents}


def cached_iwae(run_dir, images, labels, k, test_size, batch_size=1000, seed=0, progress=True):
    """IWAE-K of the run's model on ``images`` (the first of ``test_size`` test images), filed
    in RUN_DIR/evaluation.json under the key ``npvae evaluate`` uses, and reused from there."""
    run = RunDirectory(run_dir)
    key = evaluation_key(f"iwae_{k}", len(images), test_size)
    stored = run.read_evaluation()
    if key in stored and stored[key].get("seed") == seed:
        return stored[key]
    estimate = evaluate_iwae(run.load_model(), images, labels, k, np.random.default_rng([seed, 1]),
                             batch_size, progress=progress)
    result = {name: estimate[name] for name in ("k", "images", "mean", "se", "elbo_mean", "elbo_se",
                                                "ess_median", "ess_min", "seconds", "samples_per_s")}
    result.update(batch_size=batch_size, seed=seed)
    run.record_evaluation({key: result})
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
        ensure_trained(config, run_dir, data_root, progress, log)
        rows = RunDirectory(run_dir).read_metrics()            # the recorded figures, whether trained now or before
        if test_images is None:
            test_images, test_labels = load_dataset(config.dataset, "test", root=data_root)
            test_size = len(test_images)
            test_images = test_images[:iwae_subset]
            test_labels = test_labels[:iwae_subset].astype(np.int64)
        iwae = cached_iwae(run_dir, test_images, test_labels, iwae_k, test_size, iwae_batch_size,
                           config.seed, progress)
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
    from ..viz.sweep import plot_sweep     # noqa: PLC0415 (matplotlib only when drawing)
    atomic_write_text(os.path.join(out, "sweep.json"), json_text({**settings, "runs": records}))
    atomic_write_text(os.path.join(out, "sweep.csv"), records_csv(records))
    plot_sweep(records, os.path.join(out, "sweep.png"), settings.get("iwae_k"))




def sweep(betas, latents, out, iwae_k=1000, iwae_subset=1000, iwae_batch_size=1000, data_root=None,
          progress=True, log=print, **settings):
    """`npvae sweep`: train and evaluate the beta x latent grid into ``out``; print the table."""
    if iwae_k < 1 or iwae_subset < 1:
        raise ValueError("--iwae-k and --iwae-subset must be >= 1")
    configs = grid_configs(betas, latents, **settings)
    started = time.perf_counter()
    log(f"npvae sweep: {len(configs)} runs ({len(betas)} betas x {len(latents)} latent sizes) -> {out}")
    records = run_sweep(configs, out, iwae_k, iwae_subset, iwae_batch_size, data_root, progress, log)
    log(markdown_table(records))
    log(f"npvae sweep: done in {time.perf_counter() - started:.0f} s; "
        f"{os.path.join(out, 'sweep.json')}, sweep.csv, sweep.png")
    return records
