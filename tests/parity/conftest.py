"""Shared tools of the PyTorch parity tests: the error metric and the worst-error table.

The metric, per array (``relative_error``)::

    max|a - b| / max(max|b|, floor, tiny)

the infinity-norm error relative to the reference's largest entry. It is normwise rather
than elementwise on purpose: rounding moves every entry by a little of the array's
scale, not of its own size. ``tiny`` (the dtype's smallest normal number) means an
all-zero reference, such as a dead ReLU layer's gradient, must be matched exactly.
``floor`` (default 0) is for gradients, which are sums over the batch: it is the mean
size of one summand, ``max(|x|^T |delta|) / N`` for ``dW = x^T delta`` and
``max(sum |delta|) / N`` for ``db``. It only matters when a gradient cancels to far
below its own summands (MAE's signs +-1/size balancing out to exactly 0); the error is
then measured against the size of the terms it came from, the scale its rounding has.
For a cross-entropy's output layer, whose ``delta = (p - y) / N`` itself cancels where
``p ~ y`` (a confident right answer: p carries an ulp of rounding relative to 1), the
summands are taken before that cancellation, ``(|p| + |y|) / N``.
Scalars (loss values) are the 1-element case: ``|a - b| / max(|b|, tiny)``.

Every check records its error under a group name; at the end of the run pytest prints
the worst error seen per group (``pytest tests/parity -q``). This file needs no torch:
the test modules skip themselves when it is absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

_WORST: dict[str, tuple[float, float, str]] = {}  # group -> (worst error, tolerance, where)


def relative_error(actual: Any, expected: Any, floor: float = 0.0) -> float:
    """``max|a - b| / max(max|b|, floor, tiny)`` over the whole array (see the module doc)."""
    a = np.asarray(actual)
    b = np.asarray(expected)
    if a.shape != b.shape:
        raise AssertionError(f"shape {a.shape} differs from the reference's {b.shape}")
    if a.size == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        # Non-finite values must agree exactly (they should not occur at all here).
        return 0.0 if np.array_equal(a, b, equal_nan=True) else float("inf")
    # The difference is taken in float64, so a float32 pair is not rounded again.
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    tiny = float(np.finfo(b.dtype if b.dtype.kind == "f" else np.float64).tiny)
    return diff / max(float(np.max(np.abs(b))), floor, tiny)


class Parity:
    """Checks ``actual`` against a PyTorch ``expected`` and records the error per group."""

    def check(self, group: str, actual: Any, expected: Any, tol: float, what: str = "",
              floor: float = 0.0) -> float:
        """Asserts ``relative_error(actual, expected, floor) <= tol``; returns the error."""
        err = relative_error(actual, expected, floor)
        worst = _WORST.get(group)
        if worst is None or err > worst[0]:
            _WORST[group] = (err, tol, what)
        assert err <= tol, f"{group} {what}: relative error {err:.3e} > {tol:.0e}"
        return err


@pytest.fixture(scope="session")
def parity() -> Parity:
    """Session-wide (so hypothesis tests may use it): ``parity.check(group, a, b, tol)``."""
    return Parity()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Prints the worst relative error per group seen in this run."""
    if not _WORST:
        return
    tr = terminalreporter
    tr.section("zeronn vs PyTorch: worst relative error per group")
    width = max(len(g) for g in _WORST)
    for group in sorted(_WORST):
        err, tol, what = _WORST[group]
        tr.write_line(f"{group:<{width}}  {err:9.2e}  (tolerance {tol:.0e})  {what}")
