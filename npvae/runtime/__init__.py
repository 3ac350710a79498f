"""Running on the CPU: BLAS thread control and data parallelism over the cores."""
from .blas import blas_threads, can_set_blas_threads
from .parallel import DataParallel, available_cores, default_workers, shard_slices

__all__ = ["blas_threads", "can_set_blas_threads", "DataParallel", "available_cores",
           "default_workers", "shard_slices"]
