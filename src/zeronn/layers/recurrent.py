"""Recurrent layers over (n, T, D) sequences: RNN, LSTM, GRU (the second from-scratch
book's ``TimeRNN``/``TimeLSTM``, with backpropagation through time), in PyTorch's layout.

Each layer holds ``weight_ih`` (G·H, D), ``weight_hh`` (G·H, H), ``bias_ih`` and
``bias_hh`` (G·H,) with G gate blocks of H units each, stacked in torch's order
(``torch.nn.RNN``/``LSTM``/``GRU``, ``batch_first=True``: copy the weights across as they
are). The book writes ``x·Wx + h·Wh + b`` with Wx (D, G·H); here ``Wx = weight_ih.T``.

Forward, in the book's shape but with the input's part of every step in one product:

    A = x·weight_ih.T + bias          (all T steps at once: (n·T, D) @ (D, G·H))
    for t in 0..T-1:  A[t] += h[t-1]·weight_hh.T;  h[t] = step(A[t], h[t-1], ...)

keeping every step's gate values for backward. Backward runs the steps in reverse
(backpropagation through time), each turning dL/dh[t] into dL/dA[t] and
``dL/dh[t-1] = dA[t]·weight_hh``; the weight gradients are then one product each over
all steps (``dW_hh = sum_t dA[t].T·h[t-1]``, ``dW_ih = sum_t dA[t].T·x[t]``) and
``dx = dA·weight_ih``.

Right after an Embedding (x = E[ids], E its (V, D) weights), the input's part goes
through the vocabulary when V is at most half the batch's n·T tokens (a character
model's 65 against 2,048): ``x·Wx + b = (E·Wx + b)[ids]``, a (V, G·H) table and a
gather of its rows, and backward sums dA by id first, ``S[v] = sum of dA where ids == v``,
so that ``dW_ih = S.T·E`` and the Embedding's gradient is ``S·Wx`` (a ``RowGradient``):
products over V rows instead of n·T. The same numbers to rounding (sums in another
order); without numba, whose kernel makes the sum by id cheap, backward keeps the
products.

Inside, sequences are kept time-major, (T, n, ·), so each step's rows are one
contiguous block; the work arrays are allocated once per batch size. With numba the
LSTM's steps run as compiled loops (``zeronn._fast.recurrent``; ``ZERONN_NO_FAST=1``
keeps NumPy's, the reference).

State: every forward pass starts from h = 0 (and c = 0), unless ``stateful=True``: then
a *training* forward pass starts from the state the previous training pass ended in
(truncated BPTT: the gradient does not flow back into the previous batch). The state
is reset to zeros by ``reset_state()``, and when the batch size changes. Evaluation
(``forward(training=False)``, ``infer``, ``predict``) always starts from zeros and never
moves the state. The state is not saved in model files.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from zeronn._fast import available as fast_available
from zeronn._validation import flag, positive_number
from zeronn.activations import get_activation
from zeronn.layers.base import BufferCache, Layer, Param, Shape
from zeronn.layers.composite import walk
from zeronn.layers.embedding import Embedding, RowGradient, sum_rows_by_id

__all__ = ["GRU", "LSTM", "RNN", "Recurrent"]

_SIGMOID = get_activation("sigmoid").forward  # stable for any input
_TANH = get_activation("tanh").forward


def fast_kernels() -> Any:
    """zeronn._fast.recurrent's compiled LSTM steps (forward and backward) when numba is
    installed and not switched off (``ZERONN_NO_FAST=1``), else None: the NumPy loops
    below."""
    if not fast_available():
        return None
    from zeronn._fast.recurrent import kernels

    return kernels()


class _Work:
    """The work arrays of one batch size, time-major (set by ``_make_buffers``; backward's
    on its first call; the subclass's own in ``_extra_buffers``)."""

    xs: NDArray       # (T, n, D) the input
    a: NDArray        # (T, n, G·H) A[t]: the gates' pre-activations, then their values
    hs: NDArray       # (T + 1, n, H) the initial state h[-1], then h[0] .. h[T-1]
    hw: NDArray       # (n, G·H) one step's h[t-1]·Wh
    wh: NDArray       # (H, G·H) Wh = weight_hh.T, copied contiguous for each forward pass
    tmp: NDArray      # (n, H) scratch
    tmp2: NDArray
    out: NDArray | None  # (n, T, H) the output sequence (return_sequences)
    cs: NDArray       # LSTM: (T + 1, n, H) c[-1], c[0] .. c[T-1]
    tanh_c: NDArray   # LSTM: (T, n, H) tanh(c[t])
    wh4: NDArray      # LSTM, compiled: (4, H, H) each gate's block of Wh
    hw4: NDArray      # LSTM, compiled: (4, n, H) one step's h[t-1]·Wh, gate by gate
    hh: NDArray       # GRU: (T, n, 3H) h[t-1]·Wh + bias_hh
    ids: NDArray | None  # (T, n) the token ids of a forward pass through the vocabulary
    source: Embedding | None  # the Embedding those ids went through
    back: bool        # backward's arrays made
    da: NDArray       # (T, n, G·H) dL/dA[t] (the input side)
    da_hid: NDArray   # GRU: (T, n, 3H) dL/dA[t] of the hidden side
    dh: NDArray       # (n, H) dL/dh[t], carried back one step at a time
    dc: NDArray       # LSTM: (n, H) dL/dc[t]
    dhs: NDArray | None  # (T, n, H) dL/d(output sequence), time-major
    dxs: NDArray      # (T, n, D) dL/dx, time-major
    dx: NDArray       # (n, T, D) dL/dx


class Recurrent(Layer):
    """What RNN, LSTM and GRU share: parameters, buffers, state, the GEMMs around the loop.

    A subclass sets ``gates`` (G) and writes ``_steps`` (the forward loop over time) and
    ``_steps_back`` (the reverse loop), plus ``_extra_buffers`` for its own caches.
    """

    gates: ClassVar[int] = 1
    time_flexible = True  # prediction: any number of steps up to the built T
    no_decay = ("bias_ih", "bias_hh")
    #: the hidden state arrays carried by stateful layers ("h", and "c" for LSTM)
    carried: ClassVar[tuple[str, ...]] = ("h",)
    weight_ih = Param()
    weight_hh = Param()
    bias_ih = Param()
    bias_hh = Param()
    _weight_ih: NDArray  # the live views (set by bind)
    _weight_hh: NDArray
    _bias_ih: NDArray
    _bias_hh: NDArray
    dweight_ih: NDArray
    dweight_hh: NDArray
    dbias_ih: NDArray
    dbias_hh: NDArray

    def __init__(self, units: int, return_sequences: bool = False, stateful: bool = False,
                 use_bias: bool = True) -> None:
        name = type(self).__name__
        self.units = positive_number(f"{name} units", units, integer=True)
        self.return_sequences = flag(f"{name} return_sequences", return_sequences)
        self.stateful = flag(f"{name} stateful", stateful)
        self.use_bias = flag(f"{name} use_bias", use_bias)
        self.param_names = (  # type: ignore[misc]
            ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.use_bias
            else ("weight_ih", "weight_hh"))
        self._cache: BufferCache[_Work] | None = None
        self._buf: _Work | None = None
        self._out: NDArray | None = None
        self._state: dict[str, NDArray] | None = None
        self._embeddings: list[Embedding] = []  # the network's, set by link()
        self._vocab: dict[str, NDArray] = {}   # (V, ·) arrays of the vocabulary route

    # -- structure -------------------------------------------------------------------
    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} takes sequences (n, time, features), but its input "
                f"has shape (n, {', '.join(map(str, input_shape))}): give the network "
                f"input_shape=(time, features) (one feature per step: X.reshape(n, time, 1))")
        super().build(input_shape, dtype)
        T = self.input_shape[0]
        self.output_shape = (T, self.units) if self.return_sequences else (self.units,)
        self._cache = BufferCache(self._make_buffers)
        self._buf = self._out = self._state = None
        self._vocab = {}
        return self.output_shape

    def link(self, layers: list[Layer]) -> None:
        """Notes the network's Embedding layers: an input that is one's output goes through
        the vocabulary (``_input_projection``)."""
        self._embeddings = [layer for _, layer in walk(layers) if isinstance(layer, Embedding)]

    def param_shapes(self) -> list[Shape]:
        gh, d = self.gates * self.units, self.input_shape[1]
        shapes: list[Shape] = [(gh, d), (gh, self.units)]
        return [*shapes, (gh,), (gh,)] if self.use_bias else shapes

    def initialize(self, rng: np.random.Generator) -> None:
        # torch: every weight and bias from U(-1/sqrt(H), 1/sqrt(H)).
        bound = 1.0 / np.sqrt(self.units)
        for p in self.params:
            p[...] = rng.uniform(-bound, bound, p.shape).astype(self.dtype, copy=False)
        self._state = None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"units": self.units}
        for option in ("return_sequences", "stateful"):
            if getattr(self, option):
                cfg[option] = True
        if not self.use_bias:
            cfg["use_bias"] = False
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._buf = self._out = None
        self._vocab = {}

    def reset_state(self) -> None:
        """Forgets the carried state: the next training pass starts from zeros again."""
        self._state = None

    @property
    def state_h(self) -> NDArray | None:
        """The carried hidden state (n, H) of a stateful layer (None: zeros)."""
        return None if self._state is None else self._state["h"]

    def _make_buffers(self, n: int, steps: int | None = None) -> _Work:
        """The work arrays of n sequences of ``steps`` steps (default: the built T)."""
        T, D = self.input_shape
        T = T if steps is None else steps
        H, gh, dt = self.units, self.gates * self.units, self.dtype
        w = _Work()
        w.xs = np.empty((T, n, D), dt)
        w.a = np.empty((T, n, gh), dt)
        w.hs = np.empty((T + 1, n, H), dt)
        w.hw = np.empty((n, gh), dt)
        w.wh = np.empty((H, gh), dt)
        w.tmp = np.empty((n, H), dt)
        w.tmp2 = np.empty((n, H), dt)
        w.out = np.empty((n, T, H), dt) if self.return_sequences else None
        w.ids = w.source = None
        w.back = False
        self._extra_buffers(w, n, T)
        return w

    def _make_back_buffers(self, w: _Work, n: int) -> None:
        T, D = self.input_shape
        H, gh, dt = self.units, self.gates * self.units, self.dtype
        w.da = np.empty((T, n, gh), dt)
        w.dh = np.empty((n, H), dt)
        w.dhs = np.empty((T, n, H), dt) if self.return_sequences else None
        w.dxs = np.empty((T, n, D), dt)
        w.dx = np.empty((n, T, D), dt)
        w.back = True
        self._extra_back_buffers(w, n)

    def _extra_buffers(self, w: _Work, n: int, T: int) -> None:
        """The subclass's own forward caches (for T steps)."""

    def _extra_back_buffers(self, w: _Work, n: int) -> None:
        """The subclass's own backward arrays."""

    def _input_bias(self) -> NDArray:
        """The bias added to the input projection (RNN, LSTM: both biases; GRU: bias_ih)."""
        return self._bias_ih + self._bias_hh

    # -- computation -----------------------------------------------------------------
    def _check_input(self, x: NDArray, any_length: bool = False) -> None:
        T, D = self.input_shape
        if x.ndim != 3 or x.shape[2] != D or not (
                x.shape[1] == T or (any_length and 1 <= x.shape[1] <= T)):
            raise ValueError(f"{type(self).__name__} input has shape {x.shape}, expected "
                             f"(n, {T}, {D}) (batch, time, features)")

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, T, D) -> (n, T, H) with ``return_sequences``, else (n, H) (the last h)."""
        self._check_input(x)
        n, T = x.shape[:2]
        w = self._cache.fetch(n)  # type: ignore[union-attr]
        np.copyto(w.xs, x.transpose(1, 0, 2))
        self._input_projection(x, w)
        carry = self.stateful and training
        state = self._state if carry else None
        if state is not None and state["h"].shape[0] != n:
            state = None  # a new batch size: a new set of sequences
        for name in self.carried:
            first = getattr(w, name + "s")[0]
            if state is None:
                first.fill(0)
            else:
                first[...] = state[name]
        self._steps(w, T)
        if carry:
            self._state = {name: getattr(w, name + "s")[T].copy() for name in self.carried}
        self._buf = w
        if w.out is None:  # not return_sequences: the last h only
            self._out = w.hs[T]
        else:
            np.copyto(w.out, w.hs[1:].transpose(1, 0, 2))
            self._out = w.out
        return self._out

    def _source(self, x: NDArray) -> Embedding | None:
        """The Embedding whose output ``x`` is, when its vocabulary is at most half the
        batch's n·T tokens (the table below is then the cheaper route), else None."""
        for emb in self._embeddings:
            ids = emb.last_ids
            if ids is not None and x is emb.output and 2 * emb.vocab_size <= ids.size:
                return emb
        return None

    def _input_projection(self, x: NDArray, w: _Work) -> None:
        """A = x·Wx + b for every step at once, time-major, into ``w.a``: one (n·T, D) @
        (D, G·H) product; or, when x is an Embedding's output E[ids], through the
        vocabulary: ``x·Wx + b = (E·Wx + b)[ids]``, a (V, D) @ (D, G·H) table and a
        gather of its rows (a character model: V=65 rows against n·T=2048, 3.3x faster).
        Backward then sums dA by id (``_input_gradients``)."""
        n, T, D = x.shape
        gh = self.gates * self.units
        emb = self._source(x)
        w.source = emb
        if emb is None:
            w.ids = None
            np.dot(w.xs.reshape(T * n, D), self._weight_ih.T, out=w.a.reshape(T * n, gh))
            if self.use_bias:
                w.a += self._input_bias()
            return
        table = self._vocab_array("table", emb.vocab_size, gh)
        np.dot(emb.W, self._weight_ih.T, out=table)
        if self.use_bias:
            table += self._input_bias()
        assert emb.last_ids is not None
        w.ids = np.ascontiguousarray(emb.last_ids.T)  # (T, n), time-major as w.a
        np.take(table, w.ids, axis=0, out=w.a)

    def _vocab_array(self, name: str, vocab: int, width: int) -> NDArray:
        arr = self._vocab.get(name)
        if arr is None or arr.shape != (vocab, width) or arr.dtype != self.dtype:
            arr = self._vocab[name] = np.empty((vocab, width), self.dtype)
        return arr

    def _input_gradients(self, w: _Work, da_in: NDArray, need_dx: bool) -> NDArray | None:
        """dWx, the input side's bias gradient, and dL/dx from dA (T, n, G·H).

        From an Embedding's output, with the compiled kernels: dA's rows summed by token
        id first, ``S[v] = sum of dA where ids == v`` (V, G·H); then ``dWx = S.T·E``,
        ``db = sum_v S[v]`` and, for the Embedding, its rows' gradient ``S·Wx`` (V, D) as a
        ``RowGradient``: two (V, ·) products instead of two (n·T, ·) ones and the
        Embedding's own scatter. (NumPy's sum by id sorts a copy of dA: slower than the
        products it saves, so without the kernels the products run.)"""
        T, D = self.input_shape
        n, gh = da_in.shape[1], self.gates * self.units
        rows = da_in.reshape(T * n, gh)
        emb = w.source
        if emb is None or w.ids is None or fast_kernels() is None:
            np.dot(rows.T, w.xs.reshape(T * n, D), out=self.dweight_ih)
            if self.use_bias:
                np.add.reduce(rows, axis=0, out=self.dbias_ih)
            if not need_dx:
                return None
            np.dot(rows, self._weight_ih, out=w.dxs.reshape(T * n, D))
            np.copyto(w.dx, w.dxs.transpose(1, 0, 2))
            return w.dx
        sums = sum_rows_by_id(w.ids.reshape(-1), rows,
                              self._vocab_array("sums", emb.vocab_size, gh))
        np.dot(sums.T, emb.W, out=self.dweight_ih)
        if self.use_bias:
            np.add.reduce(sums, axis=0, out=self.dbias_ih)
        if not need_dx:
            return None
        drows = self._vocab_array("drows", emb.vocab_size, D)
        np.dot(sums, self._weight_ih, out=drows)
        return drows.view(RowGradient)

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/d(output) -> dL/dx (n, T, D), or a ``RowGradient`` for the Embedding whose
        output the input was; writes every parameter gradient (BPTT)."""
        w = self._buf
        if w is None:
            raise ValueError("backward() needs a forward() first")
        if not w.back:
            self._make_back_buffers(w, dout.shape[0])
        T = self.input_shape[0]
        n, H, gh = dout.shape[0], self.units, self.gates * self.units
        if w.dhs is not None:  # return_sequences: every step's h is an output
            np.copyto(w.dhs, dout.transpose(1, 0, 2))
            w.dh.fill(0)
        else:
            np.copyto(w.dh, dout)  # only the last step's h is an output
        da_in, da_hid = self._steps_back(w, T)
        # One product each over all steps: dWh = sum_t h[t-1].T·dA[t], dWx = sum_t x[t].T·dA[t].
        np.dot(da_hid.reshape(T * n, gh).T, w.hs[:T].reshape(T * n, H), out=self.dweight_hh)
        dx = self._input_gradients(w, da_in, need_dx)
        if self.use_bias:
            if da_hid is da_in:  # RNN, LSTM: both biases have the same gradient
                np.copyto(self.dbias_hh, self.dbias_ih)
            else:
                np.add.reduce(da_hid.reshape(T * n, gh), axis=0, out=self.dbias_hh)
        return dx

    def _hidden_weights(self, w: _Work) -> NDArray:
        """Wh = weight_hh.T (H, G·H) as a contiguous copy: OpenBLAS's step product
        h·Wh runs 15-20% faster from it than from the transposed view (measured at
        n=64, H=128, float32), and the copy is one pass per forward, not per step."""
        np.copyto(w.wh, self._weight_hh.T)
        return w.wh

    def _steps(self, w: _Work, T: int) -> None:
        raise NotImplementedError

    def _steps_back(self, w: _Work, T: int) -> tuple[NDArray, NDArray]:
        """The reverse loop: fills dL/dA of the input side and of the hidden side (the same
        array except in GRU) and returns them, each (T, n, G·H)."""
        raise NotImplementedError

    def infer(self, x: NDArray) -> NDArray:
        """Evaluation from a zero state, in fresh arrays (the layer's buffers untouched);
        the sequence may be shorter than the built T (prediction on a shorter context)."""
        self._check_input(x, any_length=True)
        n, T, D = x.shape
        w = self._make_buffers(n, T)
        np.copyto(w.xs, x.transpose(1, 0, 2))
        np.dot(w.xs.reshape(T * n, D), self._weight_ih.T, out=w.a.reshape(T * n, -1))
        if self.use_bias:
            w.a += self._input_bias()
        for name in self.carried:
            getattr(w, name + "s")[0].fill(0)
        self._steps(w, T)
        if not self.return_sequences:
            return w.hs[T]
        return np.ascontiguousarray(w.hs[1:].transpose(1, 0, 2))


class RNN(Recurrent):
    """Elman RNN (the book's ``RNN``/``TimeRNN``, ``torch.nn.RNN``):
    ``h[t] = f(x[t]·Wx + h[t-1]·Wh + b)`` with f = ``activation`` ("tanh" or "relu",
    torch's ``nonlinearity``). x (n, T, D) -> (n, T, H) or (n, H)."""

    kind = "rnn"
    gates = 1

    def __init__(self, units: int, activation: str = "tanh", return_sequences: bool = False,
                 stateful: bool = False, use_bias: bool = True) -> None:
        if activation not in ("tanh", "relu"):
            raise ValueError(f"RNN activation must be 'tanh' or 'relu' (as torch's "
                             f"nonlinearity), got {activation!r}")
        super().__init__(units, return_sequences, stateful, use_bias)
        self.activation_name = activation
        self._act = get_activation(activation)

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.activation_name != "tanh":
            cfg = {"units": cfg.pop("units"), "activation": self.activation_name, **cfg}
        return cfg

    def _steps(self, w: _Work, T: int) -> None:
        Wh, a, hs, hw, f = self._hidden_weights(w), w.a, w.hs, w.hw, self._act.forward
        for t in range(T):
            np.dot(hs[t], Wh, out=hw)          # h[t-1]·Wh
            np.add(a[t], hw, out=hs[t + 1])
            f(hs[t + 1], hs[t + 1])            # h[t] = f(A[t])

    def _steps_back(self, w: _Work, T: int) -> tuple[NDArray, NDArray]:
        Wh, hs, da, dh, dhs = self._weight_hh, w.hs, w.da, w.dh, w.dhs
        back = self._act.backward
        for t in range(T - 1, -1, -1):
            if dhs is not None:
                dh += dhs[t]                   # from the output at t and from step t + 1
            np.copyto(da[t], dh)
            back(da[t], None, hs[t + 1], w.tmp)  # dA = dh * f'(A): (1 - h^2), or (h > 0)
            np.dot(da[t], Wh, out=dh)          # dh[t-1] = dA·Wh.T (weight_hh = Wh.T)
        return da, da


class LSTM(Recurrent):
    """Long short-term memory (the book's ``LSTM``/``TimeLSTM``, ``torch.nn.LSTM``).

    Gates in torch's order i, f, g, o (the book's is f, g, i, o)::

        A = x·Wx + h[t-1]·Wh + b;  i, f, o = sigmoid(A_i, A_f, A_o);  g = tanh(A_g)
        c[t] = f * c[t-1] + g * i;  h[t] = o * tanh(c[t])

    x (n, T, D) -> (n, T, H) or (n, H). Stateful layers carry h and c.
    """

    kind = "lstm"
    gates = 4
    carried = ("h", "c")

    @property
    def state_c(self) -> NDArray | None:
        """The carried cell state (n, H) of a stateful layer (None: zeros)."""
        return None if self._state is None else self._state["c"]

    def _extra_buffers(self, w: _Work, n: int, T: int) -> None:
        H = self.units
        w.cs = np.empty((T + 1, n, H), self.dtype)
        w.tanh_c = np.empty((T, n, H), self.dtype)
        w.wh4 = np.empty((4, H, H), self.dtype)
        w.hw4 = np.empty((4, n, H), self.dtype)

    def _extra_back_buffers(self, w: _Work, n: int) -> None:
        w.dc = np.empty((n, self.units), self.dtype)

    def _steps(self, w: _Work, T: int) -> None:
        H = self.units
        a, hs, cs, tanh_c = w.a, w.hs, w.cs, w.tanh_c
        fast = fast_kernels()
        if fast is not None:  # the same formulas as one compiled loop (exp/tanh to ~1 ulp)
            # h·Wh one gate at a time, h (n, H) @ Wh_k (H, H) into hw4[k]: OpenBLAS runs
            # the four (H, H) products in 38 us against 55 for one (H, 4H) (n=32, H=128,
            # float32, 1 thread; the same numbers). The kernel reads the gate blocks apart.
            wh4, hw4 = w.wh4, w.hw4
            np.copyto(wh4, self._weight_hh.reshape(4, H, H).transpose(0, 2, 1))
            for t in range(T):
                np.matmul(hs[t], wh4, out=hw4)
                fast.lstm_step(a[t], hw4, cs[t], cs[t + 1], tanh_c[t], hs[t + 1])
            return
        Wh, hw, tmp = self._hidden_weights(w), w.hw, w.tmp
        for t in range(T):
            at = a[t]
            np.dot(hs[t], Wh, out=hw)
            at += hw                                     # A = x·Wx + h·Wh + b
            # g = tanh(A_g) aside, then one sigmoid over the whole row (i, f, o and the
            # discarded g): a pass over contiguous memory is ~1.8x faster than the three
            # column blocks' strided views, even with the g block's wasted quarter.
            _TANH(at[:, 2 * H:3 * H], tmp)
            _SIGMOID(at, at)                             # i, f, o
            np.copyto(at[:, 2 * H:3 * H], tmp)           # g
            i, f, g, o = at[:, :H], at[:, H:2 * H], at[:, 2 * H:3 * H], at[:, 3 * H:]
            c = cs[t + 1]
            np.multiply(f, cs[t], out=c)                 # c = f * c_prev + g * i
            np.multiply(g, i, out=tmp)
            c += tmp
            np.tanh(c, out=tanh_c[t])
            np.multiply(o, tanh_c[t], out=hs[t + 1])     # h = o * tanh(c)

    def _steps_back(self, w: _Work, T: int) -> tuple[NDArray, NDArray]:
        H = self.units
        Wh, a, cs, tanh_c, da = self._weight_hh, w.a, w.cs, w.tanh_c, w.da
        dh, dc, dhs, tmp, tmp2 = w.dh, w.dc, w.dhs, w.tmp, w.tmp2
        dc.fill(0)
        fast = fast_kernels()
        if fast is not None:  # the same formulas, term for term, as one compiled loop
            one = self.dtype.type(1)
            for t in range(T - 1, -1, -1):
                fast.lstm_step_back(a[t], tanh_c[t], cs[t], dh,
                                    dh if dhs is None else dhs[t], dhs is not None, dc,
                                    da[t], one)
                np.dot(da[t], Wh, out=dh)
            return da, da
        for t in range(T - 1, -1, -1):
            if dhs is not None:
                dh += dhs[t]
            at, dat = a[t], da[t]
            i, f, g, o = at[:, :H], at[:, H:2 * H], at[:, 2 * H:3 * H], at[:, 3 * H:]
            di, df, dg, do = dat[:, :H], dat[:, H:2 * H], dat[:, 2 * H:3 * H], dat[:, 3 * H:]
            tc = tanh_c[t]
            # ds = dc_next + (dh * o) * (1 - tanh(c)^2)
            np.multiply(tc, tc, out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            dc += tmp                                    # dc now holds ds
            # do = dh * tanh(c), through the sigmoid: * o * (1 - o)
            np.multiply(dh, tc, out=do)
            np.subtract(1, o, out=tmp)
            tmp *= o
            do *= tmp
            # di = ds * g * i (1 - i);  df = ds * c_prev * f (1 - f);  dg = ds * i * (1 - g^2)
            np.multiply(dc, g, out=di)
            np.subtract(1, i, out=tmp)
            tmp *= i
            di *= tmp
            np.multiply(dc, cs[t], out=df)
            np.subtract(1, f, out=tmp)
            tmp *= f
            df *= tmp
            np.multiply(g, g, out=tmp2)
            np.subtract(1, tmp2, out=tmp2)
            np.multiply(dc, i, out=dg)
            dg *= tmp2
            dc *= f                                      # dc_prev = ds * f
            np.dot(dat, Wh, out=dh)                      # dh_prev = dA·Wh.T
        return da, da


class GRU(Recurrent):
    """Gated recurrent unit (``torch.nn.GRU``), gates in torch's order r, z, n::

        r = sigmoid(x·Wx_r + b_ir + h·Wh_r + b_hr)     z = sigmoid(... the same with _z)
        n = tanh(x·Wx_n + b_in + r * (h·Wh_n + b_hn))  (torch puts the reset gate here)
        h[t] = (1 - z) * n + z * h[t-1]

    Because ``b_hn`` sits inside ``r * (...)``, the hidden side's product
    ``h·Wh + bias_hh`` is kept per step, and the hidden side's dL/dA differs from the
    input side's in its n block. x (n, T, D) -> (n, T, H) or (n, H).
    """

    kind = "gru"
    gates = 3

    def _input_bias(self) -> NDArray:
        return self._bias_ih

    def _extra_buffers(self, w: _Work, n: int, T: int) -> None:
        H = self.units
        w.hh = np.empty((T, n, 3 * H), self.dtype)

    def _extra_back_buffers(self, w: _Work, n: int) -> None:
        T, H = self.input_shape[0], self.units
        w.da_hid = np.empty((T, n, 3 * H), self.dtype)

    def _steps(self, w: _Work, T: int) -> None:
        H = self.units
        Wh, a, hs, hh, tmp = self._hidden_weights(w), w.a, w.hs, w.hh, w.tmp
        for t in range(T):
            at, ht = a[t], hh[t]
            np.dot(hs[t], Wh, out=ht)
            if self.use_bias:
                ht += self._bias_hh
            rz = at[:, :2 * H]
            rz += ht[:, :2 * H]
            _SIGMOID(rz, rz)                             # r, z
            r, z, nn = at[:, :H], at[:, H:2 * H], at[:, 2 * H:]
            np.multiply(r, ht[:, 2 * H:], out=tmp)
            nn += tmp
            _TANH(nn, nn)                                # n = tanh(... + r * (h·Wh_n + b_hn))
            np.subtract(hs[t], nn, out=tmp)              # h = n + z * (h_prev - n)
            tmp *= z
            np.add(nn, tmp, out=hs[t + 1])

    def _steps_back(self, w: _Work, T: int) -> tuple[NDArray, NDArray]:
        H = self.units
        Wh, a, hs, hh, da, da_hid = self._weight_hh, w.a, w.hs, w.hh, w.da, w.da_hid
        dh, dhs, tmp, tmp2 = w.dh, w.dhs, w.tmp, w.tmp2
        for t in range(T - 1, -1, -1):
            if dhs is not None:
                dh += dhs[t]
            at, dat, dht = a[t], da[t], da_hid[t]
            r, z, nn = at[:, :H], at[:, H:2 * H], at[:, 2 * H:]
            dr, dz, dn = dat[:, :H], dat[:, H:2 * H], dat[:, 2 * H:]
            # dA_n = dh * (1 - z) * (1 - n^2)
            np.subtract(1, z, out=dn)
            dn *= dh
            np.multiply(nn, nn, out=tmp)
            np.subtract(1, tmp, out=tmp)
            dn *= tmp
            # dA_z = dh * (h_prev - n) * z (1 - z)
            np.subtract(hs[t], nn, out=dz)
            dz *= dh
            np.subtract(1, z, out=tmp)
            tmp *= z
            dz *= tmp
            # dA_r = dA_n * (h·Wh_n + b_hn) * r (1 - r)
            np.multiply(dn, hh[t][:, 2 * H:], out=dr)
            np.subtract(1, r, out=tmp)
            tmp *= r
            dr *= tmp
            # The hidden side: the same r and z blocks, and dA_n * r for the n block.
            dht[:, :2 * H] = dat[:, :2 * H]
            np.multiply(dn, r, out=dht[:, 2 * H:])
            np.multiply(dh, z, out=tmp2)                 # dh_prev = dh * z + dA_hid·Wh.T
            np.dot(dht, Wh, out=dh)
            dh += tmp2
        return da, da_hid
