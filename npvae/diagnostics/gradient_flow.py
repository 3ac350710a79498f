"""Gradient flow through a run's model at the start and at the end of its training.

A run keeps its final model (model.npz, or the last checkpoint.npz); its first one is the
same configuration initialised from the run's seed exactly as training did
(npvae.training.initial_model). Both see the same batch and the same eps, and each is
inspected through one training step (npvae.diagnostics.inspect): per layer, the gradient
norms of its weights and of its input, and its activations' mean, std and fractions of
zeros, which is what shows vanishing gradients or dead ReLUs.
"""
import numpy as np

from ..runs import RunDirectory
from ..training import initial_model
from .inspect import inspect_model, load_batch


def training_stages(run_dir, images, labels, rng, beta=1.0):
    """[(label, report), ...] for the run in ``run_dir``: the start of training (when its
    config.json is there to rebuild it) and the end, each an npvae.diagnostics.inspect
    report of one training step on ``images`` (uint8 (N, 28, 28)), with one eps drawn from
    ``rng`` for both."""
    directory = RunDirectory(run_dir)
    end = directory.load_model()
    eps = rng.standard_normal((len(images), end.latent_dim)).astype(end.dtype)
    stages = []
    try:
        config = directory.read_config()
    except (OSError, ValueError):
        config = None
    if config is not None and config.model_config() == end.config():
        stages.append((f"start (initialised, seed {config.seed})",
                       inspect_model(initial_model(config), images, labels, eps, beta, source="initial")))
    try:
        done = f", epoch {directory.read_metrics(required=True)[-1]['epoch']}"
    except (OSError, ValueError):
        done = ""
    stages.append((f"end ({directory.model_file}{done})",
                   inspect_model(end, images, labels, eps, beta, source=directory.model_file)))
    return stages


def run_training_stages(run_dir, batch_size=128, seed=0, data_root=None, download=False, beta=1.0):
    """:func:`training_stages` on a batch of the run's test set drawn with ``seed``
    (synthetic strokes when its files are missing). Returns (stages, what the batch is)."""
    directory = RunDirectory(run_dir)
    try:
        dataset = directory.dataset
    except (OSError, ValueError):
        dataset = "mnist"
    rng = np.random.default_rng(seed)
    images, labels, _, _, description = load_batch(dataset, batch_size, rng, data_root, download)
    return training_stages(run_dir, images, labels, rng, beta), description
