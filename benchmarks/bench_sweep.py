"""Sweep wall time on a local Dask cluster with 1 worker and with N workers: speedup, efficiency.

    python benchmarks/bench_sweep.py [--runs 8] [--epochs 2] [--limit 12000] [--test-limit 2000]
                                     [--workers 2] [--rounds 1] [--out benchmarks/results/bench_sweep.json]

The sweep is ``--runs`` short VAE runs (betas x seeds, latent 2, ``--epochs`` epochs on the first
``--limit`` training images, the per-epoch test figures on ``--test-limit`` test images), run with
`npvae sweep --cluster local --local-workers W` for W = 1 and W = ``--workers``, each into a fresh
directory, alternating for ``--rounds`` rounds. The time is the driver's whole wall time: the
cluster's start, the Numba cache warm-up and every run, as a user waits for it. Speedup is
T(1) / T(W), parallel efficiency speedup / W. The two sweeps must give identical runs (checked).

A shared machine makes these numbers meaningless: the load averages (os.getloadavg) before and
after each sweep are recorded beside its time; compare them with the core count.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import machine, write_json  # noqa: E402

from npvae.experiments import SweepGrid, run_sweep  # noqa: E402

BETAS = (0.5, 1.0, 2.0, 4.0, 8.0, 0.25, 3.0, 6.0)


def grid_for(runs):
    """``runs`` runs: 2 seeds x runs / 2 betas (or one seed for an odd count)."""
    seeds = (0, 1) if runs % 2 == 0 else (0,)
    betas = BETAS[:runs // len(seeds)]
    if len(betas) * len(seeds) != runs:
        raise SystemExit(f"--runs must be at most {2 * len(BETAS)}")
    return SweepGrid(betas=betas, latents=(2,), seeds=seeds)


def timed_sweep(grid, settings, workers, root):
    out = os.path.join(root, f"sweep-{workers}-workers-{time.time_ns()}")
    load_before = os.getloadavg()
    started = time.perf_counter()
    records, _ = run_sweep(grid, out, settings, cluster="local", local_workers=workers, progress=False,
                           log=lambda *a: None)
    seconds = time.perf_counter() - started
    if any(r["status"] != "finished" or r["action"] != "trained" for r in records):
        raise SystemExit(f"not every run was trained: {[(r['name'], r['action']) for r in records]}")
    finals = {r["name"]: (r["train_recon"], r["train_kl"], r["test_recon"], r["test_kl"]) for r in records}
    return {"workers": workers, "seconds": seconds, "run_seconds": [r["seconds"] for r in records],
            "load_before": load_before, "load_after": os.getloadavg()}, finals


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=12000)
    parser.add_argument("--test-limit", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="the parallel sweep's worker processes")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", default=None, help="where the sweeps go (default: a temporary directory)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "results", "bench_sweep.json"))
    args = parser.parse_args(argv)

    grid = grid_for(args.runs)
    settings = {"epochs": args.epochs, "limit": args.limit, "test_limit": args.test_limit}
    measured = {1: [], args.workers: []}
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        for round_index in range(args.rounds):
            finals = {}
            for workers in (1, args.workers):
                result, finals[workers] = timed_sweep(grid, settings, workers, root)
                measured[workers].append(result)
                print(f"round {round_index + 1}: {workers} worker(s): {result['seconds']:.1f} s "
                      f"(load {result['load_before'][0]:.2f} -> {result['load_after'][0]:.2f})", flush=True)
            if finals[1] != finals[args.workers]:
                raise SystemExit("the two sweeps' runs differ")
    serial = statistics.median(r["seconds"] for r in measured[1])
    parallel = statistics.median(r["seconds"] for r in measured[args.workers])
    speedup = serial / parallel
    summary = {"serial_seconds": serial, "parallel_seconds": parallel, "workers": args.workers,
               "speedup": speedup, "efficiency": speedup / args.workers}
    print(f"{args.runs} runs: 1 worker {serial:.1f} s, {args.workers} workers {parallel:.1f} s: "
          f"speedup {speedup:.2f}x, parallel efficiency {summary['efficiency']:.0%}")
    write_json(args.out, {"machine": machine(), "command": "python benchmarks/bench_sweep.py "
                          + " ".join(sys.argv[1:] if argv is None else argv),
                          "grid": grid.to_dict(), "settings": settings, "rounds": args.rounds,
                          "summary": summary, "measurements": measured})


if __name__ == "__main__":
    main()
