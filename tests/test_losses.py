"""The VAE objective's pieces and their hand-written gradients: the Bernoulli
reconstruction loss (fused sigmoid + BCE), the Gaussian KL (paper eq. 17, 22-23) and the
reparameterisation trick (eq. 24-26)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from npvae.gradcheck import finite_difference_check
from npvae.losses import (BernoulliLoss, GaussianKL, GaussianLoss, bernoulli_nll, bernoulli_nll_reference,
                          gaussian_kl, kl_grad_sigma)
from npvae.nn import POSTERIOR_LOGVAR_MAX, POSTERIOR_LOGVAR_MIN, Reparameterize, clamp_logvar

MANY = settings(max_examples=2 * settings.default.max_examples)
seeds = st.integers(0, 2**32 - 1)
LN3 = math.log(3)


def direct_bce(logits, target):
    """-x log p - (1-x) log(1-p) with p = sigmoid(l), from the definition, summed per
    image and averaged over the batch. log p = -log(1 + e^-l) and log(1-p) = -log(1 + e^l)
    are computed as such (np.logaddexp), not as log(1 - p), which loses digits."""
    log_p, log_1mp = -np.logaddexp(0, -logits), -np.logaddexp(0, logits)
    terms = -target * log_p - (1 - target) * log_1mp
    return terms.reshape(len(terms), -1).sum(axis=1).mean()


# -- BernoulliLoss -----------------------------------------------------------------------

def test_bernoulli_loss_hand_computed():
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
    logits = np.array([[0.0, LN3, -LN3],
                       [LN3, -LN3, 0.0]])
    target = np.array([[1.0, 1.0, 0.0],
                       [0.0, 1.0, 0.5]])
    # image 0: -ln(1/2) - ln(3/4) - ln(1 - 1/4)          = ln 2 + 2 ln(4/3) = ln(32/9)
    # image 1: -ln(1 - 3/4) - ln(1/4) - ln(1/2) [x=0.5]  = ln 4 + ln 4 + ln 2 = ln 32
    # mean over the 2 images: (ln(32/9) + ln 32) / 2 = ln(1024/9) / 2 = ln(32/3) ~ 2.3671
    loss = BernoulliLoss()
    assert loss.forward(logits, target) == pytest.approx(math.log(32 / 3), rel=1e-14)
    np.testing.assert_allclose(loss.per_image, [math.log(32 / 9), math.log(32)], rtol=1e-14)
    # d/dl = (sigmoid(l) - x) / N, N = 2:
    #   image 0: (1/2 - 1, 3/4 - 1, 1/4 - 0) / 2 = (-1/4, -1/8,  1/8)
    #   image 1: (3/4 - 0, 1/4 - 1, 1/2 - 1/2) / 2 = ( 3/8, -3/8,  0)
    np.testing.assert_allclose(loss.backward(), [[-0.25, -0.125, 0.125], [0.375, -0.375, 0.0]],
                               rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(loss.backward(0.5), 0.5 * loss.backward(), rtol=1e-15)


def test_bernoulli_gradient_stays_valid_after_the_next_forward():
    # Defect 5: backward() returned a view of a buffer that the next forward() overwrote.
    rng = np.random.default_rng(0)
    loss = BernoulliLoss()
    logits, target = rng.standard_normal((3, 1, 4, 4)).astype(np.float32), rng.random((3, 1, 4, 4)).astype(np.float32)
    loss.forward(logits, target)
    first = loss.backward()
    kept = first.copy()
    loss.forward(rng.standard_normal((3, 1, 4, 4)).astype(np.float32), target)   # other data
    second = loss.backward()
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(first, second)
    again = loss.backward()                 # a second backward() of one forward: equal values,
    np.testing.assert_array_equal(again, second)
    again += 1                              # ... and an array of its own
    assert not np.array_equal(again, second)


def test_bernoulli_loss_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before forward"):
        BernoulliLoss().backward()


@given(st.integers(1, 5), st.integers(1, 40), st.sampled_from([np.float32, np.float64]), seeds)
def test_bernoulli_loss_matches_the_definition_and_fused_gradient(n, pixels, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = (4 * rng.standard_normal((n, 1, pixels))).astype(dtype)
    target = rng.uniform(0, 1, (n, 1, pixels)).astype(dtype)
    loss = BernoulliLoss()
    value = loss.forward(logits, target)
    assert isinstance(value, float)
    l64, x64 = logits.astype(np.float64), target.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert value == pytest.approx(direct_bce(l64, x64), rel=rtol)
    grad = loss.backward()
    assert grad.shape == logits.shape and grad.dtype == dtype
    np.testing.assert_allclose(grad, (1 / (1 + np.exp(-l64)) - x64) / n, rtol=rtol,
                               atol=1e-7 if dtype == np.float32 else 1e-15)


@MANY
@given(st.integers(1, 5), st.integers(1, 60), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([0.1, 3.0, 30.0, 1000.0]), seeds)
def test_numba_bce_kernel_matches_reference(n, pixels, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    logits = (scale * rng.standard_normal((n, 2, pixels))).astype(dtype)
    target = rng.choice([0.0, 1.0, 0.3], size=logits.shape).astype(dtype)
    reference = bernoulli_nll_reference(logits, target)
    assert reference.dtype == np.float64
    per_image = bernoulli_nll(logits, target)
    assert per_image.shape == (n,) and per_image.dtype == np.float64
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(per_image, reference, rtol=rtol)
    loss = BernoulliLoss()
    assert loss.forward(logits, target) == pytest.approx(reference.mean(), rel=rtol)
    np.testing.assert_allclose(loss.per_image, reference, rtol=rtol)


def test_bernoulli_loss_gradient_check():
    rng = np.random.default_rng(0)
    logits = 3 * rng.standard_normal((3, 1, 5, 4))
    target = rng.uniform(0, 1, logits.shape)
    loss = BernoulliLoss()
    loss.forward(logits, target)
    analytic = loss.backward().copy()      # the loss reuses its gradient buffer
    results = finite_difference_check(lambda: loss.forward(logits, target), {"logits": logits},
                                      {"logits": analytic})
    assert results[0].checked == logits.size
    assert results[0].error < 1e-6, results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_loss_is_stable_at_extreme_logits(dtype):
    logits = np.array([[1000.0, -1000.0, 1000.0, -1000.0]], dtype=dtype)
    target = np.array([[0.0, 1.0, 1.0, 0.0]], dtype=dtype)
    loss = BernoulliLoss()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = loss.forward(logits, target)
        grad = loss.backward()
        reference = bernoulli_nll_reference(logits, target)
    # Confidently wrong costs |l| = 1000 nats per pixel; confidently right costs ~0.
    assert value == pytest.approx(2000.0, rel=1e-6)
    np.testing.assert_allclose(reference, [2000.0], rtol=1e-6)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad, np.array([[1.0, -1.0, 0.0, 0.0]], dtype=dtype))


def test_bernoulli_loss_accepts_image_shaped_batches():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    target = (rng.uniform(size=logits.shape) > 0.5).astype(np.float32)
    loss = BernoulliLoss()
    value = loss.forward(logits, target)
    assert value == pytest.approx(bernoulli_nll_reference(logits, target).mean(), rel=1e-5)
    assert loss.backward().shape == (2, 1, 28, 28)


def test_bernoulli_loss_errors():
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        BernoulliLoss().backward()
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        BernoulliLoss().forward(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError):
        BernoulliLoss().forward(np.zeros(3), np.zeros(3))


# -- GaussianKL --------------------------------------------------------------------------

def test_gaussian_kl_hand_computed():
    mu = np.array([[1.0, 0.0], [0.0, -2.0]])
    logvar = np.array([[0.0, math.log(2)], [-math.log(2), 0.0]])
    # eq. 17, KL = 1/2 sum_j (mu^2 + sigma^2 - log sigma^2 - 1):
    #   image 0: 1/2 [(1 + 1 - 0 - 1) + (0 + 2 - ln 2 - 1)]        = 1 - ln(2)/2     ~ 0.6534
    #   image 1: 1/2 [(0 + 1/2 + ln 2 - 1) + (4 + 1 - 0 - 1)]      = 7/4 + ln(2)/2   ~ 2.0966
    #   mean: (1 + 7/4) / 2 = 11/8
    kl = GaussianKL()
    assert kl.forward(mu, logvar) == pytest.approx(11 / 8, rel=1e-14)
    np.testing.assert_allclose(kl.per_image, [1 - math.log(2) / 2, 7 / 4 + math.log(2) / 2],
                               rtol=1e-14)
    # dKL/dmu = mu / N;  dKL/dlogvar = (exp(logvar) - 1) / 2 / N, N = 2.
    grad_mu, grad_logvar = kl.backward()
    np.testing.assert_allclose(grad_mu, [[0.5, 0.0], [0.0, -1.0]], rtol=1e-14)
    np.testing.assert_allclose(grad_logvar, [[0.0, 0.25], [-0.125, 0.0]], rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("m, s", [(0.0, 1.0), (1.5, 0.5), (-0.7, 2.0), (3.0, 0.2)])
def test_gaussian_kl_agrees_with_numerical_integration(m, s):
    """eq. 17 for one dimension against KL(q || p) = int q log(q / p) computed by quadrature."""
    def integrand(z):
        log_q = -0.5 * ((z - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        log_p = -0.5 * z * z - 0.5 * math.log(2 * math.pi)
        return math.exp(log_q) * (log_q - log_p)

    numeric, _ = integrate.quad(integrand, m - 40 * s, m + 40 * s, limit=200)
    closed = gaussian_kl(np.array([[m]]), np.array([[2 * math.log(s)]]))[0]
    assert closed == pytest.approx(numeric, rel=1e-8, abs=1e-12)


def test_gaussian_kl_is_zero_at_the_prior_and_positive_elsewhere():
    kl = GaussianKL()
    assert kl.forward(np.zeros((3, 4)), np.zeros((3, 4))) == 0.0
    grad_mu, grad_logvar = kl.backward()
    assert not grad_mu.any() and not grad_logvar.any()
    rng = np.random.default_rng(0)
    assert (gaussian_kl(rng.standard_normal((50, 3)), rng.standard_normal((50, 3))) > 0).all()


@given(st.integers(1, 4), st.integers(1, 6), seeds)
def test_gaussian_kl_gradient_is_the_chain_rule_of_the_sigma_form(n, d, seed):
    """The code's logvar-form gradient equals eq. 23 (dKL/dsigma = sigma - 1/sigma) times
    dsigma/dlogvar = sigma/2, and dKL/dmu = mu (eq. 22); both averaged over the batch."""
    rng = np.random.default_rng(seed)
    mu, logvar = rng.standard_normal((n, d)), 2 * rng.standard_normal((n, d))
    kl = GaussianKL()
    kl.forward(mu, logvar)
    grad_mu, grad_logvar = kl.backward()
    sigma = np.exp(logvar / 2)
    dmu, dsigma = kl_grad_sigma(mu, sigma)
    np.testing.assert_array_equal(dmu, mu)
    np.testing.assert_allclose(grad_mu, dmu / n, rtol=1e-14)
    np.testing.assert_allclose(grad_logvar, dsigma * (sigma / 2) / n, rtol=1e-12, atol=1e-15)
    # backward(grad) scales linearly (beta-weighting of the KL term).
    grad_mu_b, grad_logvar_b = kl.backward(0.25)
    np.testing.assert_allclose(grad_mu_b, 0.25 * grad_mu, rtol=1e-15)
    np.testing.assert_allclose(grad_logvar_b, 0.25 * grad_logvar, rtol=1e-15)


def test_kl_grad_sigma_against_finite_differences():
    """eq. 22-23 directly: differentiate the sigma form of eq. 17 numerically."""
    rng = np.random.default_rng(3)
    mu, sigma = rng.standard_normal((2, 3)), rng.uniform(0.2, 3.0, (2, 3))

    def kl_sigma_form():
        return float(np.sum(0.5 * (mu ** 2 + sigma ** 2 - np.log(sigma ** 2) - 1)))

    dmu, dsigma = kl_grad_sigma(mu, sigma)
    results = finite_difference_check(kl_sigma_form, {"mu": mu, "sigma": sigma},
                                      {"mu": dmu, "sigma": dsigma})
    assert all(r.error < 1e-6 for r in results), results


def test_gaussian_kl_gradient_check():
    rng = np.random.default_rng(1)
    mu, logvar = rng.standard_normal((3, 4)), 2 * rng.standard_normal((3, 4))
    kl = GaussianKL()
    kl.forward(mu, logvar)
    grad_mu, grad_logvar = kl.backward()
    results = finite_difference_check(lambda: kl.forward(mu, logvar),
                                      {"mu": mu, "logvar": logvar},
                                      {"mu": grad_mu.copy(), "logvar": grad_logvar.copy()})
    assert [r.checked for r in results] == [12, 12]
    assert all(r.error < 1e-6 for r in results), results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gaussian_kl_clamps_logvar(dtype):
    mu = np.zeros((1, 4), dtype=dtype)
    logvar = np.array([[1e4, -1e4, 1.0, -1.0]], dtype=dtype)
    kl = GaussianKL()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        value = kl.forward(mu, logvar)
        grad_mu, grad_logvar = kl.backward()
    clamped = np.array([[POSTERIOR_LOGVAR_MAX, POSTERIOR_LOGVAR_MIN, 1.0, -1.0]])
    assert math.isfinite(value)
    assert value == pytest.approx(0.5 * np.sum(np.exp(clamped) - clamped - 1), rel=1e-6)
    assert np.isfinite(grad_logvar).all() and grad_logvar.dtype == dtype
    # Outside [-30, 20] the loss doesn't depend on logvar: zero gradient there.
    assert grad_logvar[0, 0] == 0 and grad_logvar[0, 1] == 0
    np.testing.assert_allclose(grad_logvar[0, 2:], 0.5 * (np.exp([1.0, -1.0]) - 1), rtol=1e-6)


def test_clamp_logvar_bounds_and_mask():
    assert (POSTERIOR_LOGVAR_MIN, POSTERIOR_LOGVAR_MAX) == (-30.0, 20.0)
    clamped, inside = clamp_logvar(np.array([-31.0, -30.0, 0.0, 20.0, 21.0]))
    np.testing.assert_array_equal(clamped, [-30.0, -30.0, 0.0, 20.0, 20.0])
    np.testing.assert_array_equal(inside, [False, True, True, True, False])


def test_gaussian_kl_errors():
    with pytest.raises(RuntimeError, match=r"backward\(\) called before forward\(\)"):
        GaussianKL().backward()
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2, 4\)"):
        GaussianKL().forward(np.zeros((2, 3)), np.zeros((2, 4)))


# -- Reparameterize ------------------------------------------------------------------------

def test_reparameterize_forward_is_mu_plus_sigma_eps():
    rng = np.random.default_rng(0)
    mu, logvar, eps = (rng.standard_normal((3, 2)) for _ in range(3))
    z = Reparameterize().forward(mu, logvar, eps)
    np.testing.assert_allclose(z, mu + np.exp(logvar / 2) * eps, rtol=1e-15)
    # sigma = 1 and eps = 0 leave mu unchanged.
    np.testing.assert_array_equal(Reparameterize().forward(mu, np.zeros_like(mu),
                                                           np.zeros_like(mu)), mu)


def numerical_jacobian(f, x, step=1e-6):
    """J[i, j] = d f(x)_i / d x_j by central differences (x nudged in place and restored)."""
    flat = x.reshape(-1)
    columns = []
    for j in range(flat.size):
        original = flat[j]
        flat[j] = original + step
        plus = f().reshape(-1).copy()
        flat[j] = original - step
        minus = f().reshape(-1).copy()
        flat[j] = original
        columns.append((plus - minus) / (2 * step))
    return np.stack(columns, axis=1)


def test_reparameterize_jacobians_eq_25_26():
    """dz/dmu = I (eq. 25) and dz/dsigma = diag(eps) (eq. 26), by finite differences with a
    fixed eps; the layer's backward must be their transpose applied to grad_z."""
    rng = np.random.default_rng(1)
    mu, eps = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    sigma = rng.uniform(0.3, 2.0, (2, 3))
    layer = Reparameterize()

    def z_of():
        return layer.forward(mu, 2 * np.log(sigma), eps)

    jac_mu, jac_sigma = numerical_jacobian(z_of, mu), numerical_jacobian(z_of, sigma)
    np.testing.assert_allclose(jac_mu, np.eye(6), atol=1e-8)
    np.testing.assert_allclose(jac_sigma, np.diag(eps.reshape(-1)), atol=1e-8)
    # backward of every unit grad_z recovers the Jacobians' rows.
    layer.forward(mu, 2 * np.log(sigma), eps)
    for i in range(6):
        grad_z = np.zeros(6)
        grad_z[i] = 1
        grad_mu, grad_logvar = layer.backward(grad_z.reshape(2, 3))
        np.testing.assert_array_equal(grad_mu.reshape(-1), np.eye(6)[i])       # grad_mu = grad_z
        grad_sigma = grad_logvar / (sigma / 2)                                 # undo dsigma/dlogvar
        np.testing.assert_allclose(grad_sigma.reshape(-1), jac_sigma[i], rtol=1e-6, atol=1e-9)


@given(st.integers(1, 4), st.integers(1, 5), seeds)
def test_reparameterize_gradient_check(n, d, seed):
    rng = np.random.default_rng(seed)
    mu, logvar, eps = rng.standard_normal((n, d)), 2 * rng.standard_normal((n, d)), \
        rng.standard_normal((n, d))
    weights = rng.standard_normal((n, d))
    layer = Reparameterize()
    layer.forward(mu, logvar, eps)
    grad_mu, grad_logvar = layer.backward(weights)
    np.testing.assert_array_equal(grad_mu, weights)
    np.testing.assert_allclose(grad_logvar, weights * eps * np.exp(logvar / 2) / 2, rtol=1e-14)
    results = finite_difference_check(
        lambda: float(np.sum(layer.forward(mu, logvar, eps) * weights)),
        {"mu": mu, "logvar": logvar}, {"mu": grad_mu.copy(), "logvar": grad_logvar.copy()})
    assert all(r.error < 1e-6 for r in results), results


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reparameterize_clamp_masks_the_gradient(dtype):
    mu = np.zeros((1, 4), dtype=dtype)
    logvar = np.array([[25.0, -35.0, 1e4, 2.0]], dtype=dtype)
    eps = np.ones((1, 4), dtype=dtype)
    layer = Reparameterize()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        z = layer.forward(mu, logvar, eps)
        grad_mu, grad_logvar = layer.backward(np.ones((1, 4), dtype=dtype))
    assert z.dtype == grad_mu.dtype == grad_logvar.dtype == dtype
    np.testing.assert_allclose(z, np.exp(np.array([[10.0, -15.0, 10.0, 1.0]])), rtol=1e-6)
    np.testing.assert_array_equal(grad_logvar[0, :3], [0, 0, 0])
    assert grad_logvar[0, 3] == pytest.approx(math.exp(1.0) / 2, rel=1e-6)
    np.testing.assert_array_equal(grad_mu, np.ones((1, 4)))


def test_reparameterize_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="Reparameterize"):
        Reparameterize().forward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Reparameterize"):
        Reparameterize().forward(np.zeros(3), np.zeros(3), np.zeros(3))


# -- a shard of a batch: batch_size ------------------------------------------------------

@pytest.mark.parametrize("make_loss", [BernoulliLoss, lambda: GaussianLoss(-1.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_shard_gives_its_rows_of_the_whole_batch_gradient_exactly(make_loss, dtype):
    rng = np.random.default_rng(11)
    logits = rng.normal(0, 3, (7, 1, 4, 4)).astype(dtype)
    target = (rng.random((7, 1, 4, 4)) < 0.3).astype(dtype)
    whole = make_loss()
    value = whole.forward(logits, target)
    grad = whole.backward()
    shard_values = []
    for rows in (slice(0, 3), slice(3, 7)):
        shard = make_loss()
        shard_values.append(shard.forward(logits[rows], target[rows], batch_size=7))
        np.testing.assert_array_equal(shard.backward(), grad[rows])
        np.testing.assert_array_equal(shard.per_image, whole.per_image[rows])
    assert sum(shard_values) == pytest.approx(value, rel=1e-12)


def test_a_kl_shard_gives_its_rows_of_the_whole_batch_gradient_exactly():
    rng = np.random.default_rng(12)
    mu, logvar = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(5, 3)).astype(np.float32)
    whole = GaussianKL()
    value = whole.forward(mu, logvar)
    grads = whole.backward(0.5)
    shard = GaussianKL()
    part = shard.forward(mu[2:], logvar[2:], batch_size=5)
    for a, b in zip(shard.backward(0.5), grads):
        np.testing.assert_array_equal(a, b[2:])
    assert part == pytest.approx(whole.per_image[2:].sum() / 5, rel=1e-12) and part < value


@pytest.mark.parametrize("batch_size", [2, 0, 3.5, True, -4])
def test_a_batch_size_smaller_than_the_shard_or_not_whole_is_refused(batch_size):
    logits = np.zeros((3, 4), np.float32)
    for forward in (lambda: BernoulliLoss().forward(logits, logits, batch_size=batch_size),
                    lambda: GaussianLoss(0.0).forward(logits, logits, batch_size=batch_size),
                    lambda: GaussianKL().forward(logits, logits, batch_size=batch_size)):
        with pytest.raises(ValueError, match="batch_size must be a whole number of at least the 3 images"):
            forward()
