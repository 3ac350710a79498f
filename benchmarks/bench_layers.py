"""Per-layer forward and backward time of the paper's VAE and CVAE, as one worker sees them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_layers.py [--repeats 15]
        [--batch-size 128] [--workers N]

Training splits each batch of 128 across worker threads, one per core, and each worker
runs the whole network on its share with a single-threaded BLAS (npvae/runtime/parallel.py). So
this benchmark times one worker: batch 128 / workers, one thread. Every layer is timed on
the activations (and memory layouts) it sees in a real training step, median over repeats
after warm-up, in ms and GFLOP/s (multiply-add = 2 FLOP), with its share of one full
single-worker training step measured in the same run.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import blas_info, machine, median_seconds, npvae_api, write_json  # noqa: E402

_api = npvae_api()
CVAE, VAE = _api.CVAE, _api.VAE
Conv2d, ConvTranspose2d, Linear = _api.Conv2d, _api.ConvTranspose2d, _api.Linear
blas_threads, Adam, default_workers, train_step = _api.blas_threads, _api.Adam, _api.default_workers, _api.train_step


def forward_flops(layer, x, y):
    """Multiply-adds x 2 of one forward pass."""
    if isinstance(layer, Conv2d):
        return 2 * y.size * layer.in_channels * np.prod(layer.kernel_size)
    if isinstance(layer, ConvTranspose2d):
        return 2 * x.size * layer.out_channels * np.prod(layer.kernel_size)
    if isinstance(layer, Linear):
        return 2 * x.shape[0] * layer.in_features * layer.out_features
    return 0


def layer_table(model, x, labels, repeats):
    """Rows of (name, forward ms, backward ms, forward GFLOP/s, backward GFLOP/s)."""
    rng = np.random.default_rng(1)
    stages = [("encoder." + str(i), layer) for i, layer in enumerate(model.encoder)]
    h = model.encoder_input(x, labels)
    inputs = []
    for name, layer in stages:
        inputs.append(h)
        h = layer.forward(h)
    stages += [("fc_mu", model.fc_mu), ("fc_logvar", model.fc_logvar)]
    inputs += [h, h]
    z = model.decoder_input(model.fc_mu.forward(h), labels)
    h = z
    for i, layer in enumerate(model.decoder):
        stages.append(("decoder." + str(i), layer))
        inputs.append(h)
        h = layer.forward(h)
    rows = []
    for (name, layer), layer_input in zip(stages, inputs):
        y = layer.forward(layer_input)
        grad = np.empty_like(y)              # the output's memory layout, as in a real step
        grad[...] = rng.standard_normal(y.shape)
        fwd, _ = median_seconds(lambda: layer.forward(layer_input), repeats)
        bwd, _ = median_seconds(lambda: layer.backward(grad.copy(order="K")), repeats)
        copy, _ = median_seconds(lambda: grad.copy(order="K"), repeats)
        bwd = max(bwd - copy, 0.0)
        flops = forward_flops(layer, layer_input, y)
        backward_flops = flops * (1 if getattr(layer, "requires_input_grad", True) is False else 2)
        rows.append({"layer": name, "type": repr(layer), "forward_ms": 1e3 * fwd, "backward_ms": 1e3 * bwd,
                     "forward_gflops": flops / fwd / 1e9 if flops else None,
                     "backward_gflops": backward_flops / bwd / 1e9 if flops and bwd else None})
    return rows


def step_breakdown(kind, batch_size, workers, repeats, steps=10):
    """Where a whole training step (all workers, batch ``batch_size``) spends its time, as
    ``train_step`` runs it: zero_grad, then every shard's forward, loss and backward on its own
    worker followed by the sum of the workers' gradients (``shards``), then Adam, both on the
    calling thread alone. Medians of per-phase times over ``repeats`` blocks of ``steps``
    steps, in ms."""
    import time
    rng = np.random.default_rng(3)
    model = (VAE if kind == "vae" else CVAE)(rng=0)
    x = (rng.random((batch_size, 1, 28, 28)) < 0.15).astype(np.float32)
    labels = rng.integers(0, 10, batch_size)
    eps = rng.standard_normal((batch_size, 2), dtype=np.float32)
    optimizer = Adam(model.parameters())
    phases = ("zero_grad", "shards", "adam")
    blocks = []
    with _api.DataParallel(model, workers) as parallel:
        for block in range(repeats + 1):                 # block 0 is warm-up
            totals = dict.fromkeys(phases, 0.0)
            for _ in range(steps):
                t0 = time.perf_counter()
                optimizer.zero_grad()
                t1 = time.perf_counter()
                parallel.loss_and_backward(x, eps, labels, 1.0)
                t2 = time.perf_counter()
                optimizer.step()
                t3 = time.perf_counter()
                for name, (a, b) in zip(phases, ((t0, t1), (t1, t2), (t2, t3))):
                    totals[name] += (b - a) / steps
            if block:
                blocks.append(totals)
    result = {name: 1e3 * float(np.median([b[name] for b in blocks])) for name in phases}
    result["step"] = 1e3 * float(np.median([sum(b.values()) for b in blocks]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="worker threads the batch is split across (default: one per core)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "bench_layers.json"))
    args = parser.parse_args()
    with blas_threads(1):
        run(args)


def run(args):
    rng = np.random.default_rng(0)
    batch = args.batch_size // args.workers
    info = blas_info()
    print(f"one worker of {args.workers}: batch {batch}, BLAS on one thread; OpenBLAS kernel "
          f"{info['kernel']} ({info['version']}); load {os.getloadavg()[0]:.2f}")
    results = {"machine": machine(), "blas": info, "batch_size": args.batch_size, "workers": args.workers,
               "batch_per_worker": batch, "blas_threads": 1, "repeats": args.repeats,
               "load_before": os.getloadavg(),
               "command": "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_layers.py "
                          + " ".join(sys.argv[1:])}
    for model in (VAE(rng=0), CVAE(rng=0)):
        x = (rng.random((batch, 1, 28, 28)) < 0.15).astype(np.float32)
        labels = rng.integers(0, 10, batch)
        eps = rng.standard_normal((batch, 2), dtype=np.float32)
        optimizer = Adam(model.parameters())
        for _ in range(3):
            train_step(model, optimizer, x, labels, eps, 1.0)
        step, _ = median_seconds(lambda: train_step(model, optimizer, x, labels, eps, 1.0),
                                 args.repeats)
        rows = layer_table(model, x, labels, args.repeats)
        print(f"\n{model.kind.upper()}: one training step {1e3 * step:.1f} ms "
              f"({batch / step:.0f} images/s on one core)")
        print(f"{'layer':<12} {'type':<34} {'fwd ms':>7} {'GFLOP/s':>8} {'bwd ms':>7} {'GFLOP/s':>8} {'share':>6}")
        for r in rows:
            r["share_of_step"] = (r["forward_ms"] + r["backward_ms"]) / (1e3 * step)
            kind = r["type"].split("(")[0] + "(" + ",".join(r["type"].split("(")[1].split(",")[:2]) + ")" \
                if "(" in r["type"] and "," in r["type"] else r["type"]
            fg = f"{r['forward_gflops']:8.1f}" if r["forward_gflops"] else f"{'':8}"
            bg = f"{r['backward_gflops']:8.1f}" if r["backward_gflops"] else f"{'':8}"
            print(f"{r['layer']:<12} {kind[:34]:<34} {r['forward_ms']:7.2f} {fg} {r['backward_ms']:7.2f} {bg} "
                  f"{100 * r['share_of_step']:5.1f}%")
        accounted = sum(r["share_of_step"] for r in rows)
        print(f"layers account for {100 * accounted:.0f}% of the step; the rest is loss, Adam and glue")
        results[model.kind] = {"step_ms": 1e3 * step, "images_per_s": batch / step, "layers": rows}
    print(f"\nA whole step on {args.workers} workers, batch {args.batch_size} (ms; 'shards' is "
          f"forward, loss and backward on all workers and the gradients' sum, the rest runs on "
          f"the calling thread alone):")
    for kind in ("vae", "cvae"):
        phases = step_breakdown(kind, args.batch_size, args.workers, args.repeats)
        results[kind]["step_breakdown_ms"] = phases
        print(f"{kind.upper():4s} " + "  ".join(f"{k} {v:.2f}" for k, v in phases.items())
              + f"  ({args.batch_size / phases['step'] * 1e3:.0f} images/s)")
    results["load_after"] = os.getloadavg()
    write_json(args.out, results)


if __name__ == "__main__":
    main()
