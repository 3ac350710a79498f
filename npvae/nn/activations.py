"""Elementwise nonlinearities. Each keeps its output, which is all its backward needs."""
import numpy as np

from ..kernels import relu_backward
from .module import Module


class ReLU(Module):
    """y = max(x, 0);  dx = g * [y > 0]  (the subgradient at 0 is taken as 0, as PyTorch).

    ``ReLU(inplace=True)``, as in PyTorch, overwrites its input in forward, and here also
    its upstream gradient in backward: no new arrays, one pass each. Safe when, as inside
    the models, nothing else holds on to those arrays. (When the upstream gradient's memory
    layout differs from the output's, as below a Flatten, backward writes a new array in the
    output's layout instead, which is the one the layer below wants.)
    """

    def __init__(self, inplace=False):
        self.inplace = inplace
        self._y = None

    def forward(self, x):
        self._y = np.maximum(x, 0, out=x if self.inplace else None)
        return self._y

    def backward(self, grad_out):
        y = self._cached("_y")
        in_place = self.inplace and grad_out.strides == y.strides
        return relu_backward(y, grad_out, out=grad_out if in_place else None)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


def sigmoid(x):
    """1 / (1 + exp(-x)) without overflow for large |x|: exp only ever sees -|x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Sigmoid(Module):
    """y = sigmoid(x);  dx = g * y * (1 - y)."""

    def __init__(self):
        self._y = None

    def forward(self, x):
        self._y = sigmoid(x)
        return self._y

    def backward(self, grad_out):
        y = self._cached("_y")
        return grad_out * y * (1 - y)
