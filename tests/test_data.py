"""Tests for npvae.data: IDX parsing, data set lookup/download, checksums, batching.

Unit tests use small synthetic IDX files and never touch the network (the
download function is replaced). Integration tests read the real MNIST through
$NPVAE_DATA and the Debian Fashion-MNIST package if installed.
"""

import gzip
import hashlib
import os
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from npvae.data import (DATASETS, DataError, load_dataset, load_fashion_mnist,
                        load_mnist, minibatches, read_idx, to_float)
from npvae.data import datasets
from npvae.data.datasets import Checksum

TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
              np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array):
    """Encode ``array`` in the IDX format (big-endian)."""
    array = np.asarray(array)
    header = bytes([0, 0, TYPE_CODES[array.dtype.type], array.ndim])
    dims = np.array(array.shape, dtype=">u4").tobytes()
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path, data, gz=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def make_split(directory, split="train", n=5, gz=True, seed=0):
    """Write a synthetic split (images (n, 28, 28), labels (n,)) into ``directory``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    prefix = {"train": "train", "test": "t10k"}[split]
    suffix = ".gz" if gz else ""
    write(directory / f"{prefix}-images-idx3-ubyte{suffix}", idx_bytes(images), gz)
    write(directory / f"{prefix}-labels-idx1-ubyte{suffix}", idx_bytes(labels), gz)
    return images, labels


def md5(data):
    return hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(request, monkeypatch, tmp_path):
    """Unit tests: no real data dirs, an empty cache, and no network."""
    if request.node.get_closest_marker("integration"):
        return
    monkeypatch.delenv("NPVAE_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {})

    def no_network(url, file):
        raise urllib.error.URLError("network disabled in tests")
    monkeypatch.setattr(datasets, "_fetch", no_network)


@pytest.fixture
def no_checksums(monkeypatch):
    """Synthetic files have no known md5: an empty table skips verification."""
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", {})


# --- read_idx -----------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip_uint8(tmp_path, gz):
    images = np.arange(3 * 28 * 28, dtype=np.uint64).astype(np.uint8).reshape(3, 28, 28)
    path = write(tmp_path / "images", idx_bytes(images), gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (3, 28, 28)
    np.testing.assert_array_equal(out, images)
    assert out.flags.writeable


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_all_types_native_order(tmp_path, dtype):
    values = np.array([[-3, 0, 7], [100, -100, 1]], dtype=dtype)
    out = read_idx(write(tmp_path / "v.gz", idx_bytes(values)))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    labels = np.array([1, 2, 3], dtype=np.uint8)
    gz_named_raw = write(tmp_path / "labels", idx_bytes(labels), gz=True)
    raw_named_gz = write(tmp_path / "labels.gz", idx_bytes(labels), gz=False)
    np.testing.assert_array_equal(read_idx(gz_named_raw), labels)
    np.testing.assert_array_equal(read_idx(raw_named_gz), labels)


def bad_file_cases():
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))  # 16-byte header + 1568
    return {
        "truncated": (good[:100], "truncated: dimensions (2, 28, 28) of uint8 need 1568 "
                                  "bytes of data after the 16-byte header (1584 in total), "
                                  "found 84"),
        "too long": (good + b"\0", "too long"),
        "bad magic": (b"\1\0" + good[2:], "bad IDX magic number"),
        "unknown type": (good[:2] + b"\x07" + good[3:], "unknown IDX type code 0x07"),
        "zero dims": (b"\0\0\x08\0", "0 dimensions"),
        "truncated header": (good[:10], "truncated header"),
        "tiny": (b"\0\0", "too short"),
    }


@pytest.mark.parametrize("case", list(bad_file_cases()))
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_rejects_malformed(tmp_path, case, gz):
    data, expected = bad_file_cases()[case]
    path = write(tmp_path / "bad.gz", data, gz)
    with pytest.raises(DataError, match=re.escape(expected)) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_labels_file_claiming_nine_dimensions_says_so(tmp_path):
    """Defect 9: a labels header with 9 dimensions was reported as 'truncated: ... need
    1027841230127749099383589721 bytes'. The number of dimensions is checked first."""
    labels = idx_bytes(np.array([1, 2, 3], dtype=np.uint8))
    nine = labels[:3] + bytes([9]) + labels[4:]          # the sizes that follow are garbage
    path = write(tmp_path / "train-labels-idx1-ubyte.gz", nine, gz=True)
    with pytest.raises(DataError, match="declares 9 dimensions, but a file of labels") as info:
        read_idx(path, ndim=1)
    assert "truncated" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["cut short", "garbled"])
def test_read_idx_corrupt_gzip(tmp_path, damage):
    compressed = gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))
    if damage == "cut short":
        compressed = compressed[:len(compressed) // 2]
    else:
        compressed = compressed[:10] + b"\xff" * 20 + compressed[30:]
    path = tmp_path / "x.gz"
    path.write_bytes(compressed)
    with pytest.raises(DataError, match="corrupt gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --- load_dataset: files and validation ----------------------------------------

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_synthetic(tmp_path, no_checksums, gz, split):
    images, labels = make_split(tmp_path / "mnist", split, n=6, gz=gz)
    x, y = load_mnist(split, root=tmp_path, download=False)
    assert x.shape == (6, 28, 28) and x.dtype == np.uint8
    assert y.shape == (6,) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, labels)


def test_bad_split_and_name():
    with pytest.raises(ValueError, match="'val'.*train, test"):
        load_mnist("val")
    with pytest.raises(ValueError, match="'cifar'.*mnist, fashion-mnist"):
        load_dataset("cifar", "train")
    assert DATASETS == ("mnist", "fashion-mnist")


def test_mismatched_counts(tmp_path, no_checksums):
    make_split(tmp_path, n=5)
    labels = write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DataError, match="5 images in .* but 4 labels in") as info:
        load_mnist(root=tmp_path, download=False)
    assert str(labels) in str(info.value)


def test_labels_out_of_range(tmp_path, no_checksums):
    make_split(tmp_path, n=3)
    labels = write(tmp_path / "train-labels-idx1-ubyte.gz",
                   idx_bytes(np.array([1, 10, 2], np.uint8)))
    with pytest.raises(DataError, match="label 10 out of range 0..9") as info:
        load_mnist(root=tmp_path, download=False)
    assert str(labels) in str(info.value)


def test_wrong_image_shape(tmp_path, no_checksums):
    make_split(tmp_path, n=3)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((3, 27, 27), np.uint8)))
    with pytest.raises(DataError, match=r"shape \(N, 28, 28\)"):
        load_mnist(root=tmp_path, download=False)


# --- lookup order ----------------------------------------------------------------

def test_lookup_order(tmp_path, monkeypatch, no_checksums):
    make_split(tmp_path / "root" / "mnist", n=3)
    make_split(tmp_path / "env" / "mnist", n=5)
    make_split(tmp_path / "xdg" / "npvae" / "mnist", n=7)
    make_split(tmp_path / "home" / ".cache" / "npvae" / "mnist", n=9)
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def count(**kwargs):
        return len(load_mnist(download=False, **kwargs)[0])

    assert count(root=tmp_path / "root") == 3  # root as a parent of mnist/
    assert count(root=tmp_path / "root" / "mnist") == 3  # root as the dataset dir
    assert count() == 5
    monkeypatch.delenv("NPVAE_DATA")
    assert count() == 7
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert count() == 9  # ~/.cache, with HOME pointing into tmp_path


def test_lookup_needs_both_files_in_one_dir(tmp_path, monkeypatch, no_checksums):
    make_split(tmp_path / "env" / "mnist", n=5)
    make_split(tmp_path / "root" / "mnist", n=3)
    (tmp_path / "root" / "mnist" / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "env"))
    assert len(load_mnist(root=tmp_path / "root", download=False)[0]) == 5


def test_system_dir_used_for_fashion(tmp_path, monkeypatch):
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", {})
    monkeypatch.setattr(datasets, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "sys"),)})
    make_split(tmp_path / "sys", "test", n=4)
    assert len(load_fashion_mnist("test", download=False)[0]) == 4


def test_missing_data_error_lists_places(tmp_path, monkeypatch):
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    with pytest.raises(DataError) as info:
        load_mnist("test", root=tmp_path / "root")
    message = str(info.value)
    for place in [tmp_path / "root", tmp_path / "root" / "mnist",
                  tmp_path / "env" / "mnist", tmp_path / "xdg" / "npvae" / "mnist"]:
        assert f"{place} (" in message
    for mirror in datasets.MIRRORS["mnist"]:
        assert mirror + "t10k-images-idx3-ubyte.gz" in message
    assert "network disabled in tests" in message
    assert "NPVAE_DATA" in message and "root=" in message
    assert not any((tmp_path / "xdg" / "npvae" / "mnist").iterdir())  # no partial files


def test_missing_data_without_download(monkeypatch):
    def fail(url, file):
        raise AssertionError("must not download")
    monkeypatch.setattr(datasets, "_fetch", fail)
    with pytest.raises(DataError, match="Download disabled") as info:
        load_mnist(download=False)
    assert "$NPVAE_DATA (not set)" in str(info.value)


# --- checksums and download ----------------------------------------------------------

def register(monkeypatch, directory, split="train", gz_ok=False, idx_ok=True):
    """Put the md5s of a synthetic split in the table, optionally wrong ones."""
    table = {}
    for path in directory.iterdir():
        stored = path.read_bytes()
        content = gzip.decompress(stored) if path.suffix == ".gz" else stored
        table[path.name.removesuffix(".gz")] = Checksum(
            md5(stored) if gz_ok else "0" * 32, md5(content) if idx_ok else "1" * 32)
    monkeypatch.setitem(datasets.CHECKSUMS, "mnist", table)


@pytest.mark.parametrize("gz_ok,idx_ok", [(False, True), (True, False), (True, True)])
def test_checksum_either_md5_accepted(tmp_path, monkeypatch, gz_ok, idx_ok):
    make_split(tmp_path, n=4)
    register(monkeypatch, tmp_path, gz_ok=gz_ok, idx_ok=idx_ok)
    assert len(load_mnist(root=tmp_path, download=False)[0]) == 4


def test_checksum_raw_file_matches_content_md5(tmp_path, monkeypatch):
    make_split(tmp_path / "gz", n=4)
    register(monkeypatch, tmp_path / "gz", gz_ok=False)
    make_split(tmp_path / "raw", n=4, gz=False)  # same seed, same content
    assert len(load_mnist(root=tmp_path / "raw", download=False)[0]) == 4


def test_checksum_neither_rejected(tmp_path, monkeypatch):
    make_split(tmp_path, n=4)
    register(monkeypatch, tmp_path, gz_ok=False, idx_ok=False)
    with pytest.raises(DataError, match="checksum mismatch.*delete it") as info:
        load_mnist(root=tmp_path, download=False)
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in str(info.value)


def test_download_tries_mirrors_and_replaces_atomically(tmp_path, monkeypatch):
    make_split(tmp_path / "source", n=4)
    register(monkeypatch, tmp_path / "source")
    first, second = datasets.MIRRORS["mnist"]
    calls = []

    def fake_fetch(url, file):
        calls.append(url)
        if url.startswith(first):
            raise urllib.error.URLError("first mirror down")
        file.write((tmp_path / "source" / url.rsplit("/", 1)[1]).read_bytes())
    monkeypatch.setattr(datasets, "_fetch", fake_fetch)

    images, _ = load_mnist()
    assert len(images) == 4
    cache = tmp_path / "home" / ".cache" / "npvae" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert [url.startswith(first) for url in calls] == [True, False, True, False]
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in cache.iterdir())
    calls.clear()
    load_mnist()  # now found in the cache
    assert calls == []


def test_download_with_bad_checksum_keeps_nothing(tmp_path, monkeypatch):
    make_split(tmp_path / "source", n=4)
    register(monkeypatch, tmp_path / "source", gz_ok=False, idx_ok=False)
    monkeypatch.setattr(datasets, "_fetch", lambda url, file: file.write(
        (tmp_path / "source" / url.rsplit("/", 1)[1]).read_bytes()))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist()
    assert list((tmp_path / "home" / ".cache" / "npvae" / "mnist").iterdir()) == []


# --- batches ------------------------------------------------------------------------

def test_minibatches_cover_every_index_once():
    batches = list(minibatches(10, 4, np.random.default_rng(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(10))


def test_minibatches_deterministic_and_reshuffled():
    def epoch(rng):
        return np.concatenate(list(minibatches(50, 8, rng)))
    a, b = np.random.default_rng(1), np.random.default_rng(1)
    first = epoch(a)
    np.testing.assert_array_equal(first, epoch(b))
    assert not np.array_equal(first, epoch(a))  # a fresh permutation each call


def test_minibatches_unshuffled_and_edge_cases():
    batches = list(minibatches(5, 2, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1], [2, 3], [4]]
    assert list(minibatches(0, 3)) == []
    assert [len(b) for b in minibatches(3, 100)] == [3]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        minibatches(10, 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float(dtype):
    images = np.array([[[0, 255], [51, 128]]] * 3, dtype=np.uint8)  # (3, 2, 2)
    out = to_float(images, dtype)
    assert out.dtype == dtype and out.shape == (3, 1, 2, 2)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[0, 0], [[0, 1], [0.2, 128 / 255]], rtol=1e-6)
    assert images[0, 0, 1] == 255  # input untouched
    assert to_float(images[:, None]).shape == (3, 1, 2, 2)
    with pytest.raises(ValueError, match="uint8"):
        to_float(images.astype(np.float32))


# --- integration: the real data sets ---------------------------------------------------

MNIST_COUNTS = {
    "train": [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    "test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
}


@pytest.mark.integration
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist(split):
    if not os.environ.get("NPVAE_DATA"):
        pytest.skip("NPVAE_DATA is not set: point it at a folder containing mnist/")
    images, labels = load_mnist(split, download=False)
    n = sum(MNIST_COUNTS[split])
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (n,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == MNIST_COUNTS[split]
    if split == "train":
        # Exact statistics from the histogram, without a float copy of the set.
        counts = np.bincount(images.ravel(), minlength=256)
        values = np.arange(256) / 255
        mean = counts @ values / counts.sum()
        std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
        assert (round(mean, 4), round(std, 4)) == (0.1307, 0.3081)


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.integration
@pytest.mark.skipif(not FASHION_DIR.is_dir(),
                    reason=f"{FASHION_DIR} missing: apt-get install dataset-fashion-mnist")
@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_real_fashion_mnist(split, n):
    images, labels = load_fashion_mnist(split, download=False)
    assert images.shape == (n, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [n // 10] * 10  # balanced
