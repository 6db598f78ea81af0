"""MultiHeadAttention: the forward pass against plain loops, the causal mask, attention
weights, dropout, gradients by central differences, errors, config, and in a network."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples, param_loss
from zeronn.layers import MultiHeadAttention


def _built(layer: MultiHeadAttention, steps: int, width: int, dtype: str = "float64",
           seed: int = 0, scale: float = 1.0) -> MultiHeadAttention:
    """The layer inside a one-layer network, its parameters redrawn large enough that the
    attention is far from uniform (nanoGPT's 0.02 makes every score nearly 0)."""
    zn.Sequential([layer], input_shape=(steps, width), dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in zip(layer.param_names, layer.params):
        std = scale / math.sqrt(width) if name.startswith("W") else 0.3
        setattr(layer, name, rng.normal(0.0, std, p.shape))
    return layer


def _reference(x: np.ndarray, layer: MultiHeadAttention) -> tuple[np.ndarray, np.ndarray]:
    """nanoGPT's attention with loops over sequences, heads and steps (the output and the
    attention weights), in float64, written without the layer's reshapes."""
    n, steps, width = x.shape
    h = layer.num_heads
    d = width // h
    w_qkv, w_out = layer.W_qkv.astype(np.float64), layer.W_out.astype(np.float64)
    b_qkv = layer.b_qkv[0].astype(np.float64) if layer.use_bias else np.zeros(3 * width)
    b_out = layer.b_out[0].astype(np.float64) if layer.use_bias else np.zeros(width)
    out = np.zeros((n, steps, width))
    weights = np.zeros((n, h, steps, steps))
    for b in range(n):
        qkv = x[b].astype(np.float64) @ w_qkv + b_qkv  # (T, 3C)
        q, k, v = qkv[:, :width], qkv[:, width:2 * width], qkv[:, 2 * width:]
        merged = np.zeros((steps, width))
        for j in range(h):
            cols = slice(j * d, (j + 1) * d)
            for t in range(steps):
                seen = t + 1 if layer.causal else steps
                scores = np.array([q[t, cols] @ k[s, cols] for s in range(seen)]) / math.sqrt(d)
                e = np.exp(scores - scores.max())
                p = e / e.sum()
                weights[b, j, t, :seen] = p
                merged[t, cols] = sum(p[s] * v[s, cols] for s in range(seen))
        out[b] = merged @ w_out + b_out
    return out, weights


def _tol(dtype: str) -> dict[str, float]:
    return {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-12}


# -- the forward pass --------------------------------------------------------------------
def test_five_tokens_by_hand() -> None:
    """Five steps of 4 features, 2 heads, causal: the layer equals the loops above, and
    step 0 (which sees only itself) outputs its own value through the projection."""
    layer = _built(MultiHeadAttention(2, causal=True), 5, 4, seed=3)
    x = np.random.default_rng(7).standard_normal((1, 5, 4))
    out = layer.forward(x)
    expected, weights = _reference(x, layer)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(layer.attention, weights, rtol=1e-12, atol=1e-15)
    v0 = (x[0, 0] @ layer.W_qkv + layer.b_qkv[0])[8:]
    np.testing.assert_allclose(out[0, 0], v0 @ layer.W_out + layer.b_out[0], rtol=1e-12)
    assert layer.attention[0, :, 0, 0].tolist() == [1.0, 1.0]


@settings(max_examples=examples(40), deadline=None)
@given(heads=st.integers(1, 4), head_dim=st.integers(1, 4), steps=st.integers(1, 16),
       n=st.integers(1, 3), causal=st.booleans(), use_bias=st.booleans(),
       dtype=st.sampled_from(["float64", "float32"]), seed=st.integers(0, 2**16))
def test_forward_matches_loops(heads, head_dim, steps, n, causal, use_bias, dtype,
                               seed) -> None:
    width = heads * head_dim
    layer = _built(MultiHeadAttention(heads, causal=causal, use_bias=use_bias), steps, width,
                   dtype, seed)
    x = np.random.default_rng(seed).standard_normal((n, steps, width)).astype(dtype)
    out = layer.forward(x, training=True)
    assert out.shape == (n, steps, width) and out.dtype == np.dtype(dtype)
    att = layer.attention
    assert att is not None and att.shape == (n, heads, steps, steps) and att.dtype == out.dtype
    expected, weights = _reference(x, layer)
    np.testing.assert_allclose(out, expected, **_tol(dtype))
    np.testing.assert_allclose(att, weights, **_tol(dtype))
    np.testing.assert_allclose(att.sum(axis=-1), 1.0, rtol=1e-5 if dtype == "float32" else 1e-13)
    if causal:  # nothing of the future: exactly 0 above the diagonal
        assert not att[..., np.triu_indices(steps, 1)[0], np.triu_indices(steps, 1)[1]].any()
    # Prediction computes the same in fresh arrays (and keeps its weights too).
    forward_out, forward_att = out.copy(), att.copy()
    inferred = layer.infer(x)
    assert inferred.dtype == np.dtype(dtype) and not np.shares_memory(inferred, out)
    np.testing.assert_allclose(inferred, forward_out, **_tol(dtype))
    np.testing.assert_allclose(layer.attention, forward_att, **_tol(dtype))


@settings(max_examples=examples(25), deadline=None)
@given(heads=st.integers(1, 3), steps=st.integers(2, 12), later=st.data(),
       seed=st.integers(0, 2**16))
def test_causal_output_does_not_depend_on_later_steps(heads, steps, later, seed) -> None:
    width = 2 * heads
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, steps, width))
    s = later.draw(st.integers(1, steps - 1), label="perturbed step")
    x2 = x.copy()
    x2[:, s] += rng.standard_normal((2, width))
    for causal in (True, False):
        layer = _built(MultiHeadAttention(heads, causal=causal), steps, width, seed=seed)
        before, after = layer.infer(x), layer.infer(x2)
        if causal:  # steps before s are untouched, bit for bit; s itself moves
            np.testing.assert_array_equal(before[:, :s], after[:, :s])
            assert not np.allclose(before[:, s], after[:, s])
        else:  # every step sees step s
            assert not np.allclose(before[:, 0], after[:, 0])
    # A causal layer predicts a prefix as the first steps of the whole sequence.
    layer = _built(MultiHeadAttention(heads, causal=True), steps, width, seed=seed)
    np.testing.assert_allclose(layer.infer(x[:, :s]), layer.infer(x)[:, :s], rtol=1e-12,
                               atol=1e-13)


def test_dropout_masks_attention_only_while_training() -> None:
    layer = _built(MultiHeadAttention(2, causal=True, dropout=0.25), 6, 4, seed=1)
    layer.rng = np.random.default_rng(0)
    x = np.random.default_rng(2).standard_normal((50, 6, 4))
    evaluation = layer.forward(x, training=False).copy()
    assert layer.dropout_mask is None
    np.testing.assert_allclose(evaluation, layer.infer(x), rtol=1e-12, atol=1e-13)
    trained = layer.forward(x, training=True)
    mask = layer.dropout_mask
    assert mask is not None and mask.shape == (50, 2, 6, 6) and mask.dtype == np.float64
    assert set(np.unique(mask)) == {0.0, 1 / 0.75}
    assert abs((mask == 0).mean() - 0.25) < 0.03
    # The output is the one of attention weights P * mask, P the undropped weights.
    p = layer.attention.copy()
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-13)
    heads = (x.reshape(-1, 4) @ layer.W_qkv + layer.b_qkv).reshape(50, 6, 3, 2, 2)
    v = heads[:, :, 2].transpose(0, 2, 1, 3)
    y = ((p * mask) @ v).transpose(0, 2, 1, 3).reshape(-1, 4)
    np.testing.assert_allclose(trained, (y @ layer.W_out + layer.b_out).reshape(50, 6, 4),
                               rtol=1e-12, atol=1e-13)
    # The same generator state draws the same mask.
    layer.rng = np.random.default_rng(0)
    layer.forward(x, training=False)
    layer.forward(x, training=True)
    np.testing.assert_array_equal(layer.dropout_mask, mask)


# -- the backward pass -------------------------------------------------------------------
@pytest.mark.parametrize("causal, dropout, use_bias", [
    (True, 0.0, True), (False, 0.0, True), (True, 0.4, True), (False, 0.3, False)])
@pytest.mark.parametrize("heads", [1, 2])
def test_gradients_match_central_differences(causal, dropout, use_bias, heads,
                                             central_differences) -> None:
    steps, width, n = 3, 4, 2
    layer = _built(MultiHeadAttention(heads, causal=causal, dropout=dropout,
                                      use_bias=use_bias), steps, width, seed=5, scale=2.0)
    rng = np.random.default_rng(9)
    x = rng.standard_normal((n, steps, width))
    weights = rng.standard_normal(x.shape)  # L = sum(out * weights): dL/dout = weights

    def loss_of_x(v: np.ndarray) -> float:
        layer.rng = np.random.default_rng(4)  # the same dropout mask on every pass
        return float(np.sum(layer.forward(v, training=True) * weights))

    def loss_of(param: str) -> Callable[[np.ndarray], float]:
        return param_loss(layer, param, lambda: loss_of_x(x))

    loss_of_x(x)
    if dropout:
        assert layer.dropout_mask is not None and (layer.dropout_mask == 0).any()
    dx = layer.backward(weights.copy())
    grads = [g.copy() for g in layer.grads]
    assert dx is not None and dx.shape == x.shape
    tol = {"rtol": 1e-6, "atol": 1e-8}
    np.testing.assert_allclose(dx, central_differences(loss_of_x, x), **tol)
    for name, g in zip(layer.param_names, grads):
        numeric = central_differences(loss_of(name), getattr(layer, name).copy())
        np.testing.assert_allclose(g, numeric, **tol, err_msg=name)
    loss_of_x(x)
    assert layer.backward(weights.copy(), need_dx=False) is None  # the first layer's pass
    for g, before in zip(layer.grads, grads):
        np.testing.assert_array_equal(g, before)


@settings(max_examples=examples(25), deadline=None)
@given(heads=st.integers(1, 3), head_dim=st.integers(1, 3), steps=st.integers(1, 8),
       causal=st.booleans(), dtype=st.sampled_from(["float64", "float32"]),
       seed=st.integers(0, 2**16))
def test_backward_is_the_adjoint_of_a_small_step(heads, head_dim, steps, causal, dtype,
                                                 seed) -> None:
    """<dL/dx, e> equals the directional derivative (L(x + he) - L(x - he)) / 2h in float64;
    the gradients keep the layer's dtype."""
    width = heads * head_dim
    layer = _built(MultiHeadAttention(heads, causal=causal), steps, width, dtype, seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, steps, width)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    layer.forward(x, training=True)
    dx = layer.backward(g.copy())
    assert dx is not None and dx.dtype == np.dtype(dtype)
    assert all(p.dtype == np.dtype(dtype) for p in layer.grads)
    if dtype == "float32":
        return
    e = rng.standard_normal(x.shape)
    h = 1e-6
    numeric = (np.sum(layer.infer(x + h * e) * g) - np.sum(layer.infer(x - h * e) * g)) / (2 * h)
    assert np.sum(dx * e) == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_backward_needs_a_forward_pass_first() -> None:
    layer = _built(MultiHeadAttention(2), 3, 4)
    with pytest.raises(ValueError, match=r"backward\(\) needs a forward\(\) first"):
        layer.backward(np.ones((1, 3, 4)))


# -- in a network ------------------------------------------------------------------------
def test_in_a_network_forward_backward_and_check_gradients() -> None:
    steps, width = 5, 6
    net = zn.Sequential([zn.MultiHeadAttention(2, causal=True)], input_shape=(steps, width),
                        seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, steps, width))
    g = rng.standard_normal((4, steps, width))
    out = net.forward(x, training=True)
    assert out.shape == (4, steps, width)
    dx = net.backward(g)
    assert dx.shape == x.shape
    layer = net.layers[0]
    assert [p.shape for p in net.params] == [(6, 18), (1, 18), (6, 6), (1, 6)]
    assert [gr.shape for gr in net.grads] == [p.shape for p in net.params]
    assert all(np.shares_memory(a, b) for a, b in zip(net.grads, layer.grads))
    assert net.n_params == 6 * 18 + 18 + 36 + 6
    # Stacked with the layers of a GPT block, against central differences.
    block = zn.Sequential([zn.PositionalEmbedding(8), zn.LayerNorm(),
                           zn.MultiHeadAttention(3, causal=True), zn.Dense(6, "gelu"),
                           zn.Dense(2)], input_shape=(steps, width), seed=1)
    for layer in (block.layers[0], block.layers[2]):  # off nanoGPT's tiny initial scale
        for name, p in zip(layer.param_names, layer.params):
            setattr(layer, name, rng.normal(0.0, 0.5, p.shape))
    y = rng.standard_normal((4, steps, 2))
    report = zn.check_gradients(block, x, y, loss="mse")
    assert report.max_relative_error < 1e-6


def test_prediction_takes_shorter_sequences_and_keeps_weights() -> None:
    net = zn.Sequential([zn.PositionalEmbedding(8), zn.MultiHeadAttention(2, causal=True)],
                        input_shape=(8, 4), seed=0)
    x = np.random.default_rng(1).standard_normal((3, 8, 4))
    full = net.predict(x)
    short = net.predict(x[:, :5])
    assert short.shape == (3, 5, 4)
    np.testing.assert_allclose(short, full[:, :5], rtol=1e-12, atol=1e-15)
    assert net.layers[1].attention.shape == (3, 2, 5, 5)


def test_float32_training_stays_float32() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 6, 4)), rng.standard_normal((16, 6, 4))
    net = zn.Sequential([zn.MultiHeadAttention(2, causal=True, dropout=0.1)],
                        input_shape=(6, 4), dtype="float32", seed=0)
    hist = net.fit(X, y, epochs=3, batch_size=8, optimizer=zn.optim.Adam(1e-2))
    assert hist["loss"][-1] < hist["loss"][0]
    assert all(p.dtype == np.float32 for p in net.params)
    assert net.predict(X).dtype == np.float32
    assert net.layers[0].attention.dtype == np.float32


def test_save_and_load_round_trip(tmp_path) -> None:
    net = zn.Sequential([zn.PositionalEmbedding(6, 4),
                         zn.MultiHeadAttention(2, causal=True, dropout=0.1, proj_scale=0.5)],
                        input_shape=(6, 4), seed=0)
    zn.save(net, tmp_path / "gpt.zeronn")
    back = zn.load(tmp_path / "gpt.zeronn")
    assert repr(back.layers) == repr(net.layers)
    x = np.random.default_rng(0).standard_normal((2, 6, 4))
    np.testing.assert_array_equal(back.predict(x), net.predict(x))


# -- initialization, config, errors ------------------------------------------------------
def test_initialization_is_nanogpts() -> None:
    width, n_layer = 64, 4
    net = zn.Sequential([zn.MultiHeadAttention(4, proj_scale=(2 * n_layer) ** -0.5)],
                        input_shape=(3, width), seed=0)
    layer = net.layers[0]
    assert layer.W_qkv.std() == pytest.approx(0.02, rel=0.05)
    assert layer.W_out.std() == pytest.approx(0.02 / math.sqrt(2 * n_layer), rel=0.05)
    assert not layer.b_qkv.any() and not layer.b_out.any()
    glorot = zn.Sequential([zn.MultiHeadAttention(4, init="glorot_uniform")],
                           input_shape=(3, width), seed=0).layers[0]
    limit = math.sqrt(6 / (width + 3 * width))
    assert abs(glorot.W_qkv).max() <= limit and glorot.W_qkv.std() > 0.5 * limit / math.sqrt(3)
    wide = zn.Sequential([zn.MultiHeadAttention(4, init=0.5)], input_shape=(3, width),
                         seed=0).layers[0]
    assert wide.W_qkv.std() == pytest.approx(0.5, rel=0.05)


@pytest.mark.parametrize("layer, text", [
    (MultiHeadAttention(4), "MultiHeadAttention(4)"),
    (MultiHeadAttention(2, causal=True, dropout=0.1),
     "MultiHeadAttention(2, causal=True, dropout=0.1)"),
    (MultiHeadAttention(1, use_bias=False, init="he_normal", proj_scale=0.25),
     "MultiHeadAttention(1, use_bias=False, init='he_normal', proj_scale=0.25)"),
])
def test_config_and_repr_round_trip(layer, text) -> None:
    assert repr(layer) == text
    again = MultiHeadAttention(**layer.config())
    assert again.config() == layer.config() and repr(again) == text
    assert layer.kind == "attention" and MultiHeadAttention.time_flexible
    assert zn.layers.LAYERS["MultiHeadAttention"] is MultiHeadAttention
    assert zn.MultiHeadAttention is MultiHeadAttention


def test_without_bias_has_two_parameters() -> None:
    layer = _built(MultiHeadAttention(2, use_bias=False), 3, 4)
    assert layer.param_names == ("W_qkv", "W_out")
    assert [p.shape for p in layer.params] == [(4, 12), (4, 4)]


@pytest.mark.parametrize("kwargs, match", [
    ({"num_heads": 0}, "num_heads must be a positive integer"),
    ({"num_heads": 2.0}, "num_heads must be a positive integer"),
    ({"num_heads": 2, "dropout": 1.0}, r"dropout must be a number in \[0, 1\)"),
    ({"num_heads": 2, "dropout": -0.1}, r"dropout must be a number in \[0, 1\)"),
    ({"num_heads": 2, "dropout": True}, r"dropout must be a number in \[0, 1\)"),
    ({"num_heads": 2, "init": -1.0}, "init must be a positive standard deviation"),
    ({"num_heads": 2, "init": "nope"}, "nope"),
    ({"num_heads": 2, "proj_scale": 0}, "proj_scale must be a positive number"),
])
def test_bad_arguments_fail_clearly(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def test_bad_shapes_fail_clearly() -> None:
    with pytest.raises(ValueError, match=r"C=6 features do not split into num_heads=4 heads"):
        zn.Sequential([MultiHeadAttention(4)], input_shape=(3, 6))
    with pytest.raises(ValueError, match=r"takes sequences \(n, T, C\).*input_shape=\(T, C\)"):
        zn.Sequential([MultiHeadAttention(2)], input_dim=4)


def test_dropout_needs_a_generator() -> None:
    layer = _built(MultiHeadAttention(2, dropout=0.5), 3, 4)
    layer.rng = None
    with pytest.raises(ValueError, match="no random generator"):
        layer.forward(np.ones((1, 3, 4)), training=True)
    layer.forward(np.ones((1, 3, 4)), training=False)  # evaluation draws nothing
