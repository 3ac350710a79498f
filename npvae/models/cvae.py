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

    def conditions(self, labels, n):
        """(N,) class indices (or one index for all) -> one-hot rows (N, num_classes).

        An (N, num_classes) float array is taken as it is: a soft condition, such as a
        blend of two one-hots for the figures that interpolate between classes.
        """
        if labels is None:
            raise ValueError("CVAE: labels are required (an (N,) array of class indices)")
        labels = np.asarray(labels)
        if labels.ndim == 2 and np.issubdtype(labels.dtype, np.floating):
            if labels.shape != (n, self.num_classes):
                raise ValueError(f"CVAE: expected soft labels of shape {(n, self.num_classes)}, "
                                 f"got {labels.shape}")
            return labels.astype(self.dtype, copy=False)
        if labels.ndim == 0:
            labels = np.full(n, labels)
        if labels.shape != (n,):
            raise ValueError(f"CVAE: expected {n} labels, got shape {labels.shape}")
        return one_hot(labels, self.num_classes, self.dtype)

    def encode(self, x, labels=None):
        """x (N, 1, 28, 28) -> (mu, logvar), each (N, latent_dim). The label planes of
        :meth:`encoder_input` are never built: the first layer takes the one-hot rows."""
        self._check_images(x)
        first = self.encoder[0]
        features = first.forward_conditioned(x, self.conditions(labels, len(x)))
        first.report_forward((len(x), first.in_channels, *x.shape[2:]), features)   # image + planes
        return self._heads(self.encoder.forward(features, start=1))

    def encoder_input(self, x, labels):
        """Images (N, 1, 28, 28) + label planes -> (N, 11, 28, 28): what the encoder's first
        layer sees, as ``npvae inspect`` shows it (``encode`` skips building it)."""
        n, c, h, w = x.shape
        joined = np.empty((n, c + self.num_classes, h, w), dtype=x.dtype)
        joined[:, :c] = x
        joined[:, c:] = self.conditions(labels, n)[:, :, None, None]
        return joined

    def decoder_input(self, z, labels):
        """[z, one-hot] -> (N, latent_dim + num_classes)."""
        return np.concatenate([z, self.conditions(labels, z.shape[0])], axis=1)
