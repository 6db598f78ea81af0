"""Compiled kernels of the convolution layer: im2col, col2im and the layout changes
around its GEMMs.

Each kernel is the loop nest of a NumPy step in ``zeronn.layers.conv`` (which stays the
reference, and the default without numba), written so that it gives the same numbers:
copies bit for bit, and col2im's sums in the same order (each pixel adds its windows'
values in kernel-offset order (i, j), as ``add_windows`` does). They exist because NumPy
spends much of a convolution's time on strided copies and short passes around the GEMMs;
a loop nest makes one pass, reads the padding as zeros instead of copying the input into
a padded buffer, and puts col2im's sums straight into dx (N, C, H, W).

Max pooling has no kernel: measured here, loops whose branches follow the data (the
arg-max) ran 2-5x slower than the NumPy layer's whole-array passes.

Shapes, as in the layers: x (N, C, H, W); a kernel (KH, KW), stride (SH, SW), padding
(PH, PW); OH = (H + 2*PH - KH) // SH + 1, likewise OW; ``colT`` (C*KH*KW, N*OH*OW), the
transposed storage of the book's ``col``, its rows in (c, i, j) order, its columns in
(n, oh, ow) order.

:func:`kernels` compiles them on first use (numba's on-disk cache afterwards); importing
this module does not import numba.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["kernels"]


# Flat offsets are unsigned (U): numba checks every signed index for a negative value to
# wrap around, and that check keeps LLVM from vectorising the inner loops (5x slower here).
U = np.uint64

# In im2col and col2im, output rows oh in [r0, r1) read an image row for kernel row i
# (oh*SH + i - PH in [0, H)), the others the zero padding; columns [q0, q1) likewise.


def im2col(x: NDArray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
           colT: NDArray) -> None:
    """colT[(c, i, j), (n, oh, ow)] = x[n, c, oh*SH + i - PH, ow*SW + j - PW], 0 outside.

    The padding is read as zeros here, so x needs no padded copy first.
    """
    n_, c_, h_, w_ = x.shape
    oh_ = (h_ + 2 * ph - kh) // sh + 1
    ow_ = (w_ + 2 * pw - kw) // sw + 1
    xf, cf = x.ravel(), colT.ravel()
    for c in range(c_):
        for i in range(kh):
            r0 = max(0, (ph - i + sh - 1) // sh)
            r1 = max(r0, min(oh_, (h_ - 1 - i + ph) // sh + 1))
            for j in range(kw):
                q0 = max(0, (pw - j + sw - 1) // sw)
                q1 = max(q0, min(ow_, (w_ - 1 - j + pw) // sw + 1))
                row = ((c * kh + i) * kw + j) * n_ * oh_ * ow_
                for n in range(n_):
                    for oh in range(oh_):
                        dst = U(row + (n * oh_ + oh) * ow_)
                        if oh < r0 or oh >= r1:  # a row of the padding
                            for t in range(ow_):
                                cf[dst + U(t)] = 0
                            continue
                        for t in range(q0):
                            cf[dst + U(t)] = 0
                        src = U(((n * c_ + c) * h_ + oh * sh + i - ph) * w_ + q0 * sw + j - pw)
                        out = dst + U(q0)
                        if sw == 1:
                            for t in range(q1 - q0):
                                cf[out + U(t)] = xf[src + U(t)]
                        else:
                            for t in range(q1 - q0):
                                cf[out + U(t)] = xf[src + U(t * sw)]
                        for t in range(q1, ow_):
                            cf[dst + U(t)] = 0


def col2im(colT: NDArray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int,
           dx: NDArray) -> None:
    """The adjoint of im2col: dx (N, C, H, W) = 0, then every colT value added back to the
    pixel it was read from (values read from the padding are dropped). For each pixel the
    offsets (i, j) add up in row-major order, as ``add_windows`` adds them."""
    n_, c_, h_, w_ = dx.shape
    oh_ = (h_ + 2 * ph - kh) // sh + 1
    ow_ = (w_ + 2 * pw - kw) // sw + 1
    cf, df = colT.ravel(), dx.ravel()
    df[:] = 0
    for c in range(c_):
        for i in range(kh):
            r0 = max(0, (ph - i + sh - 1) // sh)
            r1 = max(r0, min(oh_, (h_ - 1 - i + ph) // sh + 1))
            for j in range(kw):
                q0 = max(0, (pw - j + sw - 1) // sw)
                q1 = max(q0, min(ow_, (w_ - 1 - j + pw) // sw + 1))
                row = ((c * kh + i) * kw + j) * n_ * oh_ * ow_
                for n in range(n_):
                    for oh in range(r0, r1):
                        src = U(row + (n * oh_ + oh) * ow_ + q0)
                        dst = U(((n * c_ + c) * h_ + oh * sh + i - ph) * w_ + q0 * sw + j - pw)
                        if sw == 1:
                            for t in range(q1 - q0):
                                df[dst + U(t)] += cf[src + U(t)]
                        else:
                            for t in range(q1 - q0):
                                df[dst + U(t * sw)] += cf[src + U(t)]


def gemm_to_nchw(gemm: NDArray, b: NDArray, use_bias: bool, relu: bool, z: NDArray) -> None:
    """z[n, f, p] = gemm[f, n*P + p] + b[f]: out.T (F, N*OH*OW) plus the bias, laid out as
    (N, F, OH*OW) (``z`` is (N, F, P)); with ``relu``, ReLU's output instead, max(v, 0)
    (NaN stays NaN, as np.maximum)."""
    n_, f_, p_ = z.shape
    gf, zf = gemm.ravel(), z.ravel()
    for n in range(n_):
        for f in range(f_):
            src, dst = U((f * n_ + n) * p_), U((n * f_ + f) * p_)
            bf = b[f] if use_bias else gf[0] * 0
            for p in range(p_):
                v = gf[src + U(p)] + bf if use_bias else gf[src + U(p)]
                zf[dst + U(p)] = 0 if relu and v < 0 else v


def nchw_to_gemm(delta: NDArray, dT: NDArray) -> None:
    """dT[f, n*P + p] = delta[n, f, p]: dL/dz (N, F, P) in the GEMM's layout (F, N*P)."""
    n_, f_, p_ = delta.shape
    df, tf = delta.ravel(), dT.ravel()
    for f in range(f_):
        for n in range(n_):
            src, dst = U((n * f_ + f) * p_), U((f * n_ + n) * p_)
            for p in range(p_):
                tf[dst + U(p)] = df[src + U(p)]


_KERNELS: SimpleNamespace | None = None
_NAMES = ("im2col", "col2im", "gemm_to_nchw", "nchw_to_gemm")


def kernels() -> Any:
    """The compiled kernels, by name (numba imported here; each kernel compiles for a dtype
    on its first call, then comes from numba's on-disk cache)."""
    global _KERNELS
    if _KERNELS is None:
        from zeronn._fast import jit

        _KERNELS = SimpleNamespace(**{name: jit(globals()[name]) for name in _NAMES})
    return _KERNELS
