"""Adam against a line-by-line transcription of torch.optim.Adam's update, its bias
correction, and checkpoint/resume through its state dict."""
import math

import numpy as np
import pytest

from npvae.nn import Parameter
from npvae.optim import Adam

SHAPES = [(3, 4), (5,), (2, 3, 2, 2)]


class TorchAdamReference:
    """torch.optim.Adam, single-tensor path (``_single_tensor_adam``; weight_decay=0,
    amsgrad=False, maximize=False), transcribed to NumPy:

        step_t += 1
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        param.addcdiv_(exp_avg, denom, value=-step_size)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.params = params
        self.lr, self.betas, self.eps = lr, betas, eps
        self.step_t = 0
        self.exp_avg = [np.zeros_like(p) for p in params]
        self.exp_avg_sq = [np.zeros_like(p) for p in params]

    def step(self, grads):
        beta1, beta2 = self.betas
        self.step_t += 1
        for param, grad, exp_avg, exp_avg_sq in zip(self.params, grads, self.exp_avg,
                                                    self.exp_avg_sq):
            exp_avg[...] = lerp(exp_avg, grad, 1 - beta1)
            exp_avg_sq *= beta2
            exp_avg_sq += (1 - beta2) * grad * grad
            bias_correction1 = 1 - beta1 ** self.step_t
            bias_correction2 = 1 - beta2 ** self.step_t
            step_size = self.lr / bias_correction1
            denom = np.sqrt(exp_avg_sq) / math.sqrt(bias_correction2) + self.eps
            param -= step_size * exp_avg / denom


def lerp(start, end, weight):
    """torch.lerp as its CPU kernel computes it (two forms, for accuracy near each end)."""
    diff = end - start
    return start + weight * diff if weight < 0.5 else end - diff * (1 - weight)


def make_params(rng, dtype=np.float64):
    return [Parameter(rng.standard_normal(shape).astype(dtype)) for shape in SHAPES]


@pytest.mark.parametrize("hyper", [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
                                   dict(lr=0.1, betas=(0.0, 0.5), eps=1e-3)])
def test_adam_matches_torch_update(hyper):
    rng = np.random.default_rng(0)
    params = make_params(rng)
    reference_params = [p.data.copy() for p in params]
    adam, reference = Adam(params, **hyper), TorchAdamReference(reference_params, **hyper)
    for _ in range(12):
        # Gradients of wildly different scales, including exact zeros.
        grads = [rng.standard_normal(p.shape) * 10.0 ** rng.integers(-4, 3) for p in params]
        grads[0].reshape(-1)[0] = 0.0
        for p, g in zip(params, grads):
            p.grad[...] = g
        adam.step()
        reference.step(grads)
        for p, ref in zip(params, reference_params):
            np.testing.assert_allclose(p.data, ref, rtol=1e-12, atol=1e-15)
    assert adam.step_count == 12
    # The moments: equal up to the rounding of b1*m + (1-b1)*g versus torch's lerp, which
    # can cancel when the gradient's scale jumps between steps.
    for m, v, ref_m, ref_v in zip(adam.m, adam.v, reference.exp_avg, reference.exp_avg_sq):
        np.testing.assert_allclose(m, ref_m, rtol=1e-12, atol=1e-14 * np.abs(ref_m).max())
        np.testing.assert_allclose(v, ref_v, rtol=1e-12, atol=1e-14 * np.abs(ref_v).max())


def test_adam_float32_stays_float32_and_tracks_the_reference():
    rng = np.random.default_rng(1)
    params = make_params(rng, np.float32)
    reference_params = [p.data.astype(np.float64) for p in params]
    adam, reference = Adam(params, lr=1e-2), TorchAdamReference(reference_params, lr=1e-2)
    for _ in range(5):
        grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
        for p, g in zip(params, grads):
            p.grad[...] = g
        adam.step()
        reference.step([g.astype(np.float64) for g in grads])
    for p, ref, m in zip(params, reference_params, adam.m):
        assert p.data.dtype == m.dtype == np.float32
        np.testing.assert_allclose(p.data, ref, rtol=1e-5, atol=1e-6)


def test_first_step_is_bias_corrected():
    """At step 1, m = (1-b1) g and v = (1-b2) g^2; bias correction cancels both factors,
    so each entry moves by lr * g / (|g| + eps) ~ lr against the sign of g. Without the
    correction it would move by lr * (1-b1)/sqrt(1-b2) ~ 3.16 lr."""
    rng = np.random.default_rng(2)
    g = rng.choice([-1.0, 1.0], size=(4, 5)) * rng.uniform(0.1, 10.0, size=(4, 5))
    p = Parameter(rng.standard_normal((4, 5)))
    start = p.data.copy()
    p.grad[...] = g
    Adam([p], lr=1e-3).step()
    delta = p.data - start
    np.testing.assert_allclose(np.abs(delta), 1e-3, rtol=1e-6)
    np.testing.assert_array_equal(np.sign(delta), -np.sign(g))


def test_zero_gradient_leaves_fresh_parameters_unchanged():
    p = Parameter(np.arange(6.0))
    Adam([p]).step()
    np.testing.assert_array_equal(p.data, np.arange(6.0))


def test_step_updates_parameters_in_place_and_zero_grad_clears():
    p = Parameter(np.ones((2, 2)))
    data = p.data
    p.grad += 1
    adam = Adam([p])
    adam.step()
    assert p.data is data and (data < 1).all()
    adam.zero_grad()
    assert not p.grad.any()


def quadratic_grads(params, targets):
    """Gradient of sum ||p - t||^2 / 2 + sum p^3 / 3: depends on the trajectory so far."""
    return [p.data - t + p.data ** 2 for p, t in zip(params, targets)]


def run(params, adam, targets, steps):
    for _ in range(steps):
        for p, g in zip(params, quadratic_grads(params, targets)):
            p.grad[...] = g
        adam.step()


def test_state_dict_resume_reproduces_an_uninterrupted_run():
    rng = np.random.default_rng(3)
    start = [rng.standard_normal(shape) for shape in SHAPES]
    targets = [rng.standard_normal(shape) for shape in SHAPES]
    hyper = dict(lr=0.05, betas=(0.85, 0.99), eps=1e-7)

    # Uninterrupted: 10 steps.
    straight = [Parameter(s.copy()) for s in start]
    run(straight, Adam(straight, **hyper), targets, 10)

    # Interrupted after 4 steps: save parameters and optimizer state, rebuild both, resume.
    first = [Parameter(s.copy()) for s in start]
    adam = Adam(first, **hyper)
    run(first, adam, targets, 4)
    saved_params = [p.data.copy() for p in first]
    saved_state = adam.state_dict()
    run(first, adam, targets, 3)        # the state dict must be a snapshot, not a view
    resumed = [Parameter(s) for s in saved_params]
    fresh = Adam(resumed)               # default hyperparameters: the state restores them
    fresh.load_state_dict(saved_state)
    assert fresh.step_count == 4
    assert (fresh.lr, fresh.betas, fresh.eps) == (0.05, (0.85, 0.99), 1e-7)
    run(resumed, fresh, targets, 6)

    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a.data, b.data)


def test_state_dict_survives_a_save_and_load_through_npz(tmp_path):
    p = [Parameter(np.ones(3))]
    adam = Adam(p, lr=0.02)
    run(p, adam, [np.zeros(3)], 2)
    np.savez(tmp_path / "opt.npz", **adam.state_dict())
    with np.load(tmp_path / "opt.npz") as saved:
        other = Adam([Parameter(p[0].data.copy())])
        other.load_state_dict(dict(saved))
    assert other.step_count == 2 and other.lr == 0.02
    np.testing.assert_array_equal(other.m[0], adam.m[0])
    np.testing.assert_array_equal(other.v[0], adam.v[0])


def test_load_state_dict_rejects_mismatched_state():
    adam = Adam([Parameter(np.zeros((3, 4))), Parameter(np.zeros(5))])
    state = adam.state_dict()
    # Parameter shapes differ.
    with pytest.raises(ValueError, match=r"'m\.0' is missing or does not match parameter 0"):
        Adam([Parameter(np.zeros((4, 3))), Parameter(np.zeros(5))]).load_state_dict(state)
    # The state lacks a parameter the optimizer has.
    with pytest.raises(ValueError, match=r"'m\.2' is missing"):
        Adam([Parameter(np.zeros((3, 4))), Parameter(np.zeros(5)),
              Parameter(np.zeros(1))]).load_state_dict(state)
    # The state holds more parameters than the optimizer.
    with pytest.raises(ValueError, match=r"2 parameters.*1"):
        Adam([Parameter(np.zeros((3, 4)))]).load_state_dict(state)
    # A failed load leaves the optimizer untouched.
    target = Adam([Parameter(np.zeros((4, 3))), Parameter(np.zeros(5))], lr=0.5)
    with pytest.raises(ValueError):
        target.load_state_dict(state)
    assert target.step_count == 0 and target.lr == 0.5


@pytest.mark.parametrize("hyper", [dict(lr=0.0), dict(lr=-1e-3), dict(lr=float("nan")),
                                   dict(betas=(1.0, 0.999)), dict(betas=(0.9, 1.0)),
                                   dict(betas=(-0.1, 0.999)), dict(eps=0.0), dict(eps=-1e-8),
                                   dict(eps=float("nan"))])
def test_invalid_hyperparameters_raise(hyper):
    with pytest.raises(ValueError, match="Adam: invalid hyperparameters"):
        Adam([Parameter(np.zeros(2))], **hyper)


def test_empty_parameter_list_raises():
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])


def test_moments_of_a_parameter_whose_gradient_stays_zero_reach_zero_not_subnormals():
    # Without flushing, 0.9 x the smallest subnormal rounds back to it and m sticks there
    # (and every later step pays for subnormal arithmetic).
    p = Parameter(np.ones(64, np.float32))
    opt = Adam([p])
    p.grad[:] = 1e-3
    opt.step()
    p.grad[:] = 0.0
    for _ in range(1200):
        opt.step()
    tiny = np.finfo(np.float32).tiny
    for moment in (opt.m[0], opt.v[0]):
        assert not np.any((moment != 0) & (np.abs(moment) < tiny))
    assert np.all(opt.m[0] == 0)
