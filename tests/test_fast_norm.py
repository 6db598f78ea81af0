"""zeronn._fast.norm: LayerNorm's compiled training passes equal its NumPy passes to
rounding (the kernels reassociate their sums), for rows, sequences and images, in both
dtypes, with and without dL/dx; a strided input or gradient takes the NumPy path; NaN
still propagates. Skipped without numba."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import zeronn as zn

pytest.importorskip("numba", reason="the compiled kernels need the extra 'fast' (numba)")

from zeronn.layers import normalization

TOL = {"float32": 2e-5, "float64": 1e-13}


def _passes(layer: zn.LayerNorm, x: np.ndarray, g: np.ndarray,
            need_dx: bool = True) -> list[np.ndarray]:
    out = np.array(layer.forward(x, training=True))
    dx = layer.backward(g.copy(), need_dx=need_dx)
    return [out, np.array(layer._xhat), np.array(layer._inv_std), np.array(layer.dgamma),
            np.array(layer.dbeta), *([] if dx is None else [np.array(dx)])]


def _both(monkeypatch: Any, shape: tuple[int, ...], dtype: str, need_dx: bool = True,
          seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    layer = zn.LayerNorm()
    zn.Sequential([layer], input_shape=shape[1:], dtype=dtype, seed=0)
    rng = np.random.default_rng(seed)
    layer.gamma = rng.standard_normal(layer.gamma.shape)
    layer.beta = rng.standard_normal(layer.beta.shape)
    x = (5 + 3 * rng.standard_normal(shape)).astype(dtype)   # an offset mean, as activations
    g = rng.standard_normal(shape).astype(dtype)
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    assert normalization.fast_kernels() is not None
    fast = _passes(layer, x, g, need_dx)
    monkeypatch.setenv("ZERONN_NO_FAST", "1")
    assert normalization.fast_kernels() is None
    return fast, _passes(layer, x, g, need_dx)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(7, 5), (3, 11, 16), (2, 3, 4, 5), (1, 1, 1), (768, 128)])
def test_compiled_layernorm_equals_numpy(monkeypatch: Any, dtype: str,
                                         shape: tuple[int, ...]) -> None:
    fast, reference = _both(monkeypatch, shape, dtype)
    assert len(fast) == len(reference) == 6
    for name, a, b in zip(("out", "xhat", "inv_std", "dgamma", "dbeta", "dx"), fast,
                          reference):
        assert a.shape == b.shape and a.dtype == b.dtype, name
        scale = max(float(np.abs(b).max()), 1.0)
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL[dtype] * scale, err_msg=name)


def test_compiled_layernorm_without_dx(monkeypatch: Any) -> None:
    fast, reference = _both(monkeypatch, (4, 6, 8), "float64", need_dx=False)
    assert len(fast) == len(reference) == 5
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


def test_strided_inputs_take_the_numpy_path(monkeypatch: Any) -> None:
    """A non-contiguous x or dL/dout is not handed to the kernels (which read rows)."""
    layer = zn.LayerNorm()
    zn.Sequential([layer], input_shape=(4,), dtype="float64", seed=0)
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    wide = np.random.default_rng(0).standard_normal((5, 8))
    out = layer.forward(wide[:, ::2], training=True)
    expected = (wide[:, ::2] - wide[:, ::2].mean(1, keepdims=True)) / np.sqrt(
        wide[:, ::2].var(1, keepdims=True) + layer.eps)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    dx = layer.backward(np.ones((5, 8))[:, ::2])
    np.testing.assert_allclose(dx, 0, atol=1e-12)   # a constant gradient: no change of x_hat


def test_nan_propagates_through_the_kernels(monkeypatch: Any) -> None:
    layer = zn.LayerNorm()
    zn.Sequential([layer], input_shape=(3, 4), dtype="float32", seed=0)
    x = np.ones((2, 3, 4), np.float32)
    x[1, 2, 0] = np.nan
    monkeypatch.delenv("ZERONN_NO_FAST", raising=False)
    out = layer.forward(x, training=True)
    assert np.isnan(out[1, 2]).all() and np.isfinite(out[0]).all() and np.isfinite(out[1, :2]).all()
