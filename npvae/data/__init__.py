"""Data sets (MNIST, Fashion-MNIST) as uint8 arrays, and float mini-batches."""

from .batches import minibatches, to_float
from .datasets import CLASS_NAMES, DATASETS, class_names, load_dataset, load_fashion_mnist, load_mnist
from .idx import DataError, read_idx

__all__ = ["read_idx", "DataError", "load_mnist", "load_fashion_mnist",
           "load_dataset", "DATASETS", "CLASS_NAMES", "class_names", "to_float", "minibatches"]
