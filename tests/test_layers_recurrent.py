"""RNN, LSTM, GRU: forward against a step-by-step transcription of their formulas,
gradients by central differences (every parameter and dx), return_sequences, the
stateful carry (truncated BPTT) and reset_state, dtypes, config/repr, save/load, errors.
(Agreement with torch.nn.RNN/LSTM/GRU is in tests/parity/test_torch_recurrent.py.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn.layers import GRU, LAYERS, LSTM, RNN
from zeronn.layers.recurrent import Recurrent

KINDS = {"rnn": lambda h, **kw: RNN(h, **kw), "rnn_relu": lambda h, **kw: RNN(h, "relu", **kw),
         "lstm": lambda h, **kw: LSTM(h, **kw), "gru": lambda h, **kw: GRU(h, **kw)}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def reference(layer: zn.Layer, x: np.ndarray, h0=None, c0=None) -> np.ndarray:
    """The layer's formulas one step at a time, batch-first: (n, T, H), every step's h."""
    n, T, _ = x.shape
    H = layer.units
    Wi, Wh = layer.weight_ih, layer.weight_hh
    bi = layer.bias_ih if layer.use_bias else np.zeros(Wi.shape[0])
    bh = layer.bias_hh if layer.use_bias else np.zeros(Wi.shape[0])
    h = np.zeros((n, H)) if h0 is None else h0
    c = np.zeros((n, H)) if c0 is None else c0
    hs = []
    for t in range(T):
        gi, gh = x[:, t] @ Wi.T + bi, h @ Wh.T + bh
        if isinstance(layer, LSTM):
            a = gi + gh
            i, f, g, o = (_sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                          _sigmoid(a[:, 3 * H:]))
            c = f * c + i * g
            h = o * np.tanh(c)
        elif isinstance(layer, GRU):
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            nn = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            h = (1 - z) * nn + z * h
        else:
            a = gi + gh
            h = np.tanh(a) if layer.activation_name == "tanh" else np.maximum(a, 0)
        hs.append(h)
    return np.stack(hs, axis=1)


def _net(kind: str, H: int, T: int, D: int, dtype: str = "float64", seed: int = 0, **kw):
    layer = KINDS[kind](H, **kw)
    net = zn.Sequential([layer], input_shape=(T, D), dtype=dtype, seed=seed)
    return layer, net


# -- forward ----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.sampled_from(list(KINDS)), st.integers(1, 5), st.integers(1, 6), st.integers(1, 4),
       st.integers(1, 4), st.booleans(), st.integers(0, 2**16))
def test_forward_is_the_formulas(kind, H, T, D, n, use_bias, seed) -> None:
    layer, net = _net(kind, H, T, D, seed=seed, return_sequences=True, use_bias=use_bias)
    x = np.random.default_rng(seed).standard_normal((n, T, D)) * 2
    want = reference(layer, x)
    out = layer.forward(x, training=True)
    assert out.shape == (n, T, H)
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(net.predict(x), want, rtol=1e-12, atol=1e-13)
    # return_sequences=False gives the last step, with the same weights
    last, _ = _net(kind, H, T, D, seed=seed, use_bias=use_bias)
    np.testing.assert_allclose(last.forward(x), want[:, -1], rtol=1e-12, atol=1e-13)
    assert last.output_shape == (H,) and layer.output_shape == (T, H)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("units", [4, 1])  # 1: gates are (n, 1) views with strided rows
def test_float32_is_kept_and_close_to_float64(kind, units) -> None:
    _, n64 = _net(kind, units, 5, 3, seed=1, return_sequences=True)
    _, n32 = _net(kind, units, 5, 3, "float32", seed=1, return_sequences=True)
    n32.set_params(n64.params)
    x = np.random.default_rng(0).standard_normal((6, 5, 3))
    out = n32.forward(x.astype(np.float32), training=True)
    assert out.dtype == np.float32 and all(p.dtype == np.float32 for p in n32.params)
    g = np.random.default_rng(1).standard_normal(out.shape)
    dx = n32.backward(g.astype(np.float32))
    assert dx.dtype == np.float32 and all(gr.dtype == np.float32 for gr in n32.grads)
    np.testing.assert_allclose(out, n64.forward(x, training=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx, n64.backward(g), rtol=1e-3, atol=1e-4)
    assert n32.predict(x.astype(np.float32)).dtype == np.float32


def test_initialization_is_torchs_uniform() -> None:
    layer, _ = _net("lstm", 16, 2, 40, seed=5)
    bound = 1 / np.sqrt(16)
    for p in layer.params:
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound
    assert [p.shape for p in layer.params] == [(64, 40), (64, 16), (64,), (64,)]
    assert [p.shape for p in _net("gru", 3, 2, 5)[0].params] == [(9, 5), (9, 3), (9,), (9,)]
    assert [p.shape for p in _net("rnn", 3, 2, 5, use_bias=False)[0].params] == [(3, 5), (3, 3)]


def test_infer_is_fresh_and_leaves_the_buffers() -> None:
    layer, _ = _net("gru", 3, 4, 2, return_sequences=True)
    x = np.random.default_rng(0).standard_normal((2, 4, 2))
    out = layer.forward(x, training=True)
    kept = out.copy()
    a = layer.infer(x + 1)
    assert not np.shares_memory(a, out)
    np.testing.assert_array_equal(out, kept)
    np.testing.assert_allclose(a, reference(layer, x + 1), rtol=1e-12)


# -- gradients --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("seq", [False, True], ids=["last", "sequences"])
@pytest.mark.parametrize("use_bias", [True, False], ids=["bias", "nobias"])
def test_gradients_by_central_differences(central_differences, kind, seq, use_bias) -> None:
    n, T, D, H = 2, 3, 2, 3
    rng = np.random.default_rng(7)
    layer, net = _net(kind, H, T, D, seed=3, return_sequences=seq, use_bias=use_bias)
    x = rng.standard_normal((n, T, D))
    if kind == "rnn_relu":  # keep pre-activations away from the kink
        net.set_params([p + 0.3 * np.sign(p) for p in net.params])
    g = rng.standard_normal((n, *net.output_shape))
    net.forward(x, training=True)
    dx = net.backward(g)
    grads = [gr.copy() for gr in net.grads]

    def f_x(xv: np.ndarray) -> float:
        return float(np.sum(layer.infer(xv) * g))

    np.testing.assert_allclose(dx, central_differences(f_x, x), rtol=1e-6, atol=1e-8)
    for p, grad in zip(layer.params, grads):
        p0 = p.copy()

        def f_p(v: np.ndarray, p=p) -> float:
            p[...] = v
            return float(np.sum(layer.infer(x) * g))

        numeric = central_differences(f_p, p0)
        p[...] = p0
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_stack_passes_check_gradients() -> None:
    net = zn.Sequential([LSTM(4, return_sequences=True), GRU(3, return_sequences=True),
                         RNN(2)], input_shape=(5, 3), seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((4, 5, 3)), rng.standard_normal((4, 2))
    assert zn.check_gradients(net, X, y, loss="mse").max_relative_error < 1e-6


def test_backward_before_forward_and_release() -> None:
    layer, _ = _net("lstm", 2, 3, 2)
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.zeros((1, 2)))
    layer.forward(np.zeros((1, 3, 2)), training=True)
    layer.release()
    with pytest.raises(ValueError, match="forward"):
        layer.backward(np.zeros((1, 2)))


# -- stateful ---------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(st.sampled_from(list(KINDS)), st.integers(1, 4), st.integers(1, 5), st.integers(1, 3),
       st.sampled_from(["float64", "float32"]), st.integers(0, 2**16))
def test_two_stateful_halves_are_one_full_pass(kind, H, half, n, dtype, seed) -> None:
    D = 2
    _, full_net = _net(kind, H, 2 * half, D, dtype, seed, return_sequences=True)
    part, part_net = _net(kind, H, half, D, dtype, seed, return_sequences=True, stateful=True)
    part_net.set_params(full_net.params)
    x = np.random.default_rng(seed).standard_normal((n, 2 * half, D)).astype(dtype)
    want = full_net.forward(x, training=True)
    first = part_net.forward(x[:, :half], training=True)
    second = part_net.forward(x[:, half:], training=True)
    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == "float64" else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), want, **tol)
    np.testing.assert_allclose(part.state_h, want[:, -1], **tol)
    # evaluation neither reads nor moves the carried state
    state = part.state_h.copy()
    np.testing.assert_allclose(part_net.predict(x[:, :half]), first, **tol)
    np.testing.assert_allclose(part_net.forward(x[:, :half], training=False), first, **tol)
    np.testing.assert_array_equal(part.state_h, state)
    # reset_state: the next training pass starts from zeros again
    part.reset_state()
    assert part.state_h is None
    np.testing.assert_allclose(part_net.forward(x[:, :half], training=True), first, **tol)


def _vocab_net(kind: str, vocab: int, dtype: str, use_bias: bool = True, tied: bool = False):
    head = (zn.TiedDense(vocab, activation="softmax") if tied
            else zn.Dense(vocab, activation="softmax"))
    return zn.Sequential([zn.Embedding(vocab, 4 if tied else 3),
                          KINDS[kind](4, return_sequences=True, use_bias=use_bias), head],
                         input_shape=(6,), dtype=dtype, seed=0)


def _loss_and_grads(net, ids, y, through_vocabulary: bool):
    with pytest.MonkeyPatch.context() as mp:
        if not through_vocabulary:  # the products' route, as for any other input
            mp.setattr(Recurrent, "_source", lambda self, x: None)
        value, grads = net.loss_and_gradients(ids, y, loss="categorical_crossentropy")
        source = net.layers[1]._buf.source
    assert (source is net.layers[0]) is through_vocabulary
    return value, grads


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("no_fast", ["0", "1"], ids=["compiled", "numpy"])
@pytest.mark.parametrize("use_bias, tied", [(True, False), (False, False), (True, True)],
                         ids=["bias", "nobias", "tied"])
def test_after_an_embedding_the_input_projection_goes_through_the_vocabulary(
        monkeypatch, kind, dtype, no_fast, use_bias, tied) -> None:
    """x = E[ids], so x·Wx + b = (E·Wx + b)[ids], and backward sums dA by id: the loss and
    every gradient (the Embedding's too, tied to the head or not) equal the products'
    route to rounding, with the compiled kernels and with NumPy alone (whose backward keeps
    the products)."""
    monkeypatch.setenv("ZERONN_NO_FAST", no_fast)
    net = _vocab_net(kind, 5, dtype, use_bias, tied)
    rng = np.random.default_rng(3)
    ids, y = rng.integers(0, 5, (4, 6)), rng.integers(0, 5, (4, 6))  # 2·5 <= 4·6 tokens
    value, grads = _loss_and_grads(net, ids, y, True)
    ref_value, ref_grads = _loss_and_grads(net, ids, y, False)
    tol = 1e-12 if dtype == "float64" else 2e-5
    assert value == pytest.approx(ref_value, rel=tol)
    for g, ref in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_the_vocabulary_route_only_where_it_is_the_cheaper_and_the_same(rng) -> None:
    """Not for a vocabulary over half the batch's tokens, nor an input that is not the
    Embedding's output (a Dropout between them), nor the next recurrent layer, nor
    prediction (fresh arrays); each such network still trains to the same gradients."""
    big = _vocab_net("lstm", 13, "float64")  # 2·13 > 2·6 tokens
    ids = rng.integers(0, 13, (2, 6))
    big.forward(ids, training=True)
    assert big.layers[1]._buf.source is None
    stacked = zn.Sequential([zn.Embedding(3, 2), zn.LSTM(3, return_sequences=True),
                             zn.Dropout(0.5), zn.GRU(2)], input_shape=(6,), seed=0)
    stacked.forward(rng.integers(0, 3, (4, 6)), training=True)
    assert stacked.layers[1]._buf.source is stacked.layers[0]
    assert stacked.layers[3]._buf.source is None
    dropped = zn.Sequential([zn.Embedding(3, 2), zn.Dropout(0.5), zn.LSTM(3)],
                            input_shape=(6,), seed=0)
    dropped.forward(rng.integers(0, 3, (4, 6)), training=True)
    assert dropped.layers[2]._buf.source is None
    assert zn.check_gradients(dropped, rng.integers(0, 3, (4, 6)), rng.standard_normal((4, 3)),
                              loss="mse").passed(1e-6)


def test_stateful_lstm_carries_c_and_the_gradient_stops_at_the_batch(central_differences) -> None:
    rng = np.random.default_rng(0)
    layer, net = _net("lstm", 3, 2, 2, stateful=True)
    x1, x2 = rng.standard_normal((2, 2, 2)), rng.standard_normal((2, 2, 2))
    net.forward(x1, training=True)
    h, c = layer.state_h.copy(), layer.state_c.copy()
    assert not np.array_equal(h, 0) and not np.array_equal(c, 0)
    out = net.forward(x2, training=True)
    np.testing.assert_allclose(out, reference(layer, x2, h, c)[:, -1], rtol=1e-12)
    g = rng.standard_normal(out.shape)
    dx = net.backward(g)  # the gradient of this batch with (h, c) as constants
    plain, plain_net = _net("lstm", 3, 2, 2)
    plain_net.set_params(net.params)

    def loss(xv: np.ndarray) -> float:
        return float(np.sum(reference(plain, xv, h, c)[:, -1] * g))

    num = central_differences(loss, x2, h=1e-6)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_a_new_batch_size_resets_the_state() -> None:
    rng = np.random.default_rng(0)
    layer, net = _net("gru", 3, 2, 2, stateful=True)
    net.forward(rng.standard_normal((4, 2, 2)), training=True)
    x = rng.standard_normal((3, 2, 2))
    np.testing.assert_allclose(net.forward(x, training=True), reference(layer, x)[:, -1],
                               rtol=1e-12)
    assert layer.state_h.shape == (3, 3)


def test_stateless_layers_carry_nothing() -> None:
    layer, net = _net("rnn", 3, 2, 2)
    x = np.random.default_rng(0).standard_normal((2, 2, 2))
    first = net.forward(x, training=True)
    np.testing.assert_array_equal(net.forward(x, training=True), first)
    assert layer.state_h is None


# -- description, files, errors ---------------------------------------------------------
@pytest.mark.parametrize("layer, text", [
    (RNN(4), "RNN(units=4)"),
    (RNN(4, "relu", return_sequences=True), "RNN(units=4, activation='relu', "
                                            "return_sequences=True)"),
    (LSTM(8, stateful=True, use_bias=False), "LSTM(units=8, stateful=True, use_bias=False)"),
    (GRU(2, return_sequences=True), "GRU(units=2, return_sequences=True)"),
])
def test_config_and_repr_round_trip(layer, text) -> None:
    assert repr(layer) == text
    again = type(layer)(**json.loads(json.dumps(layer.config())))
    assert repr(again) == text and again.config() == layer.config()
    assert LAYERS[type(layer).__name__] is type(layer)
    assert getattr(zn, type(layer).__name__) is type(layer)
    assert layer.kind == {"RNN": "rnn", "LSTM": "lstm", "GRU": "gru"}[type(layer).__name__]


def test_saved_and_loaded_without_the_carried_state(tmp_path) -> None:
    net = zn.Sequential([LSTM(4, return_sequences=True, stateful=True), GRU(3),
                         ], input_shape=(5, 2), dtype="float32", seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 2)).astype(np.float32)
    net.forward(x, training=True)
    zn.save(net, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    assert repr(back.layers[0]) == repr(net.layers[0]) and back.layers[0].state_h is None
    for p, q in zip(back.params, net.params):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_bad_arguments(cls) -> None:
    for units in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="units must be a positive integer"):
            cls(units)
    with pytest.raises(ValueError, match="return_sequences must be True or False"):
        cls(3, return_sequences="yes")
    with pytest.raises(ValueError, match="stateful must be True or False"):
        cls(3, stateful=1)


def test_bad_rnn_activation() -> None:
    with pytest.raises(ValueError, match="'tanh' or 'relu'"):
        RNN(3, activation="sigmoid")


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_wrong_input_rank_names_the_fix(cls) -> None:
    with pytest.raises(ValueError, match=r"input_shape=\(time, features\).*reshape"):
        zn.Sequential([cls(3)], input_shape=(5,))
    with pytest.raises(ValueError, match=r"input_shape=\(time, features\)"):
        zn.Sequential([cls(3)], input_shape=(2, 5, 5))
    layer = cls(3)
    zn.Sequential([layer], input_shape=(4, 2))
    with pytest.raises(ValueError, match=r"expected \(n, 4, 2\)"):
        layer.forward(np.zeros((3, 5, 2)))
    with pytest.raises(ValueError, match=r"expected \(n, 4, 2\)"):
        layer.infer(np.zeros((3, 8)))


def test_fit_with_a_stateful_layer_resets_each_epoch_and_refuses_shuffling(rng):
    """Truncated BPTT with fit: the state flows from batch to batch within an epoch and
    starts from zeros at each epoch; shuffled batches would carry it between unrelated
    chunks, so fit refuses them."""
    X = rng.normal(size=(8, 5, 2))
    y = rng.normal(size=(8, 1))
    net = zn.Sequential([zn.LSTM(3, stateful=True), zn.Dense(1)], input_shape=(5, 2), seed=0)
    with pytest.raises(ValueError, match="pass shuffle=False"):
        net.fit(X, y, epochs=1, batch_size=4)
    seen = []
    lstm = net.layers[0]
    original = lstm.forward

    def spy(x, training=False):
        if training:
            seen.append(lstm.state_h is None)
        return original(x, training)

    lstm.forward = spy
    net.fit(X, y, epochs=2, batch_size=4, shuffle=False, optimizer=zn.optim.SGD(0.01))
    assert seen == [True, False, True, False]  # zeros at each epoch's first batch only


def test_a_stateful_layer_inside_a_composite_also_refuses_shuffling(rng):
    """The check looks through composites: a stateful LSTM inside a Residual is stateful
    all the same (its state is reset per epoch by the composite's reset_state)."""
    X = rng.normal(size=(8, 5, 3))
    y = rng.normal(size=(8, 5, 3))
    net = zn.Sequential([zn.Residual([zn.LSTM(3, return_sequences=True, stateful=True)])],
                        input_shape=(5, 3), seed=0)
    with pytest.raises(ValueError, match="pass shuffle=False"):
        net.fit(X, y, epochs=1, batch_size=4)
    net.fit(X, y, epochs=1, batch_size=4, shuffle=False)


def test_fit_on_sequences_with_validation_early_stopping_and_callbacks(rng):
    """A sequence model uses the whole fit: validation, early stopping (best weights back),
    callbacks, the History, and prediction on a shorter context."""
    X = rng.normal(size=(40, 6, 2))
    y = X.sum(axis=(1, 2))[:, None]
    net = zn.Sequential([zn.GRU(8, return_sequences=True), zn.LayerNorm(), zn.LSTM(4),
                         zn.Dense(1)], input_shape=(6, 2), seed=0)
    seen: list[int] = []
    hist = net.fit(X, y, optimizer=zn.optim.Adam(0.01), epochs=200, batch_size=8,
                   validation_split=0.25, early_stopping=zn.EarlyStopping(patience=3),
                   callbacks=[lambda epoch, h: seen.append(epoch)], seed=0)
    assert hist.stopped_early and hist.best_epoch is not None
    assert seen == list(range(1, hist.epochs + 1))
    assert len(hist["val_loss"]) == hist.epochs and hist["loss"][-1] < hist["loss"][0]
    best = hist["val_loss"][hist.best_epoch - 1]
    assert net.eval_loss(*net.check_data(X[30:], y[30:]), zn.get_loss("mse")) == \
        pytest.approx(best, rel=1e-9)  # the best epoch's weights are back
    assert net.predict(X[:3, :4]).shape == (3, 1)
