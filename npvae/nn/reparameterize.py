"""The reparameterisation trick, z = mu + sigma * eps (paper eq. 24), as a layer.

sigma = exp(logvar / 2). Its Jacobians are coded directly (eq. 25-26):
    dz/dmu = I          -> grad_mu = grad_z
    dz/dsigma = diag(eps) -> grad_sigma = grad_z * eps
and dsigma/dlogvar = sigma / 2, so grad_logvar = grad_z * eps * sigma / 2.

Numerical safety: logvar is clamped to [POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX] = [-30, 20] before
exp, so sigma stays in [3e-7, 2.2e4] and nothing overflows in float32. Where the clamp
is active the output does not depend on logvar, so its gradient is masked to zero
there; the KL term (npvae.losses.gaussian_kl) clamps with the same bounds.
"""
import numpy as np

from .module import Module

POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX = -30.0, 20.0


def clamp_logvar(logvar):
    """Clamped logvar and the mask of entries where the clamp is inactive (gradient flows)."""
    return np.clip(logvar, POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX), (logvar >= POSTERIOR_LOGVAR_MIN) & (logvar <= POSTERIOR_LOGVAR_MAX)


class Reparameterize(Module):
    """forward(mu, logvar, eps) -> z, all (N, d). eps ~ N(0, I) is drawn by the caller from
    an explicit ``numpy.random.Generator``, so runs are reproducible.

    backward(grad_z) -> (grad_mu, grad_logvar).
    """

    def __init__(self):
        self._eps = self._sigma = self._inside = None

    def forward(self, mu, logvar, eps):
        if mu.shape != logvar.shape or mu.shape != eps.shape or mu.ndim != 2:
            raise ValueError(f"Reparameterize: mu, logvar and eps must share one (N, d) shape, "
                             f"got {mu.shape}, {logvar.shape}, {eps.shape}")
        logvar, self._inside = clamp_logvar(logvar)
        self._sigma = np.exp(0.5 * logvar)
        self._eps = eps
        return mu + self._sigma * eps

    def backward(self, grad_z):
        eps = self._cached("_eps")
        grad_mu = grad_z                                  # eq. 25: dz/dmu = I
        grad_sigma = grad_z * eps                         # eq. 26: dz/dsigma = diag(eps)
        grad_logvar = np.where(self._inside, grad_sigma * 0.5 * self._sigma, 0).astype(grad_z.dtype)
        return grad_mu, grad_logvar
