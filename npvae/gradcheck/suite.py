"""The named gradient checks: every layer, both losses, the reparameterisation, whole models.

This is the one place the standard checks live. ``npvae gradcheck`` and the test suite
(``tests/test_gradcheck_suite.py``) both call it, so what the command reports is exactly
what the tests assert.

Each entry of :data:`CHECKS` is a function ``check(rng, max_entries, tolerance, n_random)``
returning a list of ``(Label, TensorCheck)``: the layer checked on the paper's shapes
(Tables 1 and 2, batch 2) and on ``n_random`` configurations drawn from ``rng``. The
single-configuration functions (``conv2d``, ``linear``, ...) are what those entries are
made of, and what ``npvae gradcheck conv2d --in 3 --out 4 ...`` calls.

Everything runs in float64 with central differences (npvae.gradcheck). A layer with
output y is checked through L = sum(y * G) for a fixed random G; a loss is checked on
its own scalar; a whole model through the training loss BCE + beta * KL with a fixed eps.
Checks on 4-D tensors note their memory layout: ``NHWC mem`` means a channels-last
array seen through an NCHW view, which is what the layers pass each other inside the
models; ``NCHW`` is a plain C-ordered array. Both must give the same gradients.
"""
import math
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .finite_differences import (DEFAULT_STEP, DEFAULT_TOLERANCE, TensorCheck, entries_to_nudge,
                        finite_difference_check, relative_error)
from ..losses import BernoulliLoss, GaussianKL, GaussianLoss, gaussian_kl, kl_grad_sigma
from ..nn import (POSTERIOR_LOGVAR_MAX, POSTERIOR_LOGVAR_MIN, ConditionedConv2d, Conv2d, ConvTranspose2d, Flatten, Linear, Parameter, ReLU,
                 Reparameterize, Sequential, Sigmoid, Unflatten)
from ..runtime import blas_threads
from ..models.architecture import build_decoder, build_encoder

DEFAULT_MAX_ENTRIES = 64     # entries checked per tensor (a random subset); None = all
DEFAULT_RANDOM = 3           # random configurations per layer type
MODEL_TOLERANCE = DEFAULT_TOLERANCE   # a whole model, once conditioned (see condition())
MODEL_STEP, MODEL_MIN_STEP = 1e-5, 1e-7
SEQUENTIAL_MIN_STEP = 1e-7
LOSS_STEP = 1e-4             # losses: BCE sums 784 pixels, sigma may reach e^10; less roundoff
BATCH = 2                    # the batch of the paper-shaped checks


class Label(NamedTuple):
    """What was checked: the layer (or loss, or model) and its configuration."""
    layer: str
    config: str

    def __str__(self):
        return f"{self.layer} [{self.config}]"

    def __format__(self, spec):          # so npvae.gradcheck.format_table can print it
        return format(str(self), spec)


@dataclass
class TimedCheck(TensorCheck):
    """A TensorCheck that also knows how long its finite differences took, and how many
    sampled entries were left out because every step tried crossed a ReLU kink."""
    seconds: float = 0.0
    kinks: int = 0


# -- the machinery every check shares ----------------------------------------------
def fd_check(scalar_fn, tensors, analytic, rng, max_entries=DEFAULT_MAX_ENTRIES,
             tolerance=DEFAULT_TOLERANCE, step=DEFAULT_STEP, pattern=None, min_step=None):
    """Central differences of ``scalar_fn`` for each tensor, each tensor timed.

    Without ``pattern`` this is npvae.gradcheck.finite_difference_check, one tensor at a
    time. With it, ``pattern()`` returns the on/off masks of every ReLU after the last
    ``scalar_fn()`` call. Across a ReLU kink a difference quotient measures a mixture of
    two slopes, not the gradient, so an entry whose step +h or -h flips a mask is taken
    with the second-order one-sided difference (-3 L(0) + 4 L(h) - L(2h)) / 2h on the
    side that flips none; if both sides flip, h is divided by 10, down to ``min_step``;
    past that the entry is left out (counted in ``kinks``).
    """
    results = []
    for name, array in tensors.items():
        started = time.perf_counter()
        if pattern is None:
            (check,) = finite_difference_check(scalar_fn, {name: array}, {name: analytic[name]},
                                               step, max_entries, rng, tolerance)
            kinks = 0
        else:
            check, kinks = _kink_aware_check(scalar_fn, pattern, name, array, analytic[name], rng,
                                             max_entries, tolerance, step, min_step or step)
        results.append(TimedCheck(check.tensor, check.error, check.checked, check.size,
                                  check.tolerance, time.perf_counter() - started, kinks))
    return results


def _same(masks, reference):
    return all(np.array_equal(a, b) for a, b in zip(masks, reference))


def _kink_aware_check(scalar_fn, pattern, name, array, analytic, rng, max_entries, tolerance,
                      step, min_step):
    flat, indices = entries_to_nudge(name, array, max_entries, rng)
    base = scalar_fn()
    reference = pattern()

    def at(i, value):
        flat[i] = value
        result = scalar_fn()
        return result, _same(pattern(), reference)

    used, numeric = [], []
    for i in indices:
        original, h = flat[i], step
        try:
            while h >= min_step * (1 - 1e-9):
                (plus, plus_ok), (minus, minus_ok) = at(i, original + h), at(i, original - h)
                if plus_ok and minus_ok:                  # the usual central difference
                    numeric.append((plus - minus) / (2 * h))
                elif plus_ok or minus_ok:                 # a kink on one side only: a second-
                    sign = 1 if plus_ok else -1           # order one-sided difference on the clean one
                    near = plus if plus_ok else minus
                    far, far_ok = at(i, original + 2 * sign * h)
                    if not far_ok:
                        h /= 10
                        continue
                    numeric.append(sign * (-3 * base + 4 * near - far) / (2 * h))
                else:
                    h /= 10
                    continue
                used.append(i)
                break
        finally:
            flat[i] = original
    expected = np.asarray(analytic).reshape(-1)[np.array(used, dtype=np.int64)]
    error = relative_error(expected, np.array(numeric)) if used else float("nan")
    return TensorCheck(name, error, len(used), flat.size, tolerance), len(indices) - len(used)


def _array(rng, shape, layout="NCHW", scale=1.0, low=None):
    """A float64 test array, and the contiguous array underneath it that gets nudged.

    layout "NHWC mem": a 4-D channels-last array seen as NCHW, like the models' activations.
    ``low``: keep every entry at least this far from zero (for ReLU's kink).
    """
    if len(shape) == 4 and layout == "NHWC mem":
        n, c, h, w = shape
        base = rng.standard_normal((n, h, w, c)) * scale
        view = base.transpose(0, 3, 1, 2)
    else:
        base = rng.standard_normal(shape) * scale
        view = base
    if low is not None:
        np.copyto(base, np.sign(base) * (low + np.abs(base)))
        base[base == 0] = low
    return view, base


def _to_base(grad, view, base):
    """Express a gradient for ``view`` in the memory order of ``base``."""
    if view is base:
        return np.asarray(grad).reshape(base.shape)
    return np.asarray(grad).transpose(0, 2, 3, 1)     # NCHW -> NHWC, as _array built it


def check_layer(module, x_shape, rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE,
                layout="NCHW", input_low=None, input_scale=1.0, step=DEFAULT_STEP, min_step=None):
    """A layer's input gradient and parameter gradients, through L = sum(y * G).

    Like npvae.gradcheck.check_module, plus: the input and G may be channels-last views;
    ``backward`` gets a copy of G (an in-place layer may overwrite its upstream gradient,
    as ReLU(inplace=True) does); and a Sequential with ReLUs inside is stepped through
    layer by layer so that steps crossing a ReLU kink are seen (see :func:`fd_check`).
    """
    module.to(np.float64)
    x, x_base = _array(rng, x_shape, layout, input_scale, input_low)
    layers = list(module) if isinstance(module, Sequential) else [module]
    watch = len(layers) > 1 and any(isinstance(layer, ReLU) for layer in layers)
    masks = []

    def forward(inp):
        if getattr(module, "inplace", False):
            inp = inp.copy(order="K")          # keep x itself intact
        masks.clear()
        for layer in layers:
            inp = layer.forward(inp)
            if watch and isinstance(layer, ReLU):
                masks.append(inp > 0)
        return inp

    weights, _ = _array(rng, forward(x).shape, layout)

    def scalar_fn():
        return float(np.sum(forward(x) * weights))

    module.zero_grad()
    forward(x)
    grad_x = module.backward(weights.copy(order="K"))
    tensors, analytic = {}, {}
    if grad_x is not None:
        tensors["input"], analytic["input"] = x_base, _to_base(grad_x, x, x_base)
    for name, p in module.named_parameters():
        tensors[name], analytic[name] = p.data, p.grad.copy()
    return fd_check(scalar_fn, tensors, analytic, rng, max_entries, tolerance, step,
                    pattern=(lambda: list(masks)) if watch else None, min_step=min_step)


def _shape_str(shape):
    return "x".join(str(s) for s in shape)


def _hw(value):
    """An int or (h, w) -> 'h' when square, else 'hxw'."""
    h, w = (value, value) if np.isscalar(value) else value
    return f"{h}" if h == w else f"{h}x{w}"


def _labelled(layer, config, checks):
    label = Label(layer, config)
    return [(label, c) for c in checks]


# -- one configuration of each layer type -------------------------------------------
def conv2d(rng, in_channels=3, out_channels=4, kernel=3, stride=1, padding=0, batch=BATCH,
           size=8, layout="NCHW", bias=True, note="", max_entries=DEFAULT_MAX_ENTRIES,
           tolerance=DEFAULT_TOLERANCE):
    """Conv2d(in, out, kernel, stride, padding) on a (batch, in, size, size) input."""
    h, w = (size, size) if np.isscalar(size) else size
    layer = Conv2d(in_channels, out_channels, kernel, stride, padding, bias=bias, rng=rng, dtype=np.float64)
    out = layer.output_shape((batch, in_channels, h, w))
    config = (f"{in_channels}->{out_channels} k{_hw(kernel)} s{_hw(stride)} p{_hw(padding)}"
              f"{'' if bias else ' nobias'}, {h}x{w}->{out[2]}x{out[3]}, N={batch}, {layout}{note}")
    return _labelled("conv2d", config, check_layer(layer, (batch, in_channels, h, w), rng,
                                                    max_entries, tolerance, layout))


def conditioned_conv2d(rng, image_channels=1, condition_channels=3, out_channels=4, kernel=3, stride=2,
                       padding=1, batch=BATCH, size=8, note="", max_entries=DEFAULT_MAX_ENTRIES,
                       tolerance=DEFAULT_TOLERANCE):
    """ConditionedConv2d on an image plus constant planes (soft conditions): the parameters'
    gradients (its inputs are data and get none)."""
    h, w = (size, size) if np.isscalar(size) else size
    layer = ConditionedConv2d(image_channels, condition_channels, out_channels, kernel, stride, padding,
                              rng=rng, dtype=np.float64)
    conditions = rng.random((batch, condition_channels))
    planes = np.broadcast_to(conditions[:, :, None, None], (batch, condition_channels, h, w))
    x = np.concatenate([rng.standard_normal((batch, image_channels, h, w)), planes], axis=1)
    weights = rng.standard_normal(layer.output_shape(x.shape))
    layer.zero_grad()
    layer.forward(x)
    layer.backward(weights.copy())
    tensors = {name: p.data for name, p in layer.named_parameters()}
    analytic = {name: p.grad.copy() for name, p in layer.named_parameters()}
    out = layer.output_shape(x.shape)
    config = (f"{image_channels}+{condition_channels}->{out_channels} k{_hw(kernel)} s{_hw(stride)} "
              f"p{_hw(padding)}, {h}x{w}->{out[2]}x{out[3]}, N={batch}{note}")
    return _labelled("conditionedconv2d", config,
                     fd_check(lambda: float(np.sum(layer.forward(x) * weights)), tensors, analytic, rng,
                              max_entries, tolerance))


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
              f"N={batch}, {layout}{note}")
    return _labelled("convtranspose2d", config,
                     check_layer(layer, (batch, in_channels, h, w), rng, max_entries, tolerance, layout))


def linear(rng, in_features=5, out_features=4, batch=BATCH, bias=True, note="",
           max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """Linear(in, out) on a (batch, in) input."""
    layer = Linear(in_features, out_features, bias=bias, rng=rng, dtype=np.float64)
    config = f"{in_features}->{out_features}{'' if bias else ' nobias'}, N={batch}{note}"
    return _labelled("linear", config, check_layer(layer, (batch, in_features), rng, max_entries, tolerance))


def relu(rng, shape=(BATCH, 3, 5, 5), inplace=False, layout="NCHW", note="",
         max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """ReLU on an input whose entries all stay at least 0.05 away from the kink at 0."""
    layout = layout if len(shape) == 4 else "-"
    config = f"{_shape_str(shape)}{', inplace' if inplace else ''}, {layout}{note}"
    return _labelled("relu", config, check_layer(ReLU(inplace=inplace), shape, rng, max_entries,
                                                  tolerance, layout, input_low=0.05))


def sigmoid(rng, shape=(BATCH, 1, 28, 28), scale=4.0, layout="NCHW", note="",
            max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """Sigmoid on inputs of spread ``scale`` (large |x| takes the overflow-free branch)."""
    layout = layout if len(shape) == 4 else "-"
    config = f"{_shape_str(shape)}, x~N(0,{scale:g}^2), {layout}{note}"
    return _labelled("sigmoid", config, check_layer(Sigmoid(), shape, rng, max_entries, tolerance,
                                                     layout, input_scale=scale))


def flatten(rng, shape=(BATCH, 128, 4, 4), layout="NCHW", note="",
            max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    config = f"{_shape_str(shape)}->{shape[0]}x{math.prod(shape[1:])}, {layout}{note}"
    return _labelled("flatten", config, check_layer(Flatten(), shape, rng, max_entries, tolerance, layout))


def unflatten(rng, batch=BATCH, shape=(128, 4, 4), note="",
              max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    config = f"{batch}x{math.prod(shape)}->{batch}x{_shape_str(shape)}{note}"
    return _labelled("unflatten", config, check_layer(Unflatten(shape), (batch, math.prod(shape)), rng,
                                                       max_entries, tolerance))


def bce(rng, shape=(BATCH, 1, 28, 28), binary=False, grad=1.0, note="",
        max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """BernoulliLoss (sigmoid fused into BCE): d(grad * loss)/dlogits = grad * (sigmoid(l) - x) / N."""
    logits = rng.standard_normal(shape) * 3
    target = (rng.random(shape) < 0.3).astype(np.float64) if binary else rng.random(shape)
    loss = BernoulliLoss()

    def scalar_fn():
        return grad * loss.forward(logits, target)

    loss.forward(logits, target)
    analytic = {"logits": loss.backward(grad).copy()}
    config = f"{_shape_str(shape)}, {'binary' if binary else 'real'} targets, grad {grad:g}{note}"
    return _labelled("bce", config, fd_check(scalar_fn, {"logits": logits}, analytic, rng,
                                             max_entries, tolerance, LOSS_STEP))


def gaussian(rng, shape=(BATCH, 1, 28, 28), learned=False, note="",
             max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """GaussianLoss (mean = sigmoid(logits)): d/dlogits and, when learned, d/d(pixel log-variance)."""
    logits = rng.standard_normal(shape) * 2
    target = rng.random(shape)
    tensors = {"logits": logits}
    if learned:
        logvar = Parameter(rng.uniform(-2.0, 1.0, shape[1:]))
        tensors["pixel_logvar"] = logvar.data
    else:
        logvar = float(rng.uniform(-2.0, 1.0))
    loss = GaussianLoss(logvar)

    def scalar_fn():
        return loss.forward(logits, target)

    loss.forward(logits, target)
    analytic = {"logits": loss.backward().copy()}
    if learned:
        analytic["pixel_logvar"] = logvar.grad.copy()
    config = f"{_shape_str(shape)}, {'learned per-pixel' if learned else 'fixed'} variance{note}"
    return _labelled("gaussian", config, fd_check(scalar_fn, tensors, analytic, rng,
                                                  max_entries, tolerance, LOSS_STEP))


def kl(rng, batch=BATCH, latent_dim=2, beta=1.0, clamped=False, note="",
       max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """GaussianKL: d(beta * KL)/dmu = beta mu / N, d(beta * KL)/dlogvar = beta (exp(logvar) - 1) / (2N).

    ``clamped``: some logvar entries lie below the clamp's lower bound -30, where both the
    loss and its gradient are flat in logvar. (Above the upper bound, 20, the KL is ~1e8
    nats: float64 cannot resolve a gradient of order 1 in it by finite differences.)
    """
    mu = rng.standard_normal((batch, latent_dim))
    logvar = rng.standard_normal((batch, latent_dim))
    if clamped:
        _push_outside_clamp(rng, logvar, upper=False)
    loss = GaussianKL()

    def scalar_fn():
        return beta * loss.forward(mu, logvar)

    loss.forward(mu, logvar)
    grad_mu, grad_logvar = loss.backward(beta)
    config = f"N={batch}, d={latent_dim}, beta {beta:g}{', clamped logvar' if clamped else ''}{note}"
    return _labelled("kl", config, fd_check(scalar_fn, {"mu": mu, "logvar": logvar},
                                            {"mu": grad_mu, "logvar": grad_logvar}, rng,
                                            max_entries, tolerance, LOSS_STEP))


def kl_sigma(rng, batch=BATCH, latent_dim=2, note="", max_entries=DEFAULT_MAX_ENTRIES,
             tolerance=DEFAULT_TOLERANCE):
    """The paper's form (eq. 22-23): dKL/dmu = mu, dKL/dsigma = sigma - 1/sigma (summed KL)."""
    mu = rng.standard_normal((batch, latent_dim))
    sigma = np.exp(rng.uniform(-1.5, 1.5, (batch, latent_dim)))

    def scalar_fn():
        return float(np.sum(gaussian_kl(mu, 2 * np.log(sigma))))

    grad_mu, grad_sigma = kl_grad_sigma(mu, sigma)
    config = f"N={batch}, d={latent_dim}, sigma form (eq. 22-23){note}"
    return _labelled("kl", config, fd_check(scalar_fn, {"mu": mu, "sigma": sigma},
                                            {"mu": grad_mu, "sigma": grad_sigma}, rng,
                                            max_entries, tolerance, LOSS_STEP))


def reparameterize(rng, batch=BATCH, latent_dim=2, clamped=False, note="",
                   max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE):
    """z = mu + exp(logvar / 2) * eps with eps fixed, through L = sum(z * G)."""
    layer = Reparameterize()
    mu = rng.standard_normal((batch, latent_dim))
    logvar = rng.standard_normal((batch, latent_dim))
    if clamped:
        _push_outside_clamp(rng, logvar)
    eps = rng.standard_normal((batch, latent_dim))
    weights = rng.standard_normal((batch, latent_dim))

    def scalar_fn():
        return float(np.sum(layer.forward(mu, logvar, eps) * weights))

    layer.forward(mu, logvar, eps)
    grad_mu, grad_logvar = layer.backward(weights.copy())
    config = f"N={batch}, d={latent_dim}, fixed eps{', clamped logvar' if clamped else ''}{note}"
    return _labelled("reparameterize", config,
                     fd_check(scalar_fn, {"mu": mu, "logvar": logvar},
                              {"mu": np.array(grad_mu), "logvar": grad_logvar}, rng, max_entries,
                              tolerance, LOSS_STEP))


def _push_outside_clamp(rng, logvar, upper=True):
    """Move about a third of the entries (at least one) 1 to 10 beyond [POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX]."""
    flat = logvar.reshape(-1)
    chosen = rng.choice(flat.size, size=max(1, flat.size // 3), replace=False)
    low = (rng.random(chosen.size) < 0.5) | (not upper)
    flat[chosen] = np.where(low, POSTERIOR_LOGVAR_MIN - rng.uniform(1, 10, chosen.size),
                            POSTERIOR_LOGVAR_MAX + rng.uniform(1, 10, chosen.size))


def encoder(rng, in_channels=1, batch=BATCH, note="", max_entries=DEFAULT_MAX_ENTRIES,
            tolerance=DEFAULT_TOLERANCE):
    """The paper's encoder (Table 1) as one Sequential, input gradient included."""
    net = build_encoder(in_channels, 0, rng)
    net[0].requires_input_grad = True           # the model skips it; check it here anyway
    config = f"Table 1, {in_channels}x28x28->2048, N={batch}{note}"
    return _labelled("encoder", config, check_layer(net, (batch, in_channels, 28, 28), rng,
                                                     max_entries, tolerance, min_step=SEQUENTIAL_MIN_STEP))


def decoder(rng, input_dim=2, batch=BATCH, note="", max_entries=DEFAULT_MAX_ENTRIES,
            tolerance=DEFAULT_TOLERANCE):
    """The paper's decoder (Table 2) as one Sequential, up to the logits."""
    net = build_decoder(input_dim, rng)
    config = f"Table 2, {input_dim}->1x28x28 logits, N={batch}{note}"
    return _labelled("decoder", config, check_layer(net, (batch, input_dim), rng, max_entries, tolerance,
                                                     min_step=SEQUENTIAL_MIN_STEP))


def model(rng, kind="vae", latent_dim=2, batch=BATCH, beta=0.5, max_entries=DEFAULT_MAX_ENTRIES,
          tolerance=MODEL_TOLERANCE, step=MODEL_STEP, min_step=MODEL_MIN_STEP, note=""):
    """A whole VAE or CVAE end to end in float64: L = BCE(x, sigmoid(logits)) + beta * KL.

    eps is drawn once and held fixed, so L is a deterministic function of the parameters.
    The analytic gradient is the training step's: ``model.forward``, both losses'
    backward, ``model.backward``. The finite differences evaluate the same layers through
    npvae.inspection.forward_steps (checked here to give exactly model.forward's arrays),
    which lets them see the ReLUs and step around kinks. The model is first moved to a
    point with O(1) gradients (:func:`condition`).
    """
    from ..diagnostics.inspection import forward_steps    # noqa: PLC0415 (inspection imports this module's deps)
    from ..models import CVAE, VAE            # noqa: PLC0415

    net = (CVAE if kind == "cvae" else VAE)(latent_dim=latent_dim, rng=rng, dtype=np.float64)
    condition(net)
    x = rng.random((batch, 1, 28, 28))
    labels = rng.integers(0, 10, batch) if kind == "cvae" else None
    eps = rng.standard_normal((batch, latent_dim))
    recon, divergence = BernoulliLoss(), GaussianKL()
    masks = []

    def watch(name, layer, input_shape, output):
        if isinstance(layer, ReLU):
            masks.append(output > 0)

    def scalar_fn():
        masks.clear()
        logits, mu, logvar = forward_steps(net, x, eps, labels, watch)
        return recon.forward(logits, x) + beta * divergence.forward(mu, logvar)

    net.zero_grad()
    logits, mu, logvar = (a.copy() for a in net.forward(x, eps, labels))
    total = recon.forward(logits, x) + beta * divergence.forward(mu, logvar)
    grad_mu, grad_logvar = divergence.backward(beta)
    net.backward(recon.backward(), grad_mu, grad_logvar)
    tensors = {name: p.data for name, p in net.named_parameters()}
    analytic = {name: p.grad.copy() for name, p in net.named_parameters()}
    stepped = forward_steps(net, x, eps, labels)
    if not all(np.array_equal(a, b) for a, b in zip(stepped, (logits, mu, logvar))):
        raise RuntimeError("npvae.inspection.forward_steps no longer computes what model.forward does")
    config = f"latent {latent_dim}, N={batch}, beta {beta:g}, fixed eps, loss {total:.1f}{note}"
    return _labelled(kind, config, fd_check(scalar_fn, tensors, analytic, rng, max_entries, tolerance,
                                            step, pattern=lambda: list(masks), min_step=min_step))


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


# Single configurations by name: what `npvae gradcheck LAYER --flags` calls.
SINGLE = {
    "conv2d": conv2d, "conditionedconv2d": conditioned_conv2d, "convtranspose2d": convtranspose2d, "linear": linear, "relu": relu,
    "sigmoid": sigmoid, "flatten": flatten, "unflatten": unflatten, "bce": bce, "kl": kl,
    "reparameterize": reparameterize, "encoder": encoder, "decoder": decoder,
}


# -- random configurations ---------------------------------------------------------
def _layout(rng):
    return "NHWC mem" if rng.random() < 0.5 else "NCHW"


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


# -- the registry --------------------------------------------------------------------
CHECKS = {}
DESCRIPTIONS = {}


def register(name, description):
    def decorate(fn):
        CHECKS[name], DESCRIPTIONS[name] = fn, description
        return fn
    return decorate


@register("linear", "Linear: fc_mu/fc_logvar 2048->2, decoder 2->2048 (CVAE 12->2048), random")
def check_linear(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = linear(rng, 2048, 2, note=" (fc_mu, fc_logvar)", **kw)
    rows += linear(rng, 2, 2048, note=" (VAE decoder.0)", **kw)
    rows += linear(rng, 12, 2048, note=" (CVAE decoder.0)", **kw)
    for _ in range(n_random):
        rows += linear(rng, int(rng.integers(1, 40)), int(rng.integers(1, 40)), int(rng.integers(1, 5)),
                       bias=bool(rng.random() < 0.8), note=" (random)", **kw)
    return rows


@register("conv2d", "Conv2d: the encoder's three convolutions (and the CVAE's 11-channel one), random")
def check_conv2d(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = conv2d(rng, 1, 32, 4, 2, 1, size=28, layout="NCHW", note=" (encoder.0)", **kw)
    rows += conv2d(rng, 11, 32, 4, 2, 1, size=28, layout="NCHW", note=" (CVAE enc.0)", **kw)
    rows += conv2d(rng, 32, 64, 4, 2, 1, size=14, layout="NHWC mem", note=" (encoder.2)", **kw)
    rows += conv2d(rng, 64, 128, 3, 2, 1, size=7, layout="NHWC mem", note=" (encoder.4)", **kw)
    for _ in range(n_random):
        rows += conv2d(rng, **random_conv2d(rng), note=" (random)", **kw)
    return rows


@register("conditionedconv2d", "ConditionedConv2d: the CVAE's first layer (image + 10 label planes), random")
def check_conditioned_conv2d(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE,
                             n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = conditioned_conv2d(rng, 1, 10, 32, 4, 2, 1, size=28, note=" (CVAE encoder.0)", **kw)
    for _ in range(n_random):
        config = random_conv2d(rng)
        rows += conditioned_conv2d(rng, int(rng.integers(1, 3)), int(rng.integers(1, 4)),
                                   config["out_channels"], config["kernel"], config["stride"],
                                   config["padding"], config["batch"], config["size"], " (random)", **kw)
    return rows


@register("convtranspose2d", "ConvTranspose2d: the decoder's three transposed convolutions, random")
def check_convtranspose2d(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE,
                          n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = convtranspose2d(rng, 128, 64, 3, 2, 1, size=4, layout="NCHW", note=" (decoder.3)", **kw)
    rows += convtranspose2d(rng, 64, 32, 4, 2, 1, size=7, layout="NHWC mem", note=" (decoder.5)", **kw)
    rows += convtranspose2d(rng, 32, 1, 4, 2, 1, size=14, layout="NHWC mem", note=" (decoder.7)", **kw)
    for _ in range(n_random):
        rows += convtranspose2d(rng, **random_convtranspose2d(rng), note=" (random)", **kw)
    return rows


@register("relu", "ReLU, plain and in place, on the encoder's activations and random shapes")
def check_relu(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = relu(rng, (BATCH, 32, 14, 14), layout="NHWC mem", note=" (encoder.1)", **kw)
    rows += relu(rng, (BATCH, 64, 7, 7), inplace=True, layout="NHWC mem", note=" (encoder.3)", **kw)
    rows += relu(rng, (BATCH, 2048), inplace=True, note=" (decoder.1)", **kw)
    for _ in range(n_random):
        rows += relu(rng, _random_shape(rng), inplace=bool(rng.random() < 0.5), layout=_layout(rng),
                     note=" (random)", **kw)
    return rows


@register("sigmoid", "Sigmoid on the decoder's output shape, random shapes and spreads")
def check_sigmoid(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = sigmoid(rng, (BATCH, 1, 28, 28), note=" (decoder output)", **kw)
    for _ in range(n_random):
        rows += sigmoid(rng, _random_shape(rng), scale=float(rng.choice([1.0, 4.0, 15.0])),
                        layout=_layout(rng), note=" (random)", **kw)
    return rows


@register("reshape", "Flatten and Unflatten between the convolutions and the linear layers")
def check_reshape(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = flatten(rng, (BATCH, 128, 4, 4), layout="NHWC mem", note=" (encoder.6)", **kw)
    rows += unflatten(rng, BATCH, (128, 4, 4), note=" (decoder.2)", **kw)
    for _ in range(n_random):
        shape = tuple(int(v) for v in rng.integers(1, 6, 4))
        rows += flatten(rng, shape, layout=_layout(rng), note=" (random)", **kw)
    return rows


def _random_loss_shape(rng):
    """A batch of 1-4 and one to three further axes of 1-8: what the losses see, at random."""
    return (int(rng.integers(1, 5)),) + tuple(int(v) for v in rng.integers(1, 9, int(rng.integers(1, 4))))


@register("bce", "BernoulliLoss (BCE fused with the sigmoid), from logits")
def check_bce(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = bce(rng, (BATCH, 1, 28, 28), note=" (paper)", **kw)
    rows += bce(rng, (BATCH, 1, 28, 28), binary=True, note=" (paper)", **kw)
    for _ in range(n_random):
        shape = _random_loss_shape(rng)
        rows += bce(rng, shape, binary=bool(rng.random() < 0.5),
                    grad=float(rng.choice([1.0, 0.3, 2.5])), note=" (random)", **kw)
    return rows


@register("gaussian", "GaussianLoss (Gaussian decoder, mean sigmoid(logits)), fixed and learned variance")
def check_gaussian(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = gaussian(rng, (BATCH, 1, 28, 28), note=" (paper shape)", **kw)
    rows += gaussian(rng, (BATCH, 1, 28, 28), learned=True, note=" (paper shape)", **kw)
    for _ in range(n_random):
        shape = _random_loss_shape(rng)
        rows += gaussian(rng, shape, learned=bool(rng.random() < 0.5), note=" (random)", **kw)
    return rows


@register("kl", "GaussianKL against N(0, I), logvar form (the code's) and sigma form (eq. 22-23)")
def check_kl(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = kl(rng, BATCH, 2, note=" (paper)", **kw)
    rows += kl(rng, BATCH, 2, beta=0.3, note=" (warm-up)", **kw)
    rows += kl_sigma(rng, BATCH, 2, note=" (paper)", **kw)
    rows += kl(rng, 4, 6, clamped=True, **kw)
    for _ in range(n_random):
        rows += kl(rng, int(rng.integers(1, 9)), int(rng.integers(1, 17)),
                   beta=float(rng.uniform(0, 2)), note=" (random)", **kw)
    return rows


@register("reparameterize", "Reparameterize: z = mu + exp(logvar/2) * eps, eps fixed")
def check_reparameterize(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE,
                         n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    rows = reparameterize(rng, BATCH, 2, note=" (paper)", **kw)
    rows += reparameterize(rng, 4, 6, clamped=True, **kw)
    for _ in range(n_random):
        rows += reparameterize(rng, int(rng.integers(1, 9)), int(rng.integers(1, 17)), note=" (random)", **kw)
    return rows


@register("encoder", "The paper's encoder (Table 1) as one Sequential, VAE and CVAE inputs")
def check_encoder(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    return encoder(rng, 1, note=" (VAE)", **kw) + encoder(rng, 11, note=" (CVAE)", **kw)


@register("decoder", "The paper's decoder (Table 2) as one Sequential, VAE and CVAE inputs")
def check_decoder(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=DEFAULT_TOLERANCE, n_random=DEFAULT_RANDOM):
    kw = dict(max_entries=max_entries, tolerance=tolerance)
    return decoder(rng, 2, note=" (VAE)", **kw) + decoder(rng, 12, note=" (CVAE)", **kw)


@register("vae", "The whole VAE end to end, float64, fixed eps: BCE + beta * KL")
def check_vae(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=MODEL_TOLERANCE, n_random=DEFAULT_RANDOM):
    return model(rng, "vae", max_entries=max_entries, tolerance=tolerance)


@register("cvae", "The whole CVAE end to end, float64, fixed eps: BCE + beta * KL")
def check_cvae(rng, max_entries=DEFAULT_MAX_ENTRIES, tolerance=MODEL_TOLERANCE, n_random=DEFAULT_RANDOM):
    return model(rng, "cvae", max_entries=max_entries, tolerance=tolerance)


def check_rng(seed, name):
    """Each named check has its own stream, so running one alone reproduces it exactly."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def single_threaded():
    """Batch-2 checks call tiny GEMMs thousands of times: on a small machine, BLAS worker
    threads waiting for work cost far more than they give. Use one while checking."""
    return blas_threads(1)


def run(names=None, seed=0, max_entries=DEFAULT_MAX_ENTRIES, tolerance=None, n_random=DEFAULT_RANDOM,
        on_rows=None):
    """Run the named checks (all by default); returns every (Label, TensorCheck).

    ``tolerance`` None keeps each check's own (1e-6 everywhere at present). ``on_rows(rows)`` is called after each configuration, to print as results come.
    """
    names = list(CHECKS) if not names else list(names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; expected some of {', '.join(CHECKS)}")
    rows = []
    kw = {} if tolerance is None else {"tolerance": tolerance}
    with single_threaded():
        for name in names:
            new = CHECKS[name](check_rng(seed, name), max_entries=max_entries, n_random=n_random, **kw)
            rows += new
            if on_rows is not None:
                on_rows(new)
    return rows


def failures(rows):
    return [(label, check) for label, check in rows if not check.passed]


# -- printing ------------------------------------------------------------------------
HEADER = (f"{'layer':<16} {'configuration':<58} {'tensor':<16} {'entries':>11} "
          f"{'worst rel.err':>13}  {'result':<6} {'time':>7}")


def format_row(label, check):
    seconds = getattr(check, "seconds", float("nan"))
    return (f"{label.layer:<16} {label.config:<58} {check.tensor:<16} "
            f"{f'{check.checked}/{check.size}':>11} {check.error:>13.2e}  "
            f"{'ok' if check.passed else 'FAIL':<6} {seconds:>6.2f}s")


def summary(rows, seconds=None):
    """One paragraph: counts, the worst error and where, the failures."""
    if not rows:
        return "no checks run"
    bad = failures(rows)
    configs = len({label for label, _ in rows})
    lines = [f"{len(rows)} tensor{'s' if len(rows) != 1 else ''} in {configs} "
             f"configuration{'s' if configs != 1 else ''}: "
             f"{len(rows) - len(bad)} passed, {len(bad)} failed"
             + (f" ({seconds:.1f} s)" if seconds is not None else "")]
    for tolerance in sorted({check.tolerance for _, check in rows}):
        group = [(label, check) for label, check in rows if check.tolerance == tolerance]
        label, check = max(group, key=lambda r: (not np.isfinite(r[1].error), r[1].error))
        lines.append(f"worst relative error {check.error:.2e} of {len(group)} "
                     f"tensor{'s' if len(group) != 1 else ''} with tolerance "
                     f"{tolerance:.0e}: {label.layer} [{label.config}] {check.tensor}")
    kinks = sum(getattr(check, "kinks", 0) for _, check in rows)
    if kinks:
        lines.append(f"{kinks} sampled entries left out: every step tried crossed a ReLU kink")
    for label, check in bad:
        lines.append(f"FAIL {label.layer} [{label.config}] {check.tensor}: relative error "
                     f"{check.error:.2e} > tolerance {check.tolerance:.0e}")
    return "\n".join(lines)
