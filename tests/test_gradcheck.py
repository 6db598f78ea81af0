"""check_gradients on every activation x loss pair, on random shapes drawn by hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.activations import ACTIVATIONS
from zeronn.gradcheck import GradCheckReport

HIDDEN = sorted(ACTIVATIONS)
PAIRS = [("mse", "identity"), ("mae", "identity"), ("huber", "identity"),
         ("binary_crossentropy", "sigmoid"), ("categorical_crossentropy", "softmax"),
         ("mse", "tanh"), ("mae", "softplus"), ("huber", "elu")]
# A regression loss on a sigmoid/softmax output is refused (tests/test_network.py).


def _targets(rng, loss, n, k):
    if loss == "binary_crossentropy":
        return rng.uniform(0, 1, (n, k))
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    return rng.standard_normal((n, k)) * 1.5


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("loss", "out"), PAIRS)
@settings(max_examples=examples(6), deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       n=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_every_pair_passes(hidden, loss, out, sizes, n, seed):
    rng = np.random.default_rng(seed)
    net = zn.MLP(sizes, hidden, out, init="glorot_normal", seed=seed)
    # Random biases: with zero biases a dead layer feeds exact zeros forward, and the next
    # ReLU sits exactly on its kink, where no derivative exists to check.
    net.set_params([p if i % 2 == 0 else rng.normal(0, 0.5, p.shape)
                    for i, p in enumerate(net.params)])
    X = rng.standard_normal((n, sizes[0]))
    y = _targets(rng, loss, n, sizes[-1])
    report = zn.check_gradients(net, X, y, loss=loss)
    assert report.max_relative_error < 1e-6, str(report)


def test_report_contents_and_network_untouched():
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 4, 2], "tanh", dtype="float32", seed=0)
    before = [p.copy() for p in net.params]
    report = zn.check_gradients(net, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    assert isinstance(report, GradCheckReport)
    assert [p.name for p in report.params] == ["W1", "b1", "W2", "b2"]
    assert [p.shape for p in report.params] == [(3, 4), (1, 4), (4, 2), (1, 2)]
    assert report.passed(1e-6) and report.loss > 0
    assert "worst relative error" in str(report)
    for a, b in zip(net.params, before):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32


def test_detects_a_broken_gradient(monkeypatch):
    """A wrong backward pass must show up as a large relative error."""
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 4, 1], "tanh", seed=0)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    from zeronn.layers import Dense

    original = Dense.backward_from_logits

    def broken(self, delta, need_dx=True):
        out = original(self, delta, need_dx)
        self.db *= 1.5
        return out

    monkeypatch.setattr(Dense, "backward_from_logits", broken)
    report = zn.check_gradients(net, X, y)
    assert report.max_relative_error > 0.1
    assert not report.passed()


# -- any stack of layers ------------------------------------------------------------------
SMOOTH = ["tanh", "sigmoid", "gelu", "elu", "softplus", "identity"]
KINDS = ["dense", "activation", "batchnorm", "layernorm", "dropout"]


@st.composite
def stacks(draw, loss, out):
    """A Sequential mixing every layer kind, its random parameters, a batch and targets."""
    # Widths and batches of at least 3: normalizing two values (or a batch of two) is
    # near-singular when they are nearly equal, and finite differences lose their accuracy.
    d = draw(st.integers(3, 5), label="input_dim")
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4), label="kinds")
    layers, width = [], d
    for kind in kinds:
        if kind == "dense":
            width = draw(st.integers(3, 5))
            layers.append(zn.Dense(width, draw(st.sampled_from([*SMOOTH, "relu"])),
                                   use_bias=draw(st.booleans())))
        elif kind == "activation":
            layers.append(zn.Activation(draw(st.sampled_from([*SMOOTH, "softmax"]))))
        elif kind == "batchnorm":
            layers.append(zn.BatchNorm(momentum=draw(st.sampled_from([0.1, 0.5, None]))))
        elif kind == "layernorm":
            layers.append(zn.LayerNorm())
        else:
            layers.append(zn.Dropout(draw(st.sampled_from([0.0, 0.3, 0.5]))))
    k = draw(st.integers(1, 3))
    if draw(st.booleans(), label="separate output activation"):
        layers += [zn.Dense(k), zn.Activation(out)]
    else:
        layers.append(zn.Dense(k, out))
    if out == "identity" and k > 1 and draw(st.booleans(), label="ends in a norm"):
        layers.append(draw(st.sampled_from([zn.LayerNorm, zn.BatchNorm]))())
    n = draw(st.integers(3, 6), label="batch")
    seed = draw(st.integers(0, 2 ** 16), label="seed")
    net = zn.Sequential(layers, input_dim=d, seed=seed)
    rng = np.random.default_rng(seed)
    # Random biases, gammas and betas: with b = 0 a dead unit feeds exact zeros on, and a
    # later ReLU sits on its kink, where no derivative exists to check.
    net.set_params([rng.normal(0, 1 / np.sqrt(p.shape[0]), p.shape) if name == "W"
                    else rng.uniform(0.5, 1.5, p.shape) if name == "gamma"
                    else rng.normal(0, 0.5, p.shape)
                    for layer in net.layers for name, p in zip(layer.param_names, layer.params)])
    return net, rng.standard_normal((n, d)), _targets(rng, loss, n, k)


# Examples per case; ZERONN_GRADCHECK_EXAMPLES=300 for a deeper search.
# Normalizing a few nearly equal values is steep (1 / sqrt(var + 1e-5), up to 316), and
# the differences' truncation error grows with the steepness: a wrong backward is off by
# O(1) (the tests below), so 1e-5 loses nothing.
STACK_TOL = 1e-5
STACK_EXAMPLES = examples(15, "ZERONN_GRADCHECK_EXAMPLES")


@pytest.mark.parametrize("training", [True, False], ids=["training", "eval"])
@pytest.mark.parametrize(("loss", "out"), PAIRS[:5])
@settings(max_examples=STACK_EXAMPLES, deadline=None)
@given(data=st.data())
def test_every_layer_kind_passes(loss, out, training, data):
    net, X, y = data.draw(stacks(loss, out))
    if not training:  # running statistics away from (0, 1), as after some training
        for layer in net.layers:
            if isinstance(layer, zn.BatchNorm):
                layer.running_mean[...] = np.linspace(-0.5, 0.5, layer.running_mean.size)
                layer.running_var[...] = np.linspace(0.5, 2.0, layer.running_var.size)
    report = zn.check_gradients(net, X, y, loss=loss, training=training)
    assert report.max_relative_error < STACK_TOL, f"{net!r}\n{report}"


def _stack(dtype="float64"):
    net = zn.Sequential([zn.Dense(5, "tanh"), zn.BatchNorm(), zn.Dropout(0.5),
                         zn.Dense(4, use_bias=False), zn.LayerNorm(), zn.Activation("gelu"),
                         zn.Dropout(0.3), zn.Dense(2)], input_dim=3, dtype=dtype, seed=0)
    rng = np.random.default_rng(1)
    net.set_params([p + rng.normal(0, 0.3, p.shape) for p in net.params])
    return net, rng.standard_normal((6, 3)), rng.standard_normal((6, 2))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_stack_is_left_exactly_as_it_was(dtype):
    net, X, y = _stack(dtype)
    net.fit(X, y, epochs=2, batch_size=3, optimizer="adam")  # non-trivial state and masks
    params = net.flat_params.copy()
    states = [{k: v.copy() for k, v in st.items()} for st in net.states()]
    rng_state = net.rng.bit_generator.state
    masks = [layer.mask.copy() for layer in net.layers if isinstance(layer, zn.Dropout)]
    report = zn.check_gradients(net, X, y)
    assert report.passed(1e-6), str(report)
    assert [p.name for p in report.params] == ["W1", "b1", "gamma2", "beta2", "W4",
                                               "gamma5", "beta5", "W8", "b8"]
    assert "gamma5" in str(report)
    np.testing.assert_array_equal(net.flat_params, params)
    assert net.flat_params.dtype == np.dtype(dtype)
    for st_now, st_before in zip(net.states(), states):
        assert st_now.keys() == st_before.keys()
        for key in st_now:
            np.testing.assert_array_equal(st_now[key], st_before[key])
    assert net.rng.bit_generator.state == rng_state
    assert all(layer.rng is net.rng for layer in net.layers)
    now = [layer.mask for layer in net.layers if isinstance(layer, zn.Dropout)]
    for a, b in zip(now, masks):
        np.testing.assert_array_equal(a, b)


def test_dropout_masks_are_shared_with_the_finite_differences(monkeypatch):
    """Without one mask for every evaluation, the differences would be noise."""
    net, X, y = _stack()
    assert zn.check_gradients(net, X, y).passed(1e-6)
    monkeypatch.setattr(zn.Network, "set_rng", lambda self, rng: None)  # masks vary
    assert zn.check_gradients(net, X, y).max_relative_error > 0.1


def _scaled(cls, method, attr, factor):
    original = getattr(cls, method)

    def broken(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if attr == "dx":
            if out is not None:  # the first layer passes no dx on
                out *= factor
        else:
            getattr(self, attr)[...] *= factor
        return out

    return broken


@pytest.mark.parametrize(("cls", "method", "attr"), [
    (zn.Dense, "backward_from_logits", "dW"),
    (zn.Dense, "backward", "dx"),
    (zn.Activation, "backward", "dx"),
    (zn.BatchNorm, "backward", "dgamma"),
    (zn.BatchNorm, "backward", "dbeta"),
    (zn.BatchNorm, "backward", "dx"),
    (zn.LayerNorm, "backward", "dgamma"),
    (zn.LayerNorm, "backward", "dx"),
    (zn.Dropout, "backward", "dx"),
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_detects_a_broken_layer_backward(monkeypatch, cls, method, attr):
    net, X, y = _stack()
    monkeypatch.setattr(cls, method, _scaled(cls, method, attr, 1.3))
    report = zn.check_gradients(net, X, y)
    assert report.max_relative_error > 0.1, str(report)
    assert not report.passed()


def test_batchnorm_backward_without_the_batch_statistics_is_detected(monkeypatch):
    """The classic mistake: BatchNorm's backward as if its mean and variance were constants."""
    net, X, y = _stack()
    monkeypatch.setattr(zn.BatchNorm, "_normalized_backward",
                        staticmethod(lambda dxh, xhat, inv_std, axes, work: dxh * inv_std))
    report = zn.check_gradients(net, X, y)
    assert report.max_relative_error > 0.1, str(report)


# -- convnets: each new layer on its own and together --------------------------------------
_CONV_LAYERS = {
    "conv": lambda: [zn.Conv2D(3, 3, stride=2, padding=1, activation="tanh"), zn.Flatten(),
                     zn.Dense(2)],
    "conv-rect-nobias": lambda: [zn.Conv2D(2, (2, 3), stride=(1, 2), use_bias=False),
                                 zn.Flatten(), zn.Dense(2)],
    "maxpool": lambda: [zn.Conv2D(2, 1), zn.MaxPool2D(3, stride=2, padding=1), zn.Flatten(),
                        zn.Dense(2)],
    "avgpool": lambda: [zn.Conv2D(2, 2), zn.AvgPool2D(2, stride=1, padding=1), zn.Flatten(),
                        zn.Dense(2)],
    "flatten": lambda: [zn.Flatten(), zn.Dense(2, activation="elu"), zn.Dense(2)],
    "lenet": lambda: [zn.Conv2D(3, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
                      zn.Conv2D(4, 2, activation="gelu"), zn.AvgPool2D(2), zn.Flatten(),
                      zn.Dense(2)],
}


@pytest.mark.parametrize("name", list(_CONV_LAYERS))
def test_every_conv_layer_passes(name):
    """float64, random inputs (ties of a max-pool window have probability 0)."""
    rng = np.random.default_rng(11)
    net = zn.Sequential(_CONV_LAYERS[name](), input_shape=(2, 6, 7), seed=4)
    for layer in net.layers:
        if isinstance(layer, zn.Conv2D) and layer.use_bias:
            layer.b = rng.standard_normal(layer.filters) * 0.3
    X = rng.standard_normal((4, 2, 6, 7))
    y = rng.standard_normal((4, 2))
    report = zn.check_gradients(net, X, y, loss="mse")
    assert report.max_relative_error < 1e-7, report


def test_a_broken_col2im_is_detected(monkeypatch):
    """check_gradients sees a convolution whose dx is off (dropping the last kernel row)."""
    from zeronn.layers import conv

    real = conv.add_windows
    monkeypatch.setenv("ZERONN_NO_FAST", "1")  # the NumPy col2im, not the compiled one

    def broken(d6, out, stride, padding):
        return real(d6[..., :-1, :], out, stride, padding)

    net = zn.Sequential([zn.Conv2D(2, 3), zn.Conv2D(2, 2), zn.Flatten(), zn.Dense(1)],
                        input_shape=(1, 6, 6), seed=0)
    X = np.random.default_rng(0).standard_normal((3, 1, 6, 6))
    y = np.ones((3, 1))
    assert zn.check_gradients(net, X, y).max_relative_error < 1e-7
    monkeypatch.setattr(conv, "add_windows", broken)
    assert zn.check_gradients(net, X, y).max_relative_error > 1e-3
