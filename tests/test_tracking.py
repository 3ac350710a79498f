"""TensorBoard logs (npvae.tracking): `npvae train --tensorboard` and `npvae export --tensorboard`.

The event files are read back with nothing but tensorboardX's own protobuf classes: a file is
a sequence of records (8-byte length, masked CRC-32C of the length, the serialized Event, its
masked CRC-32C), as tensorboardX.record_writer writes them. The run-based tests train a tiny
VAE and CVAE on real MNIST ($NPVAE_DATA); the rest need no data.
"""
import io
import os
import struct
import sys

import numpy as np
import pytest

from npvae.cli import main
from npvae.runs import RunDirectory
from npvae.tracking import INSTALL_HINT, epoch_scalars
from npvae.tracking.tensorboard import HPARAMS_RUN, fixed_test_images, image_grid


def read_records(path):
    """The Events of one event file, each record's two checksums verified."""
    from tensorboardX.proto.event_pb2 import Event
    from tensorboardX.record_writer import masked_crc32c
    data = open(path, "rb").read()
    events, position = [], 0
    while position < len(data):
        header = data[position:position + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[position + 8:position + 12])
        body = data[position + 12:position + 12 + length]
        (body_crc,) = struct.unpack("<I", data[position + 12 + length:position + 16 + length])
        assert header_crc == masked_crc32c(header) and body_crc == masked_crc32c(body), path
        events.append(Event.FromString(body))
        position += 16 + length
    return events


def read_log(logdir):
    """{"scalars": {tag: {step: value}}, "images": {tag: {step: (height, width, png bytes)}},
    "plugins": set of plugin names, "hparams": {name: protobuf Value}} over every event file
    directly in ``logdir``."""
    from tensorboardX.proto.plugin_hparams_pb2 import HParamsPluginData
    log = {"scalars": {}, "images": {}, "plugins": set(), "hparams": {}}
    files = [f for f in os.listdir(logdir) if f.startswith("events.out.tfevents")]
    assert files, f"no event file in {logdir}"
    for name in files:
        for event in read_records(os.path.join(logdir, name)):
            for value in event.summary.value:
                if value.HasField("image"):
                    log["images"].setdefault(value.tag, {})[event.step] = (
                        value.image.height, value.image.width, value.image.encoded_image_string)
                elif value.metadata.plugin_data.plugin_name == "hparams":
                    log["plugins"].add("hparams")
                    data = HParamsPluginData.FromString(value.metadata.plugin_data.content)
                    if data.HasField("session_start_info"):
                        log["hparams"] = dict(data.session_start_info.hparams)
                else:
                    log["scalars"].setdefault(value.tag, {})[event.step] = value.simple_value
    return log


def decode_png(data):
    import matplotlib.image as mpimg
    return mpimg.imread(io.BytesIO(data), format="png")


# -- without the data --------------------------------------------------------------------

def test_epoch_scalars_derive_the_elbo_and_ratio():
    row = {"epoch": 3, "beta": 0.3, "train_recon": 150.0, "train_kl": 5.0, "train_total": 151.5,
           "train_ratio": 30.0, "test_recon": 148.0, "test_kl": 4.0, "test_total": 152.0,
           "seconds": 17.0, "images_per_s": 3700.0}
    scalars = epoch_scalars(row)
    assert scalars["train/neg_elbo"] == 155.0 and scalars["train/loss"] == 151.5
    assert scalars["test/neg_elbo"] == 152.0 and scalars["test/recon_kl_ratio"] == 37.0
    assert scalars["train/recon_kl_ratio"] == 30.0
    assert scalars["beta"] == 0.3 and scalars["time/images_per_s"] == 3700.0
    assert epoch_scalars({**row, "test_kl": 0.0})["test/recon_kl_ratio"] == float("inf")


def test_image_grid_tiles_dark_on_light():
    images = np.zeros((6, 28, 28), np.float32)
    images[4] = 1.0
    grid = image_grid(images, 3)
    assert grid.dtype == np.uint8 and grid.shape == (2 * 30 + 2, 3 * 30 + 2)
    assert grid[2 + 30 + 14, 2 + 30 + 14] == 0          # image 4 (row 1, column 1): full ink
    assert grid[2 + 14, 2 + 14] == 255                   # image 0: blank paper
    assert 0 < grid[0, 0] < 255                          # the gaps are grey


def test_hparams_keep_one_type_per_setting():
    from npvae.runs import TrainConfig
    from npvae.tracking.tensorboard import config_hparams
    everything, limited = config_hparams(TrainConfig()), config_hparams(TrainConfig(limit=2000, workers=2))
    assert everything["limit"] == "all" and limited["limit"] == "2000" and limited["workers"] == "2"
    assert everything["lr"] == 1e-3 and everything["model"] == "vae" and everything["epochs"] == 30
    assert all(isinstance(v, (bool, str, int, float)) for v in everything.values())


def test_fixed_test_images_take_the_first_of_each_class():
    labels = np.array([3, 1, 1, 0, 3, 2], np.uint8)
    assert fixed_test_images(labels, classes=4).tolist() == [3, 1, 5, 0]


def test_without_tensorboardx_one_line_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)   # `import tensorboardX` now fails
    out = tmp_path / "run"
    for argv in (["train", "--out", str(out), "--tensorboard", "--epochs", "1"],
                 ["export", str(out), "--tensorboard"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and 'pip install -e ".[tracking]"' in err, err
        assert err.startswith(f"npvae {argv[0]}: error: ") and INSTALL_HINT in err
    assert not out.exists(), "training must not start without the tracker"


def test_export_needs_a_format(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 1
    assert "--tensorboard" in capsys.readouterr().err


# -- on tiny trained runs ----------------------------------------------------------------

@pytest.fixture(scope="module")
def logged_runs(tmp_path_factory):
    """A VAE trained 2 epochs and a CVAE 1 epoch with --tensorboard (default directory)."""
    pytest.importorskip("tensorboardX", reason='needs the extra: pip install -e ".[tracking]"')
    if not os.environ.get("NPVAE_DATA"):
        pytest.skip("NPVAE_DATA is not set: point it at a folder containing mnist/")
    base = tmp_path_factory.mktemp("tracking")
    runs = {}
    for kind, epochs in (("vae", 2), ("cvae", 1)):
        out = base / kind
        code = main(["train", "--model", kind, "--epochs", str(epochs), "--limit", "256",
                     "--test-limit", "200", "--workers", "1", "--no-progress", "--out", str(out),
                     "--tensorboard"])
        assert code == 0
        runs[kind] = out
    return runs


# TensorBoard tag -> metrics.csv column
COLUMNS = {"train/recon": "train_recon", "train/kl": "train_kl", "train/loss": "train_total",
           "train/recon_kl_ratio": "train_ratio", "test/recon": "test_recon", "test/kl": "test_kl",
           "test/neg_elbo": "test_total", "beta": "beta", "time/seconds": "seconds",
           "time/images_per_s": "images_per_s"}


def _close(logged, expected, error=0.0):
    """metrics.csv keeps 6 decimals (+-5e-7) and an event a float32 (relative 6e-8); ``error``
    is what the rounding of the columns adds to a value derived from them."""
    return abs(logged - expected) <= 1e-6 + 1e-6 * abs(expected) + error


def _assert_scalars_match_metrics(log, run_dir):
    rows = RunDirectory(run_dir).read_metrics(required=True)
    scalars = log["scalars"]
    assert set(scalars) == set(COLUMNS) | {"train/neg_elbo", "test/recon_kl_ratio"}
    for row in rows:
        step = row["epoch"]
        for tag, column in COLUMNS.items():
            assert _close(scalars[tag][step], row[column]), (tag, step, scalars[tag][step], row[column])
        assert _close(scalars["train/neg_elbo"][step], row["train_recon"] + row["train_kl"], 1e-6)
        ratio = row["test_recon"] / row["test_kl"]
        assert _close(scalars["test/recon_kl_ratio"][step], ratio, ratio * 1e-6 * (1 / row["test_kl"] + 1))
    assert all(set(steps) == {row["epoch"] for row in rows} for steps in scalars.values())


def _assert_images(log, steps):
    for tag in ("images/reconstructions", "images/prior_samples"):
        assert sorted(log["images"][tag]) == steps, tag
        for height, width, data in log["images"][tag].values():
            picture = decode_png(data)
            assert picture.shape[:2] == (height, width)
            assert picture.std() > 0.05, f"{tag} looks blank"
    height, width, _ = log["images"]["images/reconstructions"][steps[-1]]
    assert (height, width) == (2 * 30 + 2, 10 * 30 + 2)     # ten test images above their decodings


def _assert_hparams(logdir, config):
    log = read_log(os.path.join(logdir, HPARAMS_RUN))
    assert "hparams" in log["plugins"]
    assert log["hparams"]["lr"].number_value == pytest.approx(config["lr"])
    assert log["hparams"]["model"].string_value == config["model"]
    assert log["hparams"]["limit"].string_value == str(config["limit"])
    assert log["hparams"]["test_limit"].string_value == str(config["test_limit"])
    assert "hparam/test_neg_elbo" in log["scalars"]


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_training_log_equals_metrics_csv(logged_runs, kind):
    run_dir = logged_runs[kind]
    logdir = run_dir / "tensorboard"
    log = read_log(logdir)
    _assert_scalars_match_metrics(log, run_dir)
    epochs = len(RunDirectory(run_dir).read_metrics())
    _assert_images(log, [1] if epochs == 1 else [1, epochs])
    _assert_hparams(logdir, RunDirectory(run_dir).read_config_dict())


@pytest.mark.integration
def test_export_writes_the_same_scalars(logged_runs, tmp_path, capsys):
    run_dir = logged_runs["vae"]
    logdir = tmp_path / "exported"
    assert main(["export", str(run_dir), "--tensorboard", str(logdir)]) == 0
    assert str(logdir) in capsys.readouterr().out
    log = read_log(logdir)
    _assert_scalars_match_metrics(log, run_dir)
    _assert_images(log, [2])                       # the final model's pictures only
    _assert_hparams(logdir, RunDirectory(run_dir).read_config_dict())
    # the same pictures as the training log's last epoch: same model, images and z
    trained = read_log(run_dir / "tensorboard")["images"]["images/prior_samples"][2][2]
    assert np.array_equal(decode_png(log["images"]["images/prior_samples"][2][2]), decode_png(trained))
    # a second export into the same directory would show every point twice
    assert main(["export", str(run_dir), "--tensorboard", str(logdir)]) == 1
    assert "already holds TensorBoard event files" in capsys.readouterr().err
