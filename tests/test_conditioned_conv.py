"""ConditionedConv2d is Conv2d on [image; constant planes], computed another way."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.nn import ConditionedConv2d, Conv2d


def _pair_of_layers(image_channels, condition_channels, out_channels, kernel, stride, padding, seed):
    fast = ConditionedConv2d(image_channels, condition_channels, out_channels, kernel, stride, padding,
                             rng=seed, dtype=np.float64)
    plain = Conv2d(image_channels + condition_channels, out_channels, kernel, stride, padding,
                   rng=seed, dtype=np.float64)
    plain.requires_input_grad = False
    return fast, plain


@given(image_channels=st.integers(1, 3), condition_channels=st.integers(1, 4),
       out_channels=st.integers(1, 5), kernel=st.integers(1, 5), stride=st.integers(1, 3),
       padding=st.integers(0, 2), size=st.integers(5, 12), batch=st.integers(1, 4),
       soft=st.booleans(), seed=st.integers(0, 2**16))
@settings(max_examples=50, deadline=None)
def test_matches_conv2d_on_the_concatenated_input(image_channels, condition_channels, out_channels,
                                                  kernel, stride, padding, size, batch, soft, seed):
    padding = min(padding, kernel - 1)
    fast, plain = _pair_of_layers(image_channels, condition_channels, out_channels, kernel, stride,
                                  padding, seed)
    assert fast.weight.shape == plain.weight.shape
    np.testing.assert_array_equal(fast.weight.data, plain.weight.data)   # same initialisation
    rng = np.random.default_rng(seed)
    conditions = rng.random((batch, condition_channels)) if soft else \
        np.eye(condition_channels)[rng.integers(0, condition_channels, batch)]
    planes = np.broadcast_to(conditions[:, :, None, None], (batch, condition_channels, size, size))
    x = np.concatenate([rng.standard_normal((batch, image_channels, size, size)), planes], axis=1)
    y_fast, y_plain = fast.forward(x), plain.forward(x)
    np.testing.assert_allclose(y_fast, y_plain, rtol=1e-12, atol=1e-12)
    grad = rng.standard_normal(y_plain.shape)
    assert fast.backward(grad.copy()) is None
    plain.backward(grad.copy())
    np.testing.assert_allclose(fast.weight.grad, plain.weight.grad, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(fast.bias.grad, plain.bias.grad, rtol=1e-11, atol=1e-11)


def test_planes_that_are_not_constant_are_refused():
    layer = ConditionedConv2d(1, 2, 4, 3, 1, 1, rng=0)
    x = np.zeros((2, 3, 6, 6), np.float32)
    x[1, 2, 3, 3] = 1.0
    with pytest.raises(ValueError, match="constant over every image"):
        layer.forward(x)
    with pytest.raises(ValueError, match=r"expected input \(N, 3, H, W\)"):
        layer.forward(np.zeros((2, 4, 6, 6), np.float32))


def test_forward_conditioned_is_forward_without_the_planes():
    layer = ConditionedConv2d(1, 10, 8, 4, 2, 1, rng=3, dtype=np.float64)
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 1, 12, 12))
    conditions = np.eye(10)[[2, 7, 7]]
    planes = np.broadcast_to(conditions[:, :, None, None], (3, 10, 12, 12))
    grad = rng.standard_normal((3, 8, 6, 6))
    results = []
    for run in (lambda: layer.forward(np.concatenate([image, planes], axis=1)),
                lambda: layer.forward_conditioned(image, conditions)):
        layer.zero_grad()
        y = run()
        layer.backward(grad.copy())
        results.append((y.copy(), layer.weight.grad.copy(), layer.bias.grad.copy()))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"conditions \(N, 10\)"):
        layer.forward_conditioned(image, conditions[:2])
