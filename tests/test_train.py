"""Training: loss convention, KL schedule, determinism, resume, divergence, CLI errors.

Runs are tiny (a few hundred real MNIST images, 1-3 epochs); they need NPVAE_DATA.
"""
import json
import math
import os

import numpy as np
import pytest

from npvae.runs import RunDirectory, CheckpointError, load_checkpoint, open_model as load_model
from npvae.cli import main
from npvae.losses import BernoulliLoss, GaussianKL
from npvae.optim import kl_weight
from npvae.runs import METRIC_COLUMNS, TrainConfig
from npvae.training import TrainingDiverged, train

needs_data = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")
TINY = dict(limit=384, test_limit=200, batch_size=64)
LOSS_COLUMNS = [c for c in METRIC_COLUMNS if c not in ("seconds", "images_per_s")]


def quiet(*args):
    pass


def test_loss_convention_on_a_hand_computed_case():
    # Two images of two pixels; logits 0 give p = 1/2 everywhere, so each pixel costs
    # log 2 whatever its target: per image 2 log 2, batch mean 2 log 2.
    logits = np.zeros((2, 1, 1, 2))
    x = np.array([0.0, 1.0, 1.0, 0.25]).reshape(2, 1, 1, 2)
    assert BernoulliLoss().forward(logits, x) == pytest.approx(2 * math.log(2))
    # KL of mu = (1, 0), logvar = (0, log 4): 1/2 [(1 + 1 - 0 - 1) + (0 + 4 - log 4 - 1)]
    # for the first image and 0 for the second (the prior itself); the batch mean halves it.
    mu = np.array([[1.0, 0.0], [0.0, 0.0]])
    logvar = np.array([[0.0, math.log(4)], [0.0, 0.0]])
    expected_first = 0.5 * (1 + 3 - math.log(4))
    assert GaussianKL().forward(mu, logvar) == pytest.approx(expected_first / 2)


def test_kl_annealing_schedule_follows_eq_31():
    assert [kl_weight(t, 10) for t in (1, 5, 10, 11, 30)] == pytest.approx([0.1, 0.5, 1, 1, 1])
    assert kl_weight(1, 0) == 1.0 and kl_weight(3, 0, beta_max=4.0) == 4.0
    assert kl_weight(2, 4, beta_max=2.0) == pytest.approx(1.0)
    steps = [kl_weight(None, 2, schedule="step", step=s, steps_per_epoch=5) for s in (1, 5, 10, 11)]
    assert steps == pytest.approx([0.1, 0.5, 1.0, 1.0])
    with pytest.raises(ValueError, match="schedule"):
        kl_weight(1, 10, schedule="cosine")


@needs_data
def test_training_reduces_the_loss_and_writes_a_complete_run(tmp_path):
    rows = train(TrainConfig(epochs=2, warmup_epochs=0, **TINY), str(tmp_path), progress=False, log=quiet)
    assert rows[1]["train_total"] < rows[0]["train_total"]
    assert rows[1]["test_total"] < rows[0]["test_total"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.npz", "config.json", "metrics.csv", "model.npz"]
    assert list(RunDirectory(str(tmp_path)).read_metrics()[0]) == list(METRIC_COLUMNS)
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["limit"] == TINY["limit"]
    # the BLAS that trained the run is on record, with its kernel and thread count
    assert saved["blas"]["library"] and saved["blas"]["threads"] >= 1
    assert set(saved["blas"]) >= {"kernel", "kernel_isa", "cpu_isa", "kernel_older_than_cpu", "environment"}


@needs_data
def test_same_seed_same_metrics(tmp_path):
    a = train(TrainConfig(epochs=1, **TINY), str(tmp_path / "a"), progress=False, log=quiet)
    b = train(TrainConfig(epochs=1, **TINY), str(tmp_path / "b"), progress=False, log=quiet)
    c = train(TrainConfig(epochs=1, seed=1, **TINY), str(tmp_path / "c"), progress=False, log=quiet)
    assert [a[0][k] for k in LOSS_COLUMNS] == [b[0][k] for k in LOSS_COLUMNS]
    assert a[0]["train_recon"] != c[0]["train_recon"]


@needs_data
@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_resume_equals_an_uninterrupted_run(tmp_path, model):
    config = TrainConfig(model=model, epochs=3, warmup_epochs=2, **TINY)
    full = train(config, str(tmp_path / "full"), progress=False, log=quiet)

    def interrupt_after_epoch_2(line):
        if line.startswith("epoch   2/"):
            raise KeyboardInterrupt

    interrupted = str(tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        train(config, interrupted, progress=False, log=interrupt_after_epoch_2)
    # A run killed in the middle of a write leaves a stray temporary file; it must not matter.
    open(os.path.join(interrupted, ".tmp-killed.npz"), "wb").write(b"half a file")
    resumed = train(None, interrupted, resume=True, progress=False, log=quiet)
    assert len(resumed) == 3
    for a, b in zip(full, resumed):
        assert [a[k] for k in LOSS_COLUMNS] == [b[k] for k in LOSS_COLUMNS]
    final_full, final_resumed = load_model(str(tmp_path / "full")), load_model(interrupted)
    for (name, p), (_, q) in zip(final_full.named_parameters(), final_resumed.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


@needs_data
def test_resume_with_a_conflicting_flag_is_an_error_naming_each_difference(tmp_path, capsys):
    """Defect 8: `--model cvae --resume` on a VAE run used to print "CVAE" and resume the VAE."""
    out = str(tmp_path / "run")
    train(TrainConfig(epochs=1, **TINY), out, progress=False, log=quiet)
    code = main(["train", "--out", out, "--resume", "--model", "cvae", "--lr", "0.01", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "model: saved 'vae', given 'cvae'" in err and "lr: saved 0.001, given 0.01" in err
    assert len(RunDirectory(out).read_metrics()) == 1          # nothing was trained


@needs_data
def test_resume_with_more_epochs_extends_a_finished_run_to_the_longer_runs_metrics(tmp_path, capsys):
    """Defect 8: `--epochs N --resume` on a finished run did nothing. Now it trains on to N, and
    since the KL schedule depends only on the epoch, the result is the N-epoch run's."""
    flags = ["--limit", str(TINY["limit"]), "--test-limit", str(TINY["test_limit"]),
             "--batch-size", str(TINY["batch_size"]), "--warmup-epochs", "2", "--no-progress"]
    short, long = str(tmp_path / "short"), str(tmp_path / "long")
    assert main(["train", "--out", short, "--epochs", "2", *flags]) == 0
    assert main(["train", "--out", long, "--epochs", "3", *flags]) == 0
    assert main(["train", "--out", short, "--resume", "--epochs", "3", "--no-progress"]) == 0
    extended, direct = RunDirectory(short).read_metrics(), RunDirectory(long).read_metrics()
    assert len(extended) == 3
    for a, b in zip(extended, direct):
        assert [a[k] for k in LOSS_COLUMNS] == [b[k] for k in LOSS_COLUMNS]
    assert RunDirectory(short).read_config().epochs == 3
    assert main(["train", "--out", short, "--resume", "--epochs", "2", "--no-progress"]) == 1
    assert "would shorten it" in capsys.readouterr().err


@needs_data
def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from npvae.models import VAE

    class PoisonedLoss(BernoulliLoss):
        calls = 0

        def forward(self, logits, target, batch_size=None):
            PoisonedLoss.calls += 1
            value = super().forward(logits, target, batch_size)
            if PoisonedLoss.calls > 8:                      # 6 batches per epoch
                self.per_image[0] = np.nan
            return value

    monkeypatch.setattr(VAE, "reconstruction_loss", lambda self: PoisonedLoss())
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 3: the loss is not finite.*epoch 1"):
        train(TrainConfig(epochs=3, workers=1, **TINY), str(tmp_path), progress=False, log=quiet)
    _, _, meta = load_checkpoint(str(tmp_path / "checkpoint.npz"))
    assert meta["epoch"] == 1 and len(meta["metrics"]) == 1


@needs_data
def test_cli_trains_and_refuses_to_overwrite_a_run(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--model", "cvae", "--epochs", "1", "--limit", "256", "--test-limit", "100",
            "--out", out, "--no-progress"]
    assert main(args) == 0
    model = load_model(out)
    assert model.kind == "cvae"
    assert model.sample(4, labels=np.array([0, 3, 7, 9]), rng=0).shape == (4, 1, 28, 28)
    assert main(args) == 1
    assert "already holds a run" in capsys.readouterr().err


@needs_data
def test_a_cvae_checkpoint_loaded_as_a_vae_is_refused(tmp_path):
    train(TrainConfig(model="cvae", epochs=1, **TINY), str(tmp_path), progress=False, log=quiet)
    with pytest.raises(CheckpointError, match="holds a CVAE, but a VAE was requested"):
        load_checkpoint(str(tmp_path / "checkpoint.npz"), expect_kind="vae")


def test_corrupted_and_missing_model_files_give_clear_errors(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="not a readable npvae model"):
        load_model(str(bad))
    empty_run = tmp_path / "empty-run"
    empty_run.mkdir()
    with pytest.raises(CheckpointError, match="neither model.npz nor checkpoint.npz"):
        load_model(str(empty_run))


def test_missing_dataset_is_reported_with_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    import npvae.data.datasets as datasets

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(datasets, "_fetch", offline)
    code = main(["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and "NPVAE_DATA" in err and str(tmp_path / "empty") in err


def test_invalid_configurations_are_rejected():
    for bad in (dict(epochs=0), dict(model="gan"), dict(lr=0.0), dict(beta=-1.0), dict(limit=0)):
        with pytest.raises(ValueError):
            TrainConfig(**bad).validate()


def test_cvae_labels_out_of_range_are_refused():
    from npvae.models import CVAE
    model = CVAE(rng=0)
    x = np.zeros((2, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match="label 10 is out of range"):
        model.encode(x, np.array([3, 10]))
    with pytest.raises(ValueError, match="labels are required"):
        model.encode(x)


def test_evaluation_keys_name_a_subset_only_when_it_is_one():
    """Defect 4: the sweep filed IWAE on the whole test set under iwae_K_firstN while `npvae
    evaluate` used iwae_K: one function, npvae.runs.evaluation_key, now decides for both."""
    from npvae.runs import evaluation_key
    assert evaluation_key("iwae_5000", 10000, 10000) == "iwae_5000"
    assert evaluation_key("iwae_5000", 1000, 10000) == "iwae_5000_first1000"
