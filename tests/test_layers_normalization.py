"""BatchNorm and LayerNorm: forward against their formulas, running statistics, gradients
by central differences, batches of one row, float32."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples, param_loss
from zeronn.layers import BatchNorm, LayerNorm

SHAPES = [(4,), (1,), (7,), (2, 3, 3), (3, 1, 2)]


def _built(layer, shape, dtype: str = "float64", seed: int = 0):
    """The layer inside a one-layer network (which builds it), with gamma, beta != 1, 0."""
    zn.Sequential([layer], input_shape=shape, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    layer.gamma = rng.uniform(0.5, 2.0, layer.gamma.shape)
    layer.beta = rng.standard_normal(layer.beta.shape)
    return layer


def _bshape(layer, x):
    """gamma/beta broadcast against x: per channel for BatchNorm, per feature for LayerNorm."""
    if isinstance(layer, BatchNorm):
        return (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return (1, *x.shape[1:])


def _tol(dtype: str) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-12}


# -- BatchNorm -------------------------------------------------------------------------
@settings(max_examples=examples(30), deadline=None)
@given(st.sampled_from(SHAPES), st.integers(2, 9), st.integers(0, 2**16),
       st.sampled_from(["float64", "float32"]))
def test_batchnorm_forward_is_its_formula(shape, n, seed, dtype) -> None:
    layer = _built(BatchNorm(), shape, dtype, seed)
    x = (3 * np.random.default_rng(seed).standard_normal((n, *shape)) + 1).astype(dtype)
    axes = (0,) if len(shape) == 1 else (0, 2, 3)
    g, b = layer.gamma.reshape(_bshape(layer, x)), layer.beta.reshape(_bshape(layer, x))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)  # biased, for the normalization
    want = g * (x - mean) / np.sqrt(var + layer.eps) + b
    out = layer.forward(x, training=True)
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, want, **_tol(dtype))
    # evaluation: the running statistics, which the training pass just moved
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    m = x.size // shape[0]
    np.testing.assert_allclose(rm, 0.1 * mean.ravel(), **_tol(dtype))
    np.testing.assert_allclose(rv, 0.9 + 0.1 * var.ravel() * m / (m - 1), **_tol(dtype))
    bs = _bshape(layer, x)
    want_eval = g * (x - rm.reshape(bs)) / np.sqrt(rv.reshape(bs) + layer.eps) + b
    np.testing.assert_allclose(layer.forward(x, training=False), want_eval, **_tol(dtype))
    np.testing.assert_allclose(layer.infer(x), want_eval, **_tol(dtype))
    np.testing.assert_array_equal(layer.running_mean, rm)  # evaluation moves nothing
    assert int(layer.num_batches_tracked) == 1


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0, 0.0, None])
def test_running_statistics(momentum) -> None:
    rng = np.random.default_rng(0)
    layer = _built(BatchNorm(momentum=momentum), (3,))
    mean, var = np.zeros(3), np.ones(3)
    batch_means, batch_vars = [], []
    for k in range(1, 6):
        x = rng.standard_normal((4 + k, 3)) * k + k
        layer.forward(x, training=True)
        bm, bv = x.mean(0), x.var(0, ddof=1)  # the running variance is unbiased (torch)
        batch_means.append(bm)
        batch_vars.append(bv)
        f = 1 / k if momentum is None else momentum
        mean, var = (1 - f) * mean + f * bm, (1 - f) * var + f * bv
        np.testing.assert_allclose(layer.running_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, var, rtol=1e-12)
        assert int(layer.num_batches_tracked) == k
    if momentum is None:  # the cumulative average of the batches' statistics
        np.testing.assert_allclose(layer.running_mean, np.mean(batch_means, 0), rtol=1e-12)
        np.testing.assert_allclose(layer.running_var, np.mean(batch_vars, 0), rtol=1e-12)
    state = {k: np.array(v, copy=True) for k, v in layer.state.items()}
    layer.initialize(rng)  # resets the state
    assert not layer.running_mean.any() and (layer.running_var == 1).all()
    layer.set_state(state)
    np.testing.assert_array_equal(layer.running_var, state["running_var"])
    with pytest.raises(ValueError, match=r"state 'running_mean' has shape \(2,\), expected"):
        layer.set_state({**state, "running_mean": np.zeros(2)})


def test_a_training_batch_of_one_row_raises_and_evaluation_works() -> None:
    layer = _built(BatchNorm(), (3,))
    with pytest.raises(ValueError, match="use batches of at least 2 rows"):
        layer.forward(np.ones((1, 3)), training=True)
    assert int(layer.num_batches_tracked) == 0  # nothing was updated
    np.testing.assert_allclose(layer.forward(np.ones((1, 3)), training=False),
                               (layer.gamma / np.sqrt(1 + layer.eps) + layer.beta).reshape(1, 3),
                               rtol=1e-14)
    # (n, C, H, W): one row of several pixels per channel is enough
    img = _built(BatchNorm(), (2, 2, 2))
    assert img.forward(np.arange(8.0).reshape(1, 2, 2, 2), training=True).shape == (1, 2, 2, 2)


@pytest.mark.parametrize(("n", "batch_size"), [(9, 4), (5, 1), (7, 2)])
def test_fit_refuses_a_batch_of_one_row_before_training(n, batch_size) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n, 3)), rng.standard_normal((n, 1))
    net = zn.Sequential([zn.Dense(4), zn.BatchNorm(), zn.Activation("relu"), zn.Dense(1)],
                        input_dim=3, seed=0)
    before = net.flat_params.copy()
    with pytest.raises(ValueError, match=r"BatchNorm needs at least 2 rows per training "
                                         r"batch.*choose another batch_size"):
        net.fit(X, y, epochs=2, batch_size=batch_size)
    np.testing.assert_array_equal(net.flat_params, before)
    assert net.history is None and int(net.layers[1].num_batches_tracked) == 0
    assert net.predict(X[:1]).shape == (1, 1)  # evaluation on one row works
    net.fit(X, y, epochs=1, batch_size=batch_size + 1 if n % (batch_size + 1) != 1 else n)


def test_fit_refuses_a_batch_of_one_row_for_a_batchnorm_inside_a_composite() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    net = zn.Sequential([zn.Residual([zn.Dense(3), zn.BatchNorm()])], input_dim=3, seed=0)
    with pytest.raises(ValueError, match=r"BatchNorm needs at least 2 rows per training "):
        net.fit(X, y, epochs=1, batch_size=1)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"momentum": -0.1}, r"momentum must be a number in \[0, 1\] or None"),
    ({"momentum": 1.5}, "momentum must be"), ({"momentum": "0.1"}, "momentum must be"),
    ({"momentum": True}, "momentum must be"),
    ({"eps": 0}, "eps must be a positive number"), ({"eps": -1e-5}, "eps must be"),
    ({"eps": None}, "eps must be"),
])
def test_bad_batchnorm_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        BatchNorm(**kwargs)


def test_batchnorm_input_rank_and_description() -> None:
    with pytest.raises(ValueError, match=r"BatchNorm takes \(n, features\) or \(n, C, H, W\)"):
        zn.Sequential([BatchNorm()], input_shape=(2, 3))
    layer = BatchNorm(momentum=None, eps=1e-3)
    assert repr(layer) == "BatchNorm(momentum=None, eps=0.001)" and layer.kind == "batchnorm"
    rebuilt = type(layer)(**layer.config())
    assert (rebuilt.momentum, rebuilt.eps) == (None, 1e-3)
    net = zn.Sequential([BatchNorm()], input_shape=(3, 2, 2))
    assert [p.shape for p in net.params] == [(3,), (3,)] and net.n_params == 6
    assert (net.params[0] == 1).all() and not net.params[1].any()
    assert set(net.states()[0]) == {"running_mean", "running_var", "num_batches_tracked"}


# -- LayerNorm -------------------------------------------------------------------------
@settings(max_examples=examples(30), deadline=None)
@given(st.sampled_from([s for s in SHAPES if s != (1,)]), st.integers(1, 9),
       st.integers(0, 2**16), st.sampled_from(["float64", "float32"]), st.booleans())
def test_layernorm_forward_is_its_formula(shape, n, seed, dtype, training) -> None:
    layer = _built(LayerNorm(), shape, dtype, seed)
    x = (3 * np.random.default_rng(seed).standard_normal((n, *shape)) - 2).astype(dtype)
    axes = tuple(range(1, x.ndim))
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    bs = _bshape(layer, x)
    want = layer.gamma.reshape(bs) * (x - mean) / np.sqrt(var + layer.eps) \
        + layer.beta.reshape(bs)
    out = layer.forward(x, training=training)  # the same in both modes
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, want, **_tol(dtype))
    np.testing.assert_allclose(layer.infer(x), want, **_tol(dtype))
    assert layer.gamma.shape == shape and layer.state == {}


def test_layernorm_description() -> None:
    layer = LayerNorm(eps=1e-6)
    assert repr(layer) == "LayerNorm(eps=1e-06)" and layer.kind == "layernorm"
    assert type(layer)(**layer.config()).eps == 1e-6
    with pytest.raises(ValueError, match="eps must be a positive number"):
        LayerNorm(eps=0.0)


# -- gradients, both layers --------------------------------------------------------------
@settings(max_examples=examples(20), deadline=None)
@given(kind=st.sampled_from(["batchnorm", "batchnorm-eval", "layernorm"]),
       shape=st.sampled_from(SHAPES), n=st.integers(2, 5), seed=st.integers(0, 2**16))
def test_gradients_match_central_differences(kind, shape, n, seed,
                                             central_differences) -> None:
    if kind == "layernorm" and shape == (1,):
        shape = (3,)  # one feature normalizes to 0: a constant, whose gradient is 0
    rng = np.random.default_rng(seed)
    layer = _built(LayerNorm() if kind == "layernorm" else BatchNorm(), shape, seed=seed)
    training = kind != "batchnorm-eval"
    if not training:  # running statistics away from 0 and 1
        layer.running_mean[...] = rng.standard_normal(layer.running_mean.shape)
        layer.running_var[...] = rng.uniform(0.5, 2.0, layer.running_var.shape)
    x = 2 * rng.standard_normal((n, *shape))
    weights = rng.standard_normal(x.shape)  # L = sum(out * weights): dL/dout = weights

    def loss_of_x(v: np.ndarray) -> float:
        return float(np.sum(layer.forward(v, training) * weights))

    def loss_of(param: str) -> Callable[[np.ndarray], float]:
        return param_loss(layer, param, lambda: loss_of_x(x))

    layer.forward(x, training)
    dx = layer.backward(weights.copy())
    dgamma, dbeta = layer.dgamma.copy(), layer.dbeta.copy()
    tol = {"rtol": 1e-5, "atol": 1e-7}
    np.testing.assert_allclose(dx, central_differences(loss_of_x, x), **tol)
    np.testing.assert_allclose(dgamma, central_differences(loss_of("gamma"), layer.gamma.copy()),
                               **tol)
    np.testing.assert_allclose(dbeta, central_differences(loss_of("beta"), layer.beta.copy()),
                               **tol)
    layer.forward(x, training)
    assert layer.backward(weights.copy(), need_dx=False) is None  # the first layer's pass
    np.testing.assert_array_equal(layer.dgamma, dgamma)


def test_backward_needs_a_forward_pass_first() -> None:
    for layer in (_built(BatchNorm(), (2,)), _built(LayerNorm(), (2,))):
        with pytest.raises(ValueError, match=r"backward\(\) needs a forward\(\) first"):
            layer.backward(np.ones((3, 2)))


@pytest.mark.parametrize("kind", [BatchNorm, LayerNorm])
def test_float32_stays_float32_in_a_network(kind) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    net = zn.Sequential([zn.Dense(4), kind(), zn.Activation("tanh"), zn.Dense(1)],
                        input_dim=3, dtype="float32", seed=0)
    net.fit(X, y, epochs=2, batch_size=8)
    norm = net.layers[1]
    assert all(p.dtype == np.float32 for p in net.params)
    assert all(v.dtype == np.float32 for k, v in norm.state.items() if k != "num_batches_tracked")
    assert net.predict(X).dtype == np.float32
    assert net.forward(X, training=True).dtype == np.float32
    ref = net.copy("float64")
    np.testing.assert_allclose(net.predict(X), ref.predict(X), rtol=1e-4, atol=1e-5)
    _, g32 = net.loss_and_gradients(X, y)
    _, g64 = ref.loss_and_gradients(X.astype(np.float32), y)
    for a, b in zip(g32, g64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-4)


def test_batchnorm_refuses_a_negative_running_variance_or_count():
    """A variance below 0 would make every prediction NaN (sqrt of a negative number)."""
    net = zn.Sequential([zn.BatchNorm()], input_dim=3, seed=0)
    bn = net.layers[0]
    good = {k: v.copy() for k, v in bn.state.items()}
    with pytest.raises(ValueError, match=r"running_var.*negative"):
        bn.set_state({**good, "running_var": np.array([1.0, -1e-3, 2.0])})
    with pytest.raises(ValueError, match=r"num_batches_tracked.*negative"):
        bn.set_state({**good, "num_batches_tracked": np.array(-1)})
    np.testing.assert_array_equal(bn.running_var, good["running_var"])  # left as it was
    bn.set_state({**good, "running_var": np.array([0.0, 0.5, 2.0])})
    np.testing.assert_array_equal(bn.running_var, [0.0, 0.5, 2.0])


def test_layernorm_on_a_sequence_normalizes_each_step(rng):
    """(n, T, D): each step over its own D features, gamma and beta (D,) (torch's
    LayerNorm(D)); equal to the (n*T, D) rows through a LayerNorm of D features."""
    x = rng.normal(size=(3, 5, 4)) * 3 + 1
    g = rng.normal(size=(3, 5, 4))
    seq = zn.Sequential([zn.LayerNorm()], input_shape=(5, 4))
    rows = zn.Sequential([zn.LayerNorm()], input_dim=4)
    assert [p.shape for p in seq.params] == [(4,), (4,)]
    seq.layers[0].gamma = rows.layers[0].gamma = rng.normal(size=4)
    seq.layers[0].beta = rows.layers[0].beta = rng.normal(size=4)
    out = seq.forward(x, training=True)
    np.testing.assert_allclose(out.reshape(-1, 4), rows.forward(x.reshape(-1, 4), True),
                               rtol=1e-13, atol=1e-13)
    dx = seq.backward(g)
    np.testing.assert_allclose(dx.reshape(-1, 4), rows.backward(g.reshape(-1, 4)),
                               rtol=1e-12, atol=1e-13)
    for a, b in zip(seq.grads, rows.grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(seq.predict(x[:, :2]), out[:, :2], rtol=1e-13, atol=1e-13)
