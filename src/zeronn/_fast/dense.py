"""The compiled training epoch of a stack of dense layers: plain loops beside the formulas.

One generic kernel, :func:`train_epochs`, runs whole epochs (or a range of an epoch's
batches) of a network of dense "stages" (``z = x W + b``, ``a = f(z)``) over the flat
parameter buffer: gather the batch, forward, loss and its gradient, backward, the
gradient norms, the optimizer's step and the finiteness checks of ``zeronn.training``.
The activation, loss and optimizer are picked by integer codes inside the loops, so
float32 and float64 are the only two compilations.

Every formula is the one of the NumPy reference (``zeronn.activations``, ``zeronn.losses``,
``zeronn.optim``), in the same order of operations and the same precision: constants are
cast to the array's dtype (as NumPy does with a Python float) through the ``cst`` array,
and sums the reference takes in the array's dtype are taken in float64 here, then set to
inf past the dtype's largest value (where the reference's sum would overflow). Only the
matrix products' summation order differs from BLAS's (a last-bit difference).

The kernel never applies a step whose loss, gradient or new weights are not finite: it
stops there, reports where (``status``), and leaves the weights as they were before that
step; the caller raises the reference path's error.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

# Activation codes (zeronn.activations' built-ins).
IDENTITY, RELU, LEAKY_RELU, ELU, GELU, SIGMOID, TANH, SOFTPLUS, SOFTMAX = range(9)
ACTIVATION_CODES = {"identity": IDENTITY, "relu": RELU, "leaky_relu": LEAKY_RELU, "elu": ELU,
                    "gelu": GELU, "sigmoid": SIGMOID, "tanh": TANH, "softplus": SOFTPLUS,
                    "softmax": SOFTMAX}
# Loss codes (zeronn.losses' built-ins; the cross-entropies fused with their output).
MSE, MAE, HUBER, BCE, CCE = range(5)
LOSS_CODES = {"mse": MSE, "mae": MAE, "huber": HUBER, "binary_crossentropy": BCE,
              "categorical_crossentropy": CCE}
# Optimizer codes: SGD (any momentum, dampening, Nesterov, weight decay), Adam, AdamW.
OPT_SGD, OPT_ADAM, OPT_ADAMW = range(3)

# Slots of the float64 hyperparameter array ``hp``.
HP_MOMENTUM, HP_DAMPENING, HP_NESTEROV, HP_WD, HP_B1, HP_B2, HP_EPS, HP_AMSGRAD, HP_LIMIT, \
    HP_TMAX, HP_SIZE = range(11)
# Slots of the status array: what stopped the kernel, and where.
ST_CODE, ST_EPOCH, ST_BATCH, ST_STEPS, ST_EPOCHS = range(5)
FAIL_LOSS, FAIL_GRADIENT, FAIL_WEIGHTS = 1, 2, 3
# Columns of the per-epoch float64 accumulators ``acc``.
ACC_TOTAL, ACC_WTOTAL, ACC_USED, ACC_PNORM, ACC_FIRED = range(5)

LEAKY_SLOPE = 0.01  # as zeronn.activations
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715
SOFTPLUS_THRESHOLD = 20.0
HUBER_DELTA = 1.0
LOGE2 = math.log(2.0)
# Products of at least this many multiply-adds go to BLAS (np.dot, through SciPy's BLAS);
# below it the plain loops win: a BLAS call costs ~0.3 us (measured on the seed's 2x5 and
# the small workload's 32x1 products: loops 0.2-0.3 us; 8x32x32: loops 1.78, BLAS 1.67 us).
# In float32 the forward loops keep up longer (8x32x32: loops 0.87, BLAS 1.11 us).
BLAS_MIN_MACS = 4096
BLAS_MIN_MACS_F32_FORWARD = 16384
# Sums compiled with reassociation allowed (numba's fastmath "reassoc" alone: NaN and inf
# behave as without it): partial sums in vector lanes, a last-bit difference from NumPy's
# pairwise sums, as BLAS's own blocking is.
REASSOC = ("_dot_rows", "_sumsq")

# Slots of ``cst``: constants in the arrays' dtype (cast once, as NumPy casts a Python
# float in ``array * 0.5``), and a scratch slot to cast a float64 into the dtype.
C_ZERO, C_ONE, C_HALF, C_SLOPE, C_1MSLOPE, C_GELU_C, C_GELU_K, C_GELU_3K, C_SP_T, \
    C_HUBER, C_SCRATCH = range(11)


def constants(dtype: np.dtype) -> np.ndarray:
    """The ``cst`` array for ``dtype`` (the scratch slot last)."""
    return np.array([0.0, 1.0, 0.5, LEAKY_SLOPE, 1.0 - LEAKY_SLOPE, GELU_C, GELU_K,
                     3.0 * GELU_K, SOFTPLUS_THRESHOLD, HUBER_DELTA, 0.0], dtype)


def _cast(cst: Any, value: float) -> Any:
    """``value`` (float64) rounded to the arrays' dtype."""
    cst[C_SCRATCH] = value
    return cst[C_SCRATCH]


def _logaddexp(x: Any, y: Any, cst: Any) -> Any:
    """NumPy's npy_logaddexp: log(e^x + e^y) without overflow."""
    if x == y:
        return x + _cast(cst, LOGE2)
    tmp = x - y
    if tmp > 0:
        return x + np.log1p(np.exp(-tmp))
    if tmp <= 0:
        return y + np.log1p(np.exp(tmp))
    return tmp  # NaN


def _sigmoid(z: Any, cst: Any) -> Any:
    # exp(-logaddexp(0, -z)): 1 / (1 + e^-z) without overflow (zeronn.activations).
    return np.exp(-_logaddexp(cst[C_ZERO], -z, cst))


def _forward_act(code: int, z: Any, a: Any, rows: int, cols: int, cst: Any) -> None:
    """a = f(z), both (units, samples) = (rows, cols) (zeronn.activations' forward)."""
    zero = cst[C_ZERO]
    if code == IDENTITY:
        for i in range(rows):
            for j in range(cols):
                a[i, j] = z[i, j]
    elif code == RELU:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                a[i, j] = zero if v < zero else v  # NaN passes, as np.maximum
    elif code == LEAKY_RELU:
        slope = cst[C_SLOPE]
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                s = v * slope
                a[i, j] = s if v < s else v
    elif code == ELU:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                neg = v if v < zero else zero
                pos = zero if v < zero else v
                a[i, j] = pos + np.expm1(neg)
    elif code == GELU:
        one, half, gc, gk = cst[C_ONE], cst[C_HALF], cst[C_GELU_C], cst[C_GELU_K]
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                inner = (v * v * gk + one) * v * gc
                a[i, j] = v * (np.tanh(inner) + one) * half
    elif code == SIGMOID:
        for i in range(rows):
            for j in range(cols):
                a[i, j] = _sigmoid(z[i, j], cst)
    elif code == TANH:
        for i in range(rows):
            for j in range(cols):
                a[i, j] = np.tanh(z[i, j])
    elif code == SOFTPLUS:
        thr = cst[C_SP_T]
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                a[i, j] = v if v > thr else _logaddexp(zero, v, cst)
    else:  # SOFTMAX over the units of each sample (a column here): subtract the maximum,
        # exponentiate, divide by the sum
        for i in range(cols):
            m = z[0, i]
            for j in range(1, rows):
                if z[j, i] > m or z[j, i] != z[j, i]:
                    m = z[j, i]
            s = zero
            for j in range(rows):
                e = np.exp(z[j, i] - m)
                a[j, i] = e
                s += e
            for j in range(rows):
                a[j, i] = a[j, i] / s


def _backward_act(code: int, d: Any, z: Any, a: Any, rows: int, cols: int, cst: Any) -> None:
    """d = dL/da -> dL/dz in place, all (units, samples) (zeronn.activations' backward)."""
    zero, one = cst[C_ZERO], cst[C_ONE]
    if code == IDENTITY:
        return
    if code == RELU:
        for i in range(rows):
            for j in range(cols):
                d[i, j] = d[i, j] * (one if a[i, j] > zero else zero)
    elif code == LEAKY_RELU:
        c1, c2 = cst[C_1MSLOPE], cst[C_SLOPE]
        for i in range(rows):
            for j in range(cols):
                d[i, j] = d[i, j] * ((one if a[i, j] > zero else zero) * c1 + c2)
    elif code == ELU:
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                d[i, j] = d[i, j] * np.exp(v if v < zero else zero)
    elif code == GELU:
        # 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3k z^2), t = tanh(c (z + k z^3))
        half, gc, gk, g3k = cst[C_HALF], cst[C_GELU_C], cst[C_GELU_K], cst[C_GELU_3K]
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                z2 = v * v
                t = np.tanh((z2 * gk + one) * v * gc)
                inner = (z2 * g3k + one) * gc
                left = (one - t * t) * inner * v * half
                d[i, j] = d[i, j] * ((t + one) * half + left)
    elif code == SIGMOID:
        for i in range(rows):
            for j in range(cols):
                d[i, j] = d[i, j] * ((one - a[i, j]) * a[i, j])
    elif code == TANH:
        for i in range(rows):
            for j in range(cols):
                d[i, j] = d[i, j] * (one - a[i, j] * a[i, j])
    elif code == SOFTPLUS:
        thr = cst[C_SP_T]
        for i in range(rows):
            for j in range(cols):
                v = z[i, j]
                d[i, j] = d[i, j] * (one if v > thr else _sigmoid(v, cst))
    else:  # SOFTMAX: a * (dL/da - sum(dL/da * a)) over the units of each sample
        for i in range(cols):
            s = zero
            for j in range(rows):
                s += d[j, i] * a[j, i]
            for j in range(rows):
                d[j, i] = (d[j, i] - s) * a[j, i]


def _clamp(total: float, tmax: float) -> float:
    """A float64 sum where the reference sums in the dtype: inf past the dtype's range."""
    if total > tmax:
        return math.inf
    if total < -tmax:
        return -math.inf
    return total


def _sumsq(a: Any, lo: int, hi: int) -> float:
    """sum(a[lo:hi]^2), each square in the dtype, summed in float64 (reassociation
    allowed, as :func:`_dot_rows`: one running sum is a chain of dependent additions)."""
    s = 0.0
    for i in range(lo, hi):
        s += a[i] * a[i]
    return s


def _loss(code: int, z: Any, a: Any, y: Any, w: Any, weighted: bool, d: Any, cols: int,
          rows: int, cst: Any, tmax: float) -> float:
    """The loss of outputs a (logits z) against y, all (outputs, samples) = (cols, rows);
    writes dL/dz into d (zeronn.losses; for regression losses dL/da, turned into dL/dz by
    the caller). ``w`` (rows,): the normalised sample weights when ``weighted``."""
    zero, one = cst[C_ZERO], cst[C_ONE]
    acc = 0.0
    if code == MSE:  # mean((a - y)^2); gradient 2 (a - y) / size
        size = rows * cols
        c = _cast(cst, 2.0 / size)
        for j in range(cols):
            for i in range(rows):
                e = a[j, i] - y[j, i]
                if weighted:
                    e2 = e * w[i]
                    acc += e2 * e
                    d[j, i] = e2 * c
                else:
                    acc += e * e
                    d[j, i] = e * c
        return _clamp(acc, tmax) / size
    if code == MAE or code == HUBER:
        size = rows * cols
        c = _cast(cst, 1.0 / size)
        hd = cst[C_HUBER]
        half = cst[C_HALF]
        for j in range(cols):
            for i in range(rows):
                e = a[j, i] - y[j, i]
                ae = abs(e)
                if code == MAE:
                    term = ae
                    if e > zero:
                        gr = one
                    elif e < zero:
                        gr = -one
                    else:
                        gr = e  # 0 (or NaN), as np.sign
                else:  # q = min(|e|, delta): q (|e| - q / 2); gradient clip(e, -delta, delta)
                    q = hd if ae > hd else ae
                    term = (ae - half * q) * q
                    gr = hd if e > hd else (-hd if e < -hd else e)
                if weighted:
                    term = term * w[i]
                    gr = gr * w[i]
                acc += term
                d[j, i] = gr * c
        return _clamp(acc, tmax) / size
    c = _cast(cst, 1.0 / rows)
    if code == BCE:  # (1 - y) z + log(1 + e^-z) per element; fused gradient (p - y) / N
        for j in range(cols):
            for i in range(rows):
                zz = z[j, i]
                term = _logaddexp(zero, -zz, cst) + (one - y[j, i]) * zz
                gr = a[j, i] - y[j, i]
                if weighted:
                    term = term * w[i]
                    gr = gr * w[i]
                acc += term
                d[j, i] = gr * c
        return _clamp(acc, tmax) / rows
    # CCE: sum_k y_k (logsumexp(z - m) - (z_k - m)); fused gradient (p sum(y) - y) / N
    total_lse = 0.0
    total_dot = 0.0
    for i in range(rows):
        m = z[0, i]
        for j in range(1, cols):
            if z[j, i] > m or z[j, i] != z[j, i]:
                m = z[j, i]
        ysum = zero
        ydot = zero
        s = zero
        for j in range(cols):
            sh = z[j, i] - m
            ysum += y[j, i]
            ydot += y[j, i] * sh
            s += np.exp(sh)
        lse = np.log(s)
        if weighted:
            total_lse += w[i] * (ysum * lse - ydot)
        else:
            total_lse += ysum * lse
            total_dot += ydot
        for j in range(cols):
            gr = a[j, i] * ysum - y[j, i]
            if weighted:
                gr = gr * w[i]
            d[j, i] = gr * c
    return (_clamp(total_lse, tmax) - _clamp(total_dot, tmax)) / rows


def _matmul(W: Any, trans: bool, B: Any, C: Any, zero: Any) -> None:
    """C = M B, M = W.T (``trans``) or W: B (q, samples), C (r, samples).

    The network's activations are kept (units, samples) here, so the inner loops run
    along the batch, which is long and contiguous even where the layers are narrow.
    Four terms of each sum at a time (BLAS too sums in blocks): C is read and written a
    quarter as often. The first pass writes C instead of adding to zeros (0 + x is x:
    the same sums, one pass fewer: an outer product is one pass, not two)."""
    r_n, rows = C.shape
    q_n = B.shape[0]
    for r in range(r_n):
        if q_n == 0:
            for i in range(rows):
                C[r, i] = zero
        q = 0
        while q + 4 <= q_n:
            if trans:
                m0, m1, m2, m3 = W[q, r], W[q + 1, r], W[q + 2, r], W[q + 3, r]
            else:
                m0, m1, m2, m3 = W[r, q], W[r, q + 1], W[r, q + 2], W[r, q + 3]
            if q == 0:
                for i in range(rows):
                    C[r, i] = (m0 * B[0, i] + m1 * B[1, i]) + (m2 * B[2, i] + m3 * B[3, i])
            else:
                for i in range(rows):
                    C[r, i] += (m0 * B[q, i] + m1 * B[q + 1, i]) + (m2 * B[q + 2, i]
                                                                    + m3 * B[q + 3, i])
            q += 4
        while q < q_n:
            m0 = W[q, r] if trans else W[r, q]
            if q == 0:
                for i in range(rows):
                    C[r, i] = m0 * B[0, i]
            else:
                for i in range(rows):
                    C[r, i] += m0 * B[q, i]
            q += 1


def _dot_rows(X: Any, k: int, D: Any, j: int, zero: Any) -> Any:
    """sum_i X[k, i] D[j, i]. Compiled with reassociation allowed (``REASSOC``): the
    compiler keeps partial sums in vector lanes (2.5x faster than one running sum)."""
    s = zero
    for i in range(X.shape[1]):
        s += X[k, i] * D[j, i]
    return s


def _sum_samples(D: Any, db: Any) -> None:
    """db[j] = sum_i D[j, i], one sample after another as the reference's
    ``np.add.reduce(delta, axis=0)``: the same bits. (A bias gradient that cancels to 0
    in one order leaves 1e-17 in another, and Adam divides that by its eps: a 1e-9
    relative step.) Four units at a time: four independent chains of additions."""
    units, rows = D.shape
    j = 0
    while j + 4 <= units:
        s0, s1, s2, s3 = D[j, 0], D[j + 1, 0], D[j + 2, 0], D[j + 3, 0]
        for i in range(1, rows):
            s0 += D[j, i]
            s1 += D[j + 1, i]
            s2 += D[j + 2, i]
            s3 += D[j + 3, i]
        db[j], db[j + 1], db[j + 2], db[j + 3] = s0, s1, s2, s3
        j += 4
    while j < units:
        s = D[j, 0]
        for i in range(1, rows):
            s += D[j, i]
        db[j] = s
        j += 1


def _blas_forward(fan_in: int, units: int, rows: int, itemsize: int) -> bool:
    """Whether a layer's forward product goes to BLAS (``BLAS_MIN_MACS``)."""
    least = BLAS_MIN_MACS_F32_FORWARD if itemsize == 4 else BLAS_MIN_MACS
    return fan_in * units * rows >= least


def _dense_forward(x: Any, W: Any, b: Any, has_bias: bool, z: Any, zero: Any) -> None:
    """z = x W + b, kept transposed: x (fan_in, samples), W (fan_in, units), b (units,),
    z (units, samples).

    The callers make the views: loops over arrays passed in this way vectorise (measured
    3x faster than the same loops over views made in this function).
    """
    if _blas_forward(W.shape[0], W.shape[1], x.shape[1], W.itemsize):
        np.dot(W.T, x, z)
    else:
        _matmul(W, True, x, z, zero)
    if has_bias:
        units, rows = z.shape
        for j in range(units):
            bj = b[j]
            for i in range(rows):
                z[j, i] += bj


def _dense_backward(x: Any, W: Any, dW: Any, db: Any, has_bias: bool, d: Any, dx: Any,
                    need_dx: bool, dt: Any, zero: Any) -> None:
    """From dL/dz ``d`` (units, samples): dW = x.T d (fan_in, units), db = sum(d over the
    samples), and dx = d W.T, kept as (fan_in, samples), when ``need_dx``. ``dt``:
    scratch (samples, units)."""
    fan_in, units = W.shape
    rows = d.shape[1]
    big = fan_in * units * rows >= BLAS_MIN_MACS
    if big:
        np.dot(x, d.T, dW)
    elif units < 8:  # few columns: one dot product along the batch each
        for k in range(fan_in):
            for j in range(units):
                dW[k, j] = _dot_rows(x, k, d, j, zero)
    else:  # d transposed once, then rows of dW updated four samples at a time
        for j in range(units):
            for i in range(rows):
                dt[i, j] = d[j, i]
        for k in range(fan_in):
            for j in range(units):
                dW[k, j] = zero
        i = 0
        while i + 4 <= rows:
            for k in range(fan_in):
                x0, x1, x2, x3 = x[k, i], x[k, i + 1], x[k, i + 2], x[k, i + 3]
                for j in range(units):
                    dW[k, j] += (x0 * dt[i, j] + x1 * dt[i + 1, j]) + (x2 * dt[i + 2, j]
                                                                       + x3 * dt[i + 3, j])
            i += 4
        while i < rows:
            for k in range(fan_in):
                x0 = x[k, i]
                for j in range(units):
                    dW[k, j] += x0 * dt[i, j]
            i += 1
    if has_bias:
        _sum_samples(d, db)
    if need_dx:
        if big:
            np.dot(W, d, dx)
        else:
            _matmul(W, False, d, dx, zero)


def _sgd(p: Any, g: Any, buf: Any, hp: Any, lr: float, t: int, cst: Any, tmax: float) -> float:
    """torch.optim.SGD's step (zeronn.optim.SGD._update): the update left in g; its ||.||^2."""
    wd = hp[HP_WD]
    mom = hp[HP_MOMENTUM]
    damp = hp[HP_DAMPENING]
    nesterov = hp[HP_NESTEROV] != 0.0
    wdT = _cast(cst, wd)
    momT = _cast(cst, mom)
    dampT = _cast(cst, 1.0 - damp)
    step = _cast(cst, -lr)
    for i in range(p.size):
        gi = g[i]
        if wd != 0.0:
            gi = gi + p[i] * wdT
        if mom != 0.0:
            if t == 1:
                b = gi
            else:
                b = buf[i] * momT
                b = b + (gi * dampT if damp != 0.0 else gi)
            buf[i] = b
            gi = gi + b * momT if nesterov else b
        g[i] = gi * step
    return _clamp(_sumsq(g, 0, g.size), tmax)


def _adam(p: Any, g: Any, m: Any, v: Any, vmax: Any, hp: Any, lr: float, t: int,
          decoupled: bool, cst: Any, tmax: float) -> float:
    """torch.optim.Adam/AdamW's step (zeronn.optim.Adam._update, its coefficients from
    Adam._begin_step): the update left in g; its ||.||^2."""
    b1 = hp[HP_B1]
    b2 = hp[HP_B2]
    wd = hp[HP_WD]
    ams = hp[HP_AMSGRAD] != 0.0
    bc2 = math.sqrt(1.0 - b2 ** float(t))
    b1T = _cast(cst, b1)
    c1T = _cast(cst, 1.0 - b1)
    b2T = _cast(cst, b2)
    c2T = _cast(cst, (1.0 - b2) / (1.0 - b1) ** 2)
    epsT = _cast(cst, hp[HP_EPS] * bc2)
    stepT = _cast(cst, -lr / (1.0 - b1 ** float(t)) * bc2)
    wdT = _cast(cst, wd)
    dwdT = _cast(cst, -lr * wd)
    # Two passes, each over few arrays: one loop writing g, m, v and vmax while reading p
    # had too many pairs that might overlap for the compiler to check, and ran a scalar
    # square root and division per element (measured 3x slower on tabular's Adam).
    for i in range(p.size):  # the moments
        gi = g[i]
        if wd != 0.0 and not decoupled:
            gi = gi + p[i] * wdT
        gi = gi * c1T
        m[i] = m[i] * b1T + gi
        gi = gi * gi
        v[i] = v[i] * b2T + gi * c2T
    if ams:
        for i in range(p.size):
            if not (vmax[i] >= v[i]):
                vmax[i] = v[i]
    den = vmax if ams else v
    for i in range(p.size):  # the update
        gi = m[i] / (np.sqrt(den[i]) + epsT) * stepT
        if decoupled and wd != 0.0:
            gi = gi + p[i] * dwdT
        g[i] = gi
    return _clamp(_sumsq(g, 0, g.size), tmax)


def _batch_views(rows: int, sizes: Any, Z: Any, A: Any, D1: Any, D2: Any, DT: Any,
                  xb: Any, yb: Any, k_out: int) -> Any:
    """The 2-D views of the flat work buffers for batches of ``rows`` samples, made once
    per kernel call and batch size (a view costs ~35 ns: ~30 a batch were a tenth of the
    seed's epoch): per layer z and a (units, rows) and the transposed delta (rows,
    units); per width ``sizes[j]`` the two delta buffers (sizes[j], rows); the batch's
    inputs (n_in, rows), the same memory as (rows, n_in), and targets (k_out, rows)."""
    L = sizes.size - 1
    offs = np.zeros(L + 1, np.int64)
    for ll in range(L):
        offs[ll + 1] = offs[ll] + rows * sizes[ll + 1]
    zs = [Z[offs[ll]:offs[ll + 1]].reshape((sizes[ll + 1], rows)) for ll in range(L)]
    as_ = [A[offs[ll]:offs[ll + 1]].reshape((sizes[ll + 1], rows)) for ll in range(L)]
    dts = [DT[:rows * sizes[ll + 1]].reshape((rows, sizes[ll + 1])) for ll in range(L)]
    d1s = [D1[:rows * sizes[j]].reshape((sizes[j], rows)) for j in range(L + 1)]
    d2s = [D2[:rows * sizes[j]].reshape((sizes[j], rows)) for j in range(L + 1)]
    xt = xb[:sizes[0] * rows].reshape((sizes[0], rows))
    xr = xb[:sizes[0] * rows].reshape((rows, sizes[0]))
    yt = yb[:k_out * rows].reshape((k_out, rows))
    return zs, as_, dts, d1s, d2s, xt, xr, yt


def train_epochs(X: Any, Y: Any, SW: Any, weighted: bool, perms: Any, shuffled: bool,
                 n_epochs: int, b_lo: int, b_hi: int, bs: int,
                 sizes: Any, acts: Any, woffs: Any, boffs: Any, dead: Any,
                 loss_code: int, opt_code: int, hp: Any, lrs: Any, t0: int,
                 p: Any, g: Any, s1: Any, s2: Any, s3: Any,
                 xb: Any, yb: Any, wn: Any, Z: Any, A: Any, D1: Any, D2: Any, DT: Any,
                 cst: Any, alive: Any, acc: Any, layer_sq: Any, status: Any) -> None:
    """Trains ``n_epochs`` epochs (batches ``b_lo`` to ``b_hi`` of each) in place.

    X (n, d), Y (n, k), SW (n,) raw sample weights (``weighted``); ``perms`` (n_epochs or
    1, n): each epoch's row order (the permutation the reference path draws, or 0..n-1).
    The network: ``sizes`` (L + 1,) widths, ``acts`` (L,) activation codes, ``woffs``/
    ``boffs`` (L,) offsets of W and b in ``p`` (b: -1 without bias), ``dead`` (L,) 1 for
    layers counted by the dead-unit diagnostic. ``hp`` float64 hyperparameters (HP_*),
    ``lrs`` (n_epochs,) each epoch's lr, ``t0`` the optimizer's step count before.
    ``p``/``g`` the flat parameters/gradients, ``s1``-``s3`` the optimizer's flat state
    (SGD: momentum buffer; Adam: exp_avg, exp_avg_sq, max_exp_avg_sq). The rest are flat
    work buffers sized by the caller; every batch's activations and deltas are kept in
    them as (units, samples), the batch along the inner loops. Per epoch it writes
    ``acc`` (n_epochs, 5) (ACC_*) and ``layer_sq`` (n_epochs, L) (the sums of each
    layer's squared gradients); when
    ``b_lo > 0`` the epoch continues from row 0 of ``acc``/``layer_sq``/``alive``.
    ``status`` (5,): ST_CODE 0 or FAIL_*, where (ST_EPOCH, ST_BATCH), the steps taken
    (ST_STEPS) and the epochs finished (ST_EPOCHS).
    """
    n = X.shape[0]
    n_in = X.shape[1]
    k_out = Y.shape[1]
    L = acts.shape[0]
    limit = hp[HP_LIMIT]
    tmax = hp[HP_TMAX]
    zero = cst[C_ZERO]
    t = t0
    steps = 0
    plain_sgd = opt_code == OPT_SGD and hp[HP_MOMENTUM] == 0.0 and hp[HP_WD] == 0.0
    status[ST_CODE] = 0
    status[ST_EPOCHS] = 0
    # Each layer's W and dW (fan_in, units) as views into p and g, made once per call.
    Ws = [p[woffs[ll]:woffs[ll] + sizes[ll] * sizes[ll + 1]].reshape(
        (sizes[ll], sizes[ll + 1])) for ll in range(L)]
    dWs = [g[woffs[ll]:woffs[ll] + sizes[ll] * sizes[ll + 1]].reshape(
        (sizes[ll], sizes[ll + 1])) for ll in range(L)]
    full_rows = min(bs, n)
    full = _batch_views(full_rows, sizes, Z, A, D1, D2, DT, xb, yb, k_out)
    for e in range(n_epochs):
        lr = lrs[e]
        # Plain SGD folds -lr into the output delta (zeronn.training: the gradient buffer
        # then holds the update itself); not for tiny lr, whose squares underflow.
        folded = plain_sgd and lr >= 1e-6
        scale = _cast(cst, -lr)
        unscale = 1.0 / (lr * lr) if folded else 1.0
        perm = perms[e] if shuffled else perms[0]
        if b_lo == 0:  # a new epoch: its accumulators from zero, ||p|| exactly again
            acc[e, ACC_PNORM] = math.sqrt(_clamp(_sumsq(p, 0, p.size), tmax))
            acc[e, ACC_TOTAL] = 0.0
            acc[e, ACC_WTOTAL] = 0.0
            acc[e, ACC_USED] = 0.0
            for ll in range(L):
                layer_sq[e, ll] = 0.0
            for u in range(alive.size):
                alive[u] = 0
        pnorm = acc[e, ACC_PNORM]
        for b in range(b_lo, b_hi):
            s = b * bs
            rows = min(s + bs, n) - s
            zs, as_, dts, d1s, d2s, xt, xr, yt = full if rows == full_rows else \
                _batch_views(rows, sizes, Z, A, D1, D2, DT, xb, yb, k_out)
            # When BLAS takes both of the first layer's products (forward and dW: the
            # same size), it reads the batch as rows (its transpose is free there), and
            # the gather copies whole rows; else the batch's rows are laid out transposed,
            # a column at a time (narrow inputs: 2.8x faster on the seed's 100x2 than a
            # row at a time, whose inner loop is two long).
            rowx = _blas_forward(n_in, sizes[1], rows, X.itemsize)
            if rowx:
                for r in range(rows):
                    src = perm[s + r]
                    for c in range(n_in):
                        xr[r, c] = X[src, c]
            else:
                for c in range(n_in):
                    for r in range(rows):
                        xt[c, r] = X[perm[s + r], c]
            for c in range(k_out):
                for r in range(rows):
                    yt[c, r] = Y[perm[s + r], c]
            bw = float(rows)
            if weighted:
                wsum = 0.0
                for r in range(rows):
                    wn[r] = SW[perm[s + r]]
                    wsum += wn[r]
                wsum = _clamp(wsum, tmax)
                if wsum <= 0:  # only zero-weight rows: nothing to learn from
                    continue
                bw = wsum
                wscale = _cast(cst, rows / wsum)  # scaled to sum to the rows
                for r in range(rows):
                    wn[r] = wn[r] * wscale
            # -- forward --
            for ll in range(L):
                fo = sizes[ll + 1]
                z = zs[ll]
                a = as_[ll]
                bias = p[boffs[ll]:boffs[ll] + fo] if boffs[ll] >= 0 else p[:0]
                if ll > 0:
                    _dense_forward(as_[ll - 1], Ws[ll], bias, boffs[ll] >= 0, z, zero)
                elif rowx:
                    _dense_forward(xr.T, Ws[0], bias, boffs[0] >= 0, z, zero)
                else:
                    _dense_forward(xt, Ws[0], bias, boffs[0] >= 0, z, zero)
                _forward_act(acts[ll], z, a, fo, rows, cst)
                if dead[ll]:
                    base = 0
                    for q in range(ll):
                        if dead[q]:
                            base += sizes[q + 1]
                    for j in range(fo):
                        if alive[base + j] == 0:
                            for i in range(rows):
                                if a[j, i] > zero:
                                    alive[base + j] = 1
                                    break
            # -- loss, dL/dz of the output --
            fo = sizes[L]
            z = zs[L - 1]
            a = as_[L - 1]
            d = d1s[L]
            value = _loss(loss_code, z, a, yt, wn, weighted, d, fo, rows, cst, tmax)
            if loss_code != BCE and loss_code != CCE:
                _backward_act(acts[L - 1], d, z, a, fo, rows, cst)
            if folded:
                for j in range(fo):
                    for i in range(rows):
                        d[j, i] = d[j, i] * scale
            # -- backward --
            cur = 1
            for ll in range(L - 1, -1, -1):
                fi = sizes[ll]
                fo = sizes[ll + 1]
                d = d1s[ll + 1] if cur == 1 else d2s[ll + 1]
                nxt = d2s[ll] if cur == 1 else d1s[ll]
                db = g[boffs[ll]:boffs[ll] + fo] if boffs[ll] >= 0 else g[:0]
                if ll == 0 and rowx:
                    _dense_backward(xr.T, Ws[0], dWs[0], db, boffs[0] >= 0, d, nxt, False,
                                    dts[0], zero)
                elif ll == 0:
                    _dense_backward(xt, Ws[0], dWs[0], db, boffs[0] >= 0, d, nxt, False,
                                    dts[0], zero)
                else:
                    pa = as_[ll - 1]
                    _dense_backward(pa, Ws[ll], dWs[ll], db, boffs[ll] >= 0, d, nxt, True,
                                    dts[ll], zero)
                    _backward_act(acts[ll - 1], nxt, zs[ll - 1], pa, fi, rows, cst)
                cur = 3 - cur
            # -- gradient norms and checks --
            gsq = 0.0
            for ll in range(L):
                hi = woffs[ll + 1] if ll + 1 < L else g.size
                sq = _clamp(_sumsq(g, woffs[ll], hi), tmax)
                layer_sq[e, ll] += sq * unscale
                gsq += sq
            if not (math.isfinite(value) and math.isfinite(gsq)):
                status[ST_CODE] = FAIL_LOSS if not math.isfinite(value) else FAIL_GRADIENT
                status[ST_EPOCH] = e
                status[ST_BATCH] = b
                status[ST_STEPS] = steps
                acc[e, ACC_PNORM] = value  # the failed loss, for the message
                return
            t += 1
            if folded:  # the buffer holds the update already
                usq = gsq
            elif opt_code == OPT_SGD:
                usq = _sgd(p, g, s1, hp, lr, t, cst, tmax)
            else:
                usq = _adam(p, g, s1, s2, s3, hp, lr, t, opt_code == OPT_ADAMW, cst, tmax)
            unorm = math.sqrt(usq) if usq >= 0.0 else math.inf
            if pnorm + unorm < limit:
                for i in range(p.size):
                    p[i] += g[i]
                pnorm += unorm
            else:  # a diverging run: form the new weights in g and check them first
                for i in range(p.size):
                    g[i] = p[i] + g[i]
                sq = _clamp(_sumsq(g, 0, g.size), tmax)
                if not math.isfinite(sq):
                    status[ST_CODE] = FAIL_WEIGHTS
                    status[ST_EPOCH] = e
                    status[ST_BATCH] = b
                    status[ST_STEPS] = steps + 1
                    return
                for i in range(p.size):
                    p[i] = g[i]
                pnorm = math.sqrt(sq)
            steps += 1
            acc[e, ACC_TOTAL] += value * bw
            acc[e, ACC_WTOTAL] += bw
            acc[e, ACC_USED] += 1.0
        acc[e, ACC_PNORM] = pnorm
        fired = 0
        for u in range(alive.size):
            fired += alive[u]
        acc[e, ACC_FIRED] = fired
        status[ST_EPOCHS] = e + 1
    status[ST_STEPS] = steps


_KERNEL: list[Callable[..., None]] = []


def kernel() -> Callable[..., None]:
    """:func:`train_epochs` compiled (numba imported, and the helpers compiled, on first use)."""
    if not _KERNEL:
        from zeronn._fast import jit

        module = globals()
        for name in ("_cast", "_logaddexp", "_sigmoid", "_forward_act", "_backward_act",
                     "_clamp", "_sumsq", "_batch_views", "_blas_forward", "_loss", "_matmul",
                     "_dot_rows", "_sum_samples", "_dense_forward", "_dense_backward", "_sgd",
                     "_adam"):
            module[name] = jit(module[name], reassoc=name in REASSOC)
        _KERNEL.append(jit(train_epochs))
    return _KERNEL[0]
