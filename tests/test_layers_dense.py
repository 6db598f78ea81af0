"""Dense and Activation: forward/backward against explicit NumPy, owned arrays, reused buffers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import Activation, Dense


def _built(layer, fan_in, dtype="float64", seed=0):
    """The layer inside a one-layer network (which builds it and owns its buffers)."""
    zn.Sequential([layer], input_dim=fan_in, dtype=dtype, seed=seed)
    return layer


def test_forward_backward_explicit():
    rng = np.random.default_rng(0)
    layer = _built(Dense(4, "tanh"), 3)
    layer.W, layer.b = rng.standard_normal((3, 4)), rng.standard_normal(4)
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
    assert layer.backward_from_logits(delta, need_dx=False) is None


def test_buffers_are_reused_per_batch_size():
    layer = _built(Dense(3, "relu"), 2)
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
    relu = _built(Dense(3, "relu"), 2)
    relu.forward(x)
    assert relu.logits is relu.output  # in place
    gelu = _built(Dense(3, "gelu"), 2)
    gelu.forward(x)
    assert gelu.logits is not gelu.output
    out = _built(Dense(3, "softmax"), 2)  # an output fused with its cross-entropy
    out.forward(x)
    assert out.logits is not out.output


def test_owned_arrays_and_errors():
    layer = _built(Dense(3, "relu"), 2, dtype="float32")
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
    assert repr(layer) == "Dense(3, activation='relu')"
    assert layer.n_params == 9


def test_unbuilt_layer_says_how_to_build_it():
    layer = Dense(3)
    assert repr(layer) == "Dense(3)"
    with pytest.raises(AttributeError, match="built into a network"):
        _ = layer.W
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="units must be a positive integer"):
            Dense(bad)
    with pytest.raises(ValueError, match="unknown initializer"):
        Dense(3, init="nope")


def test_no_bias():
    layer = _built(Dense(3, use_bias=False), 2)
    assert [p.shape for p in layer.params] == [(2, 3)]
    assert layer.n_params == 6
    assert repr(layer) == "Dense(3, use_bias=False)"
    x = np.random.default_rng(1).standard_normal((4, 2))
    np.testing.assert_allclose(layer.forward(x), x @ layer.W, rtol=1e-15)
    layer.backward(np.ones((4, 3)))
    np.testing.assert_allclose(layer.dW, x.T @ np.ones((4, 3)), rtol=1e-15)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "gelu", "softmax", "elu"])
def test_activation_layer_equals_dense_with_activation(name):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6, 3))
    fused = zn.Sequential([Dense(4, name)], input_dim=3, seed=0)
    split = zn.Sequential([Dense(4), Activation(name)], input_dim=3, seed=0)
    np.testing.assert_array_equal(fused.forward(X, training=True), split.forward(X, True))
    up = rng.standard_normal((6, 4))
    np.testing.assert_allclose(fused.backward(up), split.backward(up), rtol=1e-14, atol=1e-15)
    for g1, g2 in zip(fused.grads, split.grads):
        np.testing.assert_allclose(g1, g2, rtol=1e-14, atol=1e-15)
    assert repr(split.layers[1]) == f"Activation({name!r})"
    np.testing.assert_array_equal(fused.predict(X), split.predict(X))


@settings(max_examples=examples(25), deadline=None)
@given(n=st.integers(1, 4), steps=st.integers(1, 6), fan_in=st.integers(1, 5),
       units=st.integers(1, 5), act=st.sampled_from(["identity", "tanh", "relu", "softmax"]),
       seed=st.integers(0, 2**16))
def test_sequence_input_is_steps_as_rows(n, steps, fan_in, units, act, seed):
    """(n, T, fan_in) -> (n, T, units): each step as torch.nn.Linear, the gradients those of
    the n*T rows stacked (the same arithmetic: equal to the last bit in one process)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, steps, fan_in))
    g = rng.normal(size=(n, steps, units))
    seq = zn.Sequential([zn.Dense(units, activation=act)], input_shape=(steps, fan_in), seed=0)
    flat = zn.Sequential([zn.Dense(units, activation=act)], input_dim=fan_in, seed=0)
    out = seq.forward(x, training=True)
    assert out.shape == (n, steps, units)
    np.testing.assert_array_equal(out.reshape(-1, units),
                                  flat.forward(x.reshape(-1, fan_in), training=True))
    dx = seq.backward(g)
    np.testing.assert_array_equal(dx.reshape(-1, fan_in), flat.backward(g.reshape(-1, units)))
    for a, b in zip(seq.grads, flat.grads):
        np.testing.assert_array_equal(a, b)
    # Prediction's product may take another summation order (np.dot of a 3-D array).
    np.testing.assert_allclose(seq.predict(x), out, rtol=1e-12, atol=1e-14)
    # Prediction takes a shorter sequence: the steps are independent.
    np.testing.assert_allclose(seq.predict(x[:, :1]), out[:, :1], rtol=1e-12, atol=1e-14)
