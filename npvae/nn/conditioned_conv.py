"""A convolution over an image plus constant condition planes: the CVAE's first layer.

The CVAE's encoder sees 11 channels, the image and 10 label planes, plane c filled with
the constant conditions[n, c] (section 3.2). Convolution is linear in its input, so

    conv([x; planes], W) = conv(x, W_image) + sum_c conditions[:, c] * conv(1, W_c)

where conv(1, W_c) is channel c's kernel run over an all-ones image: a fixed
(OH, OW, C_out) response that only changes near the zero-padded border. The layer works
that way: a GEMM over kH*kW*1 columns per output pixel instead of kH*kW*11, plus a
(N, 10) x (10, OH*OW*C_out) product. Measured, it cut the CVAE's training step by about
a tenth. Backward, with ``ones`` = im2col of the all-ones image (OH*OW, kH*kW):

    dW_image = g^T cols(x),   dW_c = (sum_n conditions[n, c] g[n])^T ones

The weight is the whole (C_out, C_image + C_cond, kH, kW) of the equivalent Conv2d, so
checkpoints, shapes and initialisation are those of an ordinary 11-channel convolution.
"""
import numpy as np

from ..kernels import add_to_rows, column_sums, im2col_nhwc
from .conv import Conv2d


class ConditionedConv2d(Conv2d):
    """``ConditionedConv2d(image_channels, condition_channels, out_channels, kernel_size, ...)``.

    forward:  x (N, C_image + C_cond, H, W) -> y (N, C_out, OH, OW), exactly Conv2d's, where
              channels C_image.. must each be constant over every image (ValueError if not).
    forward_conditioned: (image, conditions) -> the same y, the planes never built.
    backward: g (N, C_out, OH, OW) -> None: the inputs are data (an image and its label).
    """

    def __init__(self, image_channels, condition_channels, out_channels, kernel_size, stride=1,
                 padding=0, bias=True, rng=None, dtype=np.float32):
        super().__init__(image_channels + condition_channels, out_channels, kernel_size, stride,
                         padding, bias, rng, dtype)
        self.image_channels, self.condition_channels = image_channels, condition_channels
        self.requires_input_grad = False
        self._conditions = None
        self._ones_cols, self._ones_size = None, None

    def forward(self, x):
        self._check_input(x, 4, f"(N, {self.in_channels}, H, W)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"{self!r}: expected input (N, {self.in_channels}, H, W), got {x.shape}")
        planes = x[:, self.image_channels:]
        conditions = np.ascontiguousarray(planes[:, :, 0, 0])
        if not np.array_equal(planes, np.broadcast_to(conditions[:, :, None, None], planes.shape)):
            raise ValueError(f"{self!r}: channels {self.image_channels}.. must each be constant "
                             f"over every image (label planes)")
        return self.forward_conditioned(x[:, :self.image_channels], conditions)

    def forward_conditioned(self, image, conditions):
        """``forward`` of [image; planes filled with conditions], without building the planes.

        image (N, C_image, H, W), conditions (N, C_cond) -> y (N, C_out, OH, OW).
        """
        self._check_input(image, 4, f"(N, {self.image_channels}, H, W)")
        n, _, h, w = image.shape
        if image.shape[1] != self.image_channels or np.shape(conditions) != (n, self.condition_channels):
            raise ValueError(f"{self!r}: expected an image (N, {self.image_channels}, H, W) and "
                             f"conditions (N, {self.condition_channels}), got {image.shape} and "
                             f"{np.shape(conditions)}")
        _, c_out, out_h, out_w = self.output_shape((n, self.in_channels, h, w))
        self._x_shape = (n, self.in_channels, h, w)
        self._conditions = np.ascontiguousarray(conditions, dtype=image.dtype)
        self._cols = im2col_nhwc(image.transpose(0, 2, 3, 1), self.kernel_size, self.stride,
                                 self.padding, out=self._cols)
        self._ones_cols = self._ones_columns(h, w, image.dtype)
        weight = self.weight.data.transpose(0, 2, 3, 1)          # (C_out, kH, kW, C_in)
        y = self._cols @ weight[..., :self.image_channels].reshape(c_out, -1).T
        y += (self._conditions @ self._plane_responses(weight)).reshape(y.shape)
        if self.bias is not None:
            add_to_rows(y, self.bias.data)
        return y.reshape(n, out_h, out_w, c_out).transpose(0, 3, 1, 2)

    def backward(self, grad_out):
        n, _, _, _ = self._cached("_x_shape")
        c_out, _, kh, kw = self.weight.data.shape
        grad = np.ascontiguousarray(grad_out.transpose(0, 2, 3, 1)).reshape(-1, c_out)
        grad_image = (grad.T @ self._cols).reshape(c_out, kh, kw, self.image_channels)
        # sum_n conditions[n, c] g[n]: (C_cond, OH*OW, C_out), then against the ones' columns.
        per_condition = (self._conditions.T @ grad.reshape(n, -1)).reshape(self.condition_channels, -1, c_out)
        grad_planes = per_condition.transpose(0, 2, 1) @ self._ones_cols      # (C_cond, C_out, kH*kW)
        grad_planes = grad_planes.reshape(self.condition_channels, c_out, kh, kw).transpose(1, 2, 3, 0)
        self.weight.grad += np.concatenate([grad_image, grad_planes], axis=3).transpose(0, 3, 1, 2)
        if self.bias is not None:
            self.bias.grad += column_sums(grad)
        return None

    def _ones_columns(self, h, w, dtype):
        """im2col of an all-ones (h, w) image: 1 where a tap falls inside it, 0 in the padding."""
        ones = self._ones_cols
        if ones is None or ones.dtype != dtype or self._ones_size != (h, w):
            ones = im2col_nhwc(np.ones((1, h, w, 1), dtype), self.kernel_size, self.stride, self.padding)
            self._ones_size = (h, w)
        return ones

    def _plane_responses(self, weight):
        """(C_cond, OH*OW*C_out): each condition channel's kernel run over the all-ones image."""
        c_out = weight.shape[0]
        kernels = weight[..., self.image_channels:].reshape(c_out, -1, self.condition_channels)
        return (self._ones_cols @ kernels.transpose(2, 1, 0)).reshape(self.condition_channels, -1)

    def extra_repr(self):
        return (f"{self.image_channels}+{self.condition_channels}, {self.out_channels}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")
