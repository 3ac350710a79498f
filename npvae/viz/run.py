"""A trained run opened for plotting: its config, metrics, model and test set, checked up front.

Everything a figure needs from the model goes through the batched helpers here
(``encode_means``, ``decode``), which call the model on chunks of ``BATCH`` images:
never one Python call per image.
"""
import numpy as np

from ..data import class_names, dataset_label, has_labels, load_dataset
from ..data.datasets import item_noun
from ..evaluation import active_units, posterior_means
from ..runs import RunDirectory
from .embedding import TSNE_POINTS, tsne_embedding

BATCH = 1000
LATENT_POINTS = 5000  # test digits shown in the latent-space figures (paper Fig. 2)

def recon_name(config):
    """What the reconstruction term is for this run's decoder (BCE for the paper's Bernoulli)."""
    return "Gaussian NLL" if config.get("likelihood", "bernoulli") == "gaussian" else "BCE"


def principal_axes(points, k=2):
    """(d, min(k, d)) orthonormal principal directions of ``points`` (numpy SVD of the
    centred points), each signed so its largest-magnitude component is positive, and the
    fraction of the variance each explains."""
    centred = points - points.mean(axis=0)
    _, s, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    k = min(k, points.shape[1])
    axes = vt[:k].T
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(k)])
    axes = axes * np.where(signs == 0, 1, signs)
    explained = s[:k] ** 2 / max(float(np.sum(s ** 2)), 1e-30)
    return axes, explained


class Run:
    """``Run(run_dir, seed=0, dataset_root=None)``: raises FileNotFoundError / ValueError
    (CheckpointError included) with a message naming the file, before any figure is drawn."""

    def __init__(self, run_dir, seed=0, dataset_root=None):
        self.run_dir = run_dir
        self.directory = RunDirectory(run_dir)
        self.seed = int(seed)
        self.dataset_root = dataset_root
        self.config = self.directory.read_config_dict()
        self.metrics = self.directory.read_metrics(required=True)
        self.model = self.directory.load_model(expect_kind=self.config["model"])
        self.model_file = self.directory.model_file
        self.kind = self.model.kind
        self.latent_dim = self.model.latent_dim
        self.dataset = self.config.get("dataset", "mnist")
        self.dataset_label = dataset_label(self.dataset)      # a path's folder or file name
        self.class_names = class_names(self.dataset)
        self.noun = item_noun(self.dataset)  # "digit", "item", ...: one image, in titles
        self._test = None
        self._latent = None
        self._tsne = None

    @property
    def conditional(self):
        return self.kind == "cvae"

    def rng(self, figure):
        """An independent stream per figure: a figure's picture does not depend on which
        other figures were drawn, or in which order."""
        return np.random.default_rng([self.seed, figure])

    # -- data ---------------------------------------------------------------------
    @property
    def test(self):
        """(images uint8 (N, 28, 28), labels int64 (N,)) of the run's data set's test split; a
        set without labels is shown as one class, "unlabelled" (its class_names)."""
        if self._test is None:
            images, labels = load_dataset(self.dataset, "test", root=self.dataset_root)
            labels = labels.astype(np.int64) if has_labels(labels) else np.zeros(len(labels), np.int64)
            self._test = images, labels
        return self._test

    def examples(self, label, count, rng):
        """Indices of ``count`` distinct test images of class ``label``, drawn with ``rng``."""
        candidates = np.flatnonzero(self.test[1] == label)
        return rng.choice(candidates, size=count, replace=False)

    # -- batched model calls -------------------------------------------------------
    def encode_means(self, images, labels):
        """uint8 images (N, 28, 28) -> posterior means (N, d), in chunks of BATCH."""
        return posterior_means(self.model, images, labels, BATCH)

    def decode(self, z, labels=None):
        """z (N, d) -> pixel probabilities (N, 28, 28); ``labels`` (N,) ints or one int (CVAE)."""
        z = np.asarray(z, dtype=self.model.dtype)
        if self.conditional:
            labels = np.broadcast_to(np.asarray(labels, dtype=np.int64), (len(z),))
        out = [self.model.decode(z[i:i + BATCH], None if labels is None else labels[i:i + BATCH])
               for i in range(0, len(z), BATCH)]
        return np.concatenate(out)[:, 0]

    def decode_mixed(self, z, weights):
        """CVAE only: decode with a soft condition, ``weights`` (N, classes) rows summing to 1
        (the decoder's input is [z, one-hot], section 3.2.1, so a blend of two one-hots is a
        point on the line between two conditions)."""
        z = np.asarray(z, dtype=self.model.dtype)
        weights = np.asarray(weights, dtype=self.model.dtype)
        out = [self.model.decode(z[i:i + BATCH], weights[i:i + BATCH]) for i in range(0, len(z), BATCH)]
        return np.concatenate(out)[:, 0]

    # -- the latent space of the test set --------------------------------------------
    def latent(self):
        """Means of a seeded sample of LATENT_POINTS test digits, their labels, the 2-D
        projection used by every latent figure, and its axis names.

        d = 2: the latent coordinates themselves. d > 2: the first two principal directions
        of these means (numpy SVD); coordinates are z . v (not centred), so the same numbers
        address the traversal grid, whose other principal coordinates are 0.
        d = 1: a single axis.
        """
        if self._latent is None:
            images, labels = self.test
            rng = self.rng(0)
            pick = np.sort(rng.choice(len(images), size=min(LATENT_POINTS, len(images)), replace=False))
            means = self.encode_means(images[pick], labels[pick])
            if self.latent_dim <= 2:
                axes = np.eye(self.latent_dim)
                names = [f"$z_{k + 1}$" for k in range(self.latent_dim)]
            else:
                axes, explained = principal_axes(means)
                names = [f"PC {k + 1} of the means ({100 * e:.0f}% of variance)"
                         for k, e in enumerate(explained)]
            self._latent = {"means": means, "labels": labels[pick], "axes": axes,
                            "coords": means.astype(np.float64) @ axes, "names": names}
        return self._latent

    def tsne(self):
        """t-SNE coordinates (n, 2) of the first TSNE_POINTS of ``latent()``'s means (a random
        sample already) and their labels (n,), seeded by the run's seed; computed once."""
        if self._tsne is None:
            latent = self.latent()
            means, labels = latent["means"][:TSNE_POINTS], latent["labels"][:TSNE_POINTS]
            self._tsne = tsne_embedding(means, seed=self.seed), labels
        return self._tsne

    def traversal_axes(self):
        """The latent traversal's plane: (origin (d,), unit vectors (d, k), axis names). For
        d <= 2 the latent coordinates themselves, origin 0; for d > 2 the two most active
        dimensions, those whose means vary most over the test sample (Var_x mu_u, as the active
        units count them), with every other coordinate held at its mean over that sample, so
        the decoded grid stays where the data's codes are."""
        if self.latent_dim <= 2:
            return np.zeros(self.latent_dim), np.eye(self.latent_dim), self.latent()["names"]
        means = self.latent()["means"].astype(np.float64)
        variances, _ = active_units(means)
        top = np.sort(np.argsort(-variances, kind="stable")[:2])
        origin = means.mean(axis=0)
        origin[top] = 0
        return (origin, np.eye(self.latent_dim)[:, top],
                [f"$z_{{{u + 1}}}$ (Var$_x\\,\\mu$ = {variances[u]:.2f})" for u in top])

    def plane(self, a, b):
        """Latent vectors (N, d) at coordinates (a, b) of the 2-D plane of ``latent()``
        (other principal coordinates 0); with d = 1, only ``a`` is used."""
        axes = self.latent()["axes"]
        coords = np.stack([np.asarray(a, float), np.asarray(b, float)], axis=-1)[..., :axes.shape[1]]
        return coords @ axes.T
