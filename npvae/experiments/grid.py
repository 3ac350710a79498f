"""The grid of a sweep: lists of values for some training settings, one run per combination.

The axes are TrainConfig fields: model, dataset, likelihood, warmup_epochs, beta, latent_dim
and seed. Every other setting (epochs, batch size, learning rate, ...) is the same for all
runs. Each run is named after its values on every axis, e.g.
``vae-mnist-bernoulli-warmup10-beta1-latent2-seed0``, so the same command finds the same
run directories again. A *configuration* is a run's values without the seed: the seeds of a
configuration are what the aggregation averages over.
"""
import itertools
from dataclasses import dataclass, replace

from ..data import dataset_label
from ..runs import TrainConfig

# The order of the axes is the order of the loops (seed innermost) and of the name's parts.
AXES = ("model", "dataset", "likelihood", "warmup_epochs", "beta", "latent_dim", "seed")
CONFIGURATION_AXES = AXES[:-1]


@dataclass(frozen=True)
class SweepGrid:
    """The values of each axis (tuples). Defaults: the beta x latent study of the paper's
    future work (section 7), VAE on MNIST, one seed."""
    models: tuple = ("vae",)
    datasets: tuple = ("mnist",)
    likelihoods: tuple = ("bernoulli",)
    warmup_epochs: tuple = (10,)
    betas: tuple = (0.5, 1.0, 2.0, 4.0)
    latents: tuple = (2, 8, 16, 32)
    seeds: tuple = (0,)

    def axes(self):
        """{axis (a TrainConfig field): its values}, in AXES order."""
        values = (self.models, self.datasets, self.likelihoods, self.warmup_epochs, self.betas,
                  self.latents, self.seeds)
        return {axis: tuple(v) for axis, v in zip(AXES, values)}

    def validate(self):
        """Raise ValueError naming an empty axis or a repeated value; returns self."""
        for axis, values in self.axes().items():
            if not values:
                raise ValueError(f"the sweep needs at least one value of {axis}")
            if len(set(values)) != len(values):
                raise ValueError(f"{axis} values repeat: {list(values)}")
        return self

    def points(self):
        """Every combination, as {axis: value} dicts, in a fixed order (seed innermost)."""
        axes = self.validate().axes()
        return [dict(zip(axes, values)) for values in itertools.product(*axes.values())]

    def to_dict(self):
        return {axis: list(values) for axis, values in self.axes().items()}

    def __len__(self):
        return len(self.points())


def run_name(point):
    """The run directory's name for a grid point (a dict with every axis); a data set given by
    path is named by its file or folder (npvae.data.dataset_label)."""
    return (f"{point['model']}-{dataset_label(point['dataset'])}-{point['likelihood']}"
            f"-warmup{point['warmup_epochs']}"
            f"-beta{point['beta']:g}-latent{point['latent_dim']}-seed{point['seed']}")


def configuration_name(point):
    """The name of a point's configuration: its run name without the seed."""
    return run_name(point).rsplit("-seed", 1)[0]


def grid_configs(grid, **settings):
    """{run name: TrainConfig} for every point of ``grid``, in order; ``settings`` are the
    other TrainConfig fields, shared by every run. Each run trains on one worker thread
    (``workers=1``): several runs share a machine's cores, and a run's numbers depend on its
    worker count, so every engine (in process, local or remote cluster) gives the same runs."""
    clash = sorted(set(settings) & set(AXES))
    if clash:
        raise ValueError(f"{', '.join(clash)}: set these through the grid, not as shared settings")
    configs = {}
    for point in grid.points():
        config = replace(TrainConfig(**settings), **point, workers=1)
        configs[run_name(point)] = config.validate()
    return configs


def grid_point(config):
    """The grid point (a dict over AXES) of a run's TrainConfig."""
    return {axis: getattr(config, axis) for axis in AXES}
