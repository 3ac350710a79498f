"""A t-SNE view of a latent space of more than two dimensions, drawn beside its PCA view.

PCA shows the two directions of largest variance and hides whatever lies in the others;
t-SNE (van der Maaten & Hinton 2008; scikit-learn's, seeded) keeps each point's
neighbourhood instead, so clusters spread over many dimensions show as separate islands.
Distances between islands and their sizes mean little in a t-SNE map: the PCA panel beside
it keeps the geometry.
"""
import numpy as np

from .images import CLASS_COLORS

PERPLEXITY = 30.0
TSNE_POINTS = 2000      # of the latent figure's 5,000 means: t-SNE's cost grows as N log N and
                        # more; measured on this 2-core machine, busy: 2,000 16-D points 28 s


def tsne_embedding(points, seed=0, perplexity=PERPLEXITY):
    """(N, d) points -> (N, 2) t-SNE coordinates (PCA initialisation, automatic learning
    rate, ``seed`` for its randomness: the same points and seed give the same map). The
    perplexity is lowered to (N - 1) / 3 for a small N, as t-SNE needs. It runs on one thread:
    measured on the busy 2-core machine, 2,000 points took 115 s with scikit-learn's default
    OpenMP threads and 28 s with one."""
    from sklearn.manifold import TSNE         # imported only when drawn: a slow import
    from threadpoolctl import threadpool_limits

    points = np.asarray(points, dtype=np.float64)
    if len(points) < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {len(points)}")
    perplexity = min(perplexity, (len(points) - 1) / 3)
    with threadpool_limits(1):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(points)


def tsne_panel(ax, coords, labels, class_names, size=4):
    """Scatter t-SNE ``coords`` (N, 2) on ``ax``, coloured by ``labels`` as the PCA panel."""
    for k, name in enumerate(class_names):
        mask = labels == k
        ax.scatter(coords[mask, 0], coords[mask, 1], s=size, color=CLASS_COLORS[k % len(CLASS_COLORS)],
                   lw=0, alpha=0.7, label=name, rasterized=True)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of {len(coords):,} of these means (perplexity "
                 f"{min(PERPLEXITY, (len(coords) - 1) / 3):g}): neighbourhoods kept,\n"
                 "distances between clusters not meaningful", fontsize=9)
