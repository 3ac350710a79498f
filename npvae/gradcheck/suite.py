"""Running the named checks of npvae.gradcheck.registry: all of them, some, or one configuration.

``npvae gradcheck`` and the tests (``tests/test_gradcheck_suite.py``) both call :func:`run`
and :func:`run_single`, so what the command reports is exactly what the tests assert.
Everything runs in float64 with central differences (npvae.gradcheck.finite_differences).
"""
import zlib

import numpy as np

from ..runtime import blas_threads
from .layers import DEFAULT_MAX_ENTRIES
from .registry import CHECKS, DEFAULT_RANDOM


def check_rng(seed, name):
    """Each named check has its own stream, so running one alone reproduces it exactly."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def single_threaded():
    """Batch-2 checks call tiny GEMMs thousands of times: on a small machine, BLAS worker
    threads waiting for work cost far more than they give. Use one while checking."""
    return blas_threads(1)


def _known(names):
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown check(s) {', '.join(unknown)}; expected some of {', '.join(CHECKS)}")


def run(names=None, seed=0, max_entries=DEFAULT_MAX_ENTRIES, tolerance=None, n_random=DEFAULT_RANDOM,
        on_rows=None):
    """Run the standard configurations of the named checks (all by default); returns every
    (Label, TensorCheck).

    ``tolerance`` None keeps each check's own. ``on_rows(rows)`` is called after each check,
    to print as results come.
    """
    names = list(CHECKS) if not names else list(names)
    _known(names)
    rows = []
    with single_threaded():
        for name in names:
            check = CHECKS[name]
            new = check.standard(check_rng(seed, name), max_entries,
                                 check.tolerance if tolerance is None else tolerance, n_random)
            rows += new
            if on_rows is not None:
                on_rows(new)
    return rows


def run_single(name, options=None, seed=0, max_entries=DEFAULT_MAX_ENTRIES, tolerance=None):
    """One configuration of the check ``name``: ``options`` (a dict of its ``options``
    keywords) over the defaults. Raises ValueError naming an option it does not take."""
    _known([name])
    check = CHECKS[name]
    options = dict(options or {})
    wrong = [key for key in options if key not in check.options]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do{'es' if len(wrong) == 1 else ''} not apply to {name} "
                         f"(it takes {', '.join(check.options)})")
    with single_threaded():
        return check.single(check_rng(seed, name), max_entries=max_entries,
                            tolerance=check.tolerance if tolerance is None else tolerance, **options)
