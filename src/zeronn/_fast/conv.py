"""Compiled kernels of the convolution layer: im2col, col2im and the layout changes
around its GEMMs.

Each kernel is the loop nest of a NumPy step in ``zeronn.layers.conv`` (which stays the
reference, and the default without numba), written so that it gives the same numbers:
copies bit for bit, and col2im's sums in the same order (each pixel adds its windows'
values in kernel-offset order (i, j), as ``add_windows`` does). They exist because NumPy
spends much of a convolution's time on strided copies and short passes around the GEMMs;
a loop nest makes one pass, reads the padding as zeros instead of copying the input into
a padded buffer, and puts col2im's sums straight into dx (N, C, H, W).

Two kernels take another route than the NumPy layers, so they are tested against them
with a tolerance instead of bit for bit:

- :func:`conv_direct` and :func:`conv_direct_grads`: a stride-1 convolution computed
  straight from the padded image, with no ``col`` matrix (for layers with few inputs per
  output, C*KH*KW, where im2col's GEMMs are memory-bound: see ``zeronn.layers.conv``).
  Their sums run in another order than BLAS's (float rounding differs in the last bits).

Max pooling of side-by-side windows (:func:`maxpool_tiled`, ``_backward``) gives the NumPy
layer's numbers exactly. A first compiled max-pool was 2-5x slower than NumPy: its loops
ran along a row of OW outputs (14 in LeNet), too short for LLVM's vectorised loop (8 lanes
times 4 unrolled), so every row took the scalar remainder. Here the 2x2 forward is
unrolled into one short body LLVM vectorises, and the backward runs its arithmetic over
many rows at once into a scratch row block, then copies the rows into place.

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


def nchw_to_gemm_relu(delta: NDArray, a: NDArray, dT: NDArray) -> None:
    """dT[f, n*P + p] = delta[n, f, p] * (a[n, f, p] > 0): ReLU's backward (as
    ``activations``' ``delta * (a > 0)``) folded into :func:`nchw_to_gemm`."""
    n_, f_, p_ = delta.shape
    df, af, tf = delta.ravel(), a.ravel(), dT.ravel()
    one, zero = dT.dtype.type(1), dT.dtype.type(0)
    for f in range(f_):
        for n in range(n_):
            src, dst = U((n * f_ + f) * p_), U((f * n_ + n) * p_)
            for p in range(p_):
                tf[dst + U(p)] = df[src + U(p)] * (one if af[src + U(p)] > 0 else zero)


# -- direct convolution (stride 1) --------------------------------------------------------
# The padded image of one channel is stored as a flat "plane" of HP*WP values (HP = H + 2PH,
# WP = W + 2PW) plus KW - 1 zeros. Computing every output row at the padded width WP (the
# last WP - OW values of a row are thrown away) makes the output (OH*WP values) a 1-D
# correlation of the plane: out[q] = sum over taps (c, i, j) of W[f, c, i, j] *
# plane_c[q + i*WP + j], one long contiguous loop per tap that LLVM vectorises. The taps of
# a kernel row are taken 4 (then 2, then 1) at a time, so each pass over the output row
# block loads and stores it once for several taps. The last 5 taps of a row go in one pass
# instead of 4 + 1 (LeNet's 5-wide kernels, first layer, batch 64, float32: forward
# 0.45-0.51 -> 0.41-0.44 ms, dW 0.43-0.51 -> 0.38-0.39 ms): every pass reloads the row
# block (forward) or the image (dW), so fewer passes pay.

def pad_planes(x: NDArray, ph: int, pw: int, xs: NDArray) -> None:
    """xs[n, c, (r + PH)*WP + PW + t] = x[n, c, r, t]: x inside the zero border of the
    planes (N, C, HP*WP + KW - 1). Only the interior is written (the border stays 0)."""
    n_, c_, h_, w_ = x.shape
    wp = w_ + 2 * pw
    plane = xs.shape[2]
    xf, sf = x.ravel(), xs.ravel()
    for nc in range(n_ * c_):
        for r in range(h_):
            dst = U(nc * plane + (r + ph) * wp + pw)
            src = U((nc * h_ + r) * w_)
            for t in range(w_):
                sf[dst + U(t)] = xf[src + U(t)]


def conv_direct(xs: NDArray, W: NDArray, b: NDArray, use_bias: bool, relu: bool, wp: int,
                acc: NDArray, z: NDArray) -> None:
    """z[n, f, oh, ow] = b[f] + sum_{c,i,j} W[f, c, i, j] * xpad[n, c, oh + i, ow + j]
    (stride 1), from the planes ``xs`` (N, C, HP*WP + KW - 1); with ``relu``, max(v, 0).
    ``acc``: scratch of OH*WP values."""
    n_, f_, oh_, ow_ = z.shape
    c_, kh, kw = W.shape[1], W.shape[2], W.shape[3]
    plane = xs.shape[2]
    m = oh_ * wp
    sf, wf, zf = xs.ravel(), W.ravel(), z.ravel()
    zero = z.dtype.type(0)
    for n in range(n_):
        for f in range(f_):
            for q in range(m):
                acc[U(q)] = zero
            for c in range(c_):
                for i in range(kh):
                    k = ((f * c_ + c) * kh + i) * kw
                    base = (n * c_ + c) * plane + i * wp
                    j = 0
                    while j + 4 <= kw:
                        if kw - j == 5:  # 5 taps left (LeNet's rows): one pass, not 4 + 1
                            w0, w1, w2 = wf[k + j], wf[k + j + 1], wf[k + j + 2]
                            w3, w4 = wf[k + j + 3], wf[k + j + 4]
                            o = U(base + j)
                            for q in range(m):
                                s = o + U(q)
                                acc[U(q)] += ((w0 * sf[s] + w1 * sf[s + U(1)])
                                              + (w2 * sf[s + U(2)] + w3 * sf[s + U(3)])
                                              + w4 * sf[s + U(4)])
                            j += 5
                            break
                        w0, w1, w2, w3 = wf[k + j], wf[k + j + 1], wf[k + j + 2], wf[k + j + 3]
                        o = U(base + j)
                        for q in range(m):
                            s = o + U(q)
                            acc[U(q)] += ((w0 * sf[s] + w1 * sf[s + U(1)])
                                          + (w2 * sf[s + U(2)] + w3 * sf[s + U(3)]))
                        j += 4
                    if j + 2 <= kw:
                        w0, w1 = wf[k + j], wf[k + j + 1]
                        o = U(base + j)
                        for q in range(m):
                            s = o + U(q)
                            acc[U(q)] += w0 * sf[s] + w1 * sf[s + U(1)]
                        j += 2
                    if j < kw:
                        w0 = wf[k + j]
                        o = U(base + j)
                        for q in range(m):
                            acc[U(q)] += w0 * sf[o + U(q)]
            bv = b[f] if use_bias else zero
            for oh in range(oh_):
                dst = U(((n * f_ + f) * oh_ + oh) * ow_)
                src = U(oh * wp)
                for t in range(ow_):
                    v = acc[src + U(t)] + bv
                    zf[dst + U(t)] = zero if relu and v < 0 else v


def conv_direct_grads(xs: NDArray, delta: NDArray, a: NDArray, relu: bool, wp: int,
                      dzp: NDArray, dW: NDArray, db: NDArray) -> None:
    """dW[f, c, i, j] = sum_{n,oh,ow} dz[n, f, oh, ow] * xpad[n, c, oh + i, ow + j] and
    db[f] = sum dz[n, f], from the planes ``xs`` that :func:`conv_direct` read. dz is
    ``delta`` (N, F, OH, OW), or with ``relu`` ``delta * (a > 0)`` (ReLU's backward, folded
    in). ``dzp``: scratch of 3*OH*WP values: dz of two filters of one sample at the padded
    width (0 past OW), and a compact row block. Two filters at a time share each load of
    the image. Compiled with reassociation allowed: each tap's sum is a vectorised
    reduction."""
    n_, f_, oh_, ow_ = delta.shape
    c_, kh, kw = dW.shape[1], dW.shape[2], dW.shape[3]
    plane = xs.shape[2]
    m, p_ = oh_ * wp, oh_ * ow_
    sf, gf, af, wf = xs.ravel(), delta.ravel(), a.ravel(), dW.ravel()
    one, zero = dW.dtype.type(1), dW.dtype.type(0)
    for k in range(wf.size):
        wf[k] = zero
    for f in range(f_):
        db[f] = zero
    for n in range(n_):
        for f0 in range(0, f_, 2):
            two = f0 + 1 < f_
            for e in range(2):
                # dz of filter f0 + e (f0 again when there is no second) into slot e: first
                # masked and summed in one long loop, then spread to the padded width
                f = f0 + e if two else f0
                src, slot = U((n * f_ + f) * p_), U(e * m)
                total = zero
                for q in range(p_):
                    g = gf[src + U(q)]
                    if relu:
                        g = g * (one if af[src + U(q)] > 0 else zero)
                    dzp[U(2 * m + q)] = g
                    total += g
                if e == 0 or two:
                    db[f] += total
                for oh in range(oh_):
                    dst, row = slot + U(oh * wp), U(2 * m + oh * ow_)
                    for t in range(ow_):
                        dzp[dst + U(t)] = dzp[row + U(t)]
                    for t in range(ow_, wp):
                        dzp[dst + U(t)] = zero
            for c in range(c_):
                for i in range(kh):
                    base = (n * c_ + c) * plane + i * wp
                    k0 = ((f0 * c_ + c) * kh + i) * kw
                    k1 = (((f0 + 1) * c_ + c) * kh + i) * kw if two else k0
                    j = 0
                    while j < kw:
                        o = U(base + j)
                        s0 = s1 = s2 = s3 = s4 = t0 = t1 = t2 = t3 = t4 = zero
                        if kw - j == 5:  # 5 taps left: one pass, not 4 + 1
                            taps = 5
                            for q in range(m):
                                g, h, s = dzp[U(q)], dzp[U(m + q)], o + U(q)
                                x0, x1, x2, x3 = sf[s], sf[s + U(1)], sf[s + U(2)], sf[s + U(3)]
                                x4 = sf[s + U(4)]
                                s0 += g * x0
                                s1 += g * x1
                                s2 += g * x2
                                s3 += g * x3
                                s4 += g * x4
                                t0 += h * x0
                                t1 += h * x1
                                t2 += h * x2
                                t3 += h * x3
                                t4 += h * x4
                        elif j + 4 <= kw:
                            taps = 4
                            for q in range(m):
                                g, h, s = dzp[U(q)], dzp[U(m + q)], o + U(q)
                                x0, x1, x2, x3 = sf[s], sf[s + U(1)], sf[s + U(2)], sf[s + U(3)]
                                s0 += g * x0
                                s1 += g * x1
                                s2 += g * x2
                                s3 += g * x3
                                t0 += h * x0
                                t1 += h * x1
                                t2 += h * x2
                                t3 += h * x3
                        elif j + 2 <= kw:
                            taps = 2
                            for q in range(m):
                                g, h, s = dzp[U(q)], dzp[U(m + q)], o + U(q)
                                x0, x1 = sf[s], sf[s + U(1)]
                                s0 += g * x0
                                s1 += g * x1
                                t0 += h * x0
                                t1 += h * x1
                        else:
                            taps = 1
                            for q in range(m):
                                x0 = sf[o + U(q)]
                                s0 += dzp[U(q)] * x0
                                t0 += dzp[U(m + q)] * x0
                        for k, v, w in ((0, s0, t0), (1, s1, t1), (2, s2, t2), (3, s3, t3),
                                        (4, s4, t4)):
                            if k < taps:
                                wf[k0 + j + k] += v
                                if two:
                                    wf[k1 + j + k] += w
                        j += taps


# -- max pooling of side-by-side windows (stride = pool size, no padding) ----------------

def maxpool_tiled(x: NDArray, ph: int, pw: int, out: NDArray, arg: NDArray) -> None:
    """out[n, c, oh, ow] = max of x[n, c, oh*PH + i, ow*PW + j] over the window (i, j);
    arg: the first position i*PW + j holding it (on ties, as the NumPy layer and torch), -1
    where the window holds a NaN (out is then NaN, as np.maximum gives)."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    xf, of, af = x.ravel(), out.ravel(), arg.ravel()
    for nc in range(n_ * c_):
        for oh in range(oh_):
            dst = U((nc * oh_ + oh) * ow_)
            src = U((nc * h_ + oh * ph) * w_)
            if ph == 2 and pw == 2:  # unrolled: LLVM vectorises this body (not the loop below)
                src2 = src + U(w_)
                for t in range(ow_):
                    v0, v1 = xf[src + U(2 * t)], xf[src + U(2 * t + 1)]
                    v2, v3 = xf[src2 + U(2 * t)], xf[src2 + U(2 * t + 1)]
                    m, a = v0, 0
                    if v1 > m:
                        m, a = v1, 1
                    if v2 > m:
                        m, a = v2, 2
                    if v3 > m:
                        m, a = v3, 3
                    nan = (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
                    of[dst + U(t)] = v0 + v1 + v2 + v3 if nan else m
                    af[dst + U(t)] = -1 if nan else a
                continue
            for t in range(ow_):
                m = xf[src + U(t * pw)]
                a = 0 if m == m else -1
                for i in range(ph):
                    for j in range(pw):
                        v = xf[src + U(i * w_ + t * pw + j)]
                        if v > m:
                            m, a = v, i * pw + j
                        elif v != v:
                            m, a = v, -1
                of[dst + U(t)] = m
                af[dst + U(t)] = a


def maxpool_tiled_backward(dout: NDArray, arg: NDArray, ph: int, pw: int, dx: NDArray,
                           tmp: NDArray) -> None:
    """dx[n, c, oh*PH + i, ow*PW + j] = dout[n, c, oh, ow] * (arg == i*PW + j) (the NumPy
    layer's product, so NaN and -0 come out alike), 0 in rows and columns no window
    covers. Every value of dx is written once: no zero-fill first. ``tmp``: scratch of at
    least OW*PW values (more: more output rows per block)."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = dout.shape[2], dout.shape[3]
    gf, af, df = dout.ravel(), arg.ravel(), dx.ravel()
    one, zero = dx.dtype.type(1), dx.dtype.type(0)
    rows, wide = n_ * c_ * oh_, ow_ * pw
    block = max(1, tmp.size // wide)
    for r0 in range(0, rows, block):
        r1 = min(rows, r0 + block)
        q0 = U(r0 * ow_)
        for i in range(ph):
            # one dx row of each output row in [r0, r1) into tmp, in one long loop
            if pw == 2:
                k = 2 * i
                for q in range((r1 - r0) * ow_):
                    g, a = gf[q0 + U(q)], af[q0 + U(q)]
                    tmp[U(2 * q)] = g * (one if a == k else zero)
                    tmp[U(2 * q + 1)] = g * (one if a == k + 1 else zero)
            else:
                for q in range((r1 - r0) * ow_):
                    g, a = gf[q0 + U(q)], af[q0 + U(q)]
                    for j in range(pw):
                        tmp[U(pw * q + j)] = g * (one if a == i * pw + j else zero)
            for r in range(r0, r1):
                row = U(((r // oh_) * h_ + (r % oh_) * ph + i) * w_)
                s = U((r - r0) * wide)
                for t in range(wide):
                    df[row + U(t)] = tmp[s + U(t)]
                for t in range(wide, w_):
                    df[row + U(t)] = zero
    for nc in range(n_ * c_):
        for r in range(oh_ * ph, h_):
            row = U((nc * h_ + r) * w_)
            for t in range(w_):
                df[row + U(t)] = zero


_KERNELS: SimpleNamespace | None = None
_NAMES = ("im2col", "col2im", "gemm_to_nchw", "nchw_to_gemm", "nchw_to_gemm_relu",
          "pad_planes", "conv_direct", "maxpool_tiled", "maxpool_tiled_backward")
# Allowed to reassociate its sums (vectorised reductions); the others keep IEEE order.
_REASSOC = ("conv_direct_grads",)


def kernels() -> Any:
    """The compiled kernels, by name (numba imported here; each kernel compiles for a dtype
    on its first call, then comes from numba's on-disk cache)."""
    global _KERNELS
    if _KERNELS is None:
        from zeronn._fast import jit

        compiled = {name: jit(globals()[name]) for name in _NAMES}
        compiled.update({name: jit(globals()[name], reassoc=True) for name in _REASSOC})
        _KERNELS = SimpleNamespace(**compiled)
    return _KERNELS
