"""Sweeps and IWAE on a Dask cluster: on the loopback interface only, two single-threaded worker
processes, tiny runs (256 training images, 100 test images, 2 epochs, batch 64).

What is compared between two sweeps, run directory by run directory: config.json, metrics.csv
without its two wall-clock columns (``seconds``, ``images_per_s``), every array of model.npz,
and the IWAE figures in evaluation.json without their timings.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (comes with distributed)

from npvae.cli import main  # noqa: E402
from npvae.evaluation import evaluate_iwae  # noqa: E402
from npvae.evaluation.sharded import sharded_iwae  # noqa: E402
from npvae.experiments import SweepGrid, run_sweep  # noqa: E402
from npvae.files import atomic_write_text, read_csv  # noqa: E402
from npvae.models import CVAE  # noqa: E402
from npvae.runtime.cluster import open_cluster  # noqa: E402
from npvae.training import Callback  # noqa: E402

pytestmark = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")
# The callbacks below travel to the workers by value: the workers cannot import this file.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

GRID = SweepGrid(betas=(0.5, 2.0), latents=(2,), seeds=(0, 1))       # 2 x 2: four runs
SETTINGS = {"epochs": 2, "limit": 256, "test_limit": 100, "batch_size": 64}
IWAE = {"iwae_k": 5, "iwae_subset": 20}
ARGS = ["sweep", "--betas", "0.5", "2", "--latents", "2", "--seeds", "0", "1", "--epochs", "2",
        "--limit", "256", "--test-limit", "100", "--batch-size", "64", "--iwae-k", "5",
        "--iwae-subset", "20", "--no-progress"]
NAMES = [f"vae-mnist-bernoulli-warmup10-beta{b}-latent2-seed{s}" for b in ("0.5", "2") for s in (0, 1)]
WALL_CLOCK = ("seconds", "images_per_s")


def quiet(*args):
    pass


@pytest.fixture(scope="module")
def cluster_address():
    """The scheduler address of `--cluster local` with two workers: a LocalCluster of two
    single-threaded worker processes on 127.0.0.1, closed (with its client) however the tests end."""
    with open_cluster("local", local_workers=2) as client:
        assert client.cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert {w["nthreads"] for w in client.scheduler_info()["workers"].values()} == {1}
        assert len(client.scheduler_info()["workers"]) == 2
        yield client.cluster.scheduler_address


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The undisturbed sweep, run in this process (--cluster none)."""
    out = str(tmp_path_factory.mktemp("reference") / "sweep")
    run_sweep(GRID, out, SETTINGS, **IWAE, cluster="none", progress=False, log=quiet)
    return out


def assert_same_runs(out, expected):
    for name in NAMES:
        a, b = os.path.join(out, name), os.path.join(expected, name)
        assert open(os.path.join(a, "config.json")).read() == open(os.path.join(b, "config.json")).read()
        rows_a, rows_b = (read_csv(os.path.join(d, "metrics.csv"), numeric=False) for d in (a, b))
        assert [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows_a] == \
               [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows_b], name
        with np.load(os.path.join(a, "model.npz")) as model_a, np.load(os.path.join(b, "model.npz")) as model_b:
            assert sorted(model_a.files) == sorted(model_b.files)
            for key in model_a.files:
                assert np.array_equal(model_a[key], model_b[key]), f"{name}: {key}"
        iwae_a, iwae_b = (json.load(open(os.path.join(d, "evaluation.json")))["iwae_5_first20"] for d in (a, b))
        for key in ("mean", "se", "elbo_mean", "ess_median", "ess_min", "images", "k"):
            assert iwae_a[key] == iwae_b[key], f"{name}: IWAE {key}"


class PauseAfterFirstEpoch(Callback):
    """In run ``name`` only, once: after epoch 1's checkpoint is written, write this process's
    id to ``marker`` and wait (at most ``timeout`` s) to be killed."""

    def __init__(self, name, marker, timeout=90):
        self.name, self.marker, self.timeout = name, marker, timeout

    def on_start(self, run, config, model):
        self.run_name = os.path.basename(run.path)

    def on_epoch(self, row, model):
        if row["epoch"] == 1 and self.run_name == self.name and not os.path.exists(self.marker):
            atomic_write_text(self.marker, str(os.getpid()))
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline:
                time.sleep(0.05)


class DriverStopped(Exception):
    """Stands for the driver being killed: nothing after it runs."""


class StopAfterFirstEpoch(Callback):
    def __init__(self, name):
        self.name = name

    def on_start(self, run, config, model):
        self.run_name = os.path.basename(run.path)

    def on_epoch(self, row, model):
        if row["epoch"] == 1 and self.run_name == self.name:
            raise DriverStopped(self.name)


def test_a_two_worker_local_cluster_gives_exactly_the_runs_of_cluster_none(cluster_address, reference,
                                                                          tmp_path, capsys):
    out = str(tmp_path / "sweep")
    assert main([*ARGS, "--cluster", cluster_address, "--out", out]) == 0
    assert capsys.readouterr().out.count(": trained (2 epochs)") == 4
    assert_same_runs(out, reference)
    summary = read_csv(os.path.join(out, "summary.csv"))
    assert [(r["beta"], r["seeds"]) for r in summary] == [(0.5, 2), (2.0, 2)]
    assert summary == read_csv(os.path.join(reference, "summary.csv"))


def test_a_worker_killed_mid_run_is_replaced_and_the_run_resumes_from_its_checkpoint(
        cluster_address, reference, tmp_path):
    out, marker = str(tmp_path / "sweep"), str(tmp_path / "paused-worker.pid")
    killed = {}

    def kill_the_paused_worker():
        deadline = time.monotonic() + 90
        while not os.path.exists(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        if os.path.exists(marker):
            killed["pid"] = int(open(marker).read())
            os.kill(killed["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_paused_worker, daemon=True)
    killer.start()
    try:
        records, _ = run_sweep(GRID, out, SETTINGS, **IWAE, cluster=cluster_address, progress=False,
                               log=quiet, callbacks=[PauseAfterFirstEpoch(NAMES[1], marker)])
    finally:
        killer.join(timeout=100)
    assert "pid" in killed, "the run never paused after its first epoch"
    paused = records[1]
    assert (paused["status"], paused["action"], paused["started_from_epoch"]) == ("finished", "resumed", 1)
    assert [r["action"] for i, r in enumerate(records) if i != 1] == ["trained"] * 3
    with open_cluster(cluster_address) as client:          # the killed process is gone
        assert killed["pid"] not in client.run(os.getpid).values()
    assert_same_runs(out, reference)


def test_a_killed_driver_loses_only_the_epochs_in_progress_and_rerunning_finishes_the_rest(reference, tmp_path):
    out = str(tmp_path / "sweep")
    for name in NAMES[:2]:      # two runs finished before (copied, to save time)
        shutil.copytree(os.path.join(reference, name), os.path.join(out, name))
    with pytest.raises(DriverStopped):
        run_sweep(GRID, out, SETTINGS, **IWAE, cluster="none", progress=False, log=quiet,
                  callbacks=[StopAfterFirstEpoch(NAMES[2])])
    # What a user sees of the stopped sweep: two runs finished, two pending; the third has its
    # first epoch's checkpoint.
    assert [r["status"] for r in read_csv(os.path.join(out, "results.csv"))] == \
        ["finished", "finished", "pending", "pending"]
    records, _ = run_sweep(GRID, out, SETTINGS, **IWAE, cluster="none", progress=False, log=quiet)
    assert [(r["action"], r["started_from_epoch"]) for r in records] == \
        [("skipped", 2), ("skipped", 2), ("resumed", 1), ("trained", 0)]
    assert_same_runs(out, reference)


def test_rerunning_a_finished_sweep_trains_nothing(reference, capsys):
    models = {name: os.stat(os.path.join(reference, name, "model.npz")).st_mtime_ns for name in NAMES}
    assert main([*ARGS, "--cluster", "local", "--out", reference]) == 0
    assert capsys.readouterr().out.count(": skipped (2 epochs)") == 4
    assert {name: os.stat(os.path.join(reference, name, "model.npz")).st_mtime_ns for name in NAMES} == models


def test_sharded_iwae_equals_serial_iwae_image_by_image(cluster_address):
    model = CVAE(3, rng=4)
    rng = np.random.default_rng(5)
    images = (rng.random((23, 28, 28)) < 0.25).astype(np.uint8) * 255
    labels = rng.integers(0, 10, 23)
    serial = evaluate_iwae(model, images, labels, 20, (7, 1), batch_size=60, progress=False, workers=2)
    with open_cluster(cluster_address) as client:
        sharded = sharded_iwae(model, images, labels, 20, (7, 1), batch_size=60, client=client, shards=3,
                               progress=False)
    for key in ("log_px", "elbo", "ess"):
        assert np.array_equal(sharded[key], serial[key]), key
    assert sharded["mean"] == serial["mean"] and sharded["se"] == serial["se"]


def test_npvae_evaluate_on_a_cluster_files_the_serial_figures(cluster_address, reference, tmp_path, capsys):
    results = {}
    for cluster in ("none", cluster_address):
        run = str(tmp_path / cluster.replace("/", "_").replace(":", "_"))
        shutil.copytree(os.path.join(reference, NAMES[0]), run)
        assert main(["evaluate", run, "--subset", "30", "--iwae-k", "20", "--batch-size", "100",
                     "--no-progress", "--cluster", cluster]) == 0
        results[cluster] = json.load(open(os.path.join(run, "evaluation.json")))["iwae_20_first30"]
    capsys.readouterr()
    for key in ("mean", "se", "elbo_mean", "elbo_se", "ess_median", "ess_min"):
        assert results["none"][key] == results[cluster_address][key], key


def test_after_the_drivers_warm_up_a_worker_compiles_nothing(tmp_path):
    """The driver compiles every Numba kernel a task uses into the cache; a fresh process that
    then runs a VAE and a CVAE task (training, test ELBO, IWAE) finds all of them there."""
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    common = """
        from npvae.experiments import SweepGrid, grid_configs
        configs = grid_configs(SweepGrid(models=("vae", "cvae"), betas=(1.0,), latents=(2,)),
                               epochs=1, limit=128, test_limit=50, batch_size=64)
    """
    warm = common + """
        from npvae.experiments.engine import warm_numba_cache
        warm_numba_cache(configs.values(), iwae=True)
    """
    work = common + f"""
        from npvae.experiments import RunTask, IWAESettings, run_task
        for name, config in configs.items():
            record = run_task(RunTask(name, config, {str(tmp_path)!r} + "/" + name, iwae=IWAESettings(5, 10)))
            assert record["status"] == "finished", record
    """

    def cache_files():
        return {str(p.relative_to(cache)): p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file()}

    subprocess.run([sys.executable, "-c", textwrap.dedent(warm)], env=env, check=True, timeout=300)
    warmed = cache_files()
    assert any(name.endswith(".nbi") for name in warmed)
    subprocess.run([sys.executable, "-c", textwrap.dedent(work)], env=env, check=True, timeout=300)
    assert cache_files() == warmed
