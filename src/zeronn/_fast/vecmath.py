"""exp, sigmoid and tanh that compiled loops can vectorise (float32 and float64).

numba compiles ``np.exp``/``np.tanh`` on a scalar to one call of the C library per
element (numba's SIMD math library, Intel's SVML, is not available from PyPI's
llvmlite), so a loop over a gate array runs 5-7x slower than NumPy's own SIMD loops.
These functions are plain arithmetic instead (the Cephes library's algorithms, as NumPy's
and the C libraries' own descend from them), which LLVM turns into vector code:

- ``exp(x)``: x = n·ln 2 + r with |r| <= ln2 / 2 (ln 2 in two parts, Cody and Waite, so
  that n·ln 2 is exact), e^r by a polynomial (float32: degree 6, Cephes' ``expf``) or a
  rational function (float64: Padé, Cephes' ``exp``), times 2^n built from its exponent
  bits (two factors, so that the product overflows to inf or underflows gradually through
  the subnormal numbers as e^x does). NaN stays NaN.
- ``sigmoid(x) = 1 / (1 + exp(-x))``, as ``zeronn.activations`` and torch compute it: exact
  limits 0 and 1, no cancellation on either side.
- ``tanh(x)``: ``1 - 2 / (exp(2|x|) + 1)`` with x's sign for |x| >= 0.625, and an odd
  polynomial (float32) or rational function (float64) below, where the first form would
  cancel (Cephes' ``tanhf``/``tanh``); tanh(±0) is ±0, the sign kept as NumPy keeps it.

Measured against long-double references over every magnitude
(``tests/test_fast_vecmath.py``): float32 exp within 0.95 ulp, sigmoid 2.2, tanh 1.3;
float64 exp 1.5, sigmoid 2.1, tanh 1.3 (NumPy's float32 tanh: 1.4). sigmoid is 0 where
1 + e^-x overflows (x below -88.7 in float32, -709.8 in float64: the exact value is
subnormal there), as the NumPy path gives. Speed, 16,384 float32 values on one
core: exp 6.9 us (NumPy's SIMD loop 7.7), sigmoid 8.4 (NumPy's four passes 15), tanh 11
(NumPy 6.2: a rational approximation without exp would be twice as fast and 6 ulps off).

This module imports numba: only ``kernels()`` functions of ``zeronn._fast`` import it,
on first use. The functions are numba overloads: call them from compiled code only, in
kernels compiled with ``error_model="numpy"`` (``zeronn._fast.jit``: numba's default
checks each division for zero, and the loop is no longer vectorised). numba's on-disk
cache keys a kernel on its own file: after editing this one, clear the ``__pycache__``
folder of ``zeronn/_fast`` (or touch the kernels' files) so that they compile again.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import types
from numba.extending import overload, register_jitable

__all__ = ["exp", "sigmoid", "tanh"]

_F32, _F64 = np.float32, np.float64

# The range reduction's constants, per dtype: x is clamped to [lo, hi] (beyond, e^x is
# 0 or inf anyway, and 2^k stays within the two factors below), then x = k·ln 2 + r with
# ln 2 = ln2_hi + ln2_lo, ln2_hi short enough that k·ln2_hi is exact (Cody and Waite).
# Each: (lo, hi, log2(e), ln2_hi, ln2_lo, 1/2).
_REDUCE_32 = (_F32(-104.0), _F32(89.0), _F32(1.44269504088896341), _F32(0.693359375),
              _F32(-2.12194440e-4), _F32(0.5))
_REDUCE_64 = (_F64(-746.0), _F64(710.0), _F64(1.4426950408889634073599),
              _F64(6.93145751953125e-1), _F64(1.42860682030941723212e-6), _F64(0.5))
# e^r - 1 - r = r^2·E(r) (float32, Cephes expf); e^r = 1 + 2·r·P(r^2) / (Q(r^2) - r·P(r^2))
# (float64, Cephes exp)
_E_32 = (_F32(1.9875691500e-4), _F32(1.3981999507e-3), _F32(8.3334519073e-3),
         _F32(4.1665795894e-2), _F32(1.6666665459e-1), _F32(5.0000001201e-1))
_P_64 = (_F64(1.26177193074810590878e-4), _F64(3.02994407707441961300e-2),
         _F64(9.99999999999999999910e-1))
_Q_64 = (_F64(3.00198505138664455042e-6), _F64(2.52448340349684104192e-3),
         _F64(2.27265548208155028766e-1), _F64(2.00000000000000000009e0))
# tanh(x) for |x| < 0.625: x + x·z·T(z) with z = x^2 (float32, Cephes tanhf), and
# x + x·z·P(z) / Q(z) (float64, Cephes tanh; Q's leading coefficient is 1)
_T_32 = (_F32(-5.70498872745e-3), _F32(2.06390887954e-2), _F32(-5.37397155531e-2),
         _F32(1.33314422036e-1), _F32(-3.33332819422e-1))
_TP_64 = (_F64(-9.64399179425052238628e-1), _F64(-9.92877231001918586564e1),
          _F64(-1.61468768441708447952e3))
_TQ_64 = (_F64(1.12811678491632931402e2), _F64(2.23548839060100448583e3),
          _F64(4.84406305325125486048e3))


@register_jitable
def _reduce(x: Any, c: Any) -> Any:
    """(k, r) with x = k·ln 2 + r, |r| <= ln 2 / 2, both in x's dtype (c: _REDUCE_*)."""
    lo, hi, log2e, ln2_hi, ln2_lo, half = c
    xc = lo if x < lo else (hi if x > hi else x)
    k = np.floor(log2e * xc + half)
    r = xc - k * ln2_hi
    return k, r - k * ln2_lo


# 2^k as two factors built from exponent bits, each normal for k in [-150, 128] (float32)
# or [-1077, 1024] (float64): the product overflows to inf, or underflows gradually
# through the subnormal numbers, as e^x does. (numba computes int32 arithmetic in int64:
# the bit pattern is cast back to 32 bits.)
@register_jitable
def _exp32(x: Any) -> Any:
    k, r = _reduce(x, _REDUCE_32)
    e0, e1, e2, e3, e4, e5 = _E_32
    p = (((((e0 * r + e1) * r + e2) * r + e3) * r + e4) * r + e5) * (r * r) + r + _F32(1)
    n = np.int32(k)
    half = np.int32(n >> 1)
    return (p * np.int32((half + 127) << 23).view(_F32)
            * np.int32((n - half + 127) << 23).view(_F32))


@register_jitable
def _exp64(x: Any) -> Any:
    k, r = _reduce(x, _REDUCE_64)
    p0, p1, p2 = _P_64
    q0, q1, q2, q3 = _Q_64
    rr = r * r
    px = r * ((p0 * rr + p1) * rr + p2)
    p = _F64(1) + _F64(2) * (px / ((((q0 * rr + q1) * rr + q2) * rr + q3) - px))
    n = np.int64(k)
    half = n >> 1
    return (p * np.int64((half + 1023) << 52).view(_F64)
            * np.int64((n - half + 1023) << 52).view(_F64))


@register_jitable
def _tanh_of(x: Any, exp_2ax: Any, small: Any) -> Any:
    """tanh(x) from e^(2|x|) (for |x| >= 0.625) and the small-|x| approximation."""
    one = type(x)(1)
    big = one - (one + one) / (exp_2ax + one)
    return small if abs(x) < type(x)(0.625) else (big if x >= 0 else -big)


@register_jitable
def _tanh32(x: Any) -> Any:
    t0, t1, t2, t3, t4 = _T_32
    z = x * x
    # x·(1 + w) rather than Cephes' x + x·w: the same within the tests' ulps, and
    # tanh(-0) stays -0 (x + (±0) is +0 for x = -0)
    small = x * (_F32(1) + ((((t0 * z + t1) * z + t2) * z + t3) * z + t4) * z)
    return _tanh_of(x, _exp32(_F32(2) * abs(x)), small)


@register_jitable
def _tanh64(x: Any) -> Any:
    p0, p1, p2 = _TP_64
    q0, q1, q2 = _TQ_64
    z = x * x
    small = x * (_F64(1) + z * ((p0 * z + p1) * z + p2) / (((z + q0) * z + q1) * z + q2))
    return _tanh_of(x, _exp64(_F64(2) * abs(x)), small)


@register_jitable
def _sigmoid32(x: Any) -> Any:
    return _F32(1) / (_F32(1) + _exp32(-x))


@register_jitable
def _sigmoid64(x: Any) -> Any:
    return _F64(1) / (_F64(1) + _exp64(-x))


def exp(x: Any) -> Any:
    """e^x of a float32 or float64 scalar (compiled code only)."""
    raise NotImplementedError("zeronn._fast.vecmath.exp runs in compiled code only")


def sigmoid(x: Any) -> Any:
    """1 / (1 + e^-x) of a float32 or float64 scalar (compiled code only)."""
    raise NotImplementedError("zeronn._fast.vecmath.sigmoid runs in compiled code only")


def tanh(x: Any) -> Any:
    """tanh(x) of a float32 or float64 scalar (compiled code only)."""
    raise NotImplementedError("zeronn._fast.vecmath.tanh runs in compiled code only")


def _by_dtype(f32: Any, f64: Any) -> Any:
    """An overload's typing: the float32 or the float64 implementation (None: no match)."""
    def typing(x: Any) -> Any:
        if x == types.float32:
            return f32
        if x == types.float64:
            return f64
        return None
    return typing


for _stub, _f32, _f64 in ((exp, _exp32, _exp64), (sigmoid, _sigmoid32, _sigmoid64),
                          (tanh, _tanh32, _tanh64)):
    overload(_stub)(_by_dtype(_f32, _f64))
