"""Checks of the losses and the reparameterisation, each on its own scalar (npvae.losses, eq. 17-26).

Losses sum 784 pixels, and sigma may reach e^10: a larger step (LOSS_STEP) leaves less
roundoff in their differences. Each function returns ``(Label, TensorCheck)`` rows.
"""
import numpy as np

from ..losses import BernoulliLoss, GaussianKL, GaussianLoss, gaussian_kl, kl_grad_sigma
from ..nn import POSTERIOR_LOGVAR_MAX, POSTERIOR_LOGVAR_MIN, Parameter, Reparameterize
from .finite_differences import DEFAULT_TOLERANCE, finite_difference_check
from .layers import BATCH, DEFAULT_MAX_ENTRIES, labelled, shape_text

LOSS_STEP = 1e-4


def _check(scalar_fn, tensors, analytic, rng, max_entries, tolerance):
    return finite_difference_check(scalar_fn, tensors, analytic, LOSS_STEP, max_entries, rng, tolerance)


def bce(rng, shape=(BATCH, 1, 28, 28), binary=False, grad=1.0, note="",
        max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """BernoulliLoss (sigmoid fused into BCE): d(grad * loss)/dlogits = grad * (sigmoid(l) - x) / N."""
    logits = rng.standard_normal(shape) * 3
    target = (rng.random(shape) < 0.3).astype(np.float64) if binary else rng.random(shape)
    loss = BernoulliLoss()

    def scalar_fn():
        return grad * loss.forward(logits, target)

    loss.forward(logits, target)
    analytic = {"logits": loss.backward(grad).copy()}
    config = f"{shape_text(shape)}, {'binary' if binary else 'real'} targets, grad {grad:g}{note}"
    return labelled("bce", config, _check(scalar_fn, {"logits": logits}, analytic, rng,
                                          max_entries, tolerance))


def gaussian(rng, shape=(BATCH, 1, 28, 28), learned=False, note="",
             max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """GaussianLoss (mean = sigmoid(logits)): d/dlogits and, when learned, d/d(pixel log-variance)."""
    logits = rng.standard_normal(shape) * 2
    target = rng.random(shape)
    tensors = {"logits": logits}
    if learned:
        logvar = Parameter(rng.uniform(-2.0, 1.0, shape[1:]))
        tensors["pixel_logvar"] = logvar.data
    else:
        logvar = float(rng.uniform(-2.0, 1.0))
    loss = GaussianLoss(logvar)

    def scalar_fn():
        return loss.forward(logits, target)

    loss.forward(logits, target)
    analytic = {"logits": loss.backward().copy()}
    if learned:
        analytic["pixel_logvar"] = logvar.grad.copy()
    config = f"{shape_text(shape)}, {'learned per-pixel' if learned else 'fixed'} variance{note}"
    return labelled("gaussian", config, _check(scalar_fn, tensors, analytic, rng, max_entries, tolerance))


def kl(rng, batch=BATCH, latent_dim=2, beta=1.0, clamped=False, note="",
       max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """GaussianKL: d(beta * KL)/dmu = beta mu / N, d(beta * KL)/dlogvar = beta (exp(logvar) - 1) / (2N).

    ``clamped``: some logvar entries lie below the clamp's lower bound -30, where both the
    loss and its gradient are flat in logvar. (Above the upper bound, 20, the KL is ~1e8
    nats: float64 cannot resolve a gradient of order 1 in it by finite differences.)
    """
    mu = rng.standard_normal((batch, latent_dim))
    logvar = rng.standard_normal((batch, latent_dim))
    if clamped:
        _push_outside_clamp(rng, logvar, upper=False)
    loss = GaussianKL()

    def scalar_fn():
        return beta * loss.forward(mu, logvar)

    loss.forward(mu, logvar)
    grad_mu, grad_logvar = loss.backward(beta)
    config = f"N={batch}, d={latent_dim}, beta {beta:g}{', clamped logvar' if clamped else ''}{note}"
    return labelled("kl", config, _check(scalar_fn, {"mu": mu, "logvar": logvar},
                                         {"mu": grad_mu, "logvar": grad_logvar}, rng, max_entries, tolerance))


def kl_sigma(rng, batch=BATCH, latent_dim=2, note="", max_entries=DEFAULT_MAX_ENTRIES,
             tolerance=DEFAULT_TOLERANCE):
    """The paper's form (eq. 22-23): dKL/dmu = mu, dKL/dsigma = sigma - 1/sigma (summed KL)."""
    mu = rng.standard_normal((batch, latent_dim))
    sigma = np.exp(rng.uniform(-1.5, 1.5, (batch, latent_dim)))

    def scalar_fn():
        return float(np.sum(gaussian_kl(mu, 2 * np.log(sigma))))

    grad_mu, grad_sigma = kl_grad_sigma(mu, sigma)
    config = f"N={batch}, d={latent_dim}, sigma form (eq. 22-23){note}"
    return labelled("kl", config, _check(scalar_fn, {"mu": mu, "sigma": sigma},
                                         {"mu": grad_mu, "sigma": grad_sigma}, rng, max_entries, tolerance))


def reparameterize(rng, batch=BATCH, latent_dim=2, clamped=False, note="",
                   max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """z = mu + exp(logvar / 2) * eps with eps fixed, through L = sum(z * G)."""
    layer = Reparameterize()
    mu = rng.standard_normal((batch, latent_dim))
    logvar = rng.standard_normal((batch, latent_dim))
    if clamped:
        _push_outside_clamp(rng, logvar)
    eps = rng.standard_normal((batch, latent_dim))
    weights = rng.standard_normal((batch, latent_dim))

    def scalar_fn():
        return float(np.sum(layer.forward(mu, logvar, eps) * weights))

    layer.forward(mu, logvar, eps)
    grad_mu, grad_logvar = layer.backward(weights.copy())
    config = f"N={batch}, d={latent_dim}, fixed eps{', clamped logvar' if clamped else ''}{note}"
    return labelled("reparameterize", config,
                    _check(scalar_fn, {"mu": mu, "logvar": logvar},
                           {"mu": np.array(grad_mu), "logvar": grad_logvar}, rng, max_entries, tolerance))


def _push_outside_clamp(rng, logvar, upper=True):
    """Move about a third of the entries (at least one) 1 to 10 beyond [POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX]."""
    flat = logvar.reshape(-1)
    chosen = rng.choice(flat.size, size=max(1, flat.size // 3), replace=False)
    low = (rng.random(chosen.size) < 0.5) | (not upper)
    flat[chosen] = np.where(low, POSTERIOR_LOGVAR_MIN - rng.uniform(1, 10, chosen.size),
                            POSTERIOR_LOGVAR_MAX + rng.uniform(1, 10, chosen.size))
