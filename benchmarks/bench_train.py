"""Training and inference throughput of the paper's VAE and CVAE, npvae vs PyTorch.

    python benchmarks/bench_train.py [--rounds 3] [--repeats 5] [--steps 10] [--no-torch]

A training step is forward, loss (eq. 30), backward and Adam at batch 128 in float32;
inference is encode + decode of a batch. Each framework runs in its own fresh process
(their thread pools would otherwise fight over the cores), and the two alternate for
``--rounds`` rounds so that both see the same drifts of a shared machine. In a round a
process times ``--repeats`` blocks of ``--steps`` steps after warm-up and reports the
median; the figures below are medians over rounds, and the ratio is the median of the
per-round ratios. Numba's compile time is measured in fresh processes too: first with an
empty cache, then again with the cache that first run left behind.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, write_json  # noqa: E402

from npvae.losses import NegativeELBO  # noqa: E402
from npvae.models import CVAE, VAE  # noqa: E402
from npvae.nn import sigmoid  # noqa: E402
from npvae.optim import Adam  # noqa: E402
from npvae.runtime.parallel import DataParallel, default_workers  # noqa: E402
from npvae.training import train_step  # noqa: E402


def npvae_runner(kind, batch, rng):
    model = (VAE if kind == "vae" else CVAE)(rng=0)
    parallel = DataParallel(model)          # one worker per core, as `npvae train` runs
    optimizer, objective = Adam(model.parameters()), NegativeELBO()
    x = (rng.random((batch, 1, 28, 28)) < 0.15).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    eps = rng.standard_normal((batch, 2), dtype=np.float32)

    def step():
        train_step(parallel, optimizer, objective, x, labels, eps, 1.0)

    def infer():
        mu, _ = parallel.encode(x, labels)
        sigmoid(parallel.decode_logits(mu, labels))
    return step, infer


def torch_runner(kind, batch, rng):
    import torch
    from torch_reference import TorchVAE, torch_loss
    torch.manual_seed(0)
    model = TorchVAE(condition_dim=0 if kind == "vae" else 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.from_numpy((rng.random((batch, 1, 28, 28)) < 0.15).astype(np.float32))
    onehot = torch.nn.functional.one_hot(torch.from_numpy(rng.integers(0, 10, batch)), 10).float()
    eps = torch.randn(batch, 2)

    def step():
        optimizer.zero_grad()
        logits, mu, logvar = model(x, eps, onehot)
        torch_loss(logits, x, mu, logvar).backward()
        optimizer.step()

    def infer():
        with torch.no_grad():
            mu, _ = model.encode(x, onehot)
            torch.sigmoid(model.decode_logits(mu, onehot))
    return step, infer


def timed(fn, steps):
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def compile_times():
    """Seconds to the end of the first training step in a fresh process: cold cache, warm cache."""
    code = ("import time; t = time.perf_counter(); import numpy as np; "
            "from npvae.models import VAE; from npvae.optim import Adam; "
            "from npvae.losses import NegativeELBO; from npvae.training import train_step; "
            "m = VAE(rng=0); x = np.zeros((8, 1, 28, 28), np.float32); "
            "train_step(m, Adam(m.parameters()), NegativeELBO(), x, None, np.zeros((8, 2), np.float32), 1.0); "
            "print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        run = [sys.executable, "-c", code]
        cold = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
        warm = float(subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout)
    return {"first_step_cold_cache_s": cold, "first_step_warm_cache_s": warm}


TASKS = [(kind, task) for kind in ("vae", "cvae") for task in ("train", "inference")]


def worker(framework, batch, repeats, steps):
    """In a fresh process: median seconds per batch of every task, as JSON on stdout."""
    rng = np.random.default_rng(0)
    if framework == "torch":
        import torch
        torch.set_num_threads(os.cpu_count())
    make = torch_runner if framework == "torch" else npvae_runner
    medians = {}
    for kind in ("vae", "cvae"):
        fns = make(kind, batch, rng)
        for task, fn in zip(("train", "inference"), fns):
            for _ in range(3):                      # warm-up, including Numba's JIT
                fn()
            medians[f"{kind}_{task}"] = statistics.median(timed(fn, steps) for _ in range(repeats))
    print(json.dumps(medians))


def run_worker(framework, args):
    command = [sys.executable, os.path.abspath(__file__), "--worker", framework,
               "--batch-size", str(args.batch_size), "--repeats", str(args.repeats), "--steps", str(args.steps)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{framework} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    parser.add_argument("--worker", choices=("npvae", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_train.json"))
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.batch_size, args.repeats, args.steps)
    try:
        if args.no_torch:
            raise ImportError
        import torch
        frameworks = ("npvae", "torch")
    except ImportError:
        frameworks = ("npvae",)
    rounds = []
    for r in range(args.rounds):
        rounds.append({name: run_worker(name, args) for name in frameworks})
        print(f"round {r + 1}/{args.rounds}: " + "  ".join(
            f"{name} VAE train {args.batch_size / rounds[-1][name]['vae_train']:.0f} img/s"
            for name in frameworks), flush=True)
    results = {"machine": machine(), "batch_size": args.batch_size, "rounds": args.rounds,
               "repeats": args.repeats, "steps_per_repeat": args.steps,
               "npvae_workers": default_workers(), "torch_threads": os.cpu_count(),
               "command": "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]),
               "torch": torch.__version__ if "torch" in frameworks else None}
    for kind, task in TASKS:
        key = f"{kind}_{task}"
        entry = {name: {"images_per_s": args.batch_size / statistics.median(r[name][key] for r in rounds),
                        "ms_per_batch": 1e3 * statistics.median(r[name][key] for r in rounds)}
                 for name in frameworks}
        line = f"{kind.upper():4s} {task:9s}  npvae {entry['npvae']['images_per_s']:7.0f} img/s"
        if "torch" in frameworks:
            entry["ratio_npvae_over_torch"] = statistics.median(r["torch"][key] / r["npvae"][key] for r in rounds)
            line += (f"   torch {entry['torch']['images_per_s']:7.0f} img/s"
                     f"   ratio {entry['ratio_npvae_over_torch']:.2f}")
        results[key] = entry
        print(line)
    results["numba_compile"] = compile_times()
    print("numba: first step in a fresh process, cold cache {first_step_cold_cache_s:.1f} s, "
          "warm cache {first_step_warm_cache_s:.1f} s".format(**results["numba_compile"]))
    write_json(args.out, results)


if __name__ == "__main__":
    main()
