"""Every layer's hand-written backward pass against finite differences, its forward pass
against a direct (loop) definition, and its API contract: PyTorch shapes and init,
dtypes, errors, gradient accumulation and state dicts.
"""
import math
import re
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from npvae.gradcheck import check_module, finite_difference_check
from npvae.nn import (Conv2d, ConvTranspose2d, Flatten, Linear, Module, ReLU, Reparameterize,
                      Sequential, Sigmoid, Unflatten)

TOLERANCE = 1e-6        # max relative error of a float64 gradient, per tensor
MAX_ENTRIES = 400       # tensors larger than this are checked on a random subset

# Shape/forward properties are cheap; a gradient check costs ~1600 forward passes, and
# one through a whole Sequential (whose layers are each checked on their own) ~9 times that.
MANY = settings(max_examples=4 * settings.default.max_examples)
FEW = settings(max_examples=max(1, settings.default.max_examples // 5))
seeds = st.integers(0, 2**32 - 1)


def assert_gradients_ok(module, x, seed, **steps):
    """check_module on every tensor (input, if the layer returns its gradient, and every
    parameter), each fully or on MAX_ENTRIES entries, each below TOLERANCE; ``steps``
    (step, min_step) go to check_module."""
    results = check_module(module, x, rng=seed, max_entries=MAX_ENTRIES, **steps)
    names = [r.tensor for r in results]
    expected = [name for name, _ in module.named_parameters()]
    assert names[len(names) - len(expected):] == expected, names
    for r in results:
        assert r.checked == min(r.size, MAX_ENTRIES), r
        assert r.error < TOLERANCE, f"{module!r}: gradient of {r.tensor} off by {r.error:.2e}"
    return results


# -- configurations ------------------------------------------------------------------

@dataclass(frozen=True)
class ConvCase:
    n: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    padding: tuple
    output_padding: tuple = (0, 0)
    bias: bool = True

    def conv(self, rng=None, dtype=np.float64):
        return Conv2d(self.c_in, self.c_out, self.kernel, self.stride, self.padding,
                      bias=self.bias, rng=rng, dtype=dtype)

    def conv_transpose(self, rng=None, dtype=np.float64):
        return ConvTranspose2d(self.c_in, self.c_out, self.kernel, self.stride, self.padding,
                               self.output_padding, bias=self.bias, rng=rng, dtype=dtype)

    @property
    def input_shape(self):
        return (self.n, self.c_in, self.h, self.w)


def _kernel_stride_padding(draw):
    square = draw(st.booleans(), label="square")
    kh = draw(st.integers(1, 5))
    kw = kh if square else draw(st.integers(1, 5))
    sh = draw(st.integers(1, 3))
    sw = sh if square else draw(st.integers(1, 3))
    ph = draw(st.integers(0, kh - 1))
    pw = ph if square else draw(st.integers(0, kw - 1))
    return (kh, kw), (sh, sw), (ph, pw)


@st.composite
def conv_cases(draw, max_size=9):
    """Conv2d: kernel 1-5, stride 1-3, padding 0..k-1 (per axis; square or not),
    channels 1-8, batch 1-4, any odd or even size that fits a window, bias on or off."""
    kernel, stride, padding = _kernel_stride_padding(draw)
    h = draw(st.integers(max(1, kernel[0] - 2 * padding[0]), max_size))
    w = draw(st.integers(max(1, kernel[1] - 2 * padding[1]), max_size))
    return ConvCase(draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8)),
                    h, w, kernel, stride, padding, bias=draw(st.booleans()))


def min_transposed_input(kernel, stride, padding, output_padding):
    """Smallest input size whose transposed-convolution output is non-empty."""
    size = 1
    while (size - 1) * stride - 2 * padding + kernel + output_padding < 1:
        size += 1
    return size


@st.composite
def conv_transpose_cases(draw, max_size=6):
    """ConvTranspose2d: as conv_cases, plus output_padding in 0..stride-1."""
    kernel, stride, padding = _kernel_stride_padding(draw)
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in stride)
    h, w = (draw(st.integers(min_transposed_input(k, s, p, op), max_size))
            for k, s, p, op in zip(kernel, stride, padding, output_padding))
    return ConvCase(draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8)),
                    h, w, kernel, stride, padding, output_padding, bias=draw(st.booleans()))


# The paper's layers at their real sizes (batch 1).
ENCODER_CASES = [ConvCase(1, 1, 32, 28, 28, (4, 4), (2, 2), (1, 1)),
                 ConvCase(1, 64, 128, 7, 7, (3, 3), (2, 2), (1, 1))]
DECODER_CASES = [ConvCase(1, 128, 64, 4, 4, (3, 3), (2, 2), (1, 1)),
                 ConvCase(1, 32, 1, 14, 14, (4, 4), (2, 2), (1, 1))]


# -- direct definitions, written independently of im2col ------------------------------

def conv2d_direct(x, weight, bias, stride, padding):
    """y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * x_pad[n, c, i*sh + p, j*sw + q]."""
    (sh, sw), (ph, pw) = stride, padding
    c_out, _, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    y = np.zeros((x.shape[0], c_out, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = np.einsum("ncpq,ocpq->no", patch, weight)
    return y if bias is None else y + bias[:, None, None]


def conv_transpose2d_direct(x, weight, bias, stride, padding, output_padding):
    """PyTorch's definition: every input pixel scatters W[c] (C_out x kH x kW) into the
    output at (i*sh, j*sw); then crop ``padding`` from the top/left and keep
    (H-1)*s - 2p + k + output_padding rows/columns."""
    (sh, sw), (ph, pw), (oph, opw) = stride, padding, output_padding
    _, c_out, kh, kw = weight.shape
    n, _, h, w = x.shape
    full = np.zeros((n, c_out, (h - 1) * sh + kh + oph, (w - 1) * sw + kw + opw))
    for i in range(h):
        for j in range(w):
            full[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += \
                np.einsum("nc,copq->nopq", x[:, :, i, j], weight)
    oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
    y = full[:, :, ph:ph + oh, pw:pw + ow]
    return y if bias is None else y + bias[:, None, None]


# -- gradient checks -----------------------------------------------------------------

@given(st.integers(1, 4), st.integers(1, 30), st.integers(1, 30), st.booleans(), seeds)
def test_linear_gradients(n, in_features, out_features, bias, seed):
    rng = np.random.default_rng(seed)
    layer = Linear(in_features, out_features, bias=bias, rng=rng)
    assert_gradients_ok(layer, rng.standard_normal((n, in_features)), seed)


@given(conv_cases(), seeds)
@example(ENCODER_CASES[1], 0)
def test_conv2d_gradients(case, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_ok(case.conv(rng), rng.standard_normal(case.input_shape), seed)


@given(conv_transpose_cases(), seeds)
@example(DECODER_CASES[0], 0)
def test_conv_transpose2d_gradients(case, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_ok(case.conv_transpose(rng), rng.standard_normal(case.input_shape), seed)


def away_from_zero(rng, shape, margin=1e-3):
    """Values with |x| in [margin, 3]: a step of 1e-6 never crosses ReLU's kink."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(margin, 3.0, size=shape)


shapes = st.lists(st.integers(1, 6), min_size=2, max_size=4).map(tuple)


@given(shapes, seeds)
def test_relu_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    assert np.abs(x).min() > 1e-3
    results = assert_gradients_ok(ReLU(), x, seed)
    assert [r.tensor for r in results] == ["input"]


@given(shapes, seeds)
def test_sigmoid_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_ok(Sigmoid(), 3 * rng.standard_normal(shape), seed)


@given(shapes, seeds)
def test_flatten_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_ok(Flatten(), rng.standard_normal(shape), seed)


@given(st.integers(1, 4), st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple), seeds)
def test_unflatten_gradients(n, shape, seed):
    rng = np.random.default_rng(seed)
    assert_gradients_ok(Unflatten(shape), rng.standard_normal((n, math.prod(shape))), seed)


def small_network(c_in, rng):
    """Every layer type in one chain: (N, c_in, 6, 6) -> (N, 2, 3)."""
    return Sequential(
        Conv2d(c_in, 4, 3, stride=2, padding=1, rng=rng), ReLU(),                       # 4x3x3
        ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1, rng=rng),       # 3x6x6
        Sigmoid(), Flatten(),                                                          # 108
        Linear(108, 5, rng=rng), ReLU(),
        Linear(5, 6, rng=rng), Unflatten((2, 3)),
    )


def relu_margin(network, x):
    """Smallest |input| of any ReLU in the network (how close x is to a kink)."""
    margin = np.inf
    for layer in network:
        if isinstance(layer, ReLU):
            margin = min(margin, np.abs(x).min())
        x = layer.forward(x)
    return margin


@FEW
@given(st.integers(1, 3), st.integers(1, 3), seeds)
@example(n=1, c_in=1, seed=33)      # error 9.8e-7 with the default step 1e-6, 1.3e-8 with 1e-4
def test_sequential_gradients(n, c_in, seed):
    rng = np.random.default_rng(seed)
    network = small_network(c_in, rng).to(np.float64)
    x = rng.standard_normal((n, c_in, 6, 6))
    # Finite differences across a ReLU kink are meaningless, not wrong: skip such draws.
    assume(relu_margin(network, x) > 1e-4)
    # Behind a ReLU with few units on, the first layers' gradients can be 1e-4 of L's terms;
    # the round-off of a difference quotient, about 1e-16 |L| / h, is then 1e-6 of the gradient
    # at h = 1e-6. A larger step keeps it near 1e-8 while the truncation error (h^2) of these
    # smooth layers stays below 1e-9; steps that cross a kink shrink down to 1e-8.
    results = assert_gradients_ok(network, x, seed, step=1e-4, min_step=1e-8)
    assert [r.tensor for r in results] == ["input", "0.weight", "0.bias", "2.weight", "2.bias",
                                           "5.weight", "5.bias", "7.weight", "7.bias"]


def test_gradient_check_catches_a_wrong_backward():
    """The checker itself is not vacuous: a backward that is off by 1% fails it."""

    class SlightlyWrongLinear(Linear):
        def backward(self, grad_out):
            return 1.01 * super().backward(grad_out)

    class WrongBiasLinear(Linear):
        def backward(self, grad_out):
            grad_x = super().backward(grad_out)
            self.bias.grad *= 0.99
            return grad_x

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    results = {r.tensor: r for r in check_module(SlightlyWrongLinear(4, 5, rng=1), x, rng=0)}
    assert results["input"].error > 1e-3 and not results["input"].passed
    assert results["weight"].passed and results["bias"].passed
    results = {r.tensor: r for r in check_module(WrongBiasLinear(4, 5, rng=1), x, rng=0)}
    assert results["bias"].error > 1e-3 and results["input"].passed


# -- forward passes against their definitions ------------------------------------------

@MANY
@given(conv_cases(), seeds)
@example(ENCODER_CASES[0], 0)
def test_conv2d_forward_matches_direct_definition(case, seed):
    rng = np.random.default_rng(seed)
    layer = case.conv(rng)
    x = rng.standard_normal(case.input_shape)
    bias = layer.bias.data if case.bias else None
    expected = conv2d_direct(x, layer.weight.data, bias, case.stride, case.padding)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


@MANY
@given(conv_transpose_cases(), seeds)
@example(DECODER_CASES[1], 0)
def test_conv_transpose2d_forward_matches_direct_definition(case, seed):
    rng = np.random.default_rng(seed)
    layer = case.conv_transpose(rng)
    x = rng.standard_normal(case.input_shape)
    bias = layer.bias.data if case.bias else None
    expected = conv_transpose2d_direct(x, layer.weight.data, bias, case.stride, case.padding,
                                       case.output_padding)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12, atol=1e-12)


def test_linear_forward_matches_definition():
    rng = np.random.default_rng(0)
    layer = Linear(4, 3, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 4))
    expected = [[sum(layer.weight.data[o, i] * x[n, i] for i in range(4)) + layer.bias.data[o]
                 for o in range(3)] for n in range(2)]
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)


def test_activation_and_reshape_forwards():
    x = np.array([[-2.0, -0.0, 0.5, 3.0]])
    np.testing.assert_array_equal(ReLU().forward(x), [[0.0, 0.0, 0.5, 3.0]])
    np.testing.assert_allclose(Sigmoid().forward(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    big = np.array([[-1000.0, 1000.0]])
    with np.errstate(over="raise"):
        np.testing.assert_array_equal(Sigmoid().forward(big), [[0.0, 1.0]])
    x4 = np.arange(24.0).reshape(2, 3, 2, 2)
    flat = Flatten().forward(x4)
    np.testing.assert_array_equal(flat, x4.reshape(2, 12))
    np.testing.assert_array_equal(Unflatten((3, 2, 2)).forward(flat), x4)


@given(shapes, st.booleans(), seeds)
def test_inplace_relu_gradients_and_aliasing(shape, nhwc, seed):
    """ReLU(inplace=True) overwrites its input in forward and its upstream gradient in
    backward; the values are those of ReLU(). check_module can't nudge an input the layer
    overwrites, so the finite differences run on a fresh copy of x each time."""
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape)
    g = rng.standard_normal(shape)
    if nhwc and len(shape) == 4:          # channels-last memory seen as NCHW, as in the models
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        g = np.ascontiguousarray(g.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    plain, inplace = ReLU(), ReLU(inplace=True)
    expected_y, expected_dx = plain.forward(x), plain.backward(g)
    x_work, g_work = x.copy(order="K"), g.copy(order="K")
    y = inplace.forward(x_work)
    assert np.shares_memory(y, x_work)
    np.testing.assert_array_equal(x_work, expected_y)
    dx = inplace.backward(g_work)
    assert np.shares_memory(dx, g_work)
    np.testing.assert_array_equal(dx, expected_dx)

    x_check = np.ascontiguousarray(x)
    results = finite_difference_check(
        lambda: float(np.sum(inplace.forward(x_check.copy()) * g)), {"input": x_check},
        {"input": expected_dx})
    assert results[0].error < TOLERANCE, results


def test_relu_subgradient_at_zero_is_zero():
    relu = ReLU()
    relu.forward(np.array([[-1.0, 0.0, 1.0]]))
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0.0, 0.0, 1.0]])


# -- memory layouts ------------------------------------------------------------------------

def nhwc_view(a):
    """The same values, stored channels-last and seen as NCHW (what the layers pass on)."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


@given(st.booleans(), st.data(), seeds)
def test_layers_give_identical_results_for_nchw_and_channels_last_memory(transposed, data, seed):
    """Inside the models the convolutions pass each other channels-last memory seen as
    NCHW; a plain NCHW array must give bit-identical outputs and gradients."""
    case = data.draw(conv_transpose_cases() if transposed else conv_cases())
    rng = np.random.default_rng(seed)
    factory = case.conv_transpose if transposed else case.conv
    x = rng.standard_normal(case.input_shape)
    g = rng.standard_normal(factory(rng=seed).output_shape(x.shape))
    results = []
    for to_layout in (np.ascontiguousarray, nhwc_view):
        layer = factory(rng=seed)
        y = layer.forward(to_layout(x))
        dx = layer.backward(to_layout(g))
        results.append((y.copy(), dx.copy(), grads(layer)))
    (y0, dx0, grads0), (y1, dx1, grads1) = results
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(dx0, dx1)
    for name in grads0:
        np.testing.assert_array_equal(grads0[name], grads1[name])


# -- adjointness of Conv2d and ConvTranspose2d ------------------------------------------

@MANY
@given(conv_cases(), seeds)
@example(ConvCase(2, 64, 128, 7, 7, (3, 3), (2, 2), (1, 1), bias=False), 0)
def test_conv_transpose_is_the_adjoint_of_conv(case, seed):
    """Conv2d(Cin -> Cout) and ConvTranspose2d(Cout -> Cin) sharing one weight array:
    <conv(x), y> == <x, convT(y)>, with output_padding chosen to restore the input size."""
    rng = np.random.default_rng(seed)
    output_padding = tuple((size + 2 * p - k) % s for size, k, s, p in
                           zip((case.h, case.w), case.kernel, case.stride, case.padding))
    conv = Conv2d(case.c_in, case.c_out, case.kernel, case.stride, case.padding, bias=False,
                  rng=rng, dtype=np.float64)
    conv_t = ConvTranspose2d(case.c_out, case.c_in, case.kernel, case.stride, case.padding,
                             output_padding, bias=False, rng=rng, dtype=np.float64)
    # PyTorch's conventions make the two weights the same shape: (Cout, Cin, kH, kW).
    assert conv.weight.shape == conv_t.weight.shape == (case.c_out, case.c_in, *case.kernel)
    conv_t.weight.data = conv.weight.data
    x = rng.standard_normal(case.input_shape)
    conv_x = conv.forward(x)
    y = rng.standard_normal(conv_x.shape)
    conv_t_y = conv_t.forward(y)
    assert conv_t_y.shape == x.shape
    lhs, rhs = np.vdot(conv_x, y), np.vdot(x, conv_t_y)
    scale = np.vdot(np.abs(x), np.abs(conv_t_y)) + np.vdot(np.abs(conv_x), np.abs(y))
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)


# -- shapes and initialisation -----------------------------------------------------------

def pytorch_conv_out(size, k, s, p):
    """torch.nn.Conv2d docs: floor((H + 2p - dilation*(k-1) - 1) / s + 1), dilation 1."""
    return math.floor((size + 2 * p - (k - 1) - 1) / s + 1)


def pytorch_conv_transpose_out(size, k, s, p, op):
    """torch.nn.ConvTranspose2d docs: (H-1)*s - 2p + dilation*(k-1) + output_padding + 1."""
    return (size - 1) * s - 2 * p + (k - 1) + op + 1


@MANY
@given(conv_cases(max_size=20))
def test_conv2d_shapes_follow_pytorch(case):
    layer = case.conv(rng=0, dtype=np.float32)
    assert layer.weight.shape == (case.c_out, case.c_in, *case.kernel)
    assert (layer.bias is None) if not case.bias else layer.bias.shape == (case.c_out,)
    expected = (case.n, case.c_out) + tuple(
        pytorch_conv_out(size, k, s, p) for size, k, s, p in
        zip((case.h, case.w), case.kernel, case.stride, case.padding))
    assert layer.output_shape(case.input_shape) == expected
    assert layer.forward(np.zeros(case.input_shape, np.float32)).shape == expected


@MANY
@given(conv_transpose_cases(max_size=12))
def test_conv_transpose2d_shapes_follow_pytorch(case):
    layer = case.conv_transpose(rng=0, dtype=np.float32)
    assert layer.weight.shape == (case.c_in, case.c_out, *case.kernel)
    assert (layer.bias is None) if not case.bias else layer.bias.shape == (case.c_out,)
    expected = (case.n, case.c_out) + tuple(
        pytorch_conv_transpose_out(size, k, s, p, op) for size, k, s, p, op in
        zip((case.h, case.w), case.kernel, case.stride, case.padding, case.output_padding))
    assert layer.output_shape(case.input_shape) == expected
    assert layer.forward(np.zeros(case.input_shape, np.float32)).shape == expected


def test_linear_shapes_follow_pytorch():
    layer = Linear(7, 3, rng=0)
    assert layer.weight.shape == (3, 7) and layer.bias.shape == (3,)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert [name for name, _ in Linear(7, 3, bias=False).named_parameters()] == ["weight"]
    assert layer.forward(np.zeros((5, 7), np.float32)).shape == (5, 3)


def test_non_square_kernel_stride_padding_shapes():
    conv = Conv2d(2, 3, (2, 4), stride=(1, 3), padding=(1, 2), rng=0)
    assert conv.weight.shape == (3, 2, 2, 4)
    assert conv.forward(np.zeros((1, 2, 5, 9), np.float32)).shape == (1, 3, 6, 4)
    conv_t = ConvTranspose2d(2, 3, (2, 4), stride=(1, 3), padding=(1, 2), output_padding=(0, 2),
                             rng=0)
    assert conv_t.weight.shape == (2, 3, 2, 4)
    # H: (5-1)*1 - 2 + 2 + 0 = 4;  W: (9-1)*3 - 4 + 4 + 2 = 26
    assert conv_t.forward(np.zeros((1, 2, 5, 9), np.float32)).shape == (1, 3, 4, 26)


INIT_CASES = [
    # (factory, fan_in = weight.shape[1] * kH * kW)
    (lambda rng: Linear(100, 64, rng=rng), 100),
    (lambda rng: Conv2d(16, 32, 3, rng=rng), 16 * 3 * 3),
    (lambda rng: Conv2d(3, 40, (2, 5), rng=rng), 3 * 2 * 5),
    (lambda rng: ConvTranspose2d(16, 32, 3, rng=rng), 32 * 3 * 3),   # weight (C_in, C_out, k, k)
    (lambda rng: ConvTranspose2d(128, 64, 3, rng=rng), 64 * 3 * 3),
]


@pytest.mark.parametrize("factory, fan_in", INIT_CASES)
def test_default_init_is_pytorchs_uniform_fan_in(factory, fan_in):
    layer = factory(np.random.default_rng(0))
    bound = 1 / math.sqrt(fan_in)
    weight, bias = layer.weight.data, layer.bias.data
    assert weight.dtype == bias.dtype == np.float32
    for values, name in ((weight, "weight"), (bias, "bias")):
        assert np.abs(values).max() <= bound * (1 + 1e-6), name
        # ... and actually spread over the interval, not squeezed into a corner of it.
        assert values.max() > 0.75 * bound and values.min() < -0.75 * bound, name
        assert abs(values.mean()) < 0.25 * bound, name
    # U(-b, b) has standard deviation b / sqrt(3).
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_init_is_reproducible_from_a_seed_or_generator():
    a, b, c = Conv2d(3, 4, 3, rng=7), Conv2d(3, 4, 3, rng=7), Conv2d(3, 4, 3, rng=8)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)
    d = Linear(5, 5, rng=np.random.default_rng(3))
    e = Linear(5, 5, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(d.bias.data, e.bias.data)


# -- gradient accumulation -------------------------------------------------------------

ACCUMULATION_LAYERS = [
    (lambda: Linear(6, 4, rng=1, dtype=np.float64), (3, 6)),
    (lambda: Conv2d(2, 3, 3, stride=2, padding=1, rng=1, dtype=np.float64), (2, 2, 7, 6)),
    (lambda: ConvTranspose2d(2, 3, 4, stride=2, padding=1, rng=1, dtype=np.float64), (2, 2, 3, 5)),
]


def grads(layer):
    return {name: p.grad.copy() for name, p in layer.named_parameters()}


@pytest.mark.parametrize("factory, shape", ACCUMULATION_LAYERS)
def test_two_backward_calls_add_up(factory, shape):
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal(shape), rng.standard_normal(shape)
    layer = factory()
    g1 = rng.standard_normal(layer.forward(x1).shape)
    g2 = rng.standard_normal(g1.shape)

    def single(x, g):
        fresh = factory()
        fresh.forward(x)
        fresh.backward(g)
        return grads(fresh)

    one, two = single(x1, g1), single(x2, g2)
    # forward/backward twice on different data: the gradients are summed, not replaced.
    layer.forward(x1)
    dx1 = layer.backward(g1)
    layer.forward(x2)
    layer.backward(g2)
    for name, value in grads(layer).items():
        np.testing.assert_allclose(value, one[name] + two[name], rtol=1e-12, atol=1e-14)
    # two backward calls after one forward: twice the gradient, same input gradient.
    layer.zero_grad()
    assert all(not p.grad.any() for p in layer.parameters())
    layer.forward(x1)
    np.testing.assert_array_equal(layer.backward(g1), dx1)
    np.testing.assert_array_equal(layer.backward(g1), dx1)
    for name, value in grads(layer).items():
        np.testing.assert_allclose(value, 2 * one[name], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("factory, shape", ACCUMULATION_LAYERS + [
    (lambda: Sigmoid(), (2, 3, 4)), (lambda: ReLU(), (2, 3, 4)),
    (lambda: Sequential(Conv2d(2, 3, 3, stride=2, padding=1, rng=1, dtype=np.float64), ReLU(),
                        ConvTranspose2d(3, 2, 3, stride=2, padding=1, rng=1, dtype=np.float64)),
     (2, 2, 7, 7))])
def test_results_are_not_overwritten_by_the_next_call(factory, shape):
    """The layers reuse scratch buffers between steps; what they return must not be one."""
    rng = np.random.default_rng(0)
    layer = factory()
    x1, x2 = rng.standard_normal(shape), rng.standard_normal(shape)
    y1 = layer.forward(x1)
    g1 = rng.standard_normal(y1.shape)
    dx1 = layer.backward(g1)
    saved_y1, saved_dx1 = y1.copy(), dx1.copy()
    y2 = layer.forward(x2)
    dx2 = layer.backward(rng.standard_normal(y2.shape))
    np.testing.assert_array_equal(y1, saved_y1)
    np.testing.assert_array_equal(dx1, saved_dx1)
    assert not np.shares_memory(y1, y2) and not np.shares_memory(dx1, dx2)


# -- dtypes ----------------------------------------------------------------------------

DTYPE_LAYERS = {
    "Linear": (lambda dtype: Linear(6, 4, rng=0, dtype=dtype), (3, 6)),
    "Conv2d": (lambda dtype: Conv2d(2, 3, 3, stride=2, padding=1, rng=0, dtype=dtype), (2, 2, 7, 6)),
    "ConvTranspose2d": (lambda dtype: ConvTranspose2d(2, 3, 4, stride=2, padding=1,
                                                      output_padding=1, rng=0, dtype=dtype),
                        (2, 2, 3, 5)),
    "ReLU": (lambda dtype: ReLU(), (2, 3, 4)),
    "ReLU(inplace)": (lambda dtype: ReLU(inplace=True), (2, 3, 4)),
    "Sigmoid": (lambda dtype: Sigmoid(), (2, 3, 4)),
    "Flatten": (lambda dtype: Flatten(), (2, 3, 4)),
    "Unflatten": (lambda dtype: Unflatten((3, 4)), (2, 12)),
    "Sequential": (lambda dtype: Sequential(Conv2d(2, 3, 3, stride=2, padding=1, rng=0, dtype=dtype),
                                            ReLU(), Flatten(), Linear(3 * 4 * 3, 5, rng=0, dtype=dtype),
                                            Sigmoid()), (2, 2, 7, 6)),
}


@pytest.mark.parametrize("name", DTYPE_LAYERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved_forward_and_backward(name, dtype):
    factory, shape = DTYPE_LAYERS[name]
    layer = factory(dtype)
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y = layer.forward(x)
    assert y.dtype == dtype, f"{name} forward: {x.dtype} in, {y.dtype} out"
    grad_x = layer.backward(np.ones_like(y))
    assert grad_x.dtype == dtype, f"{name} backward: {grad_x.dtype}"
    assert grad_x.shape == x.shape
    for pname, p in layer.named_parameters():
        assert p.data.dtype == p.grad.dtype == dtype, pname


@pytest.mark.parametrize("name", ["Linear", "Conv2d", "ConvTranspose2d", "Sequential"])
def test_mismatched_input_dtype_raises_type_error(name):
    factory, shape = DTYPE_LAYERS[name]
    for layer_dtype, input_dtype in ((np.float32, np.float64), (np.float64, np.float32)):
        layer = factory(layer_dtype)
        x = np.zeros(shape, dtype=input_dtype)
        with pytest.raises(TypeError) as info:
            layer.forward(x)
        message = str(info.value)
        assert np.dtype(input_dtype).name in message and np.dtype(layer_dtype).name in message
        assert re.match(r"(Linear|Conv2d|ConvTranspose2d)\(", message), message


def test_module_to_converts_parameters_and_gradients():
    layer = Conv2d(2, 3, 3, rng=0)
    layer.weight.grad += 1
    assert layer.to(np.float64) is layer
    assert layer.dtype == np.float64
    for p in layer.parameters():
        assert p.data.dtype == p.grad.dtype == np.float64 and not p.grad.any()


# -- bad input -------------------------------------------------------------------------

BAD_INPUTS = [
    # (layer, bad input shape, layer name, expected-shape text in the message)
    (lambda: Linear(10, 3), (4, 10, 1), "Linear", "(N, 10)"),          # wrong ndim
    (lambda: Linear(10, 3), (4,), "Linear", "(N, 10)"),
    (lambda: Linear(10, 3), (4, 9), "Linear", "(N, 10)"),              # wrong features
    (lambda: Conv2d(3, 4, 3), (3, 8, 8), "Conv2d", "(N, 3, H, W)"),
    (lambda: Conv2d(3, 4, 3), (2, 1, 3, 8, 8), "Conv2d", "(N, 3, H, W)"),
    (lambda: Conv2d(3, 4, 3), (2, 4, 8, 8), "Conv2d", "(N, 3, H, W)"),  # wrong channels
    (lambda: Conv2d(3, 4, 5), (2, 3, 4, 8), "Conv2d", "H >= 5"),        # too small for k
    (lambda: Conv2d(3, 4, 5, padding=1), (2, 3, 8, 2), "Conv2d", "W >= 3"),
    (lambda: Conv2d(3, 4, 3, padding=2), (2, 3, 0, 0), "Conv2d", "H >= 1"),   # empty image
    (lambda: ConvTranspose2d(4, 2, 5), (1, 4, 0, 3), "ConvTranspose2d", "(N, 4, H, W)"),
    (lambda: ConvTranspose2d(4, 2, 3), (4, 6, 6), "ConvTranspose2d", "(N, 4, H, W)"),
    (lambda: ConvTranspose2d(4, 2, 3), (1, 3, 6, 6), "ConvTranspose2d", "(N, 4, H, W)"),
    (lambda: ConvTranspose2d(4, 2, 3, padding=2), (1, 4, 1, 5), "ConvTranspose2d", "(N, 4, H, W)"),
    (lambda: Unflatten((3, 4)), (2, 13), "Unflatten", "(N, 12)"),
    (lambda: Unflatten((3, 4)), (2, 3, 4), "Unflatten", "(N, 12)"),
    (lambda: Flatten(), (5,), "Flatten", "(N, ...)"),
]


@pytest.mark.parametrize("factory, shape, layer_name, expected", BAD_INPUTS)
def test_bad_input_shape_raises_value_error_naming_layer_and_shapes(factory, shape, layer_name,
                                                                    expected):
    layer = factory()
    with pytest.raises(ValueError) as info:
        layer.forward(np.zeros(shape, dtype=np.float32))
    message = str(info.value)
    assert message.startswith(layer_name), message
    assert expected in message, message
    assert str(shape) in message, message


def test_non_array_input_raises_type_error():
    with pytest.raises(TypeError, match="numpy array"):
        Linear(2, 2).forward([[1.0, 2.0]])


@pytest.mark.parametrize("layer", [Linear(2, 2), Conv2d(1, 1, 1), ConvTranspose2d(1, 1, 1), ReLU(),
                                   Sigmoid(), Flatten(), Unflatten((2,)),
                                   Sequential(Linear(2, 2), ReLU())],
                         ids=lambda layer: type(layer).__name__)
def test_backward_before_forward_raises(layer):
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((1, 2), dtype=np.float32))


def test_reparameterize_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        Reparameterize().backward(np.zeros((1, 2)))


@pytest.mark.parametrize("factory", [
    lambda: ConvTranspose2d(2, 2, 3, stride=2, output_padding=2),
    lambda: ConvTranspose2d(2, 2, 3, stride=1, output_padding=1),
    lambda: ConvTranspose2d(2, 2, 3, stride=(2, 1), output_padding=(1, 1)),
    lambda: ConvTranspose2d(2, 2, 3, output_padding=-1),
    lambda: ConvTranspose2d(0, 2, 3),
    lambda: ConvTranspose2d(2, 0, 3),
    lambda: Conv2d(0, 2, 3),
    lambda: Conv2d(2, 0, 3),
    lambda: Conv2d(2, 2, 0),
    lambda: Conv2d(2, 2, 3, stride=0),
    lambda: Conv2d(2, 2, 3, padding=-1),
    lambda: Conv2d(2, 2, (3, 3, 3)),
    lambda: Conv2d(2, 2, 2.5),
    lambda: Linear(0, 3),
    lambda: Linear(3, 0),
])
def test_invalid_constructor_arguments_raise(factory):
    with pytest.raises(ValueError):
        factory()


def test_output_padding_error_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"output_padding \(2, 2\) must be smaller than stride"):
        ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)


# -- state dicts -----------------------------------------------------------------------

def test_state_dict_round_trip():
    source, target = small_network(2, rng=0), small_network(2, rng=1)
    x = np.random.default_rng(0).standard_normal((2, 2, 6, 6)).astype(np.float32)
    assert not np.array_equal(source.forward(x), target.forward(x))
    state = source.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias", "5.weight", "5.bias",
                           "7.weight", "7.bias"]
    target.load_state_dict(state)
    np.testing.assert_array_equal(source.forward(x), target.forward(x))
    # The state holds copies: training the source afterwards doesn't change it...
    source[0].weight.data += 1
    np.testing.assert_array_equal(state["0.weight"], target[0].weight.data)
    # ... and the loaded model doesn't alias the state either.
    state["2.bias"][:] = 0
    assert target[2].bias.data.any()


def test_load_state_dict_keeps_the_model_dtype_and_resets_gradients():
    layer = Linear(3, 2, rng=0)
    layer.weight.grad += 1
    state = {name: value.astype(np.float64) for name, value in layer.state_dict().items()}
    layer.load_state_dict(state)
    assert layer.weight.data.dtype == np.float32
    assert not layer.weight.grad.any()


def test_load_state_dict_rejects_mismatches():
    layer = Sequential(Linear(3, 2, rng=0), ReLU(), Linear(2, 4, rng=0))
    state = layer.state_dict()
    wrong_shape = dict(state, **{"2.weight": np.zeros((4, 3))})
    with pytest.raises(ValueError, match=r"'2\.weight' has shape \(4, 3\) in the state, \(4, 2\)"):
        layer.load_state_dict(wrong_shape)
    missing = {k: v for k, v in state.items() if k != "0.bias"}
    with pytest.raises(ValueError, match=r"missing keys \['0\.bias'\]"):
        layer.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected keys \['3\.weight'\]"):
        layer.load_state_dict(dict(state, **{"3.weight": np.zeros(2)}))


# -- a first layer that needs no input gradient -----------------------------------------

def test_conv2d_without_input_gradient_still_fills_parameter_gradients():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 7))
    full = Conv2d(3, 4, 4, stride=2, padding=1, rng=5, dtype=np.float64)
    first = Conv2d(3, 4, 4, stride=2, padding=1, rng=5, dtype=np.float64)
    first.requires_input_grad = False
    g = rng.standard_normal(full.forward(x).shape)
    full.backward(g)
    np.testing.assert_array_equal(first.forward(x), full.forward(x))
    assert first.backward(g) is None
    np.testing.assert_allclose(first.weight.grad, full.weight.grad, rtol=1e-13)
    np.testing.assert_allclose(first.bias.grad, full.bias.grad, rtol=1e-13)
    assert first.weight.grad.any()
    # The gradient check then covers the parameters only.
    assert [r.tensor for r in assert_gradients_ok(first, x, 0)] == ["weight", "bias"]


def test_parameter_listing_is_pytorch_like():
    net = small_network(1, rng=0)
    assert isinstance(net, Module)
    assert net.num_parameters() == sum(p.data.size for p in net.parameters())
    assert net.num_parameters() == (4 * 1 * 9 + 4) + (4 * 3 * 9 + 3) + (108 * 5 + 5) + (5 * 6 + 6)


def test_inplace_relu_below_a_flatten_returns_the_outputs_layout():
    # ReLU's output is channels-last memory; Flatten's gradient comes back C-ordered NCHW.
    rng = np.random.default_rng(0)
    x = np.ascontiguousarray(rng.standard_normal((2, 4, 3, 3)).astype(np.float32).transpose(0, 2, 3, 1))
    x = x.transpose(0, 3, 1, 2)
    relu, flatten = ReLU(inplace=True), Flatten()
    y = relu.forward(x)
    g = rng.standard_normal((2, 36)).astype(np.float32)
    dx = relu.backward(flatten.backward(g.copy()) if flatten.forward(y) is not None else None)
    assert dx.strides == y.strides
    np.testing.assert_array_equal(dx, np.where(y > 0, g.reshape(2, 4, 3, 3), 0))
