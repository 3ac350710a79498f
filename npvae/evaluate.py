"""ELBO terms of a model on a data set: reconstruction, KL, total (beta = 1), their ratio.

Same convention as training: per image, BCE summed over pixels and KL summed over
latent dimensions, in nats; the figures are means over the images.
"""
import numpy as np

from .data import to_float
from .losses import bernoulli_nll, gaussian_kl


def elbo_terms(model, images, labels, eps):
    """Per-image (recon, kl) for one batch of uint8 images with a given eps."""
    x = to_float(images, model.dtype)
    mu, logvar = model.encode(x, labels)
    z = model.reparameterize.forward(mu, logvar, eps)
    return bernoulli_nll(model.decode_logits(z, labels), x), gaussian_kl(mu, logvar)


def evaluate_elbo(model, images, labels, rng, batch_size=1000):
    """Mean recon, KL and total (= -ELBO) over ``images`` with one z ~ q(z|x) per image."""
    recon, kl = [], []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        eps = rng.standard_normal((stop - start, model.latent_dim), dtype=model.dtype)
        r, k = elbo_terms(model, images[start:stop], labels[start:stop], eps)
        recon.append(r)
        kl.append(k)
    recon, kl = np.concatenate(recon), np.concatenate(kl)
    return summarize(recon, kl)


def summarize(recon, kl, beta=1.0):
    mean_recon, mean_kl = float(np.mean(recon)), float(np.mean(kl))
    return {"recon": mean_recon, "kl": mean_kl, "total": mean_recon + beta * mean_kl,
            "ratio": mean_recon / mean_kl if mean_kl > 0 else float("inf")}
