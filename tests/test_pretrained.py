"""The paper's two trained models, shipped as package data: checksums, loading, run directories,
and their recorded test -ELBO reproduced on the real MNIST test set."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import npvae.models
import npvae.pretrained.load
from npvae.cli import main
from npvae.data import load_dataset
from npvae.evaluation import evaluate_elbo
from npvae.pretrained import (PRETRAINED, PretrainedFileError, load_pretrained, pretrained_folder,
                              pretrained_run, provenance, write_pretrained_run)
from npvae.runs import RunDirectory, is_paper_setting
from npvae.training.loop import _evaluation_rng
from npvae.viz import expected_figures

REAL_DATA = os.environ.get("NPVAE_DATA")
HAS_MNIST = bool(REAL_DATA) and (Path(REAL_DATA) / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
needs_mnist = pytest.mark.skipif(not HAS_MNIST, reason="needs the MNIST test files under $NPVAE_DATA/mnist")


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_models_are_the_papers_finished_runs(name):
    run = pretrained_run(name)               # raises if any checksum is off
    config = run.read_config_dict()
    rows = run.read_metrics(required=True)
    assert config["model"] == name and is_paper_setting(config) and config["seed"] == 0
    assert run.is_finished() and rows[-1]["epoch"] == config["epochs"] == 30
    record = provenance(name)
    assert record["command"].startswith("npvae train") and record["commit"]
    assert record["workers"] == config["workers"]
    assert record["final_epoch"]["test_total"] == rows[-1]["test_total"]
    model = load_pretrained(name)
    assert model.kind == name and model.latent_dim == 2 and model.dtype == np.float32


def test_models_load_pretrained_is_the_same_function():
    a, b = npvae.models.load_pretrained("cvae"), load_pretrained("cvae")
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert np.array_equal(p.data, q.data), name


def test_an_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained model 'gan'; choose one of vae, cvae"):
        load_pretrained("gan")


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """The shipped VAE's folder copied to tmp_path, and the loader pointed at the copy."""
    copy = tmp_path / "vae-mnist"
    shutil.copytree(pretrained_folder("vae"), copy)
    monkeypatch.setattr(npvae.pretrained.load, "pretrained_folder", lambda name: str(copy))
    return copy


def test_a_corrupted_file_is_named(shipped_copy):
    data = bytearray((shipped_copy / "model.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (shipped_copy / "model.npz").write_bytes(bytes(data))
    with pytest.raises(PretrainedFileError, match=r"vae-mnist/model\.npz: checksum mismatch"):
        load_pretrained("vae")


def test_a_missing_file_is_named(shipped_copy):
    (shipped_copy / "metrics.csv").unlink()
    with pytest.raises(PretrainedFileError, match=r"vae-mnist/metrics\.csv: missing"):
        load_pretrained("vae")


def test_an_edited_config_is_caught(shipped_copy):
    text = (shipped_copy / "config.json").read_text().replace('"lr": 0.001', '"lr": 0.01')
    (shipped_copy / "config.json").write_text(text)
    with pytest.raises(PretrainedFileError, match=r"config\.json: checksum mismatch"):
        load_pretrained("vae", out_dir=shipped_copy.parent / "out")
    assert not (shipped_copy.parent / "out").exists()


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_written_run_directory_is_the_shipped_run(tmp_path, name):
    out = tmp_path / "run"
    model = load_pretrained(name, out_dir=out)
    run, shipped = RunDirectory(out), pretrained_run(name)
    assert run.is_finished() and not run.has_checkpoint()
    assert run.read_config() == shipped.read_config()
    assert run.read_config_dict()["pretrained"].startswith(f"npvae's shipped {name.upper()} model")
    assert run.read_metrics() == shipped.read_metrics()
    assert (out / "metrics.csv").read_bytes() == (Path(shipped.path) / "metrics.csv").read_bytes()
    for (key, p), (_, q) in zip(run.load_model().named_parameters(), model.named_parameters()):
        assert np.array_equal(p.data, q.data), key


def test_an_existing_run_is_not_overwritten(tmp_path):
    write_pretrained_run("vae", tmp_path)
    with pytest.raises(FileExistsError, match="already holds a run"):
        write_pretrained_run("cvae", tmp_path)
    assert RunDirectory(tmp_path).read_config().model == "vae"


def test_cli_writes_the_run_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["pretrained", "cvae", "--out", str(tmp_path / "cvae")]) == 0
    assert "wrote the paper's CVAE" in capsys.readouterr().out
    assert RunDirectory(tmp_path / "cvae").is_finished()
    assert main(["pretrained", "cvae", "--out", str(tmp_path / "cvae")]) == 1
    assert "npvae pretrained: error:" in capsys.readouterr().err


@needs_mnist
@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_models_reproduce_their_recorded_test_elbo(name):
    """The final evaluation of training, redone: same eps stream, same worker count, so the same
    numbers to every digit metrics.csv prints."""
    run = pretrained_run(name)
    config, last = run.read_config(), run.read_metrics()[-1]
    images, labels = load_dataset(config.dataset, "test", download=False)
    images, labels = images[:config.test_limit], labels[:config.test_limit].astype(np.int64)
    test = evaluate_elbo(load_pretrained(name), images, labels, _evaluation_rng(config.seed, last["epoch"]),
                         workers=config.workers)
    for key in ("recon", "kl", "total"):
        assert f"{test[key]:.6f}" == f"{last['test_' + key]:.6f}", key


@needs_mnist
@pytest.mark.integration
def test_commands_work_on_a_written_run_at_once(tmp_path, capsys):
    out = str(tmp_path / "vae")
    assert main(["pretrained", "vae", "--out", out]) == 0
    assert main(["inspect", out, "--batch-size", "8", "--active-images", "100"]) == 0
    assert main(["evaluate", out, "--subset", "200", "--no-progress"]) == 0
    assert main(["report", out]) == 0
    html = (tmp_path / "vae" / "report.html").read_text()
    assert "Table 4" in html and html.count("<figure") == len(expected_figures("vae"))
    assert "shipped VAE model: trained by" in html          # config.json's 'pretrained' line
    assert "error" not in capsys.readouterr().err


def test_package_snapshots_a_finished_run_with_its_provenance(tmp_path, monkeypatch):
    """The maintainer's tool: a finished paper-setting run -> a verified folder of package data."""
    import npvae.pretrained.package as package
    source = write_pretrained_run("vae", tmp_path / "run").path
    target = tmp_path / "shipped"
    monkeypatch.setattr(package, "pretrained_folder", lambda name: str(target))
    with pytest.raises(ValueError, match="holds a VAE, not a CVAE"):
        package.package_run("cvae", source, "npvae train --model cvae", "abc1234")
    package.package_run("vae", source, "npvae train --out runs/vae-mnist", "abc1234")
    copy = RunDirectory(target)
    assert copy.read_metrics() == RunDirectory(source).read_metrics()
    assert (target / "provenance.json").read_text().count("abc1234") == 1
    npvae.pretrained.verify_folder(str(target), npvae.pretrained.load.FILES)
