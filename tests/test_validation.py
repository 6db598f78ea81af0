"""The shared input checks: each message names the problem and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from zeronn._validation import (
    check_sample_weight,
    check_X,
    check_y,
    flag,
    fraction,
    non_negative_number,
    normalized_weights,
    number_in,
    positive_number,
    resolve_dtype,
)

F64 = np.dtype(np.float64)


def test_check_X_converts_and_keeps_dtype():
    X = check_X([[1, 2], [3, 4]], 2, np.dtype(np.float32))
    assert X.dtype == np.float32 and X.flags.c_contiguous
    Xf = np.asfortranarray(np.ones((3, 2)))
    assert check_X(Xf, 2, F64).flags.c_contiguous
    assert check_X(np.array([[True, False]]), 2, F64).tolist() == [[1.0, 0.0]]


def test_check_X_single_feature_hint():
    with pytest.raises(ValueError, match=r"use X.reshape\(-1, 1\)"):
        check_X(np.ones(5), 1, F64)


def test_check_y_messages():
    assert check_y(np.ones(3), 3, 1, F64).shape == (3, 1)
    with pytest.raises(ValueError, match="X has 3 rows but y has 2"):
        check_y(np.ones(2), 3, 1, F64)
    with pytest.raises(ValueError, match=r"pass y with 2 columns"):
        check_y(np.ones((3, 3)), 3, 2, F64)


@pytest.mark.parametrize("value", [0, -1, 1.5, float("nan"), float("inf"), True, "3", None])
def test_positive_integer(value):
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        positive_number("epochs", value, integer=True)


def test_numbers():
    assert positive_number("lr", 0.1) == 0.1
    assert positive_number("n", np.int64(3), integer=True) == 3
    assert non_negative_number("m", 0) == 0.0
    with pytest.raises(ValueError, match="m must be a finite number >= 0"):
        non_negative_number("m", -0.1)


def test_dtype():
    assert resolve_dtype("float32") == np.float32
    assert resolve_dtype(np.float64) == np.float64
    for bad in ("int32", "float16", "nonsense", complex):
        with pytest.raises(ValueError, match="dtype must be 'float64' or 'float32'"):
            resolve_dtype(bad)


def test_sample_weight():
    assert check_sample_weight(None, 3, F64) is None
    w = check_sample_weight([1, 2, 3], 3, F64)
    assert w is not None and w.shape == (3, 1)
    np.testing.assert_allclose(normalized_weights(w), [[0.5], [1.0], [1.5]])
    assert normalized_weights(np.zeros((2, 1))) is None
    with pytest.raises(ValueError, match="zero everywhere"):
        check_sample_weight([0, 0], 2, F64)
    with pytest.raises(ValueError, match="NaN or inf"):
        check_sample_weight([1, np.nan], 2, F64)


def test_number_in_an_interval():
    assert number_in("alpha", 0, 0) == 0
    assert number_in("momentum", 1.0, 0, 1) == 1.0
    assert number_in("max_iter", np.int64(3), 1, integer=True) == 3
    for value in (0, float("nan"), True, "1", None):
        with pytest.raises(ValueError, match=r"^eps must be a number in \(0, inf\], got "):
            number_in("eps", value, 0, low_open=True)
    with pytest.raises(ValueError, match=r"^n must be an integer in \[1, inf\], got 2.0$"):
        number_in("n", 2.0, 1, integer=True)


@pytest.mark.parametrize("value", [0, 0.0, 0.5, np.float32(0.25)])
def test_fraction_accepts(value):
    assert fraction("validation_split", value) == float(value)
    assert isinstance(fraction("validation_split", value), float)


@pytest.mark.parametrize("value", [1, 1.0, -0.1, float("nan"), float("inf"), True, "0.1"])
def test_fraction_refuses(value):
    with pytest.raises(ValueError, match=r"^beta_1 must be a number in \[0, 1\), got "):
        fraction("beta_1", value)


def test_flag_takes_true_or_false_only():
    assert flag("shuffle", True) is True and flag("shuffle", np.bool_(False)) is False
    for value in (1, 0, "yes", None, 1.0):
        with pytest.raises(ValueError, match=r"^shuffle must be True or False, got "):
            flag("shuffle", value)


def test_positive_integer_of_any_size():
    """An integer is finite however large: no float() overflow on the way."""
    assert positive_number("n", 10**400, integer=True) == 10**400
    with pytest.raises(ValueError, match="n must be a positive integer"):
        positive_number("n", -(10**400), integer=True)
