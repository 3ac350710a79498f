"""Numba kernels of the hot path, each with a NumPy reference implementation."""
from .elementwise import add_to_rows, column_sums, memory_view, relu_backward, relu_backward_reference
from .im2col import (col2im_nhwc, col2im_nhwc_reference, col2im_reference, conv_output_size,
                     im2col_nhwc, im2col_nhwc_reference, im2col_reference)

__all__ = ["im2col_nhwc", "col2im_nhwc", "im2col_nhwc_reference", "col2im_nhwc_reference",
           "im2col_reference", "col2im_reference", "conv_output_size",
           "relu_backward", "relu_backward_reference", "memory_view", "column_sums", "add_to_rows"]
