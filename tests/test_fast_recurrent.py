"""zeronn._fast.recurrent: the compiled LSTM backward step equals the NumPy loop it
replaces bit for bit (the same +, -, * in the same order), in float32 and float64, with
and without an output sequence, stateful or not, on odd sizes; and an LSTM layer's
backward with the kernel equals its backward without (``ZERONN_NO_FAST=1``). Skipped
without numba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import zeronn as zn

pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn.layers import recurrent


def _grads(net: zn.Sequential, x: np.ndarray, g: np.ndarray) -> list[np.ndarray]:
    net.forward(x, training=True)
    dx = net.backward(g.copy())
    return [np.array(dx), *(np.array(d) for d in net.grads)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("stateful", [False, True])
def test_compiled_lstm_backward_equals_numpy(monkeypatch: Any, dtype: str, sequences: bool,
                                             stateful: bool) -> None:
    n, T, D, H = 5, 7, 3, 6
    net = zn.Sequential([zn.LSTM(H, return_sequences=sequences, stateful=stateful)],
                        input_shape=(T, D), dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = (3 * rng.standard_normal((n, T, D))).astype(dtype)   # saturated gates too
    g = rng.standard_normal((n, T, H) if sequences else (n, H)).astype(dtype)
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    assert recurrent.fast_kernels() is not None
    if stateful:
        net.forward(x, training=True)  # a carried state, the same for both passes below
    state = None if not stateful else {k: v.copy() for k, v in net.layers[0]._state.items()}
    fast = _grads(net, x, g)
    monkeypatch.setenv("ZERONN_NO_FAST", "1")
    assert recurrent.fast_kernels() is None
    if stateful:
        net.layers[0]._state = state
    reference = _grads(net, x, g)
    for a, b in zip(fast, reference):
        np.testing.assert_array_equal(a, b)


def test_an_lstm_of_one_unit_uses_the_kernel_on_strided_gates(monkeypatch: Any) -> None:
    """H = 1: every gate block is an (n, 1) column of the (n, 4) gate row."""
    net = zn.Sequential([zn.LSTM(1, return_sequences=True)], input_shape=(4, 2),
                        dtype="float32", seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    g = np.ones((3, 4, 1), np.float32)
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    fast = _grads(net, x, g)
    monkeypatch.setenv("ZERONN_NO_FAST", "1")
    for a, b in zip(fast, _grads(net, x, g)):
        np.testing.assert_array_equal(a, b)
