"""`npvae evaluate RUN_DIR`: test-set ELBO and, on request, log-likelihood estimates and the
latent-quality metrics, printed and filed in the run's evaluation.json (keys from
npvae.runs.evaluation_key)."""
import os
import time

import numpy as np

from ..data import has_labels, load_dataset, to_float
from ..files import text_table
from ..runs import RunDirectory, evaluation_key, open_model
from ..runtime import DataParallel
from ..runtime.cluster import check_cluster, require_distributed
from .elbo import elbo_per_image, summarize
from .grid import model_grid_log_likelihood
from .iwae import IWAE_STREAMS, evaluate_iwae, standard_error
from .latents import posterior_moments
from .metrics import latent_metrics, metrics_rows
from .sharded import cluster_iwae

PROJECTION = (5000, 10000)   # K and images of the full evaluation the projection is for


def _pair(values):
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _minutes(seconds):
    return f"{seconds:.0f} s ({seconds / 60:.1f} min, {seconds / 3600:.2f} h)"


def _iwae(model, images, labels, k, seed, batch_size, progress, workers, log, cluster="none"):
    if cluster == "none":
        estimate = evaluate_iwae(model, images, labels, k, (seed, 1), batch_size, progress=progress,
                                 workers=workers)
    else:       # the same numbers, the test set sharded over a Dask cluster's workers
        estimate = cluster_iwae(model, images, labels, k, (seed, 1), batch_size, cluster, progress)
    k_full, n_full = PROJECTION
    projected = k_full * n_full / estimate["samples_per_s"]
    log(f"  log p(x) ~ IWAE-{k:<5d}     {estimate['mean']:10.3f} +- {estimate['se']:.3f}   "
        f"(mean log-weight, a {k}-sample ELBO: {estimate['elbo_mean']:.3f})")
    log(f"  importance weights' effective sample size: median {estimate['ess_median']:.1f}, "
        f"smallest {estimate['ess_min']:.1f} of {k}")
    log(f"  IWAE wall time {estimate['seconds']:.1f} s for {len(images) * k:,} decoded z's: "
        f"{estimate['samples_per_s']:,.0f} z/s")
    log(f"  projected for K={k_full} over {n_full:,} images ({k_full * n_full:.1e} z's): "
        f"{_minutes(projected)}")
    result = {key: estimate[key] for key in ("k", "images", "mean", "se", "elbo_mean", "elbo_se",
                                              "ess_median", "ess_min", "seconds", "samples_per_s")}
    result.update(batch_size=batch_size, seed=seed, streams=IWAE_STREAMS,
                  projected_seconds=dict(k=k_full, images=n_full, seconds=projected))
    return result


def _grid(model, images, labels, k, seed, batch_size, grid_images, grid_size, log):
    if model.latent_dim != 2:
        raise ValueError(f"--grid needs a model with a 2-D latent; this one has {model.latent_dim}")
    n = min(grid_images, len(images))
    log(f"  grid integration ({grid_size}^2 points around each posterior, plus the prior's "
        f"region) beside IWAE-{k}, first {n} images:")
    log(f"    {'image':>5} {'label':>5} {'grid log p(x)':>14} {'IWAE':>11} {'IWAE - grid':>12} "
        f"{'IWAE ESS':>9} {'outside box':>12} {'edge drop':>10}")
    rows = []
    started = time.perf_counter()
    for i in range(n):
        x = to_float(images[i:i + 1], model.dtype)
        grid = model_grid_log_likelihood(model, x, labels[i], size=grid_size, batch_size=batch_size)
        iwae = evaluate_iwae(model, images[i:i + 1], labels[i:i + 1], k, (seed, 2), batch_size,
                             progress=False, first_index=i)
        rows.append({"image": i, "label": int(labels[i]), "grid": grid["log_px"],
                     "grid_local": grid["log_px_local"], "log_outside": grid["log_outside"],
                     "edge_drop": grid["edge_drop"], "edge_ok": grid["edge_ok"],
                     "width_sigmas": grid["width"], "q_mean": grid["mu"], "q_sd": grid["sigma"],
                     "posterior_mean": grid["posterior_mean"], "posterior_sd": grid["posterior_sd"],
                     "iwae": iwae["mean"], "iwae_ess": iwae["ess_min"]})
        log(f"    {i:5d} {int(labels[i]):5d} {grid['log_px']:14.4f} {iwae['mean']:11.4f} "
            f"{iwae['mean'] - grid['log_px']:12.4f} {iwae['ess_min']:9.1f} "
            f"{grid['log_outside'] - grid['log_px']:12.1f} {grid['edge_drop']:10.1f}")
        log(f"          q(z|x): mean {_pair(grid['mu'])} sd {_pair(grid['sigma'])};  grid posterior "
            f"p(z|x): mean {_pair(grid['posterior_mean'])} sd {_pair(grid['posterior_sd'])}")
        if not grid["edge_ok"]:
            log(f"          warning: even the widest box (mu +- {grid['width']:g} sigma) has the "
                f"integrand within {grid['edge_drop']:.1f} nats of its peak on its edge; the "
                f"prior-region grid adds what lies outside, at a coarser resolution")
    gaps = np.array([r["iwae"] - r["grid"] for r in rows])
    seconds = time.perf_counter() - started
    log(f"    mean |IWAE - grid| {np.mean(np.abs(gaps)):.4f} nats; 'outside box' is log(mass outside "
        f"the fine box / total), 'edge drop' how far the log-integrand falls from its peak to the "
        f"box's edge ({seconds:.0f} s)")
    return {"images": n, "size": grid_size, "iwae_k": k, "rows": rows,
            "mean_abs_gap": float(np.mean(np.abs(gaps))), "seconds": seconds}


def _metrics(model, dataset, data_root, test_images, test_labels, seed, workers, log):
    """Latent-quality metrics (npvae.evaluation.metrics) on the posteriors of the whole training
    set and of ``test_images``."""
    started = time.perf_counter()
    train_images, train_labels = load_dataset(dataset, "train", root=data_root)
    train_labels = train_labels.astype(np.int64)
    with DataParallel(model, workers) as parallel:
        train = posterior_moments(model, train_images, train_labels, parallel=parallel)
        test = posterior_moments(model, test_images, test_labels, parallel=parallel)
    labelled = has_labels(train_labels) and has_labels(test_labels)
    result = latent_metrics((*train, train_labels if labelled else None),
                            (*test, test_labels if labelled else None), kind=model.kind, seed=seed)
    result.update(dataset=dataset, seconds=time.perf_counter() - started)
    log(f"  latent-quality metrics on the posterior means of {len(train_images):,} training and "
        f"{len(test_images):,} test images ({result['seconds']:.0f} s):")
    table = text_table(["metric", "train", "test"], metrics_rows(result))
    log("\n".join("    " + line for line in table.splitlines()))
    variances = result["test"]["variances"]
    log("    per-dimension Var_x mu_u (test): " + ", ".join(f"{v:.3g}" for v in variances))
    for note in result["notes"]:
        log(f"    note: {note}")
    return result


def evaluate_run(run_dir, dataset=None, data_root=None, subset=None, seed=0, iwae_k=None,
                 batch_size=1000, grid=False, grid_images=5, grid_size=400, workers=None,
                 metrics=False, progress=True, log=print, cluster="none"):
    """Evaluate the model of ``run_dir`` (a run directory, or a model .npz) on its test set.

    Prints the reconstruction, KL and -ELBO (one z ~ q(z|x) per image); with ``iwae_k`` the
    IWAE-K estimate of log p(x); with ``grid`` (2-D latent) log p(x) by integration for
    ``grid_images`` images; with ``metrics`` the latent-quality metrics of
    npvae.evaluation.metrics, on the whole training set and the test images, filed under
    ``metrics`` (``metrics_first<N>`` with ``subset``). For a run directory, the results are
    merged into its evaluation.json. With ``cluster`` (see npvae.runtime.cluster) other than
    'none', the IWAE estimate is sharded over a Dask cluster's workers, with exactly the same
    result. Returns the dict of results.
    """
    if iwae_k is not None and iwae_k < 1:
        raise ValueError(f"--iwae-k must be >= 1, got {iwae_k}")
    if batch_size < 1 or grid_images < 1 or grid_size < 2:
        raise ValueError("--batch-size and --grid-images must be >= 1, --grid-size >= 2")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if subset is not None and subset < 1:
        raise ValueError(f"--subset must be >= 1, got {subset}")
    if check_cluster(cluster) != "none":
        require_distributed(cluster)      # fail now, with the install hint, if Dask is missing
    run = RunDirectory(run_dir) if os.path.isdir(run_dir) else None
    model = open_model(run_dir)
    dataset = dataset or (run.dataset if run is not None and run.exists() else "mnist")
    images, labels = load_dataset(dataset, "test", root=data_root)
    test_size = len(images)
    images, labels = images[:subset], labels[:subset].astype(np.int64)

    recon, kl = elbo_per_image(model, images, labels, np.random.default_rng(seed), workers=workers)
    summary = {"images": int(len(images)), **summarize(recon, kl)}
    summary.update(elbo=-summary["total"], elbo_se=standard_error(-(recon + kl)))
    likelihood = getattr(model, "likelihood", "bernoulli")
    log(f"{model.kind.upper()} ({likelihood} decoder) on {dataset} test ({len(images)} images), "
        f"nats per image:")
    log(f"  reconstruction {summary['recon']:.3f}   KL {summary['kl']:.3f}   "
        f"-ELBO {summary['total']:.3f}   recon/KL {summary['ratio']:.1f}")
    log(f"  log p(x) >= ELBO           {summary['elbo']:10.3f} +- {summary['elbo_se']:.3f}")

    result = {"dataset": dataset, "likelihood": likelihood}
    if len(images) >= test_size:        # the whole test set's ELBO sits at the top level
        result.update(summary)
    else:
        result[evaluation_key("elbo", len(images), test_size)] = summary
    if iwae_k is not None:
        result[evaluation_key(f"iwae_{iwae_k}", len(images), test_size)] = _iwae(
            model, images, labels, iwae_k, seed, batch_size, progress, workers, log, cluster)
    if metrics:
        result[evaluation_key("metrics", len(images), test_size)] = _metrics(
            model, dataset, data_root, images, labels, seed, workers, log)
    if grid:
        result["grid"] = _grid(model, images, labels, iwae_k or 5000, seed, batch_size, grid_images,
                               grid_size, log)
    if run is not None:
        log(f"  written to {run.record_evaluation(result)}")
    return result
