"""Gaussian reconstruction loss: the alternative decoder likelihood of the paper's section 6.2.

p(x | z) = prod_p N(x_p; m_p, sigma_p^2), with the decoder mean m = sigmoid(logits).

The mean is the sigmoid of the decoder's output, not the raw output: it keeps the mean in
the data's range [0, 1], leaves the architecture of Table 2 untouched (the same logits
feed a Bernoulli or a Gaussian decoder) and makes ``model.decode`` return the mean image
under either likelihood. The price is that the gradient passes through the sigmoid.

Per image, summed over the P pixels, in nats (a proper log-density, constant included):

    NLL = sum_p [ 1/2 log(2 pi) + 1/2 s_p + 1/2 (x_p - m_p)^2 exp(-s_p) ],   s = log sigma^2

Hand-written gradients:

    d NLL / d m_p      = (m_p - x_p) exp(-s_p)
    d NLL / d logit_p  = (m_p - x_p) exp(-s_p) * m_p (1 - m_p)       (dm/dlogit = m (1 - m))
    d NLL / d s_p      = 1/2 - 1/2 (x_p - m_p)^2 exp(-s_p)

The variance is either fixed (a constant sigma^2) or learned: one log-variance per pixel,
a trainable Parameter shared by all images, whose gradient is the batch mean of d NLL / d s.
A learned log-variance is clamped to [PIXEL_LOGVAR_MIN, PIXEL_LOGVAR_MAX] = [log 1e-3, log 10]: on
MNIST many pixels are exactly 0 in every image, and without a floor their variance would
shrink towards 0 and the density grow without bound. Where the clamp is active the loss does
not depend on the parameter and its gradient is 0 (the convention of ``clamp_logvar``).

Convention as for the Bernoulli loss: summed over pixels, averaged over the batch, in nats.
The Gaussian NLL is a density of continuous pixels, so its values (which can be negative)
are not comparable with the Bernoulli's probabilities of binary ones.
"""
import math

import numpy as np

from ..nn import sigmoid
from .reduction import batch_divisor

LOG_2PI = math.log(2 * math.pi)
PIXEL_LOGVAR_MIN, PIXEL_LOGVAR_MAX = math.log(1e-3), math.log(10.0)


def clamp_pixel_logvar(logvar):
    """Clamped per-pixel log-variance and the mask where the clamp is inactive."""
    logvar = np.asarray(logvar)
    return np.clip(logvar, PIXEL_LOGVAR_MIN, PIXEL_LOGVAR_MAX), (logvar >= PIXEL_LOGVAR_MIN) & (logvar <= PIXEL_LOGVAR_MAX)


def _rows(array, n):
    return np.ascontiguousarray(array).reshape(n, -1)


def gaussian_nll(mean, target, logvar):
    """-log N(target; mean, exp(logvar)) per image, (N,) in float64, summed over pixels.

    ``mean`` and ``target`` are (N, ...); ``logvar`` is a scalar or broadcasts against one
    image (e.g. (1, 28, 28)) or the whole batch. ``logvar`` is used as given (not clamped).
    """
    mean = np.asarray(mean)
    if mean.shape != np.shape(target) or mean.ndim < 2:
        raise ValueError(f"gaussian_nll: mean and target must share one (N, ...) shape, "
                         f"got {mean.shape} and {np.shape(target)}")
    n = mean.shape[0]
    logvar = np.asarray(logvar, dtype=np.float64)
    diff = mean.astype(np.float64) - target
    terms = 0.5 * (LOG_2PI + logvar + diff * diff * np.exp(-logvar))
    return _rows(np.broadcast_to(terms, mean.shape), n).sum(axis=1)


class GaussianLoss:
    """Mean over the batch of the per-image Gaussian NLL, from logits (mean = sigmoid(logits)).

    ``GaussianLoss(logvar)``: ``logvar`` is a float (fixed variance, log sigma^2) or a
    :class:`~npvae.nn.Parameter` of one image's shape (learned per-pixel log-variance).

    forward(logits, target, batch_size=None) -> float;  backward(grad=1.0) -> dlogits (same
    shape as logits). Like a layer's backward, ``backward`` also adds d loss / d logvar into the
    Parameter's ``grad`` when the variance is learned. ``per_image`` holds the last forward's
    (N,) NLLs. ``batch_size``: see npvae.losses.reduction.
    """

    def __init__(self, logvar=0.0):
        self.logvar = logvar
        self.per_image = None
        self._cache = None

    @property
    def learned(self):
        return hasattr(self.logvar, "data")

    def current_logvar(self):
        """The log-variance in use: the clamped Parameter, or the fixed float."""
        if self.learned:
            return clamp_pixel_logvar(self.logvar.data)[0]
        return float(self.logvar)

    def forward(self, logits, target, batch_size=None):
        if logits.shape != target.shape or logits.ndim < 2:
            raise ValueError(f"GaussianLoss: logits and target must share one (N, ...) shape, "
                             f"got {logits.shape} and {target.shape}")
        divisor = batch_divisor(batch_size, logits.shape[0], "GaussianLoss")
        if self.learned:
            if self.logvar.data.shape != logits.shape[1:]:
                raise ValueError(f"GaussianLoss: the learned log-variance has shape "
                                 f"{self.logvar.data.shape}, one image {logits.shape[1:]}")
            logvar, inside = clamp_pixel_logvar(self.logvar.data)
        else:
            logvar, inside = np.float64(self.logvar), None
        mean = sigmoid(logits)
        precision = np.exp(-logvar).astype(logits.dtype)
        diff = mean - target.astype(logits.dtype, copy=False)
        self.per_image = gaussian_nll(mean, target, logvar)
        self._cache = (mean, diff, precision, inside, logits.shape, divisor)
        return float(self.per_image.mean()) if batch_size is None else float(self.per_image.sum() / divisor)

    def backward(self, grad=1.0):
        if self._cache is None:
            raise RuntimeError("GaussianLoss: backward() called before forward()")
        mean, diff, precision, inside, shape, divisor = self._cache
        n = shape[0]
        scale = mean.dtype.type(grad / divisor)
        weighted = diff * precision                                   # dNLL/dm
        grad_logits = weighted * mean * (1 - mean) * scale            # through the sigmoid
        if self.learned:
            # dNLL/ds = 1/2 - 1/2 (x - m)^2 exp(-s), summed over images, / N (the batch mean)
            grad_s = 0.5 * n - 0.5 * np.sum(diff * weighted, axis=0, dtype=np.float64)
            grad_s = np.where(inside, grad_s * (grad / divisor), 0.0)
            self.logvar.grad += grad_s.astype(self.logvar.grad.dtype)
        return grad_logits.astype(mean.dtype, copy=False)
