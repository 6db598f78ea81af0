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
    net = zn.MLP([2, 3, 3])
    with pytest.raises(ValueError, match="one-hot encode class labels"):
        net.loss_and_gradients(GOOD_X, np.array([0, 1, 2, 1]), "mse")


def test_class_indices_equal_one_hot_rows():
    net = zn.MLP([2, 3, 3], output_activation="softmax", seed=0)
    ids = np.array([0, 1, 2, 1])
    sparse, g_sparse = net.loss_and_gradients(GOOD_X, ids, "categorical_crossentropy")
    dense, g_dense = net.loss_and_gradients(GOOD_X, np.eye(3)[ids], "categorical_crossentropy")
    # Two formulas for one sum (picked logit vs dot with a one-hot row): rounding apart.
    assert sparse == pytest.approx(dense, rel=1e-12)
    for a, b in zip(g_sparse, g_dense):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_ignored_class_indices_do_not_count():
    net = zn.MLP([2, 3, 3], output_activation="softmax", seed=0)
    ids = np.array([0, -100, 2, -100])
    value, grads = net.loss_and_gradients(GOOD_X, ids, "categorical_crossentropy")
    kept, kept_grads = net.loss_and_gradients(GOOD_X[[0, 2]], ids[[0, 2]],
                                              "categorical_crossentropy")
    assert value == pytest.approx(kept, rel=1e-12)
    for a, b in zip(grads, kept_grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("y", "match"), [
    (np.array([0, 1, 3, 1]), r"class index 3, outside \[0, 3\)"),
    (np.array([0, 1, -1, 1]), r"class index -1, outside"),
    (np.array([0.0, 1.5, 2.0, 1.0]), "whole numbers"),
])
def test_bad_class_indices_are_refused(y, match):
    net = zn.MLP([2, 3, 3], output_activation="softmax")
    with pytest.raises(ValueError, match=match):
        net.loss_and_gradients(GOOD_X, y, "categorical_crossentropy")


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


def _mixed(dtype: str = "float64", seed: int = 0, out: str = "identity") -> zn.Sequential:
    """A network of every kind of layer, gamma and beta away from 1 and 0."""
    net = zn.Sequential([zn.Dense(6, "tanh"), zn.BatchNorm(), zn.Dropout(0.3), zn.Dense(5),
                         zn.LayerNorm(), zn.Activation("gelu"), zn.Dense(2, out)],
                        input_dim=3, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for layer in net.layers:
        if layer.kind in ("batchnorm", "layernorm"):
            layer.gamma = rng.uniform(0.5, 2.0, layer.gamma.shape)
            layer.beta = rng.standard_normal(layer.beta.shape)
    return net


@pytest.mark.parametrize(("make", "match"), [
    (lambda: zn.Sequential([], input_dim=2), "a network needs at least one layer"),
    (lambda: zn.Sequential(zn.Dense(2), input_dim=2), "layers must be a list of layers"),
    (lambda: zn.Sequential([zn.Dense(2), "relu"], input_dim=2),
     r"'relu' is not a layer \(zeronn.layers: Dense"),
    (lambda: zn.Sequential([zn.Dense(2), np.ones(2)], input_dim=2), "is not a layer"),
    (lambda: (lambda d: zn.Sequential([d, zn.Activation("relu"), d], input_dim=2))(
        zn.Dense(2)), "the same layer object appears twice"),
    (lambda: (lambda d: (zn.Sequential([d], input_dim=2), zn.Sequential([d], input_dim=2)))(
        zn.Dense(2)), "already belongs to a network: make a new layer for each network"),
    (lambda: zn.Sequential([zn.Dense(2)]), "give the input size: input_dim=n_features"),
    (lambda: zn.Sequential([zn.Dense(2)], input_dim=2, input_shape=(2,)),
     "give the input size"),
    (lambda: zn.Sequential([zn.Dense(2)], input_dim=0), "input_dim must be a positive integer"),
    (lambda: zn.Sequential([zn.Dense(2)], input_shape=()), "input_shape must not be empty"),
    (lambda: zn.Sequential([zn.Dense(2)], input_shape=(2, -1)), "each input_shape entry"),
    (lambda: zn.Sequential([zn.Dense(2)], input_shape="ab"), "input_shape"),
    (lambda: zn.Sequential([zn.Dense(2)], input_shape=(2, 3, 3)),
     r"Dense takes \(n, features\) or \(n, time, features\) inputs, but its input has "
     r"shape \(n, 2, 3, 3\)"),
    (lambda: zn.Sequential([zn.BatchNorm(), zn.Dense(2)], input_shape=(2, 3, 3)),
     r"Dense takes \(n, features\) or \(n, time, features\) inputs"),
    (lambda: zn.Sequential([zn.Dense(2)], input_dim=2, dtype="int32"),
     "dtype must be 'float64' or 'float32'"),
])
def test_sequential_construction_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_summary_lists_layers_shapes_and_parameter_counts():
    lines: list[str] = []
    net = _mixed("float32")
    net.summary(print_fn=lines.append)
    assert lines[0] == "Sequential (float32)"
    rows = [line.split() for line in lines if line[:1].isdigit()]
    assert [r[0] for r in rows] == [str(i) for i in range(1, 8)]
    assert [r[-1] for r in rows] == ["24", "12", "0", "35", "10", "0", "12"]
    assert [r[-3:-1] for r in rows] == [["(n,", "6)"]] * 3 + [["(n,", "5)"]] * 3 + [["(n,", "2)"]]
    assert any(line.split()[:3] == ["input", "(n,", "3)"] for line in lines)
    assert "BatchNorm(momentum=0.1, eps=1e-05)" in lines[6] and "Dropout(0.3)" in lines[7]
    assert lines[-1] == "total parameters: 93" and net.n_params == 93
    assert sum(layer.n_params for layer in net.layers) == 93
    big: list[str] = []
    zn.MLP([100, 100, 1]).summary(print_fn=big.append)
    assert big[-1] == "total parameters: 10,201"


def test_backward_gives_loss_and_gradients_gradients_and_dx(central_differences):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    net = _mixed()
    net.set_rng(np.random.default_rng(5))
    out = net.forward(X, training=True)
    dout = 2 / y.size * (out - y)  # dL/dout of the mean squared error
    dX = net.backward(dout)
    grads = [g.copy() for g in net.grads]
    assert dX.shape == X.shape and dX.dtype == net.dtype
    net.set_rng(np.random.default_rng(5))  # the same masks
    value, want = net.loss_and_gradients(X, y, "mse", training=True)
    assert value == pytest.approx(float(np.mean((out - y) ** 2)), rel=1e-13)
    for g, w in zip(grads, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    weights = rng.standard_normal(out.shape)

    def f(x: np.ndarray) -> float:  # the same masks every time; batch statistics couple rows
        net.set_rng(np.random.default_rng(5))
        return float(np.sum(net.forward(x, training=True) * weights))

    f(X)
    np.testing.assert_allclose(net.backward(weights), central_differences(f, X),
                               rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match=r"grad_output has shape \(7, 3\), but the last "
                                         r"forward pass output \(7, 2\)"):
        net.backward(np.ones((7, 3)))


def test_predict_is_evaluation_mode():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    net = _mixed()
    net.fit(X, y, epochs=3, batch_size=3)  # moves the running statistics
    bn, ln = net.layers[1], net.layers[4]
    state = {k: np.array(v, copy=True) for k, v in bn.state.items()}
    rng_state = net.rng.bit_generator.state
    # the network written out in evaluation mode: running statistics, no dropout
    d1, d4, d7 = net.layers[0], net.layers[3], net.layers[6]
    h = np.tanh(X @ d1.W + d1.b)
    h = bn.gamma * (h - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) + bn.beta
    h = h @ d4.W + d4.b
    h = ln.gamma * (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True)
                                                          + ln.eps) + ln.beta
    want = net.layers[5].activation(h) @ d7.W + d7.b
    np.testing.assert_allclose(net.predict(X), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(net.predict(X), net.predict(X))
    np.testing.assert_allclose(net.forward(X), want, rtol=1e-12, atol=1e-14)
    for k, v in bn.state.items():  # prediction moves no state and draws no mask
        np.testing.assert_array_equal(v, state[k])
    assert net.rng.bit_generator.state == rng_state
    assert not np.allclose(net.forward(X, training=True), want)


@pytest.mark.parametrize("dtype", [None, "float64", "float32"])
def test_copy_keeps_params_states_and_generator(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    net = _mixed()
    net.fit(X, y, epochs=2, batch_size=3)
    new = net.copy(dtype) if dtype else net.copy()
    assert type(new) is zn.Sequential and new is not net
    assert new.dtype == np.dtype(dtype or "float64") and new.flat_params.dtype == new.dtype
    assert new.optimizer is None and new.history is None and net.history is not None
    for a, b in zip(net.params, new.params):
        np.testing.assert_array_equal(a.astype(new.dtype), b)
    for sa, sb in zip(net.states(), new.states()):
        assert sa.keys() == sb.keys()
        for k in sa:
            np.testing.assert_array_equal(np.asarray(sa[k]).astype(sb[k].dtype), sb[k])
    assert int(new.layers[1].num_batches_tracked) == 6
    assert new.rng is not net.rng and all(layer.rng is new.rng for layer in new.layers)
    assert new.rng.bit_generator.state == net.rng.bit_generator.state
    np.testing.assert_allclose(new.predict(X), net.predict(X),
                               rtol=1e-4 if dtype == "float32" else 1e-15, atol=1e-5)
    new.params[0][...] = 0  # independent
    new.layers[1].running_mean[...] = 7
    assert net.params[0].any() and not (net.layers[1].running_mean == 7).any()
    new.fit(X, y, epochs=1, batch_size=3)


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_pickled_sequential_keeps_params_bound_and_states(how):
    import copy
    import pickle

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    net = _mixed()
    net.fit(X, y, epochs=2, batch_size=8)
    twin = pickle.loads(pickle.dumps(net)) if how == "pickle" else copy.deepcopy(net)
    np.testing.assert_array_equal(twin.predict(X), net.predict(X))
    for layer in twin.layers:
        for p, g in zip(layer.params, layer.grads):
            assert np.shares_memory(p, twin.flat_params)
            assert np.shares_memory(g, twin.flat_grads)
    np.testing.assert_array_equal(twin.layers[1].running_var, net.layers[1].running_var)
    twin.loss_and_gradients(X, y)  # a training pass: one more batch tracked
    before = [p.copy() for p in twin.params]
    # an optimizer step on the flat buffer (as fit makes it) moves the layers' params
    zn.optim.SGD(lr=0.1).step([twin.flat_params], [twin.flat_grads])
    assert all(not np.array_equal(a, b) for a, b in zip(before, twin.params))
    before = [p.copy() for p in twin.params]
    twin.fit(X, y, epochs=1, batch_size=8)
    assert not np.array_equal(before[0], twin.params[0])
    assert int(twin.layers[1].num_batches_tracked) == int(net.layers[1].num_batches_tracked) + 3


@pytest.mark.parametrize(("out", "loss", "match"), [
    ("sigmoid", "mse", "pair 'sigmoid' with 'binary_crossentropy'"),
    ("softmax", "huber", "pair 'softmax' with 'categorical_crossentropy'"),
    ("identity", "categorical_crossentropy", "needs output_activation='softmax'"),
    ("identity", "binary_crossentropy", "needs output_activation='sigmoid'"),
    ("softmax", "binary_crossentropy", "needs output_activation='sigmoid'"),
])
def test_loss_and_output_pairing_errors_name_the_pair_to_use(out, loss, match):
    net = _mixed(out=out)
    X, y = np.ones((4, 3)), np.eye(2)[[0, 1, 0, 1]]
    for call in (lambda: net.loss_and_gradients(X, y, loss),
                 lambda: net.fit(X, y, loss, epochs=1), lambda: zn.trace(net, X, y, loss)):
        with pytest.raises(ValueError, match=match):
            call()


def _sequence_net(**kw):
    return zn.Sequential([zn.Dense(6, activation="tanh"), zn.Dense(4, activation="softmax")],
                         input_shape=(5, 3), seed=0, **kw)


def test_sequence_loss_is_the_mean_over_every_step(rng):
    """(n, T, K) outputs: the loss of the n*T steps as rows (torch's default mean)."""
    net = _sequence_net()
    X = rng.normal(size=(3, 5, 3))
    ids = rng.integers(0, 4, size=(3, 5))
    seq_value, seq_grads = net.loss_and_gradients(X, ids, "categorical_crossentropy")
    one_hot_value, one_hot_grads = net.loss_and_gradients(X, np.eye(4)[ids],
                                                          "categorical_crossentropy")
    probs = net.predict(X).reshape(-1, 4)
    # Computed three ways (picked logit, one-hot dot, log of probabilities): to rounding.
    expected = -np.mean(np.log(probs[np.arange(15), ids.reshape(-1)]))
    assert seq_value == pytest.approx(expected, rel=1e-12)
    assert one_hot_value == pytest.approx(expected, rel=1e-12)
    for a, b in zip(seq_grads, one_hot_grads):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-15)


def test_sequence_regression_targets_per_step(rng):
    net = zn.Sequential([zn.Dense(2)], input_shape=(4, 3), seed=0)
    X, y = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 2))
    value, _ = net.loss_and_gradients(X, y, "mse")
    assert value == pytest.approx(np.mean((net.predict(X) - y) ** 2), rel=1e-12)
    one = zn.Sequential([zn.Dense(1)], input_shape=(4, 3), seed=0)
    value, _ = one.loss_and_gradients(X, y[..., 0], "mse")  # (n, T) for one output
    assert value == pytest.approx(np.mean((one.predict(X)[..., 0] - y[..., 0]) ** 2),
                                  rel=1e-12)
    with pytest.raises(ValueError, match=r"y has shape \(5, 4, 3\), expected \(5, 4, 2\)"):
        net.loss_and_gradients(X, rng.normal(size=(5, 4, 3)), "mse")


def test_sequence_prediction_takes_shorter_sequences(rng):
    net = _sequence_net()
    X = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(net.predict(X[:, :2]), net.predict(X)[:, :2], rtol=1e-13)
    with pytest.raises(ValueError, match=r"prediction takes 1 to 5 steps"):
        net.predict(rng.normal(size=(2, 6, 3)))
    with pytest.raises(ValueError, match=r"X has shape \(2, 4, 3\), expected"):
        net.loss_and_gradients(X[:, :4], np.zeros((2, 4), int), "categorical_crossentropy")
    flat = zn.Sequential([zn.Dense(2), zn.Flatten(), zn.Dense(1)], input_shape=(5, 3))
    with pytest.raises(ValueError, match=r"expected \(n_samples, 5, 3\)$"):
        flat.predict(X[:, :2])  # Flatten needs every step


def test_sequence_fit_with_class_indices_padding_and_clipping(rng):
    net = _sequence_net()
    X = rng.normal(size=(12, 5, 3))
    ids = rng.integers(0, 4, size=(12, 5))
    ids[:, :2] = -100  # padding: not learned from
    hist = net.fit(X, ids, loss="categorical_crossentropy", optimizer=zn.optim.SGD(0.5),
                   epochs=5, batch_size=4, validation_split=0.25, clip_grad_norm=0.1)
    assert len(hist["loss"]) == len(hist["val_loss"]) == 5
    assert all(isinstance(v, float) for v in hist["val_loss"])
    assert hist["loss"][-1] < hist["loss"][0]


def test_walk_lists_every_layer_with_its_path():
    """Network.walk: composites' sublayers too, depth first, with summary()'s paths."""
    inner = zn.Residual([zn.Dense(4), zn.Activation("relu")])
    net = zn.Sequential([zn.Dense(4), zn.Residual([inner, zn.LayerNorm()]), zn.Dense(1)],
                        input_dim=3, seed=0)
    paths = [path for path, _ in net.walk()]
    assert paths == ["0", "1", "1.0", "1.0.0", "1.0.1", "1.1", "2"]
    assert net.walk()[3][1] is inner.layers[0]
