"""Your own data set: ``--dataset PATH`` (``load_dataset(PATH, split)``), where PATH is

* a folder with IDX files (``.gz`` or raw): MNIST's names (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``) or
  ``train-images``, ``train-labels``, ``test-images``, ``test-labels`` ending in ``.idx``,
  ``.gz`` or ``.idx.gz``; the two label files are optional (both or neither);
* an ``.npz`` file with ``x_train`` and ``x_test``, images (N, 28, 28) or (N, 1, 28, 28), and
  optionally ``y_train`` and ``y_test`` (both or neither).

Images are uint8 in 0..255 (the paper's architecture is for 28 x 28). Other integer types are
accepted when their values lie in 0..255, and float images when they lie in [0, 1]: those are
rounded to the nearest 1/255 step (round(255 x)), because npvae keeps every data set in memory
as uint8 and scales batches to [0, 1] as it trains; the rounding moves a pixel by at most
1/510. Labels are non-negative integers (whole-valued floats are accepted); the number of
classes is the largest label + 1. A set without labels gets ``UNLABELLED`` (-1) for every
image: a VAE trains on it, a CVAE cannot.

Anything else is a DataError that names the file and says what is wrong.
"""
import functools
import hashlib
from pathlib import Path

import numpy as np

from .idx import DataError, read_idx, read_stored

UNLABELLED = -1
IMAGE_SIZE = (28, 28)
SPLITS = ("train", "test")
# split -> part -> accepted stems, in the order they are looked for
IDX_STEMS = {
    "train": {"images": ("train-images-idx3-ubyte", "train-images"),
              "labels": ("train-labels-idx1-ubyte", "train-labels")},
    "test": {"images": ("t10k-images-idx3-ubyte", "test-images"),
             "labels": ("t10k-labels-idx1-ubyte", "test-labels")},
}
IDX_ENDINGS = {"train-images-idx3-ubyte": (".gz", ""), "train-labels-idx1-ubyte": (".gz", ""),
               "t10k-images-idx3-ubyte": (".gz", ""), "t10k-labels-idx1-ubyte": (".gz", "")}
SHORT_ENDINGS = (".idx.gz", ".idx", ".gz")
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


def resolve_path(name):
    """The absolute path of a data set given as a path, checked to be an .npz file or a folder."""
    path = Path(name).expanduser()
    if not path.exists():
        raise DataError(f"unknown dataset {name!r}: not one of mnist, fashion-mnist, and no such file "
                        f"or folder (your own data set is a folder of IDX files or an .npz file)")
    if path.is_file() and path.suffix != ".npz":
        raise DataError(f"{name}: a data set file must be an .npz (with x_train, x_test and "
                        f"optionally y_train, y_test); for IDX files give their folder")
    return str(path.resolve())


def _find_idx(folder, split, part):
    for stem in IDX_STEMS[split][part]:
        for ending in IDX_ENDINGS.get(stem, SHORT_ENDINGS):
            if (folder / (stem + ending)).is_file():
                return folder / (stem + ending)
    return None


def source_files(path):
    """The files a data set given by ``path`` is read from: {role: Path}, roles ``data`` (an
    .npz) or ``train-images``, ``train-labels``, ``test-images``, ``test-labels`` (IDX; the
    labels only if present). Raises DataError naming what is missing."""
    path = Path(resolve_path(path))
    if path.is_file():
        return {"data": path}
    files, missing = {}, []
    for split in SPLITS:
        for part in ("images", "labels"):
            found = _find_idx(path, split, part)
            if found is not None:
                files[f"{split}-{part}"] = found
            elif part == "images":
                names = " or ".join(f"{s}{'[.gz]' if s in IDX_ENDINGS else '.idx/.gz'}"
                                    for s in IDX_STEMS[split][part])
                missing.append(names)
    if missing:
        raise DataError(f"{path}: no IDX file for {'; '.join(missing)} in this folder")
    labels = [role for role in files if role.endswith("labels")]
    if len(labels) == 1:
        other = "test-labels" if labels[0] == "train-labels" else "train-labels"
        raise DataError(f"{files[labels[0]]}: labels for one split only; give {other} too, or neither")
    return files


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe_source(path):
    """What a run records about its data: {"path", "format", "sha256": {file name: digest}}."""
    files = source_files(path)
    return {"path": resolve_path(path), "format": "npz" if "data" in files else "idx",
            "sha256": {file.name: _sha256(file) for file in files.values()}}


def _as_images(array, where):
    """Images (N, H, W) or (N, 1, H, W) of any accepted type -> uint8 (N, H, W)."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3:
        raise DataError(f"{where}: expected images of shape (N, 28, 28) or (N, 1, 28, 28), "
                        f"found {array.shape}")
    return array


def _to_uint8(array, where):
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise DataError(f"{where}: integer pixel values must lie in 0..255, found "
                            f"{array.min()}..{array.max()}")
        return array.astype(np.uint8)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)):
            raise DataError(f"{where}: float images hold NaN or infinite values")
        low, high = float(array.min()), float(array.max())
        if low < 0 or high > 1:
            raise DataError(f"{where}: float images must lie in [0, 1], found values in "
                            f"[{low:g}, {high:g}] (scale them, e.g. divide 0..255 data by 255)")
        return np.rint(array * 255).astype(np.uint8)
    raise DataError(f"{where}: images must be uint8 (or integers in 0..255, or floats in [0, 1]), "
                    f"found {array.dtype}")


def _as_labels(array, count, where):
    if array is None:
        return np.full(count, UNLABELLED, dtype=np.int64)
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != count:
        raise DataError(f"{where}: expected {count} labels, one per image (shape ({count},)), "
                        f"found shape {array.shape}")
    if array.dtype.kind == "f":
        fractional = array[~np.isfinite(array) | (array != np.round(array))]
        if fractional.size:
            raise DataError(f"{where}: labels must be integers, found {fractional[0]!r}")
    elif array.dtype.kind not in "iub":
        raise DataError(f"{where}: labels must be integers, found {array.dtype}")
    labels = array.astype(np.int64)
    if count and labels.min() < 0:
        raise DataError(f"{where}: labels must be >= 0 (class indices), found {labels.min()}")
    return labels


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            for key in ("x_train", "x_test"):
                if key not in keys:
                    raise DataError(f"{path}: no array '{key}' (found: {', '.join(sorted(keys)) or 'none'}); "
                                    f"an .npz data set needs x_train and x_test")
            if ("y_train" in keys) != ("y_test" in keys):
                have = "y_train" if "y_train" in keys else "y_test"
                raise DataError(f"{path}: has {have} but not the other; give y_train and y_test, "
                                f"or neither")
            return {split: (archive[x], archive[y] if y in keys else None, f"{path} ({x})",
                            f"{path} ({y})") for split, (x, y) in NPZ_KEYS.items()}
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({error})") from None


def _read_idx_folder(files):
    raw = {}
    for split in SPLITS:
        images, labels = files[f"{split}-images"], files.get(f"{split}-labels")
        raw[split] = (read_idx(images), None if labels is None else read_idx(labels), str(images),
                      str(labels))
    return raw


@functools.lru_cache(maxsize=2)
def _load_checked(path, stamp):
    """Both splits of the data set at ``path``, checked ({split: (images, labels)}); ``stamp``
    (the files' sizes and times) makes a changed file load anew."""
    files = source_files(path)
    raw = _read_npz(files["data"]) if "data" in files else _read_idx_folder(files)
    shaped = {split: _as_images(images, where) for split, (images, _, where, _) in raw.items()}
    train_where, test_where = raw["train"][2], raw["test"][2]
    if shaped["train"].shape[1:] != shaped["test"].shape[1:]:
        (h1, w1), (h2, w2) = shaped["train"].shape[1:], shaped["test"].shape[1:]
        raise DataError(f"{train_where} holds {h1} x {w1} images but {test_where} {h2} x {w2}: "
                        f"train and test images must have one size")
    out = {}
    for split, (_, labels, where, labels_where) in raw.items():
        images = shaped[split]
        if images.shape[1:] != IMAGE_SIZE:
            raise DataError(f"{where}: images are {images.shape[1]} x {images.shape[2]}; the "
                            f"architecture is the paper's 28 x 28 (resize or pad them)")
        if len(images) == 0:
            raise DataError(f"{where}: an empty set (no images)")
        images = _to_uint8(images, where)
        labels = _as_labels(labels, len(images), labels_where)
        images.setflags(write=False)
        labels.setflags(write=False)
        out[split] = images, labels
    return out


def load_custom(path, split):
    """``(images uint8 (N, 28, 28), labels int64 (N,))`` of a split of your own data set
    (labels ``UNLABELLED`` when it has none). Raises DataError naming the file at fault.
    The arrays are read-only: they are cached, shared by the calls for the same files."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    path = resolve_path(path)
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in source_files(path).values())
    return _load_checked(path, stamp)[split]


def has_labels(labels):
    """False when a data set came without labels (every label ``UNLABELLED``)."""
    labels = np.asarray(labels)
    return labels.size == 0 or bool(np.any(labels != UNLABELLED))


def content_md5(path, role):
    """md5 of the IDX content of a folder's ``role`` file (e.g. "test-labels"), or None when
    ``path`` is an .npz or the file is absent: how a copy of a known data set is recognised."""
    files = source_files(path)
    if role not in files:
        return None
    return hashlib.md5(read_stored(files[role])[1]).hexdigest()
