"""The conditional VAE of the paper (section 3.2): encoder and decoder both see the label.

The one-hot label is broadcast over the 28 x 28 grid and concatenated to the image as
10 extra channels (encoder input 11 x 28 x 28); the decoder receives [z, one-hot].
The prior stays class-independent, p(z) = N(0, I) (eq. 27-29).
"""
import numpy as np

from .vae import VAE


def one_hot(labels, num_classes, dtype=np.float32):
    """(N,) integer labels -> (N, num_classes); out-of-range labels raise ValueError."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} "
                         f"and dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"label {bad} is out of range: labels must be in 0..{num_classes - 1}")
    out = np.zeros((labels.size, num_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out


class CVAE(VAE):
    """``CVAE(latent_dim=2, num_classes=10)``; every method takes ``labels`` (N,) ints."""

    kind = "cvae"

    def __init__(self, latent_dim=2, num_classes=10, rng=None, dtype=np.float32, likelihood="bernoulli",
                 variance="fixed", pixel_variance=1.0):
        self.num_classes = int(num_classes)
        self.condition_dim = self.num_classes
        super().__init__(latent_dim, rng=rng, dtype=dtype, likelihood=likelihood, variance=variance,
                         pixel_variance=pixel_variance)

    def config(self):
        return {**super().config(), "num_classes": self.num_classes}

    def _labels(self, labels, n):
        if labels is None:
            raise ValueError("CVAE: labels are required (an (N,) array of class indices)")
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full(n, labels)
        if labels.shape != (n,):
            raise ValueError(f"CVAE: expected {n} labels, got shape {labels.shape}")
        return one_hot(labels, self.num_classes, self.dtype)

    def _encoder_input(self, x, labels):
        n, _, h, w = x.shape
        planes = np.broadcast_to(self._labels(labels, n)[:, :, None, None], (n, self.num_classes, h, w))
        return np.concatenate([x, planes], axis=1)

    def _decoder_input(self, z, labels):
        return np.concatenate([z, self._labels(labels, z.shape[0])], axis=1)

    def sample(self, n, labels=None, rng=None):
        return super().sample(n, labels, rng)
