"""Input checks shared by every front end: each failure names the problem and the fix."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

FLOAT_DTYPES = {"float64": np.dtype(np.float64), "float32": np.dtype(np.float32)}


def resolve_dtype(dtype: DTypeLike) -> np.dtype:
    """``"float64"``/``"float32"`` (or the NumPy types) -> ``np.dtype``; anything else fails."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in FLOAT_DTYPES.values():
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    return dt


def positive_number(name: str, value: Any, *, integer: bool = False) -> Any:
    """Checks that ``value`` is a finite number > 0 (an int if ``integer``) and returns it."""
    ok_type = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        want = "a positive integer" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    # an integer is finite (and float() of a very large one would overflow)
    if not (integer or math.isfinite(float(value))) or value <= 0:
        want = "a positive integer" if integer else "a positive finite number"
        raise ValueError(f"{name} must be {want}, got {value!r}")
    return int(value) if integer else float(value)


def flag(name: str, value: Any) -> bool:
    """Checks that ``value`` is True or False (a NumPy bool too) and returns it as bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def non_negative_number(name: str, value: Any) -> float:
    """Checks that ``value`` is a finite number >= 0 and returns it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if not math.isfinite(float(value)) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def number_in(name: str, value: Any, low: float, high: float = math.inf, *,
              integer: bool = False, low_open: bool = False, high_open: bool = False
              ) -> Any:
    """Checks that ``value`` is a number (an int if ``integer``; never a bool or NaN) in the
    interval from ``low`` to ``high``, each end closed unless ``*_open``; returns it."""
    kinds: tuple[type, ...] = (numbers.Integral,) if integer else (numbers.Real,)
    ok = isinstance(value, kinds) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = not math.isnan(v) and (v > low if low_open else v >= low) and (
            v < high if high_open else v <= high)
    if not ok:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} in {lo}{low}, {high}{hi}, got {value!r}")
    return value


def fraction(name: str, value: Any) -> float:
    """Checks that ``value`` is a number in [0, 1) (a share held out, a decay rate) and
    returns it as float."""
    return float(number_in(name, value, 0, 1, high_open=True))


def as_float_array(name: str, a: Any, dtype: np.dtype) -> NDArray:
    """Converts ``a`` to a C-contiguous array of ``dtype``, refusing non-numeric data."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise ValueError(f"{name} could not be read as a numeric array ({exc}): "
                         "pass a rectangular array of numbers") from None
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "O":
            try:
                arr = arr.astype(np.float64)
            except (ValueError, TypeError):
                arr = None  # type: ignore[assignment]
        if arr is None or arr.dtype.kind not in "biuf":
            kind = np.asarray(a).dtype
            raise ValueError(f"{name} must be numeric, got dtype {kind}: "
                             f"convert it first, e.g. {name}.astype(float), or encode labels")
    return np.ascontiguousarray(arr, dtype=dtype)


def check_finite(name: str, a: NDArray) -> None:
    """Raises if ``a`` holds NaN or inf, naming the first bad position."""
    if a.size and not np.isfinite(a).all():
        pos = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        where = f"row {pos[0]}" + (f", column {pos[1]}" if len(pos) > 1 else "")
        raise ValueError(f"{name} contains NaN or inf (first at {where}): "
                         "drop or impute those values before training")


def check_X(X: Any, n_features: int, dtype: np.dtype, name: str = "X") -> NDArray:
    """X -> (n_samples, n_features) array of ``dtype``; clear errors for everything else."""
    arr = as_float_array(name, X, dtype)
    if arr.ndim != 2:
        if arr.ndim == 1 and n_features == 1:
            hint = f"use {name}.reshape(-1, 1)"
        elif arr.ndim == 1:
            hint = f"use {name}.reshape(1, -1) for a single sample"
        else:
            hint = f"reshape it to (n_samples, {n_features})"
        raise ValueError(f"{name} has shape {arr.shape}, expected a 2-D array "
                         f"(n_samples, {n_features}): {hint}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples): pass at least one row")
    if arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the network expects "
                         f"{n_features} (layer_sizes[0]): select the right columns or "
                         "build the network with matching layer_sizes")
    check_finite(name, arr)
    return arr


def check_y(y: Any, n_samples: int, n_outputs: int, dtype: np.dtype, name: str = "y") -> NDArray:
    """y -> (n_samples, n_outputs); a 1-D y is accepted for a single-output network."""
    arr = as_float_array(name, y, dtype)
    if arr.ndim == 1 and n_outputs == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        if arr.ndim == 1:
            hint = (f"the network has {n_outputs} outputs: pass y of shape "
                    f"({arr.shape[0]}, {n_outputs}) (one-hot encode class labels)")
        elif arr.ndim == 2:
            hint = (f"the network has {n_outputs} outputs: pass y with {n_outputs} columns "
                    "or build the network with a matching last layer size")
        else:
            hint = "pass a 1-D or 2-D array"
        raise ValueError(
            f"{name} has shape {arr.shape}, expected ({n_samples}, {n_outputs}): {hint}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} rows but {name} has {arr.shape[0]}: "
                         "they must have one target row per sample")
    check_finite(name, arr)
    return arr


def check_sample_weight(sample_weight: Any, n_samples: int, dtype: np.dtype) -> NDArray | None:
    """None, or sample weights as an (n_samples, 1) array: finite, >= 0, not all zero."""
    if sample_weight is None:
        return None
    w = as_float_array("sample_weight", sample_weight, dtype)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({n_samples},): "
                         "one weight per sample")
    check_finite("sample_weight", w)
    if (w < 0).any():
        raise ValueError("sample_weight has negative values: weights must be >= 0")
    if not (w > 0).any():
        raise ValueError("sample_weight is zero everywhere: at least one sample needs weight")
    return w.reshape(-1, 1).copy()


def normalized_weights(w: NDArray) -> NDArray | None:
    """Weights (n, 1) scaled to sum to n (so a weighted mean is ``mean(w * l)``); None if all 0."""
    total = float(w.sum())
    if total <= 0:
        return None
    return w * (w.shape[0] / total)
