"""Shared test configuration: hypothesis profiles and thread settings.

Hypothesis profiles (select one with ``HYPOTHESIS_PROFILE=<name>`` or pytest's own
``--hypothesis-profile=<name>``):

* ``npvae`` (the default): enough examples per property to exercise every code path
  while the whole engine suite stays around a minute on a 2-core machine.
* ``thorough``: ten times as many examples, for a release or after touching a kernel.
* ``quick``: a handful of examples, for a fast smoke run.

All profiles set ``deadline=None``: the first call of a Numba kernel for a new dtype or
memory layout compiles it, which can take seconds and would otherwise fail the test.
Examples are drawn at random (not derandomized), so every run explores new cases and
failures are replayed from the local example database (``.hypothesis/``).

Tests much cheaper or dearer than a typical one scale ``settings.default.max_examples``
(the active profile's count) rather than hard-coding a number, so the profile still
controls every test.
"""
import os

# The tests call tiny kernels and GEMMs thousands of times (finite differences). On a
# small machine OpenBLAS's worker threads then cost more than they save (they spin
# between calls and contend with Numba's threads): a batch-of-2 model forward pass runs
# 2-10x slower. Run BLAS single-threaded here; this must happen before NumPy is first
# imported, and an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

DEFAULT_EXAMPLES = 50

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("npvae", max_examples=DEFAULT_EXAMPLES, **_common)
settings.register_profile("thorough", max_examples=10 * DEFAULT_EXAMPLES, **_common)
settings.register_profile("quick", max_examples=5, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "npvae"))

