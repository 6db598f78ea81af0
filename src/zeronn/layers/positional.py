"""Learned position vectors, nanoGPT's ``wpe``: each step gets its own vector added.

Attention by itself does not know the order of the steps (permute them and the outputs
permute alike), so a GPT adds a learned vector per position to each token's vector::

    x (n, T, dim)  +  W[:T] (T, dim)  ->  out (n, T, dim)      W (max_len, dim)

(nanoGPT's ``tok_emb + wpe(arange(T))``: ``W[:T]`` broadcast over the batch.)

Backward, from ``dout`` (n, T, dim): the sum is linear in both terms, so ``dx = dout``
and ``dW[:T] = sum(dout, axis=0)`` (position t's vector took part once per sequence);
the rows ``dW[T:]`` of positions the batch did not reach are 0.

Initialization as nanoGPT: N(0, 0.02^2), or any initializer by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import positive_number
from zeronn.initializers import Initializer
from zeronn.layers.attention import GPT_STD, check_init, initial_weights
from zeronn.layers.base import BufferCache, Layer, Param, Shape

__all__ = ["PositionalEmbedding"]

_add_reduce = np.add.reduce


class PositionalEmbedding(Layer):
    """Adds a learned vector per position: x (n, T, dim) -> x + W[:T], T <= ``max_len``.

    ``max_len``: the most steps a sequence may have (nanoGPT's ``block_size``).
    ``dim``: the vectors' width; None takes the input's last axis.
    ``init``: the initial standard deviation (nanoGPT's 0.02), or an initializer name or
    callable ``(rng, max_len, dim, dtype)``.
    Parameter ``W`` (max_len, dim); gradient ``dW``.
    """

    kind = "positional_embedding"
    time_flexible = True
    param_names = ("W",)
    W = Param()
    _W: NDArray  # the live view (set by bind)
    dW: NDArray

    def __init__(self, max_len: int, dim: int | None = None,
                 init: str | Initializer | float = GPT_STD) -> None:
        self.max_len = positive_number("PositionalEmbedding max_len", max_len, integer=True)
        self.dim = (None if dim is None
                    else positive_number("PositionalEmbedding dim", dim, integer=True))
        self.init = check_init("PositionalEmbedding", init)
        self._cache: BufferCache[NDArray] | None = None
        self._out: NDArray | None = None

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(f"PositionalEmbedding takes sequences (n, T, dim), but its input "
                             f"has shape (n, {', '.join(map(str, input_shape))}): give the "
                             f"network input_shape=(T, dim) (or put an Embedding before it)")
        steps, width = input_shape
        if steps > self.max_len:
            raise ValueError(f"PositionalEmbedding(max_len={self.max_len}) has no vectors for "
                             f"the network's sequences of T={steps} steps: use "
                             f"PositionalEmbedding({steps}) or more, or sequences of at most "
                             f"{self.max_len} steps")
        if self.dim is not None and width != self.dim:
            raise ValueError(f"PositionalEmbedding(dim={self.dim}) gets inputs of {width} "
                             f"features: use dim={width} (or dim=None to take the input's)")
        super().build(input_shape, dtype)
        self.dim = int(width)
        self._cache = BufferCache(self._make_buffer)
        return self.output_shape

    def _make_buffer(self, n: int) -> NDArray:
        return np.empty((n, *self.input_shape), self.dtype)

    def param_shapes(self) -> list[Shape]:
        assert self.dim is not None
        return [(self.max_len, self.dim)]

    def initialize(self, rng: np.random.Generator) -> None:
        assert self.dim is not None
        self.W = initial_weights(self.init, rng, self.max_len, self.dim, self.dtype)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"max_len": self.max_len, "dim": self.dim}
        if isinstance(self.init, (str, float)) and self.init != GPT_STD:
            cfg["init"] = self.init
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._out = None

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, T, dim) -> x + W[:T] (a work buffer, valid until the next call)."""
        out = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        self._out = np.add(x, self._W[:x.shape[1]], out=out)
        return out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dout (n, T, dim) -> dL/dx = dout; sets dW[:T] = sum over the batch, dW[T:] = 0."""
        t = dout.shape[1]
        _add_reduce(dout, axis=0, out=self.dW[:t])
        self.dW[t:] = 0
        return dout if need_dx else None

    def infer(self, x: NDArray) -> NDArray:
        """x (n, T', dim) -> x + W[:T'] in a fresh array, for any T' <= max_len."""
        return x + self._W[:x.shape[1]]

    def __repr__(self) -> str:
        cfg = self.config()
        if not isinstance(self.init, (str, float)):
            cfg["init"] = getattr(self.init, "__name__", "custom")
        args = [str(cfg.pop("max_len"))] + [f"{k}={v!r}" for k, v in cfg.items()
                                            if v is not None]
        return f"PositionalEmbedding({', '.join(args)})"
