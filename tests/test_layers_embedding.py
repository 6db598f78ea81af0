"""Embedding: rows picked by id, the scatter-add gradient (repeated ids add up; its
``sum_rows_by_id`` compiled and in NumPy; a ``RowGradient`` taken as the sums themselves),
ids given as integers or integer-valued floats, clear errors, dtype, config round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.layers import LAYERS, Embedding
from zeronn.layers.embedding import RowGradient, sum_rows_by_id


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


@settings(max_examples=examples(40), deadline=None)
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


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(1, 70), st.integers(1, 9), st.integers(0, 300),
       st.sampled_from(["float32", "float64"]), st.integers(0, 2**16))
def test_sum_rows_by_id_compiled_and_numpy(vocab, k, m, dtype, seed) -> None:
    """Both routes against np.add.at (ids missing, repeated, none at all), to rounding: the
    kernel adds in the positions' order, reduceat groups its additions otherwise."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, m).astype(np.intp)
    rows = rng.standard_normal((m, k)).astype(dtype)
    want = np.zeros((vocab, k))
    np.add.at(want, ids, rows.astype(np.float64))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for no_fast in ("0", "1"):  # the kernel (when numba is installed), then NumPy
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ZERONN_NO_FAST", no_fast)
            out = np.full((vocab, k), np.nan, dtype)  # overwritten, absent ids' rows too
            assert sum_rows_by_id(ids, rows, out) is out
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol * max(1, m))


def test_backward_takes_a_row_gradient_as_the_sums(rng) -> None:
    """A RowGradient (what a recurrent layer fed by this Embedding returns) is dW itself;
    tied to a head, it is added to the head's gradient as the scatter's sums are."""
    layer, _ = _built(6, 3, 4)
    ids = rng.integers(0, 6, (2, 4))
    layer.forward(ids, training=True)
    g = rng.standard_normal((2, 4, 3))
    layer.backward(g.copy(), need_dx=False)
    scattered = layer.dW.copy()
    sums = np.zeros((6, 3))
    np.add.at(sums, ids.ravel(), g.reshape(-1, 3))
    assert layer.backward(sums.view(RowGradient), need_dx=False) is None
    np.testing.assert_allclose(layer.dW, scattered, rtol=1e-13, atol=1e-15)
    layer.tied = True
    layer.dW[...] = 1.0
    layer.backward(sums.view(RowGradient), need_dx=False)
    np.testing.assert_allclose(layer.dW, 1.0 + sums, rtol=1e-13)


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


def test_in_front_of_recurrent_layers_gradients_and_fit() -> None:
    net = zn.Sequential([Embedding(10, 4), zn.LSTM(5, return_sequences=True), zn.GRU(3)],
                        input_shape=(6,), seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.integers(0, 10, (8, 6)), rng.standard_normal((8, 3))
    assert zn.check_gradients(net, X, y, loss="mse").max_relative_error < 1e-6
    hist = net.fit(X, y, loss="mse", optimizer=zn.optim.Adam(0.05), epochs=20, batch_size=4,
                   shuffle=False, verbose=0)
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]


def test_network_backward_through_an_embedding_gives_no_input_gradient(rng):
    """Token ids have no gradient: net.backward fills the weights' gradients and returns an
    empty array (the first layer is asked for no dx)."""
    net = zn.Sequential([zn.Embedding(5, 3), zn.LSTM(4)], input_shape=(6,), seed=0)
    ids = rng.integers(0, 5, size=(2, 6))
    net.forward(ids, training=True)
    dx = net.backward(rng.normal(size=(2, 4)))
    assert dx.size == 0
    assert np.abs(net.layers[0].dW).sum() > 0
    # Prediction takes shorter contexts: every layer works step by step.
    assert net.predict(ids[:, :2]).shape == (2, 4)


def _tied_net(dtype="float64"):
    return zn.Sequential([zn.Embedding(7, 4), zn.LSTM(4, return_sequences=True),
                          zn.TiedDense(7, activation="softmax")], input_shape=(5,),
                         dtype=dtype, seed=0)


def test_tied_dense_reads_the_embedding_transposed_and_adds_both_gradients(rng):
    """TiedDense: z = x·W.T with the Embedding's W; W's gradient is the scatter's plus
    the head's (checked against central differences and against an untied copy)."""
    net = _tied_net()
    emb, head = net.layers[0], net.layers[2]
    assert head.n_params == 0 and net.n_params == emb.n_params + net.layers[1].n_params
    np.testing.assert_array_equal(head.W, emb.W.T)
    ids, y = rng.integers(0, 7, (3, 5)), rng.integers(0, 7, (3, 5))
    assert zn.check_gradients(net, ids, y, loss="categorical_crossentropy").passed(1e-6)
    untied = zn.Sequential([zn.Embedding(7, 4), zn.LSTM(4, return_sequences=True),
                            zn.Dense(7, activation="softmax", use_bias=False)],
                           input_shape=(5,), seed=0)
    untied.set_params([emb.W, *net.layers[1].params, emb.W.T])
    _, tied_grads = net.loss_and_gradients(ids, y, loss="categorical_crossentropy")
    _, grads = untied.loss_and_gradients(ids, y, loss="categorical_crossentropy")
    np.testing.assert_allclose(tied_grads[0], grads[0] + grads[-1].T, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="read-only"):
        head.W[0, 0] = 1.0


def test_tied_dense_survives_copies_and_model_files(rng, tmp_path):
    net = _tied_net()
    ids, y = rng.integers(0, 7, (6, 5)), rng.integers(0, 7, (6, 5))
    net.fit(ids, y, loss="categorical_crossentropy", epochs=2, batch_size=3, seed=0)
    zn.save(net, tmp_path / "tied.zeronn")
    back = zn.load(tmp_path / "tied.zeronn")
    np.testing.assert_array_equal(back.predict(ids), net.predict(ids))
    assert np.shares_memory(back.layers[2].W, back.layers[0].W)
    f32 = net.copy(dtype="float32")
    assert np.shares_memory(f32.layers[2].W, f32.layers[0].W)
    np.testing.assert_allclose(f32.predict(ids), net.predict(ids), rtol=1e-5, atol=1e-6)


def test_tied_dense_errors():
    with pytest.raises(ValueError, match="the network has none: put an Embedding first"):
        zn.Sequential([zn.Dense(4), zn.TiedDense(3)], input_dim=2)
    with pytest.raises(ValueError, match=r"give it units=7 and inputs of 4 features"):
        zn.Sequential([zn.Embedding(7, 4), zn.TiedDense(6)], input_shape=(3,))
