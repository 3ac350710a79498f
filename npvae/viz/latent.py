"""Latent-space figures: the embedding of the test set (Fig. 2), the traversal grid (Fig. 3)
and interpolations between encoded test digits (Fig. 4)."""
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Circle

from .embedding import tsne_panel
from .images import CLASS_COLORS, digits_figure, new_figure, show_digits

TRAVERSAL_RANGE = 3.0
TRAVERSAL_STEPS = 13            # -3, -2.5, ..., 3
INTERPOLATION_PAIRS = ((3, 8), (1, 7), (4, 9), (0, 6), (5, 2))
INTERPOLATION_STEPS = 10


def prior_circles(ax, radii=(1, 2), label=True):
    """Dashed 1-sigma and 2-sigma circles of the prior N(0, I) (its projection on any
    orthonormal plane is again N(0, I), so they also hold for the PCA view)."""
    for r in radii:
        ax.add_patch(Circle((0, 0), r, fill=False, ls="--", lw=0.9, color="0.35", zorder=3))
    if label:
        return Line2D([], [], ls="--", lw=0.9, color="0.35", label="prior $\\mathcal{N}(0, I)$: 1σ, 2σ")
    return None


def scatter_latent(ax, run, only=None, background=False, size=4, equal=True):
    """Scatter the test means of ``run.latent()`` on ``ax`` coloured by class. ``only``: one
    class drawn in colour; ``background``: every point first in light grey."""
    latent = run.latent()
    coords, labels = latent["coords"], latent["labels"]
    if coords.shape[1] == 1:  # d = 1: spread the classes apart vertically
        jitter = np.random.default_rng(0).uniform(-0.3, 0.3, len(labels))
        coords = np.stack([coords[:, 0], labels + jitter], axis=1)
    if background:  # all the codes as a light-grey density: cheaper to store than 5,000 dots
        low, high = coords.min(axis=0), coords.max(axis=0)
        span = np.maximum(high - low, 1e-6)
        low, high = low - 0.02 * span, high + 0.02 * span
        counts, xe, ye = np.histogram2d(coords[:, 0], coords[:, 1], bins=48,
                                        range=[[low[0], high[0]], [low[1], high[1]]])
        shade = np.where(counts.T > 0, 0.12 + 0.28 * np.sqrt(counts.T / counts.max()), 0.0)
        ax.imshow(shade, cmap="Greys", vmin=0, vmax=1, origin="lower", interpolation="nearest",
                  extent=(xe[0], xe[-1], ye[0], ye[-1]), aspect="auto", zorder=0)
    classes = range(len(run.class_names)) if only is None else [only]
    for k in classes:
        mask = labels == k
        ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=CLASS_COLORS[k % len(CLASS_COLORS)], lw=0,
                   alpha=0.7 if only is None else 0.9, label=run.class_names[k], rasterized=True)
    ax.set_xlabel(latent["names"][0])
    ax.set_ylabel(latent["names"][1] if len(latent["names"]) > 1 else "class (jittered)")
    if equal and len(latent["names"]) > 1:
        ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.25)
    return coords


def latent_space_figure(run, rng=None):
    """Figure 3 (paper Fig. 2): test means coloured by class, with a legend; for d > 2 the PCA
    projection with a t-SNE map of the same means beside it (npvae.viz.embedding)."""
    latent = run.latent()
    wide = run.latent_dim > 2
    fig = new_figure(14.6 if wide else 8.2, 6.8)
    ax = fig.add_subplot(1, 2, 1) if wide else fig.add_subplot()
    scatter_latent(ax, run)
    handles, names = ax.get_legend_handles_labels()
    if run.latent_dim >= 2:
        handles.append(prior_circles(ax))
        names.append(handles[-1].get_label())
    if wide:
        ax.set_title("PCA: the plane of largest variance", fontsize=9)
        ax = fig.add_subplot(1, 2, 2)
        tsne_panel(ax, *run.tsne(), run.class_names)
    ax.legend(handles, names, title="class", loc="center left", bbox_to_anchor=(1.01, 0.5),
              markerscale=3, fontsize=9, frameon=False)
    what = ("latent means $\\mu(x)$" if run.latent_dim <= 2 else
            f"the {run.latent_dim}-D latent means $\\mu(x)$ by PCA and by t-SNE")
    expect = ("classes should overlap: the decoder is given the label" if run.conditional
              else "classes should form clusters, although no label was used")
    fig.suptitle(f"{run.kind.upper()} latent space: {len(latent['labels']):,} {run.dataset_label} "
                 f"test images, {what}\n({expect})", fontsize=11)
    return fig


def traversal_figure(run, rng=None, label=None):
    """Figure 4 (paper Fig. 3): decode a regular grid over [-3, 3]^2 of two latent axes (for
    d > 2 the two most active dimensions, the others at their mean: ``run.traversal_axes()``)."""
    values = np.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS)
    origin, axes, names = run.traversal_axes()
    if run.latent_dim == 1:
        a, b, rows = values, np.zeros_like(values), [""]
    else:
        b, a = np.meshgrid(values[::-1], values, indexing="ij")  # top row: largest z2
        rows = [f"{v:g}" for v in values[::-1]]
    coords = np.stack([a.ravel(), b.ravel()], axis=-1)[:, :axes.shape[1]]
    images = run.decode(origin + coords @ axes.T, label)
    nrows = 1 if run.latent_dim == 1 else TRAVERSAL_STEPS
    fig, ax = digits_figure(nrows, TRAVERSAL_STEPS, 8.4, 1.0, 0.6 if nrows > 1 else 0.2)
    show_digits(ax, images, nrows, TRAVERSAL_STEPS, col_labels=[f"{v:g}" for v in values],
                row_labels=rows if nrows > 1 else None, xlabel=names[0],
                ylabel=names[1] if nrows > 1 else None)
    condition = f", every cell decoded as class {run.class_names[label]}" if run.conditional else ""
    title = (f"{run.kind.upper()} latent traversal: decoded grid over "
             f"[-{TRAVERSAL_RANGE:g}, {TRAVERSAL_RANGE:g}]$^2${condition}")
    if run.latent_dim > 2:
        title += ("\nalong the two most active dimensions (most varying test means), "
                  "the others at their mean")
    ax.set_title(title, fontsize=11)
    return fig


def _interpolation_ends(run, pairs, rng):
    """Indices of the source and target test images: one of each class of ``pairs``; for a data
    set without all of those classes, random test images."""
    images, labels = run.test
    present = set(np.unique(labels).tolist())
    if all(a in present and b in present for a, b in pairs):
        return (np.array([run.examples(a, 1, rng)[0] for a, _ in pairs]),
                np.array([run.examples(b, 1, rng)[0] for _, b in pairs]))
    picks = rng.choice(len(images), size=2 * len(pairs), replace=len(images) < 2 * len(pairs))
    return picks[:len(pairs)], picks[len(pairs):]


def interpolation_figure(run, rng, pairs=INTERPOLATION_PAIRS, steps=INTERPOLATION_STEPS):
    """Figure 5 (paper Fig. 4): linear steps between the means of two real test digits, the
    real digits at both ends. A CVAE's condition moves from one one-hot label to the other."""
    images, labels = run.test
    sources, targets = _interpolation_ends(run, pairs, rng)
    pairs = list(zip(labels[sources].tolist(), labels[targets].tolist()))
    ends = np.concatenate([sources, targets])
    means = run.encode_means(images[ends], labels[ends])
    mu0, mu1 = means[:len(pairs)], means[len(pairs):]
    t = np.linspace(0.0, 1.0, steps)
    z = (1 - t)[None, :, None] * mu0[:, None, :] + t[None, :, None] * mu1[:, None, :]
    z = z.reshape(-1, run.latent_dim)
    if run.conditional:
        classes = run.model.num_classes
        start = np.eye(classes)[[a for a, _ in pairs]]
        stop = np.eye(classes)[[b for _, b in pairs]]
        weights = (1 - t)[None, :, None] * start[:, None, :] + t[None, :, None] * stop[:, None, :]
        decoded = run.decode_mixed(z, weights.reshape(-1, classes))
    else:
        decoded = run.decode(z)
    decoded = decoded.reshape(len(pairs), steps, 28, 28)
    rows = np.concatenate([images[sources][:, None] / 255.0, decoded,
                           images[targets][:, None] / 255.0], axis=1)
    fig, ax = digits_figure(len(pairs), steps + 2, 10, 1.0, 0.7, separate_after=(0, steps))
    names = run.class_names
    show_digits(ax, rows.reshape(-1, 28, 28), len(pairs), steps + 2,
                row_labels=[f"{names[a]} → {names[b]}" for a, b in pairs],
                col_labels=["real"] + [f"{v:.2f}" for v in t] + ["real"],
                separate_after=(0, steps), xlabel="interpolation weight t  (z = (1 - t) μ₀ + t μ₁)")
    condition = ("; the label's one-hot is blended the same way" if run.conditional else "")
    ax.set_title(f"{run.kind.upper()} interpolations between the means of two real test {run.noun}s"
                 f"{condition}", fontsize=11)
    return fig
