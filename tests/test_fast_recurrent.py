"""zeronn._fast.recurrent: the compiled LSTM steps against the NumPy loops they replace.
Forward: equal to rounding (the kernel's exp and tanh are zeronn._fast.vecmath's, within
2 ulps of NumPy's), in both dtypes, with and without an output sequence, stateful or not,
with saturated gates. Backward: from the same forward pass, equal bit for bit (the same +,
-, * in the same order). A layer of one unit (strided gate columns), NaN propagation and
``infer`` on a shorter sequence too. Skipped without numba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import zeronn as zn

pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn.layers import recurrent

#: compiled forward against NumPy's, relative to the largest value (7 steps of rounding)
TOL = {"float32": 2e-6, "float64": 1e-14}


def _fast(monkeypatch: Any, on: bool) -> None:
    if on:
        monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
        assert recurrent.fast_kernels() is not None
    else:
        monkeypatch.setenv("ZERONN_NO_FAST", "1")
        assert recurrent.fast_kernels() is None


def _close(a: np.ndarray, b: np.ndarray, dtype: str, name: str = "") -> None:
    assert a.shape == b.shape and a.dtype == b.dtype, name
    scale = max(float(np.abs(b).max(initial=0)), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, err_msg=name)


def _lstm(dtype: str, sequences: bool, stateful: bool = False, n: int = 5, T: int = 7,
          D: int = 3, H: int = 6) -> tuple[zn.Sequential, np.ndarray, np.ndarray]:
    net = zn.Sequential([zn.LSTM(H, return_sequences=sequences, stateful=stateful)],
                        input_shape=(T, D), dtype=dtype, seed=1)
    rng = np.random.default_rng(2)
    x = (3 * rng.standard_normal((n, T, D))).astype(dtype)   # saturated gates too
    g = rng.standard_normal((n, T, H) if sequences else (n, H)).astype(dtype)
    return net, x, g


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("stateful", [False, True])
def test_compiled_lstm_forward_equals_numpy_to_rounding(monkeypatch: Any, dtype: str,
                                                        sequences: bool,
                                                        stateful: bool) -> None:
    net, x, _ = _lstm(dtype, sequences, stateful)
    layer = net.layers[0]
    results = []
    for on in (True, False):
        _fast(monkeypatch, on)
        layer.reset_state()
        first = net.forward(x, training=True)
        second = net.forward(x[::-1].copy(), training=True)  # stateful: from the carried state
        w = layer._buf
        results.append([first, second, w.a.copy(), w.cs.copy(), w.tanh_c.copy(),
                        *(layer._state.values() if stateful else [])])
    for i, (a, b) in enumerate(zip(*results)):
        _close(a, b, dtype, f"result {i}")
    # infer on a shorter sequence (fresh buffers, the same kernel)
    _fast(monkeypatch, True)
    short = net.predict(x[:, :4])
    _fast(monkeypatch, False)
    _close(short, net.predict(x[:, :4]), dtype, "predict")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sequences", [True, False])
@pytest.mark.parametrize("stateful", [False, True])
def test_compiled_lstm_backward_equals_numpy(monkeypatch: Any, dtype: str, sequences: bool,
                                             stateful: bool) -> None:
    """Both backward passes run from one forward pass (its caches are only read)."""
    net, x, g = _lstm(dtype, sequences, stateful)
    if stateful:
        net.forward(x, training=True)  # a carried state for the pass below
    net.forward(x[::-1].copy(), training=True)
    grads = []
    for on in (True, False):
        _fast(monkeypatch, on)
        dx = net.backward(g.copy())
        grads.append([np.array(dx), *(np.array(d) for d in net.grads)])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_an_lstm_of_one_unit_uses_the_kernels_on_strided_gates(monkeypatch: Any) -> None:
    """H = 1: every gate block is an (n, 1) column of the (n, 4) gate row."""
    net = zn.Sequential([zn.LSTM(1, return_sequences=True)], input_shape=(4, 2),
                        dtype="float32", seed=0)
    x = np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32)
    g = np.ones((3, 4, 1), np.float32)
    out = []
    for on in (True, False):
        _fast(monkeypatch, on)
        out.append(net.forward(x, training=True))
    _close(out[0], out[1], "float32")
    grads = []
    for on in (True, False):
        _fast(monkeypatch, on)
        grads.append([np.array(net.backward(g.copy())), *(np.array(d) for d in net.grads)])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_lstm_propagates_nan(monkeypatch: Any, dtype: str) -> None:
    net, x, _ = _lstm(dtype, True)
    x[1, 2, 0] = np.nan
    _fast(monkeypatch, True)
    out = net.layers[0].forward(x, training=True)  # the network would refuse NaN input
    assert np.isnan(out[1, 2:]).all() and np.isfinite(np.delete(out, 1, axis=0)).all()
    assert np.isfinite(out[1, :2]).all()
