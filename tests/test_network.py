"""MLP: structure, live parameter views, forward/backward against explicit NumPy and the
seed, dtypes, and the bad-input table."""

from __future__ import annotations

import numpy as np
import pytest

import zeronn as zn
from zeronn.activations import get_activation


def test_structure_and_param_views():
    net = zn.MLP([3, 5, 4, 2], activation=["tanh", "relu"], output_activation="softmax", seed=0)
    assert [p.shape for p in net.params] == [(3, 5), (1, 5), (5, 4), (1, 4), (4, 2), (1, 2)]
    assert net.activations == ["tanh", "relu"] and net.output_activation == "softmax"
    assert net.n_params == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2
    assert not net.params[1].any()  # zero biases
    # params are live: writing into them changes the network's output
    before = net.predict(np.ones((1, 3)))
    net.params[0][...] += 1.0
    assert not np.array_equal(before, net.predict(np.ones((1, 3))))
    # assigning a layer's W copies into the shared buffer (no silent unhooking)
    W = np.full((3, 5), 0.5)
    net.layers[0].W = W
    assert net.params[0] is not W and (net.params[0] == 0.5).all()
    assert net._flat_params[:15].reshape(3, 5)[0, 0] == 0.5
    assert repr(net) == ("MLP([3, 5, 4, 2], activation=['tanh', 'relu'], "
                         "output_activation='softmax', dtype='float64')")


def test_forward_matches_explicit_numpy():
    rng = np.random.default_rng(0)
    net = zn.MLP([4, 6, 5, 3], ["gelu", "sigmoid"], "identity", seed=1)
    X = rng.standard_normal((7, 4))
    a = X
    for i, layer in enumerate(net.layers):
        z = a @ net.params[2 * i] + net.params[2 * i + 1]
        a = get_activation(layer.activation.name)(z)
    np.testing.assert_allclose(net.forward(X), a, rtol=1e-14)
    np.testing.assert_allclose(net.predict(X), a, rtol=1e-14)


def test_predict_in_chunks_equals_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 8, 2], seed=0)
    X = rng.standard_normal((103, 3))
    whole = net.predict(X)
    np.testing.assert_array_equal(net.predict_checked(X, chunk=10), whole)
    out = net.predict(X)
    out[...] = 0  # predict returns a fresh array, not a work buffer
    np.testing.assert_array_equal(net.predict(X), whole)


def test_engine_gradients_equal_seed_times_2_over_n(seed_problem):
    X, y, nn = seed_problem
    net = zn.MLP.from_classic(nn)
    y_pred = nn.forward(X)
    np.testing.assert_allclose(net.predict(X), y_pred, rtol=1e-14)
    err = y_pred - y
    eh = (err @ nn.W2.T) * (nn.z1 > 0)
    seed_grads = [X.T @ eh, eh.sum(0, keepdims=True), nn.a1.T @ err, err.sum(0, keepdims=True)]
    loss, grads = net.loss_and_gradients(X, y, "mse")
    assert loss == pytest.approx(float(np.mean(err ** 2)), rel=1e-14)
    for g, s in zip(grads, seed_grads):
        np.testing.assert_allclose(g, s * 2 / len(X), rtol=1e-12)


def test_initializers_and_seed():
    a = zn.MLP([4, 8, 1], init="glorot_uniform", seed=3)
    b = zn.MLP([4, 8, 1], init="glorot_uniform", seed=3)
    c = zn.MLP([4, 8, 1], init="glorot_uniform", seed=4)
    np.testing.assert_array_equal(a.params[0], b.params[0])
    assert not np.array_equal(a.params[0], c.params[0])
    explicit = [np.ones((4, 8)), np.zeros((1, 8)), np.ones((8, 1)), np.full((1, 1), 2.0)]
    d = zn.MLP([4, 8, 1], init=explicit)
    for p, e in zip(d.params, explicit):
        np.testing.assert_array_equal(p, e)


def test_float32_end_to_end():
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 4, 2], "tanh", "softmax", dtype="float32", seed=0)
    assert all(p.dtype == np.float32 for p in net.params)
    X = rng.standard_normal((5, 3))  # float64 input is converted to the network's dtype
    y = np.eye(2)[[0, 1, 0, 1, 1]]
    loss, grads = net.loss_and_gradients(X, y, "categorical_crossentropy")
    assert all(g.dtype == np.float32 for g in grads)
    assert net.predict(X).dtype == np.float32
    ref = net.copy(dtype="float64")
    loss64, grads64 = ref.loss_and_gradients(X.astype(np.float32).astype(np.float64), y,
                                             "categorical_crossentropy")
    assert loss == pytest.approx(loss64, rel=1e-5)
    for g, g64 in zip(grads, grads64):
        np.testing.assert_allclose(g, g64, rtol=1e-4, atol=1e-6)


def test_copy_is_independent():
    net = zn.MLP([2, 3, 1], seed=0)
    other = net.copy()
    other.params[0][...] = 9.0
    assert not (net.params[0] == 9.0).any()
    assert other.layer_sizes == net.layer_sizes and other.activations == net.activations


def test_one_d_targets_for_single_output():
    rng = np.random.default_rng(0)
    net = zn.MLP([2, 3, 1], seed=0)
    X, y = rng.standard_normal((6, 2)), rng.standard_normal(6)
    l1, g1 = net.loss_and_gradients(X, y)
    l2, g2 = net.loss_and_gradients(X, y.reshape(-1, 1))
    assert l1 == l2
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    net.fit(X, y, epochs=1)


def test_deep_network_backprop_matches_gradcheck():
    rng = np.random.default_rng(2)
    net = zn.MLP([3, 6, 5, 4, 3, 2], ["elu", "softplus", "leaky_relu", "gelu"], "sigmoid", seed=2)
    X = rng.standard_normal((9, 3))
    y = rng.uniform(0, 1, (9, 2))
    assert zn.check_gradients(net, X, y, "binary_crossentropy").max_relative_error < 1e-6


# -- the bad-input table -------------------------------------------------------------------
NET = zn.MLP([2, 3, 1], seed=0)
GOOD_X, GOOD_Y = np.ones((4, 2)), np.ones((4, 1))


@pytest.mark.parametrize(("X", "y", "match"), [
    (np.array([[1.0, np.nan]] * 4), GOOD_Y, r"X contains NaN or inf \(first at row 0, column 1\)"),
    (GOOD_X, np.array([[1.0], [np.inf], [1.0], [1.0]]), r"y contains NaN or inf \(first at row 1"),
    (GOOD_X, np.ones((3, 1)), "X has 4 rows but y has 3"),
    (np.ones((0, 2)), np.ones((0, 1)), r"X is empty \(0 samples\)"),
    (np.array([["a", "b"]] * 4), GOOD_Y, r"X must be numeric, got dtype <U1"),
    (np.array([[1, "x"]] * 4, dtype=object), GOOD_Y, "X must be numeric, got dtype object"),
    (np.array([[1, None]] * 4, dtype=object), GOOD_Y, "X contains NaN or inf"),  # missing
    ([[1.0, 2.0], [3.0]], GOOD_Y, "X could not be read as a numeric array"),
    (np.ones((4, 3)), GOOD_Y, r"X has 3 features, but the network expects 2"),
    (GOOD_X, np.ones((4, 2)), r"y has shape \(4, 2\), expected \(4, 1\)"),
    (np.ones(4), GOOD_Y, r"X has shape \(4,\), expected a 2-D array"),
    (np.ones((4, 2, 1)), GOOD_Y, r"X has shape \(4, 2, 1\)"),
])
@pytest.mark.parametrize("entry", ["fit", "loss_and_gradients"])
def test_bad_data_is_refused_with_the_fix(X, y, match, entry):
    with pytest.raises(ValueError, match=match):
        if entry == "fit":
            NET.copy().fit(X, y, epochs=1)
        else:
            NET.loss_and_gradients(X, y)


@pytest.mark.parametrize(("X", "match"), [
    (np.ones((3, 5)), "X has 5 features, but the network expects 2"),
    (np.array([[np.inf, 0.0]]), "X contains NaN or inf"),
    (np.ones(2), r"use X.reshape\(1, -1\) for a single sample"),
    (np.ones((0, 2)), "X is empty"),
])
def test_predict_refuses_bad_X(X, match):
    with pytest.raises(ValueError, match=match):
        NET.predict(X)


def test_multi_output_y_hint():
    net = zn.MLP([2, 3, 3], output_activation="softmax")
    with pytest.raises(ValueError, match="one-hot encode class labels"):
        net.loss_and_gradients(GOOD_X, np.array([0, 1, 2, 1]), "categorical_crossentropy")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"layer_sizes": [3]}, r"layer_sizes needs at least \[n_inputs, n_outputs\]"),
    ({"layer_sizes": [3, 0, 1]}, "each layer size must be a positive integer, got 0"),
    ({"layer_sizes": [3, 2.5, 1]}, "each layer size must be a positive integer"),
    ({"layer_sizes": [3, 4, 1], "activation": "swish"}, "unknown activation 'swish'; known:"),
    ({"layer_sizes": [3, 4, 1], "output_activation": "max"}, "unknown activation 'max'"),
    ({"layer_sizes": [3, 4, 4, 1], "activation": ["relu"]}, "give one per hidden layer"),
    ({"layer_sizes": [3, 4, 1], "init": "orthogonal"}, r"unknown initializer 'orthogonal'; known"),
    ({"layer_sizes": [3, 4, 1], "dtype": "float16"}, "dtype must be 'float64' or 'float32'"),
    ({"layer_sizes": [3, 4, 1], "init": [np.ones((3, 4))]},
     r"expected 4 arrays \[W1, b1, \.\.\.\]"),
    ({"layer_sizes": [3, 4, 1], "init": [np.ones((4, 3)), np.zeros(4), np.ones((4, 1)),
                                         np.zeros(1)]}, r"W has shape \(4, 3\), expected \(3, 4\)"),
])
def test_bad_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zn.MLP(**kwargs)


def test_cross_entropy_needs_its_output_activation():
    with pytest.raises(ValueError, match="needs output_activation='softmax'"):
        zn.MLP([2, 3, 2]).loss_and_gradients(GOOD_X, np.eye(2)[[0, 1, 0, 1]],
                                             "categorical_crossentropy")


def test_pickle_and_deepcopy_keep_params_bound_to_the_flat_buffer():
    """A bug: unpickled layers held copies, so training moved the flat buffer only."""
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((32, 3)), rng.standard_normal((32, 1))
    for clone in (lambda n: pickle.loads(pickle.dumps(n)), copy.deepcopy):
        net = zn.MLP([3, 4, 1], seed=0)
        net.fit(X, y, epochs=2, batch_size=8)
        twin = clone(net)
        np.testing.assert_array_equal(twin.predict(X), net.predict(X))
        before = twin.predict(X)
        twin.fit(X, y, epochs=2, batch_size=8)
        assert not np.array_equal(twin.predict(X), before)  # training reaches the layers
        for p, layer_p in zip(np.split(twin._flat_params, np.cumsum(
                [p.size for p in twin.params])[:-1]), twin.params):
            np.testing.assert_array_equal(p, layer_p.ravel())


def test_predict_is_thread_safe():
    """predict must not share work buffers between threads (dask's threaded scheduler)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(0)
    net = zn.MLP([8, 64, 64, 3], "gelu", "softmax", seed=0)
    inputs = [rng.standard_normal((500, 8)) for _ in range(16)]
    expected = [net.predict(x) for x in inputs]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            got = list(pool.map(net.predict, inputs))
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e)


# -- Sequential networks of every kind of layer -----------------------------------------
@pytest.mark.parametrize("last", [zn.BatchNorm, zn.LayerNorm, lambda: zn.Dropout(0.0)])
def test_a_network_may_end_in_a_layer_without_activation(last, central_differences):
    """A bug: the loss step asked the last layer for backward_from_logits, which only layers
    ending in an activation had, so a network ending in BatchNorm could not be trained."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    net = zn.Sequential([zn.Dense(4, "tanh"), zn.Dense(2), last()], input_dim=3, seed=0)
    value, grads = net.loss_and_gradients(X, y, "mse")
    assert np.isfinite(value)
    flat = net.flat_params.copy()

    def loss_at(p: np.ndarray) -> float:
        net.flat_params[...] = p
        return float(np.mean((net.forward(X, training=True) - y) ** 2))

    numeric = central_differences(loss_at, flat)
    net.flat_params[...] = flat
    np.testing.assert_allclose(np.concatenate([g.ravel() for g in grads]), numeric,
                               rtol=1e-5, atol=1e-8)
    net.fit(X, y, epochs=2, batch_size=3)
