"""2-D convolution as a GEMM on the im2col matrix.

With ``cols = im2col(x)`` of shape (N*OH*OW, kH*kW*C_in) and ``W`` the weight seen as a
(C_out, kH*kW*C_in) matrix, the forward pass is one matrix product, ``y = cols W^T + b``,
and the backward pass is two more: ``dW = g^T cols`` and ``dcols = g W``, after which
``col2im`` (the adjoint of im2col) folds ``dcols`` back onto the input.

Memory layout: the API is PyTorch's NCHW, but the arrays underneath are channels-last
(NHWC). ``y`` comes out of the GEMM as (N*OH*OW, C_out), i.e. NHWC, and is returned as
a transposed NCHW *view*; the next layer transposes it back for free. Channels-last
makes the im2col copy run along contiguous memory. A plain NCHW array works too; it
costs one transposing copy.
"""
import numpy as np

from ..kernels import add_to_rows, col2im_nhwc, column_sums, conv_output_size, im2col_nhwc
from .init import default_rng, fan_in, uniform_fan_in
from .module import Module, Parameter

# A whole batch's column matrix (6.4 MB for the paper's second convolution at 64 images)
# does not fit in a core's L2 cache, and streaming it to memory and back between im2col
# and the GEMM measured about 30% of the layer's time. So both passes go through the
# batch a few images at a time, with a column buffer that stays in cache; backward
# recomputes the columns rather than keeping a whole batch's.
CHUNK_BYTES = 1 << 20


def image_chunks(n_images, rows_per_image, bytes_per_row):
    """Consecutive (images, rows) slices of about CHUNK_BYTES of column matrix each."""
    step = max(1, CHUNK_BYTES // max(1, rows_per_image * bytes_per_row))
    return [(slice(start, min(start + step, n_images)),
             slice(start * rows_per_image, min(start + step, n_images) * rows_per_image))
            for start in range(0, n_images, step)]


def scratch_rows(layer, name, rows, width, dtype):
    """The first ``rows`` rows of the layer's reusable (rows, width) buffer ``layer.<name>``,
    reallocated only when it is too small or of another width or dtype."""
    buffer = getattr(layer, name)
    count = rows.stop - rows.start
    if buffer is None or buffer.shape[0] < count or buffer.shape[1] != width or buffer.dtype != dtype:
        buffer = np.empty((count, width), dtype=dtype)
        setattr(layer, name, buffer)
    return buffer[:count]


def pair(value, name):
    """An int or a pair of ints -> (height, width)."""
    pair_ = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair_):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair_)


class Conv2d(Module):
    """``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0)``.

    weight (C_out, C_in, kH, kW), bias (C_out,), as ``torch.nn.Conv2d``.
    forward:  x (N, C_in, H, W) -> y (N, C_out, OH, OW), OH = (H + 2p - kH) // s + 1
    backward: g (N, C_out, OH, OW) -> dx (N, C_in, H, W), or None when
              ``requires_input_grad`` is False (a network's first layer: nobody needs d/dx).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, rng=None, dtype=np.float32):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding")
        if min(in_channels, out_channels, *self.kernel_size, *self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(f"Conv2d: invalid configuration {self.extra_repr()}")
        rng = default_rng(rng)
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(uniform_fan_in(shape, fan_in(shape), rng, dtype))
        self.bias = Parameter(uniform_fan_in((out_channels,), fan_in(shape), rng, dtype)) if bias else None
        self.requires_input_grad = True
        self._x = None               # the input, channels-last
        self._cols = None            # scratch buffers for one chunk's columns and their
        self._grad_cols = None       # gradient, reused across chunks and steps
        self._cols_hold_batch = False
        self._weight_matrix = None

    def output_shape(self, input_shape):
        n, _, h, w = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (n, self.out_channels, conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw))

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        n, c, h, w = x.shape
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if c != self.in_channels or min(h, w) < 1 or h + 2 * ph < kh or w + 2 * pw < kw:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W) with "
                             f"H >= {max(1, kh - 2 * ph)} and W >= {max(1, kw - 2 * pw)}, "
                             f"got {x.shape}")
        _, c_out, out_h, out_w = self.output_shape(x.shape)
        # Kept for backward, which recomputes the columns chunk by chunk (see image_chunks).
        self._x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        # (C_out, C_in, kH, kW) -> (C_out, kH*kW*C_in), the column order of the patches.
        self._weight_matrix = self.weight.data.transpose(0, 2, 3, 1).reshape(c_out, -1)
        y = np.empty((n * out_h * out_w, c_out), dtype=x.dtype)
        chunks = self._chunks(n, out_h * out_w)
        for images, rows in chunks:
            np.matmul(self._columns(self._x[images]), self._weight_matrix.T, out=y[rows])
        # When one chunk held the whole batch, its columns are still in the buffer for backward.
        self._cols_hold_batch = len(chunks) == 1
        if self.bias is not None:
            add_to_rows(y, self.bias.data)
        return y.reshape(n, out_h, out_w, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        x = self._cached("_x")
        n, h, w, c_in = x.shape
        c_out, _, kh, kw = self.weight.data.shape
        grad = np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1)).reshape(-1, c_out)
        grad_weight = np.zeros_like(self._weight_matrix)
        grad_x = np.empty_like(x) if self.requires_input_grad else None
        chunks = self._chunks(n, grad.shape[0] // n)
        for images, rows in chunks:
            cols = self._cols[:rows.stop] if self._cols_hold_batch else self._columns(x[images])
            grad_weight += grad[rows].T @ cols
            if grad_x is not None:
                grad_cols = np.matmul(grad[rows], self._weight_matrix,
                                      out=self._buffer("_grad_cols", rows, grad.dtype))
                col2im_nhwc(grad_cols, grad_x[images].shape, self.kernel_size, self.stride,
                            self.padding, out=grad_x[images])
        self.weight.grad += grad_weight.reshape(c_out, kh, kw, c_in).transpose(0, 3, 1, 2)
        if self.bias is not None:
            self.bias.grad += column_sums(grad)
        return None if grad_x is None else grad_x.transpose(0, 3, 1, 2)

    def _chunks(self, n_images, rows_per_image):
        """(images, rows) slices of about CHUNK_BYTES of columns each."""
        width = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        return image_chunks(n_images, rows_per_image, width * self.weight.data.itemsize)

    def _columns(self, x):
        """im2col of channels-last images x, in the reused column buffer."""
        _, _, out_h, out_w = self.output_shape((x.shape[0], x.shape[3], x.shape[1], x.shape[2]))
        rows = slice(0, x.shape[0] * out_h * out_w)
        return im2col_nhwc(x, self.kernel_size, self.stride, self.padding,
                           out=self._buffer("_cols", rows, x.dtype))

    def _buffer(self, name, rows, dtype):
        return scratch_rows(self, name, rows, self._weight_matrix.shape[1], dtype)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")
