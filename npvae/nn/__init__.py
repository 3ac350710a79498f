"""Layers with explicit backward passes, in PyTorch's names and parameter shapes."""
from .activations import ReLU, Sigmoid, sigmoid
from .conditioned_conv import ConditionedConv2d
from .conv import Conv2d
from .conv_transpose import ConvTranspose2d
from .linear import Linear
from .module import Module, Parameter, Sequential, observe
from .reparameterize import POSTERIOR_LOGVAR_MAX, POSTERIOR_LOGVAR_MIN, Reparameterize, clamp_logvar
from .reshape import Flatten, Unflatten

__all__ = ["Module", "Parameter", "Sequential", "observe", "Linear", "Conv2d", "ConditionedConv2d", "ConvTranspose2d",
           "ReLU", "Sigmoid", "sigmoid", "Flatten", "Unflatten", "Reparameterize",
           "clamp_logvar", "POSTERIOR_LOGVAR_MIN", "POSTERIOR_LOGVAR_MAX"]
