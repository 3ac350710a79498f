"""Numba kernels of the hot path, each with a NumPy reference implementation."""
import numba

from .elementwise import memory_view, relu_backward, relu_backward_reference
from .im2col import (col2im_nhwc, col2im_nhwc_reference, col2im_reference, conv_output_size,
                     im2col_nhwc, im2col_nhwc_reference, im2col_reference)

# Numba's OpenMP threads spin after a parallel region and then fight NumPy's OpenBLAS
# threads for the cores between every kernel and GEMM (measured: up to 2x slower on
# 2 cores). The workqueue layer's threads sleep instead.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

__all__ = ["im2col_nhwc", "col2im_nhwc", "im2col_nhwc_reference", "col2im_nhwc_reference",
           "im2col_reference", "col2im_reference", "conv_output_size",
           "relu_backward", "relu_backward_reference", "memory_view"]
