"""One task of a sweep: a whole training run into its own directory, then (optionally) IWAE.

:func:`run_task` is what a cluster worker executes. It is safe to run again at any time:
``npvae.training.ensure_trained`` skips a finished run, resumes an interrupted one from its
last checkpoint and starts a missing one, and the IWAE estimate is filed in the run's
evaluation.json and reused from there. So when a worker dies mid-run and the scheduler gives
the task to another worker, or the driver is killed and the same sweep is started again, the
run continues from its last finished epoch. A run trained on one thread with one BLAS
thread is deterministic, so where and how often it was interrupted changes no number.

A run that fails for a reason of its own (its loss diverged) returns a ``failed`` record
with the message, and the sweep goes on; any other error (missing data, a directory holding
another run) stops the sweep.
"""
import os
import time
from dataclasses import dataclass

import numpy as np

from ..data import load_dataset
from ..evaluation import IWAE_STREAMS, evaluate_iwae
from ..runs import RunDirectory, evaluation_key
from ..runtime import blas_threads
from ..training import TrainingDiverged, ensure_trained
from .grid import grid_point

IWAE_FIELDS = ("k", "images", "mean", "se", "elbo_mean", "elbo_se", "ess_median", "ess_min",
               "seconds", "samples_per_s")


@dataclass(frozen=True)
class IWAESettings:
    """IWAE-``k`` on the first ``subset`` test images, ``batch_size`` z's per decoder call."""
    k: int
    subset: int
    batch_size: int = 1000

    def validate(self):
        if self.k < 1 or self.subset < 1 or self.batch_size < 1:
            raise ValueError(f"--iwae-k, --iwae-subset and --iwae-batch-size must be >= 1 "
                             f"(got {self.k}, {self.subset}, {self.batch_size})")
        return self


@dataclass(frozen=True)
class RunTask:
    """Everything a worker needs: the run's name, TrainConfig and directory (on a filesystem
    every worker shares), where the data is (None: $NPVAE_DATA on the worker), the IWAE
    settings (None: no IWAE) and training callbacks (picklable)."""
    name: str
    config: object
    run_dir: str
    data_root: str = None
    iwae: IWAESettings = None
    callbacks: tuple = ()


def run_state(run_dir):
    """('new' | 'partial' | 'finished', epochs already trained) of a run directory."""
    run = RunDirectory(run_dir)
    if not run.exists():
        return "new", 0
    if run.is_finished():
        return "finished", run.read_metrics()[-1]["epoch"]
    if run.has_checkpoint():
        # A run killed between its first checkpoint and its first metrics.csv has no table yet.
        rows = run.read_metrics() if os.path.exists(run.file(run.METRICS)) else []
        return "partial", rows[-1]["epoch"] if rows else 0
    return "new", 0


def run_task(task):
    """Train (or resume, or skip) one run, then estimate its IWAE; returns its record (a dict:
    the grid point, ``status`` finished or failed, what was done, the final metrics)."""
    started = time.perf_counter()
    state, done = run_state(task.run_dir)
    record = {"name": task.name, **grid_point(task.config), "status": "finished",
              "action": {"new": "trained", "partial": "resumed", "finished": "skipped"}[state],
              "started_from_epoch": done, "message": "", "run_dir": task.run_dir}
    with blas_threads(1):
        try:
            rows = ensure_trained(task.config, task.run_dir, task.data_root, progress=False,
                                  log=lambda *args: None, callbacks=task.callbacks)
        except TrainingDiverged as error:
            record.update(status="failed", message=str(error), seconds=time.perf_counter() - started)
            return record
        record.update(final_metrics(rows))
        if task.iwae is not None:
            record.update(iwae_columns(cached_iwae(task.run_dir, task.config, task.iwae, task.data_root)))
    record["seconds"] = time.perf_counter() - started
    return record


def final_metrics(rows):
    """The last epoch's figures; -ELBO = recon + KL (beta = 1), whatever the training beta."""
    last = rows[-1]
    return {"epochs": last["epoch"], "train_recon": last["train_recon"], "train_kl": last["train_kl"],
            "train_neg_elbo": last["train_recon"] + last["train_kl"], "test_recon": last["test_recon"],
            "test_kl": last["test_kl"], "test_neg_elbo": last["test_recon"] + last["test_kl"]}


def iwae_columns(result):
    return {"iwae_k": result["k"], "iwae_images": result["images"], "test_log_px": result["mean"],
            "test_log_px_se": result["se"]}


def test_set_size(dataset, data_root=None):
    """The number of test images of ``dataset`` (read once per process)."""
    if (dataset, data_root) not in _TEST_SIZES:
        _TEST_SIZES[dataset, data_root] = len(load_dataset(dataset, "test", root=data_root)[1])
    return _TEST_SIZES[dataset, data_root]


_TEST_SIZES = {}


def stored_iwae(run_dir, config, settings, test_size):
    """The IWAE estimate ``settings`` asks for if the run's evaluation.json already holds it
    (same K, images, seed and per-image streams), else None; and its key."""
    images = min(settings.subset, test_size)
    key = evaluation_key(f"iwae_{settings.k}", images, test_size)
    stored = RunDirectory(run_dir).read_evaluation().get(key, {})
    found = (stored.get("seed") == config.seed and stored.get("streams") == IWAE_STREAMS
             and stored.get("images") == images)
    return (stored if found else None), key


def cached_iwae(run_dir, config, settings, data_root=None):
    """IWAE-K of the run's model on the first ``settings.subset`` test images, seeded by the
    run's seed, filed in evaluation.json under the key `npvae evaluate` uses (so `npvae evaluate
    RUN --subset N --iwae-k K --seed S` finds the same figure) and reused from there."""
    images, labels = load_dataset(config.dataset, "test", root=data_root)
    stored, key = stored_iwae(run_dir, config, settings, len(images))
    if stored is not None:
        return stored
    images, labels = images[:settings.subset], labels[:settings.subset].astype(np.int64)
    run = RunDirectory(run_dir)
    estimate = evaluate_iwae(run.load_model(), images, labels, settings.k, (config.seed, 1),
                             settings.batch_size, progress=False, workers=1)
    result = {name: estimate[name] for name in IWAE_FIELDS}
    result.update(batch_size=settings.batch_size, seed=config.seed, streams=IWAE_STREAMS)
    run.record_evaluation({key: result})
    return result


def needs_worker(task):
    """False when the task only has to read what is already there (a finished run, and its
    IWAE estimate if one is asked for): the driver does that itself."""
    if run_state(task.run_dir)[0] != "finished":
        return True
    if task.iwae is None:
        return False
    size = test_set_size(task.config.dataset, task.data_root)
    return stored_iwae(task.run_dir, task.config, task.iwae, size)[0] is None
