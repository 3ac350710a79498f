"""Numba kernels of the hot path, each with a NumPy reference implementation."""
from .im2col import (col2im, col2im_reference, conv_output_size, im2col,
                     im2col_reference)

__all__ = ["im2col", "col2im", "im2col_reference", "col2im_reference", "conv_output_size"]
