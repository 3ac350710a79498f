"""PyTorch's default initialisation, so a layer starts where the framework's would.

``nn.Linear``, ``nn.Conv2d`` and ``nn.ConvTranspose2d`` all draw the weight from
kaiming_uniform(a=sqrt(5)), which works out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
the bias from the same interval. fan_in is ``weight.shape[1] * prod(kernel)``: for a
transposed convolution (weight ``(C_in, C_out, kH, kW)``) that is ``C_out * kH * kW``.
"""
import math

import numpy as np


def default_rng(rng):
    """Accept a Generator, a seed or None (fresh entropy)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def fan_in(weight_shape):
    receptive_field = math.prod(weight_shape[2:]) if len(weight_shape) > 2 else 1
    return weight_shape[1] * receptive_field


def uniform_fan_in(shape, fan, rng, dtype):
    bound = 1.0 / math.sqrt(fan) if fan > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
