"""`npvae evaluate RUN_DIR`: test-set ELBO and, on request, log-likelihood estimates.

    npvae evaluate RUN_DIR                        reconstruction, KL, ELBO (one z per image)
    npvae evaluate RUN_DIR --iwae-k 5000          + log p(x) by importance weighting (IWAE-K)
    npvae evaluate RUN_DIR --grid [--grid-images 5]   + log p(x) by a 2-D grid, beside IWAE
"""
import json
import os
import time

import numpy as np

from ..checkpoint import atomic_write_text, load_model
from ..data import load_dataset, to_float
from ..evaluate import elbo_per_image, summarize
from ..likelihood import evaluate_iwae, model_grid_log_likelihood, standard_error

PROJECTION = (5000, 10000)   # K and images of the full evaluation the projection is for


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="test-set ELBO, and log p(x) by importance weighting (IWAE) or a grid",
        description="Evaluate a run's model on the test set: mean reconstruction (-log p(x|z), "
                    "summed over pixels), KL (summed over latent dimensions) and -ELBO = recon + KL "
                    "with one z ~ q(z|x) per image; with --iwae-k K also the importance-weighted "
                    "estimate log p(x) ~ log mean_k p(x|z_k) p(z_k) / q(z_k|x) (Burda et al. 2016); "
                    "with --grid (2-D latent only) log p(x) by direct numerical integration. All in "
                    "nats per image, with standard errors over the images. A CVAE is conditioned on "
                    "the true labels. Results are merged into RUN_DIR/evaluation.json (IWAE under "
                    "iwae_<K>, or iwae_<K>_first<N> with --subset; the grid under grid).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a model .npz file)")
    p.add_argument("--dataset", default=None, help="data set (default: the run's own)")
    p.add_argument("--data", default=None, metavar="DIR", help="folder holding the data set")
    p.add_argument("--subset", type=int, default=None, metavar="N", help="first N test images only")
    p.add_argument("--seed", type=int, default=0, help="seed of the eps draws (default: %(default)s)")
    p.add_argument("--iwae-k", type=int, default=None, metavar="K",
                   help="importance samples per image for the IWAE estimate of log p(x) (e.g. 5000)")
    p.add_argument("--batch-size", type=int, default=1000, metavar="B",
                   help="latent samples per decoder call in IWAE and grid (default: %(default)s)")
    p.add_argument("--grid", action="store_true",
                   help="2-D latent only: log p(x) by integrating p(x|z) p(z) over a grid, for "
                        "--grid-images images, printed beside IWAE-K (K = --iwae-k, else 5000)")
    p.add_argument("--grid-images", type=int, default=5, metavar="N",
                   help="images for --grid (the first N of the test set; default: %(default)s)")
    p.add_argument("--grid-size", type=int, default=400, metavar="G",
                   help="G x G points over mu +- 8 sigma of q(z|x) (default: %(default)s)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads sharing each batch (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run_config(run_dir):
    path = os.path.join(run_dir, "config.json")
    if os.path.isdir(run_dir) and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def _pair(values):
    return "(" + ", ".join(f"{v:.3f}" for v in values) + ")"


def _minutes(seconds):
    return f"{seconds:.0f} s ({seconds / 60:.1f} min, {seconds / 3600:.2f} h)"


def _iwae(model, images, labels, args):
    k = args.iwae_k
    estimate = evaluate_iwae(model, images, labels, k, np.random.default_rng([args.seed, 1]),
                             args.batch_size, progress=not args.no_progress, workers=args.workers)
    k_full, n_full = PROJECTION
    projected = k_full * n_full / estimate["samples_per_s"]
    print(f"  log p(x) ~ IWAE-{k:<5d}     {estimate['mean']:10.3f} +- {estimate['se']:.3f}   "
          f"(mean log-weight, a {k}-sample ELBO: {estimate['elbo_mean']:.3f})")
    print(f"  importance weights' effective sample size: median {estimate['ess_median']:.1f}, "
          f"smallest {estimate['ess_min']:.1f} of {k}")
    print(f"  IWAE wall time {estimate['seconds']:.1f} s for {len(images) * k:,} decoded z's: "
          f"{estimate['samples_per_s']:,.0f} z/s")
    print(f"  projected for K={k_full} over {n_full:,} images ({k_full * n_full:.1e} z's): "
          f"{_minutes(projected)}")
    result = {key: estimate[key] for key in ("k", "images", "mean", "se", "elbo_mean", "elbo_se",
                                              "ess_median", "ess_min", "seconds", "samples_per_s")}
    result.update(batch_size=args.batch_size, seed=args.seed,
                  projected_seconds=dict(k=k_full, images=n_full, seconds=projected))
    return result


def _grid(model, images, labels, args):
    if model.latent_dim != 2:
        raise ValueError(f"--grid needs a model with a 2-D latent; this one has {model.latent_dim}")
    n = min(args.grid_images, len(images))
    k = args.iwae_k or 5000
    print(f"  grid integration ({args.grid_size}^2 points around each posterior, plus the prior's "
          f"region) beside IWAE-{k}, first {n} images:")
    print(f"    {'image':>5} {'label':>5} {'grid log p(x)':>14} {'IWAE':>11} {'IWAE - grid':>12} "
          f"{'IWAE ESS':>9} {'outside box':>12} {'edge drop':>10}")
    rows = []
    started = time.perf_counter()
    for i in range(n):
        x = to_float(images[i:i + 1], model.dtype)
        grid = model_grid_log_likelihood(model, x, labels[i], size=args.grid_size,
                                         batch_size=args.batch_size)
        iwae = evaluate_iwae(model, images[i:i + 1], labels[i:i + 1], k,
                             np.random.default_rng([args.seed, 2, i]), args.batch_size, progress=False)
        rows.append({"image": i, "label": int(labels[i]), "grid": grid["log_px"],
                     "grid_local": grid["log_px_local"], "log_outside": grid["log_outside"],
                     "edge_drop": grid["edge_drop"], "width_sigmas": grid["width"],
                     "q_mean": grid["mu"], "q_sd": grid["sigma"],
                     "posterior_mean": grid["posterior_mean"], "posterior_sd": grid["posterior_sd"],
                     "iwae": iwae["mean"], "iwae_ess": iwae["ess_min"]})
        print(f"    {i:5d} {int(labels[i]):5d} {grid['log_px']:14.4f} {iwae['mean']:11.4f} "
              f"{iwae['mean'] - grid['log_px']:12.4f} {iwae['ess_min']:9.1f} "
              f"{grid['log_outside'] - grid['log_px']:12.1f} "
              f"{grid['edge_drop']:10.1f}")
        print(f"          q(z|x): mean {_pair(grid['mu'])} sd {_pair(grid['sigma'])};  grid posterior "
              f"p(z|x): mean {_pair(grid['posterior_mean'])} sd {_pair(grid['posterior_sd'])}")
    gaps = np.array([r["iwae"] - r["grid"] for r in rows])
    seconds = time.perf_counter() - started
    print(f"    mean |IWAE - grid| {np.mean(np.abs(gaps)):.4f} nats; 'outside box' is log(mass outside "
          f"the fine box / total), 'edge drop' how far the log-integrand falls from its peak to the "
          f"box's edge ({seconds:.0f} s)")
    return {"images": n, "size": args.grid_size, "iwae_k": k, "rows": rows,
            "mean_abs_gap": float(np.mean(np.abs(gaps))), "seconds": seconds}


def run(args):
    model = load_model(args.run_dir)
    dataset = args.dataset or run_config(args.run_dir).get("dataset", "mnist")
    images, labels = load_dataset(dataset, "test", root=args.data)
    # A partial evaluation is filed under its own keys, never over the full test set's.
    suffix = "" if args.subset is None or args.subset >= len(images) else f"_first{args.subset}"
    images, labels = images[:args.subset], labels[:args.subset].astype(np.int64)
    if args.iwae_k is not None and args.iwae_k < 1:
        raise ValueError(f"--iwae-k must be >= 1, got {args.iwae_k}")
    if args.batch_size < 1 or args.grid_images < 1 or args.grid_size < 2:
        raise ValueError("--batch-size and --grid-images must be >= 1, --grid-size >= 2")

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    recon, kl = elbo_per_image(model, images, labels, np.random.default_rng(args.seed),
                               workers=args.workers)
    result = summarize(recon, kl)
    elbo_se = standard_error(-(recon + kl))
    likelihood = getattr(model, "likelihood", "bernoulli")
    summary = {"images": int(len(images)), "elbo": -result["total"], "elbo_se": elbo_se, **result}
    print(f"{model.kind.upper()} ({likelihood} decoder) on {dataset} test ({len(images)} images), "
          f"nats per image:")
    print(f"  reconstruction {summary['recon']:.3f}   KL {summary['kl']:.3f}   "
          f"-ELBO {summary['total']:.3f}   recon/KL {summary['ratio']:.1f}")
    print(f"  log p(x) >= ELBO           {summary['elbo']:10.3f} +- {elbo_se:.3f}")
    result = {"dataset": dataset, "likelihood": likelihood}
    result.update(summary if not suffix else {f"elbo{suffix}": summary})
    if args.iwae_k is not None:
        result[f"iwae_{args.iwae_k}{suffix}"] = _iwae(model, images, labels, args)
    if args.grid:
        result["grid"] = _grid(model, images, labels, args)
    if os.path.isdir(args.run_dir):
        path = os.path.join(args.run_dir, "evaluation.json")
        previous = {}
        if os.path.exists(path):
            with open(path) as f:
                previous = json.load(f)
        atomic_write_text(path, json.dumps({**previous, **result}, indent=2,
                                           default=_finite) + "\n")
        print(f"  written to {path}")
    return 0


def _finite(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

