"""MaxPool2D and AvgPool2D: forward against naive loops, the arg-max's gradient (first on
ties, as torch), count_include_pad averages, overlapping windows, float32, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import AvgPool2D, MaxPool2D

EXAMPLES = examples(30, "ZERONN_POOL_EXAMPLES")


def _built(layer, shape, dtype: str = "float64"):
    zn.Sequential([layer], input_shape=shape, dtype=dtype, seed=0)
    return layer


def _naive(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
           kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Pooled output and dL/dx of L = sum(pooled) (each window's max gets 1; average: 1/K
    to every pixel), one window at a time."""
    n, c, h, w = x.shape
    fill = -np.inf if kind == "max" else 0.0
    xp = np.full((n, c, h + 2 * p[0], w + 2 * p[1]), fill)
    xp[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = x
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = np.zeros((n, c, oh, ow))
    dxp = np.zeros_like(xp)
    for a in range(n):
        for b in range(c):
            for i in range(oh):
                for j in range(ow):
                    r, q = i * s[0], j * s[1]
                    win = xp[a, b, r:r + k[0], q:q + k[1]]
                    if kind == "max":
                        out[a, b, i, j] = win.max()
                        u, v = divmod(int(np.argmax(win)), k[1])  # first maximum, row-major
                        dxp[a, b, r + u, q + v] += 1
                    else:
                        out[a, b, i, j] = win.sum() / win.size
                        dxp[a, b, r:r + k[0], q:q + k[1]] += 1 / win.size
    return out, dxp[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


@st.composite
def _pools(draw: Any) -> tuple[dict[str, Any], tuple[int, int, int], int]:
    """Pool sizes 1-4 (square or not), stride None or 1-3 (overlapping or not), padding up
    to half the pool size, and an input the window fits (odd and even sizes)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pool = kh if draw(st.booleans()) else (kh, kw)
    if isinstance(pool, int):
        kw = kh
    stride = draw(st.sampled_from([None, 1, 2, 3, (1, 2)]))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    args = {"pool_size": pool, "stride": stride, "padding": (ph, pw)}
    return args, (draw(st.integers(1, 3)), h, w), draw(st.integers(1, 3))


@pytest.mark.parametrize("cls,kind", [(MaxPool2D, "max"), (AvgPool2D, "avg")])
@settings(max_examples=EXAMPLES, deadline=None)
@given(pool=_pools(), seed=st.integers(0, 2**16))
def test_forward_and_backward_equal_naive_loops(cls, kind, pool, seed):
    args, shape, n = pool
    layer = _built(cls(**args), shape)
    rng = np.random.default_rng(seed)
    # Few distinct values: ties are frequent, and the first maximum must win.
    x = rng.integers(-2, 3, (n, *shape)).astype(np.float64)
    want, want_dx = _naive(x, layer.pool_size, layer.stride, layer.padding, kind)
    out = layer.forward(x, training=True)
    assert out.shape == (n, *layer.output_shape) == want.shape
    np.testing.assert_allclose(out, want, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(layer.infer(x), want, rtol=1e-14, atol=1e-15)
    dx = layer.backward(np.ones_like(out))
    np.testing.assert_allclose(dx, want_dx, rtol=1e-13, atol=1e-14)


def test_max_ties_route_to_the_first_maximum():
    """A window of equal values: the whole gradient goes to its first (top-left) pixel."""
    layer = _built(MaxPool2D(2), (1, 2, 4))
    x = np.array([[[[5.0, 5.0, 1.0, 7.0], [5.0, 5.0, 7.0, 7.0]]]])
    out = layer.forward(x, training=True)
    assert np.array_equal(out, [[[[5.0, 7.0]]]])
    assert np.array_equal(layer.arg, [[[[0, 1]]]])
    dx = layer.backward(np.array([[[[2.0, 3.0]]]]))
    assert np.array_equal(dx, [[[[2.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]]]])


def test_overlapping_max_windows_add_up():
    """3x3 windows, stride 1: the one large pixel is every window's max and gets their sum."""
    layer = _built(MaxPool2D(3, stride=1), (1, 4, 4))
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 2] = 9.0
    out = layer.forward(x, training=True)
    assert np.array_equal(out, np.full((1, 1, 2, 2), 9.0))
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert dx[0, 0, 1, 2] == 10.0 and np.count_nonzero(dx) == 1


def test_max_padding_is_minus_infinity_and_average_padding_counts():
    x = -np.ones((1, 1, 2, 2))
    mx = _built(MaxPool2D(2, stride=1, padding=1), (1, 2, 2)).forward(x)
    assert np.array_equal(mx, -np.ones((1, 1, 3, 3)))  # never the padding's value
    av = _built(AvgPool2D(2, stride=1, padding=1), (1, 2, 2)).forward(x)
    assert np.array_equal(av[0, 0], [[-0.25, -0.5, -0.25], [-0.5, -1.0, -0.5],
                                     [-0.25, -0.5, -0.25]])


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_float32_stays_float32_and_buffers_are_reused(cls):
    layer = _built(cls(2), (3, 6, 5), dtype="float32")
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 5)).astype(np.float32)
    a = layer.forward(x, training=True)
    assert a.dtype == np.float32 and a.shape == (4, 3, 3, 2)
    assert layer.backward(np.ones_like(a)).dtype == np.float32
    assert layer.forward(x, training=True) is a
    assert layer.infer(x).dtype == np.float32


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_first_layer_returns_no_dx(cls):
    layer = _built(cls(2), (1, 4, 4))
    layer.forward(np.ones((2, 1, 4, 4)), training=True)
    assert layer.backward(np.ones((2, 1, 2, 2)), need_dx=False) is None


def test_config_and_repr():
    assert MaxPool2D(2).config() == {"pool_size": 2}
    layer = AvgPool2D((3, 2), stride=1, padding=(1, 0))
    assert layer.config() == {"pool_size": [3, 2], "stride": 1, "padding": [1, 0]}
    assert AvgPool2D(**layer.config()).config() == layer.config()
    assert repr(layer) == "AvgPool2D([3, 2], stride=1, padding=[1, 0])"
    assert repr(MaxPool2D(2, stride=2)) == "MaxPool2D(2)"
    assert MaxPool2D(3).stride == (3, 3) and MaxPool2D(3).n_params == 0


@pytest.mark.parametrize(("make", "match"), [
    (lambda: MaxPool2D(0), "pool_size must be a positive integer"),
    (lambda: AvgPool2D(-2), "pool_size.*-2"),
    (lambda: MaxPool2D(2, stride=0), "stride"),
    (lambda: MaxPool2D(2, padding=-1), "padding"),
    (lambda: MaxPool2D(2, padding=2), "more than half the pool size"),
    (lambda: AvgPool2D((4, 2), padding=(1, 2)), "more than half"),
    (lambda: zn.Sequential([MaxPool2D(2)], input_dim=4), r"MaxPool2D takes \(n, C, H, W\)"),
    (lambda: zn.Sequential([AvgPool2D(6)], input_shape=(1, 5, 8)),
     "AvgPool2D pool window 6 is larger than the padded input height 5"),
])
def test_bad_arguments_say_what_and_how(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
def test_backward_needs_a_forward(cls):
    with pytest.raises(ValueError, match="forward"):
        _built(cls(2), (1, 4, 4)).backward(np.ones((1, 1, 2, 2)))


def test_tiled_max_pool_zeroes_uncovered_pixels_every_step():
    """Side-by-side windows over a width the pool does not divide (5 by 2): the last column
    gets no gradient, even when the layer below wrote into the returned dx in place."""
    layer = _built(MaxPool2D(2), (1, 4, 5))
    assert layer.tiled
    x = np.arange(40, dtype=np.float64).reshape(2, 1, 4, 5)
    for _ in range(2):
        layer.forward(x, training=True)
        dx = layer.backward(np.ones((2, 1, 2, 2)))
        assert dx is not None
        np.testing.assert_array_equal(dx[..., 4], 0)
        assert dx.sum() == 8
        dx += 7.0  # as a BatchNorm below may overwrite its dout
