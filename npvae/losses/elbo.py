"""The training objective, eq. 30: the negative ELBO with a KL weight beta.

    loss = BCE(x, sigmoid(logits)) + beta * KL(N(mu, exp(logvar)) || N(0, I))

per image (summed over pixels and latent dimensions), averaged over the batch.
The reconstruction term is the Bernoulli BCE by default; a model with a Gaussian decoder
passes its own (``NegativeELBO(model.reconstruction_loss())``, see npvae.losses.gaussian).
"""
from .bernoulli import BernoulliLoss
from .gaussian_kl import GaussianKL


class NegativeELBO:
    """forward(logits, x, mu, logvar, beta, batch_size=None) -> (total, recon, kl) as floats;
    backward() -> (grad_logits, grad_mu, grad_logvar), ready for ``model.backward``.

    ``reconstruction``: any loss with ``forward(logits, x) -> float`` and
    ``backward() -> grad_logits`` (default: a new :class:`BernoulliLoss`); to be used on a
    shard (``batch_size``, see npvae.losses.reduction) it must take ``batch_size`` too.
    ``recon_per_image`` and ``kl_per_image`` give the last forward's (N,) terms, float64."""

    def __init__(self, reconstruction=None):
        self.reconstruction = BernoulliLoss() if reconstruction is None else reconstruction
        self.divergence = GaussianKL()
        self._beta = None

    def forward(self, logits, x, mu, logvar, beta=1.0, batch_size=None):
        if batch_size is None:
            recon = self.reconstruction.forward(logits, x)
        else:
            recon = self.reconstruction.forward(logits, x, batch_size=batch_size)
        kl = self.divergence.forward(mu, logvar, batch_size=batch_size)
        self._beta = beta
        return recon + beta * kl, recon, kl

    @property
    def recon_per_image(self):
        return self.reconstruction.per_image

    @property
    def kl_per_image(self):
        return self.divergence.per_image

    def backward(self):
        if self._beta is None:
            raise RuntimeError("NegativeELBO: backward() called before forward()")
        grad_mu, grad_logvar = self.divergence.backward(self._beta)
        return self.reconstruction.backward(), grad_mu, grad_logvar
