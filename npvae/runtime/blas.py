"""How many threads NumPy's BLAS may use, set for the length of a ``with`` block.

npvae runs its own worker threads, one per core, each on a share of the batch (see
npvae/parallel.py). Each worker's matrix products must then run single-threaded: two
workers calling a 2-thread BLAS put four busy threads on two cores, and a training step
measured twice as slow. NumPy has no API for this, so, like threadpoolctl, we look for
the BLAS libraries loaded in this process and call their own setter.

Linux only (the libraries are found in /proc/self/maps); elsewhere, or with a BLAS we do
not know, :func:`blas_threads` does nothing and :func:`can_set_blas_threads` says so.
"""
import contextlib
import ctypes
import functools

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
