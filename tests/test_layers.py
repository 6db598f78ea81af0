"""Dense: forward/backward against explicit NumPy, owned arrays, reused buffers."""

from __future__ import annotations

import numpy as np
import pytest

from zeronn.layers import Dense


def test_forward_backward_explicit():
    rng = np.random.default_rng(0)
    layer = Dense(3, 4, "tanh", W=rng.standard_normal((3, 4)), b=rng.standard_normal(4))
    x = rng.standard_normal((5, 3))
    a = layer.forward(x)
    z = x @ layer.W + layer.b
    np.testing.assert_allclose(a, np.tanh(z), rtol=1e-14)
    up = rng.standard_normal((5, 4))
    dx = layer.backward(up.copy())
    delta = up * (1 - np.tanh(z) ** 2)
    np.testing.assert_allclose(layer.dW, x.T @ delta, rtol=1e-13)
    np.testing.assert_allclose(layer.db, delta.sum(0, keepdims=True), rtol=1e-13)
    assert dx is not None
    np.testing.assert_allclose(dx, delta @ layer.W.T, rtol=1e-13)
    assert layer.backward_linear(delta, need_dx=False) is None


def test_buffers_are_reused_per_batch_size():
    layer = Dense(2, 3, "relu")
    a1 = layer.forward(np.ones((4, 2)))
    a2 = layer.forward(np.zeros((4, 2)))
    assert a1 is a2  # same buffer, overwritten
    a3 = layer.forward(np.ones((7, 2)))
    assert a3.shape == (7, 3) and a3 is not a1
    for n in range(10, 20):
        layer.forward(np.ones((n, 2)))
    assert len(layer._cache) <= 4  # bounded
    layer.release()
    assert not layer._cache


def test_keep_z_only_when_needed():
    x = np.ones((2, 2))
    relu = Dense(2, 3, "relu")
    relu.forward(x)
    assert relu._buf is not None and relu._buf.z is relu._buf.a  # in place
    gelu = Dense(2, 3, "gelu")
    gelu.forward(x)
    assert gelu._buf is not None and gelu._buf.z is not gelu._buf.a
    out = Dense(2, 3, "softmax", keep_logits=True)
    out.forward(x)
    assert out._buf is not None and out._buf.z is not out._buf.a


def test_owned_arrays_and_errors():
    layer = Dense(2, 3, "relu", dtype="float32")
    W_before = layer.W
    layer.W = np.ones((2, 3))
    assert layer.W is W_before and layer.W.dtype == np.float32
    layer.b = np.arange(3)
    np.testing.assert_array_equal(layer.b, [[0, 1, 2]])
    assert [p.shape for p in layer.params] == [(2, 3), (1, 3)]
    assert [g.shape for g in layer.grads] == [(2, 3), (1, 3)]
    with pytest.raises(ValueError, match=r"W has shape \(3, 2\), expected \(2, 3\)"):
        layer.W = np.ones((3, 2))
    with pytest.raises(ValueError, match="b must hold finite numbers"):
        layer.b = np.array([1.0, np.nan, 0.0])
    assert repr(layer) == "Dense(2, 3, activation='relu', dtype='float32')"
    assert layer.size == 9
