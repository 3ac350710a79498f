"""`npvae gradcheck`: exit status, the table, single configurations, and a broken backward
injected here (never in the library) that the command must catch."""
import os
import subprocess
import sys

import pytest

from npvae.cli import main
from npvae.nn import Conv2d


def gradcheck(capsys, *argv):
    status = main(["gradcheck", *argv])
    out, err = capsys.readouterr()
    return status, out, err


def break_conv2d_weight_gradient(monkeypatch, factor=1.01):
    """Conv2d.backward, but what it adds to weight.grad is 1% too large."""
    original = Conv2d.backward

    def broken(self, grad_out):
        before = self.weight.grad.copy()
        result = original(self, grad_out)
        self.weight.grad[...] = before + factor * (self.weight.grad - before)
        return result

    monkeypatch.setattr(Conv2d, "backward", broken)


def test_one_conv2d_configuration(capsys):
    status, out, _ = gradcheck(capsys, "conv2d", "--in", "3", "--out", "4", "--kernel", "3",
                               "--stride", "2", "--padding", "1", "--batch", "2", "--size", "9")
    assert status == 0
    lines = [line for line in out.splitlines() if line.startswith("conv2d ")]
    assert len(lines) == 3
    assert all(f" {tensor} " in line for tensor, line in zip(("input", "weight", "bias"), lines))
    assert "3->4 k3 s2 p1, 9x9->5x5, N=2" in out
    assert all(" ok " in line for line in lines)
    for column in ("layer", "configuration", "tensor", "worst rel.err", "result", "time"):
        assert column in out
    assert "3 passed, 0 failed" in out


@pytest.mark.parametrize("argv", [
    ["convtranspose2d", "--in", "2", "--out", "3", "--kernel", "4", "--stride", "3", "--padding", "1",
     "--output-padding", "2", "--size", "4", "--layout", "NHWC"],
    ["linear", "--in", "7", "--out", "3", "--no-bias"],
    ["relu", "--inplace", "--size", "3x4"],
    ["sigmoid", "--batch", "3"],
    ["bce", "--binary", "--size", "8"],
    ["kl", "--latent-dim", "5", "--beta", "0.25"],
    ["reparameterize", "--batch", "4", "--latent-dim", "3"],
    ["kl", "reparameterize", "bce", "--max-entries", "8"],
    ["reshape", "--in", "3", "--size", "2x5", "--layout", "NHWC"],
    ["gaussian", "--learned", "--size", "6"],
    ["decoder", "--in", "12", "--batch", "1", "--max-entries", "8"],
])
def test_named_checks_and_configurations_pass(capsys, argv):
    status, out, err = gradcheck(capsys, *argv)
    assert status == 0, out + err
    assert "FAIL" not in out and " 0 failed" in out


def test_whole_model(capsys):
    status, out, _ = gradcheck(capsys, "--model", "vae", "--max-entries", "6")
    assert status == 0
    for tensor in ("encoder.0.weight", "fc_mu.weight", "fc_logvar.weight", "decoder.0.weight",
                   "decoder.7.bias"):
        assert tensor in out
    assert "tolerance 1e-06" in out


def test_everything_at_once(capsys):
    """The default run (all checks), thinned out to stay quick."""
    status, out, _ = gradcheck(capsys, "--max-entries", "3", "--random", "1")
    assert status == 0
    layers = {line.split()[0] for line in out.splitlines()[2:] if line and not line[0].isdigit()}
    assert {"linear", "conv2d", "convtranspose2d", "relu", "sigmoid", "flatten", "unflatten", "bce",
            "kl", "reparameterize", "encoder", "decoder", "vae", "cvae"} <= layers


def test_a_broken_backward_is_caught(capsys, monkeypatch):
    break_conv2d_weight_gradient(monkeypatch)
    status, out, _ = gradcheck(capsys, "conv2d", "--in", "3", "--out", "4", "--kernel", "3",
                               "--stride", "2", "--padding", "1", "--batch", "2", "--size", "9")
    assert status == 1
    assert "FAIL" in out
    failing = [line for line in out.splitlines() if line.startswith("conv2d") and "FAIL" in line]
    assert len(failing) == 1 and " weight " in failing[0]
    assert "1 failed" in out


def test_a_broken_backward_is_caught_by_the_standard_checks_and_the_model(capsys, monkeypatch):
    break_conv2d_weight_gradient(monkeypatch)
    status, out, _ = gradcheck(capsys, "conv2d", "vae", "--max-entries", "6", "--random", "1")
    assert status == 1
    assert "FAIL conv2d" in out and "FAIL vae" in out and "encoder.0.weight" in out


def test_tolerance_flag_decides(capsys):
    status, out, _ = gradcheck(capsys, "kl", "--tolerance", "1e-30", "--max-entries", "4")
    assert status == 1 and "FAIL" in out


@pytest.mark.parametrize("argv, message", [
    (["linear", "--output-padding", "1"], "--output-padding does not apply to linear"),
    (["conv3d"], "unknown check"),
    (["conv2d", "kl", "--in", "3"], "exactly one CHECK"),
    (["kl", "--inplace"], "--inplace does not apply to kl"),
    (["encoder", "--kernel", "3"], "--kernel does not apply to encoder"),
    (["conv2d", "--size", "9x"], "--size"),
    (["conv2d", "--kernel", "5", "--size", "2"], "Conv2d"),
])
def test_bad_requests_fail_with_a_message(capsys, argv, message):
    try:
        status, out, err = gradcheck(capsys, *argv)
    except SystemExit as exit_:                       # argparse's own errors
        status, err = exit_.code, capsys.readouterr().err
    assert status != 0
    assert message in err


def test_list(capsys):
    status, out, _ = gradcheck(capsys, "--list")
    assert status == 0 and "conv2d" in out and "cvae" in out


def test_the_installed_command_exits_with_the_right_status():
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "npvae", "gradcheck", "linear", "--in", "4",
                           "--out", "3"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "linear" in done.stdout and "0 failed" in done.stdout


@pytest.mark.parametrize("argv, layer, config", [
    (["conditionedconv2d", "--batch", "3"], "conditionedconv2d", "N=3"),
    (["encoder", "--batch", "1"], "encoder", "Table 1, 1x28x28->2048, N=1"),
    (["encoder", "--in", "11", "--batch", "1"], "encoder", "Table 1, 11x28x28->2048, N=1"),
    (["cvae", "--batch", "1", "--latent-dim", "3"], "cvae", "latent 3, N=1"),
])
def test_every_standard_check_has_a_single_configuration(capsys, argv, layer, config):
    """Defect 7: the command line knew single configurations through a registry of its own,
    which had lost conditionedconv2d and encoder ("has no single configuration")."""
    status, out, err = gradcheck(capsys, *argv, "--max-entries", "4")
    assert status == 0, out + err
    rows = [line for line in out.splitlines() if line.startswith(layer + " ")]
    assert rows and all(config in line and " ok " in line for line in rows)


def test_list_shows_each_checks_flags(capsys):
    status, out, _ = gradcheck(capsys, "--list")
    assert status == 0
    assert "--in --out --kernel --stride --padding --batch --size --output-padding --layout --no-bias" in out
