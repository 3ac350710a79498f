"""Gradient checking: every hand-written gradient against central finite differences in float64.

    from npvae.gradcheck import check_module, format_table
    print(format_table([("Conv2d", r) for r in check_module(Conv2d(3, 8, 4, rng=0), x, rng=0)]))

finite_differences.py  the one engine (central differences, one-sided across ReLU kinks) and
                       check_module, safe for in-place layers
layers.py, losses.py, models.py   one configuration of each layer, loss, whole model
registry.py            the named checks (CHECKS): standard configurations and single ones
suite.py               run(names) and run_single(name, options): what `npvae gradcheck` calls
table.py               the one result table (format_table, format_row) and its summary
"""
from .finite_differences import (DEFAULT_STEP, DEFAULT_TOLERANCE, TensorCheck, check_module,
                                 entries_to_nudge, finite_difference_check, relative_error, worst)
from .layers import DEFAULT_MAX_ENTRIES
from .models import MODEL_TOLERANCE
from .registry import CHECKS, DEFAULT_RANDOM, Check
from .suite import run, run_single
from .table import Label, failures, format_row, format_table, header, summary

__all__ = ["check_module", "finite_difference_check", "format_table", "format_row", "header", "summary",
           "failures", "relative_error", "worst", "TensorCheck", "Label", "entries_to_nudge", "run",
           "run_single", "CHECKS", "Check", "DEFAULT_STEP", "DEFAULT_TOLERANCE", "DEFAULT_MAX_ENTRIES",
           "DEFAULT_RANDOM", "MODEL_TOLERANCE"]
