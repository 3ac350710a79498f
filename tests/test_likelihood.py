"""Log-likelihood estimates: IWAE (generic and on the conv model) and grid integration.

Exactness is checked on a linear-Gaussian model, where p(x) and the posterior have closed
forms: x = W z + b + noise, z ~ N(0, I), noise ~ N(0, s2 I), so
    p(x) = N(x; b, W W^T + s2 I),   p(z | x) = N(S W^T (x - b) / s2, S),  S = (I + W^T W / s2)^-1.
"""
import math
import os

import numpy as np
import pytest

from npvae.data import to_float
from npvae.evaluation import elbo_per_image
from npvae.evaluation import (LOG_2PI, evaluate_iwae, grid_log_integral,
                              iwae_log_likelihood, log_mean_exp, model_grid_log_likelihood,
                              model_iwae)
from npvae.models import CVAE, VAE

needs_data = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")


def log_mvn(x, mean, cov):
    """log N(x; mean, cov) for x of shape (..., D)."""
    diff = x - mean
    chol = np.linalg.cholesky(cov)
    solved = np.linalg.solve(chol, diff[..., None])[..., 0]
    return (-0.5 * np.sum(solved ** 2, axis=-1) - np.sum(np.log(np.diag(chol)))
            - 0.5 * x.shape[-1] * LOG_2PI)


class LinearGaussian:
    def __init__(self, latent_dim=2, data_dim=5, noise_var=0.3, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.standard_normal((data_dim, latent_dim))
        self.b = rng.standard_normal(data_dim)
        self.s2 = noise_var
        self.d = latent_dim
        self.x = self.b + rng.standard_normal((4, data_dim)) * 2       # four data points

    def exact_log_px(self):
        cov = self.W @ self.W.T + self.s2 * np.eye(len(self.b))
        return log_mvn(self.x, self.b, cov)

    def posterior(self, inflate=1.0):
        cov = np.linalg.inv(np.eye(self.d) + self.W.T @ self.W / self.s2)
        means = (self.x - self.b) @ self.W @ cov / self.s2               # (N, d); cov is symmetric
        return means, cov * inflate

    def log_joint(self, z, x=None):
        """log p(x, z): z (N, k, d) for the N data points, or (P, d) for one given x."""
        x = self.x[:, None] if x is None else x
        mean = z @ self.W.T + self.b
        return (-0.5 * np.sum((x - mean) ** 2, axis=-1) / self.s2
                - 0.5 * len(self.b) * math.log(2 * math.pi * self.s2)
                - 0.5 * np.sum(z * z + LOG_2PI, axis=-1))

    def sampler(self, inflate=1.0, shift=0.0):
        """Draws from the posterior, its covariance scaled by ``inflate`` and its mean moved
        by ``shift`` standard deviations (1 and 0: the exact posterior)."""
        means, cov = self.posterior(inflate)
        means = means + shift * np.sqrt(np.diag(cov) / inflate)
        chol = np.linalg.cholesky(cov)

        def sample(k, rng):
            z = means[:, None] + rng.standard_normal((len(means), k, self.d)) @ chol.T
            return z, log_mvn(z, means[:, None], cov)
        return sample


def test_log_mean_exp_is_stable():
    a = np.array([[-1000.0, -1000.0], [1000.0, 1000.0 + math.log(3)]])
    np.testing.assert_allclose(log_mean_exp(a), [-1000.0, 1000.0 + math.log(2)], rtol=1e-15)


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_iwae_is_exact_when_the_proposal_is_the_true_posterior(latent_dim):
    model = LinearGaussian(latent_dim=latent_dim)
    for k, per_call in ((1, 1), (7, 3), (50, 1000)):
        estimate = iwae_log_likelihood(model.sampler(), model.log_joint, k, rng=1, samples_per_call=per_call)
        np.testing.assert_allclose(estimate.log_px, model.exact_log_px(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(estimate.elbo, model.exact_log_px(), rtol=0, atol=1e-10)
        np.testing.assert_allclose(estimate.ess, k, rtol=1e-9)      # all weights equal


def test_iwae_with_a_wrong_proposal_is_a_bound_that_tightens_with_k():
    model = LinearGaussian(latent_dim=2)
    exact = model.exact_log_px()
    # A narrow, shifted proposal: the bound is loose and tightens slowly (standard errors ~0.06).
    narrow = model.sampler(inflate=0.3, shift=0.7)
    means = {k: np.mean([iwae_log_likelihood(narrow, model.log_joint, k, rng=seed).log_px
                         for seed in range(200)], axis=0) for k in (1, 10, 100)}
    assert np.all(means[1] < means[10] - 0.3) and np.all(means[10] < means[100] - 0.2)
    assert np.all(means[100] < exact - 0.3)
    # A wide proposal covers the posterior, and the estimate converges to log p(x).
    wide = model.sampler(inflate=3.0, shift=0.7)
    converged = np.mean([iwae_log_likelihood(wide, model.log_joint, 3000, rng=seed).log_px
                         for seed in range(20)], axis=0)
    np.testing.assert_allclose(converged, exact, atol=0.02)


def test_grid_integral_matches_the_closed_form():
    model = LinearGaussian(latent_dim=2)
    means, cov = model.posterior()
    sd = np.sqrt(np.diag(cov))
    for item in range(len(model.x)):
        grid = grid_log_integral(lambda z: model.log_joint(z, model.x[item]), means[item] - 8 * sd, means[item] + 8 * sd, size=300)
        assert grid.log_integral == pytest.approx(model.exact_log_px()[item], abs=1e-8)
        assert grid.peak - grid.edge > 20
    # A standard normal density over [-8, 8]^2 with a box left out: the two parts add to 1.
    log_f = lambda z: -0.5 * np.sum(z * z + LOG_2PI, axis=-1)                  # noqa: E731
    inner = grid_log_integral(log_f, [-1.0, -1.0], [1.0, 1.0], size=200)
    outer = grid_log_integral(log_f, [-8.0, -8.0], [8.0, 8.0], size=400, exclude=([-1, -1], [1, 1]))
    assert inner.log_integral == pytest.approx(2 * math.log(math.erf(1 / math.sqrt(2))), abs=1e-4)
    assert np.logaddexp(inner.log_integral, outer.log_integral) == pytest.approx(0.0, abs=2e-3)


def random_images(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, 28, 28)) < 0.2).astype(np.uint8) * 255, rng.integers(0, 10, n)


def sharp_model(kind="vae", seed=3, scale=30.0):
    """An untrained conv model whose decoder depends strongly on z: its initial decoder
    barely does, so q(z|x) ~ p(z) would already be the posterior and every K give the same."""
    model = VAE(2, rng=seed) if kind == "vae" else CVAE(2, rng=seed)
    model.decoder[0].weight.data[:, :model.latent_dim] *= scale
    return model


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_conv_iwae_is_above_the_elbo_and_grows_with_k(kind):
    model = sharp_model(kind)
    images, labels = random_images(4)
    images = np.repeat(images, 10, axis=0)             # 10 independent estimates per image
    labels = np.repeat(labels, 10)
    estimates = {k: evaluate_iwae(model, images, labels, k, rng=k, batch_size=500, progress=False)
                 for k in (1, 10, 100)}
    recon, kl = elbo_per_image(model, images, labels, np.random.default_rng(0))
    elbo = float(np.mean(-(recon + kl)))
    means = {k: e["mean"] for k, e in estimates.items()}
    assert means[1] < means[10] < means[100]
    assert elbo < means[10] and means[100] - means[1] > 5
    # the mean log-weight is an unbiased ELBO estimate whatever K (here over 4000 draws)
    assert estimates[100]["elbo_mean"] == pytest.approx(elbo, abs=4 * estimates[1]["se"])


def test_iwae_1_is_the_single_sample_elbo_in_expectation():
    # Same draws: IWAE-1 - (-recon) is log p(z) - log q(z|x), a Monte Carlo -KL whose mean
    # is the analytic -KL of the ELBO. Averaged over 2000 draws per image it must agree.
    model = sharp_model(seed=5)
    images, labels = random_images(2, seed=1)
    x = to_float(images, model.dtype)
    reps = 1000
    x_rep = np.repeat(x, reps, axis=0)
    iwae1 = model_iwae(model, x_rep, None, 1, rng=7, batch_size=1000).log_px.reshape(2, reps)
    recon, kl = elbo_per_image(model, np.repeat(images, reps, axis=0), None, np.random.default_rng(8))
    elbo = -(recon + kl).reshape(2, reps)
    se = np.sqrt(iwae1.var(axis=1) / reps + elbo.var(axis=1) / reps)
    assert np.all(np.abs(iwae1.mean(axis=1) - elbo.mean(axis=1)) < 4 * se)


def test_conv_iwae_does_not_depend_on_how_the_samples_are_batched():
    model = VAE(2, rng=2)
    images, labels = random_images(3, seed=2)
    a = evaluate_iwae(model, images, labels, 40, rng=0, batch_size=1000, progress=False)
    b = evaluate_iwae(model, images, labels, 40, rng=0, batch_size=40, progress=False)
    np.testing.assert_allclose(a["log_px"], b["log_px"], rtol=1e-5)


def test_grid_agrees_with_iwae_on_a_conv_vae():
    # Untrained: q(z|x) is near the prior while the true posterior is narrower, so K must be large.
    model = sharp_model(seed=4, scale=3.0)
    images, labels = random_images(1, seed=3)
    for i in range(1):
        x = to_float(images[i:i + 1], model.dtype)
        grid = model_grid_log_likelihood(model, x, size=80, prior_size=40, batch_size=2000)
        iwae = evaluate_iwae(model, images[i:i + 1], labels[i:i + 1], 3000, rng=i, batch_size=1500,
                             progress=False)
        assert iwae["mean"] <= grid["log_px"] + 0.05
        assert iwae["mean"] == pytest.approx(grid["log_px"], abs=0.5)
        assert grid["edge_drop"] > 20


def test_grid_refuses_a_latent_that_is_not_2d():
    model = VAE(3, rng=0)
    with pytest.raises(ValueError, match="2-D latent"):
        model_grid_log_likelihood(model, np.zeros((1, 1, 28, 28), np.float32))


@needs_data
def test_evaluate_cli_writes_iwae_and_grid_beside_the_elbo(tmp_path, capsys):
    from npvae.cli import main
    from npvae.runs import TrainConfig
    from npvae.training import train

    run = str(tmp_path / "run")
    train(TrainConfig(epochs=1, limit=256, test_limit=50, batch_size=64), run, progress=False,
          log=lambda *a: None)
    (tmp_path / "run" / "evaluation.json").write_text('{"keep": 1}')
    assert main(["evaluate", run, "--subset", "20", "--iwae-k", "50", "--grid", "--grid-images", "1",
                 "--grid-size", "60", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "IWAE-50" in out and "projected for K=5000" in out and "grid log p(x)" in out
    import json
    result = json.load(open(tmp_path / "run" / "evaluation.json"))
    # A subset's figures are filed under their own keys, beside (not over) earlier results.
    assert result["keep"] == 1 and "images" not in result and result["elbo_first20"]["images"] == 20
    elbo, iwae = result["elbo_first20"], result["iwae_50_first20"]
    assert iwae["mean"] >= elbo["elbo"] - 3 * elbo["elbo_se"] and iwae["se"] > 0
    assert len(result["grid"]["rows"]) == 1


def test_the_grid_reports_the_box_it_integrated_when_the_edge_criterion_is_never_met():
    """Defect 3: when the box never got wide enough, the reported width was twice the box that
    was integrated, and nothing said so. Now ``width`` is the last box's and ``edge_ok`` is False."""
    from npvae.evaluation.grid import WIDENINGS
    model = VAE(2, rng=0)
    x = to_float(np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8))
    never = model_grid_log_likelihood(model, x, size=6, prior_size=6, min_edge_drop=1e12)
    assert never["width"] == 8.0 * 2 ** WIDENINGS and never["edge_ok"] is False
    first_box = model_grid_log_likelihood(model, x, size=6, prior_size=6, min_edge_drop=-1.0)
    assert first_box["width"] == 8.0 and first_box["edge_ok"] is True
