"""The training objective, eq. 30: the negative ELBO with a KL weight beta.

    loss = BCE(x, sigmoid(logits)) + beta * KL(N(mu, exp(logvar)) || N(0, I))

per image (summed over pixels and latent dimensions), averaged over the batch.
"""
from .bernoulli import BernoulliLoss
from .gaussian_kl import GaussianKL


class NegativeELBO:
    """forward(logits, x, mu, logvar, beta) -> (total, recon, kl) as floats;
    backward() -> (grad_logits, grad_mu, grad_logvar), ready for ``model.backward``."""

    def __init__(self):
        self.reconstruction = BernoulliLoss()
        self.divergence = GaussianKL()
        self._beta = None

    def forward(self, logits, x, mu, logvar, beta=1.0):
        recon = self.reconstruction.forward(logits, x)
        kl = self.divergence.forward(mu, logvar)
        self._beta = beta
        return recon + beta * kl, recon, kl

    def backward(self):
        if self._beta is None:
            raise RuntimeError("NegativeELBO: backward() called before forward()")
        grad_mu, grad_logvar = self.divergence.backward(self._beta)
        return self.reconstruction.backward(), grad_mu, grad_logvar
