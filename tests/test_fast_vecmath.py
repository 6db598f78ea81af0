"""zeronn._fast.vecmath: the compiled exp, sigmoid and tanh against long-double references,
in ulps of the result, over the whole range of each dtype (hypothesis draws any finite
float, and a fixed grid covers the magnitudes where each function changes form); the
limits, signed zeros, inf and NaN; and LLVM vectorises them (the reason they exist).
Skipped without numba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

numba = pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn._fast import vecmath  # noqa: E402  (imports numba)

#: the largest error allowed, in units in the last place of the exact result
ULPS = {"exp": 2.0, "sigmoid": 3.0, "tanh": 2.0}
DTYPES = [np.float32, np.float64]


@numba.njit(cache=False, error_model="numpy")  # as zeronn._fast.jit
def _exp(x: Any, out: Any) -> None:
    for i in range(x.shape[0]):
        out[i] = vecmath.exp(x[i])


@numba.njit(cache=False, error_model="numpy")  # as zeronn._fast.jit
def _sigmoid(x: Any, out: Any) -> None:
    for i in range(x.shape[0]):
        out[i] = vecmath.sigmoid(x[i])


@numba.njit(cache=False, error_model="numpy")  # as zeronn._fast.jit
def _tanh(x: Any, out: Any) -> None:
    for i in range(x.shape[0]):
        out[i] = vecmath.tanh(x[i])


KERNELS = {"exp": _exp, "sigmoid": _sigmoid, "tanh": _tanh}


def _reference(name: str, x: np.ndarray) -> np.ndarray:
    """The function in long double (80-bit on x86: 11 more bits than float64)."""
    xl = x.astype(np.longdouble)
    with np.errstate(over="ignore", under="ignore"):
        if name == "exp":
            return np.exp(xl)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xl))
        return np.tanh(xl)


def _compiled(name: str, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    KERNELS[name](np.ascontiguousarray(x), out)
    return out


def _ulps(got: np.ndarray, exact: np.ndarray, dtype: Any, name: str) -> np.ndarray:
    """|got - exact| in ulps of the exact value rounded to ``dtype`` (subnormals: in units
    of the smallest subnormal; an overflowing exact value must give inf). sigmoid's
    subnormal results (x below -88.7 in float32, -709.8 in float64, where 1 + e^-x
    overflows) are 0, as in zeronn.activations and torch: within the smallest normal."""
    with np.errstate(over="ignore"):
        rounded = exact.astype(dtype)
    if name == "sigmoid":
        tiny = np.finfo(dtype).tiny
        assert (got[exact < tiny] < tiny).all()
        got, exact, rounded = got[exact >= tiny], exact[exact >= tiny], rounded[exact >= tiny]
    finite = np.isfinite(rounded)
    assert np.array_equal(got[~finite], rounded[~finite])
    spacing = np.spacing(np.abs(rounded[finite])).astype(np.longdouble)
    return np.abs(got[finite].astype(np.longdouble) - exact[finite]) / spacing


if np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant:
    pytest.skip("the references need an extended long double (x86)", allow_module_level=True)


def _grid(dtype: Any) -> np.ndarray:
    """Every magnitude from tiny to overflow, both signs, dense where the forms change."""
    rng = np.random.default_rng(0)
    top = 120.0 if dtype == np.float32 else 760.0
    parts = [rng.uniform(-top, top, 100_000), rng.standard_normal(100_000),
             rng.uniform(-0.7, 0.7, 100_000),  # tanh's polynomial and its edge at 0.625
             np.sign(rng.standard_normal(20_000)) * 10.0 ** rng.uniform(-30, 0, 20_000)]
    return np.concatenate(parts).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["exp", "sigmoid", "tanh"])
def test_within_a_few_ulps_over_the_whole_range(name: str, dtype: Any) -> None:
    x = _grid(dtype)
    errors = _ulps(_compiled(name, x), _reference(name, x), dtype, name)
    assert errors.max() <= ULPS[name], (name, float(errors.max()), x[np.argmax(errors)])


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dtype=st.sampled_from(DTYPES),
       name=st.sampled_from(["exp", "sigmoid", "tanh"]))
def test_any_finite_float(data: Any, dtype: Any, name: str) -> None:
    x = data.draw(arrays(dtype, st.integers(1, 64),
                         elements=st.floats(allow_nan=False, allow_infinity=False,
                                            width=32 if dtype == np.float32 else 64)))
    errors = _ulps(_compiled(name, x), _reference(name, x), dtype, name)
    assert errors.max(initial=0) <= ULPS[name]


@pytest.mark.parametrize("dtype", DTYPES)
def test_limits_zeros_inf_and_nan(dtype: Any) -> None:
    big = np.finfo(dtype).max
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, big, -big], dtype)
    exp, sigmoid, tanh = (_compiled(name, x) for name in ("exp", "sigmoid", "tanh"))
    np.testing.assert_array_equal(exp, [1, 1, np.inf, 0, np.nan, np.inf, 0])
    np.testing.assert_array_equal(sigmoid, [0.5, 0.5, 1, 0, np.nan, 1, 0])
    np.testing.assert_array_equal(tanh, [0, 0, 1, -1, np.nan, 1, -1])
    # tanh is odd down to the sign of zero, as NumPy's (assert_array_equal takes -0 == 0)
    np.testing.assert_array_equal(np.signbit(tanh[:2]), [False, True])
    # exp underflows gradually through the subnormal numbers, as the exact value does
    lowest = np.log(np.finfo(dtype).smallest_subnormal.astype(np.longdouble))
    x = np.linspace(float(lowest) + 1, float(np.log(np.finfo(dtype).tiny)), 50).astype(dtype)
    got, exact = _compiled("exp", x), _reference("exp", x).astype(dtype)
    assert (got > 0).all()
    np.testing.assert_allclose(got, exact, rtol=0.02)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_loops_are_vectorised(dtype: Any) -> None:
    """The functions' point: LLVM turns a loop over them into SIMD code (packed ps/pd
    instructions), where numba's np.exp is one C library call per element."""
    x = np.ones(8, dtype)
    for name, kernel in KERNELS.items():
        _compiled(name, x)
        sig = next(s for s in kernel.signatures if s[0].dtype == numba.from_dtype(dtype))
        asm = kernel.inspect_asm(sig)
        packed = "ps" if dtype == np.float32 else "pd"
        assert f"mul{packed}" in asm and f"add{packed}" in asm, name  # vmulps, mulps, ...
