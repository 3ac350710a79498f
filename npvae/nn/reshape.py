"""Shape-only layers: their backward undoes the forward's reshape."""
import math

from .module import Module


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), as ``torch.nn.Flatten()``."""

    def __init__(self):
        self._x_shape = None

    def forward(self, x):
        if x.ndim < 2:
            raise ValueError(f"Flatten: expected at least 2-D input (N, ...), got shape {x.shape}")
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out):
        return grad_out.reshape(self._cached("_x_shape"))


class Unflatten(Module):
    """(N, prod(shape)) -> (N, *shape), as ``torch.nn.Unflatten(1, shape)``."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self._x_shape = None

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != math.prod(self.shape):
            raise ValueError(f"{self!r}: expected input (N, {math.prod(self.shape)}), got {x.shape}")
        self._x_shape = x.shape
        return x.reshape(x.shape[0], *self.shape)

    def backward(self, grad_out):
        return grad_out.reshape(self._cached("_x_shape"))

    def extra_repr(self):
        return f"shape={self.shape}"
