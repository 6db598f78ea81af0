"""Composite layers: a stack used as one layer, and the residual block x + f(x)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import LAYERS, Composite, Residual


def _block_net(seed: int = 0, dtype: str = "float64") -> zn.Sequential:
    return zn.Sequential([
        zn.Dense(6),
        zn.Residual([zn.LayerNorm(), zn.Dense(12, activation="gelu"), zn.Dense(6)]),
        zn.Residual([zn.BatchNorm(), zn.Dense(6, activation="tanh")]),
        zn.Dense(2),
    ], input_dim=3, seed=seed, dtype=dtype)


def test_residual_adds_its_input_and_both_gradients(rng):
    inner = zn.Sequential([zn.Dense(4, activation="tanh"), zn.Dense(4)], input_dim=4, seed=1)
    block = zn.Sequential([zn.Residual([zn.Dense(4, activation="tanh"), zn.Dense(4)])],
                          input_dim=4, seed=2)
    block.set_params(inner.params)
    x, g = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    np.testing.assert_array_equal(block.forward(x, training=True),
                                  x + inner.forward(x, training=True))
    dx = block.backward(g)
    np.testing.assert_allclose(dx, g + inner.backward(g), rtol=1e-15, atol=1e-15)
    for a, b in zip(block.grads, inner.grads):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(block.predict(x), x + inner.predict(x), rtol=1e-15)


def test_sublayer_parameters_live_in_the_flat_buffer():
    net = _block_net()
    res = net.layers[1]
    assert isinstance(res, Residual)
    assert res.param_names == ("0.gamma", "0.beta", "1.W", "1.b", "2.W", "2.b")
    assert sum(p.size for p in net.params) == net.n_params == net.flat_params.size
    for p in net.params:
        assert np.shares_memory(p, net.flat_params)
    assert net.layers[2].state_names == ("0.running_mean", "0.running_var",
                                         "0.num_batches_tracked")
    assert res.layers[1].rng is net.rng  # Dropout inside a block draws from the network's


@pytest.mark.parametrize("training", [True, False])
def test_check_gradients_through_blocks(rng, training):
    X, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    report = zn.check_gradients(_block_net(), X, y, loss="mse", training=training)
    assert report.max_relative_error < 1e-6, str(report)


def test_save_load_and_copy_keep_blocks(rng, tmp_path):
    net = _block_net()
    X, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 2))
    net.fit(X, y, epochs=3, batch_size=5, seed=0)
    zn.save(net, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    assert repr(back.layers) == repr(net.layers)
    # Loaded weights are the same numbers, and predict runs the same code: equal.
    np.testing.assert_array_equal(back.predict(X), net.predict(X))
    for a, b in zip(back.states(), net.states()):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    f32 = net.copy(dtype="float32")
    np.testing.assert_allclose(f32.predict(X), net.predict(X), rtol=1e-4, atol=1e-5)
    back.fit(X, y, epochs=1, batch_size=5)  # the optimizer's state fits the blocks' params


def test_summary_lists_the_sublayers():
    lines: list[str] = []
    _block_net().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert any(line.split()[:2] == ["2", "Residual"] for line in lines)
    assert "2.1    LayerNorm(eps=1e-05)" in text
    assert "3.2    Dense(6, activation='tanh')" in text


def test_composite_errors():
    with pytest.raises(ValueError, match="non-empty list of layers"):
        zn.Residual([])
    with pytest.raises(ValueError, match="is not a layer"):
        zn.Residual([zn.Dense(2), "relu"])
    dense = zn.Dense(3)
    with pytest.raises(ValueError, match="appears twice"):
        zn.Sequential([zn.Residual([dense]), zn.Residual([dense])], input_dim=3)
    with pytest.raises(ValueError, match=r"must keep the shape .* \(e\.g\. Dense\(3\)\)"):
        zn.Sequential([zn.Residual([zn.Dense(4)])], input_dim=3)


class _Gated(Composite):
    """A user's composite: out = x * sigmoid(stack(x)), written from the stack's passes."""

    def forward(self, x, training=False):
        self._x = x
        self._g = 1 / (1 + np.exp(-super().forward(x, training)))
        return x * self._g

    def backward(self, dout, need_dx=True):
        dg = dout * self._x * self._g * (1 - self._g)
        dx = super().backward(dg, True)
        return dx + dout * self._g

    def infer(self, x):
        return x / (1 + np.exp(-super().infer(x)))


def test_a_users_composite_joins_gradients_and_model_files(rng, tmp_path, monkeypatch):
    net = zn.Sequential([_Gated([zn.Dense(3, activation="tanh"), zn.Dense(3)]), zn.Dense(1)],
                        input_dim=3, seed=0)
    X, y = rng.normal(size=(8, 3)), rng.normal(size=(8, 1))
    assert zn.check_gradients(net, X, y).max_relative_error < 1e-6
    with pytest.raises(ValueError, match="add a new layer class to that table"):
        zn.save(net, tmp_path / "m.zeronn")
    monkeypatch.setitem(LAYERS, "_Gated", _Gated)
    zn.save(net, tmp_path / "m.zeronn")
    np.testing.assert_array_equal(zn.load(tmp_path / "m.zeronn").predict(X), net.predict(X))


@settings(max_examples=examples(20), deadline=None)
@given(depth=st.integers(1, 3), width=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_nested_composites_equal_the_flat_stack(depth, width, seed):
    """Composite([Composite([...])]) computes what the same layers in a row compute."""
    def stack():
        return [zn.Dense(width, activation="tanh") for _ in range(depth)]
    flat = zn.Sequential(stack(), input_dim=width, seed=seed)
    nested = zn.Sequential([Composite([Composite(stack())])], input_dim=width, seed=seed + 1)
    nested.set_params(flat.params)
    x = np.random.default_rng(seed).normal(size=(3, width))
    np.testing.assert_array_equal(nested.forward(x, training=True), flat.forward(x, True))
    g = np.ones((3, width))
    np.testing.assert_array_equal(nested.backward(g), flat.backward(g))
    np.testing.assert_array_equal(nested.flat_grads, flat.flat_grads)
