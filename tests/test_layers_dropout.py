"""Dropout: inverted-dropout statistics, eval mode, the mask in backward, fits' random streams."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import Dropout


def _built(layer: Dropout, features: int, dtype: str = "float64", seed: int = 0) -> Dropout:
    """The layer inside a one-layer network, which builds it and gives it a generator."""
    zn.Sequential([layer], input_dim=features, dtype=dtype, seed=seed)
    return layer


@settings(max_examples=examples(25), deadline=None)
@given(st.floats(0.01, 0.95), st.integers(0, 2**16), st.sampled_from(["float64", "float32"]))
def test_inverted_dropout_statistics(rate: float, seed: int, dtype: str) -> None:
    layer = _built(Dropout(rate), 100, dtype, seed)
    x = np.ones((1000, 100), dtype)
    out = layer.forward(x, training=True)
    n = x.size
    dropped = float(np.mean(out == 0))
    # 6 binomial standard deviations: a false alarm about once in 10^9 runs.
    assert abs(dropped - rate) < 6 * math.sqrt(rate * (1 - rate) / n) + 1e-12
    kept = out[out != 0]
    np.testing.assert_array_equal(kept, np.asarray(1 / (1 - rate), dtype))  # scaled up
    # the expected output equals the input: mean 1, up to the sampling error
    assert abs(float(out.mean(dtype=np.float64)) - 1) < 6 * math.sqrt(rate / (1 - rate) / n)
    assert out.dtype == np.dtype(dtype) and layer.mask is not None
    assert layer.mask.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x * layer.mask)


@settings(max_examples=examples(20), deadline=None)
@given(st.floats(0.0, 0.9), st.integers(0, 2**16))
def test_backward_uses_the_forward_mask(rate: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    layer = _built(Dropout(rate), 7, seed=seed)
    x = rng.standard_normal((9, 7))
    out = layer.forward(x, training=True).copy()
    mask = np.ones_like(x) if rate == 0 else layer.mask.copy()
    dout = rng.standard_normal((9, 7))
    dx = layer.backward(dout.copy())
    np.testing.assert_array_equal(dx, dout * mask)
    np.testing.assert_array_equal(out, x * mask)


def test_identity_in_eval_mode_and_at_rate_zero() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    layer = _built(Dropout(0.5), 4)
    assert layer.forward(x, training=False) is x
    assert layer.backward(x.copy()) is not None
    np.testing.assert_array_equal(layer.backward(x.copy()), x)  # eval: gradient passes
    np.testing.assert_array_equal(layer.infer(x), x)
    zero = _built(Dropout(0.0), 4)
    state = zero.rng.bit_generator.state
    np.testing.assert_array_equal(zero.forward(x, training=True), x)
    assert zero.rng.bit_generator.state == state  # rate 0 draws nothing


def test_predict_is_eval_mode_without_dropout() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 3))
    net = zn.Sequential([zn.Dense(5, "relu"), zn.Dropout(0.9), zn.Dense(2)], input_dim=3,
                        seed=0)
    plain = zn.Sequential([zn.Dense(5, "relu"), zn.Dense(2)], input_dim=3, seed=0)
    plain.set_params(net.params)
    np.testing.assert_array_equal(net.predict(X), plain.predict(X))
    np.testing.assert_array_equal(net.forward(X), plain.forward(X))
    assert not np.array_equal(net.forward(X, training=True), plain.forward(X))


@pytest.mark.parametrize("rate", [-0.1, 1, 1.0, 1.5, True, "0.5", None, float("nan")])
def test_bad_rates_are_refused(rate) -> None:
    with pytest.raises(ValueError, match=r"Dropout rate must be a number in \[0, 1\)"):
        Dropout(rate)


def test_config_and_repr() -> None:
    layer = Dropout(0.25)
    assert repr(layer) == "Dropout(0.25)" and layer.kind == "dropout"
    assert type(layer)(**layer.config()).rate == 0.25
    assert layer.n_params == 0 and layer.params == []
    with pytest.raises(ValueError, match="no random generator"):
        Dropout(0.5).forward(np.ones((2, 2)), training=True)


def _problem() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((20, 3)), rng.standard_normal((20, 1))


def _net(dtype: str = "float64", seed: int = 0) -> zn.Sequential:
    return zn.Sequential([zn.Dense(8, "relu"), zn.Dropout(0.5), zn.Dense(1)], input_dim=3,
                         dtype=dtype, seed=seed)


def test_seeded_fit_is_reproducible_and_leaves_the_networks_stream() -> None:
    X, y = _problem()
    a, b = _net(), _net()
    state = a.rng.bit_generator.state
    a.fit(X, y, epochs=3, batch_size=8, seed=7)
    b.fit(X, y, epochs=3, batch_size=8, seed=7)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert a.history["loss"] == b.history["loss"]
    assert a.rng.bit_generator.state == state  # a seeded fit uses its own generator
    assert all(layer.rng is a.rng for layer in a.layers)  # and gives the layers theirs back
    c = _net()
    c.fit(X, y, epochs=3, batch_size=8, seed=8)
    assert not np.array_equal(a.flat_params, c.flat_params)  # other masks and shuffles


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_consecutive_fits_continue_the_networks_stream(shuffle: bool, optimizer: str) -> None:
    # Without a seed, masks (and shuffles) come from the network's generator, and a
    # second fit with optimizer=None continues the first's optimizer: two fits of 2
    # epochs are one fit of 4, bit for bit.
    X, y = _problem()
    two = _net()
    two.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle, optimizer=optimizer)
    two.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle)
    one = _net()
    one.fit(X, y, epochs=4, batch_size=8, shuffle=shuffle, optimizer=optimizer)
    np.testing.assert_array_equal(two.flat_params, one.flat_params)
    assert two.history["loss"] == one.history["loss"]
    # Rewinding the generator between the fits (the second fit then draws the first
    # one's masks again) gives another result: the stream's continuation is what matters.
    again = _net()
    start = copy.deepcopy(again.rng)
    again.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle, optimizer=optimizer)
    again.rng = start
    again.set_rng(start)
    again.fit(X, y, epochs=2, batch_size=8, shuffle=shuffle)
    assert not np.array_equal(again.flat_params, one.flat_params)


def test_float32_stays_float32() -> None:
    X, y = _problem()
    net = _net("float32")
    layer = net.layers[1]
    out = net.forward(X, training=True)
    assert out.dtype == np.float32 and layer.mask.dtype == np.float32
    assert net.backward(np.ones_like(out)).dtype == np.float32
    net.fit(X, y, epochs=2, batch_size=8)
    assert net.flat_params.dtype == np.float32 and net.predict(X).dtype == np.float32
    _, grads = net.loss_and_gradients(X, y)
    assert all(g.dtype == np.float32 for g in grads)
