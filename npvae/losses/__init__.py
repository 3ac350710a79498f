"""Losses of the VAE objective (paper eq. 30), and the linear probe's softmax cross-entropy, each
with its hand-written gradient."""
from .bernoulli import BernoulliLoss, bernoulli_nll, bernoulli_nll_reference
from .elbo import NegativeELBO
from .gaussian import GaussianLoss, clamp_pixel_logvar, gaussian_nll
from .gaussian_kl import GaussianKL, gaussian_kl, kl_grad_sigma
from .softmax_cross_entropy import SoftmaxCrossEntropy, log_softmax, softmax_cross_entropy

__all__ = ["BernoulliLoss", "bernoulli_nll", "bernoulli_nll_reference",
           "GaussianKL", "gaussian_kl", "kl_grad_sigma", "NegativeELBO",
           "GaussianLoss", "gaussian_nll", "clamp_pixel_logvar",
           "SoftmaxCrossEntropy", "softmax_cross_entropy", "log_softmax"]
