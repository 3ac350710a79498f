"""How many threads NumPy's BLAS may use, set for the length of a ``with`` block.

npvae runs its own worker threads, one per core, each on a share of the batch (see
npvae/parallel.py). Each worker's matrix products must then run single-threaded: two
workers calling a 2-thread BLAS put four busy threads on two cores, and a training step
measured twice as slow. NumPy has no API for this, so, like threadpoolctl, we look for
the BLAS libraries loaded in this process and call their own setter.

Linux only (the libraries are found in /proc/self/maps); elsewhere, or with a BLAS we do
not know, :func:`blas_threads` does nothing and :func:`can_set_blas_threads` says so.

:func:`blas_info` and :func:`describe_blas` say which BLAS runs, with which kernel: OpenBLAS
picks one for the CPU when it loads, unless ``OPENBLAS_CORETYPE`` forces another, and an older
kernel than the CPU supports (Haswell's AVX2 on an AVX-512 CPU) runs matrix products at about
half speed. A slow epoch is easier to explain when the log says so.
"""
import contextlib
import ctypes
import functools
import os

# (setter, getter) symbol pairs: reference OpenBLAS, its 64-bit-integer builds, the
# scipy-openblas builds NumPy and SciPy wheels ship, and MKL's runtime library.
_SYMBOLS = [
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("MKL_Set_Num_Threads", "MKL_Get_Max_Threads"),
]


def _loaded_libraries():
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in p and ("openblas" in p.lower() or "mkl_rt" in p))


@functools.lru_cache(maxsize=None)
def _controls():
    """[(set_threads, get_threads)] for every BLAS loaded in this process (found once)."""
    import numpy  # noqa: F401  (importing NumPy loads its BLAS: it must be there to be found)
    controls = []
    for path in _loaded_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _SYMBOLS:
            if hasattr(library, setter) and hasattr(library, getter):
                set_threads, get_threads = getattr(library, setter), getattr(library, getter)
                set_threads.argtypes, set_threads.restype = [ctypes.c_int], None
                get_threads.argtypes, get_threads.restype = [], ctypes.c_int
                controls.append((set_threads, get_threads))
                break
    return controls


def can_set_blas_threads():
    """True when :func:`blas_threads` can actually change NumPy's BLAS thread count."""
    return bool(_controls())


@contextlib.contextmanager
def blas_threads(count):
    """Run the block with ``count`` BLAS threads, then restore the previous counts."""
    controls = _controls()
    previous = [get_threads() for _, get_threads in controls]
    for set_threads, _ in controls:
        set_threads(count)
    try:
        yield
    finally:
        for (set_threads, _), threads in zip(controls, previous):
            set_threads(threads)


# -- which BLAS, which kernel: printed by `npvae train`, recorded by every benchmark --------

# OpenBLAS's runtime-selected kernel ("core name") -> the widest vector ISA it uses.
_KERNEL_ISA = {
    "prescott": "sse3", "core2": "ssse3", "penryn": "sse4.1", "dunnington": "sse4.1",
    "nehalem": "sse4.2", "atom": "ssse3", "barcelona": "sse4a", "bobcat": "ssse3",
    "opteron": "sse2", "opteron_sse3": "sse3", "bulldozer": "avx", "piledriver": "avx",
    "steamroller": "avx", "excavator": "avx2", "sandybridge": "avx", "haswell": "avx2",
    "zen": "avx2", "skylakex": "avx512", "cooperlake": "avx512", "sapphirerapids": "avx512",
}
_ISA_ORDER = ("sse2", "sse3", "ssse3", "sse4a", "sse4.1", "sse4.2", "avx", "avx2", "avx512")


def cpu_isa():
    """The widest x86 vector ISA this CPU offers ('avx512', 'avx2', 'avx', ...), or None
    where /proc/cpuinfo says nothing (not Linux, not x86)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return None
    flags = set(flags)
    for isa, needs in (("avx512", {"avx512f", "avx512bw", "avx512vl"}), ("avx2", {"avx2", "fma"}),
                       ("avx", {"avx"}), ("sse4.2", {"sse4_2"}), ("sse4.1", {"sse4_1"}),
                       ("ssse3", {"ssse3"}), ("sse3", {"pni"}), ("sse2", {"sse2"})):
        if needs <= flags:
            return isa
    return None


def cpu_model():
    """The CPU's model name and vendor from /proc/cpuinfo (e.g. 'AMD EPYC', 'AuthenticAMD')."""
    model = vendor = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == "unknown":
                    model = value.strip()
                elif key.strip() == "vendor_id" and vendor == "unknown":
                    vendor = value.strip()
    except OSError:
        pass
    return model, vendor


def _text_function(library, names):
    for name in names:
        if hasattr(library, name):
            function = getattr(library, name)
            function.argtypes, function.restype = [], ctypes.c_char_p
            return function
    return None


@functools.lru_cache(maxsize=None)
def _blas_libraries():
    """[(path, get_config, get_corename, get_threads)] of the OpenBLAS builds loaded here."""
    import numpy  # noqa: F401  (loads NumPy's BLAS)
    found = []
    for path in _loaded_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        config = _text_function(library, ("openblas_get_config", "openblas_get_config64_",
                                           "scipy_openblas_get_config64_", "scipy_openblas_get_config"))
        corename = _text_function(library, ("openblas_get_corename", "openblas_get_corename64_",
                                            "scipy_openblas_get_corename64_",
                                            "scipy_openblas_get_corename"))
        threads = next((getattr(library, getter) for _, getter in _SYMBOLS if hasattr(library, getter)), None)
        if threads is not None:
            threads.argtypes, threads.restype = [], ctypes.c_int
        if config or corename or threads:
            found.append((path, config, corename, threads))
    return found


def blas_info():
    """What NumPy's BLAS is and does, as a dict for a run's config or a benchmark's results:
    library, version, kernel (the core type OpenBLAS picked at load time, e.g. 'Haswell'),
    kernel_isa and cpu_isa (what that kernel uses, what the CPU offers), threads,
    kernel_older_than_cpu, the OPENBLAS_* variables that steer the choice, and the CPU."""
    model, vendor = cpu_model()
    info = {"cpu": model, "cpu_vendor": vendor, "library": None, "version": None, "kernel": None, "kernel_isa": None,
            "cpu_isa": cpu_isa(), "threads": None, "kernel_older_than_cpu": False,
            "environment": {k: v for k, v in os.environ.items()
                            if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS",
                                     "OMP_NUM_THREADS", "OPENBLAS_VERBOSE")}}
    libraries = _blas_libraries()
    if not libraries:
        paths = _loaded_libraries()
        info["library"] = os.path.basename(paths[0]) if paths else None
        return info
    path, config, corename, threads = libraries[0]
    info["library"] = os.path.basename(path)
    if config is not None:
        words = (config() or b"").decode(errors="replace").split()
        info["version"] = " ".join(words[:2]) if words else None
    if corename is not None:
        info["kernel"] = (corename() or b"").decode(errors="replace").strip() or None
    if threads is not None:
        info["threads"] = int(threads())
    if info["kernel"]:
        info["kernel_isa"] = _KERNEL_ISA.get(info["kernel"].lower())
    if info["kernel_isa"] in _ISA_ORDER and info["cpu_isa"] in _ISA_ORDER:
        info["kernel_older_than_cpu"] = _ISA_ORDER.index(info["kernel_isa"]) < _ISA_ORDER.index(info["cpu_isa"])
    return info


def describe_blas(info=None):
    """One line for a log (two where the kernel is older than the CPU), e.g.
    'BLAS: OpenBLAS 0.3.31.188.0 (libscipy_openblas64_...so), kernel Haswell (avx2), 2 threads'."""
    info = blas_info() if info is None else info
    isa = f" ({info['kernel_isa']})" if info["kernel_isa"] else ""
    where = f" ({info['library']})" if info["version"] and info["library"] else ""
    line = (f"BLAS: {info['version'] or info['library'] or 'unknown'}{where}, "
            f"kernel {info['kernel'] or 'unknown'}{isa}, {info['threads'] or '?'} threads")
    if info["kernel_older_than_cpu"]:
        steer = ", ".join(f"{k}={v}" for k, v in info["environment"].items() if k.startswith("OPENBLAS_"))
        line += (f"\nnote: this CPU supports {info['cpu_isa'].upper()} but OpenBLAS runs its older "
                 f"{info['kernel']} kernel ({info['kernel_isa'].upper()}), so matrix products may run "
                 f"up to 2x slower" + (f"; the environment sets {steer}" if steer else ""))
    return line
