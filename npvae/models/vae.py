"""The convolutional VAE of the paper (section 3.1).

q(z|x) = N(mu(x), diag(exp(logvar(x)))),  p(z) = N(0, I),  p(x|z) = Bernoulli(sigmoid(decoder(z))).

With ``likelihood="gaussian"`` the decoder is instead p(x|z) = N(sigmoid(decoder(z)), sigma^2),
sigma^2 either a fixed constant (``pixel_variance``) or learned: one log-variance per pixel,
the Parameter ``pixel_logvar`` (initialised at log ``pixel_variance``), trained by Adam
and saved in checkpoints like every other weight (see npvae.losses.gaussian).

A training step is ``forward`` then ``backward``:

    logits, mu, logvar = model.forward(x, eps)          # eps ~ N(0, I), drawn by the caller
    ... loss terms give d/dlogits and the KL's d/dmu, d/dlogvar ...
    model.backward(grad_logits, grad_mu, grad_logvar)   # fills every Parameter.grad

Each layer's forward and backward is reported to its observers as it runs (the Sequentials
report theirs, the model the layers it runs itself), so npvae.nn.observe sees them all.
"""
import math

import numpy as np

from ..losses import (BernoulliLoss, GaussianLoss, NegativeELBO, bernoulli_nll, clamp_pixel_logvar,
                      gaussian_nll)
from ..losses.gaussian import PIXEL_LOGVAR_MAX, PIXEL_LOGVAR_MIN
from ..nn import Linear, Module, Parameter, Reparameterize, sigmoid
from ..nn.init import default_rng
from .architecture import FEATURES, IMAGE_SHAPE, build_decoder, build_encoder
from .config import check_model_options, model_config


class VAE(Module):
    """``VAE(latent_dim=2)``. Images are (N, 1, 28, 28) floats in [0, 1]; the ``labels``
    arguments exist so a VAE and a CVAE share one calling convention, and are ignored."""

    kind = "vae"
    condition_dim = 0

    def __init__(self, latent_dim=2, rng=None, dtype=np.float32, likelihood="bernoulli",
                 variance="fixed", pixel_variance=1.0):
        check_model_options(self.kind, latent_dim, likelihood, variance, pixel_variance,
                            getattr(self, "num_classes", None), owner=type(self).__name__)
        rng = default_rng(rng)
        self.likelihood, self.variance = likelihood, variance
        self.pixel_variance = float(pixel_variance)
        self.latent_dim = int(latent_dim)
        self.encoder = build_encoder(IMAGE_SHAPE[0], self.condition_dim, rng)
        self.fc_mu = Linear(FEATURES, self.latent_dim, rng=rng)
        self.fc_logvar = Linear(FEATURES, self.latent_dim, rng=rng)
        self.decoder = build_decoder(self.latent_dim + self.condition_dim, rng)
        self.reparameterize = Reparameterize()
        if likelihood == "gaussian" and variance == "learned":
            if not PIXEL_LOGVAR_MIN <= math.log(self.pixel_variance) <= PIXEL_LOGVAR_MAX:
                raise ValueError(f"{type(self).__name__}: a learned variance starts inside "
                                 f"[{math.exp(PIXEL_LOGVAR_MIN):g}, {math.exp(PIXEL_LOGVAR_MAX):g}], "
                                 f"got pixel_variance={pixel_variance}")
            # Assigned last: a Bernoulli model's parameters, their order and the draws
            # from ``rng`` are the same as before this option existed.
            self.pixel_logvar = Parameter(np.full(IMAGE_SHAPE, math.log(self.pixel_variance), np.float32))
        if dtype != np.float32:
            self.to(dtype)

    def config(self):
        """What it takes to rebuild this model (stored in checkpoints; npvae.models.config)."""
        return model_config(self.kind, self.latent_dim, self.likelihood, self.variance,
                            self.pixel_variance, getattr(self, "num_classes", None))

    # -- the decoder's likelihood p(x|z) --------------------------------------------
    def pixel_log_variance(self):
        """Gaussian decoder: log sigma^2 in use (an image-shaped array if learned, else a float)."""
        if self.likelihood != "gaussian":
            raise ValueError(f"{type(self).__name__}: a Bernoulli decoder has no variance")
        if self.variance == "learned":
            return clamp_pixel_logvar(self.pixel_logvar.data)[0]
        return math.log(self.pixel_variance)

    def log_likelihood(self, logits, x):
        """log p(x | z) per image, (N,) float64, from the decoder's logits for z."""
        if self.likelihood == "bernoulli":
            return -bernoulli_nll(logits, x)
        return -gaussian_nll(sigmoid(logits), x, self.pixel_log_variance())

    def reconstruction_loss(self):
        """A fresh loss object for -log p(x|z) (batch mean) with a hand-written backward."""
        if self.likelihood == "bernoulli":
            return BernoulliLoss()
        if self.variance == "learned":
            return GaussianLoss(self.pixel_logvar)
        return GaussianLoss(math.log(self.pixel_variance))

    # -- conditioning (a VAE has none; the CVAE adds its labels here) ---------------
    def encoder_input(self, x, labels):
        """What the encoder's first layer sees for images x (N, 1, 28, 28)."""
        return x

    def decoder_input(self, z, labels):
        """What the decoder's first layer sees for latents z (N, latent_dim)."""
        return z

    # -- the two networks ---------------------------------------------------------
    def _check_images(self, x):
        if not isinstance(x, np.ndarray) or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{type(self).__name__}: expected images of shape (N, 1, 28, 28), "
                             f"got {getattr(x, 'shape', type(x).__name__)}")

    def encode(self, x, labels=None):
        """x (N, 1, 28, 28) -> (mu, logvar), each (N, latent_dim)."""
        self._check_images(x)
        return self._heads(self.encoder.forward(self.encoder_input(x, labels)))

    def _heads(self, features):
        """The encoder's two linear heads: features (N, 2048) -> (mu, logvar)."""
        mu = self.fc_mu.forward(features)
        self.fc_mu.report_forward(features.shape, mu)
        logvar = self.fc_logvar.forward(features)
        self.fc_logvar.report_forward(features.shape, logvar)
        return mu, logvar

    def decode_logits(self, z, labels=None):
        """z (N, latent_dim) -> logits (N, 1, 28, 28)."""
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"{type(self).__name__}: expected z of shape (N, {self.latent_dim}), got {z.shape}")
        return self.decoder.forward(self.decoder_input(z.astype(self.dtype, copy=False), labels))

    def decode(self, z, labels=None):
        """z (N, latent_dim) -> pixel probabilities (N, 1, 28, 28) (the Gaussian decoder's means)."""
        return sigmoid(self.decode_logits(z, labels))

    # -- training step ------------------------------------------------------------
    def forward(self, x, eps, labels=None):
        """One pass for training: returns (logits, mu, logvar) with z = mu + sigma * eps."""
        mu, logvar = self.encode(x, labels)
        z = self.reparameterize.forward(mu, logvar, eps)
        self.reparameterize.report_forward(mu.shape, z)
        return self.decode_logits(z, labels), mu, logvar

    def backward(self, grad_logits, grad_mu, grad_logvar):
        """Backpropagate the reconstruction gradient through decoder, sampling and encoder.

        ``grad_mu`` and ``grad_logvar`` are the loss's direct gradients (the KL term's);
        the reconstruction's reach mu and logvar through z = mu + sigma * eps.
        """
        grad_z = self.decoder.backward(grad_logits)[:, :self.latent_dim]
        grad_mu_z, grad_logvar_z = self.reparameterize.backward(grad_z)
        self.reparameterize.report_backward((grad_mu_z, grad_logvar_z))
        grad_features = self.fc_mu.backward(grad_mu_z + grad_mu)
        self.fc_mu.report_backward(grad_features)
        grad_features_logvar = self.fc_logvar.backward(grad_logvar_z + grad_logvar)
        self.fc_logvar.report_backward(grad_features_logvar)
        grad_features += grad_features_logvar
        self.encoder.backward(grad_features)

    def loss_and_backward(self, x, eps, labels=None, beta=1.0, batch_size=None):
        """A training step's work before the optimizer: forward, the loss of eq. 30, backward.

        Adds the loss's gradients into the parameters' ``grad`` (zero them first) and returns
        the per-image reconstruction and KL terms, (N,) float64 each. ``batch_size``: when x
        (N, 1, 28, 28) is a shard of a larger batch, that batch's size, so the gradients are
        this shard's part of the batch's (npvae.losses.reduction; DataParallel passes it).
        """
        objective = NegativeELBO(self.reconstruction_loss())
        logits, mu, logvar = self.forward(x, eps, labels)
        objective.forward(logits, x, mu, logvar, beta, batch_size=batch_size)
        self.backward(*objective.backward())
        return objective.recon_per_image, objective.kl_per_image

    # -- uses of a trained model --------------------------------------------------
    def reconstruct(self, x, labels=None):
        """Decode the posterior means: (N, 1, 28, 28) probabilities."""
        mu, _ = self.encode(x, labels)
        return self.decode(mu, labels)

    def interpolate(self, x0, x1, steps=10, labels=None):
        """Decode ``steps`` points on the line between the means of two images (1, 1, 28, 28) each.

        For a CVAE, ``labels`` holds one label per step (or one for all).
        """
        mu0, _ = self.encode(x0.reshape(1, *IMAGE_SHAPE), None if labels is None else np.atleast_1d(labels)[:1])
        mu1, _ = self.encode(x1.reshape(1, *IMAGE_SHAPE), None if labels is None else np.atleast_1d(labels)[-1:])
        t = np.linspace(0, 1, steps, dtype=mu0.dtype)[:, None]
        z = (1 - t) * mu0 + t * mu1
        return self.decode(z, None if labels is None else np.broadcast_to(labels, (steps,)))

    def sample(self, n, labels=None, rng=None):
        """Draw n images from the model: z ~ N(0, I), decoded to probabilities."""
        rng = default_rng(rng)
        z = rng.standard_normal((n, self.latent_dim)).astype(self.dtype)
        return self.decode(z, labels)
