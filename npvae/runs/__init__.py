"""A training run: its configuration, its model files and the directory that holds them."""
from .checkpoint import CheckpointError, load_checkpoint, load_model, read_npz, save_checkpoint, save_model
from .config import RESUMABLE, TrainConfig, config_differences
from .paper import PAPER_IMPROVEMENT, PAPER_SETTING, PAPER_TABLE4, is_paper_setting, paper_table4_text
from .directory import METRIC_COLUMNS, RunDirectory, evaluation_key, json_text, open_model

__all__ = ["RunDirectory", "TrainConfig", "METRIC_COLUMNS", "CheckpointError", "evaluation_key",
           "config_differences", "RESUMABLE", "open_model", "json_text", "load_model", "save_model",
           "load_checkpoint", "save_checkpoint", "read_npz", "PAPER_IMPROVEMENT", "PAPER_SETTING", "PAPER_TABLE4",
           "is_paper_setting", "paper_table4_text"]
