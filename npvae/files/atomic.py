"""Writing files so that a reader never sees half of one.

A file is written to a temporary name in the same directory, flushed to disk, then moved
over the target with ``os.replace``: a run killed at any moment leaves either the old
complete file or the new complete file, never a torn one. Every file npvae writes goes
through :func:`atomic_write`.
"""
import os
import tempfile

import numpy as np


def _readable_permissions(fd):
    """mkstemp creates files as 0600; give the result the usual 0666 & ~umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)


def atomic_write(path, write, mode="w", suffix=""):
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


def atomic_write_text(path, text):
    """A text file (JSON, CSV, HTML), atomically."""
    atomic_write(path, lambda f: f.write(text), "w")


def atomic_write_bytes(path, data):
    """A binary file (a PNG, a download), atomically."""
    atomic_write(path, lambda f: f.write(data), "wb")


def atomic_savez(path, arrays):
    """``np.savez`` to ``path``, atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays), "wb", suffix=".npz")
