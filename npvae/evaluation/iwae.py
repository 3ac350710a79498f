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

All values are natural-log densities per image (nats), the sign convention of a
log-likelihood: higher is better, and log p(x) = -(recon + KL) for the ELBO.
"""
import math
import time
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ..data import to_float
from ..runtime import DataParallel
from ..nn.reparameterize import clamp_logvar

LOG_2PI = math.log(2 * math.pi)


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


def model_iwae(model, x, labels, num_samples, rng=None, batch_size=1000, on_decode=None, parallel=None):
    """IWAE_K for a chunk of float images x (m, 1, 28, 28) under a VAE/CVAE (true labels).

    The chunk is encoded once; its m * K latent draws are decoded about ``batch_size`` per
    decoder call (K per image per call if m * K fits, otherwise batch_size // m).
    ``on_decode(count)`` is called after each decoder call (for a progress bar). The
    decoder calls go through ``parallel`` (a DataParallel around ``model``) when given.
    """
    decode_logits = model.decode_logits if parallel is None else parallel.decode_logits
    m, d = x.shape[0], model.latent_dim
    mu, logvar, sigma = posterior(model, x, labels)
    labels = None if labels is None else np.asarray(labels)
    repeated = {}

    def targets(k):
        if k not in repeated:
            repeated.clear()
            repeated[k] = (np.repeat(x, k, axis=0),
                           None if labels is None else np.repeat(labels, k))
        return repeated[k]

    def sample(k, rng):
        eps = rng.standard_normal((m, k, d))
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
    return iwae_log_likelihood(sample, log_joint, num_samples, rng, samples_per_call=per_call)


def evaluate_iwae(model, images, labels, num_samples, rng=None, batch_size=1000, progress=True,
                  workers=None):
    """IWAE_K over uint8 ``images`` (with their true labels for a CVAE).

    Images are taken max(1, batch_size // K) at a time. Returns a dict: per-image
    ``log_px``, ``elbo`` and ``ess`` arrays, the means and standard errors of the first two,
    the median and smallest ESS, ``seconds`` and ``samples_per_s`` (decoded z's per second).
    The decoder runs on ``workers`` threads (default: one per core).
    """
    rng = np.random.default_rng(rng)
    n = len(images)
    per_chunk = max(1, int(batch_size) // int(num_samples))
    log_px, elbo, ess = np.empty(n), np.empty(n), np.empty(n)
    bar = tqdm(total=n * int(num_samples), desc=f"IWAE-{num_samples}", unit="z", unit_scale=True,
               disable=not progress, dynamic_ncols=True, leave=False)
    started = time.perf_counter()
    parallel = DataParallel(model, workers)
    try:
        for start in range(0, n, per_chunk):
            stop = min(start + per_chunk, n)
            x = to_float(images[start:stop], model.dtype)
            estimate = model_iwae(model, x, None if labels is None else labels[start:stop],
                                  num_samples, rng, batch_size, on_decode=bar.update,
                                  parallel=parallel)
            log_px[start:stop], elbo[start:stop] = estimate.log_px, estimate.elbo
            ess[start:stop] = estimate.ess
    finally:
        parallel.close()
        bar.close()
    seconds = time.perf_counter() - started
    return {"k": int(num_samples), "images": n, "log_px": log_px, "elbo": elbo, "ess": ess,
            "mean": float(log_px.mean()), "se": standard_error(log_px),
            "elbo_mean": float(elbo.mean()), "elbo_se": standard_error(elbo),
            "ess_median": float(np.median(ess)), "ess_min": float(ess.min()),
            "seconds": seconds, "samples_per_s": n * int(num_samples) / seconds if seconds > 0 else math.inf}
