"""Gradient flow, seen (`npvae inspect RUN_DIR --plot`, figure 10 of `npvae plot`): the start
of training is the run's real initial model, and the figure is written, a PNG, not blank."""
import io

import numpy as np
import pytest
from matplotlib.image import imread

import npvae.training.loop
from npvae.cli import main
from npvae.diagnostics.gradient_flow import training_stages
from npvae.diagnostics.inspect import synthetic_digits
from npvae.runs import RunDirectory, TrainConfig
from npvae.training import initial_model, train
from npvae.viz import FIGURES, expected_figures
from npvae.viz.gradient_flow import FILENAME


@pytest.fixture
def synthetic_data(monkeypatch, tmp_path):
    """Training and inspect read synthetic strokes, never a real data set."""
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))

    def load_dataset(name, split, root=None, download=False):
        return synthetic_digits(64 if split == "train" else 32, np.random.default_rng(len(split)))
    monkeypatch.setattr(npvae.training.loop, "load_dataset", load_dataset)


@pytest.fixture
def tiny_run(tmp_path, synthetic_data):
    """A one-epoch run trained so gently (lr 1e-9) that its weights stay at their start."""
    config = TrainConfig(model="cvae", epochs=1, batch_size=32, lr=1e-9, seed=3, workers=1)
    train(config, tmp_path / "run", progress=False, log=lambda *a: None)
    return tmp_path / "run", config


def _is_png_and_not_blank(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05 and (pixels[..., :3] < 0.5).mean() > 0.005


def test_the_start_is_the_runs_own_initial_model(tiny_run):
    run_dir, config = tiny_run
    start, end = initial_model(config), RunDirectory(run_dir).load_model()
    other = initial_model(TrainConfig(model="cvae", seed=4))
    for name, value in end.state_dict().items():
        np.testing.assert_allclose(start.state_dict()[name], value, atol=1e-6, err_msg=name)
    assert not np.allclose(other.state_dict()["encoder.0.weight"], end.state_dict()["encoder.0.weight"])


def test_stages_hold_start_and_end_per_layer(tiny_run):
    run_dir, _ = tiny_run
    images, labels = synthetic_digits(8, np.random.default_rng(0))
    stages = training_stages(run_dir, images, labels, np.random.default_rng(1))
    assert [label.split()[0] for label, _ in stages] == ["start", "end"]
    assert "seed 3" in stages[0][0] and "epoch 1" in stages[1][0]
    for _, report in stages:
        layers = {layer["name"]: layer for layer in report["layers"]}
        assert layers["decoder.7"]["grad_param_norms"]["weight"] > 0
        assert 0 <= layers["encoder.1"]["activation"]["zero_fraction"] <= 1


def test_inspect_plot_writes_the_figure(capsys, tiny_run):
    run_dir, _ = tiny_run
    assert main(["inspect", str(run_dir), "--plot", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    path = run_dir / "figures" / FILENAME
    assert f"wrote {path}" in out
    _is_png_and_not_blank(path)


def test_plot_needs_a_run_directory(capsys, synthetic_data):
    assert main(["inspect", "--plot"]) == 1
    assert "--plot needs a RUN_DIR" in capsys.readouterr().err


def test_it_is_figure_10_of_npvae_plot_for_both_kinds():
    (spec,) = [spec for spec in FIGURES if spec.filename == FILENAME]
    assert spec.number == 10 and spec in expected_figures("vae") and spec in expected_figures("cvae")
    assert spec.caption("vae", {})
