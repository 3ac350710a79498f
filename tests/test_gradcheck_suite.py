"""The named gradient checks (npvae.gradcheck): they pass on the engine as written,
cover every layer type, and catch a backward pass that is wrong by 1%.

Entry counts are kept small here; ``npvae gradcheck`` runs the same functions with 64.
"""
import inspect

import numpy as np
import pytest

import npvae.nn as nn
from npvae import gradcheck as suite
from npvae.gradcheck import TensorCheck, finite_difference_check
from npvae.losses import GaussianKL
from npvae.nn import Conv2d, ConvTranspose2d, Linear, Reparameterize

# Which standard check covers each layer type of npvae.nn.
COVERAGE = {"Linear": "linear", "Conv2d": "conv2d", "ConditionedConv2d": "conditionedconv2d",
            "ConvTranspose2d": "convtranspose2d",
            "ReLU": "relu", "Sigmoid": "sigmoid", "Flatten": "reshape", "Unflatten": "reshape",
            "Reparameterize": "reparameterize", "Sequential": "encoder"}

LAYER_CHECKS = ["linear", "conv2d", "conditionedconv2d", "convtranspose2d", "relu", "sigmoid", "reshape", "bce", "gaussian", "kl",
                "reparameterize"]


def _scaled_grad(monkeypatch, cls, attribute="weight", factor=1.01):
    """Make cls.backward scale what it adds to ``attribute``.grad by ``factor``."""
    original = cls.backward

    def broken(self, grad_out):
        before = getattr(self, attribute).grad.copy()
        result = original(self, grad_out)
        grad = getattr(self, attribute).grad
        grad[...] = before + factor * (grad - before)
        return result

    monkeypatch.setattr(cls, "backward", broken)


def test_every_layer_type_has_a_standard_check():
    layer_types = {name for name in nn.__all__
                   if inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)
                   and name != "Module"}
    assert layer_types <= set(COVERAGE), f"no standard check for {layer_types - set(COVERAGE)}"
    for name in set(COVERAGE.values()) | {"bce", "kl", "vae", "cvae", "decoder"}:
        assert name in suite.CHECKS and suite.CHECKS[name].description


@pytest.mark.parametrize("name", LAYER_CHECKS)
def test_layer_and_loss_checks_pass(name):
    rows = suite.run([name], seed=1, max_entries=16, n_random=2)
    assert rows and all(isinstance(check, TensorCheck) for _, check in rows)
    assert not suite.failures(rows), suite.summary(rows)
    assert max(check.error for _, check in rows) < suite.DEFAULT_TOLERANCE
    # the paper's shapes are among the configurations, and random ones too
    configs = " ".join(label.config for label, _ in rows)
    assert "random" in configs
    if name in ("linear", "conv2d", "convtranspose2d", "relu"):
        assert "N=2" in configs or "2x" in configs


def test_paper_layers_are_checked_on_the_paper_shapes():
    configs = {label.config for label, _ in suite.run(["conv2d", "convtranspose2d"], max_entries=4,
                                                       n_random=0)}
    expected = ["1->32 k4 s2 p1, 28x28->14x14", "32->64 k4 s2 p1, 14x14->7x7",
                "64->128 k3 s2 p1, 7x7->4x4", "128->64 k3 s2 p1 op0, 4x4->7x7",
                "64->32 k4 s2 p1 op0, 7x7->14x14", "32->1 k4 s2 p1 op0, 14x14->28x28"]
    for text in expected:
        assert any(text in c for c in configs), text


@pytest.mark.parametrize("name", ["encoder", "decoder", "vae", "cvae"])
def test_network_checks_pass(name):
    rows = suite.run([name], seed=2, max_entries=6)
    assert not suite.failures(rows), suite.summary(rows)
    tensors = {check.tensor for _, check in rows}
    if name in ("vae", "cvae"):
        assert {"encoder.0.weight", "fc_mu.weight", "fc_logvar.bias", "decoder.7.weight"} <= tensors
        assert all(check.tolerance == suite.MODEL_TOLERANCE for _, check in rows)


def test_seeds_reproduce_and_checks_are_independent_of_each_other():
    alone = suite.run(["kl"], seed=3, max_entries=8)
    together = [r for r in suite.run(["relu", "kl"], seed=3, max_entries=8) if r[0].layer == "kl"]
    assert [(l, c.tensor, c.error) for l, c in alone] == [(l, c.tensor, c.error) for l, c in together]


def test_a_one_percent_error_in_a_weight_gradient_is_caught(monkeypatch):
    _scaled_grad(monkeypatch, ConvTranspose2d)
    rows = suite.run(["convtranspose2d"], max_entries=8, n_random=1)
    failed = {(label.config, check.tensor) for label, check in suite.failures(rows)}
    assert failed and all(tensor == "weight" for _, tensor in failed)
    assert "FAIL" in suite.summary(rows)


def test_a_wrong_bias_gradient_is_caught_in_the_whole_model(monkeypatch):
    _scaled_grad(monkeypatch, Linear, "bias", 1.05)
    rows = suite.run(["vae"], max_entries=4)
    failed = {check.tensor for _, check in suite.failures(rows)}
    assert {"fc_mu.bias", "fc_logvar.bias"} <= failed


def test_a_wrong_reparameterisation_gradient_is_caught(monkeypatch):
    def broken(self, grad_z):                           # forgets dsigma/dlogvar's factor 1/2
        return grad_z, grad_z * self._eps * self._sigma
    monkeypatch.setattr(Reparameterize, "backward", broken)
    assert suite.failures(suite.run(["reparameterize"], max_entries=8, n_random=0))
    failed = {check.tensor for _, check in suite.failures(suite.run(["vae"], max_entries=4))}
    assert "fc_logvar.weight" in failed and "fc_mu.weight" not in failed


def test_a_wrong_kl_gradient_is_caught(monkeypatch):
    original = GaussianKL.backward
    monkeypatch.setattr(GaussianKL, "backward", lambda self, grad=1.0: tuple(
        g * 1.01 for g in original(self, grad)))
    failed = {check.tensor for _, check in suite.failures(suite.run(["kl"], max_entries=8, n_random=0))}
    assert failed == {"mu", "logvar"}


def test_a_broken_conv2d_weight_gradient_is_caught_everywhere_it_is_used(monkeypatch):
    _scaled_grad(monkeypatch, Conv2d)
    for name in ("conv2d", "encoder"):
        failed = suite.failures(suite.run([name], max_entries=8, n_random=1))
        assert failed and all(check.tensor.endswith("weight") for _, check in failed)


def test_kinks_are_stepped_around():
    """sum(relu(x)) with entries closer to 0 than the step: a plain central difference
    is wrong there, the kink-aware one uses the side that does not cross."""
    x = np.array([3e-7, -4e-7, 0.5, -0.5, 2e-7])
    analytic = (x > 0).astype(float)

    def scalar_fn():
        return float(np.sum(np.maximum(x, 0)))

    rng = np.random.default_rng(0)
    (plain,) = finite_difference_check(scalar_fn, {"x": x}, {"x": analytic}, step=1e-6, rng=rng)
    assert not plain.passed
    (aware,) = finite_difference_check(scalar_fn, {"x": x}, {"x": analytic}, step=1e-6, rng=rng,
                                       pattern=lambda: [x > 0], min_step=1e-9)
    assert aware.passed and aware.error < 1e-9 and aware.checked == 5 and aware.kinks == 0
    # Between two kinks closer together than the step, both sides cross: give up on it.
    y = np.array([5e-8, 0.5])

    def scalar_fn_y():
        return float(np.sum(np.maximum(y, 0) + np.maximum(y - 1e-7, 0)))

    (gave_up,) = finite_difference_check(scalar_fn_y, {"y": y}, {"y": np.array([1.0, 2.0])}, step=1e-6,
                                         rng=rng, pattern=lambda: [y > 0, y > 1e-7], min_step=1e-6)
    assert gave_up.kinks == 1 and gave_up.checked == 1 and gave_up.passed


def test_tolerance_override_and_input_validation():
    rows = suite.run(["kl"], max_entries=4, n_random=0, tolerance=1e-30)
    assert suite.failures(rows) and all(c.tolerance == 1e-30 for _, c in rows)
    with pytest.raises(ValueError, match="unknown check"):
        suite.run(["conv3d"])


def test_labels_print_and_rows_format():
    label, check = suite.run(["linear"], max_entries=2, n_random=0)[0]
    assert f"{label}".startswith("linear [") and format(label, "<60").startswith("linear")
    row = suite.format_row(label, check)
    assert "linear" in row and "ok" in row and row.rstrip().endswith("s")
