"""Experiment tracking: a training run's curves, images and settings in the trackers users
already have. TensorBoard event files through tensorboardX (the optional extra ``.[tracking]``)."""
from .tensorboard import INSTALL_HINT, TensorBoardLogger, default_logdir, epoch_scalars, export_run

__all__ = ["TensorBoardLogger", "export_run", "epoch_scalars", "default_logdir", "INSTALL_HINT"]
