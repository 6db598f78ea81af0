"""Compiled kernels of the LSTM layer: the elementwise part of one time step, forward and
backward.

The NumPy loops in ``zeronn.layers.recurrent.LSTM`` (the reference, and the default
without numba) spend a step on one GEMM and 10 (forward) to 25 (backward) short passes
over (n, H) column blocks of the gate arrays, each a ufunc call; at a character model's
sizes (n=32..64, H=128) those calls cost as much as the GEMM. Each kernel here is one loop
over the step's elements doing what the passes do, each gate block a view of its own
indexed from 0 (so that LLVM vectorises the loop: 11.7 -> 4.6 us a backward step at
n=32, H=128, float32).

- :func:`lstm_step`: from the step's pre-activations and h[t-1]·Wh, the gates, c[t],
  tanh(c[t]) and h[t]. Its sigmoid and tanh are ``zeronn._fast.vecmath``'s, which LLVM
  vectorises (numba's own np.exp is one C library call per element: a compiled step with
  it measured 7x slower than NumPy's passes); they are within 2.2 ulps of the exact
  values, as NumPy's are within 1.4 to 3: the forward pass equals the NumPy loop's to
  rounding (18 against 30 us a step).
- :func:`lstm_step_back`: from dL/dh (plus the step's output gradient) and dL/dc, the
  gates' dL/dA and dL/dc_prev, with the NumPy loop's formulas term for term and in its
  order of operations (+, -, *; no contraction into fused multiply-adds), so from the same
  forward pass it gives the same numbers. ``one`` is 1 in the arrays' dtype: a Python 1
  would make numba compute float32 expressions in float64 (NumPy's scalar promotion),
  which rounds differently from the NumPy loop.

Importing this module does not import numba.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from numpy.typing import NDArray

__all__ = ["kernels"]


def _sigmoid(x: Any) -> Any:
    """Replaced by ``zeronn._fast.vecmath.sigmoid`` when the kernels are compiled."""
    raise NotImplementedError


def _tanh(x: Any) -> Any:
    """Replaced by ``zeronn._fast.vecmath.tanh`` when the kernels are compiled."""
    raise NotImplementedError


def lstm_step(a: NDArray, hw: NDArray, c_prev: NDArray, c: NDArray, tanh_c: NDArray,
              h: NDArray) -> None:
    """One forward step: ``a`` (n, 4H) holds x[t]·Wx + b on entry and the gate values i,
    f, g, o on return (``a + h[t-1]·Wh`` through their functions; ``hw`` (4, n, H) is
    h[t-1]·Wh gate by gate); writes c[t] into ``c``, tanh(c[t]) into ``tanh_c`` and h[t]
    into ``h`` (each (n, H))."""
    n, hidden = c.shape
    for r in range(n):
        # each gate's block as a view of its own, indexed from 0: LLVM then vectorises
        ai, af = a[r, :hidden], a[r, hidden:2 * hidden]
        ag, ao = a[r, 2 * hidden:3 * hidden], a[r, 3 * hidden:]
        wi, wf, wg, wo = hw[0, r], hw[1, r], hw[2, r], hw[3, r]
        cp, cr, tr, hr = c_prev[r], c[r], tanh_c[r], h[r]
        for j in range(hidden):
            i = _sigmoid(ai[j] + wi[j])
            f = _sigmoid(af[j] + wf[j])
            g = _tanh(ag[j] + wg[j])
            o = _sigmoid(ao[j] + wo[j])
            ai[j] = i
            af[j] = f
            ag[j] = g
            ao[j] = o
            cc = f * cp[j] + g * i                      # c = f * c_prev + g * i
            cr[j] = cc
            tc = _tanh(cc)
            tr[j] = tc
            hr[j] = o * tc                              # h = o * tanh(c)


def lstm_step_back(a: NDArray, tanh_c: NDArray, c_prev: NDArray, dh: NDArray,
                   dh_out: NDArray, add_out: bool, dc: NDArray, da: NDArray,
                   one: Any) -> None:
    """One backward step: ``dh`` (n, H) is dL/dh[t] from step t + 1 (plus ``dh_out``, the
    output's gradient at t, when ``add_out``; ``dh`` is read only: the caller's next
    product overwrites it with dL/dh[t-1]), ``dc`` is dL/dc[t] on entry and dL/dc[t-1] on
    return; writes dL/dA into ``da`` (n, 4H)."""
    n, hidden = dh.shape
    for r in range(n):
        ai, af = a[r, :hidden], a[r, hidden:2 * hidden]
        ag, ao = a[r, 2 * hidden:3 * hidden], a[r, 3 * hidden:]
        di, df = da[r, :hidden], da[r, hidden:2 * hidden]
        dg, do = da[r, 2 * hidden:3 * hidden], da[r, 3 * hidden:]
        dhr, dor, tr, cp, dcr = dh[r], dh_out[r], tanh_c[r], c_prev[r], dc[r]
        for j in range(hidden):
            d = dhr[j]
            if add_out:
                d = d + dor[j]
            i, f, g, o, tc = ai[j], af[j], ag[j], ao[j], tr[j]
            ds = dcr[j] + (one - tc * tc) * o * d       # dc_next + dh * o * (1 - tanh(c)^2)
            do[j] = (d * tc) * ((one - o) * o)
            di[j] = (ds * g) * ((one - i) * i)
            df[j] = (ds * cp[j]) * ((one - f) * f)
            dg[j] = (ds * i) * (one - g * g)
            dcr[j] = ds * f


_NAMES = ("lstm_step", "lstm_step_back")
_KERNELS: Any = None


def kernels() -> Any:
    """The compiled kernels, by name (numba imported here; each compiles for a dtype on
    its first call, then comes from numba's on-disk cache)."""
    global _KERNELS
    if _KERNELS is None:
        from zeronn._fast import jit, vecmath

        globals().update(_sigmoid=vecmath.sigmoid, _tanh=vecmath.tanh)

        _KERNELS = SimpleNamespace(**{name: jit(globals()[name]) for name in _NAMES})
    return _KERNELS
