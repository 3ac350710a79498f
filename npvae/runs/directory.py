"""One type owns every file of a run directory.

    config.json        the TrainConfig (npvae.runs.config)
    metrics.csv        one row per finished epoch (METRIC_COLUMNS)
    checkpoint.npz     model + Adam state + RNG states + metrics, rewritten after every epoch
    model.npz          the final model
    evaluation.json    results of `npvae evaluate` (and sweeps), keyed by :func:`evaluation_key`
    figures/           the figures of `npvae plot`, with their manifest figures.json
    report.html        the page of `npvae report`

Training writes through a :class:`RunDirectory`; evaluate, plot, report, inspect and sweep
read through one. Every file is written atomically, so a run killed at any moment resumes
from its last finished epoch.
"""
import json
import math
import os

import numpy as np

from ..files import atomic_write_text, csv_text, read_csv
from .checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint, save_model
from .config import TrainConfig

METRIC_COLUMNS = ("epoch", "beta", "train_recon", "train_kl", "train_total", "train_ratio",
                  "test_recon", "test_kl", "test_total", "seconds", "images_per_s")


def evaluation_key(name, images, test_size):
    """The key a result over ``images`` of a ``test_size``-image test set is filed under in
    evaluation.json: ``name`` for the whole set, ``name_first<N>`` for the first N images
    only, so a partial evaluation never overwrites the whole set's."""
    return name if images >= test_size else f"{name}_first{images}"


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value):
    """NaN and infinities become null, so the files are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_text(value):
    """Strict JSON (NaN as null, NumPy scalars as numbers), indented, with a final newline."""
    return json.dumps(_finite(json.loads(json.dumps(value, default=_json_default))), indent=2,
                      allow_nan=False) + "\n"


class RunDirectory:
    """``RunDirectory(path)``: the files of one run. Reading methods raise FileNotFoundError or
    ValueError (CheckpointError for model files) with a message naming the file at fault."""

    CONFIG, METRICS, CHECKPOINT, MODEL = "config.json", "metrics.csv", "checkpoint.npz", "model.npz"
    EVALUATION, FIGURES, MANIFEST, REPORT = "evaluation.json", "figures", "figures.json", "report.html"

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunDirectory({self.path!r})"

    def file(self, name):
        return os.path.join(self.path, name)

    @property
    def figures_dir(self):
        return self.file(self.FIGURES)

    def figure_path(self, filename):
        return os.path.join(self.figures_dir, filename)

    def exists(self):
        """True when a run was started here (its config.json exists)."""
        return os.path.exists(self.file(self.CONFIG))

    def has_checkpoint(self):
        return os.path.exists(self.file(self.CHECKPOINT))

    def is_finished(self):
        """True when model.npz exists and metrics.csv holds every configured epoch."""
        if not os.path.exists(self.file(self.MODEL)) or not os.path.exists(self.file(self.METRICS)):
            return False
        rows = self.read_metrics()
        return bool(rows) and rows[-1]["epoch"] >= self.read_config().epochs

    # -- config.json --------------------------------------------------------------
    def read_config_dict(self):
        """config.json as a dict, as written (it may hold more than the TrainConfig)."""
        if not os.path.isdir(self.path):
            raise FileNotFoundError(f"{self.path}: no such run directory")
        path = self.file(self.CONFIG)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: missing; is {self.path} a run directory made by "
                                    f"`npvae train`?")
        try:
            with open(path) as f:
                config = json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a readable JSON configuration ({error})") from None
        if not isinstance(config, dict) or config.get("model") not in ("vae", "cvae"):
            raise ValueError(f"{path}: not an npvae training configuration "
                             f"(no 'model': 'vae' or 'cvae')")
        return config

    def read_config(self):
        """config.json as a TrainConfig."""
        return TrainConfig.from_dict(self.read_config_dict())

    def write_config(self, config, extra=None):
        """Write a TrainConfig (plus JSON-able ``extra`` settings, e.g. the BLAS in use)."""
        atomic_write_text(self.file(self.CONFIG), json_text({**config.to_dict(), **(extra or {})}))

    @property
    def dataset(self):
        return self.read_config_dict().get("dataset", "mnist")

    # -- metrics.csv --------------------------------------------------------------
    def read_metrics(self, required=False):
        """metrics.csv as a list of dicts of floats (epoch as int); with ``required``, at
        least one finished epoch must be there."""
        path = self.file(self.METRICS)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no metrics (has this run finished an epoch?)")
        try:
            rows = [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items()}
                    for row in read_csv(path, numeric=False)]
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: not a readable metrics table ({error})") from None
        if required and not rows:
            raise ValueError(f"{path}: holds no finished epoch")
        return rows

    def write_metrics(self, rows):
        atomic_write_text(self.file(self.METRICS), csv_text(rows, METRIC_COLUMNS))

    # -- models and checkpoints ------------------------------------------------------
    @property
    def model_file(self):
        """model.npz when training finished, else the last checkpoint; raises CheckpointError."""
        for name in (self.MODEL, self.CHECKPOINT):
            if os.path.exists(self.file(name)):
                return name
        raise CheckpointError(f"{self.path}: run directory has neither model.npz nor checkpoint.npz")

    def load_model(self, expect_kind=None):
        return load_model(self.file(self.model_file), expect_kind)

    def save_model(self, model, config):
        save_model(self.file(self.MODEL), model, extra={"train_config": config.to_dict()})

    def save_checkpoint(self, model, optimizer, meta):
        save_checkpoint(self.file(self.CHECKPOINT), model, optimizer, meta)

    def load_checkpoint(self, expect_kind=None):
        """-> (model, optimizer state, meta) of checkpoint.npz."""
        return load_checkpoint(self.file(self.CHECKPOINT), expect_kind)

    # -- evaluation.json --------------------------------------------------------------
    def read_evaluation(self):
        path = self.file(self.EVALUATION)
        if not os.path.exists(path):
            return {}
        try:
            with open(path) as f:
                return json.load(f)
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not readable JSON ({error}); move it aside to start "
                             f"a new one") from None

    def record_evaluation(self, results):
        """Merge ``results`` (key -> JSON-able) into evaluation.json; returns its path."""
        path = self.file(self.EVALUATION)
        atomic_write_text(path, json_text({**self.read_evaluation(), **results}))
        return path

    # -- figures and report --------------------------------------------------------------
    def read_manifest(self):
        """What the last drawing of the figures recorded (seed, options, files), or {}."""
        try:
            with open(os.path.join(self.figures_dir, self.MANIFEST)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def write_manifest(self, manifest):
        atomic_write_text(os.path.join(self.figures_dir, self.MANIFEST), json_text(manifest))

    def write_report(self, html):
        path = self.file(self.REPORT)
        atomic_write_text(path, html)
        return path


def open_model(path, expect_kind=None):
    """A model from a run directory or from a model/checkpoint .npz file."""
    if os.path.isdir(path):
        return RunDirectory(path).load_model(expect_kind)
    return load_model(path, expect_kind)
