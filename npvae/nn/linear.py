"""Fully connected layer: y = x W^T + b, with W of shape (out_features, in_features)."""
import numpy as np

from ..kernels import add_to_rows, column_sums
from .init import default_rng, fan_in, uniform_fan_in
from .module import Module, Parameter


class Linear(Module):
    """``Linear(in_features, out_features)``, as ``torch.nn.Linear``.

    forward:  x (N, in) -> y (N, out),  y = x W^T + b
    backward: dW += g^T x,  db += sum_n g,  returns dx = g W
    """

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: features must be positive, got {in_features}, {out_features}")
        rng = default_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        shape = (out_features, in_features)
        self.weight = Parameter(uniform_fan_in(shape, fan_in(shape), rng, dtype))
        self.bias = Parameter(uniform_fan_in((out_features,), in_features, rng, dtype)) if bias else None
        self._x = None

    def forward(self, x):
        self._check_input(x, 2, f"(N, {self.in_features})")
        if x.shape[1] != self.in_features:
            raise ValueError(f"{self!r}: expected input (N, {self.in_features}), got {x.shape}")
        self._x = x
        y = x @ self.weight.data.T
        if self.bias is not None:
            add_to_rows(y, self.bias.data)
        return y

    def backward(self, grad_out):
        x = self._cached("_x")
        self.weight.grad += grad_out.T @ x
        if self.bias is not None:
            self.bias.grad += column_sums(grad_out)
        return grad_out @ self.weight.data

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}"
