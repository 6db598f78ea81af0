"""PositionalEmbedding: x + W[:T], its gradients, shorter sequences, errors and config."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn.layers import PositionalEmbedding


def _built(layer: PositionalEmbedding, steps: int, width: int,
           dtype: str = "float64") -> PositionalEmbedding:
    zn.Sequential([layer], input_shape=(steps, width), dtype=dtype, seed=0)
    return layer


@settings(max_examples=30, deadline=None)
@given(max_len=st.integers(1, 16), data=st.data(), width=st.integers(1, 6),
       n=st.integers(1, 4), dtype=st.sampled_from(["float64", "float32"]),
       give_dim=st.booleans())
def test_adds_each_positions_vector(max_len, data, width, n, dtype, give_dim) -> None:
    steps = data.draw(st.integers(1, max_len), label="T")
    layer = _built(PositionalEmbedding(max_len, width if give_dim else None), steps, width,
                   dtype)
    assert layer.dim == width and layer.W.shape == (max_len, width)
    assert layer.W.dtype == np.dtype(dtype)
    x = np.random.default_rng(0).standard_normal((n, steps, width)).astype(dtype)
    out = layer.forward(x, training=True)
    assert out.dtype == np.dtype(dtype)
    for t in range(steps):
        np.testing.assert_array_equal(out[:, t], x[:, t] + layer.W[t])
    np.testing.assert_array_equal(layer.infer(x), out)
    short = layer.infer(x[:, :1])
    np.testing.assert_array_equal(short, out[:, :1])
    g = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    dx = layer.backward(g.copy())
    np.testing.assert_array_equal(dx, g)
    np.testing.assert_allclose(layer.dW[:steps], g.sum(axis=0), rtol=1e-6)
    assert not layer.dW[steps:].any()
    assert layer.backward(g.copy(), need_dx=False) is None


def test_gradients_match_central_differences(central_differences) -> None:
    layer = _built(PositionalEmbedding(5), 3, 2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 2))
    weights = rng.standard_normal(x.shape)

    def loss_of_w(w: np.ndarray) -> float:
        saved = layer.W.copy()
        layer.W = w
        value = float(np.sum(layer.forward(x) * weights))
        layer.W = saved
        return value

    layer.forward(x)
    dx = layer.backward(weights.copy())
    np.testing.assert_allclose(layer.dW, central_differences(loss_of_w, layer.W.copy()),
                               rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(dx, central_differences(
        lambda v: float(np.sum(layer.forward(v) * weights)), x), rtol=1e-7, atol=1e-9)


def test_initialization_is_nanogpts() -> None:
    layer = _built(PositionalEmbedding(64, 32), 10, 32)
    assert layer.W.std() == pytest.approx(0.02, rel=0.05)
    other = _built(PositionalEmbedding(64, init="standard_normal"), 10, 32)
    assert other.W.std() == pytest.approx(1.0, rel=0.05)


def test_in_a_network_with_shorter_predictions() -> None:
    net = zn.Sequential([zn.PositionalEmbedding(10), zn.Dense(3)], input_shape=(6, 4), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 6, 4))
    y = np.random.default_rng(1).standard_normal((2, 6, 3))
    net.layers[0].W = np.random.default_rng(2).standard_normal((10, 4))
    assert zn.check_gradients(net, x, y, loss="mse").max_relative_error < 1e-7
    np.testing.assert_allclose(net.predict(x[:, :2]), net.predict(x)[:, :2], rtol=1e-13)


def test_sequences_longer_than_max_len_fail_at_build() -> None:
    with pytest.raises(ValueError, match=r"max_len=4.*T=6 steps: use PositionalEmbedding\(6\)"):
        zn.Sequential([PositionalEmbedding(4)], input_shape=(6, 3))
    with pytest.raises(ValueError, match=r"dim=5\) gets inputs of 3 features: use dim=3"):
        zn.Sequential([PositionalEmbedding(8, 5)], input_shape=(6, 3))
    with pytest.raises(ValueError, match=r"takes sequences \(n, T, dim\)"):
        zn.Sequential([PositionalEmbedding(8)], input_dim=3)


@pytest.mark.parametrize("args", [(0,), (2.5,), (True,), (4, 0), (4, None, -0.1)])
def test_bad_arguments_fail_clearly(args) -> None:
    with pytest.raises(ValueError, match="PositionalEmbedding"):
        PositionalEmbedding(*args)


def test_config_and_repr() -> None:
    layer = PositionalEmbedding(16)
    assert repr(layer) == "PositionalEmbedding(16)" and layer.config() == {"max_len": 16,
                                                                         "dim": None}
    _built(layer, 8, 4)
    assert repr(layer) == "PositionalEmbedding(16, dim=4)"
    again = PositionalEmbedding(**layer.config())
    assert again.config() == layer.config()
    assert repr(PositionalEmbedding(4, 2, init=0.1)) == "PositionalEmbedding(4, dim=2, init=0.1)"
    assert layer.kind == "positional_embedding" and PositionalEmbedding.time_flexible
    assert zn.layers.LAYERS["PositionalEmbedding"] is PositionalEmbedding
    assert zn.PositionalEmbedding is PositionalEmbedding
