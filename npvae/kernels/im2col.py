"""im2col and col2im: a convolution as one matrix product, and its adjoint.

The layers keep activations channels-last (NHWC), and so do the kernels:

    cols[(n, oh, ow), (i, j, c)] = x_padded[n, oh * stride_h + i, ow * stride_w + j, c]

Rows run over output positions, columns over one receptive field, channels innermost,
so the copy runs along contiguous memory; a weight multiplies it once permuted to
``(C_out, kH, kW, C_in)`` (see npvae/nn/conv.py). ``col2im`` is the exact adjoint of
``im2col``: it scatters every column entry back to the pixel it was read from, adding
where receptive fields overlap.

Each kernel (a serial Numba loop that releases the GIL, so that npvae's worker threads
(npvae/parallel.py) run it side by side) has a plain NumPy reference. The textbook NCHW
pair, cols[(n, oh, ow), (c, i, j)] = x_padded[n, c, oh*sh + i, ow*sw + j], is kept as a
NumPy reference too: it is the layout most readers know, and the tests check the fast
kernels against it as an independent second opinion.
"""
import numba
import numpy as np


def conv_output_size(size, kernel, stride, padding):
    """Output length of a convolution along one axis (floor division, as PyTorch)."""
    return (size + 2 * padding - kernel) // stride + 1


@numba.njit(nogil=True, cache=True)
def _im2col_nhwc_kernel(x, kh, kw, sh, sw, ph, pw, out_h, out_w, cols):
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for i in range(kh):
                    y = oy * sh - ph + i
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        base = (i * kw + j) * channels
                        if 0 <= y < height and 0 <= xx < width:
                            for c in range(channels):
                                cols[row, base + c] = x[n, y, xx, c]
                        else:
                            for c in range(channels):
                                cols[row, base + c] = 0.0


@numba.njit(nogil=True, cache=True)
def _col2im_nhwc_kernel(cols, kh, kw, sh, sw, ph, pw, out_h, out_w, x):
    n_images, height, width, channels = x.shape
    for n in range(n_images):
        x[n] = 0.0
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for i in range(kh):
                    y = oy * sh - ph + i
                    if y < 0 or y >= height:
                        continue
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        if 0 <= xx < width:
                            base = (i * kw + j) * channels
                            for c in range(channels):
                                x[n, y, xx, c] += cols[row, base + c]


# One channel (the VAE's image and its last layer's output): the generic kernels' innermost
# loop over channels then runs once per tap, and its loop overhead made them 20x slower per
# value than with 32 channels (1.5 GB/s against 30; 0.54 ms for 64 images). These copy the
# same values in the same order, so results are identical.
@numba.njit(nogil=True, cache=True)
def _im2col_one_channel_kernel(x, kh, kw, sh, sw, ph, pw, out_h, out_w, cols):
    n_images, height, width = x.shape
    zero = cols.dtype.type(0)
    for n in range(n_images):
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for i in range(kh):
                    y = oy * sh - ph + i
                    inside = 0 <= y < height
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        cols[row, i * kw + j] = x[n, y, xx] if inside and 0 <= xx < width else zero


@numba.njit(nogil=True, cache=True)
def _col2im_one_channel_kernel(cols, kh, kw, sh, sw, ph, pw, out_h, out_w, x):
    n_images, height, width = x.shape
    for n in range(n_images):
        x[n] = 0.0
        for oy in range(out_h):
            for ox in range(out_w):
                row = (n * out_h + oy) * out_w + ox
                for i in range(kh):
                    y = oy * sh - ph + i
                    if y < 0 or y >= height:
                        continue
                    for j in range(kw):
                        xx = ox * sw - pw + j
                        if 0 <= xx < width:
                            x[n, y, xx] += cols[row, i * kw + j]


def im2col_nhwc(x, kernel, stride, padding, out=None):
    """Patch matrix of channels-last ``x`` (N, H, W, C) -> (N*OH*OW, kH*kW*C), Numba path.

    cols[(n, oh, ow), (i, j, c)] = x_padded[n, oh*sh + i, ow*sw + j, c]: the innermost
    copy runs along contiguous channels, which is what makes this layout fast.
    """
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = x.shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    shape = (n * out_h * out_w, kh * kw * c)
    if out is None or out.shape != shape or out.dtype != x.dtype:
        out = np.empty(shape, dtype=x.dtype)
    if c == 1:
        _im2col_one_channel_kernel(np.ascontiguousarray(x[..., 0]), kh, kw, sh, sw, ph, pw, out_h, out_w, out)
    else:
        _im2col_nhwc_kernel(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out_h, out_w, out)
    return out


def col2im_nhwc(cols, image_shape, kernel, stride, padding, out=None):
    """Adjoint of :func:`im2col_nhwc`: (N*OH*OW, kH*kW*C) -> (N, H, W, C), Numba path."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = image_shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if cols.shape != (n * out_h * out_w, kh * kw * c):
        raise ValueError(f"col2im: cols has shape {cols.shape}, expected "
                         f"{(n * out_h * out_w, kh * kw * c)} for images {tuple(image_shape)}")
    if out is None or out.shape != tuple(image_shape) or out.dtype != cols.dtype:
        out = np.empty(image_shape, dtype=cols.dtype)
    if c == 1 and out.flags.c_contiguous:
        _col2im_one_channel_kernel(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, out_h, out_w,
                                   out[..., 0])
    else:
        _col2im_nhwc_kernel(np.ascontiguousarray(cols), kh, kw, sh, sw, ph, pw, out_h, out_w, out)
    return out


def im2col_nhwc_reference(x, kernel, stride, padding):
    """Plain NumPy :func:`im2col_nhwc`: pad once, then copy one kernel offset at a time."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = x.shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    cols = np.empty((n, out_h, out_w, kh, kw, c), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = padded[:, i:i + sh * out_h:sh, j:j + sw * out_w:sw, :]
    return cols.reshape(n * out_h * out_w, kh * kw * c)


def col2im_nhwc_reference(cols, image_shape, kernel, stride, padding):
    """Plain NumPy :func:`col2im_nhwc`: add each kernel offset's slab back into a padded image."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, h, w, c = image_shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    padded = np.zeros((n, max(h + 2 * ph, sh * (out_h - 1) + kh),
                       max(w + 2 * pw, sw * (out_w - 1) + kw), c), dtype=cols.dtype)
    blocks = cols.reshape(n, out_h, out_w, kh, kw, c)
    for i in range(kh):
        for j in range(kw):
            padded[:, i:i + sh * out_h:sh, j:j + sw * out_w:sw, :] += blocks[:, :, :, i, j, :]
    return padded[:, ph:ph + h, pw:pw + w, :].copy()


def im2col_reference(x, kernel, stride, padding):
    """Plain NumPy :func:`im2col`: pad once, then copy one kernel offset at a time."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, out_h, out_w, c, kh, kw), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw]
            cols[:, :, :, :, i, j] = window.transpose(0, 2, 3, 1)
    return cols.reshape(n * out_h * out_w, c * kh * kw)


def col2im_reference(cols, image_shape, kernel, stride, padding):
    """Plain NumPy :func:`col2im`: add each kernel offset's slab back into a padded image."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = image_shape
    out_h, out_w = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    # Large enough for every strided window, even when the last rows are never read.
    padded = np.zeros((n, c, max(h + 2 * ph, sh * (out_h - 1) + kh),
                       max(w + 2 * pw, sw * (out_w - 1) + kw)), dtype=cols.dtype)
    blocks = cols.reshape(n, out_h, out_w, c, kh, kw)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + sh * out_h:sh, j:j + sw * out_w:sw] += \
                blocks[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return padded[:, :, ph:ph + h, pw:pw + w].copy()
