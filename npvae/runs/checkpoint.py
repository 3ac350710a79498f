"""Saving and loading models and training checkpoints as ``.npz`` files, atomically.

A file is written to a temporary name in the same directory, flushed to disk, then
moved over the target with ``os.replace``: a run killed at any moment leaves either
the old complete file or the new complete file, never a torn one.

Layout of a file: ``model/<parameter name>`` arrays, ``config`` (the model's config as
JSON text) and, in a training checkpoint, ``optimizer/<key>`` arrays and ``meta`` (JSON
text: epoch, RNG state, training configuration, metrics so far).
"""
import json
import os
import zipfile

import numpy as np

from ..files import atomic_savez
from ..models import build_model


class CheckpointError(ValueError):
    """A model or checkpoint file is missing, corrupted or of the wrong kind."""


def _json(value):
    return np.array(json.dumps(value))


def save_model(path, model, extra=None):
    """Model parameters + config (+ optional JSON-able ``extra``) -> ``path``."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays["config"] = _json(model.config())
    if extra is not None:
        arrays["meta"] = _json(extra)
    atomic_savez(path, arrays)


def read_npz(path):
    """All arrays of an npz file, with a clear error when it is missing or corrupted."""
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise CheckpointError(f"{path}: not a readable npvae model/checkpoint file (it is not an "
                              f"npz archive; the file is corrupted or of another kind)") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CheckpointError(f"{path}: not a readable npvae model/checkpoint file "
                              f"(a single array, not an npz archive)")
    try:
        with data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as error:
        raise CheckpointError(f"{path}: not a readable npvae model/checkpoint file "
                              f"(damaged archive: {error})") from None


def _load_into_model(path, arrays, expect_kind=None):
    if "config" not in arrays:
        raise CheckpointError(f"{path}: has no model config; not an npvae model file")
    config = json.loads(str(arrays["config"]))
    if expect_kind is not None and config.get("model") != expect_kind:
        raise CheckpointError(f"{path}: holds a {config.get('model', '?').upper()}, "
                              f"but a {expect_kind.upper()} was requested")
    model = build_model(config)
    state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    try:
        model.load_state_dict(state)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return model


def load_model(path, expect_kind=None):
    """Rebuild the model stored in the file ``path`` (a model.npz or checkpoint.npz; for a run
    directory use npvae.runs.open_model or RunDirectory.load_model)."""
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory; open a run directory with "
                              f"npvae.runs.open_model")
    return _load_into_model(path, read_npz(path), expect_kind)


def save_checkpoint(path, model, optimizer, meta):
    """Everything needed to resume training exactly: model, Adam state, ``meta`` (JSON-able)."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    arrays["config"] = _json(model.config())
    arrays["meta"] = _json(meta)
    atomic_savez(path, arrays)


def load_checkpoint(path, expect_kind=None):
    """-> (model, optimizer_state dict, meta dict)."""
    arrays = read_npz(path)
    model = _load_into_model(path, arrays, expect_kind)
    if "meta" not in arrays:
        raise CheckpointError(f"{path}: is a model file, not a training checkpoint")
    optimizer_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    return model, optimizer_state, json.loads(str(arrays["meta"]))
