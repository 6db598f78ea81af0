"""Embedding: rows picked by id, the scatter-add gradient (repeated ids add up), ids given
as integers or integer-valued floats, clear errors, dtype, config round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn.layers import LAYERS, Embedding


def _built(vocab: int, dim: int, T: int, dtype: str = "float64", seed: int = 0,
           **kw) -> tuple[Embedding, zn.Sequential]:
    layer = Embedding(vocab, dim, **kw)
    net = zn.Sequential([layer], input_shape=(T,), dtype=dtype, seed=seed)
    return layer, net


def test_forward_picks_rows_and_keeps_dtype() -> None:
    for dtype in ("float64", "float32"):
        layer, _ = _built(7, 3, 4, dtype)
        ids = np.array([[0, 6, 6, 2], [1, 1, 1, 5]])
        out = layer.forward(ids, training=True)
        assert out.shape == (2, 4, 3) and out.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(out, layer.W[ids])
        np.testing.assert_array_equal(layer.infer(ids), layer.W[ids])
        assert layer.W.dtype == np.dtype(dtype)
        assert layer.output_shape == (4, 3)


def test_default_init_is_standard_normal() -> None:
    layer, _ = _built(400, 50, 2, seed=3)
    w = layer.W
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    other, _ = _built(400, 50, 2, seed=3, init="glorot_uniform")
    assert other.W.std() < 0.2


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(1, 6), st.integers(1, 7),
       st.integers(0, 2**16))
def test_backward_adds_up_repeated_ids(vocab, dim, n, T, seed) -> None:
    rng = np.random.default_rng(seed)
    layer, _ = _built(vocab, dim, T, seed=seed)
    ids = rng.integers(0, vocab, (n, T))
    layer.forward(ids, training=True)
    g = rng.standard_normal((n, T, dim))
    assert layer.backward(g.copy(), need_dx=False) is None
    want = np.zeros((vocab, dim))
    np.add.at(want, ids.ravel(), g.reshape(-1, dim))
    np.testing.assert_allclose(layer.dW, want, rtol=1e-13, atol=1e-13)
    # a second backward overwrites (no accumulation across calls)
    layer.backward(g.copy(), need_dx=False)
    np.testing.assert_allclose(layer.dW, want, rtol=1e-13, atol=1e-13)


def test_gradient_by_central_differences(central_differences) -> None:
    rng = np.random.default_rng(0)
    layer, _ = _built(5, 3, 4)
    ids = np.array([[0, 4, 4, 2], [4, 1, 0, 0]])
    g = rng.standard_normal((2, 4, 3))
    w0 = layer.W.copy()

    def loss(w: np.ndarray) -> float:
        layer.W = w
        return float(np.sum(layer.forward(ids) * g))

    numeric = central_differences(loss, w0)
    layer.W = w0
    layer.forward(ids, training=True)
    layer.backward(g.copy(), need_dx=False)
    np.testing.assert_allclose(layer.dW, numeric, rtol=1e-7, atol=1e-9)


def test_integer_valued_floats_are_ids_through_the_network() -> None:
    layer, net = _built(6, 2, 3)
    ids = np.array([[5, 0, 3], [2, 2, 1]])
    out = net.forward(ids.astype(np.float64))
    np.testing.assert_array_equal(out, layer.W[ids])
    np.testing.assert_array_equal(net.predict(ids.astype(float)), layer.W[ids])
    np.testing.assert_array_equal(layer.forward(ids.astype(np.int32)), layer.W[ids])
    np.testing.assert_array_equal(layer.forward(ids.astype(np.uint8)), layer.W[ids])


def test_bad_ids_name_the_id_and_the_fix() -> None:
    layer, _ = _built(4, 2, 2)
    with pytest.raises(ValueError, match=r"token id 4 .*\[0, 4\).*vocab_size"):
        layer.forward(np.array([[0, 4]]))
    with pytest.raises(ValueError, match=r"token id -1 "):
        layer.forward(np.array([[-1, 2]]))
    with pytest.raises(ValueError, match=r"integer token ids, got 1\.5"):
        layer.forward(np.array([[1.5, 2.0]]))
    with pytest.raises(ValueError, match="integer token ids"):
        layer.forward(np.array([[np.nan, 2.0]]))
    with pytest.raises(ValueError, match="encode tokens as integers"):
        layer.forward(np.array([["a", "b"]]))
    with pytest.raises(ValueError, match=r"token id 9"):
        layer.infer(np.array([[9, 0]]))


def test_bad_arguments_and_input_rank() -> None:
    for args in [(0, 3), (3, 0), (2.5, 3), (True, 3), (-1, 2)]:
        with pytest.raises(ValueError, match="positive integer"):
            Embedding(*args)
    with pytest.raises(ValueError, match="initializer"):
        Embedding(3, 2, init="nope")
    with pytest.raises(ValueError, match=r"input_shape=\(time,\)"):
        zn.Sequential([Embedding(3, 2)], input_shape=(4, 2))
    layer = Embedding(3, 2)
    with pytest.raises(ValueError, match="forward"):
        zn.Sequential([layer], input_shape=(2,))
        layer.backward(np.zeros((1, 2, 2)), need_dx=False)


def test_config_and_repr_round_trip() -> None:
    for layer in (Embedding(10, 4), Embedding(10, 4, init="glorot_uniform")):
        cfg = json.loads(json.dumps(layer.config()))
        again = Embedding(**cfg)
        assert again.config() == layer.config() and repr(again) == repr(layer)
    assert repr(Embedding(10, 4)) == "Embedding(10, 4)"
    assert repr(Embedding(10, 4, init="he_normal")) == "Embedding(10, 4, init='he_normal')"
    assert LAYERS["Embedding"] is Embedding and zn.Embedding is Embedding
    assert Embedding.kind == "embedding" and Embedding.input_kind == "ids"


def test_saved_and_loaded(tmp_path) -> None:
    layer, net = _built(6, 3, 2, dtype="float32", seed=2)
    zn.save(net, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    np.testing.assert_array_equal(back.layers[0].W, layer.W)
    ids = np.array([[1, 5]])
    np.testing.assert_array_equal(back.predict(ids), net.predict(ids))


def test_release_frees_buffers() -> None:
    layer, _ = _built(6, 3, 2)
    layer.forward(np.array([[1, 2]]))
    layer.release()
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.zeros((1, 2, 3)), need_dx=False)
