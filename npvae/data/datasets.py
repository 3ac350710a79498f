"""Finding, downloading and loading MNIST and Fashion-MNIST, and (through npvae.data.custom)
your own data set given by its path.

Where the files are looked for, in order (per split, a directory counts only
if it holds both the images and the labels file, each ``.gz`` or raw):

1. the ``root`` argument: the dataset directory itself, or ``root/<name>/``;
2. ``$NPVAE_DATA/<name>/``;
3. the cache, ``$XDG_CACHE_HOME/npvae/<name>/`` (default ``~/.cache/npvae/<name>/``);
4. system directories (Debian's ``dataset-fashion-mnist`` package);
5. if ``download=True``: a download into the cache from the public mirrors.

Checksums: a file is accepted when the md5 of its bytes on disk OR the md5
of its decompressed IDX content matches the known value, because re-compressed
copies (e.g. Debian's) keep the content but not the ``.gz`` bytes. Every load
verifies, not just downloads, since that is cheap: measured on the 47 MB
training images, 0.08-0.1 s (md5 of the ``.gz``, then of the content if the
first fails) on top of the 0.2 s that reading and decompressing take anyway.
"""

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from .custom import content_md5, describe_source, has_labels, load_custom, resolve_path
from .idx import DataError, parse_idx, read_stored

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "test")
_PREFIX = {"train": "train", "test": "t10k"}
_TITLE = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}

MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}

CLASS_NAMES = {
    "mnist": tuple(str(k) for k in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


def class_names(dataset):
    """The names of a data set's classes, in label order. A data set given by path: a copy of
    MNIST or Fashion-MNIST (recognised by its test labels' checksum) has their names, any other
    the labels as strings ("0", "1", ...), one without labels ("unlabelled",)."""
    if dataset in DATASETS:
        return CLASS_NAMES[dataset]
    if known_copy(dataset):
        return CLASS_NAMES[known_copy(dataset)]
    count = count_classes(dataset, load_dataset(dataset, "train")[1], load_dataset(dataset, "test")[1])
    return ("unlabelled",) if count is None else tuple(str(k) for k in range(count))


def count_classes(dataset, *label_sets, required=False):
    """The number of classes of ``dataset``: its largest label + 1 (10 for MNIST), over
    ``label_sets`` (e.g. the training and the test labels). None for a data set without labels;
    with ``required`` (a CVAE) that is a DataError naming the data set."""
    if not all(has_labels(labels) for labels in label_sets):
        if required:
            raise DataError(f"{dataset}: the data set has no labels (no y_train / y_test, or no "
                            f"label IDX files), and a CVAE is conditioned on them; train a VAE, "
                            f"or add the labels")
        return None
    return int(max(int(np.max(labels)) for labels in label_sets if len(labels))) + 1


def dataset_name(name):
    """How a --dataset value is recorded: a built-in name as it is, a path made absolute (and
    checked to exist), so the run finds its data from any working directory."""
    return name if name in DATASETS else resolve_path(name)


def dataset_label(name):
    """A short name for a data set, for default run directories: a built-in name, or the file or
    folder's name (without ``.npz``) of one given by path."""
    if name in DATASETS:
        return name
    return Path(name.rstrip("/\\")).name.removesuffix(".npz") or "data"


def dataset_source(name):
    """What a run records about the data it was trained on: None for a built-in data set (its
    files are checked against the published checksums at every load), else the path, format and
    sha256 of each file (npvae.data.custom.describe_source)."""
    return None if name in DATASETS else describe_source(name)


# What one image of a data set is called in captions and titles ("each test digit above ...").
ITEM_NOUNS = {"mnist": "digit", "fashion-mnist": "item"}


def item_noun(dataset):
    """The noun for one image of ``dataset``: "digit" (MNIST), "item" (Fashion-MNIST), and a
    neutral "image" for any other data set, whose contents nothing here knows."""
    return ITEM_NOUNS.get(dataset if dataset in DATASETS else known_copy(dataset), "image")


def known_copy(path):
    """The built-in data set (e.g. "fashion-mnist") whose test labels an IDX folder at ``path``
    holds, by their checksum, or None: a copy keeps the original's class names and noun."""
    digest = content_md5(path, "test-labels")
    for name, checksums in CHECKSUMS.items():
        if digest is not None and digest == checksums["t10k-labels-idx1-ubyte"].idx:
            return name
    return None


SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}


class Checksum(NamedTuple):
    """Known md5s of one file: of the published ``.gz``, and of the IDX content."""
    gz: str
    idx: str


# Keyed by dataset name, then file stem (the name without ".gz").
# Module-level so tests can substitute values for synthetic files.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": Checksum("f68b3c2dcbeaaa9fbdd348bbdeb94873",
                                            "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": Checksum("d53e105ee54ea40749a09fcbcd1e9432",
                                            "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": Checksum("9fb629c4189551a2d022fa330f9573f3",
                                           "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": Checksum("ec29112dd5afa0611ce80d1b7f02629c",
                                           "27ae3e4e09519cfbb04c329615203637"),
    },
    # .gz: as published by Zalando; idx: computed from Debian's package,
    # whose .gz files were re-compressed (same deflate size, header stripped).
    "fashion-mnist": {
        "train-images-idx3-ubyte": Checksum("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                            "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        "train-labels-idx1-ubyte": Checksum("25c81989df183df01b3e8a0aad5dffbe",
                                            "9018921c3c673c538a1fc5bad174d6f9"),
        "t10k-images-idx3-ubyte": Checksum("bef4ecab320f06d8554ea6380940ec79",
                                           "8181f5470baa50b63fa0f6fddb340f0a"),
        "t10k-labels-idx1-ubyte": Checksum("bb300cfdad3c16e7a12a480ee83cd310",
                                           "15d484375f8d13e6eb1aabb0c3f46965"),
    },
}


def load_mnist(split="train", root=None, download=True):
    """MNIST digits: images uint8 ``(N, 28, 28)``, labels uint8 ``(N,)``.

    N is 60000 for ``split="train"`` and 10000 for ``"test"``.
    """
    return load_dataset("mnist", split, root, download)


def load_fashion_mnist(split="train", root=None, download=True):
    """Fashion-MNIST: images uint8 ``(N, 28, 28)``, labels uint8 ``(N,)``."""
    return load_dataset("fashion-mnist", split, root, download)


def load_dataset(name, split, root=None, download=True):
    """Load ``name`` (one of ``DATASETS``, or the path of your own data set) for ``split``
    ("train" or "test").

    Returns ``(images, labels)``: uint8 ``(N, 28, 28)`` and uint8 ``(N,)`` with labels in
    0..9 for the built-in sets (see the module docstring for where files are found); for a
    path, npvae.data.custom.load_custom's checked, read-only uint8 images and int64 labels
    (``root`` and ``download`` do not apply). Raises ``DataError`` if the files are missing,
    malformed or corrupt.
    """
    if name not in DATASETS:
        return load_custom(name, split)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    images_path, labels_path = _locate(name, split, root, download)
    images = _load_verified(name, images_path, ndim=3)
    labels = _load_verified(name, labels_path, ndim=1)

    if images.dtype != "uint8" or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected uint8 images of shape (N, 28, 28), "
                        f"found {images.dtype} {images.shape}")
    if labels.dtype != "uint8" or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected uint8 labels of shape (N,), "
                        f"found {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{len(images)} images in {images_path} but "
                        f"{len(labels)} labels in {labels_path}")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{labels_path}: label {labels.max()} out of range 0..9")
    return images, labels


def _stems(split):
    prefix = _PREFIX[split]
    return (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte")


def cache_dir(name):
    """``$XDG_CACHE_HOME/npvae/<name>``, or ``~/.cache/npvae/<name>``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "npvae" / name


def _candidate_dirs(name, root):
    """``(directory, why)`` pairs in lookup order; ``directory`` may be None."""
    dirs = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [(root, "root argument"), (root / name, "root argument")]
    env = os.environ.get("NPVAE_DATA")
    dirs.append((Path(env).expanduser() / name if env else None, "$NPVAE_DATA"))
    dirs.append((cache_dir(name), "cache"))
    dirs += [(Path(d), "system package") for d in SYSTEM_DIRS.get(name, ())]
    return dirs


def _find(directory, stem):
    """The ``.gz`` or raw file for ``stem`` in ``directory``, or None."""
    for filename in (stem + ".gz", stem):
        if (directory / filename).is_file():
            return directory / filename
    return None


def _locate(name, split, root, download):
    """Paths ``(images, labels)`` for a split, downloading them if allowed."""
    stems = _stems(split)
    looked = []
    for directory, why in _candidate_dirs(name, root):
        if directory is None:
            looked.append(f"{why} (not set)")
            continue
        paths = [_find(directory, stem) for stem in stems]
        if all(paths):
            return tuple(paths)
        if not directory.is_dir():
            looked.append(f"{directory} ({why}; no such directory)")
            continue
        missing = [s for s, p in zip(stems, paths) if p is None]
        looked.append(f"{directory} ({why}; missing {', '.join(missing)})")

    failures = []
    if download:
        target = cache_dir(name)
        for stem in stems:
            if _find(target, stem) is None:
                failures += _download(name, stem, target)
        if not failures:
            return tuple(_find(target, stem) for stem in stems)

    files = ", ".join(f"{s}.gz" for s in stems)
    lines = [f"{_TITLE[name]} {split} files ({files}) not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    if download:
        lines.append(f"Download into {cache_dir(name)} failed:")
        lines += [f"  - {failure}" for failure in failures]
    else:
        lines.append("Download disabled (download=False).")
    lines.append(
        f"To provide the files, put the four IDX files (.gz or raw) in a folder "
        f"DIR/{name}/ and set NPVAE_DATA=DIR, or pass root=DIR.")
    raise DataError("\n".join(lines))


def _checksum_problem(name, stem, stored, content):
    """Why the file fails its checksum, or None if either md5 matches."""
    known = CHECKSUMS[name].get(stem)
    if known is None:
        return None
    # The .gz md5 is cheaper (fewer bytes), so it is tried first.
    stored_md5 = hashlib.md5(stored).hexdigest()
    if stored_md5 == known.gz:
        return None
    content_md5 = stored_md5 if stored is content else hashlib.md5(content).hexdigest()
    if content_md5 == known.idx:
        return None
    return (f"checksum mismatch: md5 of the file is {stored_md5} and of its "
            f"content {content_md5}; expected {known.gz} (.gz) or {known.idx} (content)")


def _load_verified(name, path, ndim):
    """Read, parse (``ndim`` dimensions required) and checksum-verify one found file."""
    stored, content = read_stored(path)
    array = parse_idx(content, path, ndim)  # structural errors are the clearer message
    problem = _checksum_problem(name, path.name.removesuffix(".gz"), stored, content)
    if problem:
        raise DataError(f"{path}: {problem}. The file is corrupt or not the official "
                        f"{_TITLE[name]} file: delete it and load again "
                        "(it is re-downloaded if download=True).")
    return array


def _fetch(url, file):
    """Stream ``url`` into the open binary ``file`` with a progress bar."""
    request = urllib.request.Request(url, headers={"User-Agent": "npvae"})
    with urllib.request.urlopen(request, timeout=30) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                  desc=url.rsplit("/", 1)[-1]) as bar:
            while chunk := response.read(1 << 20):
                file.write(chunk)
                bar.update(len(chunk))


def _download(name, stem, target):
    """Download ``stem.gz`` into ``target``, trying each mirror in turn.

    The file is written to a temporary file next to its final place and
    renamed only once verified, so an interrupted or corrupt download never
    leaves a file that a later load would find. Returns a list of failure
    descriptions (empty on success).
    """
    filename = stem + ".gz"
    failures = []
    for mirror in MIRRORS[name]:
        url = mirror + filename
        tmp = None
        try:
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target, prefix=f".{filename}.",
                                             suffix=".part", delete=False) as file:
                tmp = file.name
                _fetch(url, file)
            stored, content = read_stored(tmp)
            problem = _checksum_problem(name, stem, stored, content)
            if problem:
                raise DataError(problem)
            os.chmod(tmp, 0o644)  # temp files are created private (0600)
            os.replace(tmp, target / filename)
            tmp = None
            return []
        # URLError, timeouts and resets are OSErrors; IncompleteRead is not.
        except (OSError, http.client.HTTPException, DataError) as exc:
            failures.append(f"{url}: {exc}")
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    return failures
