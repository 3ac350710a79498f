"""One configuration of each layer type, checked through npvae.gradcheck.check_module.

Each function builds the layer and its input from ``rng`` and returns ``(Label, TensorCheck)``
rows. Checks on 4-D tensors note their memory layout: ``NHWC mem`` means a channels-last
array seen through an NCHW view, which is what the layers pass each other inside the
models (the upstream gradient G is laid out the same way); ``NCHW`` is a plain C-ordered
array. Both must give the same gradients. ``layout`` is "NCHW" or "NHWC".
"""
import math

import numpy as np

from ..models.architecture import build_decoder, build_encoder
from ..nn import ConditionedConv2d, Conv2d, ConvTranspose2d, Flatten, Linear, ReLU, Sigmoid, Unflatten
from .finite_differences import DEFAULT_TOLERANCE, check_module
from .table import Label

DEFAULT_MAX_ENTRIES = 64     # entries checked per tensor (a random subset); None = all
BATCH = 2                    # the batch of the paper-shaped checks
SEQUENTIAL_MIN_STEP = 1e-7   # how far a step may shrink to stay off a ReLU kink inside a network


def labelled(layer, config, checks):
    label = Label(layer, config)
    return [(label, c) for c in checks]


def shape_text(shape):
    return "x".join(str(s) for s in shape)


def _hw(value):
    """An int or (h, w) -> 'h' when square, else 'hxw'."""
    h, w = (value, value) if np.isscalar(value) else value
    return f"{h}" if h == w else f"{h}x{w}"


def _layout_text(layout, shape):
    if len(shape) != 4:
        return "-"
    return "NHWC mem" if layout == "NHWC" else "NCHW"


def random_array(rng, shape, layout="NCHW", scale=1.0, low=None):
    """A float64 test array; layout "NHWC": a 4-D channels-last array seen as NCHW.
    ``low``: keep every entry at least this far from zero (for ReLU's kink)."""
    if len(shape) == 4 and layout == "NHWC":
        n, c, h, w = shape
        base = rng.standard_normal((n, h, w, c)) * scale
        view = base.transpose(0, 3, 1, 2)
    else:
        base = rng.standard_normal(shape) * scale
        view = base
    if low is not None:
        np.copyto(base, np.sign(base) * (low + np.abs(base)))
        base[base == 0] = low
    return view


def _check(layer, x, rng, max_entries, tolerance, layout="NCHW", output_shape=None, min_step=None):
    """check_module, with G drawn channels-last when the layout asks for it."""
    grad_output = None
    if layout == "NHWC" and output_shape is not None and len(output_shape) == 4:
        grad_output = random_array(rng, output_shape, layout)
    return check_module(layer, x, rng, max_entries, tolerance=tolerance, min_step=min_step,
                        grad_output=grad_output)


def conv2d(rng, in_channels=3, out_channels=4, kernel=3, stride=1, padding=0, batch=BATCH,
           size=8, layout="NCHW", bias=True, note="", max_entries=DEFAULT_MAX_ENTRIES,
           tolerance=DEFAULT_TOLERANCE):
    """Conv2d(in, out, kernel, stride, padding) on a (batch, in, size, size) input."""
    h, w = (size, size) if np.isscalar(size) else size
    layer = Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias, rng=rng, dtype=np.float64)
    out = layer.output_shape((batch, in_channels, h, w))
    config = (f"{in_channels}->{out_channels} k{_hw(kernel)} s{_hw(stride)} p{_hw(padding)}"
              f"{'' if bias else ' nobias'}, {h}x{w}->{out[2]}x{out[3]}, N={batch}, "
              f"{_layout_text(layout, out)}{note}")
    x = random_array(rng, (batch, in_channels, h, w), layout)
    return labelled("conv2d", config, _check(layer, x, rng, max_entries, tolerance, layout, out))


def conditioned_conv2d(rng, in_channels=1, conditions=3, out_channels=4, kernel=3, stride=2,
                       padding=1, batch=BATCH, size=8, note="", max_entries=DEFAULT_MAX_ENTRIES,
                       tolerance=DEFAULT_TOLERANCE):
    """ConditionedConv2d on an image of ``in_channels`` plus ``conditions`` constant planes
    (soft conditions): the parameters' gradients (its inputs are data and get none)."""
    h, w = (size, size) if np.isscalar(size) else size
    layer = ConditionedConv2d(in_channels, conditions, out_channels, kernel, stride, padding,
                              rng=rng, dtype=np.float64)
    values = rng.random((batch, conditions))
    planes = np.broadcast_to(values[:, :, None, None], (batch, conditions, h, w))
    x = np.concatenate([rng.standard_normal((batch, in_channels, h, w)), planes], axis=1)
    out = layer.output_shape(x.shape)
    config = (f"{in_channels}+{conditions}->{out_channels} k{_hw(kernel)} s{_hw(stride)} "
              f"p{_hw(padding)}, {h}x{w}->{out[2]}x{out[3]}, N={batch}{note}")
    return labelled("conditionedconv2d", config, _check(layer, x, rng, max_entries, tolerance))


def convtranspose2d(rng, in_channels=3, out_channels=4, kernel=3, stride=1, padding=0,
                    output_padding=0, batch=BATCH, size=5, layout="NCHW", bias=True, note="",
                    max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """ConvTranspose2d(in, out, kernel, stride, padding, output_padding) on (batch, in, size, size)."""
    h, w = (size, size) if np.isscalar(size) else size
    layer = ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, output_padding,
                            bias=bias, rng=rng, dtype=np.float64)
    out = layer.output_shape((batch, in_channels, h, w))
    config = (f"{in_channels}->{out_channels} k{_hw(kernel)} s{_hw(stride)} p{_hw(padding)} "
              f"op{_hw(output_padding)}{'' if bias else ' nobias'}, {h}x{w}->{out[2]}x{out[3]}, "
              f"N={batch}, {_layout_text(layout, out)}{note}")
    x = random_array(rng, (batch, in_channels, h, w), layout)
    return labelled("convtranspose2d", config, _check(layer, x, rng, max_entries, tolerance, layout, out))


def linear(rng, in_features=5, out_features=4, batch=BATCH, bias=True, note="",
           max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """Linear(in, out) on a (batch, in) input."""
    layer = Linear(in_features, out_features, bias=bias, rng=rng, dtype=np.float64)
    config = f"{in_features}->{out_features}{'' if bias else ' nobias'}, N={batch}{note}"
    x = random_array(rng, (batch, in_features))
    return labelled("linear", config, _check(layer, x, rng, max_entries, tolerance))


def relu(rng, shape=(BATCH, 3, 5, 5), inplace=False, layout="NCHW", note="",
         max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """ReLU on an input whose entries all stay at least 0.05 away from the kink at 0."""
    config = f"{shape_text(shape)}{', inplace' if inplace else ''}, {_layout_text(layout, shape)}{note}"
    x = random_array(rng, shape, layout, low=0.05)
    return labelled("relu", config, _check(ReLU(inplace=inplace), x, rng, max_entries, tolerance,
                                           layout, shape))


def sigmoid(rng, shape=(BATCH, 1, 28, 28), scale=4.0, layout="NCHW", note="",
            max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """Sigmoid on inputs of spread ``scale`` (large |x| takes the overflow-free branch)."""
    config = f"{shape_text(shape)}, x~N(0,{scale:g}^2), {_layout_text(layout, shape)}{note}"
    x = random_array(rng, shape, layout, scale)
    return labelled("sigmoid", config, _check(Sigmoid(), x, rng, max_entries, tolerance, layout, shape))


def flatten(rng, shape=(BATCH, 128, 4, 4), layout="NCHW", note="",
            max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    config = f"{shape_text(shape)}->{shape[0]}x{math.prod(shape[1:])}, {_layout_text(layout, shape)}{note}"
    x = random_array(rng, shape, layout)
    return labelled("flatten", config, _check(Flatten(), x, rng, max_entries, tolerance))


def unflatten(rng, batch=BATCH, shape=(128, 4, 4), note="",
              max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    config = f"{batch}x{math.prod(shape)}->{batch}x{shape_text(shape)}{note}"
    x = random_array(rng, (batch, math.prod(shape)))
    return labelled("unflatten", config, _check(Unflatten(shape), x, rng, max_entries, tolerance))


def encoder(rng, in_channels=1, batch=BATCH, note="", max_entries=DEFAULT_MAX_ENTRIES,
            tolerance=DEFAULT_TOLERANCE):
    """The paper's encoder (Table 1) as one Sequential, input gradient included."""
    net = build_encoder(in_channels, 0, rng)
    net[0].requires_input_grad = True           # the model skips it; check it here anyway
    config = f"Table 1, {in_channels}x28x28->2048, N={batch}{note}"
    x = random_array(rng, (batch, in_channels, 28, 28))
    return labelled("encoder", config, _check(net, x, rng, max_entries, tolerance,
                                              min_step=SEQUENTIAL_MIN_STEP))


def decoder(rng, input_dim=2, batch=BATCH, note="", max_entries=DEFAULT_MAX_ENTRIES,
            tolerance=DEFAULT_TOLERANCE):
    """The paper's decoder (Table 2) as one Sequential, up to the logits."""
    net = build_decoder(input_dim, rng)
    config = f"Table 2, {input_dim}->1x28x28 logits, N={batch}{note}"
    x = random_array(rng, (batch, input_dim))
    return labelled("decoder", config, _check(net, x, rng, max_entries, tolerance,
                                              min_step=SEQUENTIAL_MIN_STEP))
