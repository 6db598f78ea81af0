"""zeronn.trace: the seed's names, agreement with the engine and with the seed's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn.classic import NN, mse_loss, relu_deriv, seed_data
from zeronn.trace import Trace

SEED_KEYS = ["z1", "a1", "z2", "a2", "loss", "error_output", "dW2", "db2",
             "error_hidden", "dW1", "db1"]
HIDDEN = ["relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus"]
# (output activation, loss) pairs the engine accepts.
HEADS = [("identity", "mse"), ("identity", "mae"), ("identity", "huber"),
         ("sigmoid", "binary_crossentropy"), ("softmax", "categorical_crossentropy"),
         ("softplus", "mse"), ("tanh", "huber")]


@pytest.fixture
def seed_run() -> tuple[np.ndarray, np.ndarray, NN, zn.MLP]:
    X, y = seed_data()
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    return X, y, nn, zn.MLP.from_classic(nn)


def test_seed_network_uses_the_seeds_names_in_order(seed_run) -> None:
    X, y, _, net = seed_run
    t = zn.trace(net, X, y)
    assert isinstance(t, Trace)
    assert list(t) == SEED_KEYS
    assert list(t.formulas) == SEED_KEYS


def test_seed_forward_caches_are_reproduced_exactly(seed_run) -> None:
    X, y, nn, net = seed_run
    t = zn.trace(net, X, y)
    y_pred = nn.forward(X)
    np.testing.assert_array_equal(t["z1"], nn.z1)
    np.testing.assert_array_equal(t["a1"], nn.a1)
    np.testing.assert_array_equal(t["z2"], nn.z2)
    np.testing.assert_array_equal(t["a2"], y_pred)  # identity output: a2 is y_pred
    assert t["loss"] == pytest.approx(float(mse_loss(y, y_pred)), rel=1e-14)
    assert t["loss"] == pytest.approx(10.1670, abs=5e-5)  # the seed's first printed line


def test_seed_gradients_are_two_over_n_times_the_seeds_summed_ones(seed_run) -> None:
    X, y, nn, net = seed_run
    t = zn.trace(net, X, y)
    # The seed's backward, written out (it applies its gradients without returning them).
    y_pred = nn.forward(X)
    error_output = y_pred - y
    dW2 = nn.a1.T @ error_output
    db2 = error_output.sum(axis=0, keepdims=True)
    error_hidden = (error_output @ nn.W2.T) * relu_deriv(nn.z1)
    dW1 = X.T @ error_hidden
    db1 = error_hidden.sum(axis=0, keepdims=True)
    scale = 2 / X.shape[0]
    seed = {"error_output": error_output, "dW2": dW2, "db2": db2,
            "error_hidden": error_hidden, "dW1": dW1, "db1": db1}
    for name, value in seed.items():
        np.testing.assert_allclose(t[name], scale * value, rtol=1e-12, atol=1e-15,
                                   err_msg=name)


def test_seed_trace_matches_the_engines_gradients_exactly(seed_run) -> None:
    X, y, _, net = seed_run
    t = zn.trace(net, X, y)
    value, grads = net.loss_and_gradients(X, y, loss="mse")
    assert t["loss"] == value
    for name, g in zip(["dW1", "db1", "dW2", "db2"], grads):
        np.testing.assert_array_equal(t[name], g, err_msg=name)


def test_classic_nn_is_accepted_and_left_alone(seed_run) -> None:
    X, y, nn, net = seed_run
    W1 = nn.W1.copy()
    t = zn.trace(nn, X, y)
    np.testing.assert_array_equal(nn.W1, W1)
    np.testing.assert_array_equal(t["dW1"], zn.trace(net, X, y)["dW1"])


@st.composite
def problems(draw: st.DrawFn) -> tuple[zn.MLP, np.ndarray, np.ndarray, str]:
    depth = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 5), min_size=depth + 1, max_size=depth + 1))
    out_act, loss = draw(st.sampled_from(HEADS))
    if out_act == "softmax":
        sizes[-1] = max(sizes[-1], 2)
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    seed = draw(st.integers(0, 2**16))
    n = draw(st.integers(1, 9))
    rng = np.random.default_rng(seed)
    net = zn.MLP(sizes, activation=hidden, output_activation=out_act, dtype=dtype, seed=seed)
    X = rng.standard_normal((n, sizes[0]))
    if loss == "categorical_crossentropy":
        y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]
    elif out_act == "sigmoid":
        y = rng.uniform(0, 1, (n, sizes[-1]))
    else:
        y = rng.standard_normal((n, sizes[-1]))
    return net, X, y, loss


def _generic_keys(n_layers: int) -> list[str]:
    keys = [f"{k}{i}" for i in range(1, n_layers + 1) for k in ("z", "a")] + ["loss"]
    return keys + [f"{k}{i}" for i in range(n_layers, 0, -1) for k in ("delta", "dW", "db")]


@settings(max_examples=60, deadline=None)
@given(problems())
def test_trace_agrees_with_loss_and_gradients(problem) -> None:
    net, X, y, loss = problem
    t = zn.trace(net, X, y, loss=loss)
    L = len(net.layers)
    if L == 2:
        assert list(t) == SEED_KEYS
    else:
        assert list(t) == _generic_keys(L)
    value, grads = net.loss_and_gradients(X, y, loss=loss)
    assert t["loss"] == value
    for i, (dW, db) in enumerate(zip(grads[::2], grads[1::2]), start=1):
        np.testing.assert_array_equal(t[f"dW{i}"], dW)
        np.testing.assert_array_equal(t[f"db{i}"], db)
        assert t[f"dW{i}"].dtype == net.dtype
    np.testing.assert_array_equal(t[f"a{L}"], net.predict(X))


@settings(max_examples=40, deadline=None)
@given(problems())
def test_trace_follows_the_chain_rule(problem) -> None:
    # Each entry against its formula, using the activations' out-of-place derivatives
    # (a different code path from the in-place one trace shares with the engine).
    net, X, y, loss = problem
    t = zn.trace(net, X, y, loss=loss)
    L = len(net.layers)
    d = {f"delta{i}": f"delta{i}" for i in range(1, L + 1)}
    if L == 2:
        d = {"delta2": "error_output", "delta1": "error_hidden"}
    tol = {"rtol": 1e-4, "atol": 1e-5} if net.dtype == np.float32 else \
        {"rtol": 1e-10, "atol": 1e-12}
    a_prev = X
    for i, layer in enumerate(net.layers, start=1):
        np.testing.assert_allclose(t[f"z{i}"], a_prev @ layer.W + layer.b, **tol)
        np.testing.assert_allclose(t[f"a{i}"], layer.activation(t[f"z{i}"]), **tol)
        a_prev = t[f"a{i}"]
    for i in range(L, 0, -1):
        delta = t[d[f"delta{i}"]]
        a_prev = X if i == 1 else t[f"a{i - 1}"]
        np.testing.assert_allclose(t[f"dW{i}"], a_prev.T @ delta, **tol)
        np.testing.assert_allclose(t[f"db{i}"], delta.sum(axis=0, keepdims=True), **tol)
        if i > 1:
            layer, below = net.layers[i - 1], net.layers[i - 2]
            want = (delta @ layer.W.T) * below.activation.derivative(t[f"z{i - 1}"])
            np.testing.assert_allclose(t[d[f"delta{i - 1}"]], want, **tol)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 1000))
def test_error_output_is_the_mean_loss_gradient(n: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, 3)), rng.standard_normal((n, k))
    net = zn.MLP([3, 4, k], seed=seed)
    t = zn.trace(net, X, y, loss="mse")
    np.testing.assert_allclose(t["error_output"], 2 / (n * k) * (t["a2"] - y), rtol=1e-13)
    clf = zn.MLP([3, 4, k + 1], output_activation="softmax", seed=seed)
    onehot = np.eye(k + 1)[rng.integers(0, k + 1, n)]
    tc = zn.trace(clf, X, onehot, loss="categorical_crossentropy")
    np.testing.assert_allclose(tc["error_output"], (tc["a2"] - onehot) / n,
                               rtol=1e-12, atol=1e-15)


def test_sample_weights_match_the_engine() -> None:
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((10, 2)), rng.standard_normal(10)
    w = rng.uniform(0, 2, 10)
    net = zn.MLP([2, 3, 3, 1], seed=1)
    t = zn.trace(net, X, y, sample_weight=w)
    value, grads = net.loss_and_gradients(X, y, sample_weight=w)
    assert t["loss"] == value
    np.testing.assert_array_equal(t["dW1"], grads[0])
    assert t["loss"] != zn.trace(net, X, y)["loss"]


def test_trace_leaves_the_network_untouched() -> None:
    rng = np.random.default_rng(0)
    net = zn.MLP([2, 4, 1], seed=0)
    X, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 1))
    net.loss_and_gradients(X[:3], y[:3])
    params = [p.copy() for p in net.params]
    grads = [g.copy() for g in net.grads]
    t = zn.trace(net, X, y)
    t["dW1"][...] = 123.0  # a copy: writing to it changes nothing in the network
    for before, after in zip(params + grads, net.params + net.grads):
        np.testing.assert_array_equal(before, after)


def test_one_layer_network_uses_generic_names() -> None:
    net = zn.MLP([3, 2], seed=0)
    t = zn.trace(net, np.ones((4, 3)), np.zeros((4, 2)))
    assert list(t) == _generic_keys(1)


def test_str_and_repr_show_names_shapes_and_formulas(seed_run) -> None:
    X, y, _, net = seed_run
    t = zn.trace(net, X, y)
    text = str(t)
    assert "error_hidden  (100, 5)" in text
    assert "(error_output·W2.T) * relu'(z1)" in text
    assert "2/(N·K)" in text
    assert "dW1(2, 5)" in repr(t)
    assert "loss=10.167" in repr(t)


@pytest.mark.parametrize(("args", "match"), [
    ((object(), np.ones((2, 2)), np.ones((2, 1))), "zeronn.MLP"),
    ((zn.MLP([2, 3, 1]), np.ones((2, 3)), np.ones((2, 1))), "features"),
    ((zn.MLP([2, 3, 1]), np.ones((2, 2)), np.ones((3, 1))), "rows"),
    ((zn.MLP([2, 3, 1]), np.ones((2, 2)), np.ones((2, 1)), "categorical_crossentropy"),
     "softmax"),
    ((zn.MLP([2, 3, 1]), np.ones((2, 2)), np.ones((2, 1)), "nope"), "unknown loss"),
    ((zn.MLP([2, 3, 1]), np.full((2, 2), np.nan), np.ones((2, 1))), "NaN"),
])
def test_bad_input_raises_value_error(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        zn.trace(*args)
