"""The one registry of named gradient checks: what `npvae gradcheck`, the tests and the README use.

Each :class:`Check` has a name, a one-line description, and two ways to run:

* ``standard(rng, max_entries, tolerance, n_random)``: the layer on the paper's shapes
  (Tables 1 and 2, batch 2) and on ``n_random`` configurations drawn from ``rng``;
* ``single(rng, max_entries=, tolerance=, **options)``: one configuration, each option
  (a keyword listed in ``options``, its default in the function) set by the command line's
  flag of the same name: ``npvae gradcheck conv2d --in 3 --out 4 --kernel 3``.

Every function returns a list of ``(Label, TensorCheck)``.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import layers, losses
from .finite_differences import DEFAULT_TOLERANCE
from .layers import BATCH, DEFAULT_MAX_ENTRIES
from .models import MODEL_TOLERANCE, model

DEFAULT_RANDOM = 3           # random configurations per layer type


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    standard: Callable      # (rng, max_entries, tolerance, n_random) -> rows
    single: Callable        # (rng, max_entries=, tolerance=, **options) -> rows
    options: tuple          # the keywords of ``single`` a user may set
    tolerance: float = DEFAULT_TOLERANCE


# -- random configurations ---------------------------------------------------------
def _layout(rng):
    return "NHWC" if rng.random() < 0.5 else "NCHW"


def random_conv2d(rng):
    kh, kw = (int(k) for k in rng.integers(1, 6, 2))
    if rng.random() < 0.5:
        kw = kh
    stride = tuple(int(s) for s in rng.integers(1, 4, 2))
    padding = tuple(int(rng.integers(0, k)) for k in (kh, kw))
    h = int(rng.integers(max(1, kh - 2 * padding[0]), kh - 2 * padding[0] + 9))
    w = int(rng.integers(max(1, kw - 2 * padding[1]), kw - 2 * padding[1] + 9))
    return dict(in_channels=int(rng.integers(1, 5)), out_channels=int(rng.integers(1, 6)),
                kernel=(kh, kw), stride=stride, padding=padding, batch=int(rng.integers(1, 4)),
                size=(h, w), layout=_layout(rng), bias=bool(rng.random() < 0.8))


def random_convtranspose2d(rng):
    while True:
        kh, kw = (int(k) for k in rng.integers(1, 6, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = tuple(int(rng.integers(0, k)) for k in (kh, kw))
        output_padding = tuple(int(rng.integers(0, s)) for s in stride)
        h, w = (int(v) for v in rng.integers(1, 7, 2))
        out_h = (h - 1) * stride[0] - 2 * padding[0] + kh + output_padding[0]
        out_w = (w - 1) * stride[1] - 2 * padding[1] + kw + output_padding[1]
        if out_h >= 1 and out_w >= 1:
            break
    return dict(in_channels=int(rng.integers(1, 5)), out_channels=int(rng.integers(1, 6)),
                kernel=(kh, kw), stride=stride, padding=padding, output_padding=output_padding,
                batch=int(rng.integers(1, 4)), size=(h, w), layout=_layout(rng),
                bias=bool(rng.random() < 0.8))


def _random_shape(rng):
    if rng.random() < 0.3:
        return (int(rng.integers(1, 4)), int(rng.integers(1, 40)))
    return tuple(int(v) for v in rng.integers(1, 7, 4))


def _random_loss_shape(rng):
    """A batch of 1-4 and one to three further axes of 1-8: what the losses see, at random."""
    return (int(rng.integers(1, 5)),) + tuple(int(v) for v in rng.integers(1, 9, int(rng.integers(1, 4))))


def _image(batch, channels, size):
    h, w = (size, size) if np.isscalar(size) else size
    return (batch, channels, h, w)


# -- the standard checks -------------------------------------------------------------
def standard_linear(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.linear(rng, 2048, 2, note=" (fc_mu, fc_logvar)", **kw)
    rows += layers.linear(rng, 2, 2048, note=" (VAE decoder.0)", **kw)
    rows += layers.linear(rng, 12, 2048, note=" (CVAE decoder.0)", **kw)
    for _ in range(n_random):
        rows += layers.linear(rng, int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 5)),
                              bias=bool(rng.random() < 0.8), note=" (random)", **kw)
    return rows


def standard_conv2d(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.conv2d(rng, 1, 32, 4, 2, 1, size=28, layout="NCHW", note=" (encoder.0)", **kw)
    rows += layers.conv2d(rng, 11, 32, 4, 2, 1, size=28, layout="NCHW", note=" (CVAE enc.0)", **kw)
    rows += layers.conv2d(rng, 32, 64, 4, 2, 1, size=14, layout="NHWC", note=" (encoder.2)", **kw)
    rows += layers.conv2d(rng, 64, 128, 3, 2, 1, size=7, layout="NHWC", note=" (encoder.4)", **kw)
    for _ in range(n_random):
        rows += layers.conv2d(rng, **random_conv2d(rng), note=" (random)", **kw)
    return rows


def standard_conditioned_conv2d(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.conditioned_conv2d(rng, 1, 10, 32, 4, 2, 1, size=28, note=" (CVAE encoder.0)", **kw)
    for _ in range(n_random):
        config = random_conv2d(rng)
        rows += layers.conditioned_conv2d(rng, int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                          config["out_channels"], config["kernel"], config["stride"],
                                          config["padding"], config["batch"], config["size"], " (random)", **kw)
    return rows


def standard_convtranspose2d(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.convtranspose2d(rng, 128, 64, 3, 2, 1, size=4, layout="NCHW", note=" (decoder.3)", **kw)
    rows += layers.convtranspose2d(rng, 64, 32, 4, 2, 1, size=7, layout="NHWC", note=" (decoder.5)", **kw)
    rows += layers.convtranspose2d(rng, 32, 1, 4, 2, 1, size=14, layout="NHWC", note=" (decoder.7)", **kw)
    for _ in range(n_random):
        rows += layers.convtranspose2d(rng, **random_convtranspose2d(rng), note=" (random)", **kw)
    return rows


def standard_relu(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.relu(rng, (BATCH, 32, 14, 14), layout="NHWC", note=" (encoder.1)", **kw)
    rows += layers.relu(rng, (BATCH, 64, 7, 7), inplace=True, layout="NHWC", note=" (encoder.3)", **kw)
    rows += layers.relu(rng, (BATCH, 2048), inplace=True, note=" (decoder.1)", **kw)
    for _ in range(n_random):
        rows += layers.relu(rng, _random_shape(rng), inplace=bool(rng.random() < 0.5), layout=_layout(rng),
                            note=" (random)", **kw)
    return rows


def standard_sigmoid(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.sigmoid(rng, (BATCH, 1, 28, 28), note=" (decoder output)", **kw)
    for _ in range(n_random):
        rows += layers.sigmoid(rng, _random_shape(rng), scale=float(rng.choice([1.0, 4.0, 15.0])),
                               layout=_layout(rng), note=" (random)", **kw)
    return rows


def standard_reshape(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = layers.flatten(rng, (BATCH, 128, 4, 4), layout="NHWC", note=" (encoder.6)", **kw)
    rows += layers.unflatten(rng, BATCH, (128, 4, 4), note=" (decoder.2)", **kw)
    for _ in range(n_random):
        shape = tuple(int(v) for v in rng.integers(1, 6, 4))
        rows += layers.flatten(rng, shape, layout=_layout(rng), note=" (random)", **kw)
    return rows


def standard_bce(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = losses.bce(rng, (BATCH, 1, 28, 28), note=" (paper)", **kw)
    rows += losses.bce(rng, (BATCH, 1, 28, 28), binary=True, note=" (paper)", **kw)
    for _ in range(n_random):
        shape = _random_loss_shape(rng)
        rows += losses.bce(rng, shape, binary=bool(rng.random() < 0.5),
                           grad=float(rng.choice([1.0, 0.3, 2.5])), note=" (random)", **kw)
    return rows


def standard_gaussian(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = losses.gaussian(rng, (BATCH, 1, 28, 28), note=" (paper shape)", **kw)
    rows += losses.gaussian(rng, (BATCH, 1, 28, 28), learned=True, note=" (paper shape)", **kw)
    for _ in range(n_random):
        shape = _random_loss_shape(rng)
        rows += losses.gaussian(rng, shape, learned=bool(rng.random() < 0.5), note=" (random)", **kw)
    return rows


def standard_kl(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = losses.kl(rng, BATCH, 2, note=" (paper)", **kw)
    rows += losses.kl(rng, BATCH, 2, beta=0.3, note=" (warm-up)", **kw)
    rows += losses.kl_sigma(rng, BATCH, 2, note=" (paper)", **kw)
    rows += losses.kl(rng, 4, 6, clamped=True, **kw)
    for _ in range(n_random):
        rows += losses.kl(rng, int(rng.integers(1, 9)), int(rng.integers(1, 17)),
                          beta=float(rng.uniform(0, 2)), note=" (random)", **kw)
    return rows


def standard_reparameterize(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = losses.reparameterize(rng, BATCH, 2, note=" (paper)", **kw)
    rows += losses.reparameterize(rng, 4, 6, clamped=True, **kw)
    for _ in range(n_random):
        rows += losses.reparameterize(rng, int(rng.integers(1, 9)), int(rng.integers(1, 17)),
                                      note=" (random)", **kw)
    return rows


def standard_encoder(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    return layers.encoder(rng, 1, note=" (VAE)", **kw) + layers.encoder(rng, 11, note=" (CVAE)", **kw)


def standard_decoder(rng, max_entries, tolerance, n_random):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    return layers.decoder(rng, 2, note=" (VAE)", **kw) + layers.decoder(rng, 12, note=" (CVAE)", **kw)


def standard_model(kind):
    return lambda rng, max_entries, tolerance, n_random: model(rng, kind, max_entries=max_entries,
                                                               tolerance=tolerance)


# -- single configurations: the options are the command line's flags -----------------
def single_linear(rng, in_channels=5, out_channels=4, batch=BATCH, bias=True, **kw):
    """--in and --out are Linear's in_features and out_features."""
    return layers.linear(rng, in_channels, out_channels, batch, bias, **kw)


def single_conditioned_conv2d(rng, in_channels=1, out_channels=4, kernel=3, stride=2, padding=1,
                              batch=BATCH, size=8, **kw):
    """--in is the image's channels; three constant condition planes are joined to it."""
    return layers.conditioned_conv2d(rng, in_channels, 3, out_channels, kernel, stride, padding,
                                     batch, size, **kw)


def single_relu(rng, batch=BATCH, in_channels=3, size=5, inplace=False, layout="NCHW", **kw):
    return layers.relu(rng, _image(batch, in_channels, size), inplace, layout, **kw)


def single_sigmoid(rng, batch=BATCH, in_channels=1, size=28, layout="NCHW", **kw):
    return layers.sigmoid(rng, _image(batch, in_channels, size), layout=layout, **kw)


def single_reshape(rng, batch=BATCH, in_channels=128, size=4, layout="NCHW", **kw):
    """Flatten (batch, in, size, size), then Unflatten back."""
    shape = _image(batch, in_channels, size)
    return (layers.flatten(rng, shape, layout, **kw)
            + layers.unflatten(rng, batch, shape[1:], **kw))


def single_bce(rng, batch=BATCH, in_channels=1, size=28, binary=False, **kw):
    return losses.bce(rng, _image(batch, in_channels, size), binary, **kw)


def single_gaussian(rng, batch=BATCH, in_channels=1, size=28, learned=False, **kw):
    return losses.gaussian(rng, _image(batch, in_channels, size), learned, **kw)


def single_decoder(rng, in_channels=2, batch=BATCH, **kw):
    """--in is the decoder's input: the latent dimension (plus 10 for the CVAE's one-hot)."""
    return layers.decoder(rng, in_channels, batch, **kw)


def single_model(kind):
    def single(rng, latent_dim=2, batch=BATCH, beta=0.5, max_entries=DEFAULT_MAX_ENTRIES,
               tolerance=MODEL_TOLERANCE):
        return model(rng, kind, latent_dim, batch, beta, max_entries, tolerance)
    return single


_CONV = ("in_channels", "out_channels", "kernel", "stride", "padding", "batch", "size")
CHECKS = {check.name: check for check in (
    Check("linear", "Linear: fc_mu/fc_logvar 2048->2, decoder 2->2048 (CVAE 12->2048), random",
          standard_linear, single_linear, ("in_channels", "out_channels", "batch", "bias")),
    Check("conv2d", "Conv2d: the encoder's three convolutions (and the CVAE's 11-channel one), random",
          standard_conv2d, layers.conv2d, _CONV + ("layout", "bias")),
    Check("conditionedconv2d", "ConditionedConv2d: the CVAE's first layer (image + 10 label planes), random",
          standard_conditioned_conv2d, single_conditioned_conv2d, _CONV),
    Check("convtranspose2d", "ConvTranspose2d: the decoder's three transposed convolutions, random",
          standard_convtranspose2d, layers.convtranspose2d, _CONV + ("output_padding", "layout", "bias")),
    Check("relu", "ReLU, plain and in place, on the encoder's activations and random shapes",
          standard_relu, single_relu, ("batch", "in_channels", "size", "inplace", "layout")),
    Check("sigmoid", "Sigmoid on the decoder's output shape, random shapes and spreads",
          standard_sigmoid, single_sigmoid, ("batch", "in_channels", "size", "layout")),
    Check("reshape", "Flatten and Unflatten between the convolutions and the linear layers",
          standard_reshape, single_reshape, ("batch", "in_channels", "size", "layout")),
    Check("bce", "BernoulliLoss (BCE fused with the sigmoid), from logits",
          standard_bce, single_bce, ("batch", "in_channels", "size", "binary")),
    Check("gaussian", "GaussianLoss (Gaussian decoder, mean sigmoid(logits)), fixed and learned variance",
          standard_gaussian, single_gaussian, ("batch", "in_channels", "size", "learned")),
    Check("kl", "GaussianKL against N(0, I), logvar form (the code's) and sigma form (eq. 22-23)",
          standard_kl, losses.kl, ("batch", "latent_dim", "beta")),
    Check("reparameterize", "Reparameterize: z = mu + exp(logvar/2) * eps, eps fixed",
          standard_reparameterize, losses.reparameterize, ("batch", "latent_dim")),
    Check("encoder", "The paper's encoder (Table 1) as one Sequential, VAE and CVAE inputs",
          standard_encoder, layers.encoder, ("in_channels", "batch")),
    Check("decoder", "The paper's decoder (Table 2) as one Sequential, VAE and CVAE inputs",
          standard_decoder, single_decoder, ("in_channels", "batch")),
    Check("vae", "The whole VAE end to end, float64, fixed eps: BCE + beta * KL",
          standard_model("vae"), single_model("vae"), ("latent_dim", "batch", "beta"), MODEL_TOLERANCE),
    Check("cvae", "The whole CVAE end to end, float64, fixed eps: BCE + beta * KL",
          standard_model("cvae"), single_model("cvae"), ("latent_dim", "batch", "beta"), MODEL_TOLERANCE),
)}
DESCRIPTIONS = {name: check.description for name, check in CHECKS.items()}
