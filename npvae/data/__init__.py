"""Data sets (MNIST, Fashion-MNIST, or your own by path) as uint8 arrays, and float mini-batches."""

from .batches import minibatches, to_float
from .custom import UNLABELLED, describe_source, has_labels, load_custom
from .datasets import (CLASS_NAMES, DATASETS, class_names, count_classes, dataset_label, dataset_name,
                       dataset_source, load_dataset, load_fashion_mnist, load_mnist)
from .idx import DataError, read_idx

__all__ = ["read_idx", "DataError", "load_mnist", "load_fashion_mnist",
           "load_dataset", "DATASETS", "CLASS_NAMES", "class_names", "to_float", "minibatches",
           "UNLABELLED", "describe_source", "has_labels", "load_custom", "count_classes",
           "dataset_name", "dataset_label", "dataset_source"]
