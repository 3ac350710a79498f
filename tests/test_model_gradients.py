"""The whole training chain, end to end: encoder -> reparameterisation -> decoder -> loss
(BCE + beta * KL, paper eq. 30), every parameter's gradient against finite differences of
the total loss; and the architecture of the paper's Tables 1 and 2, layer by layer.
"""
import math
import re

import numpy as np
import pytest

from npvae.gradcheck import relative_error
from npvae.losses import BernoulliLoss, GaussianKL
from npvae.losses.elbo import NegativeELBO
from npvae.models import CVAE, VAE
from npvae.nn import Conv2d, ConvTranspose2d, Flatten, Linear, ReLU, Unflatten

BATCH = 2
BETA = 0.5            # not 1, so a dropped or doubled beta shows up
ENTRIES = 60          # random entries checked per parameter tensor
STEPS = (1e-5, 2e-6)  # the central-difference step; the second only after a kink (below)
TOLERANCE = 1e-6
# Entries given up on because both steps crossed a kink. A forward pass that wasn't
# deterministic would flip units on every evaluation and trip this.
MAX_SKIPPED = 0.02    # of all entries tried

CONFIGS = [(VAE, 2, 0), (VAE, 3, 1), (CVAE, 2, 2), (CVAE, 3, 3)]     # (model, d, seed)


class KinkCrossed(Exception):
    """A nudge flipped some ReLU's on/off pattern: that finite difference is meaningless."""


def watch_relus(model):
    """Wrap every ReLU's forward to record which units are on; returns the live record."""
    masks = {}
    for network in (model.encoder, model.decoder):
        for index, layer in enumerate(network):
            if isinstance(layer, ReLU):
                def forward(x, original=layer.forward, key=(id(network), index)):
                    y = original(x)
                    masks[key] = y > 0
                    return y
                layer.forward = forward
    return masks


def condition(model):
    """Move the check to a point where every gradient stands well above float64 roundoff.

    At PyTorch's default init the decoder barely depends on z, so the encoder's
    gradients are only ~1e-3 to 1e-2 while the loss is ~550 nats summed over 1568
    pixels: its rounding noise divided by the step leaves relative errors of 1e-5 to
    1e-4 (measured), whatever the step. With 10x head and 3x decoder weights z matters,
    every gradient is O(1) to O(10) and the errors drop to ~1e-7. Whether a gradient
    formula is right doesn't depend on the point it is evaluated at.
    """
    model.fc_mu.weight.data *= 10
    model.fc_logvar.weight.data *= 10
    for layer in model.decoder:
        if isinstance(layer, ConvTranspose2d):
            layer.weight.data *= 3


def central_difference(loss, flat, i):
    """(L(theta_i + h) - L(theta_i - h)) / 2h, retried with the smaller step if the first
    crosses a ReLU kink; None if both do. theta_i is restored in every case."""
    original = flat[i]
    for step in STEPS:
        try:
            flat[i] = original + step
            plus = loss()
            flat[i] = original - step
            minus = loss()
            return (plus - minus) / (2 * step)
        except KinkCrossed:
            continue
        finally:
            flat[i] = original
    return None


def model_gradient_check(cls, latent_dim, seed):
    """-> (model, {tensor: (relative error, entries checked, entries skipped)}).

    Central differences as in npvae.gradcheck.finite_difference_check (same error
    measure), with one addition: with ~45,000 ReLU units, a nudge of a bias now and then
    moves some unit across its kink, where the difference quotient measures nothing.
    Such a nudge is detected (the ReLU on/off pattern changes) and retried with a
    smaller step; if that crosses too, the entry is replaced by another random one.
    """
    rng = np.random.default_rng(seed)
    model = cls(latent_dim, rng=rng).to(np.float64)
    condition(model)
    x = rng.random((BATCH, 1, 28, 28))
    eps = rng.standard_normal((BATCH, latent_dim))                   # fixed noise
    labels = rng.integers(0, 10, BATCH) if cls is CVAE else None
    bce, kl = BernoulliLoss(), GaussianKL()
    masks = watch_relus(model)

    def total_loss():
        logits, mu, logvar = model.forward(x, eps, labels)
        return bce.forward(logits, x) + BETA * kl.forward(mu, logvar)

    model.zero_grad()
    total_loss()
    base_masks = {key: mask.copy() for key, mask in masks.items()}
    grad_mu, grad_logvar = kl.backward()
    model.backward(bce.backward(), BETA * grad_mu, BETA * grad_logvar)

    def checked_loss():
        value = total_loss()
        if any(not np.array_equal(masks[key], base) for key, base in base_masks.items()):
            raise KinkCrossed
        return value

    results = {}
    for name, p in model.named_parameters():
        analytic, flat = p.grad.reshape(-1).copy(), p.data.reshape(-1)
        assert np.shares_memory(flat, p.data)
        numeric, expected, skipped = [], [], 0
        for i in rng.permutation(flat.size):
            if len(numeric) == ENTRIES:
                break
            value = central_difference(checked_loss, flat, i)
            if value is None:
                skipped += 1
            else:
                numeric.append(value)
                expected.append(analytic[i])
        results[name] = (relative_error(np.array(expected), np.array(numeric)), len(numeric),
                         skipped)
    return model, results


@pytest.mark.parametrize("cls, latent_dim, seed", CONFIGS,
                         ids=[f"{cls.__name__}-d{d}" for cls, d, _ in CONFIGS])
def test_whole_model_gradients_match_finite_differences(cls, latent_dim, seed):
    model, results = model_gradient_check(cls, latent_dim, seed)
    sizes = {name: p.data.size for name, p in model.named_parameters()}
    assert list(results) == list(sizes) and len(sizes) == 18
    for name, (_, checked, skipped) in results.items():
        assert checked == min(ENTRIES, sizes[name] - skipped) and checked > 0, name
    total_skipped = sum(skipped for _, _, skipped in results.values())
    total_tried = sum(checked + skipped for _, checked, skipped in results.values())
    assert total_skipped <= MAX_SKIPPED * total_tried, \
        f"{total_skipped} of {total_tried} entries crossed a ReLU kink at both steps"
    failures = [f"{name}: {error:.2e}" for name, (error, _, _) in results.items()
                if not error < TOLERANCE]
    assert not failures, f"{cls.__name__}(latent_dim={latent_dim}): {failures}"


def test_negative_elbo_hands_the_model_the_same_gradients():
    """The training objective (npvae.losses.elbo) is the sum checked above."""
    rng = np.random.default_rng(0)
    logits, x = rng.standard_normal((2, 1, 28, 28)), rng.random((2, 1, 28, 28))
    mu, logvar = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    objective, bce, kl = NegativeELBO(), BernoulliLoss(), GaussianKL()
    total, recon, divergence = objective.forward(logits, x, mu, logvar, beta=BETA)
    assert recon == bce.forward(logits, x) and divergence == kl.forward(mu, logvar)
    assert total == pytest.approx(recon + BETA * divergence, rel=1e-15)
    grad_logits, grad_mu, grad_logvar = objective.backward()
    expected_mu, expected_logvar = kl.backward()
    np.testing.assert_array_equal(grad_logits, bce.backward())
    np.testing.assert_allclose(grad_mu, BETA * expected_mu, rtol=1e-15)
    np.testing.assert_allclose(grad_logvar, BETA * expected_logvar, rtol=1e-15)


# -- architecture: the paper's Tables 1 and 2 ----------------------------------------------

# (layer type, output shape per image, kernel, stride)
ENCODER_TABLE = [(Conv2d, (32, 14, 14), (4, 4), (2, 2)), (ReLU, (32, 14, 14), None, None),
                 (Conv2d, (64, 7, 7), (4, 4), (2, 2)), (ReLU, (64, 7, 7), None, None),
                 (Conv2d, (128, 4, 4), (3, 3), (2, 2)), (ReLU, (128, 4, 4), None, None),
                 (Flatten, (2048,), None, None)]
DECODER_TABLE = [(Linear, (2048,), None, None), (ReLU, (2048,), None, None),
                 (Unflatten, (128, 4, 4), None, None),
                 (ConvTranspose2d, (64, 7, 7), (3, 3), (2, 2)), (ReLU, (64, 7, 7), None, None),
                 (ConvTranspose2d, (32, 14, 14), (4, 4), (2, 2)), (ReLU, (32, 14, 14), None, None),
                 (ConvTranspose2d, (1, 28, 28), (4, 4), (2, 2))]


def run_layer_by_layer(network, x, table):
    assert len(network) == len(table)
    for layer, (kind, shape, kernel, stride) in zip(network, table):
        assert isinstance(layer, kind), (layer, kind)
        if kernel is not None:
            assert (layer.kernel_size, layer.stride, layer.padding) == (kernel, stride, (1, 1))
        x = layer.forward(x)
        assert x.shape == (len(x),) + shape, (layer, x.shape, shape)
    return x


def one_hot_planes(labels, h=28, w=28):
    planes = np.zeros((len(labels), 10, h, w), dtype=np.float32)
    planes[np.arange(len(labels)), labels] = 1
    return planes


@pytest.mark.parametrize("latent_dim", [2, 3])
@pytest.mark.parametrize("cls", [VAE, CVAE])
def test_activation_shapes_match_tables_1_and_2(cls, latent_dim):
    rng = np.random.default_rng(0)
    model = cls(latent_dim, rng=rng)
    n = 3
    x = rng.random((n, 1, 28, 28)).astype(np.float32)
    labels = np.array([0, 4, 9])
    conditional = cls is CVAE
    encoder_input = np.concatenate([x, one_hot_planes(labels)], axis=1) if conditional else x
    assert encoder_input.shape == (n, 11 if conditional else 1, 28, 28)

    features = run_layer_by_layer(model.encoder, encoder_input, ENCODER_TABLE)
    mu, logvar = model.fc_mu.forward(features), model.fc_logvar.forward(features)
    assert mu.shape == logvar.shape == (n, latent_dim)

    z = rng.standard_normal((n, latent_dim)).astype(np.float32)
    decoder_input = np.concatenate([z, np.eye(10, dtype=np.float32)[labels]], axis=1) \
        if conditional else z
    assert decoder_input.shape == (n, latent_dim + (10 if conditional else 0))
    logits = run_layer_by_layer(model.decoder, decoder_input, DECODER_TABLE)
    assert logits.shape == (n, 1, 28, 28) and logits.dtype == np.float32

    # Parameter shapes: the first conv sees 1 (+10) channels, the decoder d (+10) inputs.
    assert model.encoder[0].weight.shape == (32, 11 if conditional else 1, 4, 4)
    assert model.decoder[0].weight.shape == (2048, latent_dim + (10 if conditional else 0))
    assert model.fc_mu.weight.shape == model.fc_logvar.weight.shape == (latent_dim, 2048)


def test_parameter_count_follows_from_the_tables():
    def conv(c_in, c_out, k):
        return c_in * c_out * k * k + c_out

    body = conv(32, 64, 4) + conv(64, 128, 3) + conv(128, 64, 3) + conv(64, 32, 4) + conv(32, 1, 4)
    for cls, extra in ((VAE, 0), (CVAE, 10)):
        for d in (2, 3):
            expected = (body + conv(1 + extra, 32, 4) + 2 * (2048 * d + d)
                        + (d + extra) * 2048 + 2048)
            assert cls(d, rng=0).num_parameters() == expected


def spy_inputs(layer, record):
    original = layer.forward

    def forward(x):
        record.append(x.copy())
        return original(x)
    layer.forward = forward


@pytest.mark.parametrize("latent_dim", [2, 3])
def test_cvae_conditions_encoder_and_decoder_on_the_one_hot_label(latent_dim):
    rng = np.random.default_rng(1)
    model = CVAE(latent_dim, rng=rng)
    x = rng.random((2, 1, 28, 28)).astype(np.float32)
    eps = rng.standard_normal((2, latent_dim)).astype(np.float32)
    labels = np.array([7, 2])
    first_layer_inputs, decoder_inputs = [], []
    original = model.encoder[0].forward_conditioned

    def spy(image, conditions):
        first_layer_inputs.append((image.copy(), conditions.copy()))
        return original(image, conditions)
    model.encoder[0].forward_conditioned = spy
    spy_inputs(model.decoder[0], decoder_inputs)
    _, mu, logvar = model.forward(x, eps, labels)

    # The first layer gets the image and the one-hot rows; what it computes is the
    # convolution of the 11-channel input encoder_input builds (tests/test_conditioned_conv.py).
    ((image, conditions),), (decoder_input,) = first_layer_inputs, decoder_inputs
    np.testing.assert_array_equal(image, x)
    np.testing.assert_array_equal(conditions, np.eye(10)[labels])
    encoder_input = model.encoder_input(x, labels)
    assert encoder_input.shape == (2, 11, 28, 28)
    np.testing.assert_array_equal(encoder_input[:, :1], x)
    np.testing.assert_array_equal(encoder_input[:, 1:], one_hot_planes(labels))
    assert decoder_input.shape == (2, latent_dim + 10)
    np.testing.assert_allclose(decoder_input[:, :latent_dim], mu + np.exp(logvar / 2) * eps,
                               rtol=1e-6)
    np.testing.assert_array_equal(decoder_input[:, latent_dim:], np.eye(10)[labels])

    # Same image, same noise, another label: a different encoding and decoding.
    logits_a, mu_a, _ = model.forward(x, eps, labels)
    logits_b, mu_b, _ = model.forward(x, eps, np.array([3, 5]))
    assert not np.allclose(mu_a, mu_b) and not np.allclose(logits_a, logits_b)


def test_vae_forward_shapes_and_dtype():
    model = VAE(2, rng=0)
    x = np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32)
    logits, mu, logvar = model.forward(x, np.zeros((4, 2), np.float32))
    assert logits.shape == (4, 1, 28, 28) and mu.shape == logvar.shape == (4, 2)
    assert logits.dtype == mu.dtype == logvar.dtype == np.float32


# -- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [10, -1, 12])
def test_cvae_label_out_of_range_is_named(bad):
    model = CVAE(2, rng=0)
    x = np.zeros((2, 1, 28, 28), np.float32)
    eps = np.zeros((2, 2), np.float32)
    labels = np.array([3, bad])
    message = rf"label {bad} is out of range"
    with pytest.raises(ValueError, match=message):
        model.forward(x, eps, labels)
    with pytest.raises(ValueError, match=message):
        model.encode(x, labels)
    with pytest.raises(ValueError, match=message):
        model.decode(np.zeros((2, 2), np.float32), labels)
    with pytest.raises(ValueError, match=message):
        model.sample(2, labels=labels, rng=0)


def test_cvae_requires_labels():
    model = CVAE(2, rng=0)
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match="labels are required"):
        model.forward(x, np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="labels are required"):
        model.sample(2, rng=0)
    with pytest.raises(ValueError, match=r"expected 2 labels, got shape \(3,\)"):
        model.encode(x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="integer"):
        model.encode(x, np.array([1.0, 2.0]))


@pytest.mark.parametrize("cls", [VAE, CVAE])
@pytest.mark.parametrize("shape", [(2, 28, 28), (2, 1, 27, 28), (2, 3, 28, 28), (2, 1, 28, 28, 1),
                                   (784,)])
def test_wrong_image_shape_is_refused(cls, shape):
    model = cls(2, rng=0)
    labels = np.array([1, 2])
    with pytest.raises(ValueError, match=re.escape(f"(N, 1, 28, 28), got {shape}")):
        model.forward(np.zeros(shape, np.float32), np.zeros((2, 2), np.float32), labels)
    with pytest.raises(ValueError, match=re.escape(f"got {shape}")):
        model.encode(np.zeros(shape, np.float32), labels)


def test_wrong_latent_shape_is_refused():
    model = VAE(3, rng=0)
    with pytest.raises(ValueError, match=r"expected z of shape \(N, 3\), got \(2, 2\)"):
        model.decode(np.zeros((2, 2), np.float32))


def test_images_as_a_list_are_refused():
    with pytest.raises(ValueError, match="got list"):
        VAE(2, rng=0).encode([[0.0] * 28] * 28)


def test_invalid_latent_dim_is_refused():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1"):
        VAE(0)


def test_model_to_float64_converts_every_parameter():
    model = CVAE(2, rng=0).to(np.float64)
    assert all(p.data.dtype == p.grad.dtype == np.float64 for p in model.parameters())
    x = np.zeros((1, 1, 28, 28))
    logits, mu, _ = model.forward(x, np.zeros((1, 2)), np.array([5]))
    assert logits.dtype == mu.dtype == np.float64
    assert math.isfinite(float(logits.sum()))
