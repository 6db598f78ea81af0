"""Compiled kernels: the optional extra ``fast`` (numba, and SciPy: numba's ``np.dot``
calls SciPy's BLAS).

NumPy is the reference implementation and the default without the extra; each kernel
here is a plain loop nest written beside the formula it implements, and every compiled
result is tested equal to the NumPy path. Nothing in this package imports numba at
``import zeronn`` time: the first kernel that is asked for imports it.

- :func:`available` says whether numba and SciPy can be used (without importing them);
  :func:`numpy_only` switches the kernels off for a block (benchmarks, tests).
- :func:`jit` compiles a function with numba's on-disk cache (``cache=True``), in a
  user cache folder when the package folder cannot be written to. Never
  ``parallel=True``: on small machines its threads fight the BLAS threads.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_DISABLE_ENV = "ZERONN_NO_FAST"


def available() -> bool:
    """True when numba and SciPy are installed and not switched off with
    ``ZERONN_NO_FAST=1``."""
    if os.environ.get(_DISABLE_ENV, "") not in ("", "0"):
        return False
    return all(importlib.util.find_spec(name) is not None for name in ("numba", "scipy"))


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """The NumPy reference path inside the block (``ZERONN_NO_FAST=1``), the variable as it
    was (set or not) after it. Not thread-safe: it changes the process's environment."""
    before = os.environ.get(_DISABLE_ENV)
    os.environ[_DISABLE_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[_DISABLE_ENV]
        else:
            os.environ[_DISABLE_ENV] = before


def cache_dir() -> Path:
    """Where compiled kernels are cached when the package folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zeronn" / "numba"


def _prepare_cache() -> None:
    # numba reads NUMBA_CACHE_DIR once, at import: decide before the first import.
    if "numba" in sys.modules or "NUMBA_CACHE_DIR" in os.environ:
        return
    if not os.access(Path(__file__).parent, os.W_OK):
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        os.environ["NUMBA_CACHE_DIR"] = str(folder)


def jit(function: F, *, reassoc: bool = False) -> F:
    """``numba.njit(cache=True, nogil=True, error_model="numpy")`` of ``function`` (numba
    imported on first use).

    ``error_model="numpy"``: a float division by zero gives inf or NaN, as in the NumPy
    reference, instead of raising ZeroDivisionError; without the check before each
    division the compiler can use vector lanes (Adam's step: 4-8x faster).
    ``reassoc=True``: floating-point sums may be reassociated (numba's ``fastmath``
    ``reassoc`` flag alone: NaN and inf behave as without it), so LLVM can vectorise a
    reduction; the results then differ from the IEEE-ordered loop in the last bits.
    """
    _prepare_cache()
    import numba

    options: dict[str, Any] = {"fastmath": {"reassoc"}} if reassoc else {}
    compiled: Any = numba.njit(cache=True, nogil=True, error_model="numpy",
                               **options)(function)
    return compiled
