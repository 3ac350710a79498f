"""The whole VAE or CVAE end to end, float64: the training step's gradient of
L = recon(x, logits) + beta * KL against finite differences of L in every parameter."""
import numpy as np

from ..losses import BernoulliLoss, GaussianKL
from ..models import CVAE, VAE
from ..nn import ConvTranspose2d, ReLU, observe
from .finite_differences import DEFAULT_TOLERANCE, finite_difference_check
from .layers import BATCH, DEFAULT_MAX_ENTRIES, labelled

MODEL_TOLERANCE = DEFAULT_TOLERANCE   # a whole model, once conditioned (see condition())
MODEL_STEP, MODEL_MIN_STEP = 1e-5, 1e-7


def model(rng, kind="vae", latent_dim=2, batch=BATCH, beta=0.5, max_entries=DEFAULT_MAX_ENTRIES,
          tolerance=MODEL_TOLERANCE, step=MODEL_STEP, min_step=MODEL_MIN_STEP, note=""):
    """A whole VAE or CVAE end to end in float64: L = BCE(x, sigmoid(logits)) + beta * KL.

    eps is drawn once and held fixed, so L is a deterministic function of the parameters.
    The analytic gradient is the training step's: ``model.forward``, both losses'
    backward, ``model.backward``. The finite differences evaluate the same ``model.forward``
    while watching its ReLUs (npvae.nn.observe), so steps that cross a kink are taken
    one-sided. The model is first moved to a point with O(1) gradients (:func:`condition`).
    """
    net = (CVAE if kind == "cvae" else VAE)(latent_dim=latent_dim, rng=rng, dtype=np.float64)
    condition(net)
    x = rng.random((batch, 1, 28, 28))
    labels = rng.integers(0, 10, batch) if kind == "cvae" else None
    eps = rng.standard_normal((batch, latent_dim))
    recon, divergence = BernoulliLoss(), GaussianKL()
    masks = []

    def keep_mask(name, layer, input_shape, output):
        if isinstance(layer, ReLU):
            masks.append(output > 0)

    def scalar_fn():
        masks.clear()
        logits, mu, logvar = net.forward(x, eps, labels)
        return recon.forward(logits, x) + beta * divergence.forward(mu, logvar)

    net.zero_grad()
    logits, mu, logvar = (a.copy() for a in net.forward(x, eps, labels))
    total = recon.forward(logits, x) + beta * divergence.forward(mu, logvar)
    grad_mu, grad_logvar = divergence.backward(beta)
    net.backward(recon.backward(), grad_mu, grad_logvar)
    tensors = {name: p.data for name, p in net.named_parameters()}
    analytic = {name: p.grad.copy() for name, p in net.named_parameters()}
    config = f"latent {latent_dim}, N={batch}, beta {beta:g}, fixed eps, loss {total:.1f}{note}"
    with observe(net, forward=keep_mask):
        return labelled(kind, config, finite_difference_check(
            scalar_fn, tensors, analytic, step, max_entries, rng, tolerance,
            pattern=lambda: list(masks), min_step=min_step))


def condition(net):
    """Move a freshly initialised model to a point where every gradient is well above roundoff.

    At PyTorch's default initialisation the decoder hardly depends on z, so the encoder's
    gradients are ~1e-3 while the loss is ~550 nats: float64 roundoff in the loss (~1e-12),
    divided by the step, leaves relative errors of 1e-5 to 1e-4 whatever the step. With
    the heads' weights x10 and the transposed convolutions' x3, z matters, the gradients
    are O(1) and the errors ~1e-8. Whether a gradient formula is right does not depend on
    the point it is evaluated at. (The same conditioning as tests/test_model_gradients.py.)
    """
    net.fc_mu.weight.data *= 10
    net.fc_logvar.weight.data *= 10
    for layer in net.decoder:
        if isinstance(layer, ConvTranspose2d):
            layer.weight.data *= 3
