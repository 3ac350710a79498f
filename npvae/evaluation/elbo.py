"""ELBO terms of a model on a data set: reconstruction, KL, total (beta = 1), their ratio.

Same convention as training: per image, BCE summed over pixels and KL summed over
latent dimensions, in nats; the figures are means over the images.
"""
import numpy as np

from ..data import to_float
from ..losses import gaussian_kl
from ..runtime import DataParallel


def elbo_per_image(model, images, labels, rng, batch_size=1000, parallel=None, workers=None):
    """Per-image (recon, kl) arrays for uint8 ``images``: -log p(x|z) with one z ~ q(z|x)
    (under the model's own decoder likelihood) and the analytic KL.

    The batches run through ``parallel`` (a DataParallel around ``model``) if given, else
    through a new one with ``workers`` threads (default: one per core)."""
    if parallel is None:
        with DataParallel(model, workers) as parallel:
            return elbo_per_image(model, images, labels, rng, batch_size, parallel)
    recon, kl = [], []
    for start in range(0, len(images), batch_size):
        stop = min(start + batch_size, len(images))
        eps = rng.standard_normal((stop - start, model.latent_dim), dtype=model.dtype)
        x = to_float(images[start:stop], model.dtype)
        logits, mu, logvar = parallel.forward(x, eps, None if labels is None else labels[start:stop])
        recon.append(-model.log_likelihood(logits, x))
        kl.append(gaussian_kl(mu, logvar))
    return np.concatenate(recon), np.concatenate(kl)


def evaluate_elbo(model, images, labels, rng, batch_size=1000, parallel=None, workers=None):
    """Mean recon, KL and total (= -ELBO) over ``images`` with one z ~ q(z|x) per image."""
    return summarize(*elbo_per_image(model, images, labels, rng, batch_size, parallel, workers))


def summarize(recon, kl, beta=1.0):
    mean_recon, mean_kl = float(np.mean(recon)), float(np.mean(kl))
    return {"recon": mean_recon, "kl": mean_kl, "total": mean_recon + beta * mean_kl,
            "ratio": mean_recon / mean_kl if mean_kl > 0 else float("inf")}
