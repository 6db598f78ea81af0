"""Initializers: shapes, dtypes, and the variance each one promises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zeronn.initializers import INITIALIZERS, get_initializer

EXPECTED_STD = {
    "standard_normal": lambda fi, fo: 1.0,
    "he_normal": lambda fi, fo: math.sqrt(2 / fi),
    "he_uniform": lambda fi, fo: math.sqrt(2 / fi),  # limit sqrt(6/fi) -> std limit/sqrt(3)
    "glorot_normal": lambda fi, fo: math.sqrt(2 / (fi + fo)),
    "glorot_uniform": lambda fi, fo: math.sqrt(2 / (fi + fo)),
    "gpt_normal": lambda fi, fo: 0.02,  # GPT-2's and nanoGPT's, whatever the size
}


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shape_dtype_and_std(name, dtype):
    fi, fo = 300, 200
    W = get_initializer(name)(np.random.default_rng(0), fi, fo, np.dtype(dtype))
    assert W.shape == (fi, fo) and W.dtype == dtype
    assert W.std() == pytest.approx(EXPECTED_STD[name](fi, fo), rel=0.02)
    assert abs(W.mean()) < 0.01


def test_uniform_limits():
    W = get_initializer("he_uniform")(np.random.default_rng(0), 50, 40, np.dtype(np.float64))
    assert np.abs(W).max() <= math.sqrt(6 / 50)
    W = get_initializer("glorot_uniform")(np.random.default_rng(0), 50, 40, np.dtype(np.float64))
    assert np.abs(W).max() <= math.sqrt(6 / 90)


def test_standard_normal_is_the_generators_randn():
    W = get_initializer("standard_normal")(np.random.default_rng(7), 3, 4, np.dtype(np.float64))
    np.testing.assert_array_equal(W, np.random.default_rng(7).standard_normal((3, 4)))


def test_names_and_callables():
    assert get_initializer("xavier_uniform") is INITIALIZERS["glorot_uniform"]
    assert get_initializer("Kaiming_Normal") is INITIALIZERS["he_normal"]

    def mine(rng, fi, fo, dtype):
        return np.full((fi, fo), 0.1, dtype)

    assert get_initializer(mine) is mine
    with pytest.raises(ValueError, match=r"unknown initializer 'zeros'; known: glorot_normal"):
        get_initializer("zeros")
