"""Compiled kernels of the LSTM layer: the elementwise part of one backward time step.

The NumPy loop in ``zeronn.layers.recurrent.LSTM`` (the reference, and the default
without numba) spends a backward step on one GEMM and some 25 short passes over (n, H)
column blocks of the gate arrays, each a ufunc call; at a character model's sizes
(n=32..64, H=128) those calls cost as much as the GEMM. :func:`lstm_step_back` is one
loop over the step's elements doing what the passes do: from dL/dh (plus the step's
output gradient) and dL/dc, the gates' dL/dA and dL/dc_prev, with the NumPy loop's
formulas term for term and in its order of operations (+, -, *; no contraction into
fused multiply-adds), so it gives the same numbers. ``one`` is 1 in the arrays' dtype:
a Python 1 would make numba compute float32 expressions in float64 (NumPy's scalar
promotion), which rounds differently from the NumPy loop.

The forward step stays NumPy: its gates need exp and tanh, which NumPy runs as SIMD
loops, and numba (without Intel's SVML) as one libm call per element: a compiled
forward step measured 7x slower than NumPy's (373 against 54 us at n=64, H=128,
float32). Importing this module does not import numba.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from numpy.typing import NDArray

__all__ = ["kernels"]


def lstm_step_back(a: NDArray, tanh_c: NDArray, c_prev: NDArray, dh: NDArray,
                   dh_out: NDArray, add_out: bool, dc: NDArray, da: NDArray,
                   one: Any) -> None:
    """One backward step: ``dh`` (n, H) is dL/dh[t] from step t + 1 (plus ``dh_out``, the
    output's gradient at t, when ``add_out``; ``dh`` is read only: the caller's next
    product overwrites it with dL/dh[t-1]), ``dc`` is dL/dc[t] on entry and dL/dc[t-1] on
    return; writes dL/dA into ``da`` (n, 4H)."""
    n, hidden = dh.shape
    for r in range(n):
        for j in range(hidden):
            d = dh[r, j]
            if add_out:
                d = d + dh_out[r, j]
            i = a[r, j]
            f = a[r, hidden + j]
            g = a[r, 2 * hidden + j]
            o = a[r, 3 * hidden + j]
            tc = tanh_c[r, j]
            ds = dc[r, j] + (one - tc * tc) * o * d       # dc_next + dh * o * (1 - tanh(c)^2)
            da[r, 3 * hidden + j] = (d * tc) * ((one - o) * o)
            da[r, j] = (ds * g) * ((one - i) * i)
            da[r, hidden + j] = (ds * c_prev[r, j]) * ((one - f) * f)
            da[r, 2 * hidden + j] = (ds * i) * (one - g * g)
            dc[r, j] = ds * f


_NAMES = ("lstm_step_back",)
_KERNELS: Any = None


def kernels() -> Any:
    """The compiled kernels, by name (numba imported here; each compiles for a dtype on
    its first call, then comes from numba's on-disk cache)."""
    global _KERNELS
    if _KERNELS is None:
        from zeronn._fast import jit

        _KERNELS = SimpleNamespace(**{name: jit(globals()[name]) for name in _NAMES})
    return _KERNELS
