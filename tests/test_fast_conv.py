"""zeronn._fast.conv: every compiled kernel equals the NumPy step it replaces (copies bit
for bit, col2im's sums and the max pooling too, since they add and compare in the same
order), on hypothesis-drawn shapes, strides and paddings; the direct convolution, whose
sums run in another order than BLAS's, to 1e-12 (float64) and 1e-5 (float32) of the NumPy
im2col reference; and a Conv2D or MaxPool2D with the kernels equals one without, forward
and backward. Skipped without numba; ``ZERONN_NO_FAST=1`` switches the layers back to
NumPy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn._fast import available
from zeronn.layers import Conv2D, MaxPool2D
from zeronn.layers.conv import DIRECT_MAX_FAN_IN, col2im, im2col

pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn._fast.conv import kernels

EXAMPLES = examples(40, "ZERONN_FAST_EXAMPLES")


@pytest.fixture(autouse=True, scope="module")
def _kernels_on() -> Any:
    """This module tests the kernels: on even when the run has ZERONN_NO_FAST=1 (the
    parity suite's second pass), which the layers read when they are built."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("ZERONN_NO_FAST", raising=False)
        yield


@st.composite
def _geometry(draw: Any) -> tuple[tuple[int, ...], tuple[int, int], tuple[int, int],
                                  tuple[int, int]]:
    """An input (N, C, H, W), a kernel 1-5, stride 1-3 and padding 0-2 (each side its
    own), odd and even sizes, with the kernel fitting the padded input."""
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return shape, (kh, kw), (sh, sw), (ph, pw)


def _out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


@settings(max_examples=EXAMPLES, deadline=None)
@given(geo=_geometry(), dtype=st.sampled_from(["float64", "float32"]),
       seed=st.integers(0, 2**16))
def test_im2col_and_col2im_equal_numpy(geo, dtype, seed):
    shape, k, s, p = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    want = im2col(xp, k, s)  # (N*OH*OW, C*KH*KW)
    colT = np.full(want.T.shape, np.nan, dtype)  # every entry must be written
    kernels().im2col(x, *k, *s, *p, colT)
    np.testing.assert_array_equal(colT.T, want)

    dcolT = rng.standard_normal(colT.shape).astype(dtype)
    want_dx = col2im(dcolT.T, shape, k, s, p)
    dx = np.full(shape, np.nan, dtype)
    kernels().col2im(dcolT, *k, *s, *p, dx)
    # the same additions in the same order: equal, not merely close
    np.testing.assert_allclose(dx, want_dx, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(dx, want_dx)


@settings(max_examples=EXAMPLES, deadline=None)
@given(n=st.integers(1, 4), f=st.integers(1, 5), p=st.integers(1, 30),
       use_bias=st.booleans(), relu=st.booleans(), dtype=st.sampled_from(["float64", "float32"]),
       seed=st.integers(0, 2**16))
def test_layout_changes_equal_numpy(n, f, p, use_bias, relu, dtype, seed):
    rng = np.random.default_rng(seed)
    gemm = rng.standard_normal((f, n * p)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    want = (gemm + b[:, None] if use_bias else gemm).reshape(f, n, p).transpose(1, 0, 2)
    if relu:
        want = np.maximum(want, 0)
    z = np.full((n, f, p), np.nan, dtype)
    kernels().gemm_to_nchw(gemm, b, use_bias, relu, z)
    np.testing.assert_array_equal(z, want)

    dT = np.full((f, n * p), np.nan, dtype)
    kernels().nchw_to_gemm(z, dT)
    np.testing.assert_array_equal(dT, z.transpose(1, 0, 2).reshape(f, n * p))

    # ReLU's backward folded in: delta * (a > 0), as the activation computes it
    delta = rng.standard_normal((n, f, p)).astype(dtype)
    kernels().nchw_to_gemm_relu(delta, z, dT)
    np.testing.assert_array_equal(dT, (delta * (z > 0)).transpose(1, 0, 2).reshape(f, n * p))


TOL = {"float64": 1e-12, "float32": 1e-5}


def _close(actual: np.ndarray, want: np.ndarray, dtype: str) -> None:
    """Equal to ``TOL[dtype]`` of the reference's largest value (a normwise error: the
    direct sums round differently from BLAS's, by a little of the array's scale)."""
    scale = max(float(np.max(np.abs(want))), 1.0)
    np.testing.assert_allclose(actual, want, rtol=0, atol=TOL[dtype] * scale)


@st.composite
def _direct_geometry(draw: Any) -> tuple[tuple[int, ...], int, tuple[int, int],
                                         tuple[int, int]]:
    """Stride 1 (the direct route's), kernels 1-6 wide (each of the 4/2/1 tap groups),
    padding 0-2, filters 1-4."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 9))  # 5 and 9: a 5-tap pass
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 8))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w)
    return shape, draw(st.integers(1, 4)), (kh, kw), (ph, pw)


@settings(max_examples=EXAMPLES, deadline=None)
@given(geo=_direct_geometry(), dtype=st.sampled_from(["float64", "float32"]),
       use_bias=st.booleans(), relu=st.booleans(), seed=st.integers(0, 2**16))
def test_direct_convolution_equals_the_im2col_reference(geo, dtype, use_bias, relu, seed):
    (n, c, h, w), f, (kh, kw), (ph, pw) = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    W = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    oh, ow, wp = h + 2 * ph - kh + 1, w + 2 * pw - kw + 1, w + 2 * pw
    col = im2col(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), (kh, kw), (1, 1))
    zr = (col @ W.reshape(f, -1).T).reshape(n, oh, ow, f).transpose(0, 3, 1, 2)
    if use_bias:
        zr = zr + b[:, None, None]
    want = np.maximum(zr, 0) if relu else zr

    xs = np.zeros((n, c, (h + 2 * ph) * wp + kw - 1), dtype)
    kernels().pad_planes(x, ph, pw, xs)
    np.testing.assert_array_equal(  # the planes are the padded image, then zeros
        xs[..., :(h + 2 * ph) * wp].reshape(n, c, h + 2 * ph, wp),
        np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))))
    assert not xs[..., (h + 2 * ph) * wp:].any()
    acc = np.full(3 * oh * wp, np.nan, dtype)
    z = np.full((n, f, oh, ow), np.nan, dtype)
    kernels().conv_direct(xs, W, b, use_bias, relu, wp, acc, z)
    _close(z, want, dtype)

    delta = rng.standard_normal(z.shape).astype(dtype)
    dz = delta * (z > 0) if relu else delta
    dW, db = np.full_like(W, np.nan), np.full_like(b, np.nan)
    kernels().conv_direct_grads(xs, delta, z, relu, wp, acc, dW, db)
    dz2 = dz.transpose(0, 2, 3, 1).reshape(-1, f)  # (N*OH*OW, F), col's rows
    _close(dW, (col.T @ dz2).T.reshape(W.shape), dtype)
    _close(db, dz2.sum(axis=0), dtype)


def test_the_direct_route_is_taken_by_few_inputs_per_output_and_stride_1():
    net = zn.Sequential([Conv2D(6, 5, padding=2, activation="relu"), MaxPool2D(2),
                         Conv2D(16, 5, activation="relu"), Conv2D(2, 1, stride=2)],
                        input_shape=(1, 28, 28), dtype="float32", seed=0)
    lenet1, _, lenet2, strided = net.layers
    assert lenet1.fan_in == 25 <= DIRECT_MAX_FAN_IN and lenet1.direct
    assert lenet2.fan_in == 150 and not lenet2.direct  # the GEMMs win there
    assert strided.fan_in <= DIRECT_MAX_FAN_IN and not strided.direct
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype("float32")
    net.forward(x, training=True)
    # trace and the lesson still see col: computed from the input when not built
    want = im2col(np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))), (5, 5), (1, 1))
    assert lenet1._buf.col is None
    np.testing.assert_array_equal(lenet1.col, want)


@st.composite
def _pool_geometry(draw: Any) -> tuple[tuple[int, ...], tuple[int, int]]:
    """Side-by-side windows 1-3 each way (2x2 is the unrolled case), sizes that leave
    rows and columns uncovered or not."""
    ph, pw = draw(st.sampled_from([(2, 2), (2, 2), (1, 1), (3, 3), (2, 3), (3, 1)]))
    h, w = draw(st.integers(ph, 3 * ph + 2)), draw(st.integers(pw, 9 * pw + 2))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 3)), h, w), (ph, pw)


@settings(max_examples=EXAMPLES, deadline=None)
@given(geo=_pool_geometry(), dtype=st.sampled_from(["float64", "float32"]),
       ties=st.booleans(), nans=st.booleans(), seed=st.integers(0, 2**16))
def test_tiled_max_pooling_equals_numpy(geo, dtype, ties, nans, seed):
    shape, pool = geo
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    if ties:  # few distinct values: many windows with two equal maxima
        x = np.round(x).astype(dtype)
    if nans:
        x.flat[rng.integers(0, x.size, 2)] = np.nan
    with pytest.MonkeyPatch.context() as mp:
        fast = zn.Sequential([MaxPool2D(pool)], input_shape=shape[1:], dtype=dtype)
        mp.setenv("ZERONN_NO_FAST", "1")
        slow = zn.Sequential([MaxPool2D(pool)], input_shape=shape[1:], dtype=dtype)
    f, s = fast.layers[0], slow.layers[0]  # the layers: a network refuses NaN inputs
    assert f._kernels is not None and s._kernels is None
    out = f.forward(x, training=True)
    np.testing.assert_array_equal(out, s.forward(x, training=True))
    np.testing.assert_array_equal(f.arg, s.arg)
    g = rng.standard_normal(out.shape).astype(dtype)
    f._buf.dx = np.full(shape, np.nan, dtype)  # every value must be written
    np.testing.assert_array_equal(f.backward(g.copy()), s.backward(g.copy()))


def test_max_pooling_arg_max_fits_its_window():
    """2x2 windows keep their arg-max in one byte; windows of more than 127 positions in
    int32 (their last positions, 127 and beyond, come out right)."""
    rng = np.random.default_rng(0)
    for pool, shape in (((2, 2), (2, 3, 6, 8)), ((12, 11), (2, 1, 24, 23))):
        x = rng.standard_normal(shape).astype("float32")
        x[..., pool[0] - 1, pool[1] - 1] = 9  # the window's last position holds the max
        with pytest.MonkeyPatch.context() as mp:
            fast = zn.Sequential([MaxPool2D(pool)], input_shape=shape[1:], dtype="float32")
            mp.setenv("ZERONN_NO_FAST", "1")
            slow = zn.Sequential([MaxPool2D(pool)], input_shape=shape[1:], dtype="float32")
        f, s = fast.layers[0], slow.layers[0]
        out = f.forward(x, training=True)
        assert f._buf.arg.dtype == (np.int8 if pool == (2, 2) else np.int32)
        np.testing.assert_array_equal(out, s.forward(x, training=True))
        np.testing.assert_array_equal(f.arg, s.arg)
        g = rng.standard_normal(out.shape).astype("float32")
        np.testing.assert_array_equal(f.backward(g.copy()), s.backward(g.copy()))


def test_overlapping_or_padded_max_pooling_keeps_numpy():
    net = zn.Sequential([MaxPool2D(3, stride=2), MaxPool2D(2, padding=1)],
                        input_shape=(1, 9, 9), seed=0)
    assert all(layer._kernels is None for layer in net.layers)


def test_relu_keeps_nan_as_numpy():
    gemm = np.array([[np.nan, -1.0, 2.0]])
    z = np.empty((1, 1, 3))
    kernels().gemm_to_nchw(gemm, np.zeros(1), False, True, z)
    np.testing.assert_array_equal(z[0, 0], np.maximum(gemm[0], 0))


def _pair(conv: dict[str, Any], shape: tuple[int, int, int], dtype: str,
          monkeypatch: pytest.MonkeyPatch) -> tuple[zn.Sequential, zn.Sequential]:
    """The same two-conv network built with the kernels and without them."""
    def net() -> zn.Sequential:
        return zn.Sequential([Conv2D(**conv), Conv2D(2, 1, activation="relu")],
                             input_shape=shape, dtype=dtype, seed=3)

    fast = net()
    monkeypatch.setenv("ZERONN_NO_FAST", "1")
    slow = net()
    monkeypatch.delenv("ZERONN_NO_FAST")
    assert fast.layers[0]._kernels is not None and slow.layers[0]._kernels is None
    return fast, slow


@settings(max_examples=max(5, EXAMPLES // 2), deadline=None)
@given(geo=_geometry(), filters=st.integers(1, 4),
       act=st.sampled_from(["relu", "identity", "tanh"]), use_bias=st.booleans(),
       seed=st.integers(0, 2**16))
def test_conv2d_with_kernels_equals_numpy(geo, filters, act, use_bias, seed):
    (n, c, h, w), k, s, p = geo
    conv = {"filters": filters, "kernel_size": k, "stride": s, "padding": p,
            "activation": act, "use_bias": use_bias}
    with pytest.MonkeyPatch.context() as mp:
        fast, slow = _pair(conv, (c, h, w), "float64", mp)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    for net in (fast, slow):
        if use_bias:
            net.layers[0].b = np.linspace(-0.5, 0.5, filters)
    out = fast.forward(x, training=True)
    want = slow.forward(x, training=True)
    if fast.layers[0].direct or fast.layers[1].direct:  # sums in another order than BLAS
        _close(out, want, "float64")
    else:
        np.testing.assert_array_equal(out, want)
    g = rng.standard_normal(out.shape)
    dx_fast, dx_slow = fast.backward(g), slow.backward(g)
    np.testing.assert_allclose(dx_fast, dx_slow, rtol=1e-12, atol=1e-14)
    for a, b in zip(fast.grads, slow.grads):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_no_fast_switches_the_kernels_off(monkeypatch):
    monkeypatch.setenv("ZERONN_NO_FAST", "1")
    assert not available()
    net = zn.Sequential([Conv2D(2, 3)], input_shape=(1, 5, 5), seed=0)
    assert net.layers[0]._kernels is None


def test_a_non_contiguous_input_takes_the_numpy_path():
    net = zn.Sequential([Conv2D(2, 3, padding=1)], input_shape=(1, 5, 5), seed=0)
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 10))[..., ::2]
    want = net.layers[0].infer(np.ascontiguousarray(x))
    np.testing.assert_allclose(net.layers[0].forward(x, training=True), want, rtol=1e-12)
