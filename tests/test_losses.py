"""Each loss value against its formula, each gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.activations import get_activation
from zeronn.losses import LOSSES, get_loss

REGRESSION = ["mse", "mae", "huber"]


def _reference(name: str, a: np.ndarray, y: np.ndarray) -> float:
    d = a - y
    if name == "mse":
        return float(np.mean(d ** 2))
    if name == "mae":
        return float(np.mean(np.abs(d)))
    return float(np.mean(np.where(np.abs(d) <= 1, 0.5 * d ** 2, np.abs(d) - 0.5)))


def _value(name, a, y, w=None):
    return get_loss(name).value_and_grad(a, y, np.empty_like(a), np.empty_like(a), w)


shapes = st.tuples(st.integers(1, 8), st.integers(1, 4))


@pytest.mark.parametrize("name", REGRESSION)
@settings(max_examples=examples(30), deadline=None)
@given(shape=shapes, seed=st.integers(0, 2 ** 16))
def test_regression_value_and_gradient(name, shape, seed, central_differences):
    rng = np.random.default_rng(seed)
    a, y = rng.standard_normal(shape) * 2, rng.standard_normal(shape) * 2
    grad = np.empty_like(a)
    value = get_loss(name).value_and_grad(a, y, grad, np.empty_like(a), None)
    assert value == pytest.approx(_reference(name, a, y), rel=1e-12)
    numeric = central_differences(lambda aa: _reference(name, aa, y), a)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(("name", "act"), [("binary_crossentropy", "sigmoid"),
                                           ("categorical_crossentropy", "softmax")])
@settings(max_examples=examples(30), deadline=None)
@given(shape=shapes, seed=st.integers(0, 2 ** 16), scale=st.sampled_from([0.5, 3.0, 30.0]))
def test_fused_cross_entropy_value_and_logit_gradient(name, act, shape, seed, scale,
                                                      central_differences):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * scale
    if name == "binary_crossentropy":
        y = rng.uniform(0, 1, shape)
    else:
        y = np.eye(shape[1])[rng.integers(0, shape[1], shape[0])]
    f = get_activation(act)

    def ref(zz):
        p = f(zz)
        if name == "binary_crossentropy":
            logp = -np.logaddexp(0, -zz)
            log1mp = -np.logaddexp(0, zz)
            return float(-(y * logp + (1 - y) * log1mp).sum() / zz.shape[0])
        logp = zz - zz.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        del p
        return float(-(y * logp).sum() / zz.shape[0])

    grad = np.empty_like(z)
    value = get_loss(name).fused(z, f(z), y, grad, None)
    assert value == pytest.approx(ref(z), rel=1e-10, abs=1e-12)
    numeric = central_differences(ref, z)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_fused_gradient_is_p_minus_y_over_n():
    z = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    p = get_activation("softmax")(z)
    grad = np.empty_like(z)
    get_loss("categorical_crossentropy").fused(z, p, y, grad, None)
    np.testing.assert_allclose(grad, (p - y) / 2, rtol=1e-15)


def test_cross_entropy_with_logits_of_1000_stays_finite():
    z = np.array([[1000.0, -1000.0], [-1000.0, 1000.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    p = get_activation("softmax")(z)
    grad = np.empty_like(z)
    v = get_loss("categorical_crossentropy").fused(z, p, y, grad, None)
    assert v == pytest.approx(1000.0) and np.isfinite(grad).all()
    zb = np.array([[1000.0], [-1000.0]])
    yb = np.array([[0.0], [0.0]])
    vb = get_loss("binary_crossentropy").fused(zb, get_activation("sigmoid")(zb), yb,
                                               np.empty_like(zb), None)
    assert vb == pytest.approx(500.0)


def test_weights_make_a_weighted_mean():
    rng = np.random.default_rng(0)
    a, y = rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    w = np.array([[2.0], [0.0], [1.0], [1.0]])  # sums to n = 4
    ar, yr = np.repeat(a, [2, 0, 1, 1], 0), np.repeat(y, [2, 0, 1, 1], 0)
    for name in REGRESSION:
        assert _value(name, a, y, w) == pytest.approx(_value(name, ar, yr), rel=1e-12)


def test_loss_call_evaluates_from_outputs():
    assert get_loss("mse")(np.array([[1.0], [3.0]]), np.array([[0.0], [0.0]])) == 5.0
    p = np.array([[0.25, 0.75]])
    assert get_loss("cce")(p, np.array([[0.0, 1.0]])) == pytest.approx(-np.log(0.75))
    assert get_loss("bce")(np.array([[0.0]]), np.array([[1.0]])) > 30  # clipped, finite


def test_names_aliases_and_registry():
    assert set(LOSSES) >= {"mse", "mae", "huber", "binary_crossentropy",
                           "categorical_crossentropy"}
    assert get_loss("squared_error").name == "mse"
    assert get_loss("MAE").name == "mae"
    with pytest.raises(ValueError, match=r"unknown loss 'l2'; known: binary_crossentropy"):
        get_loss("l2")


def test_register_loss():
    loss = zn.register_loss("test_quartic", lambda a, y: float(np.mean((a - y) ** 4)),
                            lambda a, y: 4 * (a - y) ** 3 / a.size)
    try:
        rng = np.random.default_rng(0)
        net = zn.MLP([2, 3, 1], "tanh", seed=0)
        X, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 1))
        assert zn.check_gradients(net, X, y, loss="test_quartic").max_relative_error < 1e-6
        assert get_loss("test_quartic") is loss
        with pytest.raises(ValueError, match="sample weights are not supported"):
            net.loss_and_gradients(X, y, loss="test_quartic", sample_weight=np.ones(5))
    finally:
        del LOSSES["test_quartic"]


def test_a_loss_without_a_class_index_form_says_so():
    """A softmax loss that has only the one-hot form refuses class indices, in fit and in
    loss_and_gradients alike (one rule: Loss.sparse_step)."""
    one_hot_only = zn.Loss("one_hot_ce", None, "softmax", get_loss("cce").fused)
    net = zn.MLP([2, 3], output_activation="softmax", seed=0)
    X, ids = np.ones((4, 2)), np.array([0, 1, 2, 1])
    for call in (lambda: net.fit(X, ids, loss=one_hot_only, epochs=1),
                 lambda: net.loss_and_gradients(X, ids, loss=one_hot_only)):
        with pytest.raises(ValueError, match="takes one-hot or float targets, not class"):
            call()
    value, _ = net.loss_and_gradients(X, np.eye(3)[ids], loss=one_hot_only)
    assert value > 0
