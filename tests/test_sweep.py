"""`npvae sweep` without Dask: the grid, the aggregation over seeds, the figures, the driver in
this process (--cluster none), failed runs, and clear errors. The cluster itself: test_cluster.py."""
import math
import os
import shlex
import sys

import numpy as np
import pytest

from npvae.cli import main
from npvae.experiments import SweepGrid, aggregate, grid_configs, run_name, summary_markdown, summary_text
from npvae.files import read_csv
from npvae.viz.sweep import plot_log_likelihood, plot_rate_distortion

needs_data = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")

TINY = ["--latents", "2", "--epochs", "1", "--limit", "256", "--test-limit", "100", "--batch-size", "64",
        "--no-progress", "--cluster", "none"]


def test_the_grid_names_every_run_by_all_its_values_in_a_fixed_order():
    grid = SweepGrid(models=("vae", "cvae"), betas=(1.0, 4.0), latents=(2,), seeds=(0, 1))
    points = grid.points()
    assert len(points) == len(grid) == 8
    assert [(p["model"], p["beta"], p["seed"]) for p in points[:4]] == \
        [("vae", 1.0, 0), ("vae", 1.0, 1), ("vae", 4.0, 0), ("vae", 4.0, 1)]
    assert run_name(points[2]) == "vae-mnist-bernoulli-warmup10-beta4-latent2-seed0"
    configs = grid_configs(grid, epochs=3, lr=0.002)
    config = configs["cvae-mnist-bernoulli-warmup10-beta4-latent2-seed1"]
    assert (config.model, config.beta, config.latent_dim, config.seed, config.epochs, config.lr,
            config.workers) == ("cvae", 4.0, 2, 1, 3, 0.002, 1)
    assert list(configs) == [run_name(p) for p in points]


@pytest.mark.parametrize("grid, settings, message", [
    (SweepGrid(betas=()), {}, "at least one value of beta"),
    (SweepGrid(seeds=(0, 0)), {}, "seed values repeat"),
    (SweepGrid(), {"beta": 2.0}, "beta: set these through the grid"),
    (SweepGrid(latents=(0,)), {}, "latent_dim must be an integer >= 1"),
])
def test_a_bad_grid_is_refused_with_a_message_naming_it(grid, settings, message):
    with pytest.raises(ValueError, match=message):
        grid_configs(grid, **settings)


def record(beta, seed, status="finished", log_px=None, **metrics):
    values = {"train_recon": 100.0 + seed, "train_kl": 5.0 + 2 * seed, "test_recon": 101.0 + seed,
              "test_kl": 6.0 - seed, **metrics}
    values.update(train_neg_elbo=values["train_recon"] + values["train_kl"],
                  test_neg_elbo=values["test_recon"] + values["test_kl"])
    if log_px is not None:
        values.update(test_log_px=log_px, iwae_k=50, iwae_images=200)
    if status != "finished":
        values = {"message": "the loss is not finite"}
    return {"model": "vae", "dataset": "mnist", "likelihood": "bernoulli", "warmup_epochs": 10,
            "beta": beta, "latent_dim": 2, "seed": seed, "status": status, **values}


def test_aggregation_gives_mean_and_sd_over_the_finished_seeds_and_counts_failures():
    records = [record(1.0, 0, log_px=-140.0), record(1.0, 1, log_px=-143.0), record(1.0, 2, log_px=-141.5),
               record(4.0, 0, log_px=-150.0), record(4.0, 1, status="failed")]
    rows = aggregate(records)
    assert [(r["beta"], r["seeds"], r["failed"]) for r in rows] == [(1.0, 3, 0), (4.0, 1, 1)]
    first, second = rows
    assert first["train_recon_mean"] == pytest.approx(101.0)
    assert first["train_recon_sd"] == pytest.approx(np.std([100, 101, 102], ddof=1))
    assert first["test_neg_elbo_mean"] == pytest.approx(107.0)       # recon + KL: 107 for every seed
    assert first["test_neg_elbo_sd"] == pytest.approx(0.0)
    assert first["test_log_px_mean"] == pytest.approx(-141.5)
    assert first["test_log_px_sd"] == pytest.approx(1.5)
    assert second["train_recon_mean"] == 100.0 and math.isnan(second["train_recon_sd"])   # one seed: no sd
    text = summary_text(rows)
    assert "141.50 ± 1.50" in text.replace("-141", "141") and "1 (1 failed)" in text
    assert text.splitlines()[0].split()[:3] == ["beta", "latent", "seeds"]
    assert summary_markdown(rows).splitlines()[1].startswith("|---|")


def test_the_figures_draw_one_panel_per_model_with_or_without_iwae(tmp_path):
    records = [record(b, s, log_px=-140.0 - b - s) for b in (1.0, 4.0) for s in (0, 1)]
    records += [{**r, "model": "cvae"} for r in records]
    rows = aggregate(records)
    for name, draw in (("rd.png", plot_rate_distortion), ("ll.png", plot_log_likelihood)):
        path = draw(rows, str(tmp_path / name))
        assert open(path, "rb").read(4) == b"\x89PNG"
    without_iwae = aggregate([record(b, 0) for b in (1.0, 4.0)])
    assert math.isnan(without_iwae[0]["test_log_px_mean"])
    plot_log_likelihood(without_iwae, str(tmp_path / "elbo.png"))     # falls back to the ELBO
    assert os.path.getsize(tmp_path / "elbo.png") > 0


@needs_data
def test_a_sweep_in_this_process_writes_everything_and_its_recorded_command_resumes_it(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    assert main(["sweep", "--betas", "0.5", "2", *TINY, "--iwae-k", "5", "--iwae-subset", "20",
                 "--out", out]) == 0
    printed = capsys.readouterr().out
    assert "beta  latent  seeds" in printed and printed.count(": trained (1 epoch)") == 2
    for name in ("manifest.json", "results.csv", "summary.csv", "summary.txt", "summary.md",
                 "rate_distortion.png", "log_likelihood.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    results = read_csv(os.path.join(out, "results.csv"))
    assert [(r["beta"], r["status"], r["action"], r["epochs"], r["iwae_k"], r["iwae_images"])
            for r in results] == [(0.5, "finished", "trained", 1, 5, 20), (2.0, "finished", "trained", 1, 5, 20)]
    assert all(r["test_log_px"] < 0 and r["test_neg_elbo"] > 0 for r in results)
    import json
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["progress"] == {"finished": 2, "failed": 0, "pending": 0}
    assert manifest["grid"]["beta"] == [0.5, 2.0] and manifest["versions"]["numpy"] == np.__version__

    # The manifest's command is the same sweep: run again, it only reads what is there.
    command = shlex.split(manifest["command"])
    assert command[:2] == ["npvae", "sweep"]
    assert main([*command[1:], "--no-progress"]) == 0
    assert capsys.readouterr().out.count(": skipped (1 epoch)") == 2
    assert [r["action"] for r in read_csv(os.path.join(out, "results.csv"))] == ["skipped", "skipped"]

    # A run directory trained with other settings is not silently reused; nothing runs.
    assert main(["sweep", "--betas", "0.5", *TINY, "--lr", "0.002", "--out", out]) == 1
    error = capsys.readouterr().err
    assert "holds a run with other settings (lr: saved 0.001, given 0.002)" in error
    assert len(error.strip().splitlines()) == 1


@needs_data
@pytest.mark.filterwarnings("ignore::RuntimeWarning")        # the overflows of a diverging run
def test_runs_that_diverge_are_recorded_as_failed_and_the_sweep_goes_on(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    assert main(["sweep", "--betas", "1", "--seeds", "0", "1", *TINY, "--lr", "1e6", "--out", out]) == 0
    printed = capsys.readouterr().out
    assert printed.count("FAILED: epoch 1, batch 2: the loss is not finite") == 2
    results = read_csv(os.path.join(out, "results.csv"))
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all("not finite" in r["message"] for r in results)
    assert "0 (2 failed)" in open(os.path.join(out, "summary.txt")).read()
    assert not os.path.exists(os.path.join(out, "rate_distortion.png"))    # nothing to draw


@needs_data
@pytest.mark.filterwarnings("ignore::RuntimeWarning")        # the overflows of a diverging run
def test_runs_start_seed_by_seed_and_the_results_stay_in_grid_order(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    assert main(["sweep", "--betas", "0.5", "2", "--seeds", "0", "1", *TINY, "--lr", "1e6", "--out", out]) == 0
    started = [line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines() if "FAILED" in line]
    assert [name.split("-")[-3::2] for name in started] == [
        ["beta0.5", "seed0"], ["beta2", "seed0"], ["beta0.5", "seed1"], ["beta2", "seed1"]]
    results = read_csv(os.path.join(out, "results.csv"))
    assert [(r["beta"], r["seed"]) for r in results] == [(0.5, 0), (0.5, 1), (2.0, 0), (2.0, 1)]


def test_a_bad_cluster_is_one_clear_line(tmp_path, capsys):
    assert main(["sweep", "--betas", "1", *TINY[:-2], "--cluster", "lcoal", "--out", str(tmp_path)]) == 1
    assert "--cluster must be 'none', 'local' or a scheduler address" in capsys.readouterr().err


def test_without_dask_cluster_local_fails_with_one_line_saying_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)          # `import distributed` now fails
    from npvae.cli import build_parser
    assert build_parser().parse_args(["sweep"]).cluster == "none"      # the default without Dask
    assert main(["sweep", "--betas", "1", *TINY[:-2], "--cluster", "local",
                 "--out", str(tmp_path / "sweep")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and 'pip install -e ".[cluster]"' in error
    assert not os.path.exists(tmp_path / "sweep")                       # failed before doing anything
    assert main(["evaluate", str(tmp_path), "--iwae-k", "5", "--cluster", "local"]) == 1
    assert 'pip install -e ".[cluster]"' in capsys.readouterr().err
