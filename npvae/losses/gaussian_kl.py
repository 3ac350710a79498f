"""KL(q(z|x) || p(z)) for q = N(mu, diag(sigma^2)) and p = N(0, I), closed form (eq. 17):

    KL = 1/2 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)
       = 1/2 * sum_j (mu_j^2 + exp(logvar_j) - logvar_j - 1)

Analytic gradients. In the paper's sigma form (eq. 22-23):
    dKL/dmu_j = mu_j,    dKL/dsigma_j = sigma_j - 1/sigma_j.
The code is parameterised by logvar = log sigma^2, so sigma = exp(logvar/2) and
dsigma/dlogvar = sigma/2; by the chain rule
    dKL/dlogvar_j = (sigma_j - 1/sigma_j) * sigma_j / 2 = (exp(logvar_j) - 1) / 2.

Convention: summed over latent dimensions, averaged over the batch, in nats.
logvar is clamped with the same bounds as the reparameterisation layer.
"""
import numpy as np

from ..nn.reparameterize import clamp_logvar
from .reduction import batch_divisor


def gaussian_kl(mu, logvar):
    """KL per image, (N,) in float64."""
    logvar, _ = clamp_logvar(logvar)
    return 0.5 * np.sum(mu * mu + np.exp(logvar) - logvar - 1, axis=1, dtype=np.float64)


def kl_grad_sigma(mu, sigma):
    """The paper's form of the gradients (eq. 22-23): (dKL/dmu, dKL/dsigma) per entry."""
    return mu, sigma - 1 / sigma


class GaussianKL:
    """forward(mu, logvar, batch_size=None) -> mean over the batch of the per-image KL;
    backward(grad=1.0) -> (dmu, dlogvar), each (N, d). ``batch_size``: see
    npvae.losses.reduction (a shard of a larger batch passes the whole batch's size)."""

    def __init__(self):
        self.per_image = None
        self._mu = self._logvar = self._inside = None
        self._divisor = None

    def forward(self, mu, logvar, batch_size=None):
        if mu.shape != logvar.shape or mu.ndim != 2:
            raise ValueError(f"GaussianKL: mu and logvar must share one (N, d) shape, "
                             f"got {mu.shape} and {logvar.shape}")
        self._divisor = batch_divisor(batch_size, mu.shape[0], "GaussianKL")
        self._mu = mu
        self._logvar, self._inside = clamp_logvar(logvar)
        self.per_image = gaussian_kl(mu, logvar)
        return float(self.per_image.mean()) if batch_size is None else float(self.per_image.sum() / self._divisor)

    def backward(self, grad=1.0):
        if self._mu is None:
            raise RuntimeError("GaussianKL: backward() called before forward()")
        scale = self._mu.dtype.type(grad / self._divisor)
        grad_mu = self._mu * scale                                          # eq. 22
        grad_logvar = 0.5 * (np.exp(self._logvar) - 1) * scale              # eq. 23, chained
        return grad_mu, np.where(self._inside, grad_logvar, 0).astype(self._mu.dtype, copy=False)
