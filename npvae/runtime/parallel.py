"""Data parallelism on the CPU: every core runs the whole network on its share of a batch.

Why not parallelize inside each layer instead? Then the cores take turns: a threaded
GEMM, a threaded im2col, a single-threaded bias add or ReLU, and between them one core
idles for a moment. Measured on the 2-core machine this project was built on, a core that
has idled for even a millisecond comes back up to 2.5x slower for the next few
milliseconds, and a training step of the paper's VAE took 49 ms. With one replica per
core, each working through its half of the batch on one thread, no core waits for the
other until the step ends, each core's caches hold only its own half, and the same step
took 39 ms (and 34 ms once the convolutions worked in cache-sized chunks; see the README's
performance section and ``benchmarks/bench_train.py``).

A replica shares the model's parameter arrays, so the optimizer's in-place update (and
``load_state_dict``, which copies into the arrays) reaches every replica; should the
model's arrays be replaced (``model.to(dtype)``), the next call notices and rebuilds the
replicas. Each replica has its own gradients and its own forward caches. The model itself
is replica 0; the others' gradients are added into it in a fixed order, so a run is
deterministic for a given number of workers. (Different worker counts sum the batch's
gradient in a different order and agree only to rounding.)
"""
import copy
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .blas import blas_threads, can_set_blas_threads


def available_cores():
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def default_workers():
    """One worker per core, or 1 where the BLAS thread count cannot be set (see npvae/runtime/blas.py)."""
    return available_cores() if can_set_blas_threads() else 1


def replicate(model):
    """A copy of ``model`` sharing its parameter arrays, with its own gradients and caches."""
    shared = {id(p.data): p.data for p in model.parameters()}
    replica = copy.deepcopy(model, memo=shared)    # the memo makes deepcopy reuse these arrays
    for parameter in replica.parameters():
        parameter.grad = np.zeros_like(parameter.data)
    return replica


def shard_slices(n, shards):
    """Split range(n) into at most ``shards`` contiguous, nearly equal slices."""
    bounds = np.linspace(0, n, min(shards, n) + 1).round().astype(int)
    return [slice(start, stop) for start, stop in zip(bounds[:-1], bounds[1:])]


def _take(labels, index):
    return None if labels is None else labels[index]


class DataParallel:
    """Runs a VAE or CVAE's forward and backward on ``workers`` shards of each batch at once.

    Same calls and results as the model's own (to rounding): ``forward(x, eps, labels)``
    -> (logits, mu, logvar), ``backward(grad_logits, grad_mu, grad_logvar)`` adds the whole
    batch's gradients into the model's parameters, ``loss_and_backward`` does both with the
    loss in between (training's path: one round trip per step), ``encode`` and
    ``decode_logits`` for inference. Use it as a context manager, or call ``close()``, to stop its threads.
    """

    def __init__(self, model, workers=None):
        self.module = model
        self.workers = default_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"DataParallel: workers must be at least 1, got {workers}")
        self.replicas = [model] + [replicate(model) for _ in range(self.workers - 1)]
        self._pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self._slices = None

    def _sync_replicas(self):
        """Rebuild the replicas if the model's parameter arrays are no longer theirs.

        ``model.to(dtype)`` (or any code assigning ``Parameter.data``) gives the model new
        arrays; replicas still holding the old ones would compute with stale weights. One
        identity check per parameter and call (microseconds) makes that impossible."""
        params = [p.data for p in self.module.parameters()]
        for replica in self.replicas[1:]:
            theirs = replica.parameters()
            if len(theirs) != len(params) or any(q.data is not p or q.grad.dtype != p.dtype
                                                 for q, p in zip(theirs, params)):
                self.replicas = [self.module] + [replicate(self.module)
                                                 for _ in range(self.workers - 1)]
                return

    def close(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _run(self, work, slices):
        """``work(replica, index)`` for every shard, in parallel; the results in shard order."""
        if len(slices) == 1:
            return [work(self.module, slices[0])]
        if self._pool is None:
            raise RuntimeError("DataParallel: used after close()")
        with blas_threads(1):
            futures = [self._pool.submit(work, replica, index)
                       for replica, index in zip(self.replicas, slices)]
            return [future.result() for future in futures]

    def forward(self, x, eps, labels=None):
        """x (N, 1, 28, 28), eps (N, latent_dim) -> (logits, mu, logvar), as ``model.forward``."""
        self._sync_replicas()
        self._slices = shard_slices(len(x), self.workers)
        outputs = self._run(lambda replica, i: replica.forward(x[i], eps[i], _take(labels, i)),
                            self._slices)
        return tuple(np.concatenate(parts) for parts in zip(*outputs))

    def backward(self, grad_logits, grad_mu, grad_logvar):
        """Backpropagate each shard through its replica; add all gradients into the model's."""
        if self._slices is None:
            raise RuntimeError("DataParallel.backward called before forward")
        slices, self._slices = self._slices, None
        helpers = self.replicas[1:len(slices)]
        for replica in helpers:
            replica.zero_grad()
        self._run(lambda replica, i: replica.backward(grad_logits[i], grad_mu[i], grad_logvar[i]),
                  slices)
        self._add_helper_gradients(helpers)

    def loss_and_backward(self, x, eps, labels=None, beta=1.0):
        """``model.loss_and_backward`` on every shard at once: forward, loss and backward of a
        shard run on its core in one go, so no core idles while another computes the loss.

        Each shard's loss divides by the whole batch's size, so the gradients added into the
        model's parameters equal, bit for bit, those of ``forward``, the loss on the joined
        outputs, then ``backward``. Returns the per-image reconstruction and KL terms of the
        whole batch, (N,) float64 each, in batch order.
        """
        self._sync_replicas()
        slices = shard_slices(len(x), self.workers)
        helpers = self.replicas[1:len(slices)]
        for replica in helpers:
            replica.zero_grad()
        parts = self._run(lambda replica, i: replica.loss_and_backward(
            x[i], eps[i], _take(labels, i), beta, batch_size=len(x)), slices)
        self._add_helper_gradients(helpers)
        return tuple(np.concatenate(terms) for terms in zip(*parts))

    def _add_helper_gradients(self, helpers):
        """The helpers' gradients into the model's, in replica order (a deterministic sum)."""
        for replica in helpers:
            for total, part in zip(self.module.parameters(), replica.parameters()):
                total.grad += part.grad

    def encode(self, x, labels=None):
        """x (N, 1, 28, 28) -> (mu, logvar), as ``model.encode``."""
        self._sync_replicas()
        outputs = self._run(lambda replica, i: replica.encode(x[i], _take(labels, i)),
                            shard_slices(len(x), self.workers))
        return tuple(np.concatenate(parts) for parts in zip(*outputs))

    def decode_logits(self, z, labels=None):
        """z (N, latent_dim) -> logits (N, 1, 28, 28), as ``model.decode_logits``."""
        self._sync_replicas()
        outputs = self._run(lambda replica, i: replica.decode_logits(z[i], _take(labels, i)),
                            shard_slices(len(z), self.workers))
        return np.concatenate(outputs)
