"""The Gaussian decoder (--likelihood gaussian): density, hand-written gradients, training, IWAE."""
import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from npvae.runs import RunDirectory, open_model as load_model
from npvae.gradcheck import finite_difference_check
from npvae.evaluation import elbo_per_image
from npvae.evaluation import evaluate_iwae
from npvae.losses import GaussianLoss, NegativeELBO, gaussian_nll
from npvae.losses.gaussian import PIXEL_LOGVAR_MAX, PIXEL_LOGVAR_MIN
from npvae.models import CVAE, VAE, build_model
from npvae.nn import Parameter, sigmoid
from npvae.runs import TrainConfig
from npvae.training import train

needs_data = pytest.mark.skipif(not os.environ.get("NPVAE_DATA"),
                                reason="NPVAE_DATA is not set: point it at a folder containing mnist/")
TOLERANCE = 1e-6


def test_gaussian_nll_is_the_summed_normal_log_density():
    rng = np.random.default_rng(0)
    mean, target = rng.random((3, 1, 4, 5)), rng.random((3, 1, 4, 5))
    logvar = rng.normal(-1, 0.5, (1, 4, 5))
    expected = -stats.norm.logpdf(target, mean, np.exp(0.5 * logvar)).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(gaussian_nll(mean, target, logvar), expected, rtol=1e-12)
    np.testing.assert_allclose(gaussian_nll(mean, target, 0.0),
                               -stats.norm.logpdf(target, mean).reshape(3, -1).sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("learned", [False, True])
def test_gaussian_loss_gradients_match_finite_differences(learned):
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (4, 1, 6, 6))
    target = rng.random((4, 1, 6, 6))
    logvar = Parameter(rng.uniform(-3, 1, (1, 6, 6))) if learned else math.log(0.3)
    loss = GaussianLoss(logvar)
    value = loss.forward(logits, target)
    assert value == pytest.approx(np.mean(gaussian_nll(sigmoid(logits), target, loss.current_logvar())))
    if learned:
        logvar.grad.fill(0)
    grad_logits = loss.backward()
    # dNLL/dlogit = (m - x) / sigma^2 * m (1 - m), batch mean: the formula, independently.
    m = sigmoid(logits)
    np.testing.assert_allclose(grad_logits, (m - target) * np.exp(-loss.current_logvar()) * m * (1 - m) / 4,
                               rtol=1e-12)
    tensors, analytic = {"logits": logits}, {"logits": grad_logits}
    if learned:
        tensors["logvar"], analytic["logvar"] = logvar.data, logvar.grad.copy()
    results = finite_difference_check(lambda: loss.forward(logits, target), tensors, analytic)
    for r in results:
        assert r.error < TOLERANCE, r


def test_a_clamped_learned_log_variance_gets_no_gradient():
    logvar = Parameter(np.array([[[PIXEL_LOGVAR_MIN - 1, 0.0, PIXEL_LOGVAR_MAX + 1]]]))
    loss = GaussianLoss(logvar)
    loss.forward(np.zeros((2, 1, 1, 3)), np.full((2, 1, 1, 3), 0.9))
    loss.backward()
    assert logvar.grad[0, 0, 0] == 0 and logvar.grad[0, 0, 2] == 0 and logvar.grad[0, 0, 1] != 0
    np.testing.assert_allclose(loss.current_logvar(), [[[PIXEL_LOGVAR_MIN, 0.0, PIXEL_LOGVAR_MAX]]])


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_the_whole_gaussian_model_passes_a_gradient_check(kind):
    """Loss -> logits -> decoder -> z -> encoder, and the learned per-pixel log-variance."""
    rng = np.random.default_rng(2)
    config = dict(likelihood="gaussian", variance="learned", pixel_variance=0.2)
    model = (VAE(2, rng=0, **config) if kind == "vae" else CVAE(2, rng=0, **config)).to(np.float64)
    model.pixel_logvar.data += rng.normal(0, 0.3, model.pixel_logvar.shape)
    # As in test_model_gradients: at the default init the decoder barely depends on z and the
    # encoder's gradients sink into the loss's float64 roundoff; scaled up, all are O(1).
    model.fc_mu.weight.data *= 10
    model.fc_logvar.weight.data *= 10
    for index in (3, 5, 7):
        model.decoder[index].weight.data *= 3
    x = rng.random((2, 1, 28, 28))
    labels = np.array([3, 7])
    eps = rng.standard_normal((2, 2))
    objective = NegativeELBO(model.reconstruction_loss())

    def scalar_fn():
        logits, mu, logvar = model.forward(x, eps, labels)
        return objective.forward(logits, x, mu, logvar, beta=0.7)[0]

    model.zero_grad()
    scalar_fn()
    model.backward(*objective.backward())
    params = dict(model.named_parameters())
    names = ["pixel_logvar", "decoder.0.weight", "decoder.7.bias", "fc_logvar.weight", "encoder.0.weight"]
    results = finite_difference_check(scalar_fn, {n: params[n].data for n in names},
                                      {n: params[n].grad.copy() for n in names}, max_entries=12, rng=0)
    for r in results:
        assert r.error < TOLERANCE, r


def test_model_options_and_config_round_trip():
    plain = VAE(2, rng=0)
    assert plain.config() == {"model": "vae", "latent_dim": 2} and not hasattr(plain, "pixel_logvar")
    assert len(plain.parameters()) == len(VAE(2, rng=0, likelihood="gaussian").parameters())
    learned = CVAE(3, rng=0, likelihood="gaussian", variance="learned", pixel_variance=0.5)
    rebuilt = build_model(learned.config())
    assert rebuilt.config() == learned.config() and rebuilt.pixel_logvar.shape == (1, 28, 28)
    np.testing.assert_allclose(rebuilt.pixel_logvar.data, math.log(0.5), rtol=1e-6)
    with pytest.raises(ValueError, match="likelihood"):
        VAE(2, likelihood="poisson")
    with pytest.raises(ValueError, match="pixel_variance"):
        TrainConfig(likelihood="gaussian", pixel_variance=0).validate()


@needs_data
def test_a_short_gaussian_run_trains_saves_its_variance_and_supports_iwae(tmp_path):
    from npvae.cli import main
    from npvae.data import load_dataset

    out = str(tmp_path / "run")
    assert main(["train", "--likelihood", "gaussian", "--gaussian-variance", "learned",
                 "--pixel-variance", "0.1", "--epochs", "1", "--limit", "512", "--test-limit", "100",
                 "--batch-size", "32", "--warmup-epochs", "0", "--out", out, "--no-progress"]) == 0
    row = RunDirectory(out).read_metrics()[0]
    assert all(math.isfinite(v) for v in row.values())
    assert json.load(open(os.path.join(out, "config.json")))["likelihood"] == "gaussian"
    model = load_model(out)
    assert model.likelihood == "gaussian" and model.variance == "learned"
    assert not np.allclose(model.pixel_logvar.data, math.log(0.1))          # Adam moved it

    # The loss falls: the same model trained a few more steps on one batch.
    images, labels = load_dataset("mnist", "test", root=os.environ["NPVAE_DATA"])
    images, labels = images[:6], labels[:6].astype(np.int64)
    before = np.mean(np.sum(elbo_per_image(model, images, labels, np.random.default_rng(0)), axis=0))
    config = TrainConfig(likelihood="gaussian", gaussian_variance="learned", epochs=2, limit=512,
                         test_limit=100, batch_size=32, warmup_epochs=0, pixel_variance=0.1)
    rows = train(config, str(tmp_path / "two"), progress=False, log=lambda *a: None)
    assert rows[1]["train_total"] < rows[0]["train_total"]
    assert rows[1]["test_total"] < rows[0]["test_total"]

    iwae = evaluate_iwae(model, images, labels, 50, rng=0, batch_size=300, progress=False)
    assert np.all(np.isfinite(iwae["log_px"]))
    assert iwae["mean"] > -before - 5          # above the ELBO, up to Monte Carlo noise


@needs_data
def test_a_fixed_variance_gaussian_cvae_trains(tmp_path):
    config = TrainConfig(model="cvae", likelihood="gaussian", pixel_variance=0.05, epochs=1, limit=256,
                         test_limit=100, batch_size=64)
    rows = train(config, str(tmp_path), progress=False, log=lambda *a: None)
    assert all(math.isfinite(v) for v in rows[0].values())
    model = load_model(str(tmp_path))
    assert model.config()["pixel_variance"] == 0.05 and not hasattr(model, "pixel_logvar")
