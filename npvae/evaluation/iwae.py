"""Test log-likelihood log p(x) by importance weighting (IWAE).

Importance weighting (Burda, Grosse and Salakhutdinov, 2016). With z_1..z_K ~ q(z|x),

    log p(x) ~ IWAE_K = log (1/K) sum_k w_k,    w_k = p(x | z_k) p(z_k) / q(z_k | x),

a lower bound in expectation that is the ELBO for K = 1, does not decrease with K and
tends to log p(x) as K grows; when q is the exact posterior every w_k equals p(x) and the
estimate is exact for any K. The log-weights are formed in float64 and combined with a
streaming log-sum-exp, so K can be large and nothing underflows.

:func:`iwae_log_likelihood` is generic (it takes a sampler and a log-joint callable);
:func:`model_iwae` and :func:`evaluate_iwae` apply it to the conv VAE/CVAE efficiently:
each chunk of images is encoded once, then its z's are decoded ``batch_size`` at a time
(e.g. 1000 z's per decoder call, one or several images' worth), so the decoder runs
through the same im2col/GEMM path as in training.

Sharding changes no number. Each image draws its z's from its own random stream, seeded
by the evaluation's seed and the image's index in the test set, and :func:`evaluate_iwae`
computes fixed blocks of images, each on one thread with one BLAS thread (a float32 GEMM's
rounding depends on its shape, so the blocks, not the thread count, fix the arithmetic).
The per-image values are then the same with one thread, two, or the test set split over
the machines of a cluster (npvae.evaluation.sharded).

All values are natural-log densities per image (nats), the sign convention of a
log-likelihood: higher is better, and log p(x) = -(recon + KL) for the ELBO.
"""
import math
import queue
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..data import to_float
from ..runtime import blas_threads, default_workers
from ..runtime.parallel import replicate
from ..nn.reparameterize import clamp_logvar

LOG_2PI = math.log(2 * math.pi)
IWAE_STREAMS = "per-image"    # filed with each estimate: how its draws were seeded (image_streams)


# -- numerics ---------------------------------------------------------------------
def log_mean_exp(a, axis=-1):
    """log mean exp(a) along ``axis``, in float64, without overflow or underflow."""
    a = np.asarray(a, dtype=np.float64)
    peak = np.max(a, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    out = np.log(np.mean(np.exp(a - peak), axis=axis, keepdims=True)) + peak
    return np.squeeze(out, axis=axis)


def log_standard_normal(z):
    """log N(z; 0, I) summed over the last axis, float64."""
    z = np.asarray(z, dtype=np.float64)
    return -0.5 * np.sum(z * z + LOG_2PI, axis=-1)


def standard_error(values):
    """std / sqrt(n) of a 1-D sample (0 for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    return float(np.std(values, ddof=1) / math.sqrt(values.size)) if values.size > 1 else 0.0


class _LogMeanExp:
    """Running log-mean-exp over the columns of successive (N, k) blocks."""

    def __init__(self, n):
        self.peak = np.full(n, -np.inf)
        self.total = np.zeros(n)          # sum exp(a - peak)
        self.squares = np.zeros(n)        # sum exp(2 (a - peak))
        self.sum = np.zeros(n)
        self.count = 0

    def add(self, block):
        block = np.asarray(block, dtype=np.float64)
        new_peak = np.maximum(self.peak, block.max(axis=1))
        safe = np.where(np.isfinite(new_peak), new_peak, 0.0)
        rescale = np.exp(self.peak - safe)
        scaled = np.exp(block - safe[:, None])
        self.total = self.total * rescale + scaled.sum(axis=1)
        self.squares = self.squares * rescale ** 2 + (scaled ** 2).sum(axis=1)
        self.peak = new_peak
        self.sum += block.sum(axis=1)
        self.count += block.shape[1]

    def log_mean(self):
        safe = np.where(np.isfinite(self.peak), self.peak, 0.0)
        with np.errstate(divide="ignore"):
            return np.log(self.total) + safe - math.log(self.count)

    def mean(self):
        return self.sum / self.count

    def effective_sample_size(self):
        """(sum w)^2 / sum w^2: K for equal weights, 1 when one weight dominates."""
        return self.total ** 2 / self.squares


# -- the importance-weighted estimate ---------------------------------------------
@dataclass
class IWAEEstimate:
    """Per-item results: ``log_px`` = IWAE_K, ``elbo`` = mean_k log w_k (a K-sample ELBO), and
    the importance weights' effective sample size ``ess`` = (sum w)^2 / sum w^2, between 1
    and K: a small one means a few draws dominate and the estimate is noisy (q is far from
    the posterior)."""
    log_px: np.ndarray
    elbo: np.ndarray
    num_samples: int
    ess: np.ndarray = None


def iwae_log_likelihood(sample, log_joint, num_samples, rng=None, samples_per_call=1000):
    """IWAE_K = log mean_k p(x, z_k) / q(z_k | x) for N items at once, z_k ~ q(z | x).

    ``sample(k, rng) -> (z, log_q)``: k draws per item, z of shape (N, k, ...) and
    log_q = log q(z | x) of shape (N, k). ``log_joint(z) -> (N, k)``: log p(x, z) for the
    same z. Draws ``num_samples`` per item, ``samples_per_call`` at a time (the memory
    bound), and returns an :class:`IWAEEstimate` with (N,) float64 arrays.
    """
    if num_samples < 1 or samples_per_call < 1:
        raise ValueError(f"need num_samples >= 1 and samples_per_call >= 1, "
                         f"got {num_samples} and {samples_per_call}")
    rng = np.random.default_rng(rng)
    accumulator = None
    remaining = int(num_samples)
    while remaining > 0:
        k = min(remaining, int(samples_per_call))
        z, log_q = sample(k, rng)
        log_w = np.asarray(log_joint(z), dtype=np.float64) - np.asarray(log_q, dtype=np.float64)
        if log_w.ndim != 2 or log_w.shape[1] != k:
            raise ValueError(f"iwae_log_likelihood: log weights must be (N, {k}), got {log_w.shape}")
        if accumulator is None:
            accumulator = _LogMeanExp(log_w.shape[0])
        accumulator.add(log_w)
        remaining -= k
    return IWAEEstimate(accumulator.log_mean(), accumulator.mean(), int(num_samples),
                        accumulator.effective_sample_size())


def posterior(model, x, labels):
    """Encode once: float64 mu, clamped logvar and sigma of q(z|x)."""
    mu, logvar = model.encode(x, labels)
    logvar = clamp_logvar(logvar.astype(np.float64))[0]
    return mu.astype(np.float64), logvar, np.exp(0.5 * logvar)


def iwae_seed(rng):
    """The words (a tuple of non-negative ints) the per-image streams are seeded from: ``rng``
    as an int or a tuple of ints, one number drawn from it if it is a Generator, fresh entropy
    for None. Raises ValueError for anything else."""
    if rng is None:
        return (np.random.SeedSequence().entropy,)
    if isinstance(rng, np.random.Generator):
        return (int(rng.integers(2 ** 63)),)
    words = tuple(rng) if isinstance(rng, (tuple, list)) else (rng,)
    if not words or not all(isinstance(w, (int, np.integer)) and w >= 0 for w in words):
        raise ValueError(f"the IWAE seed must be a non-negative integer, a tuple of them or a "
                         f"numpy Generator; got {rng!r}")
    return tuple(int(w) for w in words)


def image_streams(seed, first_index, count):
    """One Generator per image: image ``first_index + i`` draws from
    ``default_rng([*seed, first_index + i])`` (``seed`` as :func:`iwae_seed` returns it). An
    image's draws then depend only on the seed and its own index, never on which other images
    share its block, shard or machine."""
    return [np.random.default_rng([*seed, first_index + i]) for i in range(count)]


def model_iwae(model, x, labels, num_samples, rng=None, batch_size=1000, on_decode=None, parallel=None):
    """IWAE_K for a chunk of float images x (m, 1, 28, 28) under a VAE/CVAE (true labels).

    The chunk is encoded once; its m * K latent draws are decoded about ``batch_size`` per
    decoder call (K per image per call if m * K fits, otherwise batch_size // m).
    ``rng`` is one Generator (or seed) shared by the chunk, or a list of m Generators, one
    per image (see :func:`image_streams`). ``on_decode(count)`` is called after each decoder
    call (for a progress bar). The decoder calls go through ``parallel`` (a DataParallel
    around ``model``) when given.
    """
    decode_logits = model.decode_logits if parallel is None else parallel.decode_logits
    m, d = x.shape[0], model.latent_dim
    streams = rng if isinstance(rng, (list, tuple)) else None
    if streams is not None and len(streams) != m:
        raise ValueError(f"model_iwae: {len(streams)} random streams for {m} images")
    mu, logvar, sigma = posterior(model, x, labels)
    labels = None if labels is None else np.asarray(labels)
    repeated = {}

    def targets(k):
        if k not in repeated:
            repeated.clear()
            repeated[k] = (np.repeat(x, k, axis=0),
                           None if labels is None else np.repeat(labels, k))
        return repeated[k]

    def sample(k, shared_rng):
        if streams is None:
            eps = shared_rng.standard_normal((m, k, d))
        else:
            eps = np.stack([stream.standard_normal((k, d)) for stream in streams])
        # The density of q is taken at the point the decoder actually sees (rounded to its dtype).
        z = (mu[:, None] + sigma[:, None] * eps).astype(model.dtype).astype(np.float64)
        u = (z - mu[:, None]) / sigma[:, None]
        log_q = -0.5 * np.sum(u * u + logvar[:, None] + LOG_2PI, axis=-1)
        return z, log_q

    def log_joint(z):
        k = z.shape[1]
        x_rep, labels_rep = targets(k)
        logits = decode_logits(z.reshape(m * k, d).astype(model.dtype), labels_rep)
        log_px_z = model.log_likelihood(logits, x_rep).reshape(m, k)
        if on_decode is not None:
            on_decode(m * k)
        return log_px_z + log_standard_normal(z)

    per_call = max(1, int(batch_size) // m)
    return iwae_log_likelihood(sample, log_joint, num_samples, None if streams else rng,
                               samples_per_call=per_call)


def images_per_block(num_samples, batch_size):
    """Images evaluated together (encoded at once, decoded ``batch_size`` z's a call)."""
    return max(1, int(batch_size) // int(num_samples))


def iwae_block(model, images, labels, num_samples, seed, batch_size, first_index, on_decode=None):
    """IWAE_K of one block of uint8 ``images`` (image ``first_index + i`` on its own stream,
    ``seed`` from :func:`iwae_seed`): -> (log_px, elbo, ess), each (n,). Runs on the calling
    thread."""
    x = to_float(images, model.dtype)
    estimate = model_iwae(model, x, labels, num_samples,
                          image_streams(seed, first_index, len(images)), batch_size, on_decode)
    return estimate.log_px, estimate.elbo, estimate.ess


def evaluate_iwae(model, images, labels, num_samples, rng=None, batch_size=1000, progress=True,
                  workers=None, first_index=0):
    """IWAE_K over uint8 ``images`` (with their true labels for a CVAE).

    Image i draws its z's from its own stream (:func:`image_streams`), seeded by ``rng`` (an
    int or a tuple of ints; a Generator gives one seed drawn from it) and ``first_index + i``.
    Images are evaluated in blocks of :func:`images_per_block` counted from the first, each
    block on one thread with one BLAS thread, ``workers`` blocks at a time (default: one per
    core). A block's numbers therefore do not depend on the worker count, and evaluating
    images[a:b] with ``first_index=a`` (a multiple of the block size) gives exactly the same
    per-image values as evaluating all images: that is how npvae.evaluation.sharded splits the
    test set over a cluster.

    Returns a dict (:func:`iwae_summary`): per-image ``log_px``, ``elbo`` and ``ess`` arrays,
    the means and standard errors of the first two, the median and smallest ESS, ``seconds``
    and ``samples_per_s`` (decoded z's per second).
    """
    seed = iwae_seed(rng)
    n = len(images)
    workers = default_workers() if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    per_block = images_per_block(num_samples, batch_size)
    blocks = [slice(start, min(start + per_block, n)) for start in range(0, n, per_block)]
    log_px, elbo, ess = np.empty(n), np.empty(n), np.empty(n)
    replicas = queue.SimpleQueue()
    for replica in [model] + [replicate(model) for _ in range(min(workers, len(blocks)) - 1)]:
        replicas.put(replica)

    def run_block(block):
        replica = replicas.get()
        try:
            return iwae_block(replica, images[block], None if labels is None else labels[block],
                              num_samples, seed, batch_size, first_index + block.start)
        finally:
            replicas.put(replica)

    bar = tqdm(total=n, desc=f"IWAE-{num_samples}", unit="img", disable=not progress,
               dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    try:
        with blas_threads(1), ThreadPoolExecutor(max(1, min(workers, len(blocks)))) as pool:
            futures = {pool.submit(run_block, block): block for block in blocks}
            for future in as_completed(futures):
                block = futures[future]
                log_px[block], elbo[block], ess[block] = future.result()
                bar.update(block.stop - block.start)
    finally:
        bar.close()
    return iwae_summary(num_samples, log_px, elbo, ess, time.perf_counter() - started)


def iwae_summary(num_samples, log_px, elbo, ess, seconds):
    """The result dict of :func:`evaluate_iwae` from per-image arrays."""
    n = len(log_px)
    return {"k": int(num_samples), "images": n, "log_px": log_px, "elbo": elbo, "ess": ess,
            "mean": float(log_px.mean()), "se": standard_error(log_px),
            "elbo_mean": float(elbo.mean()), "elbo_se": standard_error(elbo),
            "ess_median": float(np.median(ess)), "ess_min": float(ess.min()),
            "seconds": seconds, "samples_per_s": n * int(num_samples) / seconds if seconds > 0 else math.inf}
