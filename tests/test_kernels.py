"""The Numba kernels against their NumPy references, and against hand-worked examples
(so a bug shared by a kernel and its reference is still caught): im2col/col2im and the
fused ReLU backward.

The kernels work channels-last (NHWC). Most tests below see them through the textbook
NCHW layout, cols[(n, oh, ow), (c, i, j)] = x_padded[n, c, oh*sh + i, ow*sw + j], and
compare with the independent NCHW NumPy reference: the wrappers ``im2col`` and
``col2im`` here only transpose the image and reorder the columns.
"""
import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from npvae.kernels import (col2im_nhwc, col2im_nhwc_reference, col2im_reference,
                           conv_output_size, im2col_nhwc, im2col_nhwc_reference,
                           im2col_reference, memory_view, relu_backward,
                           relu_backward_reference)


def im2col(x, kernel, stride, padding):
    """NCHW patches from the Numba kernel: columns (i, j, c) reordered to (c, i, j)."""
    n, c = x.shape[:2]
    cols = im2col_nhwc(x.transpose(0, 2, 3, 1), kernel, stride, padding)
    return cols.reshape(-1, kernel[0], kernel[1], c).transpose(0, 3, 1, 2).reshape(cols.shape[0], -1)


def col2im(cols, image_shape, kernel, stride, padding):
    """The NCHW adjoint from the Numba kernel: columns (c, i, j) reordered to (i, j, c)."""
    n, c, h, w = image_shape
    rows = cols.shape[0]
    cols_nhwc = cols.reshape(rows, c, kernel[0], kernel[1]).transpose(0, 2, 3, 1).reshape(rows, -1)
    return col2im_nhwc(cols_nhwc, (n, h, w, c), kernel, stride, padding).transpose(0, 3, 1, 2)

# The kernels are cheap to call: run several times the profile's example count.
MANY = settings(max_examples=4 * settings.default.max_examples)

TOLERANCES = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


@dataclass(frozen=True)
class Geometry:
    n: int
    c: int
    h: int
    w: int
    kernel: tuple
    stride: tuple
    padding: tuple

    @property
    def image_shape(self):
        return (self.n, self.c, self.h, self.w)

    @property
    def out_hw(self):
        return tuple(conv_output_size(size, k, s, p) for size, k, s, p in
                     zip((self.h, self.w), self.kernel, self.stride, self.padding))

    @property
    def cols_shape(self):
        oh, ow = self.out_hw
        return (self.n * oh * ow, self.c * self.kernel[0] * self.kernel[1])

    def args(self):
        return self.kernel, self.stride, self.padding


@st.composite
def geometries(draw, max_size=11):
    """Kernel 1-5, stride 1-3, padding 0..k-1 per axis, square or not; C 1-8, N 1-4;
    any spatial size (odd or even) that fits at least one window."""
    square = draw(st.booleans())
    kh = draw(st.integers(1, 5))
    kw = kh if square else draw(st.integers(1, 5))
    sh = draw(st.integers(1, 3))
    sw = sh if square else draw(st.integers(1, 3))
    ph = draw(st.integers(0, kh - 1))
    pw = ph if square else draw(st.integers(0, kw - 1))
    h = draw(st.integers(max(1, kh - 2 * ph), max_size))
    w = h if square and draw(st.booleans()) else draw(st.integers(max(1, kw - 2 * pw), max_size))
    return Geometry(draw(st.integers(1, 4)), draw(st.integers(1, 8)), h, w, (kh, kw), (sh, sw), (ph, pw))


# The encoder's and decoder's own geometries, including the odd 7 -> 4 case where the
# last padded row is never read.
MNIST_GEOMETRIES = [Geometry(2, 1, 28, 28, (4, 4), (2, 2), (1, 1)),
                    Geometry(2, 32, 14, 14, (4, 4), (2, 2), (1, 1)),
                    Geometry(2, 64, 7, 7, (3, 3), (2, 2), (1, 1))]

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**32 - 1)
layouts = st.sampled_from(["contiguous", "transposed", "strided"])


def make_array(shape, dtype, layout, rng):
    """Random array with the given shape and memory layout (values don't depend on layout).

    transposed: a Fortran-ordered view of a transposed array (every stride differs from
    C order); strided: every other element of a larger buffer along the last axis.
    """
    values = rng.standard_normal(shape).astype(dtype)
    if layout == "contiguous":
        out = values
    elif layout == "transposed":
        out = np.ascontiguousarray(values.T).T
    elif layout == "strided":
        buffer = np.zeros(shape[:-1] + (2 * shape[-1],), dtype=dtype)
        buffer[..., ::2] = values
        out = buffer[..., ::2]
    else:
        raise AssertionError(layout)
    assert np.array_equal(out, values) and out.dtype == dtype
    assert (layout == "contiguous") == out.flags.c_contiguous or out.size <= 1 or min(shape) == 1
    return out


# -- im2col --------------------------------------------------------------------------

@MANY
@given(geometries(), dtypes, layouts, seeds)
@example(MNIST_GEOMETRIES[0], np.float32, "contiguous", 0)
@example(MNIST_GEOMETRIES[2], np.float64, "transposed", 1)
def test_im2col_matches_reference(geom, dtype, layout, seed):
    x = make_array(geom.image_shape, dtype, layout, np.random.default_rng(seed))
    cols = im2col(x, *geom.args())
    assert cols.shape == geom.cols_shape
    assert cols.dtype == dtype
    assert cols.flags.c_contiguous
    # A pure gather: equality is exact.
    np.testing.assert_array_equal(cols, im2col_reference(x, *geom.args()))
    np.testing.assert_array_equal(cols, im2col_reference(np.ascontiguousarray(x), *geom.args()))


def test_im2col_hand_example_without_padding():
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)
    # x = [[0 1 2]      2x2 windows, stride 1, row-major over output positions,
    #      [3 4 5]      each window flattened row-major:
    #      [6 7 8]]
    expected = np.array([[0, 1, 3, 4],
                         [1, 2, 4, 5],
                         [3, 4, 6, 7],
                         [4, 5, 7, 8]], dtype=np.float64)
    np.testing.assert_array_equal(im2col(x, (2, 2), (1, 1), (0, 0)), expected)


def test_im2col_hand_example_with_padding_stride_and_two_channels_and_images():
    base = np.arange(9, dtype=np.float64).reshape(3, 3)
    # Two images; channel 1 is channel 0 + 100; image 1 is image 0 + 1000.
    x = np.stack([np.stack([base, base + 100]), np.stack([base + 1000, base + 1100])])
    cols = im2col(x, (3, 3), (2, 2), (1, 1))
    # Output 2x2 (OH = (3 + 2 - 3) // 2 + 1). Windows of the zero-padded image, channel 0:
    win = {(0, 0): [[None, None, None], [None, 0, 1], [None, 3, 4]],
           (0, 1): [[None, None, None], [1, 2, None], [4, 5, None]],
           (1, 0): [[None, 3, 4], [None, 6, 7], [None, None, None]],
           (1, 1): [[4, 5, None], [7, 8, None], [None, None, None]]}

    def flat(window, offset):
        return [0.0 if v is None else v + offset for row in window for v in row]

    rows = []
    for image_offset in (0, 1000):                       # rows: (n, oh, ow)
        for oh in range(2):
            for ow in range(2):
                w = win[(oh, ow)]                        # columns: (c, i, j)
                rows.append(flat(w, image_offset) + flat(w, image_offset + 100))
    np.testing.assert_array_equal(cols, np.array(rows))


# -- col2im --------------------------------------------------------------------------

@MANY
@given(geometries(), dtypes, st.sampled_from(["contiguous", "transposed"]), seeds)
@example(MNIST_GEOMETRIES[1], np.float32, "contiguous", 0)
@example(MNIST_GEOMETRIES[2], np.float64, "transposed", 1)
def test_col2im_matches_reference(geom, dtype, layout, seed):
    cols = make_array(geom.cols_shape, dtype, layout, np.random.default_rng(seed))
    image = col2im(cols, geom.image_shape, *geom.args())
    assert image.shape == geom.image_shape
    assert image.dtype == dtype
    # A scatter-add: the kernel and the reference add overlapping windows in different
    # orders, so allow rounding.
    np.testing.assert_allclose(image, col2im_reference(cols, geom.image_shape, *geom.args()),
                               **TOLERANCES[dtype])


def test_col2im_hand_example_counts_window_overlaps():
    # Scattering ones counts, for each pixel, the 2x2 windows (stride 1) that cover it.
    image = col2im(np.ones((4, 4)), (1, 1, 3, 3), (2, 2), (1, 1), (0, 0))
    np.testing.assert_array_equal(image[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    # 3x3 windows, stride 2, padding 1 on a 3x3 image: four windows; the centre column
    # and row are shared by two windows each, the centre pixel by all four.
    image = col2im(np.ones((4, 9)), (1, 1, 3, 3), (3, 3), (2, 2), (1, 1))
    np.testing.assert_array_equal(image[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# -- adjointness ---------------------------------------------------------------------

@MANY
@given(geometries(), seeds)
@example(MNIST_GEOMETRIES[2], 0)
def test_col2im_is_the_adjoint_of_im2col(geom, seed):
    """<im2col(x), C> == <x, col2im(C)> for every x and C: the identity the convolution
    backward passes rely on."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(geom.image_shape)
    c = rng.standard_normal(geom.cols_shape)
    lhs = np.vdot(im2col(x, *geom.args()), c)
    rhs = np.vdot(x, col2im(c, geom.image_shape, *geom.args()))
    scale = np.vdot(np.abs(im2col(x, *geom.args())), np.abs(c)) + 1e-300
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs)


# -- output size ---------------------------------------------------------------------

@MANY
@given(st.integers(1, 7), st.integers(1, 4), st.data())
def test_conv_output_size_matches_the_formula_and_counts_windows(kernel, stride, data):
    padding = data.draw(st.integers(0, kernel - 1), label="padding")
    size = data.draw(st.integers(max(1, kernel - 2 * padding), 64), label="size")
    out = conv_output_size(size, kernel, stride, padding)
    # PyTorch's documented formula (dilation 1).
    assert out == math.floor((size + 2 * padding - (kernel - 1) - 1) / stride + 1)
    # The number of window starts 0, s, 2s, ... that fit in the padded input.
    assert out == sum(1 for start in range(0, size + 2 * padding, stride)
                      if start + kernel <= size + 2 * padding)


@pytest.mark.parametrize("size, kernel, stride, padding, expected",
                         [(28, 4, 2, 1, 14), (14, 4, 2, 1, 7), (7, 3, 2, 1, 4), (5, 5, 1, 0, 1),
                          (6, 3, 3, 0, 2), (8, 3, 3, 0, 2), (9, 3, 3, 0, 3)])
def test_conv_output_size_examples(size, kernel, stride, padding, expected):
    assert conv_output_size(size, kernel, stride, padding) == expected


# -- channels-last kernels (the layers' hot path) ----------------------------------------
#
# cols[(n, oh, ow), (i, j, c)] = x_padded[n, oh*sh + i, ow*sw + j, c]: the same patches as
# the NCHW kernels, with each row's columns ordered (i, j, c) instead of (c, i, j).

def nhwc_shape(geom):
    return (geom.n, geom.h, geom.w, geom.c)


def nchw_to_nhwc_columns(cols, geom):
    """Reorder an NCHW patch matrix's columns from (c, i, j) to (i, j, c)."""
    kh, kw = geom.kernel
    return cols.reshape(-1, geom.c, kh, kw).transpose(0, 2, 3, 1).reshape(cols.shape)


@MANY
@given(geometries(), dtypes, layouts, seeds)
@example(MNIST_GEOMETRIES[1], np.float32, "transposed", 0)
def test_im2col_nhwc_matches_reference_and_the_nchw_patches(geom, dtype, layout, seed):
    x = make_array(nhwc_shape(geom), dtype, layout, np.random.default_rng(seed))
    cols = im2col_nhwc(x, *geom.args())
    assert cols.shape == geom.cols_shape and cols.dtype == dtype
    np.testing.assert_array_equal(cols, im2col_nhwc_reference(x, *geom.args()))
    nchw = im2col_reference(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), *geom.args())
    np.testing.assert_array_equal(cols, nchw_to_nhwc_columns(nchw, geom))


@given(geometries(), dtypes, seeds)
def test_im2col_nhwc_overwrites_a_reused_out_buffer(geom, dtype, seed):
    x = make_array(nhwc_shape(geom), dtype, "contiguous", np.random.default_rng(seed))
    dirty = np.full(geom.cols_shape, np.nan, dtype=dtype)
    assert im2col_nhwc(x, *geom.args(), out=dirty) is dirty
    np.testing.assert_array_equal(dirty, im2col_nhwc_reference(x, *geom.args()))


@MANY
@given(geometries(), dtypes, st.sampled_from(["contiguous", "transposed", "strided"]), seeds)
@example(MNIST_GEOMETRIES[2], np.float64, "contiguous", 0)
def test_col2im_nhwc_matches_reference_and_the_nchw_scatter(geom, dtype, layout, seed):
    cols = make_array(geom.cols_shape, dtype, layout, np.random.default_rng(seed))
    dirty = np.full(nhwc_shape(geom), 3.0, dtype=dtype)
    image = col2im_nhwc(cols, nhwc_shape(geom), *geom.args(), out=dirty)
    assert image is dirty and image.dtype == dtype
    np.testing.assert_allclose(image, col2im_nhwc_reference(cols, nhwc_shape(geom), *geom.args()),
                               **TOLERANCES[dtype])
    kh, kw = geom.kernel
    cols_nchw = np.ascontiguousarray(
        cols.reshape(-1, kh, kw, geom.c).transpose(0, 3, 1, 2).reshape(cols.shape))
    np.testing.assert_allclose(image.transpose(0, 3, 1, 2),
                               col2im_reference(cols_nchw, geom.image_shape, *geom.args()),
                               **TOLERANCES[dtype])


@MANY
@given(geometries(), seeds)
def test_col2im_nhwc_is_the_adjoint_of_im2col_nhwc(geom, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(nhwc_shape(geom))
    c = rng.standard_normal(geom.cols_shape)
    cols = im2col_nhwc(x, *geom.args())
    lhs, rhs = np.vdot(cols, c), np.vdot(x, col2im_nhwc(c, nhwc_shape(geom), *geom.args()))
    assert abs(lhs - rhs) <= 1e-12 * (np.vdot(np.abs(cols), np.abs(c)) + 1e-300), (lhs, rhs)


def test_nhwc_hand_example_column_order():
    # 1 image, 2x2 pixels, 2 channels (channel 1 = channel 0 + 10); one 2x2 window.
    x = np.array([[[[0, 10], [1, 11]], [[2, 12], [3, 13]]]], dtype=np.float64)  # (1, 2, 2, 2)
    np.testing.assert_array_equal(im2col_nhwc(x, (2, 2), (1, 1), (0, 0)),
                                  [[0, 10, 1, 11, 2, 12, 3, 13]])            # (i, j, c)
    np.testing.assert_array_equal(im2col(np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                                         (2, 2), (1, 1), (0, 0)),
                                  [[0, 1, 2, 3, 10, 11, 12, 13]])            # (c, i, j)


def test_im2col_nhwc_ignores_an_out_buffer_of_the_wrong_shape_or_dtype():
    x = np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)
    args = ((2, 2), (2, 2), (0, 0))
    for bad in (np.empty((3, 4)), np.empty((4, 4), dtype=np.float32)):
        cols = im2col_nhwc(x, *args, out=bad)
        assert cols is not bad
        np.testing.assert_array_equal(cols, im2col_nhwc_reference(x, *args))


def test_col2im_nhwc_rejects_cols_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"cols has shape \(4, 5\), expected \(4, 4\)"):
        col2im_nhwc(np.ones((4, 5)), (1, 3, 3, 1), (2, 2), (1, 1), (0, 0))


# -- fused ReLU backward ------------------------------------------------------------------

def _as_layout(values, layout):
    if layout == "contiguous":
        return values.copy()
    if layout == "nhwc-view":          # channels-last memory seen as NCHW, as in the models
        return np.ascontiguousarray(values.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    if layout == "fortran":
        return np.asfortranarray(values)
    if layout == "strided":            # not dense: the NumPy fallback
        buffer = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), values.dtype)
        buffer[..., ::2] = values
        return buffer[..., ::2]
    raise AssertionError(layout)


relu_layouts = st.sampled_from(["contiguous", "nhwc-view", "fortran", "strided"])


@MANY
@given(st.lists(st.integers(1, 5), min_size=4, max_size=4).map(tuple), relu_layouts, relu_layouts,
       dtypes, st.booleans(), seeds)
def test_relu_backward_matches_reference(shape, y_layout, grad_layout, dtype, in_place, seed):
    rng = np.random.default_rng(seed)
    pre = rng.standard_normal(shape).astype(dtype)
    pre.reshape(-1)[::3] = 0                                   # exact zeros: subgradient 0
    y = _as_layout(np.maximum(pre, 0), y_layout)
    grad_values = rng.standard_normal(shape).astype(dtype)
    grad = _as_layout(grad_values, grad_layout)
    expected = np.where(pre > 0, grad_values, 0)
    out = relu_backward(y, grad, out=grad if in_place else None)
    assert out.shape == shape and out.dtype == dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(relu_backward_reference(y, grad_values), expected)
    if in_place:
        assert out is grad
    else:
        np.testing.assert_array_equal(grad, grad_values)           # input untouched


def test_relu_backward_with_mismatched_dtypes_takes_the_reference_path():
    y = np.array([[0.0, 1.0, 2.0]], dtype=np.float64)
    grad = np.array([[5.0, 6.0, 7.0]], dtype=np.float32)
    out = relu_backward(y, grad)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 6, 7]])


@pytest.mark.parametrize("layout, dense", [("contiguous", True), ("nhwc-view", True),
                                           ("fortran", True), ("strided", False)])
def test_memory_view_is_the_memory_in_memory_order(layout, dense):
    a = _as_layout(np.arange(24.0).reshape(2, 3, 2, 2), layout)
    view = memory_view(a)
    if not dense:
        assert view is None
        return
    assert view.ndim == 1 and view.size == a.size and np.shares_memory(view, a)
    # The view lists the elements in the order they sit in memory.
    by_address = sorted(np.ndindex(a.shape), key=lambda idx: int(np.dot(idx, a.strides)))
    np.testing.assert_array_equal(view, [a[idx] for idx in by_address])
    view[0] = -1.0                                    # and writes through to the array
    assert a[by_address[0]] == -1.0


def test_relu_backward_for_mismatched_layouts_takes_y_layout_and_the_strided_kernel():
    # Below a Flatten the gradient is C-ordered NCHW while y is channels-last memory.
    rng = np.random.default_rng(0)
    pre = rng.standard_normal((3, 5, 4, 2)).astype(np.float32)
    y = np.ascontiguousarray(np.maximum(pre, 0).transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    grad = rng.standard_normal(y.shape).astype(np.float32)
    out = relu_backward(y, grad)
    assert out.strides == y.strides
    np.testing.assert_array_equal(out, np.where(pre > 0, grad, 0))
    for view in (y[:, :, ::2], y[0]):                      # 4-D strided and 3-D
        g = rng.standard_normal(view.shape).astype(np.float32)
        np.testing.assert_array_equal(relu_backward(view, g), relu_backward_reference(view, g))


from npvae.kernels import column_sums  # noqa: E402


@pytest.mark.parametrize("shape", [(12544, 32), (3136, 64), (1024, 128), (64, 2048), (196 * 64, 32),
                                   (49 * 64, 64), (100, 16), (50176, 1), (64, 2), (7, 15), (0, 32)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_sums_is_numpys_sum_over_rows_bit_for_bit(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype) * 1e3
    np.testing.assert_array_equal(column_sums(a), a.sum(axis=0))
    assert column_sums(a).dtype == dtype
    view = np.random.default_rng(1).standard_normal((shape[0], 2 * shape[1])).astype(dtype)[:, ::2]
    np.testing.assert_array_equal(column_sums(view), view.sum(axis=0))      # NumPy's path


@given(st.integers(1, 3000), st.integers(16, 200), dtypes, seeds)
def test_column_sums_matches_numpy_for_any_tall_array(rows, cols, dtype, seed):
    a = np.random.default_rng(seed).standard_normal((rows, cols)).astype(dtype)
    np.testing.assert_array_equal(column_sums(a), a.sum(axis=0))


from npvae.kernels import add_to_rows  # noqa: E402


@given(st.integers(0, 3000), st.integers(1, 200), dtypes, st.booleans(), seeds)
def test_add_to_rows_is_numpys_broadcast_add(rows, cols, dtype, strided, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, 2 * cols if strided else cols)).astype(dtype)
    a = a[:, ::2] if strided else a
    row = rng.standard_normal(cols).astype(dtype)
    expected = a + row
    assert add_to_rows(a, row) is a
    np.testing.assert_array_equal(a, expected)
