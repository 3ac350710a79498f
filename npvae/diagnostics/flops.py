"""The architecture table of ``npvae inspect``: each layer's name, shapes, parameters and cost."""
import math
from dataclasses import dataclass, field

import numpy as np

from ..models.architecture import IMAGE_SHAPE
from ..nn import Conv2d, ConvTranspose2d, Flatten, Linear, ReLU, Reparameterize, Sigmoid, Unflatten, observe


def forward_flops(layer, input_shape, output_shape):
    """FLOPs of one image's forward pass through ``layer``.

    Convention: 2 per multiply-add of a GEMM (the convolutions' im2col/col2im copies
    and scatters are not counted), 1 per bias add and per element of an elementwise
    layer (ReLU, sigmoid), 4 per latent dimension for z = mu + exp(logvar/2) * eps,
    0 for reshapes and concatenations.
    """
    per_image_out = math.prod(output_shape[1:])
    if isinstance(layer, Linear):
        return 2 * layer.in_features * layer.out_features + (layer.out_features if layer.bias else 0)
    if isinstance(layer, Conv2d):
        kh, kw = layer.kernel_size
        macs = per_image_out * layer.in_channels * kh * kw
        return 2 * macs + (per_image_out if layer.bias else 0)
    if isinstance(layer, ConvTranspose2d):
        kh, kw = layer.kernel_size
        macs = math.prod(input_shape[2:]) * layer.in_channels * layer.out_channels * kh * kw
        return 2 * macs + (per_image_out if layer.bias else 0)
    if isinstance(layer, (ReLU, Sigmoid)):
        return per_image_out
    if isinstance(layer, Reparameterize):
        return 4 * per_image_out
    return 0


def _hw(pair):
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def layer_type(layer):
    """A short description: ``Conv2d 1->32 k4 s2 p1``, ``Linear 2048->2``, ``ReLU``..."""
    kind = type(layer).__name__
    if isinstance(layer, (Conv2d, ConvTranspose2d)):
        text = (f"{kind} {layer.in_channels}->{layer.out_channels} k{_hw(layer.kernel_size)} "
                f"s{_hw(layer.stride)} p{_hw(layer.padding)}")
        if isinstance(layer, ConvTranspose2d) and any(layer.output_padding):
            text += f" op{_hw(layer.output_padding)}"
        return text
    if isinstance(layer, Linear):
        return f"Linear {layer.in_features}->{layer.out_features}"
    if isinstance(layer, ReLU):
        return "ReLU (in place)" if layer.inplace else "ReLU"
    if isinstance(layer, Unflatten):
        return f"Unflatten -> {'x'.join(map(str, layer.shape))}"
    if isinstance(layer, Flatten):
        return "Flatten"
    if isinstance(layer, Reparameterize):
        return "Reparameterize mu + sigma*eps"
    return kind


@dataclass
class LayerRecord:
    """One layer of the table: its architecture, then what one batch did in it."""
    name: str
    type: str
    repr: str
    input_shape: tuple
    output_shape: tuple
    params: int
    mflop: float
    activation: dict = field(default_factory=dict)
    grad_input_norm: float | None = None
    grad_param_norms: dict = field(default_factory=dict)

    def to_json(self):
        return {"name": self.name, "type": self.type, "repr": self.repr, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "params": self.params,
                "mflop": self.mflop, "activation": self.activation,
                "grad_input_norm": self.grad_input_norm, "grad_param_norms": self.grad_param_norms}


def describe(model):
    """The layer table of a VAE or CVAE: one LayerRecord per layer in the order the model's
    own forward runs them (shapes per image, from a 1-image pass), then the sigmoid the
    loss fuses in. The parameters and gradients are left as they were."""
    x = np.zeros((1, *IMAGE_SHAPE), dtype=model.dtype)
    eps = np.zeros((1, model.latent_dim), dtype=model.dtype)
    labels = np.zeros(1, dtype=np.int64) if model.kind == "cvae" else None
    records = []

    def visit(name, layer, input_shape, output):
        params = sum(p.data.size for _, p in layer.named_parameters())
        records.append(LayerRecord(name, layer_type(layer), repr(layer), tuple(input_shape[1:]),
                                   tuple(output.shape[1:]), params,
                                   forward_flops(layer, input_shape, output.shape) / 1e6))

    with observe(model, forward=visit):
        logits, _, _ = model.forward(x, eps, labels)
    records.append(LayerRecord("sigmoid", "Sigmoid (fused into the loss)", "Sigmoid()",
                               tuple(logits.shape[1:]), tuple(logits.shape[1:]), 0,
                               math.prod(logits.shape[1:]) / 1e6))
    return records
