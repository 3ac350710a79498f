"""`npvae sweep`: one training run per point of a grid, on a Dask cluster or in this process.

The sweep directory DIR holds

    <run name>/        one ordinary run directory per grid point (npvae.experiments.grid)
    manifest.json      the grid, the shared settings, the equivalent command, the versions of
                       npvae and its engine, and how many runs are finished, failed, pending
    results.csv        one row per run: status, final train/test figures, IWAE
    summary.csv        per configuration, mean and sd over seeds (npvae.experiments.aggregate)
    summary.txt        the same as a readable table (also printed); summary.md in Markdown
    rate_distortion.png, log_likelihood.png     the figures (npvae.viz.sweep)

manifest.json and results.csv are rewritten, atomically, each time a run finishes, so they
show the progress and the partial results of a sweep still running. The same command again
skips what is finished and resumes what was interrupted (npvae.experiments.tasks): killing
the driver loses at most the epochs in progress. Runs are dispatched seed by seed (every
configuration with the first seed, then with the second, ...), so a sweep stopped early holds
whole grids for its first seeds rather than every seed of a few configurations.
"""
import contextlib
import importlib.metadata
import os
import platform
import time

from tqdm import tqdm

from ..files import atomic_write_text, csv_text
from ..runs import RunDirectory, config_differences, json_text
from ..runtime.cluster import require_distributed, check_cluster
from .aggregate import aggregate, summary_csv, summary_markdown, summary_text
from .engine import run_tasks
from .grid import AXES, grid_configs, grid_point
from .tasks import IWAESettings, RunTask, needs_worker, run_task

RESULT_COLUMNS = ("name", *AXES, "status", "action", "started_from_epoch", "epochs", "train_recon",
                  "train_kl", "train_neg_elbo", "test_recon", "test_kl", "test_neg_elbo", "iwae_k",
                  "iwae_images", "test_log_px", "test_log_px_se", "seconds", "message", "run_dir")
AXIS_PLURALS = {"model": "models", "dataset": "data sets", "likelihood": "decoders",
                "warmup_epochs": "warm-ups", "beta": "betas", "latent_dim": "latent sizes", "seed": "seeds"}
PACKAGES = ("npvae", "numpy", "numba", "scipy", "matplotlib", "tqdm", "dask", "distributed")
GRID_FLAGS = {"model": "--models", "dataset": "--datasets", "likelihood": "--likelihoods",
              "warmup_epochs": "--warmup-epochs", "beta": "--betas", "latent_dim": "--latents",
              "seed": "--seeds"}


def versions():
    """{package: installed version or None}, and Python's."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return {**found, "python": platform.python_version()}


def sweep_command(grid, out, settings, iwae, cluster):
    """The `npvae sweep` command line that runs this sweep (recorded in the manifest)."""
    words = ["npvae", "sweep"]
    for axis, values in grid.axes().items():
        words += [GRID_FLAGS[axis], *[f"{v:g}" if isinstance(v, float) else str(v) for v in values]]
    for name, value in settings.items():
        words += [f"--{name.replace('_', '-')}", f"{value:g}" if isinstance(value, float) else str(value)]
    if iwae is not None:
        words += ["--iwae-k", str(iwae.k), "--iwae-subset", str(iwae.subset),
                  "--iwae-batch-size", str(iwae.batch_size)]
    return " ".join(words + ["--cluster", cluster, "--out", out])


def check_run_directories(configs, out):
    """Raise ValueError before anything runs if a run directory holds a run with other settings."""
    for name, config in configs.items():
        run = RunDirectory(os.path.join(out, name))
        if run.exists():
            differences = config_differences(run.read_config(), config, ignore=("workers",))
            if differences:
                raise ValueError(f"{run.path} holds a run with other settings "
                                 f"({'; '.join(differences)}); remove it or choose another --out")


def write_progress(out, manifest, records):
    """results.csv and manifest.json (with the counts of finished, failed and pending runs)."""
    counts = {status: sum(r["status"] == status for r in records) for status in ("finished", "failed", "pending")}
    atomic_write_text(os.path.join(out, "results.csv"), csv_text(records, RESULT_COLUMNS))
    atomic_write_text(os.path.join(out, "manifest.json"),
                      json_text({**manifest, "progress": counts,
                                 "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))


def write_summary(out, rows):
    """summary.csv/.txt/.md and, when a run finished, the two figures; returns the text table."""
    from ..viz.sweep import plot_log_likelihood, plot_rate_distortion   # matplotlib only now

    text = summary_text(rows)
    atomic_write_text(os.path.join(out, "summary.csv"), summary_csv(rows))
    atomic_write_text(os.path.join(out, "summary.txt"), text + "\n")
    atomic_write_text(os.path.join(out, "summary.md"), summary_markdown(rows) + "\n")
    if any(row["seeds"] > 0 for row in rows):
        plot_rate_distortion(rows, os.path.join(out, "rate_distortion.png"))
        plot_log_likelihood(rows, os.path.join(out, "log_likelihood.png"))
    return text


def run_sweep(grid, out, settings=None, iwae_k=None, iwae_subset=1000, iwae_batch_size=1000,
              cluster="none", local_workers=None, data_root=None, progress=True, log=print,
              callbacks=()):
    """Train every point of ``grid`` (a SweepGrid) into ``out``/<run name>, each as one task on
    ``cluster`` ('none', 'local' or a scheduler address; see npvae.runtime.cluster), then
    estimate each run's IWAE-``iwae_k`` on the first ``iwae_subset`` test images (None: no
    IWAE). ``settings``: the other TrainConfig fields, shared by every run. ``callbacks``
    (picklable npvae.training.Callback objects) follow each run on its worker.

    Returns (records, summary rows): one record per run, in grid order, and one summary row
    per configuration.
    """
    check_cluster(cluster)
    if cluster != "none":
        require_distributed(cluster)          # fail now, with the install hint, if Dask is missing
    settings = dict(settings or {})
    iwae = None if iwae_k is None else IWAESettings(iwae_k, iwae_subset, iwae_batch_size).validate()
    configs = grid_configs(grid, **settings)
    check_run_directories(configs, out)
    tasks = [RunTask(name, config, os.path.join(out, name), data_root, iwae, tuple(callbacks))
             for name, config in configs.items()]
    records = {task.name: {"name": task.name, **grid_point(task.config), "status": "pending",
                           "run_dir": task.run_dir} for task in tasks}
    manifest = {"grid": grid.to_dict(), "settings": settings, "runs": len(tasks),
                "iwae": None if iwae is None else vars(iwae), "cluster": cluster,
                "command": sweep_command(grid, out, settings, iwae, cluster), "versions": versions(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.makedirs(out, exist_ok=True)
    shape = " x ".join(f"{len(v)} {AXIS_PLURALS[axis]}" for axis, v in grid.axes().items() if len(v) > 1)
    log(f"npvae sweep: {len(tasks)} runs{f' ({shape})' if shape else ''} on --cluster {cluster} -> {out}")

    started = time.perf_counter()
    bar = tqdm(total=len(tasks), desc="runs", unit="run", disable=not progress, dynamic_ncols=True)

    def finish(task, record):
        records[task.name] = record
        write_progress(out, manifest, list(records.values()))
        bar.update(1)
        with tqdm.external_write_mode():
            log(run_line(record))

    try:
        write_progress(out, manifest, list(records.values()))
        to_dispatch = []
        for task in tasks:      # finished runs are only read: no worker needed for them
            if needs_worker(task):
                to_dispatch.append(task)
            else:
                finish(task, run_task(task))
        if to_dispatch:
            with contextlib.closing(run_tasks(seed_major(to_dispatch, grid.seeds), cluster, local_workers)) as finished:
                for task, record in finished:
                    finish(task, record)
    finally:
        bar.close()
    records = list(records.values())
    rows = aggregate(records)
    log(write_summary(out, rows))
    failed = sum(r["status"] == "failed" for r in records)
    log(f"npvae sweep: {len(records) - failed} runs finished, {failed} failed, in "
        f"{time.perf_counter() - started:.0f} s; {os.path.join(out, 'results.csv')}, summary.csv, "
        f"summary.txt, rate_distortion.png, log_likelihood.png")
    return records, rows


def seed_major(tasks, seeds):
    """``tasks`` reordered seed by seed, in the order of ``seeds``, keeping the grid order within
    a seed (the scheduler starts tasks roughly in the order they were submitted)."""
    return sorted(tasks, key=lambda task: seeds.index(task.config.seed))


def run_line(record):
    """One line about a finished task, for the log."""
    if record["status"] == "failed":
        return f"  {record['name']}: FAILED: {record['message']}"
    iwae = (f", log p(x) ~ IWAE-{record['iwae_k']} {record['test_log_px']:.2f}"
            if record.get("iwae_k") is not None else "")
    epochs = f"{record['epochs']} epoch{'s' if record['epochs'] != 1 else ''}"
    return (f"  {record['name']}: {record['action']} ({epochs}), test recon "
            f"{record['test_recon']:.2f}, KL {record['test_kl']:.2f}{iwae} [{record['seconds']:.1f} s]")

