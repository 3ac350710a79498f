"""Turning a uint8 data set into float mini-batches."""

import operator

import numpy as np


def to_float(images, dtype=np.float32):
    """Scale uint8 images ``(B, H, W)`` or ``(B, 1, H, W)`` to ``(B, 1, H, W)`` in [0, 1].

    Meant to be called per batch: the data set stays uint8 in memory
    (47 MB for MNIST's training set instead of 376 MB as float64).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"to_float expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, H, W) or (B, 1, H, W), "
                         f"got {images.shape}")
    out = images.astype(dtype)
    # Division rather than multiplication by 1/255 maps 255 to exactly 1.0.
    out /= 255
    return out


def minibatches(n, batch_size, rng=None, shuffle=True):
    """Split ``range(n)`` into index arrays of length ``batch_size``.

    With ``shuffle=True`` each call draws a fresh permutation from ``rng``
    (a ``numpy.random.Generator``; a new unseeded one if None), so iterating
    once per epoch reshuffles every epoch. The last batch is smaller when
    ``batch_size`` does not divide ``n`` (PyTorch's ``drop_last=False``).
    The permutation is drawn when this is called, not on first iteration.
    """
    n = operator.index(n)
    batch_size = operator.index(batch_size)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if shuffle:
        order = (rng if rng is not None else np.random.default_rng()).permutation(n)
    else:
        order = np.arange(n)
    return (order[start:start + batch_size] for start in range(0, n, batch_size))
