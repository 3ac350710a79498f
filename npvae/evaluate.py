"""ELBO terms of a model on a data set: reconstruction, KL, total (beta = 1), their ratio.

Same convention as training: per image, BCE summed over pixels and KL summed over
latent dimensions, in nats; the figures are means over the images.
"""
import numpy as np

from .data import to_float
from .losses import gaussian_kl


def elbo_per_image(model, images, labels, rng, batch_size=1000):
    """Per-image (recon, kl) arrays for uint8 ``images``: -log p(x|z) with one z ~ q(z|x)
    (under the model's own decoder likelihood) and the analytic KL."""
    recon, kl = [], []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        eps = rng.standard_normal((stop - start, model.latent_dim), dtype=model.dtype)
        x = to_float(images[start:stop], model.dtype)
        batch_labels = None if labels is None else labels[start:stop]
        mu, logvar = model.encode(x, batch_labels)
        z = model.reparameterize.forward(mu, logvar, eps)
        recon.append(-model.log_likelihood(model.decode_logits(z, batch_labels), x))
        kl.append(gaussian_kl(mu, logvar))
    return np.concatenate(recon), np.concatenate(kl)


def evaluate_elbo(model, images, labels, rng, batch_size=1000):
    """Mean recon, KL and total (= -ELBO) over ``images`` with one z ~ q(z|x) per image."""
    return summarize(*elbo_per_image(model, images, labels, rng, batch_size))


def summarize(recon, kl, beta=1.0):
    mean_recon, mean_kl = float(np.mean(recon)), float(np.mean(kl))
    return {"recon": mean_recon, "kl": mean_kl, "total": mean_recon + beta * mean_kl,
            "ratio": mean_recon / mean_kl if mean_kl > 0 else float("inf")}
