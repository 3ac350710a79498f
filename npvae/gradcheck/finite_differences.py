"""Check hand-written gradients against central finite differences, in float64.

For a scalar L and every checked entry theta_i of every tensor,

    numeric_i = (L(theta_i + h) - L(theta_i - h)) / (2 h)

is compared with the analytic gradient. A tensor's error is the worst absolute
difference divided by the tensor's gradient scale:

    error = max_i |analytic_i - numeric_i| / max(max_i |analytic_i|, max_i |numeric_i|, 1e-12)

which is scale-free and, unlike an element-wise ratio, not fooled by entries whose true
gradient is zero. A module with output y is checked through L = sum(y * G) for a fixed
random G, so backward(G) must give exactly dL/dx and dL/dparams.
"""
from dataclasses import dataclass

import numpy as np

DEFAULT_STEP = 1e-6
DEFAULT_TOLERANCE = 1e-6


@dataclass
class TensorCheck:
    """One tensor's verdict."""
    tensor: str
    error: float
    checked: int
    size: int
    tolerance: float = DEFAULT_TOLERANCE

    @property
    def passed(self):
        return bool(np.isfinite(self.error) and self.error <= self.tolerance)


def relative_error(analytic, numeric):
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0), 1e-12)
    return float(np.max(np.abs(analytic - numeric), initial=0.0) / scale)


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


def finite_difference_check(scalar_fn, tensors, analytic, step=DEFAULT_STEP, max_entries=None,
                            rng=None, tolerance=DEFAULT_TOLERANCE):
    """Compare ``analytic[name]`` with central differences of ``scalar_fn()`` for each tensor.

    ``tensors`` maps a name to the float64 array ``scalar_fn`` reads; each entry is nudged
    in place and restored. ``max_entries`` caps the entries checked per tensor (a random
    subset drawn from ``rng``); None checks them all. Returns a list of TensorCheck.
    """
    rng = np.random.default_rng(rng)
    results = []
    for name, array in tensors.items():
        flat, indices = entries_to_nudge(name, array, max_entries, rng)
        numeric = np.empty(indices.size)
        for k, i in enumerate(indices):
            original = flat[i]
            flat[i] = original + step
            plus = scalar_fn()
            flat[i] = original - step
            minus = scalar_fn()
            flat[i] = original
            numeric[k] = (plus - minus) / (2 * step)
        expected = np.asarray(analytic[name]).reshape(-1)[indices]
        results.append(TensorCheck(name, relative_error(expected, numeric), indices.size,
                                   flat.size, tolerance))
    return results


def check_module(module, x, rng=None, max_entries=None, step=DEFAULT_STEP, tolerance=DEFAULT_TOLERANCE):
    """Check a layer's input gradient and every parameter gradient.

    The module is converted to float64 in place; ``x`` is copied to float64.
    """
    rng = np.random.default_rng(rng)
    module.to(np.float64)
    x = np.array(x, dtype=np.float64)
    weights = rng.standard_normal(np.shape(module.forward(x)))

    def scalar_fn():
        return float(np.sum(module.forward(x) * weights))

    module.zero_grad()
    module.forward(x)
    grad_x = module.backward(weights)
    tensors, analytic = {}, {}
    if grad_x is not None:
        tensors["input"], analytic["input"] = x, grad_x
    for name, p in module.named_parameters():
        tensors[name], analytic[name] = p.data, p.grad.copy()
    return finite_difference_check(scalar_fn, tensors, analytic, step, max_entries, rng, tolerance)


def worst(results):
    """The largest error in a list of TensorCheck (0.0 for an empty list)."""
    return max((r.error for r in results), default=0.0)


def format_table(rows):
    """rows: (label, TensorCheck) pairs -> an aligned text table."""
    lines = [f"{'check':<44} {'tensor':<22} {'entries':>9} {'rel. error':>11}  result"]
    for label, r in rows:
        lines.append(f"{label:<44} {r.tensor:<22} {f'{r.checked}/{r.size}':>9} "
                     f"{r.error:>11.2e}  {'ok' if r.passed else 'FAIL'}")
    return "\n".join(lines)
