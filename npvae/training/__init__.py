"""Training: the loop of eq. 30-31 with Adam into a run directory, and sweeps over settings."""
from .loop import (Callback, TrainingDiverged, ensure_trained, initial_model, resumed_config, start_training,
                   train, train_epoch, train_step)

__all__ = ["train", "train_step", "train_epoch", "start_training", "ensure_trained",
           "resumed_config", "TrainingDiverged", "Callback", "initial_model"]
