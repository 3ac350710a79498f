"""`npvae inspect` and npvae.diagnostics: every layer of the paper's models is shown, seen
through the model's own forward and backward, with the model's own loss; the JSON is complete."""
import json
import os
from pathlib import Path

import numpy as np
import pytest

import npvae.data
from npvae.diagnostics import inspect as inspection
from npvae.diagnostics.flops import describe
from npvae.runs import save_model
from npvae.cli import main
from npvae.data import to_float
from npvae.losses import BernoulliLoss, GaussianKL, NegativeELBO
from npvae.models import CVAE, VAE
from npvae.nn import observe

# (layer, description, output shape per image) for the paper's VAE, Tables 1 and 2.
PAPER_VAE = [
    ("encoder.0", "Conv2d 1->32 k4 s2 p1", "32x14x14"), ("encoder.1", "ReLU", "32x14x14"),
    ("encoder.2", "Conv2d 32->64 k4 s2 p1", "64x7x7"), ("encoder.3", "ReLU", "64x7x7"),
    ("encoder.4", "Conv2d 64->128 k3 s2 p1", "128x4x4"), ("encoder.5", "ReLU", "128x4x4"),
    ("encoder.6", "Flatten", "2048"),
    ("fc_mu", "Linear 2048->2", "2"), ("fc_logvar", "Linear 2048->2", "2"),
    ("reparameterize", "Reparameterize", "2"),
    ("decoder.0", "Linear 2->2048", "2048"), ("decoder.1", "ReLU", "2048"),
    ("decoder.2", "Unflatten -> 128x4x4", "128x4x4"),
    ("decoder.3", "ConvTranspose2d 128->64 k3 s2 p1", "64x7x7"), ("decoder.4", "ReLU", "64x7x7"),
    ("decoder.5", "ConvTranspose2d 64->32 k4 s2 p1", "32x14x14"), ("decoder.6", "ReLU", "32x14x14"),
    ("decoder.7", "ConvTranspose2d 32->1 k4 s2 p1", "1x28x28"),
    ("sigmoid", "Sigmoid", "1x28x28"),
]


REAL_DATA = os.environ.get("NPVAE_DATA")          # read before the fixture below hides it
HAS_MNIST = bool(REAL_DATA) and (Path(REAL_DATA) / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


@pytest.fixture(autouse=True)
def no_data(monkeypatch, tmp_path):
    """No MNIST anywhere: inspect must fall back to synthetic input (and never download)."""
    monkeypatch.setenv("NPVAE_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "no-cache"))


def inspect_cli(capsys, *argv):
    status = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def _row(out, name):
    rows = [line for line in out.splitlines() if line.split()[:1] == [name]]
    assert rows, f"no row for {name}"
    return rows


def test_every_layer_of_the_paper_vae_is_shown(capsys):
    status, out, _ = inspect_cli(capsys, "--model", "vae", "--batch-size", "8")
    assert status == 0
    for name, description, shape in PAPER_VAE:
        architecture, statistics = _row(out, name)
        assert description in architecture and shape in architecture
        assert len(statistics.split()) >= 4
    assert "note: synthetic strokes" in out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert f"{VAE().num_parameters():,}" in total
    assert "Loss (eq. 30" in out and "KL per latent dimension: z0:" in out
    assert "Active units (Var_x E_q[z_j] > 0.01, over the batch (8 images)):" in out


def test_every_layer_of_the_paper_cvae_is_shown(capsys):
    status, out, _ = inspect_cli(capsys, "--model", "cvae", "--batch-size", "6")
    assert status == 0
    cvae = {"encoder.0": "ConditionedConv2d 11->32 k4 s2 p1", "decoder.0": "Linear 12->2048"}
    for name, description, shape in PAPER_VAE:
        architecture = _row(out, name)[0]
        assert cvae.get(name, description) in architecture and shape in architecture
    assert _row(out, "encoder.0")[0].split()[-4] == "11x28x28"      # image + 10 label planes
    assert _row(out, "decoder.0")[0].split()[-4] == "12"            # z + one-hot label


def test_save_writes_the_report_as_json(capsys, tmp_path):
    path = tmp_path / "sub" / "report.json"
    status, out, _ = inspect_cli(capsys, "--batch-size", "4", "--save", str(path), "--beta", "0.5")
    assert status == 0 and f"saved {path}" in out

    def no_constants(name):
        raise AssertionError(f"{name} is not JSON")
    report = json.loads(path.read_text(), parse_constant=no_constants)
    assert set(report) == {"model", "likelihood", "layers", "parameters", "totals", "batch", "loss",
                           "kl_per_dim", "active_units"}
    assert [layer["name"] for layer in report["layers"]] == [name for name, _, _ in PAPER_VAE]
    for layer in report["layers"]:
        assert set(layer) >= {"name", "type", "input_shape", "output_shape", "params", "mflop",
                              "activation", "grad_input_norm", "grad_param_norms"}
        assert set(layer["activation"]) == {"mean", "std", "zero_fraction", "dead_fraction"}
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["encoder.0"]["grad_input_norm"] is None          # the image needs no gradient
    assert set(by_name["decoder.3"]["grad_param_norms"]) == {"weight", "bias"}
    assert by_name["encoder.0"]["params"] == 32 * 1 * 4 * 4 + 32
    loss = report["loss"]
    assert loss["beta"] == 0.5 and loss["total"] == pytest.approx(loss["recon"] + 0.5 * loss["kl"])
    assert sum(report["kl_per_dim"]) == pytest.approx(loss["kl"], rel=1e-5)
    assert report["active_units"]["latent_dim"] == 2 and len(report["active_units"]["variances"]) == 2
    assert report["batch"]["size"] == 4 and report["batch"]["data"].startswith("synthetic")
    assert report["totals"]["mflop_per_image"] == pytest.approx(11.6, abs=0.1)


@pytest.mark.parametrize("kind", ["vae", "cvae"])
def test_observers_see_every_layer_of_the_models_own_step_and_change_nothing(kind):
    rng = np.random.default_rng(4)
    model = (CVAE if kind == "cvae" else VAE)(rng=rng, dtype=np.float64)
    x = rng.random((3, 1, 28, 28))
    labels = np.array([1, 7, 3]) if kind == "cvae" else None
    eps = rng.standard_normal((3, 2))

    def step():
        model.zero_grad()
        logits, mu, logvar = (a.copy() for a in model.forward(x, eps, labels))
        objective = NegativeELBO()
        objective.forward(logits, x, mu, logvar, 0.7)
        model.backward(*objective.backward())
        return (logits, mu, logvar), {n: p.grad.copy() for n, p in model.named_parameters()}

    outputs, grads = step()
    forward, backward = [], []
    with observe(model, forward=lambda name, layer, shape, out: forward.append((name, shape, out.shape)),
                 backward=lambda name, layer, grad: backward.append(name)):
        watched_outputs, watched_grads = step()
    for a, b in zip(outputs, watched_outputs):
        np.testing.assert_array_equal(a, b)
    for name in grads:
        np.testing.assert_array_equal(grads[name], watched_grads[name], err_msg=name)
    names = [name for name, _, _ in forward]
    assert names == [name for name, _, _ in PAPER_VAE[:-1]]
    assert backward == ([f"decoder.{i}" for i in range(7, -1, -1)] + ["reparameterize", "fc_mu", "fc_logvar"]
                        + [f"encoder.{i}" for i in range(6, -1, -1)])
    channels = 11 if kind == "cvae" else 1
    assert forward[0][1:] == ((3, channels, 28, 28), (3, 32, 14, 14))
    assert all(not layer.observers for _, layer in model.named_modules())     # detached after


def test_a_run_directory_is_loaded(capsys, tmp_path):
    save_model(tmp_path / "model.npz", CVAE(latent_dim=3, rng=0))
    status, out, _ = inspect_cli(capsys, str(tmp_path), "--batch-size", "4")
    assert status == 0
    assert f"CVAE, latent dim 3, float32: loaded from {tmp_path}" in out
    assert "Linear 2048->3" in _row(out, "fc_mu")[0]
    status, _, err = inspect_cli(capsys, str(tmp_path), "--model", "vae")
    assert status == 1 and "CVAE" in err


def test_real_data_is_used_when_present(capsys, monkeypatch):
    rng = np.random.default_rng(0)
    fake, fake_labels = inspection.synthetic_digits(300, rng)

    def load_dataset(name, split, root=None, download=True):
        assert split == "test" and not download
        return fake, fake_labels.astype(np.uint8)
    monkeypatch.setattr(npvae.data, "load_dataset", load_dataset)
    status, out, _ = inspect_cli(capsys, "--model", "cvae", "--batch-size", "16", "--active-images", "200")
    assert status == 0
    assert "note:" not in out and "One batch: 16 images, mnist test set" in out
    assert "over the first 200 images of the mnist test set" in out


def test_active_units_follow_burda_et_al():
    mu = np.stack([np.linspace(-1, 1, 100), np.linspace(-0.1, 0.1, 100), np.zeros(100)], axis=1)
    variances, active = inspection.active_units(mu)
    assert active.tolist() == [True, False, False]
    np.testing.assert_allclose(variances, np.var(mu, axis=0))


def test_forward_flops_of_the_paper_layers():
    records = {r.name: r for r in describe(VAE(rng=0))}
    assert records["encoder.0"].mflop * 1e6 == 2 * (32 * 14 * 14) * (1 * 4 * 4) + 32 * 14 * 14
    assert records["fc_mu"].mflop * 1e6 == 2 * 2048 * 2 + 2
    # a transposed convolution costs what the convolution it is the adjoint of costs
    assert records["decoder.5"].mflop * 1e6 - 32 * 14 * 14 == \
        records["encoder.2"].mflop * 1e6 - 64 * 7 * 7


def test_inspect_leaves_the_gradients_of_a_training_step():
    rng = np.random.default_rng(1)
    model = VAE(rng=rng)
    images, labels = inspection.synthetic_digits(5, rng)
    eps = rng.standard_normal((5, 2)).astype(np.float32)
    report = inspection.inspect_model(model, images, labels, eps, beta=1.0)
    x = to_float(images)
    recon, kl = BernoulliLoss(), GaussianKL()
    expected_norms = {}
    model.zero_grad()
    logits, mu, logvar = model.forward(x, eps)
    assert recon.forward(logits, x) == pytest.approx(report["loss"]["recon"])
    assert kl.forward(mu, logvar) == pytest.approx(report["loss"]["kl"])
    model.backward(recon.backward(), *kl.backward(1.0))
    for name, p in model.named_parameters():
        expected_norms[name] = float(np.linalg.norm(p.grad.astype(np.float64)))
    layers = {layer["name"]: layer for layer in report["layers"]}
    for name, norm in expected_norms.items():
        layer, param = name.rsplit(".", 1)
        assert layers[layer]["grad_param_norms"][param] == pytest.approx(norm, rel=1e-5)


@pytest.mark.integration
@pytest.mark.skipif(not HAS_MNIST, reason="needs the MNIST files under $NPVAE_DATA/mnist")
def test_real_mnist_batch_and_active_units_over_test_images(capsys, tmp_path):
    path = tmp_path / "report.json"
    status, out, _ = inspect_cli(capsys, "--data", REAL_DATA, "--batch-size", "32",
                                 "--active-images", "1000", "--save", str(path))
    assert status == 0
    assert "note:" not in out and "One batch: 32 images, mnist test set" in out
    report = json.loads(path.read_text())
    assert report["active_units"]["n_images"] == 1000
    assert report["batch"]["data"] == "mnist test set"
    # an untrained model: pixels near 0.5, so about log 2 nats per pixel
    assert 450 < report["loss"]["recon"] < 650


def test_a_gaussian_decoder_is_inspected_with_its_own_loss(capsys, tmp_path):
    """Defect 1: inspect always used the Bernoulli loss: a Gaussian-decoder model got the BCE
    as its reconstruction term and its learned pixel_logvar never received a gradient."""
    rng = np.random.default_rng(5)
    model = VAE(rng=rng, likelihood="gaussian", variance="learned", pixel_variance=0.05)
    images, labels = inspection.synthetic_digits(6, rng)
    eps = rng.standard_normal((6, 2)).astype(np.float32)
    report = inspection.inspect_model(model, images, labels, eps, beta=0.5)
    x = to_float(images)
    logits, _, _ = model.forward(x, eps)
    assert report["loss"]["recon"] == pytest.approx(model.reconstruction_loss().forward(logits, x), rel=1e-6)
    assert report["loss"]["recon"] != pytest.approx(BernoulliLoss().forward(logits, x), rel=1e-2)
    grad = model.pixel_logvar.grad
    assert report["parameters"]["pixel_logvar"] == pytest.approx(np.linalg.norm(grad.astype(np.float64)))
    assert report["parameters"]["pixel_logvar"] > 0
    assert report["likelihood"]["kind"] == "gaussian" and report["likelihood"]["recon"] == "Gaussian NLL"

    save_model(tmp_path / "model.npz", model)
    status, out, _ = inspect_cli(capsys, str(tmp_path), "--batch-size", "4")
    assert status == 0
    assert "recon (Gaussian NLL)" in out and "|dL/d pixel_logvar|" in out
