"""Shared helpers of the benchmarks: machine description, robust timing, JSON output."""
import json
import os
import platform
import statistics
import time

import numba
import numpy as np


def machine():
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info
        info = [d for d in threadpool_info() if d.get("user_api") == "blas"]
        if info:
            blas = f"{info[0]['internal_api']} {info[0].get('version', '')} " \
                   f"({info[0].get('architecture', '?')}, {info[0]['num_threads']} threads)"
    except ImportError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas, "numba": numba.__version__}


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
