"""Bernoulli reconstruction loss: binary cross-entropy summed over pixels (paper eq. 30).

The decoder ends in logits; the sigmoid is fused into the loss, which is both stabler
and simpler to differentiate. For one pixel with logit l and target x in [0, 1]:

    BCE(x, sigmoid(l)) = -x log sigmoid(l) - (1 - x) log(1 - sigmoid(l))
                       = max(l, 0) - l x + log(1 + exp(-|l|))
    d BCE / d l        = sigmoid(l) - x

Convention: summed over the pixels of an image, averaged over the batch, in nats.
"""

import numba
import numpy as np

from .reduction import batch_divisor


# error_model="numpy": a float division by zero gives inf instead of raising, so Numba leaves
# out the per-element zero check that kept these loops scalar (1 + e is never 0 anyway).
# Same IEEE operations in the same order: results are unchanged.
@numba.njit(nogil=True, cache=True, error_model="numpy")
def _bce_kernel(logits, target, exp_neg_abs, log1p_exp_neg_abs, grad_scale, per_image, grad):
    n_images, n_pixels = logits.shape
    one = logits.dtype.type(1)
    scale = logits.dtype.type(grad_scale)
    for n in range(n_images):
        total = 0.0                   # float64: 784 terms of up to ~100 nats each
        for p in range(n_pixels):
            l = logits[n, p]
            x = target[n, p]
            total += max(l, 0) - l * x + log1p_exp_neg_abs[n, p]
        per_image[n] = total
        if grad_scale != 0.0:
            # A loop of its own (the sum above is sequential): this one vectorises.
            for p in range(n_pixels):
                l = logits[n, p]
                e = exp_neg_abs[n, p]
                # sigmoid(l) without overflow, written branch-free: 1/(1+e) or e/(1+e).
                r = one / (one + e)
                prob = r if l >= 0 else e * r
                grad[n, p] = (prob - target[n, p]) * scale


def _bce_with_logits(logits, target, grad_scale, per_image, grad):
    """Fill per_image (N,) with the summed BCE and, unless grad_scale is 0, grad with
    (sigmoid(logits) - target) * grad_scale. The exponentials come from NumPy, whose float32
    exp and log1p are SIMD-vectorised (Numba's scalar calls measured 5x slower)."""
    exp_neg_abs = np.exp(-np.abs(logits))
    _bce_kernel(logits, target, exp_neg_abs, np.log1p(exp_neg_abs), grad_scale, per_image, grad)


def _as_rows(logits, target, caller):
    if logits.shape != target.shape or logits.ndim < 2:
        raise ValueError(f"{caller}: logits and target must share one (N, ...) shape, "
                         f"got {logits.shape} and {target.shape}")
    n = logits.shape[0]
    return (np.ascontiguousarray(logits).reshape(n, -1),
            np.ascontiguousarray(target, dtype=logits.dtype).reshape(n, -1))


def bernoulli_nll(logits, target):
    """-log p(x | z) per image, (N,) in float64: the BCE summed over each image's pixels."""
    logits2, target2 = _as_rows(logits, target, "bernoulli_nll")
    per_image = np.empty(logits2.shape[0], dtype=np.float64)
    _bce_with_logits(logits2, target2, 0.0, per_image, np.empty((1, 1), logits2.dtype))
    return per_image


def bernoulli_nll_reference(logits, target):
    """Plain NumPy :func:`bernoulli_nll`, for the tests."""
    n = logits.shape[0]
    terms = np.maximum(logits, 0) - logits * target + np.log1p(np.exp(-np.abs(logits)))
    return terms.reshape(n, -1).sum(axis=1, dtype=np.float64)


class BernoulliLoss:
    """Mean over the batch of the per-image summed BCE, from logits.

    forward(logits, target, batch_size=None) -> float;  backward(grad=1.0) -> dlogits, same
    shape as logits, equal to (sigmoid(logits) - target) / N. Both come out of one fused Numba
    pass. ``batch_size`` (default: N, this batch's) is what the mean divides by: a shard of a
    larger batch passes the whole batch's size and gets its share of the batch's loss and
    gradient (npvae.runtime.DataParallel).
    """

    def __init__(self):
        self.per_image = None
        self._grad = None            # this forward's gradient, in an array of its own
        self._shape = None
        self._handed_out = False     # has backward() already returned self._grad itself?

    def forward(self, logits, target, batch_size=None):
        logits2, target2 = _as_rows(logits, target, "BernoulliLoss")
        n = batch_divisor(batch_size, logits2.shape[0], "BernoulliLoss")
        self.per_image = np.empty(logits2.shape[0], dtype=np.float64)
        # A new array every forward (not a reused buffer): a gradient returned by backward
        # belongs to the caller and stays valid after later forwards. Allocating 400 kB
        # costs microseconds; the kernel writes every entry.
        self._grad = np.empty_like(logits2)
        _bce_with_logits(logits2, target2, 1.0 / n, self.per_image, self._grad)
        self._shape = logits.shape
        self._handed_out = False
        # The whole batch's mean as before; a shard's share of it otherwise.
        return float(self.per_image.mean()) if batch_size is None else float(self.per_image.sum() / n)

    def backward(self, grad=1.0):
        """The caller owns the returned array: no later call of this loss writes to it."""
        if self._grad is None:
            raise RuntimeError("BernoulliLoss: backward() called before forward()")
        out = self._grad.reshape(self._shape)
        if grad != 1.0:
            return out * out.dtype.type(grad)
        if self._handed_out:         # a second backward() of the same forward: a copy, so
            return out.copy()        # the first result stays the caller's alone
        self._handed_out = True
        return out
