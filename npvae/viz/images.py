"""House style, image mosaics, and the two plain image figures: reconstructions and prior samples.

Digits are drawn dark-on-light everywhere (``CMAP = "gray_r"``, 0 = paper, 1 = ink),
with a light-grey gap between cells. Figures use matplotlib's object-oriented API on an
Agg canvas: nothing here ever opens a window or touches pyplot's global state.
"""
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data.mosaic import cell_starts, mosaic
from ..files import atomic_write

CMAP = "gray_r"
DPI = 110
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#3b3b3b", "#bcbd22", "#17becf")  # tab10, 7 darker


def new_figure(width, height, layout="constrained"):
    fig = Figure(figsize=(width, height), layout=layout)
    if layout == "constrained":
        fig.get_layout_engine().set(w_pad=0.1, h_pad=0.08)
    FigureCanvasAgg(fig)
    return fig


def digits_figure(nrows, ncols, width=10.0, extra_height=1.0, label_width=1.1,
                  separate_after=(), separate_rows_after=()):
    """A figure with one axes, sized so an (nrows x ncols) mosaic fills its width: the
    height follows the mosaic's aspect, plus ``extra_height`` inches for titles and ticks."""
    _, w = cell_starts(ncols, 28, set(separate_after))
    _, h = cell_starts(nrows, 28, set(separate_rows_after))
    fig = new_figure(width, (width - label_width) * h / w + extra_height)
    return fig, fig.add_subplot()


def save_figure(fig, path):
    """A figure as a PNG, written atomically."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, facecolor="white"), "wb",
                 suffix=".png")


def show_digits(ax, images, nrows, ncols, title=None, row_labels=None, col_labels=None,
                separate_after=(), separate_rows_after=(), xlabel=None, ylabel=None):
    """Draw a mosaic of digit images on ``ax``, labelled by row and column when given;
    returns the cell centres (x of each column, y of each row) in data coordinates."""
    grid, (xs, ys) = mosaic(images, nrows, ncols, separate_after, separate_rows_after)
    ax.imshow(grid, cmap=CMAP, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(xs if col_labels is not None else [])
    ax.set_yticks(ys if row_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels(col_labels)
    if row_labels is not None:
        ax.set_yticklabels(row_labels)
    ax.tick_params(length=0, labelsize=9)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=11)
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    return xs, ys


def reconstructions_figure(run, rng, blocks=3, per_row=12):
    """Figure 2: random test digits (rows 'input') above their reconstructions (decoded means)."""
    images, labels = run.test
    pick = rng.choice(len(images), size=blocks * per_row, replace=False)
    x, y = images[pick], labels[pick]
    recon = run.decode(run.encode_means(x, y), y)
    rows, names = [], []
    for b in range(blocks):
        part = slice(b * per_row, (b + 1) * per_row)
        rows += [x[part] / 255.0, recon[part]]
        names += [f"test {run.noun}", "reconstruction"]
    fig, ax = digits_figure(2 * blocks, per_row, 10, 0.55, 1.1,
                            separate_rows_after=range(1, 2 * blocks - 1, 2))
    given = " (label given to encoder and decoder)" if run.conditional else ""
    show_digits(ax, np.concatenate(rows), 2 * blocks, per_row, row_labels=names,
                separate_rows_after=range(1, 2 * blocks - 1, 2),
                title=f"{run.kind.upper()} reconstructions{given}: each test {run.noun} above the "
                      f"decoding of its posterior mean")
    return fig


def prior_samples_figure(run, rng, side=10):
    """Figure 6: z ~ N(0, I) decoded (a CVAE decodes each with a random label, shown)."""
    z = rng.standard_normal((side * side, run.latent_dim))
    if run.conditional:
        labels = rng.integers(0, run.model.num_classes, size=side * side)
        title = "CVAE samples from the prior: $z \\sim \\mathcal{N}(0, I)$, random labels (red, in the corner)"
    else:
        labels = None
        title = "VAE samples from the prior: $z \\sim \\mathcal{N}(0, I)$ decoded"
    fig, ax = digits_figure(side, side, 7.2, 0.5, 0.25)
    xs, ys = show_digits(ax, run.decode(z, labels), side, side, title=title)
    if run.conditional:
        for k, label in enumerate(labels):
            ax.text(xs[k % side] - 12.5, ys[k // side] - 12.5, run.class_names[label], fontsize=7,
                    color="#b00020", ha="left", va="top", fontweight="bold")
    return fig
