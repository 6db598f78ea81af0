"""ONNX nodes of the sequence layers, for :mod:`zeronn.onnx_export`.

Sequences are (batch, T, features) in zeronn and in the exported graph; token ids are
int64 (batch, T). Each function here is one entry of ``onnx_export``'s table of layer
kinds, ``emit(graph, layer, x, index) -> output``, and reads the layer through its
parameters by name and its configuration only:

- ``Embedding``: ``Gather(W, ids, axis=0)``: row ``ids[b, t]`` of ``W`` (vocab, dim);
- ``RNN``, ``LSTM``, ``GRU``: ONNX's ``RNN``/``LSTM``/``GRU`` operators, one direction,
  from a zero state. ONNX runs time-major, so ``Transpose`` makes (T, batch, D) of the
  input, and the output ``Y`` (T, 1, batch, H) is squeezed and transposed back to
  (batch, T, H) (``return_sequences``), or the last state ``Y_h`` (1, batch, H) squeezed
  to (batch, H). Weights are torch's (``weight_ih`` (G·H, D) is ONNX's ``W`` as it is),
  with the gate blocks reordered: torch's LSTM stacks i, f, g, o and ONNX i, o, f, c;
  torch's GRU r, z, n and ONNX z, r, h. ``B`` is ``[bias_ih, bias_hh]`` (ONNX's ``Wb``
  and ``Rb``), reordered alike. torch's GRU applies the reset gate to the hidden
  side's product *with* its bias, ``r * (h·W_hn^T + b_hn)``: ONNX's
  ``linear_before_reset=1``;
- ``MultiHeadAttention``: ``MatMul``/``Add`` (the fused q, k, v projection), ``Reshape``
  to (batch, T, 3, h, D), ``Transpose`` to (3, batch, h, T, D), ``Gather`` of q, k and v,
  ``MatMul`` of q and k^T, ``Mul`` by ``1/sqrt(D)``, ``Add`` of the causal mask (0 on and
  below the diagonal, -inf above, as zeronn's), ``Softmax`` on the last axis, ``MatMul``
  by v, ``Transpose``/``Reshape`` merging the heads, and the output projection;
- ``PositionalEmbedding``: ``Add`` of ``W[:T]``.

When the graph takes a dynamic number of steps (``graph.dynamic_time``), the causal mask
and ``W[:T]`` are constants for the network's T, sliced to the input's own T.

This module imports nothing of onnx (the graph builder it is given does) nor of
``onnx_export`` (which imports it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from zeronn.layers.base import Layer

__all__ = ["GraphBuilder", "attention", "embedding", "params_of", "positional_embedding",
           "recurrent", "steps_of"]


class GraphBuilder(Protocol):
    """What these functions need of ``onnx_export``'s graph: unique names, constants
    (in the graph's float type unless told), nodes, and whether the number of steps is
    dynamic."""

    opset: int
    dynamic_time: bool

    def name(self, stem: str) -> str: ...

    def const(self, stem: str, value: Any, dtype: Any = None) -> str: ...

    def op(self, op_type: str, inputs: Sequence[str], stem: str | None = None,
           output: str | None = None, **attrs: Any) -> str: ...

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str],
             **attrs: Any) -> None: ...


def params_of(layer: Layer) -> dict[str, NDArray]:
    """A layer's parameters by name (the exporters read layers through this alone)."""
    return dict(zip(layer.param_names, layer.params))


def steps_of(g: GraphBuilder, x: str) -> str:
    """The number of steps of ``x`` (batch, T, ...) at run time, as an int64 (1,) tensor."""
    return g.op("Gather", [g.op("Shape", [x]), g.const("time_axis", [1], np.int64)],
                "steps", axis=0)


def _first_steps(g: GraphBuilder, table: str, x: str, axes: Sequence[int]) -> str:
    """``table`` cut to ``x``'s number of steps on each of ``axes`` (a dynamic graph), or
    as it is (the graph's T is the network's)."""
    if not g.dynamic_time:
        return table
    t = steps_of(g, x)
    ends = t if len(axes) == 1 else g.op("Concat", [t] * len(axes), axis=0)
    return g.op("Slice", [table, g.const("zeros", [0] * len(axes), np.int64), ends,
                          g.const("axes", list(axes), np.int64)])


def embedding(g: GraphBuilder, layer: Layer, x: str, i: str) -> str:
    """ids (batch, T) int64 -> (batch, T, dim): the rows of W."""
    return g.op("Gather", [g.const(f"W{i}", params_of(layer)["W"]), x], f"emb{i}", axis=0)


def positional_embedding(g: GraphBuilder, layer: Layer, x: str, i: str) -> str:
    """x (batch, T, dim) + W[:T]."""
    steps = layer.input_shape[0]
    table = g.const(f"W{i}", params_of(layer)["W"][:steps])
    return g.op("Add", [x, _first_steps(g, table, x, [0])], f"pos{i}")


#: ONNX's gate blocks, as indices of torch's: LSTM i, o, f, c from torch's i, f, g, o;
#: GRU z, r, h from torch's r, z, n.
_GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
_OPERATOR = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _gates(a: NDArray, order: Sequence[int], units: int) -> NDArray:
    """``a`` (G·H, ...) with its G blocks of H rows in ``order``."""
    return np.concatenate([a[k * units:(k + 1) * units] for k in order])


def recurrent(g: GraphBuilder, layer: Layer, x: str, i: str) -> str:
    """x (batch, T, D) -> (batch, T, H) with ``return_sequences``, else (batch, H)."""
    kind = layer.kind
    p = params_of(layer)
    H: int = layer.units  # type: ignore[attr-defined]
    order = _GATE_ORDER[kind]
    inputs = [g.op("Transpose", [x], f"steps_first{i}", perm=[1, 0, 2]),
              g.const(f"W{i}", _gates(p["weight_ih"], order, H)[None]),
              g.const(f"R{i}", _gates(p["weight_hh"], order, H)[None])]
    if "bias_ih" in p:  # without biases ONNX's B defaults to zeros
        bias = np.concatenate([_gates(p["bias_ih"], order, H), _gates(p["bias_hh"], order, H)])
        inputs.append(g.const(f"B{i}", bias[None]))
    attrs: dict[str, Any] = {"hidden_size": H}
    if kind == "rnn":
        act = layer.activation_name  # type: ignore[attr-defined]
        attrs["activations"] = ["Relu" if act == "relu" else "Tanh"]
    elif kind == "gru":
        attrs["linear_before_reset"] = 1
    if layer.return_sequences:  # type: ignore[attr-defined]
        y = g.name(f"Y{i}")
        g.node(_OPERATOR[kind], inputs, [y], **attrs)
        y = g.op("Squeeze", [y, g.const("direction_axis", [1], np.int64)])  # (T, batch, H)
        return g.op("Transpose", [y], f"seq{i}", perm=[1, 0, 2])
    y_h = g.name(f"Y_h{i}")
    g.node(_OPERATOR[kind], inputs, ["", y_h], **attrs)  # Y not computed, only Y_h
    return g.op("Squeeze", [y_h, g.const("direction_axis", [0], np.int64)], f"h{i}")


def attention(g: GraphBuilder, layer: Layer, x: str, i: str) -> str:
    """x (batch, T, C) -> (batch, T, C), the steps of ``MultiHeadAttention.infer``."""
    p = params_of(layer)
    T, C = layer.input_shape
    h: int = layer.num_heads  # type: ignore[attr-defined]
    d = C // h
    qkv = g.op("MatMul", [x, g.const(f"W_qkv{i}", p["W_qkv"])])
    if "b_qkv" in p:
        qkv = g.op("Add", [qkv, g.const(f"b_qkv{i}", p["b_qkv"].reshape(-1))])
    # (batch, T, 3C) viewed (batch, T, 3, h, D) (0: that axis as it is), then (3, batch, h, T, D)
    qkv = g.op("Reshape", [qkv, g.const("qkv_shape", [0, 0, 3, h, d], np.int64)])
    qkv = g.op("Transpose", [qkv], f"heads{i}", perm=[2, 0, 3, 1, 4])
    q, k, v = (g.op("Gather", [qkv, g.const(name, j, np.int64)], f"{name}{i}", axis=0)
               for j, name in enumerate("qkv"))
    k_t = g.op("Transpose", [k], perm=[0, 1, 3, 2])  # (batch, h, D, T)
    scores = g.op("MatMul", [q, k_t])
    scores = g.op("Mul", [scores, g.const("scale", 1.0 / math.sqrt(d))], f"scores{i}")
    if layer.causal:  # type: ignore[attr-defined]
        future = np.triu(np.ones((T, T), bool), k=1)
        mask = g.const(f"causal_mask{i}", np.where(future, -np.inf, 0.0))
        scores = g.op("Add", [scores, _first_steps(g, mask, x, [0, 1])])
    att = g.op("Softmax", [scores], f"attention{i}", axis=-1)
    y = g.op("MatMul", [att, v])  # (batch, h, T, D)
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (batch, T, h, D)
    y = g.op("Reshape", [y, g.const("merged_shape", [0, 0, C], np.int64)], f"merged{i}")
    out = g.op("MatMul", [y, g.const(f"W_out{i}", p["W_out"])])
    if "b_out" in p:
        out = g.op("Add", [out, g.const(f"b_out{i}", p["b_out"].reshape(-1))])
    return out
