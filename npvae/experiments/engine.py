"""Where a sweep's tasks run: on a Dask cluster (npvae.runtime.cluster) or in this process,
with Numba's on-disk cache compiled once, here, before any task is dispatched.

Why warm the cache in the driver rather than give each worker a cache directory of its own:
npvae's kernels are compiled with ``cache=True``, and several processes compiling the same
function into the same cache at once is known to crash Numba (a half-written index is read by
another process). Compiling every kernel a task uses in the driver, before the first task is
sent, leaves the workers only reading a complete cache: no worker compiles anything, so a
local cluster's workers start their first run at once instead of each spending seconds
compiling. Per-worker directories would also avoid the race, but every worker would compile
everything again, each time a worker is (re)started, and on a cluster a directory per worker
needs an environment variable set before the worker starts. Warming covers workers that
share the driver's cache: the same machine, or the same installation on a shared filesystem
with the same CPU type. On a cluster of mixed CPUs (Numba's cache is specific to the CPU),
set NUMBA_CACHE_DIR to a directory on each node's local disk in the workers' environment
(the README shows where).
"""
import numpy as np

from ..evaluation import evaluate_elbo, evaluate_iwae
from ..models import build_model
from ..optim import Adam
from ..runtime import DataParallel, blas_threads
from ..runtime.cluster import map_unordered, open_cluster
from ..training import train_epoch
from .tasks import run_task


def model_kinds(configs):
    """The distinct model configurations (kind, likelihood, variance) of some TrainConfigs,
    each at the smallest latent size: the kernels' compiled types do not depend on sizes."""
    kinds = {}
    for config in configs:
        kind = {**config.model_config(), "latent_dim": 2}
        kinds[repr(sorted(kind.items()))] = kind
    return list(kinds.values())


def warm_numba_cache(configs, iwae=True):
    """Run every compiled kernel a sweep's tasks will run, on a few random images: one training
    epoch of two steps (forward, loss, backward, Adam) through a one-worker DataParallel, the
    test ELBO and, with ``iwae``, an IWAE-2 estimate, for each model kind in ``configs``."""
    rng = np.random.default_rng(0)
    images = (rng.random((8, 28, 28)) < 0.3).astype(np.uint8) * 255
    labels = rng.integers(0, 10, 8).astype(np.int64)
    with blas_threads(1):
        for kind in model_kinds(configs):
            model = build_model(kind, rng=0)
            with DataParallel(model, 1) as parallel:
                train_epoch(model, Adam(model.parameters()), images, labels, 4, lambda batch: 1.0,
                            np.random.default_rng(1), np.random.default_rng(2), parallel=parallel)
                evaluate_elbo(model, images, labels, np.random.default_rng(3), parallel=parallel)
            if iwae:
                evaluate_iwae(model, images[:2], labels[:2], 2, 0, 4, progress=False, workers=1)


def run_tasks(tasks, cluster="none", local_workers=None):
    """Yield (task, record) as each :class:`~npvae.experiments.tasks.RunTask` finishes, run by
    :func:`~npvae.experiments.tasks.run_task` on ``cluster`` (see npvae.runtime.cluster)."""
    tasks = list(tasks)
    with open_cluster(cluster, local_workers) as client:
        if client is not None:
            warm_numba_cache([task.config for task in tasks],
                             iwae=any(task.iwae is not None for task in tasks))
        for index, record in map_unordered(run_task, tasks, client, [task.name for task in tasks]):
            yield tasks[index], record
