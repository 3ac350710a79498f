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
import tempfile
import zipfile

import numpy as np

from .models import build_model


class CheckpointError(ValueError):
    """A model or checkpoint file is missing, corrupted or of the wrong kind."""


def _readable_permissions(fd):
    """mkstemp creates files as 0600; give the result the usual 0666 & ~umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def _atomic_write(path, write, mode, suffix=""):
    """Call ``write(file)`` on a temporary file beside ``path``, sync it, then rename it over
    ``path``: readers see the old complete file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    _readable_permissions(fd)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_savez(path, arrays):
    """np.savez to ``path``, atomically."""
    _atomic_write(path, lambda f: np.savez(f, **arrays), "wb", suffix=".npz")


def atomic_write_text(path, text):
    """Write a small text file atomically (config.json, metrics.csv)."""
    _atomic_write(path, lambda f: f.write(text), "w")


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
    """Rebuild the model stored in ``path`` (a model.npz or checkpoint.npz, or a run
    directory, in which case its model.npz, else its checkpoint.npz, is used)."""
    if os.path.isdir(path):
        for name in ("model.npz", "checkpoint.npz"):
            candidate = os.path.join(path, name)
            if os.path.exists(candidate):
                path = candidate
                break
        else:
            raise CheckpointError(f"{path}: run directory has neither model.npz nor checkpoint.npz")
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
