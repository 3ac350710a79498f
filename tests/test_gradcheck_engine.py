"""The public check_module (the README's tour) and the one registry and table behind
`npvae gradcheck`: safe for in-place layers, aware of ReLU kinks, one format."""
import inspect

import numpy as np
import pytest

from npvae import gradcheck
from npvae.cli.gradcheck import OPTIONS, add_parser
from npvae.gradcheck import Label, check_module, format_table
from npvae.nn import Conv2d, Linear, ReLU, Sequential


def test_check_module_is_safe_for_in_place_layers():
    """Defect 6: a first layer ReLU(inplace=True) overwrote the input being nudged (its
    negative entries became 0, so every later step crossed the kink): the check measured
    another function than the network's, and failed a correct backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6))
    x += np.sign(x) * 0.1                       # every entry at least 0.1 from the kink
    before = x.copy()
    results = {}
    for inplace in (True, False):
        net = Sequential(ReLU(inplace=inplace), Linear(6, 3, rng=0))
        results[inplace] = check_module(net, x, rng=1)
    np.testing.assert_array_equal(x, before)
    assert [r.tensor for r in results[True]] == ["input", "1.weight", "1.bias"]
    assert all(r.passed and r.checked == r.size for r in results[True]), results[True]
    assert [r.error for r in results[True]] == [r.error for r in results[False]]
    (alone,) = check_module(ReLU(inplace=True), x, rng=1)
    assert alone.passed and alone.error < 1e-8


def test_check_module_steps_around_kinks():
    """Entries closer to ReLU's kink than the step: a central difference there averages the
    two slopes; check_module watches the ReLU and takes the clean side."""
    x = np.array([[3e-7, -4e-7, 0.5, -0.5, 2e-7]])
    (result,) = check_module(ReLU(), x, rng=0, step=1e-6)
    assert result.passed and result.checked == 5 and result.kinks == 0


def test_check_module_keeps_a_channels_last_layout():
    """An NCHW view of channels-last memory (what the models pass between layers) is checked
    as it is, entry for entry, and gives the same verdict as a plain array."""
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 5, 5, 3))
    view = base.transpose(0, 3, 1, 2)
    for x in (view, np.ascontiguousarray(view)):
        results = check_module(Conv2d(3, 4, 3, stride=2, padding=1, rng=0), x, rng=0)
        assert [r.tensor for r in results] == ["input", "weight", "bias"]
        assert all(r.passed for r in results), results
        assert results[0].checked == results[0].size == x.size


def test_check_module_sees_a_wrong_gradient_inside_a_sequential(monkeypatch):
    original = Linear.backward

    def broken(self, grad_out):
        return 1.01 * original(self, grad_out)
    monkeypatch.setattr(Linear, "backward", broken)
    net = Sequential(Linear(4, 5, rng=0), ReLU(inplace=True), Linear(5, 3, rng=1))
    results = {r.tensor: r for r in check_module(net, np.random.default_rng(0).random((2, 4)), rng=0)}
    assert not results["input"].passed
    assert results["2.weight"].passed and not results["0.weight"].passed


def test_one_table_format_for_the_readme_and_the_command():
    rows = [(Label("conv2d", "3->4 k3"), r) for r in
            check_module(Conv2d(3, 4, 3, rng=0), np.zeros((1, 3, 5, 5)) + 0.5, rng=0)]
    table = format_table(rows).splitlines()
    assert table[0].split() == gradcheck.header().split()
    assert [line.split() for line in table[1:]] == [gradcheck.format_row(*row).split() for row in rows]
    assert len({len(line) for line in table}) == 1                  # aligned
    named = format_table([("Conv2d(3, 8, 4, s2, p1), a long name", rows[0][1])]).splitlines()
    assert named[1].startswith("Conv2d(3, 8, 4, s2, p1), a long name ")
    assert named[0].index("tensor") == named[1].index("input")


def test_the_registry_is_the_one_the_command_line_uses():
    """Every option of every check is a keyword of its single function and a flag of
    `npvae gradcheck`; every check runs one configuration at its defaults."""
    import argparse
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    for name, check in gradcheck.CHECKS.items():
        parameters = inspect.signature(check.single).parameters
        for option in check.options:
            assert option in parameters, (name, option)
            assert option in OPTIONS
        rows = gradcheck.run_single(name, max_entries=2)
        assert rows and not gradcheck.failures(rows), gradcheck.summary(rows)
    with pytest.raises(ValueError, match="kernel does not apply to kl"):
        gradcheck.run_single("kl", {"kernel": 3})
