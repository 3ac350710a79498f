"""Posterior means E_q[z|x] = mu(x) (and log-variances) over a whole data set, in batches: what
the latent-space figures, the active units and the latent-quality metrics are computed from."""
import numpy as np

from ..data import to_float

BATCH = 1000


def posterior_moments(model, images, labels=None, batch_size=BATCH, parallel=None):
    """uint8 ``images`` (N, 28, 28) -> (mu (N, latent_dim), logvar (N, latent_dim)) of q(z|x), in
    the model's dtype, computed ``batch_size`` images at a time (a CVAE is conditioned on
    ``labels``). No gradients, no noise. ``parallel`` (a DataParallel around ``model``) shares
    each batch over the cores."""
    encode = model.encode if parallel is None else parallel.encode
    conditional = model.kind == "cvae"
    out = [encode(to_float(images[i:i + batch_size], model.dtype),
                  labels[i:i + batch_size] if conditional else None)
           for i in range(0, len(images), batch_size)]
    if not out:
        empty = np.zeros((0, model.latent_dim), model.dtype)
        return empty, empty.copy()
    return np.concatenate([mu for mu, _ in out]), np.concatenate([logvar for _, logvar in out])


def posterior_means(model, images, labels=None, batch_size=BATCH, parallel=None):
    """uint8 ``images`` (N, 28, 28) -> mu(x) (N, latent_dim): :func:`posterior_moments`' means."""
    return posterior_moments(model, images, labels, batch_size, parallel)[0]
