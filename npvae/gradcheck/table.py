"""The one result table of the gradient checks, and its summary.

A row is ``(label, TensorCheck)``. The label is a :class:`Label` (what was checked and its
configuration) or any string (``check_module``'s users name their own rows):

    layer            configuration                      tensor   entries  worst rel.err  result    time
    conv2d           3->4 k3 s2 p1, 9x9->5x5, N=2, NCHW  input    162/162       4.44e-10  ok       0.01s
"""
from typing import NamedTuple

import numpy as np

WIDTHS = {"layer": 16, "configuration": 58, "tensor": 16}


class Label(NamedTuple):
    """What was checked: the layer (or loss, or model) and its configuration."""
    layer: str
    config: str

    def __str__(self):
        return f"{self.layer} [{self.config}]"

    def __format__(self, spec):
        return format(str(self), spec)


def _parts(label):
    return (label.layer, label.config) if isinstance(label, Label) else (str(label), "")


def header(widths=WIDTHS):
    return (f"{'layer':<{widths['layer']}} {'configuration':<{widths['configuration']}} "
            f"{'tensor':<{widths['tensor']}} {'entries':>11} {'worst rel.err':>13}  {'result':<6} "
            f"{'time':>7}")


def format_row(label, check, widths=WIDTHS):
    layer, config = _parts(label)
    return (f"{layer:<{widths['layer']}} {config:<{widths['configuration']}} "
            f"{check.tensor:<{widths['tensor']}} {f'{check.checked}/{check.size}':>11} "
            f"{check.error:>13.2e}  {'ok' if check.passed else 'FAIL':<6} {check.seconds:>6.2f}s")


def format_table(rows):
    """rows: (label, TensorCheck) pairs -> the aligned table, header first, its text columns
    as wide as their content (``npvae gradcheck`` prints the same columns, row by row, at
    the fixed WIDTHS)."""
    widths = {column: len(column) for column in WIDTHS}
    for label, check in rows:
        layer, config = _parts(label)
        widths["layer"] = max(widths["layer"], len(layer))
        widths["configuration"] = max(widths["configuration"], len(config))
        widths["tensor"] = max(widths["tensor"], len(check.tensor))
    return "\n".join([header(widths)] + [format_row(label, check, widths) for label, check in rows])


def failures(rows):
    return [(label, check) for label, check in rows if not check.passed]


def summary(rows, seconds=None):
    """One paragraph: counts, the worst error and where, the failures."""
    if not rows:
        return "no checks run"
    bad = failures(rows)
    configs = len({label for label, _ in rows})
    lines = [f"{len(rows)} tensor{'s' if len(rows) != 1 else ''} in {configs} "
             f"configuration{'s' if configs != 1 else ''}: "
             f"{len(rows) - len(bad)} passed, {len(bad)} failed"
             + (f" ({seconds:.1f} s)" if seconds is not None else "")]
    for tolerance in sorted({check.tolerance for _, check in rows}):
        group = [(label, check) for label, check in rows if check.tolerance == tolerance]
        label, check = max(group, key=lambda r: (not np.isfinite(r[1].error), r[1].error))
        lines.append(f"worst relative error {check.error:.2e} of {len(group)} "
                     f"tensor{'s' if len(group) != 1 else ''} with tolerance "
                     f"{tolerance:.0e}: {label} {check.tensor}")
    kinks = sum(check.kinks for _, check in rows)
    if kinks:
        lines.append(f"{kinks} sampled entries left out: every step tried crossed a ReLU kink")
    for label, check in bad:
        lines.append(f"FAIL {label} {check.tensor}: relative error "
                     f"{check.error:.2e} > tolerance {check.tolerance:.0e}")
    return "\n".join(lines)
