"""Shared helpers of the benchmarks: machine and BLAS description, the compute floor, timing, JSON."""
import json
import os
import platform
import statistics
import time
import types

import numba
import numpy as np


def npvae_api():
    """The npvae names the benchmarks use, as one namespace; imported only when called, so a
    PyTorch-only benchmark process never loads npvae (or Numba)."""
    from npvae import data, losses, models, nn, optim, runtime, training
    from npvae.runtime import blas
    return types.SimpleNamespace(
        load_dataset=data.load_dataset, minibatches=data.minibatches, to_float=data.to_float,
        NegativeELBO=losses.NegativeELBO, VAE=models.VAE, CVAE=models.CVAE,
        Conv2d=nn.Conv2d, ConvTranspose2d=nn.ConvTranspose2d, Linear=nn.Linear, sigmoid=nn.sigmoid,
        Adam=optim.Adam, DataParallel=runtime.DataParallel, blas_threads=runtime.blas_threads,
        default_workers=runtime.default_workers, blas_info=blas.blas_info, train_step=training.train_step)


def blas_info():
    """NumPy's BLAS in this process: library, version, kernel (OpenBLAS core name), threads."""
    info = npvae_api().blas_info()
    try:
        from threadpoolctl import threadpool_info
        blas = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        if blas:
            info["threadpoolctl_architecture"] = blas[0].get("architecture")
    except ImportError:
        pass
    return info


def torch_info():
    import torch
    return {"version": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn": torch.backends.mkldnn.is_available()}


def machine():
    cpu = platform.processor() or "unknown"
    vendor, family, model = "unknown", None, None
    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = (part.strip() for part in line.partition(":"))
                if key == "model name" and cpu in ("unknown", platform.processor()):
                    cpu = value
                elif key == "vendor_id":
                    vendor = value
                elif key == "cpu family" and family is None:
                    family = int(value)
                elif key == "model" and model is None:
                    model = int(value)
                elif key == "flags" and not flags:
                    flags = value.split()
    except OSError:
        pass
    isa = [f for f in ("avx512f", "avx2", "fma", "avx") if f in flags]
    info = blas_info()
    return {"cpu": cpu, "vendor": vendor, "family": family, "model": model, "isa": isa,
            "cores": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "blas": f"{info['version']} ({info['kernel']}, {info['threads']} threads)"}


def gemm_shapes(kind, batch=128):
    """[(M, K, N, name)] of every matrix product in one training step of the paper's model at
    ``batch`` images, as npvae computes them (the CVAE's first layer as its 1 image channel;
    its label planes cost a (N, 10) x (10, 6272) product)."""
    api = npvae_api()
    model = (api.VAE if kind == "vae" else api.CVAE)(rng=0)
    shapes = []
    x_shape = (batch, 1, 28, 28)
    for i, layer in enumerate(model.encoder):
        if isinstance(layer, api.Conv2d):
            _, c_out, oh, ow = layer.output_shape(x_shape)
            m, k = batch * oh * ow, x_shape[1] * int(np.prod(layer.kernel_size))
            if hasattr(layer, "image_channels"):
                k = layer.image_channels * int(np.prod(layer.kernel_size))
            shapes += [(m, k, c_out, f"encoder.{i} fwd"), (c_out, m, k, f"encoder.{i} dW")]
            if i > 0:
                shapes.append((m, c_out, k, f"encoder.{i} dX"))
            x_shape = (batch, c_out, oh, ow)
    features = int(np.prod(x_shape[1:]))
    for name in ("fc_mu", "fc_logvar"):
        out = getattr(model, name).out_features
        shapes += [(batch, features, out, f"{name} fwd"), (out, batch, features, f"{name} dW"),
                   (batch, out, features, f"{name} dX")]
    for i, layer in enumerate(model.decoder):
        if isinstance(layer, api.Linear):
            a, b = layer.in_features, layer.out_features
            shapes += [(batch, a, b, f"decoder.{i} fwd"), (b, batch, a, f"decoder.{i} dW"),
                       (batch, b, a, f"decoder.{i} dX")]
            x_shape = (batch, 128, 4, 4)
        elif isinstance(layer, api.ConvTranspose2d):
            _, c_out, oh, ow = layer.output_shape(x_shape)
            m, c_in, k = batch * x_shape[2] * x_shape[3], layer.in_channels, c_out * int(np.prod(layer.kernel_size))
            shapes += [(m, c_in, k, f"decoder.{i} fwd"), (c_in, m, k, f"decoder.{i} dW"),
                       (m, k, c_in, f"decoder.{i} dX")]
            x_shape = (batch, c_out, oh, ow)
    return shapes


def _gemm_rate(shapes, repeats):
    """(FLOPs, best seconds) of running every product in ``shapes`` once; best of ``repeats``."""
    rng = np.random.default_rng(0)
    flops = seconds = 0.0
    for m, k, n, _ in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), np.float32)
        np.matmul(a, b, out=out)
        _, times = median_seconds(lambda: np.matmul(a, b, out=out), repeats)
        flops += 2.0 * m * k * n
        seconds += min(times)
    return flops, seconds


def decoder_floor(kind, batch=1000, repeats=5):
    """As :func:`compute_floor`, for decoding alone (IWAE's work): the decoder's forward
    products at ``batch`` latents, in decoded z per second."""
    def shapes(b):
        return [s for s in gemm_shapes(kind, b) if s[3].startswith("decoder.") and s[3].endswith("fwd")]
    return _floor(shapes, batch, repeats, per="z")


def compute_floor(kind, batch=128, repeats=7):
    """Images/s if every matrix product of a training step ran at the sgemm rate this machine
    reaches on those very shapes, and nothing else took any time.

    The rate is measured two ways on all cores, and the higher one is the floor: one BLAS
    call with a thread per core at ``batch`` images, and (as npvae's workers run) one
    single-threaded BLAS per core, each on its share of the batch, side by side. Each product
    is timed best-of-``repeats``: a floor is what the machine can do, not what it did once."""
    return _floor(lambda b: gemm_shapes(kind, b), batch, repeats, per="image")


def _floor(shapes, batch, repeats, per):
    from concurrent.futures import ThreadPoolExecutor
    api = npvae_api()
    cores = len(os.sched_getaffinity(0))
    with api.blas_threads(cores):
        flops, seconds = _gemm_rate(shapes(batch), repeats)
    threaded = flops / seconds / 1e9
    shard = shapes(batch // cores)
    with api.blas_threads(1), ThreadPoolExecutor(cores) as pool:
        results = list(pool.map(lambda _: _gemm_rate(shard, repeats), range(cores)))
    per_worker = sum(f / s for f, s in results) / 1e9
    gflops = max(threaded, per_worker)
    flop_per_item = flops / batch
    return {f"mflop_per_{per}": flop_per_item / 1e6, "gflops": gflops, "threads": cores,
            "gflops_one_blas_call_all_threads": threaded, "gflops_one_thread_per_core": per_worker,
            f"{'images' if per == 'image' else 'z'}_per_s": gflops * 1e9 / flop_per_item, "batch": batch}


def median_seconds(fn, repeats, inner=1):
    """Median over ``repeats`` of the time of ``inner`` calls, divided by ``inner``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - start) / inner)
    return statistics.median(times), times


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)
    print(f"written {path}")
