"""The linear probe's loss: softmax cross-entropy from logits, its hand-written gradient
(softmax - onehot) / N checked against finite differences in float64."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npvae.gradcheck import finite_difference_check
from npvae.losses import SoftmaxCrossEntropy, log_softmax, softmax_cross_entropy

seeds = st.integers(0, 2**32 - 1)


def direct_cross_entropy(logits, labels):
    """-log(exp(a_y) / sum_k exp(a_k)) from the definition, in float64 (moderate logits only)."""
    e = np.exp(logits.astype(np.float64))
    return -np.log(e[np.arange(len(labels)), labels] / e.sum(axis=1))


def test_hand_computed():
    # two classes, logits (0, log 3): p = (1/4, 3/4)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(np.array([[0.0, math.log(3)], [0.0, math.log(3)]]), np.array([0, 1]))
    assert value == pytest.approx((math.log(4) + math.log(4 / 3)) / 2)
    np.testing.assert_allclose(loss.backward(), [[(0.25 - 1) / 2, 0.75 / 2], [0.25 / 2, (0.75 - 1) / 2]])


@given(st.integers(1, 6), st.integers(2, 7), st.sampled_from([np.float32, np.float64]), seeds)
def test_matches_the_definition_and_its_gradient_rows_sum_to_zero(n, classes, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((n, classes))).astype(dtype)
    labels = rng.integers(0, classes, n)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(loss.per_row, direct_cross_entropy(logits, labels), rtol=rtol, atol=rtol)
    assert value == pytest.approx(loss.per_row.mean())
    np.testing.assert_allclose(softmax_cross_entropy(logits, labels), loss.per_row, rtol=rtol, atol=rtol)
    grad = loss.backward()
    assert grad.dtype == dtype and grad.shape == logits.shape
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)
    # the label's entry is the only negative one: p_y - 1 < 0 < p_k
    assert np.all(grad[np.arange(n), labels] <= 0)


@given(st.integers(1, 5), st.integers(2, 6), seeds)
def test_gradient_check(n, classes, seed):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.standard_normal((n, classes))
    labels = rng.integers(0, classes, n)
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    analytic = loss.backward().copy()
    results = finite_difference_check(lambda: loss.forward(logits, labels), {"logits": logits},
                                      {"logits": analytic})
    assert results[0].checked == logits.size
    assert results[0].error < 1e-6, results


def test_stable_at_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 1e4]], dtype=np.float32)
    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, np.array([1, 0]))
    assert np.isfinite(value) and np.all(np.isfinite(loss.backward()))
    assert loss.per_row[0] == pytest.approx(2000.0) and loss.per_row[1] == pytest.approx(2e4 + math.log(2))
    np.testing.assert_allclose(np.exp(log_softmax(logits)).sum(axis=1), 1, rtol=1e-6)


def test_upstream_gradient_scales():
    logits, labels = np.array([[0.5, -0.5, 2.0]]), np.array([2])
    loss = SoftmaxCrossEntropy()
    loss.forward(logits, labels)
    np.testing.assert_allclose(loss.backward(3.0), 3 * loss.backward())


@pytest.mark.parametrize("logits, labels, error, match", [
    (np.zeros((2, 3)), np.array([0, 3]), ValueError, "labels must be in 0..2"),
    (np.zeros((2, 3)), np.array([0, -1]), ValueError, "labels must be in 0..2"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError, "integers"),
    (np.zeros((2, 3)), np.array([0]), ValueError, "expected logits"),
    (np.zeros(3), np.array([0]), ValueError, "expected logits"),
    (np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError, "empty"),
])
def test_errors(logits, labels, error, match):
    with pytest.raises(error, match=match):
        SoftmaxCrossEntropy().forward(logits, labels)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        SoftmaxCrossEntropy().backward()
