"""Transposed 2-D convolution: the adjoint of Conv2d, built from the same two kernels.

Forward is Conv2d's backward-to-input: ``cols = x W`` (one GEMM, W seen as a
(C_in, kH*kW*C_out) matrix), then ``col2im`` scatters the columns into the larger output.
Backward is Conv2d's forward: ``dcols = im2col(g)``, ``dW = x^T dcols``, ``dx = dcols W^T``.
Arrays are channels-last underneath and NCHW views on the surface, as in conv.py.
"""
import numpy as np

from ..kernels import add_to_rows, col2im_nhwc, column_sums, im2col_nhwc
from .conv import image_chunks, pair, scratch_rows
from .init import default_rng, fan_in, uniform_fan_in
from .module import Module, Parameter


class ConvTranspose2d(Module):
    """``ConvTranspose2d(in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0)``.

    weight (C_in, C_out, kH, kW), bias (C_out,), as ``torch.nn.ConvTranspose2d``.
    forward:  x (N, C_in, H, W) -> y (N, C_out, OH, OW),
              OH = (H - 1) * s - 2p + kH + output_padding
    backward: g (N, C_out, OH, OW) -> dx (N, C_in, H, W)
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, bias=True, rng=None, dtype=np.float32):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        self.output_padding = pair(output_padding, "output_padding")
        if min(in_channels, out_channels, *self.kernel_size, *self.stride) < 1 \
                or min(self.padding) < 0 or min(self.output_padding) < 0:
            raise ValueError(f"ConvTranspose2d: invalid configuration {self.extra_repr()}")
        if any(op >= s for op, s in zip(self.output_padding, self.stride)):
            raise ValueError(f"ConvTranspose2d: output_padding {self.output_padding} must be "
                             f"smaller than stride {self.stride}")
        rng = default_rng(rng)
        shape = (in_channels, out_channels, *self.kernel_size)
        self.weight = Parameter(uniform_fan_in(shape, fan_in(shape), rng, dtype))
        self.bias = Parameter(uniform_fan_in((out_channels,), fan_in(shape), rng, dtype)) if bias else None
        self._x_rows = None
        self._x_shape = None
        self._weight_matrix = None
        self._cols = None            # scratch buffers for cols (forward) and dcols (backward),
        self._grad_cols = None       # reused across steps

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        (ph, pw), (oph, opw) = self.padding, self.output_padding
        return (n, self.out_channels, (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw)

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        out_shape = self.output_shape(x.shape)
        if x.shape[1] != self.in_channels or min(x.shape[2:]) < 1 or min(out_shape[2:]) < 1:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W) giving a "
                             f"non-empty output, got {x.shape} (output would be {out_shape})")
        n, c_in, h, w = x.shape
        n, c_out, out_h, out_w = out_shape
        self._x_shape = x.shape
        # Rows are input positions (n, h, w), matching the row order im2col gives the output.
        self._x_rows = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(n * h * w, c_in)
        # (C_in, C_out, kH, kW) -> (C_in, kH*kW*C_out), the column order of the patches.
        self._weight_matrix = self.weight.data.transpose(0, 2, 3, 1).reshape(c_in, -1)
        y = np.empty((n, out_h, out_w, c_out), dtype=x.dtype)
        for images, rows in self._chunks(n, h * w):
            cols = np.matmul(self._x_rows[rows], self._weight_matrix,
                             out=self._buffer("_cols", rows, x.dtype))
            col2im_nhwc(cols, y[images].shape, self.kernel_size, self.stride, self.padding,
                        out=y[images])
        if self.bias is not None:
            add_to_rows(y.reshape(-1, c_out), self.bias.data)
        return y.transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        x_rows = self._cached("_x_rows")
        n, c_in, h, w = self._x_shape
        _, c_out, kh, kw = self.weight.data.shape
        grad = np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1))
        grad_weight = np.zeros_like(self._weight_matrix)
        grad_rows = np.empty_like(x_rows)
        for images, rows in self._chunks(n, h * w):
            grad_cols = im2col_nhwc(grad[images], self.kernel_size, self.stride, self.padding,
                                    out=self._buffer("_grad_cols", rows, grad.dtype))
            grad_weight += x_rows[rows].T @ grad_cols
            np.matmul(grad_cols, self._weight_matrix.T, out=grad_rows[rows])
        self.weight.grad += grad_weight.reshape(c_in, kh, kw, c_out).transpose(0, 3, 1, 2)
        if self.bias is not None:
            self.bias.grad += column_sums(grad.reshape(-1, c_out))
        return grad_rows.reshape(n, h, w, c_in).transpose(0, 3, 1, 2)

    def _chunks(self, n_images, rows_per_image):
        """(images, rows) slices of about CHUNK_BYTES of columns each (see conv.py)."""
        width = self.out_channels * self.kernel_size[0] * self.kernel_size[1]
        return image_chunks(n_images, rows_per_image, width * self.weight.data.itemsize)

    def _buffer(self, name, rows, dtype):
        return scratch_rows(self, name, rows, self._weight_matrix.shape[1], dtype)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}")
