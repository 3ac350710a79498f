"""`npvae plot` and `npvae report` on tiny trained runs, plus the plotting helpers.

The run-based tests train a VAE and a CVAE (latent 2) and a VAE and a CVAE with latent 3
(the PCA path) for one epoch on 256 images: they need the real MNIST test set
($NPVAE_DATA) and are skipped without it. The helper tests need no data.
"""
import base64
import json
import os
import re
import shutil

import numpy as np
import pytest

from npvae.cli import main
from npvae.viz import FIGURES, expected_figures, make_all_figures
from npvae.data.mosaic import mosaic
from npvae.viz.run import principal_axes
from npvae.runs import is_paper_setting

# Visible panels (axes) each figure has at least: its content, not its pixel size, which moves
# by a pixel or two between matplotlib versions and with the length of the tick labels.
PANELS = {1: 3, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 4, 9: 10, 10: 4}
RUNS = {"vae2": ("vae", 2), "cvae2": ("cvae", 2), "vae3": ("vae", 3), "cvae3": ("cvae", 3)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four tiny trained run directories, keyed as RUNS."""
    if not os.environ.get("NPVAE_DATA"):
        pytest.skip("NPVAE_DATA is not set: point it at a folder containing mnist/ "
                    "(e.g. NPVAE_DATA=/work/shared/data); the figures need the real test set")
    from npvae.runs import TrainConfig
    from npvae.training import train
    base = tmp_path_factory.mktemp("plot-runs")
    out = {}
    for name, (kind, latent) in RUNS.items():
        directory = base / name
        train(TrainConfig(model=kind, latent_dim=latent, epochs=1, limit=256, test_limit=500),
              str(directory), progress=False, log=lambda *a: None)
        out[name] = directory
    return out


@pytest.fixture(scope="module")
def plotted(runs):
    """The runs after `npvae plot` (vae3 is left for the report to draw)."""
    codes = {name: main(["plot", str(runs[name]), "--seed", "0"]) for name in ("vae2", "cvae2", "cvae3")}
    return runs, codes


def _png_files(run_dir):
    return sorted(p for p in os.listdir(run_dir / "figures") if p.endswith(".png"))


def _check_png(path):
    """The file decodes as a PNG of a sensible size, with something drawn on it."""
    import matplotlib.image as mpimg
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n", path
    image = mpimg.imread(str(path))
    assert image.ndim == 3 and image.shape[2] in (3, 4), path
    height, width = image.shape[:2]
    assert 600 <= width <= 1800 and 200 <= height <= 1800, (path, image.shape)
    gray = image[..., :3].mean(axis=2)
    assert gray.std() > 0.08, f"{path} looks blank (pixel std {gray.std():.3f})"
    drawn = (gray < 0.99).mean()   # anything but white paper: ink, grey gaps, lines, text
    assert 0.02 < drawn < 0.98, f"{path}: {100 * drawn:.1f}% of it is not white"
    assert os.path.getsize(path) < 400 * 1024, f"{path} is {os.path.getsize(path) // 1024} KB"


def _texts(fig):
    """Every piece of text on a figure: titles, axis and tick labels, legends."""
    from matplotlib.text import Text
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def _draw_every_figure(run_dir):
    """{number: Figure} of a run, drawn in memory."""
    from npvae.viz.figures import DEFAULT_CLASS
    from npvae.viz.run import Run
    run = Run(str(run_dir), seed=0)
    return {spec.number: spec.draw(run, run.rng(spec.number), {"cvae_class": DEFAULT_CLASS})
            for spec in expected_figures(run.kind)}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["vae2", "cvae2", "cvae3"])
def test_plot_writes_every_figure(plotted, name):
    runs, codes = plotted
    assert codes[name] == 0
    kind = RUNS[name][0]
    wanted = [spec.filename for spec in expected_figures(kind)]
    assert len(wanted) == (7 if kind == "vae" else 10)
    assert _png_files(runs[name]) == sorted(wanted)
    for spec in expected_figures(kind):
        _check_png(runs[name] / "figures" / spec.filename)
    manifest = json.loads((runs[name] / "figures" / "figures.json").read_text())
    assert manifest["seed"] == 0 and manifest["kind"] == kind


@pytest.mark.integration
def test_same_seed_same_pictures(plotted, tmp_path):
    runs, _ = plotted
    run = runs["cvae2"]
    before = {f: (run / "figures" / f).read_bytes() for f in ("02_reconstructions.png", "06_prior_samples.png",
                                                               "08_disentanglement.png")}
    make_all_figures(str(run), seed=0, only=[2, 6, 8])
    for f, data in before.items():
        assert (run / "figures" / f).read_bytes() == data, f"{f} changed with the same seed"
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    make_all_figures(str(copy), seed=1, only=[6])
    assert (copy / "figures" / "06_prior_samples.png").read_bytes() != before["06_prior_samples.png"]


def _report_checks(run_dir, kind):
    page = (run_dir / "report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(expected_figures(kind))
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    for spec in expected_figures(kind):
        assert spec.filename in page
    assert "http://" not in page and "https://" not in page, "the page must not load anything"
    last = [line.split(",") for line in (run_dir / "metrics.csv").read_text().splitlines()]
    row = dict(zip(last[0], last[-1]))
    for column in ("train_recon", "train_kl", "test_recon", "test_kl", "train_total"):
        assert f"{float(row[column]):,.2f}" in page, column
    assert "seconds per epoch" in page
    return page


@pytest.mark.integration
def test_report_embeds_every_figure(plotted):
    runs, _ = plotted
    assert main(["report", str(runs["cvae2"])]) == 0
    page = _report_checks(runs["cvae2"], "cvae")
    assert "138.00" not in page  # no paper table: a 256-image run is not the paper's setting
    assert "<td>warmup_epochs</td>" in page  # the configuration


@pytest.mark.integration
def test_report_draws_missing_figures(runs):
    run = runs["vae3"]
    assert not (run / "figures").exists()
    assert main(["report", str(run)]) == 0
    assert _png_files(run) == sorted(spec.filename for spec in expected_figures("vae"))
    _report_checks(run, "vae")
    _check_png(run / "figures" / "03_latent_space.png")


@pytest.mark.integration
@pytest.mark.parametrize("name", ["vae2", "cvae3"])
def test_every_figure_has_its_panels(runs, name):
    figures = _draw_every_figure(runs[name])
    for number, fig in figures.items():
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert len(visible) >= PANELS[number], (number, len(visible))
        assert fig.get_suptitle() or any(ax.get_title() for ax in visible), f"figure {number} has no title"
    if name == "cvae3":
        titles = [ax.get_title() for ax in figures[8].axes]
        assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)"]
        assert [ax.get_title() for ax in figures[9].axes if ax.get_visible()] == \
            [f"class {k}" for k in range(10)]
    texts = " ".join(_texts(figures[2]))
    assert "test digit" in texts, "MNIST's images are digits"


def _fashion_test_set():
    from npvae.data import DataError, load_dataset
    try:
        load_dataset("fashion-mnist", "test", download=False)
    except DataError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist, or "
                    "put it in $NPVAE_DATA/fashion-mnist)")


def test_captions_use_the_data_sets_noun():
    from npvae.data import class_names
    from npvae.viz.figures import caption
    for spec in FIGURES:
        for kind in spec.kinds:
            fashion = caption(spec, kind, 2, class_names("fashion-mnist"), "item")
            assert "digit" not in fashion.lower() and "{" not in fashion, (spec.number, kind, fashion)
            assert "digit" not in caption(spec, kind, 2, None, "image").lower()


@pytest.mark.integration
def test_fashion_mnist_report_never_says_digit(runs, tmp_path):
    """A model drawn on Fashion-MNIST's test set (the MNIST-trained CVAE, relabelled: only the
    words are checked) calls the images items, in every title, label and caption."""
    _fashion_test_set()
    copy = tmp_path / "fashion"
    _copy_run(runs["cvae2"], copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "dataset": "fashion-mnist"}))
    for number, fig in _draw_every_figure(copy).items():
        texts = " ".join(_texts(fig))
        assert "digit" not in texts.lower(), (number, [t for t in _texts(fig) if "digit" in t.lower()])
        if number == 2:
            assert "test item" in texts
        if number == 7:
            assert "Trouser" in texts, "the rows are Fashion-MNIST's classes"
    assert main(["report", str(copy)]) == 0
    page = (copy / "report.html").read_text()
    assert "item" in page
    # outside the embedded PNGs (base64 can spell anything)
    assert "digit" not in re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page).lower()


@pytest.mark.integration
def test_report_shows_table4_for_the_papers_setting(plotted, tmp_path):
    runs, _ = plotted
    copy = tmp_path / "paper"
    shutil.copytree(runs["vae2"], copy)  # keeps the figures' times, so nothing is redrawn
    config = json.loads((copy / "config.json").read_text())
    config.update(limit=None, test_limit=None, epochs=30)
    (copy / "config.json").write_text(json.dumps(config))
    assert main(["report", str(copy)]) == 0
    page = (copy / "report.html").read_text()
    assert "Table 4" in page and "138.00" in page and "129.16" in page
    assert "not yet comparable" in page  # one epoch of thirty


def test_is_paper_setting():
    paper = {"model": "vae", "dataset": "mnist", "latent_dim": 2, "batch_size": 128, "lr": 0.001,
             "epochs": 30, "warmup_epochs": 10, "beta": 1.0, "schedule": "epoch", "limit": None}
    assert is_paper_setting(paper)
    assert is_paper_setting({**paper, "model": "cvae"})
    for change in ({"latent_dim": 3}, {"lr": 0.002}, {"epochs": 2}, {"limit": 6000},
                   {"dataset": "fashion-mnist"}, {"beta": 4.0}):
        assert not is_paper_setting({**paper, **change}), change


# -- errors ----------------------------------------------------------------------------

def _copy_run(source, target, skip=()):
    target.mkdir()
    for name in ("config.json", "metrics.csv", "model.npz"):
        if name not in skip:
            shutil.copy(source / name, target / name)
    return target


@pytest.mark.integration
@pytest.mark.parametrize("command", ["plot", "report"])
def test_errors_are_one_clear_line(runs, tmp_path, capsys, command):
    cases = []
    cases.append((tmp_path / "nowhere", "no such run directory"))
    missing_model = _copy_run(runs["vae2"], tmp_path / "no-model", skip=("model.npz",))
    cases.append((missing_model, "neither model.npz nor checkpoint.npz"))
    corrupted = _copy_run(runs["vae2"], tmp_path / "corrupted")
    (corrupted / "model.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    cases.append((corrupted, "model.npz"))
    truncated = _copy_run(runs["vae2"], tmp_path / "truncated")
    data = (runs["vae2"] / "model.npz").read_bytes()
    (truncated / "model.npz").write_bytes(data[:len(data) // 2])
    cases.append((truncated, "model.npz"))
    no_metrics = _copy_run(runs["vae2"], tmp_path / "no-metrics", skip=("metrics.csv",))
    cases.append((no_metrics, "metrics.csv"))
    no_config = _copy_run(runs["vae2"], tmp_path / "no-config", skip=("config.json",))
    cases.append((no_config, "config.json"))
    for run_dir, expected in cases:
        capsys.readouterr()
        assert main([command, str(run_dir)]) == 1, run_dir
        err = capsys.readouterr().err
        assert f"npvae {command}: error:" in err and expected in err, err
        assert "Traceback" not in err
        assert not (run_dir / "figures").exists() or not any((run_dir / "figures").iterdir())


# -- helpers (no data needed) ------------------------------------------------------------

def test_mosaic_places_cells_and_gaps():
    images = np.arange(6, dtype=np.float32).reshape(6, 1, 1) * np.ones((6, 28, 28), np.float32) / 10
    grid, (xs, ys) = mosaic(images, 2, 3, separate_after=(0,))
    assert grid.shape == (2 + 2 * 30, 2 + 3 * 30 + 8)
    assert len(xs) == 3 and len(ys) == 2
    for k in range(6):
        r, c = divmod(k, 3)
        assert grid[int(ys[r]), int(xs[c])] == pytest.approx(k / 10)


def test_principal_axes_find_the_spread():
    rng = np.random.default_rng(0)
    direction = np.array([1.0, 2.0, 2.0]) / 3
    other = np.array([2.0, -2.0, 1.0]) / 3
    points = (rng.standard_normal((2000, 1)) * 5 * direction + rng.standard_normal((2000, 1)) * other
              + 0.01 * rng.standard_normal((2000, 3)) + 3.0)
    axes, explained = principal_axes(points)
    assert axes.shape == (3, 2)
    assert np.allclose(axes.T @ axes, np.eye(2), atol=1e-9)
    assert abs(axes[:, 0] @ direction) > 0.999 and abs(axes[:, 1] @ other) > 0.99
    assert axes[np.argmax(np.abs(axes[:, 0])), 0] > 0  # deterministic sign
    assert explained[0] > 0.9 and explained.sum() <= 1


def test_every_figure_is_numbered_and_named_once():
    numbers = [spec.number for spec in FIGURES]
    assert numbers == list(range(1, 11))
    assert len({spec.filename for spec in FIGURES}) == 10
    assert all(spec.filename.startswith(f"{spec.number:02d}_") for spec in FIGURES)


def test_cli_default_class_matches_the_library():
    from npvae.cli import plot as plot_cli
    from npvae.viz.conditional import DEFAULT_CLASS
    assert plot_cli.DEFAULT_CLASS == DEFAULT_CLASS


def test_cli_start_does_not_import_matplotlib():
    import subprocess
    import sys
    code = "import sys, npvae.cli; sys.exit(1 if 'matplotlib' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_gaussian_decoder_is_not_the_papers_setting():
    paper = {"model": "vae", "dataset": "mnist", "latent_dim": 2, "batch_size": 128, "lr": 0.001,
             "epochs": 30, "warmup_epochs": 10, "beta": 1.0, "schedule": "epoch", "limit": None}
    assert not is_paper_setting({**paper, "likelihood": "gaussian"})
    assert is_paper_setting({**paper, "likelihood": "bernoulli"})
