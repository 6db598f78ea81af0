"""Conv2D: im2col on a tiny image by hand, col2im as its adjoint, the forward pass against a
naive 6-loop convolution, gradients by central differences, initial scales, float32, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import Conv2D
from zeronn.layers.conv import col2im, im2col

EXAMPLES = examples(25, "ZERONN_CONV_EXAMPLES")


def _built(layer: Conv2D, shape: tuple[int, int, int], dtype: str = "float64",
           seed: int = 0) -> Conv2D:
    """The layer inside a one-layer network, with a nonzero bias."""
    zn.Sequential([layer], input_shape=shape, dtype=dtype, seed=seed)
    if layer.use_bias:
        layer.b = np.random.default_rng(seed).standard_normal(layer.filters)
    return layer


def _naive_conv(x: np.ndarray, W: np.ndarray, b: np.ndarray | None, stride: tuple[int, int],
                padding: tuple[int, int]) -> np.ndarray:
    """The definition, one multiply-add at a time (cross-correlation, as torch's conv2d)."""
    n, c, h, w = x.shape
    fn, _, kh, kw = W.shape
    (sh, sw), (ph, pw) = stride, padding
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = np.zeros((n, fn, oh, ow))
    for s in range(n):
        for f in range(fn):
            for i in range(oh):
                for j in range(ow):
                    acc = 0.0 if b is None else float(b[f])
                    for ch in range(c):
                        for u in range(kh):
                            for v in range(kw):
                                acc += xp[s, ch, i * sh + u, j * sw + v] * W[f, ch, u, v]
                    out[s, f, i, j] = acc
    return out


@st.composite
def _convs(draw: Any) -> tuple[dict[str, Any], tuple[int, int, int], int]:
    """Conv2D arguments (channels 1-4, kernels 1-4, stride 1-3, padding 0-2, square or not),
    an input shape (odd and even sizes) the kernel fits, and a batch size."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kernel = kh if draw(st.booleans()) else (kh, kw)
    if isinstance(kernel, int):
        kw = kh
    stride = draw(st.sampled_from([1, 2, 3, (1, 2), (3, 1)]))
    padding = draw(st.sampled_from([0, 1, 2, (0, 1), (2, 0)]))
    ph, pw = padding if isinstance(padding, tuple) else (padding, padding)
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 8))
    c = draw(st.integers(1, 4))
    args = {"filters": draw(st.integers(1, 4)), "kernel_size": kernel, "stride": stride,
            "padding": padding, "use_bias": draw(st.booleans())}
    return args, (c, h, w), draw(st.integers(1, 3))


# -- im2col / col2im -------------------------------------------------------------------
def test_im2col_on_a_tiny_image_by_hand():
    """A 3x3 image, 2x2 windows, stride 1: one row per output pixel, values row by row."""
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1 2 3] [4 5 6] [7 8 9]]
    col = im2col(x, (2, 2), (1, 1))
    assert np.array_equal(col, [[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]])
    # Two channels, two samples, stride 2 on a 3x4 image: rows (n, oh, ow), columns (c, kh, kw).
    x = np.arange(48.0).reshape(2, 2, 3, 4)
    col = im2col(x, (2, 2), (2, 2))
    assert col.shape == (2 * 1 * 2, 2 * 2 * 2)
    assert np.array_equal(col[0], [0, 1, 4, 5, 12, 13, 16, 17])
    assert np.array_equal(col[1], [2, 3, 6, 7, 14, 15, 18, 19])
    assert np.array_equal(col[3], [26, 27, 30, 31, 38, 39, 42, 43])


def test_col2im_adds_overlapping_windows_back():
    """All-ones dcol: each pixel receives the number of windows that saw it."""
    dcol = np.ones((4, 4))
    dx = col2im(dcol, (1, 1, 3, 3), (2, 2), (1, 1), (0, 0))
    assert np.array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    # With padding 1, a 2x2 kernel and stride 2 every pixel is in exactly one window.
    dx = col2im(np.ones((4, 4)), (1, 1, 2, 2), (2, 2), (2, 2), (1, 1))
    assert np.array_equal(dx[0, 0], np.ones((2, 2)))


@settings(max_examples=EXAMPLES, deadline=None)
@given(_convs(), st.integers(0, 2**16))
def test_col2im_is_the_adjoint_of_im2col(conv, seed):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: backward is exactly forward's
    transpose, padding included."""
    args, shape, n = conv
    layer = _built(Conv2D(**args), shape)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape))
    ph, pw = layer.padding
    col = im2col(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), layer.kernel_size,
                 layer.stride)
    c = rng.standard_normal(col.shape)
    dx = col2im(c, x.shape, layer.kernel_size, layer.stride, layer.padding)
    assert np.isclose(np.sum(col * c), np.sum(x * dx), rtol=1e-12, atol=1e-12)


# -- forward ---------------------------------------------------------------------------
@settings(max_examples=EXAMPLES, deadline=None)
@given(_convs(), st.integers(0, 2**16))
def test_forward_equals_a_naive_convolution(conv, seed):
    args, shape, n = conv
    layer = _built(Conv2D(**args), shape, seed=seed)
    x = np.random.default_rng(seed).standard_normal((n, *shape))
    want = _naive_conv(x, layer.W, layer.b if layer.use_bias else None, layer.stride,
                       layer.padding)
    out = layer.forward(x, training=True)
    assert out.shape == (n, *layer.output_shape) == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.infer(x), want, rtol=1e-12, atol=1e-12)
    # The book's col of this pass: the rows the GEMM multiplied.
    assert layer.col.shape == (n * layer.output_shape[1] * layer.output_shape[2],
                               layer.fan_in)


def test_activation_and_shapes():
    layer = _built(Conv2D(2, 3, stride=2, padding=1, activation="relu"), (3, 7, 6))
    assert layer.output_shape == (2, 4, 3)
    assert layer.W.shape == (2, 3, 3, 3) and layer.b.shape == (2,)
    assert layer.param_names == ("W", "b") and layer.n_params == 2 * 27 + 2
    x = np.random.default_rng(0).standard_normal((5, 3, 7, 6))
    want = np.maximum(_naive_conv(x, layer.W, layer.b, (2, 2), (1, 1)), 0)
    np.testing.assert_allclose(layer.forward(x), want, rtol=1e-12, atol=1e-12)


# -- backward --------------------------------------------------------------------------
def _numeric(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@settings(max_examples=EXAMPLES, deadline=None)
@given(_convs(), st.sampled_from(["identity", "tanh", "elu"]), st.integers(0, 2**16))
def test_gradients_equal_central_differences(conv, act, seed):
    """dx, dW, db of L = sum(g * conv(x)) against central differences, in float64."""
    args, shape, n = conv
    layer = _built(Conv2D(**args, activation=act), shape, seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape))
    g = rng.standard_normal((n, *layer.output_shape))

    def loss() -> float:
        return float(np.sum(g * layer.infer(x)))

    layer.forward(x, training=True)
    dx = layer.backward(g.copy())
    np.testing.assert_allclose(dx, _numeric(loss, x), rtol=1e-6, atol=1e-7)
    W = layer.W.copy()
    num_W = _numeric(loss, layer._W)  # the live view: perturbing it changes the layer
    np.testing.assert_allclose(layer.dW, num_W, rtol=1e-6, atol=1e-7)
    assert np.array_equal(layer.W, W)
    if layer.use_bias:
        np.testing.assert_allclose(layer.db, _numeric(loss, layer._b), rtol=1e-6, atol=1e-7)


def test_first_layer_skips_dx():
    layer = _built(Conv2D(2, 2), (1, 4, 4))
    x = np.random.default_rng(0).standard_normal((3, 1, 4, 4))
    layer.forward(x, training=True)
    assert layer.backward(np.ones((3, 2, 3, 3)), need_dx=False) is None
    assert np.array_equal(layer.db, [27.0, 27.0])


def test_backward_needs_a_forward():
    layer = _built(Conv2D(2, 2), (1, 4, 4))
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.ones((1, 2, 3, 3)))


# -- buffers and dtypes ----------------------------------------------------------------
def test_buffers_are_reused_per_batch_size():
    layer = _built(Conv2D(2, 3, padding=1), (2, 5, 5))
    rng = np.random.default_rng(0)
    a = layer.forward(rng.standard_normal((4, 2, 5, 5)), training=True)
    b = layer.forward(rng.standard_normal((4, 2, 5, 5)), training=True)
    assert a is b
    c = layer.forward(rng.standard_normal((3, 2, 5, 5)), training=True)
    assert c is not a and c.shape == (3, 2, 5, 5)


def test_float32_stays_float32():
    net = zn.Sequential([Conv2D(3, 3, padding=1, activation="relu"), zn.Flatten(),
                         zn.Dense(2)], input_shape=(2, 5, 5), dtype="float32", seed=0)
    X = np.random.default_rng(0).standard_normal((6, 2, 5, 5)).astype(np.float32)
    out = net.forward(X, training=True)
    assert out.dtype == np.float32 and net.layers[0].col.dtype == np.float32
    dx = net.backward(np.ones_like(out))
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in net.grads)
    assert net.predict(X).dtype == np.float32


# -- initialisation --------------------------------------------------------------------
def test_initializer_gets_torch_conv_fans():
    """fan_in = C*KH*KW, fan_out = FN*KH*KW; W is the first FN columns, transposed."""
    seen: list[tuple[int, int]] = []

    def init(rng, fan_in, fan_out, dtype):
        seen.append((fan_in, fan_out))
        return np.arange(fan_in * fan_out, dtype=dtype).reshape(fan_in, fan_out)

    net = zn.Sequential([Conv2D(4, (2, 3), init=init)], input_shape=(3, 5, 5), seed=0)
    assert seen == [(3 * 2 * 3, 4 * 2 * 3)]
    m = np.arange(18 * 24.0).reshape(18, 24)
    assert np.array_equal(net.layers[0].W, m[:, :4].T.reshape(4, 3, 2, 3))
    assert np.array_equal(net.layers[0].b, np.zeros(4))


@pytest.mark.parametrize(("init", "filters", "std"), [
    ("he_normal", 8, np.sqrt(2 / 72)),                  # fan_in = 8 * 3 * 3
    ("glorot_normal", 16, np.sqrt(2 / (72 + 144))),     # fan_out = 16 * 3 * 3
    ("glorot_uniform", 16, np.sqrt(6 / (72 + 144)) / np.sqrt(3)),
])
def test_initial_scale_follows_the_fans(init, filters, std):
    net = zn.Sequential([Conv2D(filters, 3, init=init)], input_shape=(8, 6, 6), seed=0)
    W = net.layers[0].W
    assert abs(W.std() / std - 1) < 0.1


# -- configuration and errors ----------------------------------------------------------
def test_config_repr_and_rebuild():
    layer = Conv2D(6, (3, 5), stride=2, padding=(1, 0), activation="relu", use_bias=False)
    cfg = layer.config()
    assert cfg == {"filters": 6, "kernel_size": [3, 5], "stride": 2, "padding": [1, 0],
                   "activation": "relu", "init": "he_normal", "use_bias": False}
    assert Conv2D(**cfg).config() == cfg
    assert repr(layer) == ("Conv2D(6, kernel_size=[3, 5], stride=2, padding=[1, 0], "
                           "activation='relu', use_bias=False)")
    assert repr(Conv2D(4, 3)) == "Conv2D(4, kernel_size=3)"


def test_summary_shows_output_shapes():
    net = zn.Sequential([Conv2D(6, 5, activation="relu"), zn.MaxPool2D(2), zn.Flatten(),
                         zn.Dense(10)], input_shape=(1, 28, 28), seed=0)
    lines: list[str] = []
    net.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "(n, 6, 24, 24)" in text and "(n, 6, 12, 12)" in text and "(n, 864)" in text
    assert "156" in text  # 6 * 25 + 6


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Conv2D(0, 3), "filters must be a positive integer, got 0"),
    (lambda: Conv2D(2.5, 3), "filters"),
    (lambda: Conv2D(2, 0), "kernel_size must be a positive integer"),
    (lambda: Conv2D(2, -3), "kernel_size.*-3"),
    (lambda: Conv2D(2, (3, 3, 3)), "pair"),
    (lambda: Conv2D(2, True), "kernel_size"),
    (lambda: Conv2D(2, 3, stride=0), "stride"),
    (lambda: Conv2D(2, 3, padding=-1), "padding must be an integer >= 0"),
    (lambda: Conv2D(2, 3, activation="nope"), "nope"),
    (lambda: Conv2D(2, 3, init="nope"), "nope"),
    (lambda: zn.Sequential([Conv2D(2, 3)], input_dim=8), r"\(n, C, H, W\).*\(n, 8\)"),
    (lambda: zn.Sequential([Conv2D(2, 6)], input_shape=(1, 5, 5)),
     "window 6 is larger than the padded input height 5"),
    (lambda: zn.Sequential([Conv2D(2, (1, 8), padding=(0, 1))], input_shape=(1, 5, 5)),
     r"width 7 \(5 \+ 2\*1\)"),
    (lambda: zn.Sequential([Conv2D(2, 3), zn.Dense(2)], input_shape=(1, 5, 5)),
     "put Flatten"),
])
def test_bad_arguments_say_what_and_how(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_weights_of_the_wrong_shape_are_refused():
    layer = _built(Conv2D(2, 3), (1, 5, 5))
    with pytest.raises(ValueError, match=r"W has shape \(2, 9\), expected \(2, 1, 3, 3\)"):
        layer.W = np.ones((2, 9))
    with pytest.raises(ValueError, match=r"b has shape"):
        layer.b = np.ones(3)


def test_network_checks_image_inputs():
    net = zn.Sequential([Conv2D(2, 3)], input_shape=(1, 5, 5), seed=0)
    with pytest.raises(ValueError, match=r"X has shape \(4, 25\), expected \(n_samples, 1, 5, 5\)"):
        net.predict(np.ones((4, 25)))


def test_a_network_with_image_outputs_asks_for_flatten_before_a_loss():
    net = zn.Sequential([Conv2D(2, 2)], input_shape=(1, 3, 3), seed=0)
    X = np.ones((4, 1, 3, 3))
    assert net.predict(X).shape == (4, 2, 2, 2)  # it still computes
    with pytest.raises(ValueError, match=r"outputs \(n, 2, 2, 2\).*end it in Flatten\(\)"):
        net.loss_and_gradients(X, np.ones((4, 8)))
    with pytest.raises(ValueError, match="Flatten"):
        net.fit(X, np.ones((4, 8)), epochs=1)
