"""Each activation against its definition, its derivative against finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import zeronn as zn
from conftest import examples
from zeronn.activations import ACTIVATIONS, get_activation

NAMES = sorted(ACTIVATIONS)
C = math.sqrt(2 / math.pi)

REFERENCE = {
    "identity": lambda z: z,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "gelu": lambda z: 0.5 * z * (1 + np.tanh(C * (z + 0.044715 * z ** 3))),
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "softplus": lambda z: np.where(z > 20, z, np.log1p(np.exp(np.minimum(z, 20)))),
    "softmax": lambda z: np.exp(z - z.max(1, keepdims=True))
    / np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True),
}

moderate = arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 5)),
                  elements=st.floats(-6, 6).filter(lambda v: abs(v) > 1e-3))


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=examples(40), deadline=None)
@given(z=moderate)
def test_forward_matches_definition(name, z):
    act = get_activation(name)
    np.testing.assert_allclose(act(z), REFERENCE[name](z), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=examples(40), deadline=None)
@given(z=moderate, g=st.floats(-2, 2))
# hypothesis found it: gelu'(-6) ~ 1e-8, below the rounding noise of the summed differences
@example(z=np.array([[2.0, 1, 1, 1, 1], [1, 1, 1, 1, 5.75], [-6, 2, 3, 2, 2], [1, 1, 1, 5, 1]]),
         g=-1.8815730087600944)
def test_backward_matches_finite_differences(name, z, g, central_differences):
    """delta -> delta * f'(z), checked as a vector-Jacobian product with a random upstream."""
    act = get_activation(name)
    rng = np.random.default_rng(0)
    up = rng.standard_normal(z.shape) + g
    delta = up.copy()
    a = act(z)
    act.backward(delta, z.copy(), a, np.empty_like(z))
    numeric = central_differences(lambda zz: float((act(zz) * up).sum()), z, h=1e-6)
    # Each difference of the sum carries its rounding, about eps * sum|f(z) up| / h: where
    # f' is tiny (gelu at -6) that noise, not the derivative, is what the two sides share.
    noise = 4 * np.finfo(np.float64).eps * float(np.abs(a * up).sum()) / 1e-6
    np.testing.assert_allclose(delta, numeric, rtol=1e-6, atol=1e-8 + noise)


@pytest.mark.parametrize("name", NAMES)
def test_in_place_forward_equals_out_of_place(name):
    act = get_activation(name)
    z = np.random.default_rng(1).standard_normal((7, 4)) * 3
    z[0, :2] = [25.0, -25.0]  # beyond softplus's threshold, where it returns z itself
    expected = act(z)
    buf = z.copy()
    act.forward(buf, buf)
    np.testing.assert_array_equal(buf, expected)


@pytest.mark.parametrize("name", NAMES)
def test_float32_stays_float32(name):
    act = get_activation(name)
    z = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    a = act(z)
    assert a.dtype == np.float32
    d = z.copy()
    act.backward(d, z, a, np.empty_like(z))
    assert d.dtype == np.float32


def test_relu_family_derivative_at_the_kink():
    z = np.zeros((1, 3))
    assert (get_activation("relu").derivative(z) == 0).all()  # the seed's choice, and torch's
    assert (get_activation("leaky_relu").derivative(z) == 0.01).all()
    assert (get_activation("elu").derivative(z) == 1.0).all()


def test_saturation_is_finite_and_accurate():
    z = np.array([[-1000.0, -50.0, 0.0, 50.0, 1000.0]])
    s = get_activation("sigmoid")(z)
    assert np.isfinite(s).all()
    assert s[0, 0] == 0.0 and s[0, -1] == 1.0 and s[0, 2] == 0.5
    assert s[0, 1] == pytest.approx(math.exp(-50), rel=1e-13)  # no cancellation
    sp = get_activation("softplus")(z)
    assert sp[0, -1] == 1000.0 and sp[0, 0] == 0.0
    sm = get_activation("softmax")(z)
    assert np.isfinite(sm).all() and sm.sum() == pytest.approx(1.0)
    t = get_activation("tanh")(z)
    assert (np.abs(t) <= 1).all()
    assert np.isfinite(get_activation("elu")(z)).all()
    assert np.isfinite(get_activation("gelu")(z)).all()


def test_names_and_aliases():
    assert get_activation("ReLU").name == "relu"
    assert get_activation("logistic").name == "sigmoid"
    assert get_activation("linear").name == "identity"
    act = get_activation("tanh")
    assert get_activation(act) is act and repr(act) == "Activation('tanh')"
    with pytest.raises(ValueError, match=r"unknown activation 'swish'; known: elu, gelu, identity"):
        get_activation("swish")
    with pytest.raises(ValueError, match="unknown activation 3"):
        get_activation(3)  # type: ignore[arg-type]


def test_register_activation_is_usable_everywhere():
    def swish(z):
        return z / (1 + np.exp(-z))

    def swish_deriv(z):
        return (1 + np.exp(-z) + z * np.exp(-z)) / (1 + np.exp(-z)) ** 2

    act = zn.register_activation("test_swish", swish, swish_deriv)
    try:
        assert get_activation("test_swish") is act
        rng = np.random.default_rng(0)
        net = zn.MLP([3, 4, 2], activation="test_swish", seed=0)
        report = zn.check_gradients(net, rng.standard_normal((6, 3)), rng.standard_normal((6, 2)))
        assert report.max_relative_error < 1e-6
    finally:
        del ACTIVATIONS["test_swish"]


def test_register_activation_with_a_wrong_derivative_is_caught():
    zn.register_activation("test_bad", np.sin, np.sin)  # derivative should be cos
    try:
        rng = np.random.default_rng(0)
        net = zn.MLP([3, 4, 1], activation="test_bad", seed=0)
        report = zn.check_gradients(net, rng.standard_normal((6, 3)), rng.standard_normal((6, 1)))
        assert report.max_relative_error > 1e-2
    finally:
        del ACTIVATIONS["test_bad"]
    with pytest.raises(ValueError, match="non-empty string"):
        zn.register_activation("", np.sin, np.cos)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_backward_bool_mask_path_equals_the_float_mask(dtype):
    """Large layers take ReLU's mask as bools in the work buffer's bytes: same result, to
    the bit (signed zeros included), as multiplying by the 0/1 float mask."""
    from zeronn.activations import BOOL_MASK_MIN, RELU

    rng = np.random.default_rng(0)
    shape = (BOOL_MASK_MIN // 512, 512)
    z = rng.standard_normal(shape).astype(dtype)
    z[0, :8] = 0.0  # the kink: derivative 0
    a = RELU(z)
    delta = rng.standard_normal(shape).astype(dtype)
    expected = delta * (a > 0).astype(dtype)
    work = np.empty_like(z)
    got = delta.copy()
    RELU.backward(got, None, a, work)
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_softmax_acts_on_the_last_axis(rng):
    """A sequence (n, T, K): a distribution per step, the same as its (n*T, K) rows."""
    act = get_activation("softmax")
    z = rng.normal(size=(2, 3, 4))
    a = act.forward(z, np.empty_like(z))
    np.testing.assert_allclose(a.sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(a.reshape(-1, 4), act.forward(z.reshape(-1, 4),
                                                                np.empty((6, 4))))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [0, 1, 1000, "chunk", "chunk+3", "3chunks-1"])
def test_gelu_in_chunks_equals_gelu_on_the_whole_array(dtype, size):
    """gelu works through its elements in chunks (small temporaries): the same numbers,
    to the bit, as its passes over the whole array, at and across chunk boundaries, in
    place (out is z), and on a strided view (which goes whole)."""
    from zeronn.activations import CHUNK, GELU_C, GELU_K

    n = {"chunk": CHUNK, "chunk+3": CHUNK + 3, "3chunks-1": 3 * CHUNK - 1}.get(size, size)
    rng = np.random.default_rng(1)
    z = (rng.standard_normal(n) * 4).astype(dtype)
    t = np.tanh((z * z * dtype(GELU_K) + 1) * z * dtype(GELU_C))
    expected_a = (z * (t + 1)) * dtype(0.5)
    inner = (z * z * dtype(3 * GELU_K) + 1) * dtype(GELU_C)
    slope = (t + 1) * dtype(0.5) + (1 - t * t) * inner * z * dtype(0.5)
    delta = rng.standard_normal(n).astype(dtype)
    gelu = get_activation("gelu")
    np.testing.assert_array_equal(gelu(z), expected_a)
    in_place = z.copy()
    np.testing.assert_array_equal(gelu.forward(in_place, in_place), expected_a)
    got = delta.copy()
    gelu.backward(got, z, expected_a, np.empty_like(z))
    np.testing.assert_array_equal(got, delta * slope)
    wide = np.zeros((n, 2), dtype)
    wide[:, 0] = z
    np.testing.assert_array_equal(gelu(wide[:, 0]), expected_a)   # a strided view
