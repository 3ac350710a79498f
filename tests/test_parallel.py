"""DataParallel gives the model's own results, and BLAS thread control restores what it changes."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npvae.runtime.blas import _controls, blas_threads, can_set_blas_threads
from npvae.losses import NegativeELBO
from npvae.models import CVAE, VAE
from npvae.runtime.parallel import DataParallel, replicate, shard_slices


@given(n=st.integers(1, 300), shards=st.integers(1, 8))
@settings(max_examples=200)
def test_shards_cover_the_batch_in_order_with_sizes_within_one(n, shards):
    slices = shard_slices(n, shards)
    assert len(slices) == min(n, shards)
    assert slices[0].start == 0 and slices[-1].stop == n
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    sizes = [s.stop - s.start for s in slices]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_a_replica_shares_parameter_arrays_but_not_gradients():
    model = VAE(rng=0)
    replica = replicate(model)
    for (name, p), (_, q) in zip(model.named_parameters(), replica.named_parameters()):
        assert q.data is p.data, name
        assert q.grad is not p.grad and not np.any(q.grad), name
    model.decoder[0].weight.data += 1.0          # an in-place update reaches the replica
    assert replica.decoder[0].weight.data is model.decoder[0].weight.data


def _batch(model, n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((n, 1, 28, 28)) < 0.2).astype(model.dtype)
    labels = rng.integers(0, 10, n)
    eps = rng.standard_normal((n, model.latent_dim)).astype(model.dtype)
    return x, labels, eps


def _gradients(runner, model, x, labels, eps):
    objective = NegativeELBO()
    logits, mu, logvar = runner.forward(x, eps, labels)
    objective.forward(logits, x, mu, logvar, 1.0)
    model.zero_grad()
    runner.backward(*objective.backward())
    return (logits, mu, logvar), {name: p.grad.copy() for name, p in model.named_parameters()}


@pytest.mark.parametrize("kind", [VAE, CVAE])
@pytest.mark.parametrize("n, workers", [(7, 2), (6, 3), (1, 2), (5, 1)])
def test_data_parallel_matches_the_model_in_float64(kind, n, workers):
    model = kind(rng=1).to(np.float64)
    x, labels, eps = _batch(model, n, seed=n)
    outputs, grads = _gradients(model, model, x, labels, eps)
    with DataParallel(model, workers) as parallel:
        outputs_p, grads_p = _gradients(parallel, model, x, labels, eps)
        np.testing.assert_allclose(parallel.decode_logits(outputs[1], labels),
                                   model.decode_logits(outputs[1], labels), rtol=1e-12, atol=1e-12)
        for a, b in zip(parallel.encode(x, labels), model.encode(x, labels)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(outputs_p, outputs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for name in grads:
        scale = np.abs(grads[name]).max() + 1e-30
        np.testing.assert_allclose(grads_p[name] / scale, grads[name] / scale, rtol=0, atol=1e-12,
                                   err_msg=name)


def test_data_parallel_is_deterministic_for_a_given_worker_count():
    model = VAE(rng=2)
    x, labels, eps = _batch(model, 64, seed=3)
    with DataParallel(model, 2) as parallel:
        first = _gradients(parallel, model, x, labels, eps)[1]
        second = _gradients(parallel, model, x, labels, eps)[1]
    for name in first:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)


def test_data_parallel_rejects_bad_use_clearly():
    model = VAE(rng=0)
    with pytest.raises(ValueError, match="workers must be at least 1"):
        DataParallel(model, 0)
    parallel = DataParallel(model, 2)
    with pytest.raises(RuntimeError, match="before forward"):
        parallel.backward(None, None, None)
    parallel.close()
    x, labels, eps = _batch(model, 4, seed=0)
    with pytest.raises(RuntimeError, match="after close"):
        parallel.forward(x, eps)
    with DataParallel(model, 2) as parallel, pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        parallel.forward(x[:, :, :27], eps)     # a worker's error reaches the caller as is


@pytest.mark.skipif(not can_set_blas_threads(), reason="this NumPy's BLAS has no known thread setter")
def test_blas_threads_sets_and_restores_the_count():
    # conftest.py already runs BLAS on one thread: start from two, so that a blas_threads that
    # did nothing would fail here.
    controls = _controls()
    for set_threads, _ in controls:
        set_threads(2)
    try:
        assert all(get() == 2 for _, get in controls)
        with blas_threads(1):
            assert all(get() == 1 for _, get in controls)
        assert all(get() == 2 for _, get in controls)
    finally:
        for set_threads, _ in controls:
            set_threads(1)


def test_without_a_settable_blas_training_uses_one_worker(monkeypatch):
    # Two workers each calling a multi-threaded BLAS oversubscribe the cores (measured 2x
    # slower than one worker), so the default falls back to one.
    import npvae.runtime.parallel as parallel_module
    monkeypatch.setattr(parallel_module, "can_set_blas_threads", lambda: False)
    assert parallel_module.default_workers() == 1
    monkeypatch.setattr(parallel_module, "can_set_blas_threads", lambda: True)
    assert parallel_module.default_workers() == parallel_module.available_cores()
