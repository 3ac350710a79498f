"""Elementwise nonlinearities. Each keeps its output, which is all its backward needs."""
import numpy as np

from .module import Module


class ReLU(Module):
    """y = max(x, 0);  dx = g * [y > 0]  (the subgradient at 0 is taken as 0, as PyTorch)."""

    def __init__(self):
        self._y = None

    def forward(self, x):
        self._y = np.maximum(x, 0)
        return self._y

    def backward(self, grad_out):
        y = self._cached("_y")
        return np.where(y > 0, grad_out, 0).astype(grad_out.dtype, copy=False)


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
