"""Your own data set (`--dataset PATH`): IDX folders and .npz files, every kind of bad input
reported with the file's name, classes from the labels, and runs trained on such data that
record their source and are plotted and evaluated like any other. Small synthetic files only."""
import gzip
import hashlib
import json

import numpy as np
import pytest

from npvae.cli import main
from npvae.data import (UNLABELLED, DataError, class_names, count_classes, dataset_label,
                        dataset_name, dataset_source, load_dataset)
from npvae.data import datasets
from npvae.runs import RunDirectory, TrainConfig
from npvae.training import train

IDX_TYPES = {np.dtype(np.uint8): 0x08, np.dtype(np.float32): 0x0D}


def idx_bytes(array):
    array = np.asarray(array)
    header = bytes([0, 0, IDX_TYPES[array.dtype], array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def synthetic(n_train=64, n_test=32, classes=3, seed=0, size=28):
    rng = np.random.default_rng(seed)
    return {"x_train": rng.integers(0, 256, (n_train, size, size), dtype=np.uint8),
            "y_train": rng.integers(0, classes, n_train),
            "x_test": rng.integers(0, 256, (n_test, size, size), dtype=np.uint8),
            "y_test": rng.integers(0, classes, n_test)}


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def write_idx_folder(folder, data, names="mnist", gz=True, labels=True):
    folder.mkdir(parents=True, exist_ok=True)
    stems = ({"x_train": "train-images-idx3-ubyte", "y_train": "train-labels-idx1-ubyte",
              "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
             if names == "mnist" else
             {"x_train": "train-images", "y_train": "train-labels", "x_test": "test-images",
              "y_test": "test-labels"})
    ending = ".gz" if names == "mnist" and gz else ("" if names == "mnist" else (".idx.gz" if gz else ".idx"))
    for key, stem in stems.items():
        if key.startswith("y") and not labels:
            continue
        array = data[key].astype(np.uint8) if key.startswith("y") else data[key]
        content = idx_bytes(array)
        (folder / (stem + ending)).write_bytes(gzip.compress(content) if gz else content)
    return str(folder)


# -- reading --------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", [False, True])
def test_npz_loads_both_splits(tmp_path, channel):
    data = synthetic()
    stored = dict(data)
    if channel:
        stored["x_train"], stored["x_test"] = data["x_train"][:, None], data["x_test"][:, None]
    path = write_npz(tmp_path / "set.npz", **stored)
    for split in ("train", "test"):
        images, labels = load_dataset(path, split)
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28)
        np.testing.assert_array_equal(images, data[f"x_{split}"])
        np.testing.assert_array_equal(labels, data[f"y_{split}"])
    assert class_names(path) == ("0", "1", "2")


@pytest.mark.parametrize("names, gz", [("mnist", True), ("mnist", False), ("short", True), ("short", False)])
def test_idx_folder_with_either_naming(tmp_path, names, gz):
    data = synthetic()
    folder = write_idx_folder(tmp_path / "set", data, names, gz)
    images, labels = load_dataset(folder, "test")
    np.testing.assert_array_equal(images, data["x_test"])
    np.testing.assert_array_equal(labels, data["y_test"])


def test_short_names_with_a_plain_gz_ending(tmp_path):
    data = synthetic()
    folder = tmp_path / "set"
    folder.mkdir()
    for key, stem in (("x_train", "train-images"), ("x_test", "test-images")):
        (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(data[key])))
    images, labels = load_dataset(str(folder), "train")
    assert len(images) == 64 and np.all(labels == UNLABELLED)


def test_a_set_without_labels_is_unlabelled(tmp_path):
    data = synthetic()
    path = write_npz(tmp_path / "plain.npz", x_train=data["x_train"], x_test=data["x_test"])
    _, labels = load_dataset(path, "train")
    assert labels.dtype == np.int64 and np.all(labels == UNLABELLED)
    assert class_names(path) == ("unlabelled",)
    assert count_classes(path, labels) is None
    with pytest.raises(DataError, match="plain.npz: the data set has no labels.*CVAE"):
        count_classes(path, labels, required=True)


def test_float_images_in_0_1_are_rounded_to_uint8(tmp_path):
    data = synthetic()
    floats = data["x_train"].astype(np.float32) / 255
    path = write_npz(tmp_path / "f.npz", x_train=floats, x_test=data["x_test"] / 255.0)
    images, _ = load_dataset(path, "train")
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, data["x_train"])


def test_float_idx_images_in_0_1_are_accepted(tmp_path):
    data = synthetic()
    data["x_test"] = data["x_test"].astype(np.float32) / 255
    folder = write_idx_folder(tmp_path / "set", data)
    assert load_dataset(folder, "test")[0].dtype == np.uint8


def test_loaded_arrays_are_read_only_and_a_changed_file_is_read_again(tmp_path):
    data = synthetic()
    path = write_npz(tmp_path / "set.npz", **data)
    images, _ = load_dataset(path, "train")
    with pytest.raises(ValueError):
        images[0, 0, 0] = 1
    data["x_train"][:] = 7
    write_npz(tmp_path / "set.npz", **data)
    import os
    os.utime(path, ns=(1, 1))          # a new modification time, whatever the clock's resolution
    assert np.all(load_dataset(path, "train")[0] == 7)


# -- bad data: each error names the file and the problem -----------------------------------
def _bad(tmp_path, **changes):
    data = synthetic()
    data.update(changes)
    return write_npz(tmp_path / "bad.npz", **{k: v for k, v in data.items() if v is not None})


@pytest.mark.parametrize("changes, match", [
    (dict(x_train=np.zeros((4, 32, 32), np.uint8), x_test=np.zeros((4, 32, 32), np.uint8)),
     r"bad.npz \(x_train\): images are 32 x 32; the architecture is the paper's 28 x 28"),
    (dict(x_train=np.zeros((4, 28, 28, 3), np.uint8)), r"bad.npz \(x_train\): expected images of shape"),
    (dict(x_test=np.zeros((4, 1, 32, 32), np.uint8)),
     r"bad.npz \(x_train\) holds 28 x 28 images but .*bad.npz \(x_test\) 32 x 32"),
    (dict(x_train=np.full((64, 28, 28), 1.5, np.float32)), r"bad.npz \(x_train\): float images must lie in \[0, 1\]"),
    (dict(x_test=np.full((32, 28, 28), -0.1)), r"bad.npz \(x_test\): float images must lie in \[0, 1\]"),
    (dict(x_train=np.full((64, 28, 28), np.nan)), r"bad.npz \(x_train\): float images hold NaN"),
    (dict(x_train=np.full((64, 28, 28), 300, np.int32)), r"integer pixel values must lie in 0..255"),
    (dict(x_train=np.zeros((0, 28, 28), np.uint8), y_train=np.zeros(0, int)), r"bad.npz \(x_train\): an empty set"),
    (dict(y_train=np.linspace(0, 2, 64)), r"bad.npz \(y_train\): labels must be integers, found"),
    (dict(y_test=np.array(["a"] * 32)), r"bad.npz \(y_test\): labels must be integers"),
    (dict(y_test=np.full(32, -2)), r"bad.npz \(y_test\): labels must be >= 0"),
    (dict(y_train=np.zeros(10, int)), r"bad.npz \(y_train\): expected 64 labels"),
    (dict(y_test=None), r"bad.npz: has y_train but not the other"),
    (dict(x_test=None), r"bad.npz: no array 'x_test'"),
])
def test_bad_npz_data_is_a_clear_error(tmp_path, changes, match):
    path = _bad(tmp_path, **changes)
    with pytest.raises(DataError, match=match):
        load_dataset(path, "train")


def test_whole_valued_float_labels_are_accepted(tmp_path):
    path = _bad(tmp_path, y_train=np.arange(64) % 3 * 1.0)
    assert load_dataset(path, "train")[1].dtype == np.int64


def test_bad_idx_folders(tmp_path):
    data = synthetic()
    folder = tmp_path / "set"
    write_idx_folder(folder, data)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: labels for one split only"):
        load_dataset(str(folder), "train")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=f"{folder}: no IDX file for t10k-images-idx3-ubyte"):
        load_dataset(str(folder), "train")
    empty = tmp_path / "empty"
    data["x_test"] = np.zeros((0, 28, 28), np.uint8)
    data["y_test"] = np.zeros(0, np.uint8)
    write_idx_folder(empty, data, names="short")
    with pytest.raises(DataError, match=r"test-images.idx.gz: an empty set"):
        load_dataset(str(empty), "test")


def test_paths_that_are_not_data_sets(tmp_path):
    with pytest.raises(DataError, match="unknown dataset '.*nowhere': not one of mnist, fashion-mnist, "
                                        "and no such file or folder"):
        load_dataset(str(tmp_path / "nowhere"), "train")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="must be an .npz"):
        load_dataset(str(tmp_path / "data.csv"), "train")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="broken.npz: not a readable .npz"):
        load_dataset(str(tmp_path / "broken.npz"), "train")


# -- names, classes, sources ----------------------------------------------------------------
def test_a_copy_of_a_known_set_keeps_its_class_names(tmp_path, monkeypatch):
    data = synthetic(classes=10)
    folder = write_idx_folder(tmp_path / "fashion-copy", data)
    assert class_names(folder) == tuple(str(k) for k in range(10))
    digest = hashlib.md5(idx_bytes(data["y_test"].astype(np.uint8))).hexdigest()
    known = dict(datasets.CHECKSUMS["fashion-mnist"])
    known["t10k-labels-idx1-ubyte"] = datasets.Checksum("-", digest)
    monkeypatch.setitem(datasets.CHECKSUMS, "fashion-mnist", known)
    assert class_names(folder) == datasets.CLASS_NAMES["fashion-mnist"]


def test_names_labels_and_sources(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "digits.npz", **synthetic())
    monkeypatch.chdir(tmp_path)
    assert dataset_name("digits.npz") == path and dataset_name("mnist") == "mnist"
    assert dataset_label(path) == "digits" and dataset_label(str(tmp_path) + "/") == tmp_path.name
    source = dataset_source("digits.npz")
    assert source == {"path": path, "format": "npz",
                      "sha256": {"digits.npz": hashlib.sha256(open(path, "rb").read()).hexdigest()}}
    assert dataset_source("mnist") is None
    config = TrainConfig(dataset="digits.npz").validate()
    assert config.dataset == path
    with pytest.raises(DataError, match="unknown dataset 'fashion'"):
        TrainConfig(dataset="fashion").validate()


# -- runs on your own data ----------------------------------------------------------------
QUICK = dict(epochs=1, batch_size=32, warmup_epochs=0)


def test_a_cvae_trains_on_three_classes_and_records_its_data(tmp_path):
    path = write_npz(tmp_path / "three.npz", **synthetic(classes=3))
    out = tmp_path / "run"
    train(TrainConfig(model="cvae", dataset=path, **QUICK), str(out), progress=False, log=lambda *a: None)
    run = RunDirectory(out)
    assert run.load_model().num_classes == 3
    saved = json.loads((out / "config.json").read_text())
    assert saved["dataset"] == path
    assert saved["data"]["sha256"]["three.npz"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    # changing the data under a run stops its resume
    write_npz(tmp_path / "three.npz", **synthetic(classes=3, seed=1))
    with pytest.raises(ValueError, match="the data changed since this run started"):
        train(TrainConfig(model="cvae", dataset=path, **{**QUICK, "epochs": 2}), str(out), resume=True,
              progress=False, log=lambda *a: None)


def test_a_cvae_on_unlabelled_data_is_refused_naming_the_file(tmp_path, capsys):
    data = synthetic()
    path = write_npz(tmp_path / "plain.npz", x_train=data["x_train"], x_test=data["x_test"])
    code = main(["train", "--model", "cvae", "--dataset", path, "--epochs", "1", "--out",
                 str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "plain.npz: the data set has no labels" in err


def test_cli_refuses_an_unknown_dataset_in_one_line(tmp_path, capsys):
    code = main(["train", "--dataset", "fashion", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "unknown dataset 'fashion'" in err


def test_plot_evaluate_and_report_work_on_a_run_of_own_data(tmp_path):
    """A VAE of latent 3 on an unlabelled set and a CVAE on 3 classes: every figure, the
    metrics (the unsupervised ones only without labels) and the report."""
    labelled = write_npz(tmp_path / "three.npz", **synthetic(n_train=200, n_test=100, classes=3))
    data = synthetic(n_train=200, n_test=100)
    plain = write_npz(tmp_path / "plain.npz", x_train=data["x_train"], x_test=data["x_test"])
    for name, model, path, latent in (("cvae", "cvae", labelled, 2), ("vae", "vae", plain, 3)):
        out = str(tmp_path / name)
        train(TrainConfig(model=model, dataset=path, latent_dim=latent, **QUICK), out,
              progress=False, log=lambda *a: None)
        assert main(["plot", out]) == 0
        assert main(["evaluate", out, "--metrics", "--no-progress"]) == 0
        assert main(["report", out]) == 0
        metrics = RunDirectory(out).read_evaluation()["metrics"]
        assert metrics["train"]["images"] == 200 and metrics["test"]["images"] == 100
        assert ("linear_probe" in metrics) == (name == "cvae")
        assert "Latent quality" in open(f"{out}/report.html").read()


def test_sweep_trains_on_own_data(tmp_path):
    path = write_npz(tmp_path / "three.npz", **synthetic())
    out = tmp_path / "sweep"
    assert main(["sweep", "--dataset", path, "--betas", "1", "--latents", "2", "--epochs", "1",
                 "--batch-size", "32", "--iwae-k", "4", "--iwae-subset", "8", "--out", str(out),
                 "--no-progress", "--cluster", "none"]) == 0
    saved = json.loads((out / "vae-three-bernoulli-warmup10-beta1-latent2-seed0" / "config.json").read_text())
    assert saved["dataset"] == path and "three.npz" in saved["data"]["sha256"]
    from npvae.files import read_csv
    assert read_csv(str(out / "results.csv"))[0]["iwae_images"] == 8
