"""IWAE over a Dask cluster: the test set split into shards, each evaluated by a worker.

An IWAE-5000 evaluation of the 10,000 test images takes about 42 minutes on one 2-core
machine; split over a cluster's workers it takes that time divided by their number. The
result is exactly the one :func:`npvae.evaluation.iwae.evaluate_iwae` gives in one process:
each image draws from its own random stream and the images are computed in the same fixed
blocks, so a shard boundary (always at a block boundary) changes no number.
"""
import time

import numpy as np
from tqdm import tqdm

from ..models import build_model
from ..runtime import blas_threads, shard_slices
from ..runtime.cluster import map_unordered, open_cluster
from .iwae import evaluate_iwae, images_per_block, iwae_seed, iwae_summary

SHARDS_PER_WORKER = 4      # more shards than workers, so a slow worker holds up little


def _evaluate_shard(shard):
    """On a worker: IWAE of one shard, on one thread -> (start, log_px, elbo, ess)."""
    model_config, state, images, labels, num_samples, seed, batch_size, start = shard
    model = build_model(model_config)
    model.load_state_dict(state)
    with blas_threads(1):
        estimate = evaluate_iwae(model, images, labels, num_samples, seed, batch_size, progress=False,
                                 workers=1, first_index=start)
    return start, estimate["log_px"], estimate["elbo"], estimate["ess"]


def shard_bounds(n, num_samples, batch_size, shards):
    """Split range(n) into at most ``shards`` contiguous slices that begin and end on block
    boundaries (multiples of the IWAE block size)."""
    per_block = images_per_block(num_samples, batch_size)
    blocks = -(-n // per_block)
    return [slice(b.start * per_block, min(b.stop * per_block, n)) for b in shard_slices(blocks, shards)]


def sharded_iwae(model, images, labels, num_samples, rng=None, batch_size=1000, client=None,
                 shards=None, progress=True):
    """:func:`~npvae.evaluation.iwae.evaluate_iwae`, its shards run on ``client``'s workers
    (None: in this process, one shard after another). ``shards`` defaults to four per worker.
    Returns the same dict, with per-image values identical to evaluate_iwae's."""
    n = len(images)
    seed = iwae_seed(rng)          # fixed here, so that every shard uses the same one
    if shards is None:
        workers = 1 if client is None else max(1, len(client.scheduler_info()["workers"]))
        shards = SHARDS_PER_WORKER * workers
    # Compile the inference kernels here first, so the workers only read Numba's cache
    # (see npvae.experiments.engine for why concurrent compiling is avoided).
    evaluate_iwae(model, images[:1], None if labels is None else labels[:1], 2, 0, 2,
                  progress=False, workers=1)
    config, state = model.config(), model.state_dict()
    work = [(config, state, images[s], None if labels is None else labels[s], num_samples, seed,
             batch_size, s.start) for s in shard_bounds(n, num_samples, batch_size, shards)]
    log_px, elbo, ess = np.empty(n), np.empty(n), np.empty(n)
    bar = tqdm(total=n, desc=f"IWAE-{num_samples} ({len(work)} shards)", unit="img",
               disable=not progress, dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    try:
        for _, (start, shard_log_px, shard_elbo, shard_ess) in map_unordered(
                _evaluate_shard, work, client, [f"iwae-shard{w[-1]}" for w in work]):
            stop = start + len(shard_log_px)
            log_px[start:stop], elbo[start:stop], ess[start:stop] = shard_log_px, shard_elbo, shard_ess
            bar.update(stop - start)
    finally:
        bar.close()
    return iwae_summary(num_samples, log_px, elbo, ess, time.perf_counter() - started)


def cluster_iwae(model, images, labels, num_samples, rng=None, batch_size=1000, cluster="local",
                 progress=True):
    """:func:`sharded_iwae` on ``cluster`` ('local', a scheduler address, or 'none'; see
    npvae.runtime.cluster), opened for this evaluation and closed after it."""
    with open_cluster(cluster) as client:
        return sharded_iwae(model, images, labels, num_samples, rng, batch_size, client,
                            progress=progress)
