"""Observers on Module (npvae.nn.observe): the named sub-modules, and every layer reported
once per forward and backward, in order, then detached even when the block fails."""
import numpy as np
import pytest

from npvae.models import VAE
from npvae.nn import Linear, ReLU, Sequential, observe


def test_named_modules_read_like_the_parameter_names():
    names = [name for name, _ in VAE(rng=0).named_modules()]
    assert names[:3] == ["encoder", "encoder.0", "encoder.1"]
    assert {"fc_mu", "fc_logvar", "reparameterize", "decoder", "decoder.7"} <= set(names)
    parameter_layers = {name.rsplit(".", 1)[0] for name, _ in VAE(rng=0).named_parameters()}
    assert parameter_layers <= set(names)
    assert [name for name, _ in Sequential(ReLU(), Linear(2, 3, rng=0)).named_children()] == ["0", "1"]


def test_a_sequential_reports_each_layer_and_observers_are_detached_afterwards():
    net = Sequential(Linear(4, 5, rng=0), ReLU(inplace=True), Linear(5, 2, rng=1))
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    seen = []
    with observe(net, forward=lambda name, layer, shape, out: seen.append(("f", name, shape, out.shape)),
                 backward=lambda name, layer, grad: seen.append(("b", name, grad.shape))):
        y = net.forward(x)
        net.backward(np.ones_like(y))
    assert seen == [("f", "0", (3, 4), (3, 5)), ("f", "1", (3, 5), (3, 5)), ("f", "2", (3, 5), (3, 2)),
                    ("b", "2", (3, 5)), ("b", "1", (3, 5)), ("b", "0", (3, 4))]
    with pytest.raises(RuntimeError):
        with observe(net, forward=lambda *a: seen.append("again")):
            raise RuntimeError("inside the block")
    net.forward(x)
    assert seen[-1] != "again" and all(not layer.observers for layer in net)
