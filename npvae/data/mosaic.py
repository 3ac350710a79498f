"""Images tiled into one picture: the grids of the figures and of the TensorBoard logs."""
import numpy as np

GAP_VALUE = 0.22  # the gaps between images: light grey on white paper (ink 0 = paper, 1 = black)
PAD = 2           # pixels between cells
SEPARATOR = 8     # pixels of an extra gap that sets a column apart (real vs generated)


def cell_starts(count, size, separate_after):
    """Pixel offset of each cell along one axis, and the total length."""
    starts, position = [], PAD
    for index in range(count):
        starts.append(position)
        position += size + PAD + (SEPARATOR if index in separate_after else 0)
    return starts, position


def mosaic(images, nrows, ncols, separate_after=(), separate_rows_after=()):
    """(nrows * ncols, h, w) images in row-major order -> one 2-D array, and the cell centres
    (x of each column, y of each row) in its pixel coordinates."""
    images = np.asarray(images, dtype=np.float32)
    h, w = images.shape[-2:]
    images = images.reshape(nrows, ncols, h, w)
    xs, width = cell_starts(ncols, w, set(separate_after))
    ys, height = cell_starts(nrows, h, set(separate_rows_after))
    out = np.full((height, width), GAP_VALUE, dtype=np.float32)
    for r in range(nrows):
        for c in range(ncols):
            out[ys[r]:ys[r] + h, xs[c]:xs[c] + w] = images[r, c]
    centres = ([x + (w - 1) / 2 for x in xs], [y + (h - 1) / 2 for y in ys])
    return out, centres
