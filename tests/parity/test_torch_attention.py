"""MultiHeadAttention and PositionalEmbedding against PyTorch: outputs and every gradient.

The oracle for attention is nanoGPT's ``CausalSelfAttention`` written in torch (``c_attn``
``nn.Linear(C, 3C)``, ``c_proj`` ``nn.Linear(C, C)``; weights copied from zeronn's
(fan_in, fan_out) matrices as their transposes). Attention dropout gets the same mask in
both: zeronn draws it in training mode (``layer.dropout_mask``) and torch multiplies its
softmax by it instead of calling ``nn.Dropout``. Without dropout, torch's
``F.scaled_dot_product_attention`` is checked too. Hypothesis draws the heads (1-4),
head widths, T (1-64), causal or not, biases and weight scales; compared to a relative
``F64_TOL`` (float64) or ``F32_TOL`` (float32), metric ``conftest.relative_error``: the
output, the attention weights, dL/dx and every parameter gradient for a random dL/dout
through ``net.forward``/``net.backward``.

Gradient floors (``conftest.relative_error``): a gradient that is 0 in exact arithmetic
(one step, T = 1: its softmax is 1 whatever the scores, so q and k get no gradient) comes
out of either framework as rounding noise. The floor is the gradient with every
subtraction in the backward pass made an addition (``|dP| + rowsum(|dP| * P)`` in the
softmax's, absolute values in the products), divided by the number of summands of a
parameter's gradient (the n*T rows), as the layers suite does.
PositionalEmbedding is checked against ``nn.Embedding(max_len, C)`` over ``arange(T)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402
from conftest import examples  # noqa: E402

from .test_torch_gradients import F32_TOL, F64_TOL  # noqa: E402

# Examples per case (raise with ZERONN_PARITY_EXAMPLES, as the other parity files).
EXAMPLES = max(1, examples(30, "ZERONN_PARITY_EXAMPLES"))
DTYPES = [("float64", F64_TOL), ("float32", F32_TOL)]


class CausalSelfAttention(torch.nn.Module):  # type: ignore[misc]
    """nanoGPT's module (model.py), its dropout replaced by a given mask, weights copied
    from a built zeronn layer."""

    def __init__(self, layer: zn.MultiHeadAttention) -> None:
        super().__init__()
        c, dtype = layer.width, getattr(torch, layer.dtype.name)
        self.n_head, self.n_embd, self.causal = layer.num_heads, c, layer.causal
        self.c_attn = torch.nn.Linear(c, 3 * c, bias=layer.use_bias, dtype=dtype)
        self.c_proj = torch.nn.Linear(c, c, bias=layer.use_bias, dtype=dtype)
        with torch.no_grad():  # torch's Linear weight is (out, in): zeronn's W transposed
            self.c_attn.weight.copy_(torch.tensor(layer.W_qkv.T))
            self.c_proj.weight.copy_(torch.tensor(layer.W_out.T))
            if layer.use_bias:
                self.c_attn.bias.copy_(torch.tensor(layer.b_qkv[0]))
                self.c_proj.bias.copy_(torch.tensor(layer.b_out[0]))
        steps = layer.steps
        self.register_buffer("bias", torch.tril(torch.ones(steps, steps)).view(
            1, 1, steps, steps))
        self.att: Any = None

    def forward(self, x: Any, mask: Any = None, sdpa: bool = False) -> Any:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if sdpa:  # nanoGPT's flash path (no dropout here)
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.0,
                                                                 is_causal=self.causal)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            if self.causal:
                att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = torch.nn.functional.softmax(att, dim=-1)
            self.att = att
            if mask is not None:
                att = att * mask
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def grads(self, use_bias: bool) -> list[np.ndarray]:
        """Parameter gradients in zeronn's order and shapes (W_qkv, b_qkv, W_out, b_out)."""
        out = [self.c_attn.weight.grad.numpy().T]
        if use_bias:
            out.append(self.c_attn.bias.grad.numpy()[None])
        out.append(self.c_proj.weight.grad.numpy().T)
        if use_bias:
            out.append(self.c_proj.bias.grad.numpy()[None])
        return out


def floors(layer: zn.MultiHeadAttention, x: np.ndarray, g: np.ndarray,
           mask: np.ndarray | None) -> tuple[list[float], float]:
    """The floors of the module doc: per gradient (aligned with ``layer.params``), and dx's."""
    n, steps, c = x.shape
    h, d = layer.num_heads, layer.head_dim
    rows = n * steps
    ax = np.abs(x.astype(np.float64)).reshape(rows, c)
    ag = np.abs(g.astype(np.float64)).reshape(rows, c)
    w_qkv, w_out = np.abs(layer.W_qkv.astype(np.float64)), np.abs(layer.W_out.astype(np.float64))
    b_qkv = np.abs(layer.b_qkv.astype(np.float64)) if layer.use_bias else 0.0
    heads = (ax @ w_qkv + b_qkv).reshape(n, steps, 3, h, d).transpose(2, 0, 3, 1, 4)
    q, k, v = heads
    p = layer.attention.astype(np.float64)
    a = p if mask is None else p * mask
    merged = (a @ v).transpose(0, 2, 1, 3).reshape(rows, c)
    dy = (ag @ w_out.T).reshape(n, steps, h, d).transpose(0, 2, 1, 3)
    dv = a.swapaxes(-1, -2) @ dy
    dp = dy @ v.swapaxes(-1, -2)
    if mask is not None:
        dp = dp * mask
    ds = p * (dp + (dp * p).sum(axis=-1, keepdims=True)) / math.sqrt(d)
    dq, dk = ds @ k, ds.swapaxes(-1, -2) @ q
    dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(rows, 3 * c)
    out = [float((ax.T @ dqkv).max()) / rows]
    if layer.use_bias:
        out.append(float(dqkv.sum(axis=0).max()) / rows)
    out.append(float((merged.T @ ag).max()) / rows)
    if layer.use_bias:
        out.append(float(ag.sum(axis=0).max()) / rows)
    return out, float((dqkv @ w_qkv.T).max())


@st.composite
def problems(draw: st.DrawFn, dtype: str) -> dict[str, Any]:
    """A network of one attention layer with random weights, a batch and dL/dout."""
    heads = draw(st.integers(1, 4), label="heads")
    head_dim = draw(st.integers(1, 8), label="head_dim")
    steps = draw(st.integers(1, 64), label="T")
    n = draw(st.integers(1, 3), label="batch")
    causal = draw(st.booleans(), label="causal")
    dropout = draw(st.sampled_from([0.0, 0.1, 0.5]), label="dropout")
    use_bias = draw(st.booleans(), label="use_bias")
    scale = draw(st.sampled_from([0.02, 1.0, 3.0]), label="weight scale")  # nanoGPT's, peaky
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    c = heads * head_dim
    layer = zn.MultiHeadAttention(heads, causal=causal, dropout=dropout, use_bias=use_bias)
    net = zn.Sequential([layer], input_shape=(steps, c), dtype=dtype, seed=0)
    rng = np.random.default_rng(seed)
    net.set_params([rng.normal(0.0, scale / math.sqrt(c) if name.startswith("W") else 0.5,
                               p.shape) for name, p in zip(layer.param_names, net.params)])
    net.set_rng(np.random.default_rng(seed + 1))
    x = rng.standard_normal((n, steps, c)).astype(dtype)
    g = rng.standard_normal((n, steps, c)).astype(dtype)
    return {"net": net, "x": x, "g": g}


@pytest.mark.parametrize("dtype, tol", DTYPES, ids=["float64", "float32"])
def test_attention_matches_nanogpt(parity: Any, dtype: str, tol: float) -> None:
    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prob=problems(dtype))
    def run(prob: dict[str, Any]) -> None:
        net: zn.Sequential = prob["net"]
        x, g = prob["x"], prob["g"]
        layer = net.layers[0]
        assert isinstance(layer, zn.MultiHeadAttention)
        arch = f"{layer!r} x{x.shape} bias={layer.use_bias}"
        out = net.forward(x, training=True)
        mask = None if layer.dropout_mask is None else layer.dropout_mask.copy()
        assert (mask is not None) == (layer.dropout > 0)
        dx = net.backward(g)
        grads = [p.copy() for p in net.grads]
        assert out.dtype == dx.dtype == np.dtype(dtype)

        module = CausalSelfAttention(layer)
        xt = torch.tensor(x, requires_grad=True)
        tout = module(xt, None if mask is None else torch.tensor(mask))
        tout.backward(torch.tensor(g))
        assert xt.grad is not None
        parity.check(f"attention {dtype} forward", out, tout.detach().numpy(), tol, arch)
        parity.check(f"attention {dtype} forward", layer.attention,
                     module.att.detach().numpy(), tol, f"attention weights of {arch}")
        p_floors, dx_floor = floors(layer, x, g, mask)
        parity.check(f"attention {dtype} backward", dx, xt.grad.numpy(), tol, f"dx of {arch}",
                     floor=dx_floor)
        for name, ours, theirs, floor in zip(layer.param_names, grads,
                                             module.grads(layer.use_bias), p_floors):
            parity.check(f"attention {dtype} backward", ours, theirs, tol, f"{name} of {arch}",
                         floor=floor)
        # Evaluation mode (no dropout), against torch's fused attention too.
        with torch.no_grad():
            plain = module(torch.tensor(x)).numpy()
            fused = module(torch.tensor(x), sdpa=True).numpy()
        predicted = net.predict(x)
        parity.check(f"attention {dtype} eval", predicted, plain, tol, arch)
        parity.check(f"attention {dtype} eval sdpa", predicted, fused, tol, arch)

    run()


@pytest.mark.parametrize("dtype, tol", DTYPES, ids=["float64", "float32"])
def test_positional_embedding_matches_nn_embedding(parity: Any, dtype: str, tol: float) -> None:
    @settings(max_examples=max(1, EXAMPLES // 3), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(max_len=st.integers(1, 64), data=st.data(), c=st.integers(1, 16),
           n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
    def run(max_len: int, data: st.DataObject, c: int, n: int, seed: int) -> None:
        steps = data.draw(st.integers(1, max_len), label="T")
        net = zn.Sequential([zn.PositionalEmbedding(max_len)], input_shape=(steps, c),
                            dtype=dtype, seed=seed)
        layer = net.layers[0]
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n, steps, c)).astype(dtype)
        g = rng.standard_normal((n, steps, c)).astype(dtype)
        out = net.forward(x, training=True)
        dx = net.backward(g)
        wpe = torch.nn.Embedding(max_len, c, dtype=getattr(torch, dtype))
        with torch.no_grad():
            wpe.weight.copy_(torch.tensor(layer.W))
        xt = torch.tensor(x, requires_grad=True)
        tout = xt + wpe(torch.arange(steps))
        tout.backward(torch.tensor(g))
        arch = f"{layer!r} x{x.shape}"
        parity.check(f"positional {dtype}", out, tout.detach().numpy(), tol, arch)
        parity.check(f"positional {dtype}", dx, xt.grad.numpy(), tol, f"dx of {arch}")
        parity.check(f"positional {dtype}", layer.dW, wpe.weight.grad.numpy(), tol,
                     f"dW of {arch}", floor=float(np.abs(g).sum(axis=0).max()) / n)

    run()
