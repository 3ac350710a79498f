"""Check hand-written gradients against central finite differences, in float64.

For a scalar L and every checked entry theta_i of every tensor,

    numeric_i = (L(theta_i + h) - L(theta_i - h)) / (2 h)

is compared with the analytic gradient. A tensor's error is the worst absolute
difference divided by the tensor's gradient scale:

    error = max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, 1e-12)

which is scale-free and, unlike an element-wise ratio, not fooled by entries whose true
gradient is zero. A module with output y is checked through L = sum(y * G) for a fixed
random G, so backward(G) must give exactly dL/dx and dL/dparams.

Across a ReLU kink a difference quotient measures a mixture of two slopes, not the
gradient. Given ``pattern()`` (the on/off masks of every ReLU after the last evaluation of
L), an entry whose step +h or -h flips a mask is taken with the second-order one-sided
difference (-3 L(0) + 4 L(h) - L(2h)) / 2h on the side that flips none; if both sides
flip, h is divided by 10, down to ``min_step``; past that the entry is left out (counted
in ``TensorCheck.kinks``). :func:`check_module` watches the ReLUs of the module it checks.
"""
import time
from dataclasses import dataclass

import numpy as np

from ..nn import ReLU, Sequential, observe

DEFAULT_STEP = 1e-6
DEFAULT_TOLERANCE = 1e-6


@dataclass
class TensorCheck:
    """One tensor's verdict: the error over ``checked`` of its ``size`` entries, how long the
    differences took, and how many sampled entries were left out at ReLU kinks."""
    tensor: str
    error: float
    checked: int
    size: int
    tolerance: float = DEFAULT_TOLERANCE
    seconds: float = 0.0
    kinks: int = 0

    @property
    def passed(self):
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)


def relative_error(analytic, numeric):
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0), 1e-12)
    return float(np.max(np.abs(analytic - numeric), initial=0.0) / scale)


def worst(results):
    """The largest error in a list of TensorCheck (0.0 for an empty list)."""
    return max((r.error for r in results), default=0.0)


def entries_to_nudge(name, array, max_entries, rng):
    """A flat view of a float64 tensor (nudging it nudges the tensor) and the sorted indices
    to check: all of them, or a random ``max_entries`` of them."""
    if array.dtype != np.float64:
        raise TypeError(f"gradcheck: tensor '{name}' is {array.dtype}; checks run in float64")
    flat = array.reshape(-1)
    if not np.shares_memory(flat, array):
        raise ValueError(f"gradcheck: tensor '{name}' must be contiguous to be nudged in place")
    indices = np.arange(flat.size)
    if max_entries is not None and flat.size > max_entries:
        indices = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
    return flat, indices


def _same(masks, reference):
    return all(np.array_equal(a, b) for a, b in zip(masks, reference))


def _check_tensor(scalar_fn, name, array, analytic, rng, max_entries, tolerance, step, pattern,
                  min_step):
    started = time.perf_counter()
    flat, indices = entries_to_nudge(name, array, max_entries, rng)
    base = scalar_fn() if pattern is not None else None
    reference = pattern() if pattern is not None else None

    def at(i, value):
        flat[i] = value
        result = scalar_fn()
        return result, pattern is None or _same(pattern(), reference)

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
    return TensorCheck(name, error, len(used), flat.size, tolerance, time.perf_counter() - started,
                       len(indices) - len(used))


def finite_difference_check(scalar_fn, tensors, analytic, step=DEFAULT_STEP, max_entries=None,
                            rng=None, tolerance=DEFAULT_TOLERANCE, pattern=None, min_step=None):
    """Compare ``analytic[name]`` with central differences of ``scalar_fn()`` for each tensor.

    ``tensors`` maps a name to the float64 array ``scalar_fn`` reads; each entry is nudged
    in place and restored. ``max_entries`` caps the entries checked per tensor (a random
    subset drawn from ``rng``); None checks them all. ``pattern`` (optional) returns the
    ReLU masks of the last ``scalar_fn()`` call, to step around kinks down to ``min_step``
    (default ``step``; see the module docstring). Returns a list of TensorCheck.
    """
    rng = np.random.default_rng(rng)
    return [_check_tensor(scalar_fn, name, array, analytic[name], rng, max_entries, tolerance, step,
                          pattern, min_step or step)
            for name, array in tensors.items()]


def _memory_order(array):
    """The axes of ``array`` from the largest stride to the smallest: ``array.transpose`` of
    them is C-contiguous when ``array`` is some transpose of a contiguous block (a
    channels-last image seen as NCHW gives (0, 2, 3, 1))."""
    return tuple(int(a) for a in np.argsort([-s for s in array.strides], kind="stable"))


def check_module(module, x, rng=None, max_entries=None, step=DEFAULT_STEP, tolerance=DEFAULT_TOLERANCE,
                 min_step=None, grad_output=None):
    """Check a layer's (or a Sequential's) input gradient and every parameter gradient.

    The module is converted to float64 in place; ``x`` is copied to float64, keeping its
    memory layout (a channels-last array seen as NCHW stays so). L = sum(y * G) with G =
    ``grad_output`` (laid out as given: that is what backward gets) or, by default, standard
    normal from ``rng``. Safe for in-place layers: every forward gets a fresh copy of ``x``
    and backward a fresh copy of G, since ``ReLU(inplace=True)`` overwrites both. Every ReLU
    inside is watched, so steps that cross its kink are taken one-sided (down to
    ``min_step``; see the module docstring). Returns a list of TensorCheck: ``input``
    (unless backward returns None), then each parameter by name.
    """
    rng = np.random.default_rng(rng)
    module.to(np.float64)
    x = np.array(x, dtype=np.float64, order="K")
    watched = module if isinstance(module, Sequential) else Sequential(module)
    has_relu = any(isinstance(layer, ReLU) for _, layer in watched.named_modules())
    masks = []

    def keep_mask(name, layer, input_shape, output):
        if isinstance(layer, ReLU):
            masks.append(output > 0)

    def forward():
        masks.clear()
        return watched.forward(x.copy(order="K"))

    with observe(watched, forward=keep_mask):
        weights = (rng.standard_normal(np.shape(forward())) if grad_output is None
                   else np.array(grad_output, dtype=np.float64, order="K"))

        def scalar_fn():
            return float(np.sum(forward() * weights))

        module.zero_grad()
        forward()
        grad_x = module.backward(weights.copy(order="K"))
        order = _memory_order(x)
        tensors, analytic = {}, {}
        if grad_x is not None:                # nudge x through its contiguous memory
            tensors["input"] = x.transpose(order)
            analytic["input"] = np.asarray(grad_x).transpose(order)
        for name, p in module.named_parameters():
            tensors[name], analytic[name] = p.data, p.grad.copy()
        return finite_difference_check(scalar_fn, tensors, analytic, step, max_entries, rng, tolerance,
                                       pattern=(lambda: list(masks)) if has_relu else None,
                                       min_step=min_step)
