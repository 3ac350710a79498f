"""Gradient checking: every hand-written gradient against central finite differences in float64.

    from npvae.gradcheck import check_module, format_table
    print(format_table([("Conv2d", r) for r in check_module(Conv2d(3, 8, 4, rng=0), x, rng=0)]))

``npvae.gradcheck.suite`` holds the named standard checks behind `npvae gradcheck` and the tests.
"""
from .finite_differences import (DEFAULT_STEP, DEFAULT_TOLERANCE, TensorCheck, check_module,
                                 entries_to_nudge, finite_difference_check, format_table,
                                 relative_error, worst)

__all__ = ["check_module", "finite_difference_check", "format_table", "relative_error", "worst",
           "TensorCheck", "entries_to_nudge", "DEFAULT_STEP", "DEFAULT_TOLERANCE"]
