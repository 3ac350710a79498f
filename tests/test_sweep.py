"""`npvae sweep`: a tiny 2 x 1 grid trains, is evaluated, is written out, and is not retrained."""
import csv
import json
import os

import pytest

from npvae.cli import main

pytestmark = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")

ARGS = ["--betas", "0.5", "2", "--latents", "2", "--epochs", "1", "--limit", "256", "--test-limit", "100",
        "--batch-size", "64", "--iwae-k", "5", "--iwae-subset", "20", "--no-progress"]


def test_a_small_sweep_writes_its_table_and_figure_and_skips_finished_runs(tmp_path, capsys):
    out = str(tmp_path / "sweep")
    assert main(["sweep", *ARGS, "--out", out]) == 0
    first = capsys.readouterr().out
    assert "| beta | latent |" in first
    for name in ("sweep.json", "sweep.csv", "sweep.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert sorted(d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d))) == \
        ["beta0.5-latent2", "beta2-latent2"]
    result = json.load(open(os.path.join(out, "sweep.json")))
    runs = result["runs"]
    assert [(r["beta"], r["latent_dim"]) for r in runs] == [(0.5, 2), (2.0, 2)]
    for r in runs:
        assert r["epochs"] == 1 and r["iwae_k"] == 5 and r["iwae_images"] == 20
        assert r["test_log_px"] < 0 and r["test_log_px_se"] > 0 and r["train_kl"] > 0
    rows = list(csv.DictReader(open(os.path.join(out, "sweep.csv"))))
    assert len(rows) == 2 and float(rows[1]["beta"]) == 2.0
    assert open(os.path.join(out, "sweep.png"), "rb").read(4) == b"\x89PNG"

    # Run again: nothing is retrained or re-estimated, and the table is the same.
    assert main(["sweep", *ARGS, "--out", out]) == 0
    second = capsys.readouterr().out
    assert second.count("finished, skipped") == 2
    assert json.load(open(os.path.join(out, "sweep.json")))["runs"] == runs

    # A run directory trained with other settings is not silently reused.
    assert main(["sweep", *ARGS[:-1], "--lr", "0.002", "--no-progress", "--out", out]) == 1
    assert "holds a run with other settings (lr: saved 0.001, given 0.002)" in capsys.readouterr().err
