"""Word embedding: token ids -> rows of a weight matrix (the second from-scratch book's
``Embedding`` / ``TimeEmbedding``, ``torch.nn.Embedding``).

Forward picks rows: ``out[b, t] = W[ids[b, t]]``. Backward is the book's scatter: every
row ``W[k]`` gets the sum of the upstream gradients of the positions that picked it
(``dW[ids[b, t]] += dout[b, t]``; a repeated id adds up, it does not overwrite:
``sum_rows_by_id``). Ids are integers, so there is no gradient for the input: backward
returns ``None``. A recurrent layer right after it may pass back those sums themselves (a
``RowGradient``, see ``zeronn.layers.recurrent``).

``TiedDense`` is the output layer that reads the same matrix the other way round (weight
tying, as GPT-2 and nanoGPT's ``lm_head.weight = wte.weight``): ``z = x·W.T`` scores every
token of the vocabulary by its embedding. The one matrix then gets two gradients, the
head's (``delta.T·x``, written first: backward runs from the output) and the scatter's,
which the Embedding adds to it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from zeronn._fast import available as fast_available
from zeronn._validation import positive_number
from zeronn.activations import Activation as ActivationFunction
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers.base import BufferCache, Layer, Param, Shape
from zeronn.layers.dense import Dense

__all__ = ["Embedding", "RowGradient", "TiedDense", "sum_rows_by_id"]


def sum_rows_by_id(ids: NDArray, rows: NDArray, out: NDArray) -> NDArray:
    """``out[v]`` = the sum of ``rows[i]`` over the positions i whose id is v (0 for an id
    that does not occur): the book's scatter, ``dW[ids[i]] += rows[i]``, a repeated id
    adding up. ids (m,) integers in [0, V), rows (m, k), out (V, k) overwritten; returns out.

    With numba, one compiled pass (``zeronn._fast.embedding``); NumPy sorts the ids (stably)
    and adds each run of equal ids with one ``reduceat``: 2 to 5 times faster than
    ``np.add.at`` for vocabularies of 65 to 10 000 words. The two agree to rounding.
    """
    if fast_available():
        from zeronn._fast.embedding import kernels

        kernels().sum_rows_by_id(ids, rows, out)
        return out
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
    out.fill(0)
    if ids.size:
        out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


class RowGradient(np.ndarray):
    """dL/d(an Embedding's output), already summed by token id: a (vocab_size, dim) array
    whose row v is the sum of the gradients of the positions whose id is v.

    A layer whose input is an Embedding's output may return one from ``backward`` (as
    ``rows.view(RowGradient)``) instead of dL/dx (n, T, dim) when it forms the sums more
    cheaply than dL/dx itself: a recurrent layer does (``zeronn.layers.recurrent``: its
    input projection goes through the vocabulary). The Embedding's backward then has no
    scatter left to do. It is an array, so the layers' ``backward`` keeps its signature.
    """


class Embedding(Layer):
    """Token ids (n, T) -> vectors (n, T, dim).

    ``W`` (vocab_size, dim) is torch's ``Embedding.weight``; ``dW`` its gradient.
    ``init``: an initializer name or callable ``(rng, vocab_size, dim, dtype) -> W``;
    the default ``standard_normal`` is torch's N(0, 1).

    Ids may come as integers or as integer-valued floats (the network's float input);
    an id outside ``[0, vocab_size)`` raises ``ValueError``.
    """

    kind = "embedding"
    #: the network passes this layer's input through as integer ids
    input_kind: ClassVar[str] = "ids"
    time_flexible = True
    param_names = ("W",)
    W = Param()
    _W: NDArray
    dW: NDArray

    def __init__(self, vocab_size: int, dim: int,
                 init: str | Initializer = "standard_normal") -> None:
        self.vocab_size = positive_number("Embedding vocab_size", vocab_size, integer=True)
        self.dim = positive_number("Embedding dim", dim, integer=True)
        get_initializer(init)  # an unknown name fails here, not at build time
        self.init = init
        self._cache: BufferCache[NDArray] | None = None
        self._ids: NDArray | None = None
        self._out: NDArray | None = None
        self._sums: NDArray | None = None  # (vocab_size, dim) backward's sums by id
        #: True when a TiedDense also writes dW: backward then adds to it (see the module doc)
        self.tied = False

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) != 1:
            raise ValueError(
                f"Embedding takes token ids of shape (n, time), but its input has shape "
                f"(n, {', '.join(map(str, input_shape))}): give the network "
                f"input_shape=(time,) and pass integer ids, one row per sequence")
        super().build(input_shape, dtype)
        self.output_shape = (*self.input_shape, self.dim)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> NDArray:
        return np.empty((n, *self.output_shape), self.dtype)

    def param_shapes(self) -> list[Shape]:
        return [(self.vocab_size, self.dim)]

    def initialize(self, rng: np.random.Generator) -> None:
        self.W = get_initializer(self.init)(rng, self.vocab_size, self.dim, self.dtype)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"vocab_size": self.vocab_size, "dim": self.dim}
        if isinstance(self.init, str):  # a callable is not JSON (see Dense.config)
            cfg["init"] = self.init
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._ids = self._out = self._sums = None

    # -- computation -----------------------------------------------------------------
    def ids(self, x: Any) -> NDArray:
        """``x`` as an integer array of ids, checked against ``[0, vocab_size)``."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "iubf":
            raise ValueError(f"Embedding takes integer token ids, got an array of "
                             f"{arr.dtype}: encode tokens as integers first")
        if arr.dtype.kind == "f":
            whole = np.isfinite(arr) & (arr == np.trunc(arr))
            if not whole.all():
                raise ValueError(f"Embedding takes integer token ids, got "
                                 f"{float(arr[~whole][0])}: pass whole numbers")
        if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
            bad_id = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise ValueError(f"token id {bad_id} is outside the vocabulary [0, "
                             f"{self.vocab_size}): build Embedding with a vocab_size above "
                             f"the largest id, or map unknown tokens to an id of their own")
        ids: NDArray = arr.astype(np.intp, copy=False)
        return ids

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """ids (n, T) -> out (n, T, dim): ``out[b, t] = W[ids[b, t]]``."""
        ids = self.ids(x)
        out = self._cache.fetch(ids.shape[0])  # type: ignore[union-attr]
        np.take(self._W, ids, axis=0, out=out)
        self._ids, self._out = ids, out
        return out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dout (n, T, dim) -> ``dW[k] = sum of dout where ids == k`` (``sum_rows_by_id``),
        or a ``RowGradient`` holding those sums already; returns None (no dx)."""
        ids = self._ids
        if ids is None:
            raise ValueError("backward() needs a forward() first")
        sums: NDArray
        if isinstance(dout, RowGradient):
            sums = dout
        else:
            if self._sums is None or self._sums.dtype != self.dW.dtype:
                self._sums = np.empty_like(self.dW)
            sums = sum_rows_by_id(ids.reshape(-1), dout.reshape(-1, self.dim), self._sums)
        if self.tied:  # the head's gradient is already there: add to it
            self.dW += sums
        else:
            np.copyto(self.dW, sums)
        return None

    @property
    def last_ids(self) -> NDArray | None:
        """The ids (n, T) of the last forward pass (integers), None before one."""
        return self._ids

    def infer(self, x: NDArray) -> NDArray:
        return self._W[self.ids(x)]

    def __repr__(self) -> str:
        cfg = self.config()
        init = cfg.get("init", getattr(self.init, "__name__", "custom"))
        extra = "" if init == "standard_normal" else f", init={init!r}"
        return f"Embedding({self.vocab_size}, {self.dim}{extra})"


class TiedDense(Dense):
    """The output layer tied to the network's Embedding: x (n, T, dim) -> (n, T, vocab_size),
    ``z = x·W.T`` with the Embedding's ``W`` (vocab_size, dim), then ``activation``.

    It has no parameters of its own (GPT-2's and nanoGPT's ``lm_head`` shares ``wte``'s
    weight): the network links it to its first Embedding layer, whose ``W`` gets both
    gradients. ``units`` must be that Embedding's ``vocab_size`` and the input's features its
    ``dim``. No bias, as nanoGPT's ``lm_head``.
    """

    kind = "tied_dense"
    no_decay = ()

    def __init__(self, units: int, activation: str | ActivationFunction | None = None) -> None:
        super().__init__(units, activation=activation, use_bias=False)
        self.param_names = ()  # type: ignore[misc]
        self._embedding: Embedding | None = None

    def param_shapes(self) -> list[Shape]:
        return []  # the weights are the Embedding's

    def initialize(self, rng: np.random.Generator) -> None:
        """Nothing to draw: the weights are the Embedding's."""

    def link(self, layers: list[Layer]) -> None:
        embedding = next((layer for layer in layers if isinstance(layer, Embedding)), None)
        if embedding is None:
            raise ValueError("TiedDense reads the weights of the network's Embedding, but the "
                             "network has none: put an Embedding first, or use Dense")
        if (embedding.vocab_size, embedding.dim) != (self.units, self.fan_in):
            raise ValueError(f"TiedDense({self.units}) on {self.fan_in} features cannot share "
                             f"the weights of Embedding({embedding.vocab_size}, "
                             f"{embedding.dim}): give it units={embedding.vocab_size} and "
                             f"inputs of {embedding.dim} features")
        embedding.tied = True
        self._embedding = embedding
        self._W = embedding._W.T  # (dim, vocab): Dense's forward reads x·_W

    @property
    def W(self) -> NDArray:
        """The Embedding's weights, transposed (dim, vocab_size): a read-only view here."""
        view = self._W.view()
        view.flags.writeable = False
        return view

    def _backward_rows(self, delta: NDArray, buf: Any, x: NDArray,
                       need_dx: bool) -> NDArray | None:
        assert self._embedding is not None
        # The Embedding's dW in its own (vocab, dim) layout; written, not added: this layer's
        # backward comes first, and the Embedding's adds the scatter to it.
        np.dot(delta.T, x, out=self._embedding.dW)
        if not need_dx:
            return None
        if buf.dx is None:
            buf.dx = np.empty((delta.shape[0], self.fan_in), self.dtype)
        return np.dot(delta, self._embedding._W, out=buf.dx)

    def config(self) -> dict[str, Any]:
        return {"units": self.units, "activation": self.activation.name}

    def __repr__(self) -> str:
        act = self.activation.name
        return f"TiedDense({self.units}{'' if act == 'identity' else f', activation={act!r}'})"
