"""zeronn._fast.conv: every compiled kernel equals the NumPy step it replaces (copies bit
for bit, col2im's sums too, since they add in the same order), on hypothesis-drawn shapes,
strides and paddings; and a Conv2D with the kernels equals one without, forward and
backward. Skipped without numba; ``ZERONN_NO_FAST=1`` switches the layer back to NumPy."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn._fast import available
from zeronn.layers import Conv2D
from zeronn.layers.conv import col2im, im2col

pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn._fast.conv import kernels

EXAMPLES = int(os.environ.get("ZERONN_FAST_EXAMPLES", "40"))


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
    np.testing.assert_array_equal(out, slow.forward(x, training=True))
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
