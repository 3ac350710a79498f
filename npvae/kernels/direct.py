"""Direct convolution kernels for layers with a single channel on one side, no im2col, no GEMM.

The VAE's first convolution (1 -> 32 channels) and last transposed convolution (32 -> 1)
have a GEMM dimension of 1 channel x 16 taps: as im2col + GEMM, OpenBLAS runs them at a
fraction of its speed (K = 16 or N = 16 is far too thin for its blocking) and the column
matrix is 16x the image. Computed directly, every output pixel is 16 taps times a vector of
channels, which LLVM vectorises along the contiguous channel axis.

Three kernels cover the forward and backward passes of both layers (``x1`` is the
single-channel side, (N, H, W); ``xc`` the many-channel side, channels-last (N, OH, OW, C);
``taps`` the kernel as (kH*kW, C); a tap (i, j) of output pixel (oy, ox) reads
x1[n, oy*sh - ph + i, ox*sw - pw + j], zero outside the image):

    gather:  xc[n, oy, ox, :]  = bias + sum_taps x1[n, tap(oy, ox)] * taps[tap, :]
             (Conv2d(1, C) forward; ConvTranspose2d(C, 1) backward to its input)
    scatter: x1[n, tap(oy, ox)] += sum_c xc[n, oy, ox, c] * taps[tap, c]        (the adjoint)
             (ConvTranspose2d(C, 1) forward; Conv2d(1, C) backward to its input)
    weight:  grad_taps[tap, :] += sum_{n, oy, ox} x1[n, tap(oy, ox)] * xc[n, oy, ox, :]
             (the weight gradient of both)

``gather`` and ``weight`` are im2col followed by a GEMM, ``scatter`` a GEMM followed by
col2im, each summed in another order (and with fused multiply-adds, ``fastmath={"contract"}``,
as OpenBLAS's GEMM uses them; nothing is reassociated): results agree with those references
to rounding, which the tests check.
"""
import numba
import numpy as np


# Loop order: a row of output pixels at a time, taps outside, pixels and channels inside, so
# that consecutive updates go to different pixels (independent, throughput-bound) rather than
# 16 taps in a row to one pixel's channels (a dependent chain through memory, twice as slow).
@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _gather_kernel(x1, taps, bias, kh, kw, sh, sw, ph, pw, out):
    n_images, height, width = x1.shape
    _, out_h, out_w, channels = out.shape
    for n in range(n_images):
        for oy in range(out_h):
            row = out[n, oy]
            for ox in range(out_w):
                for c in range(channels):
                    row[ox, c] = bias[c]
            for i in range(kh):
                y = oy * sh - ph + i
                if y < 0 or y >= height:
                    continue
                for j in range(kw):
                    t = i * kw + j
                    for ox in range(out_w):
                        xx = ox * sw - pw + j
                        if 0 <= xx < width:
                            v = x1[n, y, xx]
                            for c in range(channels):
                                row[ox, c] += v * taps[t, c]


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _scatter_kernel(xc, taps_by_channel, bias, kh, kw, sh, sw, ph, pw, acc, out):
    n_images, height, width = out.shape
    _, in_h, in_w, channels = xc.shape
    n_taps = kh * kw
    for n in range(n_images):
        for y in range(height):
            for xx in range(width):
                out[n, y, xx] = bias
        for oy in range(in_h):
            # acc[ox, tap] = sum_c xc[n, oy, ox, c] * taps[tap, c] for the row, then scattered
            for ox in range(in_w):
                for t in range(n_taps):
                    acc[ox, t] = 0
            for c in range(channels):
                for ox in range(in_w):
                    v = xc[n, oy, ox, c]
                    for t in range(n_taps):
                        acc[ox, t] += v * taps_by_channel[c, t]
            for i in range(kh):
                y = oy * sh - ph + i
                if y < 0 or y >= height:
                    continue
                for ox in range(in_w):
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        if 0 <= xx < width:
                            out[n, y, xx] += acc[ox, i * kw + j]


@numba.njit(nogil=True, cache=True, fastmath={"contract"})
def _weight_kernel(x1, xc, kh, kw, sh, sw, ph, pw, grad_taps):
    n_images, height, width = x1.shape
    _, out_h, out_w, channels = xc.shape
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                for i in range(kh):
                    y = oy * sh - ph + i
                    if y < 0 or y >= height:
                        continue
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        if 0 <= xx < width:
                            v = x1[n, y, xx]
                            t = i * kw + j
                            for c in range(channels):
                                grad_taps[t, c] += v * xc[n, oy, ox, c]


def _geometry(kernel, stride, padding):
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return kh, kw, sh, sw, ph, pw


def direct_gather(x1, taps, bias, out_hw, kernel, stride, padding, out=None):
    """x1 (N, H, W), taps (kH*kW, C), bias (C,) or None -> (N, OH, OW, C) channels-last."""
    n = x1.shape[0]
    channels = taps.shape[1]
    shape = (n, *out_hw, channels)
    if out is None or out.shape != shape or out.dtype != taps.dtype:
        out = np.empty(shape, dtype=taps.dtype)
    bias = np.zeros(channels, taps.dtype) if bias is None else np.ascontiguousarray(bias, taps.dtype)
    _gather_kernel(np.ascontiguousarray(x1), np.ascontiguousarray(taps), bias,
                   *_geometry(kernel, stride, padding), out)
    return out


def direct_scatter(xc, taps, bias, image_hw, kernel, stride, padding, out=None):
    """xc (N, OH, OW, C) channels-last, taps (kH*kW, C), bias a scalar or None -> (N, H, W),
    the adjoint of :func:`direct_gather` (plus the bias)."""
    shape = (xc.shape[0], *image_hw)
    if out is None or out.shape != shape or out.dtype != taps.dtype:
        out = np.empty(shape, dtype=taps.dtype)
    bias = taps.dtype.type(0 if bias is None else bias)
    acc = np.empty((xc.shape[2], taps.shape[0]), dtype=taps.dtype)
    _scatter_kernel(np.ascontiguousarray(xc), np.ascontiguousarray(taps.T), bias,
                    *_geometry(kernel, stride, padding), acc, out)
    return out


def direct_weight_grad(x1, xc, kernel, stride, padding):
    """sum over images and output pixels of x1's patch (kH*kW,) times xc's channels (C,):
    (kH*kW, C), the weight gradient of both layers."""
    grad_taps = np.zeros((kernel[0] * kernel[1], xc.shape[3]), dtype=xc.dtype)
    _weight_kernel(np.ascontiguousarray(x1), np.ascontiguousarray(xc),
                   *_geometry(kernel, stride, padding), grad_taps)
    return grad_taps


# -- NumPy references: im2col, then a matrix product (the tests compare against these) --------
def direct_gather_reference(x1, taps, bias, out_hw, kernel, stride, padding):
    from .im2col import im2col_nhwc_reference
    n = x1.shape[0]
    cols = im2col_nhwc_reference(x1[..., None], kernel, stride, padding)
    out = cols @ taps + (0 if bias is None else bias)
    return out.reshape(n, *out_hw, taps.shape[1]).astype(taps.dtype, copy=False)


def direct_scatter_reference(xc, taps, bias, image_hw, kernel, stride, padding):
    from .im2col import col2im_nhwc_reference
    n = xc.shape[0]
    cols = xc.reshape(-1, xc.shape[3]) @ taps.T
    out = col2im_nhwc_reference(cols, (n, *image_hw, 1), kernel, stride, padding)[..., 0]
    return (out + (0 if bias is None else bias)).astype(taps.dtype, copy=False)


def direct_weight_grad_reference(x1, xc, kernel, stride, padding):
    from .im2col import im2col_nhwc_reference
    cols = im2col_nhwc_reference(x1[..., None], kernel, stride, padding)
    return (cols.T @ xc.reshape(-1, xc.shape[3])).astype(xc.dtype, copy=False)
