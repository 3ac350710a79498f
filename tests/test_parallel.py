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


# -- training's path: forward, loss and backward of each shard in one round trip --------

@pytest.mark.parametrize("kind", [VAE, CVAE])
@pytest.mark.parametrize("n, workers", [(128, 2), (96, 2), (7, 2), (6, 3), (1, 2), (5, 1)])
def test_loss_and_backward_gives_the_split_path_bit_for_bit(kind, n, workers):
    # Each shard's loss divides by the whole batch's size, so its gradient is exactly its
    # rows of the whole batch's, and the per-image terms are row by row the same numbers.
    model = kind(rng=4)
    x, labels, eps = _batch(model, n, seed=n + 1)
    with DataParallel(model, workers) as parallel:
        objective = NegativeELBO()
        logits, mu, logvar = parallel.forward(x, eps, labels)
        objective.forward(logits, x, mu, logvar, 0.7)
        model.zero_grad()
        parallel.backward(*objective.backward())
        split = {name: p.grad.copy() for name, p in model.named_parameters()}
        model.zero_grad()
        recon, kl = parallel.loss_and_backward(x, eps, labels, 0.7)
    np.testing.assert_array_equal(recon, objective.recon_per_image)
    np.testing.assert_array_equal(kl, objective.kl_per_image)
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.grad, split[name], err_msg=name)


def test_loss_and_backward_of_a_learned_gaussian_decoder_sums_the_variance_gradient():
    # The per-pixel log-variance's gradient is a sum over images: per shard, then over the
    # shards, so it agrees with the whole batch's to rounding (float64 here).
    model = VAE(rng=5, likelihood="gaussian", variance="learned").to(np.float64)
    x, labels, eps = _batch(model, 9, seed=2)
    model.zero_grad()
    recon, kl = model.loss_and_backward(x, eps, labels, 1.0)
    whole = {name: p.grad.copy() for name, p in model.named_parameters()}
    assert np.any(whole["pixel_logvar"])
    with DataParallel(model, 2) as parallel:
        model.zero_grad()
        recon_p, kl_p = parallel.loss_and_backward(x, eps, labels, 1.0)
    np.testing.assert_array_equal(recon_p, recon)
    np.testing.assert_array_equal(kl_p, kl)
    for name, p in model.named_parameters():
        scale = np.abs(whole[name]).max() + 1e-30
        np.testing.assert_allclose(p.grad / scale, whole[name] / scale, rtol=0, atol=1e-12, err_msg=name)


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


# -- defect 2: replicas never compute with stale weights ------------------------------

@pytest.mark.parametrize("kind", [VAE, CVAE])
def test_data_parallel_sees_weights_loaded_after_it_was_built(kind):
    model, other = kind(rng=0), kind(rng=7)
    x, labels, _ = _batch(model, 6, seed=1)
    with DataParallel(model, 2) as parallel:
        parallel.encode(x, labels)                       # replicas built and used
        model.load_state_dict(other.state_dict())
        # Shards of 3 images round differently from a batch of 6: equal to float32 rounding
        # (stale weights differ by far more than that).
        for a, b in zip(parallel.encode(x, labels), model.encode(x, labels)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(model.encode(x, labels), other.encode(x, labels)):
            np.testing.assert_array_equal(a, b)
        z = model.encode(x, labels)[0]
        np.testing.assert_allclose(parallel.decode_logits(z, labels), model.decode_logits(z, labels),
                                   rtol=1e-5, atol=1e-5)


def test_load_state_dict_copies_into_the_existing_arrays():
    model, other = VAE(rng=0), VAE(rng=3)
    arrays = [p.data for p in model.parameters()]
    model.load_state_dict(other.state_dict())
    for array, p, q in zip(arrays, model.parameters(), other.parameters()):
        assert p.data is array
        np.testing.assert_array_equal(p.data, q.data)


def test_data_parallel_rebuilds_replicas_after_model_to_dtype():
    model = VAE(rng=0)
    x, labels, eps = _batch(model, 6, seed=2)
    with DataParallel(model, 2) as parallel:
        parallel.encode(x, labels)
        model.to(np.float64)                             # new parameter arrays
        x64, eps64 = x.astype(np.float64), eps.astype(np.float64)
        for a, b in zip(parallel.encode(x64, labels), model.encode(x64, labels)):
            assert a.dtype == np.float64
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        outputs, grads = _gradients(model, model, x64, labels, eps64)
        outputs_p, grads_p = _gradients(parallel, model, x64, labels, eps64)
    for a, b in zip(outputs_p, outputs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for name in grads:
        scale = np.abs(grads[name]).max() + 1e-30
        np.testing.assert_allclose(grads_p[name] / scale, grads[name] / scale, rtol=0, atol=1e-12,
                                   err_msg=name)


# -- which BLAS kernel runs --------------------------------------------------------------

def test_blas_info_names_the_kernel_threadpoolctl_sees():
    from npvae.runtime.blas import blas_info, describe_blas
    info = blas_info()
    line = describe_blas(info)
    assert line.startswith("BLAS: ")
    threadpoolctl = pytest.importorskip("threadpoolctl")
    openblas = [d for d in threadpoolctl.threadpool_info() if d.get("internal_api") == "openblas"]
    if not openblas:
        pytest.skip("NumPy's BLAS is not OpenBLAS")
    assert info["kernel"].lower() == openblas[0]["architecture"].lower()
    assert info["threads"] == openblas[0]["num_threads"]
    assert f"kernel {info['kernel']}" in line and ("note:" in line) == info["kernel_older_than_cpu"]


def test_describe_blas_says_when_the_kernel_is_older_than_the_cpu():
    from npvae.runtime.blas import describe_blas
    info = {"library": "libopenblas.so", "version": "OpenBLAS 0.3.31", "kernel": "Haswell",
            "kernel_isa": "avx2", "cpu_isa": "avx512", "threads": 2, "kernel_older_than_cpu": True,
            "environment": {"OPENBLAS_CORETYPE": "Haswell"}}
    first, note = describe_blas(info).split("\n")
    assert first == "BLAS: OpenBLAS 0.3.31 (libopenblas.so), kernel Haswell (avx2), 2 threads"
    assert "AVX512" in note and "Haswell" in note and "OPENBLAS_CORETYPE=Haswell" in note
    assert "\n" not in describe_blas(dict(info, cpu_isa="avx2", kernel_older_than_cpu=False))
