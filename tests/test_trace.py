"""zeronn.trace: the seed's names, agreement with the engine and with the seed's arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn._fast import numpy_only
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


@settings(max_examples=examples(60), deadline=None)
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


@settings(max_examples=examples(40), deadline=None)
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


@settings(max_examples=examples(30), deadline=None)
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


# -- any Sequential: every kind of layer ------------------------------------------------
def _param_names(net) -> list[str]:
    """The trace's name of each entry of net.grads, in order."""
    names = []
    for i, layer in enumerate(net.layers, start=1):
        names += [f"d{p}{i}" for p in layer.param_names]
    return names


def _expected_keys(net) -> list[str]:
    """The keys the module docstring promises, in the order of computation."""
    layers, L = net.layers, len(net.layers)
    keys = []
    for i, layer in enumerate(layers, start=1):
        keys += {"dense": [f"z{i}", f"a{i}"], "activation": [f"a{i}"],
                 "dropout": [f"mask{i}", f"dropout{i}"],
                 "batchnorm": [f"mean{i}", f"var{i}", f"xhat{i}", f"bn{i}"],
                 "layernorm": [f"mean{i}", f"var{i}", f"xhat{i}", f"ln{i}"]}[layer.kind]
    top = layers[-1].kind
    keys += ["loss", {"dense": f"delta{L}", "activation": f"dx{L}"}.get(top, f"dout{L}")]
    for i in range(L, 0, -1):
        kind = layers[i - 1].kind
        below = layers[i - 2].kind if i > 1 else None
        if kind == "dense":
            keys += [] if i == L else [f"delta{i}"]
            keys += [f"dW{i}"] + ([f"db{i}"] if layers[i - 1].use_bias else [])
            keys += [f"dx{i}"] if below not in (None, "dense") else []
        elif kind in ("activation", "dropout"):
            keys += [f"dx{i}"] if below is not None and not (kind == "activation"
                                                             and i == L) else []
        else:
            keys += [f"dgamma{i}", f"dbeta{i}"]
            keys += [f"dxhat{i}", f"dx{i}"] if below is not None else []
    if [layer.kind for layer in layers] == ["dense", "dense"]:  # the seed's network
        keys = [{"delta2": "error_output", "delta1": "error_hidden"}.get(k, k) for k in keys]
    return keys


@st.composite
def sequentials(draw: st.DrawFn) -> tuple[zn.Sequential, np.ndarray, np.ndarray, str]:
    width = draw(st.integers(1, 5))
    n_in = draw(st.integers(1, 4))
    layers = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["dense", "activation", "dropout", "batchnorm",
                                     "layernorm"]))
        if kind == "dense":
            width = draw(st.integers(1, 5))
            layers.append(zn.Dense(width, draw(st.sampled_from([None, *HIDDEN])),
                                   use_bias=draw(st.booleans())))
        elif kind == "activation":
            layers.append(zn.Activation(draw(st.sampled_from(HIDDEN))))
        elif kind == "dropout":
            layers.append(zn.Dropout(draw(st.sampled_from([0.0, 0.2, 0.5, 0.9]))))
        elif kind == "batchnorm":
            layers.append(zn.BatchNorm(momentum=draw(st.sampled_from([0.1, None]))))
        else:
            layers.append(zn.LayerNorm())
    head = draw(st.sampled_from(["dense", "activation", "none"]))
    out_act, loss = draw(st.sampled_from(HEADS))
    k = draw(st.integers(2 if out_act == "softmax" else 1, 4))
    if head == "dense":
        layers.append(zn.Dense(k, out_act))
    elif head == "activation":
        layers += [zn.Dense(k), zn.Activation(out_act)]
    else:  # a regression network ending in a layer without an activation
        layers.append(zn.Dense(k))
        layers.append(draw(st.sampled_from([zn.BatchNorm, zn.LayerNorm, zn.Dropout]))())
        loss = draw(st.sampled_from(["mse", "mae", "huber"]))
    if isinstance(layers[-1], zn.LayerNorm) and k == 1:
        loss = "mse"  # one feature normalizes to beta: still a valid (constant) network
    dtype = draw(st.sampled_from(["float64", "float32"]))
    seed = draw(st.integers(0, 2**16))
    n = draw(st.integers(2, 9))
    rng = np.random.default_rng(seed)
    net = zn.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed)
    for layer in net.layers:  # gamma and beta away from their 1 and 0
        if layer.kind in ("batchnorm", "layernorm"):
            layer.gamma = rng.uniform(0.5, 2.0, layer.gamma.shape)
            layer.beta = rng.standard_normal(layer.beta.shape)
    X = 2 * rng.standard_normal((n, n_in))
    if loss == "categorical_crossentropy":
        y = np.eye(k)[rng.integers(0, k, n)]
    elif loss == "binary_crossentropy":
        y = rng.uniform(0, 1, (n, k))
    else:
        y = rng.standard_normal((n, k))
    return net, X, y, loss


def _snapshot(net) -> list[np.ndarray]:
    arrays = [net.flat_params.copy(), net.flat_grads.copy()]
    for state in net.states():
        arrays += [np.array(v, copy=True) for v in state.values()]
    return arrays


@settings(max_examples=examples(60), deadline=None)
@given(sequentials(), st.integers(0, 2**16))
def test_sequential_trace_equals_loss_and_gradients_with_the_same_masks(problem, seed) -> None:
    with numpy_only():  # bit for bit: the NumPy engine's own order of operations
        _trace_equals_the_engine(problem, seed)


def test_trace_equals_the_compiled_layernorm_to_rounding(monkeypatch) -> None:
    """With numba, LayerNorm trains through compiled kernels whose sums run in another
    order than trace's NumPy formulas: equal to 1e-12 of each array's scale (float64)."""
    pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast'")
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    net = zn.Sequential([zn.Dense(6, activation="tanh"), zn.LayerNorm(), zn.Dense(2)],
                        input_dim=3, dtype="float64", seed=0)
    rng = np.random.default_rng(1)
    X, y = 3 * rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    t = zn.trace(net, X, y, loss="mse")
    value, grads = net.loss_and_gradients(X, y, loss="mse")
    assert abs(t["loss"] - value) <= 1e-12 * abs(value)
    for name, g in zip(_param_names(net), grads):
        np.testing.assert_allclose(t[name], g, rtol=0,
                                   atol=1e-12 * max(1.0, float(np.abs(g).max())), err_msg=name)


def _trace_equals_the_engine(problem, seed) -> None:
    net, X, y, loss = problem
    before = _snapshot(net)
    rng_state = net.rng.bit_generator.state
    t = zn.trace(net, X, y, loss=loss, seed=seed)
    # The network is left as it was: weights, gradients, running statistics, generator.
    for a, b in zip(before, _snapshot(net)):
        np.testing.assert_array_equal(a, b)
    assert net.rng.bit_generator.state == rng_state
    assert all(layer.rng is net.rng for layer in net.layers)
    assert list(t) == _expected_keys(net)
    assert list(t.formulas) == list(t)
    net.set_rng(np.random.default_rng(seed))  # the same masks
    out_name = list(t)[list(t).index("loss") - 1]
    np.testing.assert_array_equal(t[out_name], net.forward(X, training=True))
    net.set_rng(np.random.default_rng(seed))
    value, grads = net.loss_and_gradients(X, y, loss=loss, training=True)
    assert t["loss"] == value
    for name, g in zip(_param_names(net), grads):
        np.testing.assert_array_equal(t[name], g, err_msg=name)
        assert t[name].dtype == net.dtype and t[name].shape == g.shape
    for k, v in t.items():
        if k != "loss":
            assert v.dtype == net.dtype, k


@settings(max_examples=examples(30), deadline=None)
@given(sequentials())
def test_sequential_trace_follows_the_formulas(problem) -> None:
    # Each forward entry against the layer's definition in plain NumPy, each backward
    # entry against the chain rule written out of place.
    net, X, y, loss = problem
    t = zn.trace(net, X, y, loss=loss, seed=0)
    tol = {"rtol": 2e-3, "atol": 2e-4} if net.dtype == np.float32 else \
        {"rtol": 1e-9, "atol": 1e-11}
    x = X.astype(net.dtype)
    outs = []
    for i, layer in enumerate(net.layers, start=1):
        if layer.kind == "dense":
            z = x @ layer.W + (layer.b if layer.use_bias else 0)
            np.testing.assert_allclose(t[f"z{i}"], z, **tol)
            x = t[f"a{i}"]
            np.testing.assert_allclose(x, layer.activation(t[f"z{i}"]), **tol)
        elif layer.kind == "activation":
            np.testing.assert_allclose(t[f"a{i}"], layer.activation(x), **tol)
            x = t[f"a{i}"]
        elif layer.kind == "dropout":
            mask = t[f"mask{i}"]
            assert set(np.unique(mask)) <= {0.0, np.float64(1 / (1 - layer.rate)).astype(
                net.dtype)}
            np.testing.assert_array_equal(t[f"dropout{i}"], x * mask)
            x = t[f"dropout{i}"]
        else:
            axis = 0 if layer.kind == "batchnorm" else 1
            mean, var = x.mean(axis=axis, keepdims=True), x.var(axis=axis, keepdims=True)
            np.testing.assert_allclose(t[f"mean{i}"], mean, **tol)
            np.testing.assert_allclose(t[f"var{i}"], var, **tol)
            xhat = (x - mean) / np.sqrt(var + layer.eps)
            np.testing.assert_allclose(t[f"xhat{i}"], xhat, **tol)
            name = "bn" if layer.kind == "batchnorm" else "ln"
            np.testing.assert_allclose(t[f"{name}{i}"], layer.gamma * t[f"xhat{i}"]
                                       + layer.beta, **tol)
            x = t[f"{name}{i}"]
        outs.append(x)
    # Backward: dL/d(output of layer i) is what layer i + 1's dx (or delta) hands down.
    L = len(net.layers)
    for i in range(L, 0, -1):
        layer = net.layers[i - 1]
        if i == L or f"dx{i + 1}" not in t:
            continue  # the loss step, or folded into a Dense layer's delta
        g = t[f"dx{i + 1}"]
        x_in = X if i == 1 else outs[i - 2]
        if layer.kind == "dense":
            delta = g * layer.activation.derivative(t[f"z{i}"])
            np.testing.assert_allclose(t[f"delta{i}"], delta, **tol)
            np.testing.assert_allclose(t[f"dW{i}"], x_in.T @ delta, **tol)
        elif layer.kind == "dropout" and i > 1:
            np.testing.assert_array_equal(t[f"dx{i}"], g * t[f"mask{i}"])
        elif layer.kind in ("batchnorm", "layernorm"):
            np.testing.assert_allclose(t[f"dgamma{i}"], (g * t[f"xhat{i}"]).sum(0), **tol)
            np.testing.assert_allclose(t[f"dbeta{i}"], g.sum(0), **tol)
            if i > 1:
                axis = 0 if layer.kind == "batchnorm" else 1
                dxh, xh = g * layer.gamma, t[f"xhat{i}"]
                m = xh.shape[axis]
                # the from-scratch book's BatchNormalization.backward, step by step
                std = np.sqrt(t[f"var{i}"] + layer.eps)
                xc = xh * std
                dxc = dxh / std
                dstd = -np.sum(dxh * xc / std ** 2, axis=axis, keepdims=True)
                dvar = 0.5 * dstd / std
                dxc = dxc + (2.0 / m) * xc * dvar
                dx = dxc - np.sum(dxc, axis=axis, keepdims=True) / m
                np.testing.assert_allclose(t[f"dx{i}"], dx, **{
                    "rtol": 5e-2, "atol": 5e-3} if net.dtype == np.float32 else tol)


def test_default_masks_are_the_networks_next_ones_and_leave_its_stream() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    net = zn.Sequential([zn.Dense(6, "relu"), zn.Dropout(0.5), zn.Dense(6, "relu"),
                         zn.Dropout(0.3), zn.Dense(1)], input_dim=3, seed=1)
    t = zn.trace(net, X, y)
    assert zn.trace(net, X, y)["mask2"].tolist() == t["mask2"].tolist()  # unchanged stream
    _, grads = net.loss_and_gradients(X, y)  # draws the masks the trace showed
    np.testing.assert_array_equal(net.layers[1].mask, t["mask2"])
    np.testing.assert_array_equal(net.layers[3].mask, t["mask4"])
    for name, g in zip(_param_names(net), grads):
        np.testing.assert_array_equal(t[name], g, err_msg=name)
    # the network's stream moved on: the next trace draws other masks
    assert not np.array_equal(zn.trace(net, X, y)["mask2"], t["mask2"])


def test_seed_as_int_and_generator() -> None:
    X, y = np.ones((50, 2)), np.ones((50, 1))
    net = zn.Sequential([zn.Dense(8), zn.Dropout(0.5), zn.Dense(1)], input_dim=2, seed=0)
    a, b = zn.trace(net, X, y, seed=3), zn.trace(net, X, y, seed=3)
    np.testing.assert_array_equal(a["mask2"], b["mask2"])
    assert not np.array_equal(a["mask2"], zn.trace(net, X, y, seed=4)["mask2"])
    gen = np.random.default_rng(3)
    np.testing.assert_array_equal(zn.trace(net, X, y, seed=gen)["mask2"], a["mask2"])
    assert gen.bit_generator.state != np.random.default_rng(3).bit_generator.state  # advanced
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="seed must be a non-negative int"):
            zn.trace(net, X, y, seed=bad)


def test_batchnorm_trace_needs_two_rows_and_leaves_running_statistics() -> None:
    net = zn.Sequential([zn.Dense(3), zn.BatchNorm(), zn.Dense(1)], input_dim=2, seed=0)
    with pytest.raises(ValueError, match="at least 2 rows"):
        zn.trace(net, np.ones((1, 2)), np.ones((1, 1)))
    bn = net.layers[1]
    t = zn.trace(net, np.arange(8.0).reshape(4, 2), np.ones((4, 1)))
    assert not bn.num_batches_tracked and (bn.running_var == 1).all()
    assert not bn.running_mean.any()
    assert "(biased)" in t.formulas["var2"]


def test_sequential_str_names_the_network_and_the_formulas() -> None:
    net = zn.Sequential([zn.Dense(4), zn.BatchNorm(), zn.Activation("relu"),
                         zn.Dropout(0.25), zn.Dense(2), zn.LayerNorm()], input_dim=3, seed=0)
    t = zn.trace(net, np.random.default_rng(0).standard_normal((5, 3)), np.ones((5, 2)),
                 seed=0)
    text = str(t)
    assert text.splitlines()[0] == f"trace of mse on {net!r}"
    for line in ["mask4     (5, 4)", "(u >= 0.25) / (1 - 0.25)", "dropout4  (5, 4)",
                 "a3 * mask4", "ln6       (5, 2)", "gamma6 * xhat6 + beta6  = y_pred",
                 "dout6     (5, 2)", "dL/dln6 = 2/(N·K)·(ln6 - y)", "dx5       (5, 4)",
                 "delta5·W5.T", "dx5 * mask4", "dx4 * relu'(bn2)", "dgamma2   (4,)",
                 "sum(dx3 * xhat2, axis=0)", "delta1    (5, 4)", "dx2 * identity'(z1)"]:
        assert line in text, line
    assert "dx1" not in t  # the engine does not compute dL/dX


def test_unknown_layer_kind_is_refused() -> None:
    class Scale(zn.Layer):
        kind = "scale"

        def forward(self, x, training=False):
            return 2 * x

        def backward(self, dout, need_dx=True):
            return 2 * dout

    net = zn.Sequential([zn.Dense(2), Scale()], input_dim=2, seed=0)
    with pytest.raises(ValueError, match="trace does not know 'scale' layers"):
        zn.trace(net, np.ones((3, 2)), np.ones((3, 2)))


# -- convnets: col, pooling and flatten entries ---------------------------------------------
def _convnet() -> tuple[zn.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    net = zn.Sequential([zn.Conv2D(3, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
                         zn.Conv2D(4, 2, stride=2), zn.AvgPool2D(2, stride=1, padding=1),
                         zn.Flatten(), zn.Dense(3, activation="softmax")],
                        input_shape=(2, 8, 8), seed=0)
    net.layers[2].b = rng.standard_normal(4)
    X = rng.standard_normal((5, 2, 8, 8))
    y = np.eye(3)[rng.integers(0, 3, 5)]
    return net, X, y


@pytest.mark.parametrize("fast", [False, True], ids=["numpy", "kernels"])
def test_convnet_trace_names_and_equals_the_engine(fast: bool,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Bit for bit against the NumPy engine; with the compiled kernels the first layer
    (18 inputs per output) takes the direct route, whose sums run in another order: equal
    to 1e-12 of each array's scale."""
    if fast:
        pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast'")
        monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    else:
        monkeypatch.setenv("ZERONN_NO_FAST", "1")
    net, X, y = _convnet()
    assert net.layers[0].direct == fast

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        if not fast:
            return bool(np.array_equal(a, b))
        return bool(np.allclose(a, b, rtol=0, atol=1e-12 * max(1.0, float(np.abs(b).max()))))

    t = zn.trace(net, X, y, loss="categorical_crossentropy")
    assert list(t) == ["col1", "z1", "a1", "arg2", "pool2", "col3", "z3", "a3", "pool4",
                       "flat5", "z6", "a6", "loss", "delta6", "dW6", "db6", "dx6", "dx5",
                       "dx4", "delta3", "dW3", "db3", "dcol3", "dx3", "dx2", "delta1", "dW1",
                       "db1"]
    assert t["col1"].shape == (5 * 8 * 8, 2 * 3 * 3) and t["col3"].shape == (5 * 2 * 2, 12)
    assert t["dW1"].shape == (3, 2, 3, 3) and t["db1"].shape == (3,)
    loss, grads = net.loss_and_gradients(X, y, loss="categorical_crossentropy")
    assert same(np.array(t["loss"]), np.array(loss))
    for name, g in zip(["dW1", "db1", "dW3", "db3", "dW6", "db6"], grads):
        assert same(t[name], g), name  # bit for bit: the same operations in order
    # The forward entries are the engine's own forward pass.
    a = X
    for i, layer in enumerate(net.layers, start=1):
        a = layer.forward(a, training=True)
        key = {zn.Conv2D: f"a{i}", zn.MaxPool2D: f"pool{i}", zn.AvgPool2D: f"pool{i}",
               zn.Flatten: f"flat{i}", zn.Dense: f"a{i}"}[type(layer)]
        assert same(t[key], a), key
        if isinstance(layer, zn.Conv2D):
            assert same(t[f"col{i}"], layer.col), i


def test_convnet_trace_follows_its_formulas() -> None:
    """col is im2col of the input (a row per output pixel, (c, kh, kw) order), z its GEMM,
    dcol the error times the filters, dx col2im of dcol and Flatten's dx a reshape."""
    net, X, y = _convnet()
    t = zn.trace(net, X, y, loss="categorical_crossentropy")
    Xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert np.array_equal(t["col1"][8 * 3 + 5], Xp[0, :, 3:6, 5:8].ravel())  # (n=0, 3, 5)
    W3 = net.layers[2].W.reshape(4, -1)
    z3 = (t["col3"] @ W3.T + net.layers[2].b).reshape(5, 2, 2, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(t["z3"], z3, rtol=1e-13, atol=1e-15)
    d3 = t["delta3"].transpose(0, 2, 3, 1).reshape(-1, 4)
    np.testing.assert_allclose(t["dcol3"], d3 @ W3, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(t["dW3"], (t["col3"].T @ d3).T.reshape(4, 3, 2, 2),
                               rtol=1e-12, atol=1e-15)
    assert np.array_equal(t["dx5"], t["dx6"].reshape(5, 4, 3, 3))
    # Max pooling: dx2 is dx3 at each window's arg-max and 0 elsewhere.
    assert np.count_nonzero(t["dx2"]) <= t["dx3"].size
    np.testing.assert_allclose(t["dx2"].sum(axis=(2, 3)), t["dx3"].sum(axis=(2, 3)),
                               rtol=1e-12, atol=1e-15)
    assert "col3" in str(t) and "im2col" in t.formulas["col3"]


# -- sequences: Embedding, recurrent, attention, positional, composite layers ----------------
# The trace writes these layers as the books do (a loop over time, one formula a line), the
# engine as fused time-major buffers: the sums run in another order. Measured: within
# 1.2e-15 of each array's largest value in float64 (7e-8 in float32); held here to 1e-12
# (float32: 1e-5).
def _close(a: np.ndarray, b: np.ndarray, tol: float) -> bool:
    scale = max(float(np.abs(b).max(initial=0.0)), np.finfo(b.dtype).tiny)
    return bool(np.abs(np.asarray(a) - b).max(initial=0.0) <= tol * scale)


def _traced_like_the_engine(net, X, y, loss: str, seed: int = 0, **kw) -> Trace:
    """The trace of (X, y): the network left as it was, its output the engine's forward
    pass, its gradients (``grad_names``) the engine's, each of the network's dtype."""
    tol = 1e-12 if net.dtype == np.float64 else 1e-5
    before = _snapshot(net)
    states = [(layer.state_h, getattr(layer, "state_c", None)) for layer in net.layers
              if hasattr(layer, "state_h")]
    t = zn.trace(net, X, y, loss=loss, seed=seed, **kw)
    for a, b in zip(before, _snapshot(net)):
        np.testing.assert_array_equal(a, b)
    after = [(layer.state_h, getattr(layer, "state_c", None)) for layer in net.layers
             if hasattr(layer, "state_h")]
    for (h0, c0), (h1, c1) in zip(states, after):  # a carried state is not moved on
        assert (h0 is None and h1 is None) or np.array_equal(h0, h1)
        assert (c0 is None and c1 is None) or np.array_equal(c0, c1)
    assert list(t.formulas) == list(t)
    net.set_rng(np.random.default_rng(seed))
    value, grads = net.loss_and_gradients(X, y, loss=loss, **kw)
    assert t["loss"] == pytest.approx(value, rel=tol, abs=tol)
    assert len(t.grad_names) == len(grads)
    for name, g in zip(t.grad_names, grads):
        assert t[name].shape == g.shape and t[name].dtype == net.dtype, name
        assert _close(t[name], g, tol), (name, np.abs(t[name] - g).max())
    for k, v in t.items():
        if k != "loss":
            assert v.dtype == net.dtype, k
    return t


def _gpt(dtype: str = "float64") -> zn.Sequential:
    return zn.Sequential([
        zn.Embedding(11, 8), zn.PositionalEmbedding(6),
        zn.Residual([zn.LayerNorm(), zn.MultiHeadAttention(2, causal=True)]),
        zn.Residual([zn.LayerNorm(), zn.Dense(16, activation="gelu"), zn.Dense(8)]),
        zn.LayerNorm(), zn.Dense(11, activation="softmax")],
        input_shape=(6,), dtype=dtype, seed=0)


def _gpt_data(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 11, (n, 6))
    y = rng.integers(0, 11, (n, 6))
    y[0, :2] = -100  # padding: skipped by the loss
    return X, y


def _spread(net, seed: int = 2) -> None:
    """Biases, gains and the attention's weights away from their initial 0, 1 and 0.02."""
    rng = np.random.default_rng(seed)
    for p in net.params:
        p[...] = p + 0.3 * rng.standard_normal(p.shape)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gpt_stack_with_class_indices_equals_the_engine(dtype: str) -> None:
    net = _gpt(dtype)
    _spread(net)
    X, y = _gpt_data()
    t = _traced_like_the_engine(net, X, y, "categorical_crossentropy")
    net.set_rng(np.random.default_rng(0))
    assert _close(t["a6"], net.forward(X, training=True), 1e-12 if dtype == "float64" else 1e-5)
    att = net.layers[2].layers[1].attention
    assert _close(t["att3.2"], att, 1e-12 if dtype == "float64" else 1e-5)
    shapes = {"emb1": (4, 6, 8), "pos2": (4, 6, 8), "mean3.1": (4, 6, 1), "ln3.1": (4, 6, 8),
              "q3.2": (4, 2, 6, 4), "k3.2": (4, 2, 6, 4), "v3.2": (4, 2, 6, 4),
              "scores3.2": (4, 2, 6, 6), "att3.2": (4, 2, 6, 6), "y3.2": (4, 6, 8),
              "mha3.2": (4, 6, 8), "res3": (4, 6, 8), "z4.2": (4, 6, 16), "a4.3": (4, 6, 8),
              "res4": (4, 6, 8), "ln5": (4, 6, 8), "a6": (4, 6, 11), "delta6": (4, 6, 11),
              "dW6": (8, 11), "dgamma5": (8,), "dx4": (4, 6, 8), "dW_out3.2": (8, 8),
              "dy3.2": (4, 6, 8), "datt3.2": (4, 2, 6, 6), "dv3.2": (4, 2, 6, 4),
              "dscores3.2": (4, 2, 6, 6), "dq3.2": (4, 2, 6, 4), "dk3.2": (4, 2, 6, 4),
              "dW_qkv3.2": (8, 24), "db_qkv3.2": (1, 24), "dx3": (4, 6, 8), "dW2": (6, 8),
              "dx2": (4, 6, 8), "dW1": (11, 8)}
    for name, shape in shapes.items():
        assert t[name].shape == shape, name
    assert "dx1" not in t  # token ids have no gradient
    assert t.grad_names[:2] == ["dW1", "dW2"] and "dW_qkv3.2" in t.grad_names


def test_gpt_trace_follows_its_formulas() -> None:
    net = _gpt()
    _spread(net)
    X, y = _gpt_data()
    t = zn.trace(net, X, y, loss="categorical_crossentropy")
    tol = {"rtol": 1e-10, "atol": 1e-12}
    emb, pos = net.layers[0], net.layers[1]
    np.testing.assert_array_equal(t["emb1"], emb.W[X])
    np.testing.assert_array_equal(t["pos2"], t["emb1"] + pos.W[:6])
    # LayerNorm on a sequence: each step over its own 8 features.
    np.testing.assert_allclose(t["mean3.1"], t["pos2"].mean(axis=-1, keepdims=True), **tol)
    np.testing.assert_allclose(t["var3.1"], t["pos2"].var(axis=-1, keepdims=True), **tol)
    # Causal attention: rows sum to 1, nothing from the future, values weighted by att.
    att = t["att3.2"]
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=1e-13)
    assert not att[..., np.triu(np.ones((6, 6), bool), k=1)].any()
    merged = (att @ t["v3.2"]).transpose(0, 2, 1, 3).reshape(4, 6, 8)
    np.testing.assert_allclose(t["y3.2"], merged, **tol)
    np.testing.assert_array_equal(t["res3"], t["pos2"] + t["mha3.2"])
    np.testing.assert_array_equal(t["res4"], t["res3"] + t["a4.3"])
    # The loss: the mean over the 22 steps that count, ignored steps without gradient.
    p = t["a6"].reshape(-1, 11)
    ids = y.reshape(-1)
    keep = ids != -100
    want = -np.log(p[keep, ids[keep]]).mean()
    assert t["loss"] == pytest.approx(want, rel=1e-12)
    onehot = np.zeros_like(p)
    onehot[keep, ids[keep]] = 1
    np.testing.assert_allclose(t["delta6"].reshape(-1, 11),
                               (p - onehot) * keep[:, None] / keep.sum(), **tol)
    assert not t["delta6"][0, :2].any()
    # Backward: the residual adds the skip's gradient; the positional sum passes it on;
    # the embedding's rows add up the steps that picked them.
    np.testing.assert_array_equal(t["dx4"], t["dx5"] + t["dx4.1"])
    np.testing.assert_array_equal(t["dx3"], t["dx4"] + t["dx3.1"])
    np.testing.assert_array_equal(t["dW2"][:6], t["dx3"].sum(axis=0))
    dW1 = np.zeros((11, 8))
    for b in range(4):
        for s in range(6):
            dW1[X[b, s]] += t["dx2"][b, s]
    np.testing.assert_allclose(t["dW1"], dW1, **tol)
    # Softmax's Jacobian, written as a matrix per row.
    a, da = att[1, 0, 3], t["datt3.2"][1, 0, 3]
    np.testing.assert_allclose(t["dscores3.2"][1, 0, 3], (np.diag(a) - np.outer(a, a)) @ da,
                               **tol)


def _char_lstm() -> tuple[zn.Sequential, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    net = zn.Sequential([zn.Embedding(7, 5), zn.LSTM(6, return_sequences=True),
                         zn.Dense(7, activation="softmax")], input_shape=(5,), seed=1)
    X = rng.integers(0, 7, (3, 5))
    return net, X, np.roll(X, -1, axis=1)  # the next character


def test_char_lstm_trace_equals_the_engine_and_names_every_gate() -> None:
    net, X, y = _char_lstm()
    t = _traced_like_the_engine(net, X, y, "categorical_crossentropy")
    assert list(t) == ["emb1", "i2", "f2", "g2", "o2", "c2", "h2", "z3", "a3", "loss",
                       "delta3", "dW3", "db3", "dx3", "dh2", "dc2", "di2", "df2", "dg2",
                       "do2", "dweight_ih2", "dweight_hh2", "dbias_ih2", "dbias_hh2", "dx2",
                       "dW1"]
    for k in ("i2", "f2", "g2", "o2", "c2", "h2", "dh2", "dc2", "di2", "do2"):
        assert t[k].shape == (3, 5, 6), k
    assert t["dweight_ih2"].shape == (24, 5) and t["dbias_hh2"].shape == (24,)
    net.set_rng(np.random.default_rng(0))
    assert _close(t["a3"], net.forward(X, training=True), 1e-12)
    # The cell, step by step from a zero state.
    c_prev = np.zeros((3, 6))
    for s in range(5):
        c = t["f2"][:, s] * c_prev + t["g2"][:, s] * t["i2"][:, s]
        np.testing.assert_allclose(t["c2"][:, s], c, rtol=1e-13, atol=1e-15)
        c_prev = c
    np.testing.assert_allclose(t["h2"], t["o2"] * np.tanh(t["c2"]), rtol=1e-13, atol=1e-15)
    # The last step's dh comes from the output alone.
    np.testing.assert_array_equal(t["dh2"][:, -1], t["dx3"][:, -1])


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "gru"])
def test_rnn_and_gru_stacks_equal_the_engine(kind: str) -> None:
    def rec(units: int, seq: bool):
        if kind == "gru":
            return zn.GRU(units, return_sequences=seq)
        return zn.RNN(units, activation="relu" if kind == "rnn_relu" else "tanh",
                      return_sequences=seq)

    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 5, 3))
    seqs = zn.Sequential([rec(4, True), rec(3, True), zn.Dense(2)], input_shape=(5, 3),
                         seed=2)
    t = _traced_like_the_engine(seqs, X, rng.standard_normal((4, 5, 2)), "mse")
    gates = ["z"] if kind != "gru" else ["r", "z", "hn", "n"]
    for i, units in ((1, 4), (2, 3)):
        for g in [*gates, "h", "dh"]:
            assert t[f"{g}{i}"].shape == (4, 5, units), (g, i)
    seqs.set_rng(np.random.default_rng(0))
    assert _close(t["a3"], seqs.forward(X, training=True), 1e-12)
    if kind == "gru":
        h_prev = np.concatenate([np.zeros((4, 1, 4)), t["h1"][:, :-1]], axis=1)
        np.testing.assert_allclose(t["h1"], (1 - t["z1"]) * t["n1"] + t["z1"] * h_prev,
                                   rtol=1e-13, atol=1e-15)
    # The last layer without return_sequences: its output is the last step's h.
    last = zn.Sequential([rec(4, True), rec(3, False), zn.Dense(2, activation="softmax")],
                         input_shape=(5, 3), seed=3)
    y = np.eye(2)[rng.integers(0, 2, 4)]
    t = _traced_like_the_engine(last, X, y, "categorical_crossentropy")
    np.testing.assert_array_equal(t["hlast2"], t["h2"][:, -1])
    assert t["dh2"][:, :-1].any()  # the earlier steps' errors come back through time
    np.testing.assert_array_equal(t["dh2"][:, -1], t["dx3"])


def test_stateful_layers_are_traced_from_the_state_they_carry() -> None:
    rng = np.random.default_rng(6)
    net = zn.Sequential([zn.LSTM(4, stateful=True, return_sequences=True),
                         zn.GRU(3, stateful=True), zn.Dense(1)], input_shape=(4, 2), seed=4)
    X, y = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 1))
    t0 = zn.trace(net, X, y)
    assert not any("init" in k for k in t0)  # nothing carried yet: zeros
    net.loss_and_gradients(X[::-1], y)  # the layers now carry a state
    t = _traced_like_the_engine(net, X, y, "mse")
    assert [k for k in t if "init" in k] == ["hinit1", "cinit1", "hinit2"]
    assert t["loss"] != t0["loss"]


def test_sequence_layers_dense_dropout_and_composites_equal_the_engine() -> None:
    rng = np.random.default_rng(7)
    net = zn.Sequential([
        zn.Residual([zn.Dense(6, "tanh"), zn.Dropout(0.3), zn.Dense(4)]),
        zn.Composite([zn.MultiHeadAttention(2, dropout=0.2),
                      zn.Composite([zn.Activation("relu"), zn.LayerNorm()])]),
        zn.Dropout(0.4), zn.Dense(3, activation="softmax")], input_shape=(5, 4), seed=3)
    _spread(net)
    X, y = rng.standard_normal((3, 5, 4)), np.eye(3)[rng.integers(0, 3, (3, 5))]
    t = _traced_like_the_engine(net, X, y, "categorical_crossentropy", seed=5)
    assert list(t)[:17] == ["z1.1", "a1.1", "mask1.2", "dropout1.2", "z1.3", "a1.3", "res1",
                            "q2.1", "k2.1", "v2.1", "scores2.1", "att2.1", "att_mask2.1",
                            "att_drop2.1", "y2.1", "mha2.1", "a2.2.1"]
    assert "dx1" not in t and "dx1.1" not in t  # the first layer hands nothing on
    assert t.grad_names == ["dW1.1", "db1.1", "dW1.3", "db1.3", "dW_qkv2.1", "db_qkv2.1",
                            "dW_out2.1", "db_out2.1", "dgamma2.2.2", "dbeta2.2.2", "dW4",
                            "db4"]
    net.set_rng(np.random.default_rng(5))
    assert _close(t["a4"], net.forward(X, training=True), 1e-12)
    np.testing.assert_array_equal(net.layers[1].layers[0].dropout_mask, t["att_mask2.1"])
    np.testing.assert_array_equal(t["att_drop2.1"], t["att2.1"] * t["att_mask2.1"])
    np.testing.assert_array_equal(t["dropout3"], t["ln2.2.2"] * t["mask3"])


def test_sequence_regression_with_sample_weights_equals_the_engine() -> None:
    rng = np.random.default_rng(8)
    net = zn.Sequential([zn.RNN(3, return_sequences=True), zn.LayerNorm(),
                         zn.Dense(2, "sigmoid")], input_shape=(4, 2), seed=5)
    _spread(net)
    X, y = rng.standard_normal((3, 4, 2)), rng.uniform(0, 1, (3, 4, 2))
    w = [1.0, 2.0, 0.5]
    t = _traced_like_the_engine(net, X, y, "binary_crossentropy", sample_weight=w)
    assert "(N·T)" in t.formulas["delta3"]
    reg = zn.Sequential([zn.RNN(3, return_sequences=True), zn.LayerNorm(), zn.Dense(2)],
                        input_shape=(4, 2), seed=5)
    _spread(reg)
    t = _traced_like_the_engine(reg, X, y, "mse", sample_weight=w)
    assert "2/(N·T·K)" in t.formulas["delta3"]
    # LayerNorm per step: gamma and beta (3,), their gradients summed over (n, T).
    assert t["dgamma2"].shape == (3,) and t["mean2"].shape == (3, 4, 1)


def test_sequence_str_reads_as_a_table() -> None:
    net = _gpt()
    X, y = _gpt_data()
    text = str(zn.trace(net, X, y, loss="categorical_crossentropy"))
    for line in ["  att3.2      (4, 2, 6, 6)  softmax(scores3.2) over the last axis",
                 "  res3        (4, 6, 8)     pos2 + mha3.2",
                 "  dx3         (4, 6, 8)     dx4 + dx3.1  (the skip's and the stack's)",
                 "M = 22 steps with y != -100", "dW1[X[b, t]] += dx2[b, t]"]:
        assert line in text, line
    assert "emb1(4, 6, 8)" in repr(zn.trace(net, X, y, loss="categorical_crossentropy"))


def test_trace_of_a_tied_gpt_adds_the_heads_gradient_to_the_embedding(rng):
    """zn.gpt ties lm_head to wte: the trace's dW1 is the scatter plus the head's dW.T,
    equal to the engine's gradient."""
    net = zn.gpt(11, 6, n_layer=1, n_head=2, n_embd=8, dtype="float64", seed=0)
    ids, y = rng.integers(0, 11, (3, 6)), rng.integers(0, 11, (3, 6))
    t = zn.trace(net, ids, y, loss="categorical_crossentropy")
    _, grads = net.loss_and_gradients(ids, y, loss="categorical_crossentropy")
    for name, g in zip(t.grad_names, grads):
        np.testing.assert_allclose(t[name], g, rtol=1e-12, atol=1e-12 * np.abs(g).max())
    last = len(net.layers)
    assert f"+ dW{last}.T" in t.formulas["dW1"]
