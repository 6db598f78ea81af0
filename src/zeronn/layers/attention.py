"""Multi-head self-attention, as nanoGPT's ``CausalSelfAttention``, with its backward pass.

A sequence batch ``x`` is (n, T, C): n sequences of T steps, C features (the embedding
width). The layer has ``h = num_heads`` heads of ``D = C / h`` features each, one fused
projection to queries, keys and values (nanoGPT's ``c_attn``) and an output projection
(``c_proj``)::

    W_qkv (C, 3C)   b_qkv (1, 3C)      W_out (C, C)   b_out (1, C)

in zeronn's (fan_in, fan_out) layout, as Dense's ``W``: torch's ``nn.Linear`` weights
are their transposes (``c_attn.weight`` is ``W_qkv.T``).

Forward, step by step (``P`` the attention weights, ``A`` them after dropout):

1. ``qkv = x·W_qkv + b_qkv`` (n*T, 3C): the n*T steps as the rows of one matrix product.
2. Split and heads. Columns ``[0, C)`` are the queries, ``[C, 2C)`` the keys, ``[2C, 3C)``
   the values (nanoGPT's ``split(n_embd, dim=2)``), and within each, head ``j`` owns
   columns ``[j*D, (j+1)*D)``. So ``qkv`` *viewed* as (n, T, 3, h, D) and transposed to
   (3, n, h, T, D) is ``q, k, v``, each (n, h, T, D): one copy lays them out so that every
   (T, D) block below is contiguous for the matrix products.
3. ``S = q·k^T / sqrt(D)`` (n, h, T, T): ``S[b, j, t, s]`` says how much step t of
   sequence b, in head j, looks at step s. One batched product (``np.matmul`` on 4-D
   arrays multiplies the last two axes for every (b, j): no Python loop).
4. Causal mask (``causal=True``): ``S[..., t, s] = -inf`` for ``s > t``, so a step sees
   only itself and the past (a language model must not read the next character).
5. ``P = softmax(S)`` over the last axis (subtracting each row's maximum first, so
   ``exp`` cannot overflow; ``exp(-inf) = 0``: the masked weights are exactly 0). Each
   row of ``P`` sums to 1. Kept in ``layer.attention``.
6. Attention dropout (training, ``dropout > 0``): ``A = P * mask``, the mask 0 or
   ``1 / (1 - dropout)`` as ``Dropout``'s (drawn from ``layer.rng``, the network's
   generator; kept in ``layer.dropout_mask``). Otherwise ``A = P``.
7. ``y = A·v`` (n, h, T, D): each step's output is a weighted mean of the values.
8. Merge the heads: ``y`` transposed to (n, T, h, D) and copied as rows (n*T, C),
   head ``j`` in columns ``[j*D, (j+1)*D)`` again (nanoGPT's ``transpose(1, 2).view``).
9. ``out = merged·W_out + b_out`` (n*T, C), returned as (n, T, C).

Backward, from ``dout`` (n, T, C), every step of the forward pass in reverse:

9. ``dW_out = merged^T·dout`` (C, C), ``db_out = sum(dout)`` over the rows, and
   ``dmerged = dout·W_out^T`` (n*T, C).
8. Undo the merge: ``dy`` (n, h, T, D) is ``dmerged`` viewed (n, T, h, D), transposed.
7. ``y = A·v``: ``dv = A^T·dy`` (n, h, T, D) and ``dA = dy·v^T`` (n, h, T, T).
6. Dropout: ``dP = dA * mask`` (the same mask; ``dP = dA`` without dropout).
5. Softmax, as a Jacobian-vector product (the Jacobian of a row is ``diag(p) - p p^T``)::

       dS = P * (dP - rowsum(dP * P))

   The row sums need no (T, T) pass of their own: ``rowsum(dP * P)[t] = sum_s dA[t, s]
   A[t, s] = sum_s (dy_t · v_s) A[t, s] = dy_t · y_t``, so they are ``sum(dy * y)`` over
   D (n, h, T, 1), a pass over (T, D) values (FlashAttention's trick; with or without
   dropout, since ``dP * P = dA * A``).
4. The mask: ``P`` is 0 at the masked places, so ``dS`` is 0 there already (no gradient
   flows to the future).
3. The scale, and ``S = q·k^T``: ``dS *= 1 / sqrt(D)``, then ``dq = dS·k`` and
   ``dk = dS^T·q`` (n, h, T, D).
2. Undo the split and heads: ``dq, dk, dv`` stacked (3, n, h, T, D) are copied back into
   the (n, T, 3, h, D) layout of the rows ``dqkv`` (n*T, 3C).
1. ``dW_qkv = x^T·dqkv`` (C, 3C), ``db_qkv = sum(dqkv)``, ``dx = dqkv·W_qkv^T`` (n, T, C).

Work arrays (``qkv``, the heads, ``P``, one more (n, h, T, T) array for ``A``/``dA``, ``y``,
the merged rows, the output and the backward's arrays) are allocated once per batch size
and reused; ``qkv`` is spent after step 2 and holds ``dqkv`` in the backward pass,
``merged`` holds ``dmerged``. ``infer`` (prediction) computes the same in fresh arrays,
on any T up to the built one (the causal mask for T' steps is the built mask's top-left
(T', T') corner), and keeps its attention weights in ``layer.attention`` too.

Initialization as nanoGPT: weights drawn from N(0, 0.02^2), biases 0. nanoGPT scales the
output projection's weights by ``1 / sqrt(2 * n_layer)`` (the residual stream adds one
such output per attention and per MLP of each block): the layer cannot know the number of
blocks, so ``proj_scale`` multiplies ``W_out``'s initial values; pass
``proj_scale=(2 * n_layer) ** -0.5`` to get nanoGPT's. nanoGPT's ``resid_dropout`` (after
``c_proj``) is a ``Dropout`` layer after this one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import flag, positive_number
from zeronn.activations import get_activation
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers.base import BufferCache, Layer, Param, Shape

__all__ = ["MultiHeadAttention", "check_init", "initial_weights"]

_add_reduce = np.add.reduce
_SOFTMAX = get_activation("softmax")  # the stable softmax over the last axis, in place

#: nanoGPT's standard deviation of every initial weight (``torch.nn.init.normal_(std=0.02)``)
GPT_STD = 0.02


def check_init(what: str, init: Any) -> str | Initializer | float:
    """An ``init`` argument checked: a positive number (the standard deviation of a normal
    draw, nanoGPT's 0.02), or an initializer name or callable (unknown names fail here)."""
    if isinstance(init, (int, float, np.floating)) and not isinstance(init, bool):
        if not (math.isfinite(init) and init > 0):
            raise ValueError(f"{what} init must be a positive standard deviation (nanoGPT: "
                             f"0.02), an initializer name or a callable, got {init!r}")
        return float(init)
    get_initializer(init)
    return init


def initial_weights(init: str | Initializer | float, rng: np.random.Generator, fan_in: int,
                    fan_out: int, dtype: np.dtype) -> NDArray:
    """A (fan_in, fan_out) matrix: N(0, init^2) for a number, else the initializer's draw."""
    if isinstance(init, float):
        return (rng.standard_normal((fan_in, fan_out)) * init).astype(dtype, copy=False)
    return get_initializer(init)(rng, fan_in, fan_out, dtype)


@dataclass(eq=False)
class _Buffers:
    """Per-batch-size work arrays of one layer (shapes in the module doc)."""

    qkv: NDArray      # (n*T, 3C): the projection; in backward, dqkv
    heads: NDArray    # (3, n, h, T, D): q, k, v
    att: NDArray      # (n, h, T, T): P, the attention weights
    work: NDArray     # (n, h, T, T): A (with dropout), then dA -> dS
    y: NDArray        # (n, h, T, D): A·v; in backward, scratch for dy * y
    merged: NDArray   # (n*T, C): the heads side by side; in backward, dmerged
    out: NDArray      # (n*T, C)
    dy: NDArray       # (n, h, T, D)
    dheads: NDArray   # (3, n, h, T, D): dq, dk, dv
    dx: NDArray | None = None     # (n*T, C), made when a gradient flows further back
    mask: NDArray | None = None   # (n, h, T, T) dropout multipliers, made on first use
    keep: NDArray | None = None   # (n, h, T, T) bool: which weights are kept


class MultiHeadAttention(Layer):
    """Self-attention over a sequence: x (n, T, C) -> (n, T, C), nanoGPT's ``CausalSelfAttention``.

    ``num_heads``: h, which must divide C (each head works on D = C / h features).
    ``causal``: each step attends only to itself and earlier steps (a GPT's decoder).
    ``dropout``: attention dropout, the share of attention weights dropped while training.
    ``use_bias``: the projections' biases (nanoGPT's ``bias``, True by default there too).
    ``init``: the weights' initial standard deviation (nanoGPT's 0.02), or an initializer
    name or callable ``(rng, fan_in, fan_out, dtype)`` (see ``zeronn.initializers``).
    ``proj_scale``: multiplies ``W_out``'s initial values (nanoGPT: ``(2 * n_layer) ** -0.5``).

    Parameters ``W_qkv`` (C, 3C), ``b_qkv`` (1, 3C), ``W_out`` (C, C), ``b_out`` (1, C);
    gradients ``dW_qkv``, ... alike. After a forward pass (or a prediction),
    ``attention`` (n, h, T, T) holds its attention weights (before dropout: each row sums to
    1; a forward pass's is a work buffer, valid until the next one; a prediction's is that
    of the last chunk of rows predicted) and ``dropout_mask`` the training pass's dropout
    multipliers (0 or ``1 / (1 - dropout)``; None when nothing was dropped).
    """

    kind = "attention"
    time_flexible = True
    no_decay = ("b_qkv", "b_out")
    W_qkv = Param()
    b_qkv = Param()
    W_out = Param()
    b_out = Param()
    _W_qkv: NDArray  # the live views (set by bind)
    _b_qkv: NDArray
    _W_out: NDArray
    _b_out: NDArray
    dW_qkv: NDArray
    db_qkv: NDArray
    dW_out: NDArray
    db_out: NDArray

    def __init__(self, num_heads: int, causal: bool = False, dropout: float = 0.0,
                 use_bias: bool = True, init: str | Initializer | float = GPT_STD,
                 proj_scale: float = 1.0) -> None:
        self.num_heads = positive_number("MultiHeadAttention num_heads", num_heads,
                                         integer=True)
        if (isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating))
                or not 0 <= dropout < 1):
            raise ValueError(f"MultiHeadAttention dropout must be a number in [0, 1), got "
                             f"{dropout!r} (the share of attention weights dropped while "
                             f"training)")
        if (isinstance(proj_scale, bool) or not isinstance(proj_scale, (int, float, np.floating))
                or not (math.isfinite(proj_scale) and proj_scale > 0)):
            raise ValueError(f"MultiHeadAttention proj_scale must be a positive number "
                             f"(nanoGPT: (2 * n_layer) ** -0.5), got {proj_scale!r}")
        self.causal = flag("MultiHeadAttention causal", causal)
        self.use_bias = flag("MultiHeadAttention use_bias", use_bias)
        self.dropout = float(dropout)
        self.init = check_init("MultiHeadAttention", init)
        self.proj_scale = float(proj_scale)
        self.param_names = (("W_qkv", "b_qkv", "W_out", "b_out") if self.use_bias  # type: ignore[misc]
                            else ("W_qkv", "W_out"))
        self.attention: NDArray | None = None
        self.dropout_mask: NDArray | None = None
        self._cache: BufferCache[_Buffers] | None = None
        self._buf: _Buffers | None = None
        self._x: NDArray | None = None
        self._dropped = False

    # -- structure -------------------------------------------------------------------
    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"MultiHeadAttention takes sequences (n, T, C), but its input has "
                             f"shape (n, {', '.join(map(str, input_shape))}): give the network "
                             f"input_shape=(T, C) (or put an Embedding before it)")
        steps, width = input_shape
        if width % self.num_heads:
            raise ValueError(f"MultiHeadAttention: the input's C={width} features do not split "
                             f"into num_heads={self.num_heads} heads of equal size: choose "
                             f"num_heads dividing {width}, or an embedding width divisible "
                             f"by {self.num_heads}")
        super().build(input_shape, dtype)
        self.steps, self.width = int(steps), int(width)
        self.head_dim = self.width // self.num_heads
        # In the layer's dtype, so float32 stays float32 (as torch's float32 tensor * float).
        self._scale = self.dtype.type(1.0 / math.sqrt(self.head_dim))
        # True above the diagonal: the future steps a causal layer must not see.
        self._future = np.triu(np.ones((self.steps, self.steps), np.bool_), k=1)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> _Buffers:
        t, c, h, d, dt = self.steps, self.width, self.num_heads, self.head_dim, self.dtype
        return _Buffers(qkv=np.empty((n * t, 3 * c), dt), heads=np.empty((3, n, h, t, d), dt),
                        att=np.empty((n, h, t, t), dt), work=np.empty((n, h, t, t), dt),
                        y=np.empty((n, h, t, d), dt), merged=np.empty((n * t, c), dt),
                        out=np.empty((n * t, c), dt), dy=np.empty((n, h, t, d), dt),
                        dheads=np.empty((3, n, h, t, d), dt))

    def param_shapes(self) -> list[Shape]:
        c = self.width
        if self.use_bias:
            return [(c, 3 * c), (1, 3 * c), (c, c), (1, c)]
        return [(c, 3 * c), (c, c)]

    def initialize(self, rng: np.random.Generator) -> None:
        c = self.width
        self.W_qkv = initial_weights(self.init, rng, c, 3 * c, self.dtype)
        self.W_out = initial_weights(self.init, rng, c, c, self.dtype) * self.dtype.type(
            self.proj_scale)
        if self.use_bias:
            self._b_qkv.fill(0)
            self._b_out.fill(0)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"num_heads": self.num_heads, "causal": self.causal,
                               "dropout": self.dropout}
        if not self.use_bias:
            cfg["use_bias"] = False
        # A callable initializer is not JSON: left out, as Dense does (loaded weights
        # replace the draw anyway).
        if isinstance(self.init, (str, float)) and self.init != GPT_STD:
            cfg["init"] = self.init
        if self.proj_scale != 1.0:
            cfg["proj_scale"] = self.proj_scale
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._buf = self._x = self.attention = self.dropout_mask = None

    # -- computation -----------------------------------------------------------------
    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, T, C) -> (n, T, C), steps 1-9 of the module doc; keeps what backward needs.

        Returns a work buffer, valid until the next call.
        """
        cache = self._cache
        assert cache is not None, "a MultiHeadAttention layer computes once built into a network"
        n = x.shape[0]
        t, c, h, d = self.steps, self.width, self.num_heads, self.head_dim
        buf = cache.get(n) or cache.make(n)
        rows = x.reshape(n * t, c)
        # 1. The fused projection: every step's q, k and v in one matrix product.
        np.dot(rows, self._W_qkv, out=buf.qkv)
        if self.use_bias:
            np.add(buf.qkv, self._b_qkv, out=buf.qkv)
        # 2. Split into q, k, v and into heads: (n, T, 3, h, D) -> (3, n, h, T, D).
        np.copyto(buf.heads, buf.qkv.reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4))
        q, k, v = buf.heads
        # 3. Scores, one (T, T) product per sequence and head.
        att = buf.att
        np.matmul(q, k.swapaxes(-1, -2), out=att)
        np.multiply(att, self._scale, out=att)
        # 4. The future is hidden: exp(-inf) makes its weights exactly 0.
        if self.causal:
            np.copyto(att, -np.inf, where=self._future)
        # 5. P = softmax over each row (stable: the row's maximum is subtracted first).
        _SOFTMAX.forward(att, att)
        # 6. Attention dropout.
        a = att
        self._dropped = training and self.dropout > 0
        if self._dropped:
            a = self._drop(att, buf)
        else:
            self.dropout_mask = None
        # 7. Each step's output: the values weighted by its attention.
        np.matmul(a, v, out=buf.y)
        # 8. Heads side by side again: (n, h, T, D) -> (n, T, h, D) rows of C.
        np.copyto(buf.merged.reshape(n, t, h, d), buf.y.transpose(0, 2, 1, 3))
        # 9. The output projection.
        np.dot(buf.merged, self._W_out, out=buf.out)
        if self.use_bias:
            np.add(buf.out, self._b_out, out=buf.out)
        self._x, self._buf, self.attention = rows, buf, att
        return buf.out.reshape(n, t, c)

    def _drop(self, att: NDArray, buf: _Buffers) -> NDArray:
        """A = P * mask into ``buf.work``; the mask as ``Dropout``'s, from ``self.rng``."""
        if self.rng is None:
            raise ValueError("MultiHeadAttention with dropout has no random generator: use "
                             "it inside a network")
        if buf.mask is None or buf.keep is None:
            buf.mask = np.empty_like(att)
            buf.keep = np.empty(att.shape, np.bool_)
        mask, keep = buf.mask, buf.keep
        self.rng.random(dtype=mask.dtype, out=mask)  # uniform [0, 1), in the layer's dtype
        np.greater_equal(mask, self.dropout, out=keep)  # kept with probability 1 - dropout
        np.multiply(keep, 1.0 / (1.0 - self.dropout), out=mask)
        self.dropout_mask = mask
        return np.multiply(att, mask, out=buf.work)

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dout (n, T, C) -> dL/dx (n, T, C), steps 9-1 of the module doc; sets the
        parameter gradients."""
        buf, rows = self._buf, self._x
        if buf is None or rows is None:
            raise ValueError("backward() needs a forward() first")
        n = dout.shape[0]
        t, c, h, d = self.steps, self.width, self.num_heads, self.head_dim
        g = dout.reshape(n * t, c)
        # 9. Output projection: its gradients, then dmerged into merged's place (spent).
        np.dot(buf.merged.T, g, out=self.dW_out)
        if self.use_bias:
            _add_reduce(g, axis=0, out=self.db_out[0])
        dmerged = np.dot(g, self._W_out.T, out=buf.merged)
        # 8. Undo the merge: (n, T, h, D) -> (n, h, T, D).
        dy = buf.dy
        np.copyto(dy, dmerged.reshape(n, t, h, d).transpose(0, 2, 1, 3))
        # 7. y = A·v. A is P, or P * mask in work (read before dA overwrites it).
        q, k, v = buf.heads
        dq, dk, dv = buf.dheads
        a = buf.work if self._dropped else buf.att
        np.matmul(a.swapaxes(-1, -2), dy, out=dv)
        ds = np.matmul(dy, v.swapaxes(-1, -2), out=buf.work)  # dA
        # 6. Dropout: the same mask.
        if self._dropped:
            assert buf.mask is not None
            np.multiply(ds, buf.mask, out=ds)  # dP
        # 5. Softmax's Jacobian-vector product, dS = P * (dP - rowsum(dP * P)), with the
        #    row sums taken as sum(dy * y) over D (equal, and a (T, D) pass, not (T, T)).
        prod = np.multiply(dy, buf.y, out=buf.y)  # y is spent
        np.subtract(ds, prod.sum(axis=-1, keepdims=True), out=ds)
        np.multiply(ds, buf.att, out=ds)
        # 4. The mask: P = 0 there, so dS is already 0. 3. The scale, then S = q·k^T.
        np.multiply(ds, self._scale, out=ds)
        np.matmul(ds, k, out=dq)
        np.matmul(ds.swapaxes(-1, -2), q, out=dk)
        # 2. Undo the split and heads: (3, n, h, T, D) -> rows (n*T, 3C), in qkv's place.
        dqkv = buf.qkv
        np.copyto(dqkv.reshape(n, t, 3, h, d), buf.dheads.transpose(1, 3, 0, 2, 4))
        # 1. The fused projection.
        np.dot(rows.T, dqkv, out=self.dW_qkv)
        if self.use_bias:
            _add_reduce(dqkv, axis=0, out=self.db_qkv[0])
        if not need_dx:
            return None
        if buf.dx is None:
            buf.dx = np.empty((n * t, c), self.dtype)
        np.dot(dqkv, self._W_qkv.T, out=buf.dx)
        return buf.dx.reshape(n, t, c)

    @property
    def output(self) -> NDArray:
        if self._buf is None:
            raise ValueError("no forward pass yet")
        return self._buf.out.reshape(-1, self.steps, self.width)

    def infer(self, x: NDArray) -> NDArray:
        """Evaluation outputs in fresh arrays: x (n, T', C) -> (n, T', C) for any T' <= T.

        The same steps as ``forward`` without dropout; ``attention`` keeps the weights.
        """
        n, t, c = x.shape
        h, d = self.num_heads, self.head_dim
        qkv = np.dot(x.reshape(n * t, c), self._W_qkv)
        if self.use_bias:
            qkv += self._b_qkv
        q, k, v = np.ascontiguousarray(qkv.reshape(n, t, 3, h, d).transpose(2, 0, 3, 1, 4))
        att = np.matmul(q, k.swapaxes(-1, -2))
        att *= self._scale
        if self.causal:
            np.copyto(att, -np.inf, where=self._future[:t, :t])
        _SOFTMAX.forward(att, att)
        y = np.matmul(att, v)
        out = np.dot(y.transpose(0, 2, 1, 3).reshape(n * t, c), self._W_out)
        if self.use_bias:
            out += self._b_out
        self.attention = att
        return out.reshape(n, t, c)

    def __repr__(self) -> str:
        cfg = self.config()
        if not isinstance(self.init, (str, float)):
            cfg["init"] = getattr(self.init, "__name__", "custom")
        args = [str(cfg.pop("num_heads"))] + [f"{k}={v!r}" for k, v in cfg.items()
                                              if (k, v) not in (("causal", False),
                                                                ("dropout", 0.0))]
        return f"MultiHeadAttention({', '.join(args)})"
