"""The network: layers chained over one flat parameter buffer (no training here).

All parameters live in one contiguous array (``W1, b1, W2, b2, ...`` back to back, each
layer's in its ``param_names`` order) and all gradients in another, so optimizers update
everything with a few vectorised calls, while ``net.params`` still hands out the familiar
per-layer arrays (views into it). ``forward`` runs the layers keeping what ``backward``
needs; ``backward`` runs them in reverse, filling ``net.grads``. ``loss_grad`` is the
training step's forward, loss and backward pass on a checked batch; the fit loop
(``zeronn.training``) calls it and updates the flat buffer.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from zeronn._validation import (
    as_float_array,
    check_finite,
    check_sample_weight,
    check_X,
    check_y,
    normalized_weights,
    positive_number,
    resolve_dtype,
)
from zeronn.activations import IDENTITY
from zeronn.layers import LAYERS
from zeronn.layers.base import BufferCache, Layer, Shape, check_new_layers
from zeronn.layers.composite import walk
from zeronn.layers.dense import Dense
from zeronn.losses import IGNORE_INDEX, Loss, get_loss

if TYPE_CHECKING:
    from zeronn.history import History
    from zeronn.optim import Optimizer

__all__ = ["PREDICT_CHUNK", "Network"]

PREDICT_CHUNK = 4096  # rows per forward pass in predict(): bounds the memory of a big X
# Output activations that are paired with a cross-entropy, never a regression loss.
_CLASSIFICATION_OUTPUTS = {"sigmoid": "binary_crossentropy", "softmax": "categorical_crossentropy"}


class Network:
    """Layers chained over one flat parameter buffer.

    Parameters
    ----------
    layers : the layers, in order (each used in one network only).
    input_dim : the number of input features (inputs (n, input_dim)), or
    input_shape : the shape of one input without the batch axis, e.g. ``(C, H, W)``.
    dtype : ``"float64"`` (default) or ``"float32"``; kept end to end.
    seed : seeds the network's own ``np.random.Generator``: initialisation, and the
        shuffling and dropout masks of ``fit`` calls that pass no seed of their own.
    """

    def __init__(self, layers: Sequence[Layer], input_dim: int | None = None,
                 input_shape: Sequence[int] | None = None, dtype: DTypeLike = "float64",
                 seed: int | None = None, *, initialize: bool = True) -> None:
        self.layers: list[Layer] = _check_layers(layers)
        self.input_shape: Shape = _input_shape(input_dim, input_shape)
        self.dtype = resolve_dtype(dtype)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        last = self.layers[-1]
        if isinstance(last, Dense) and last.activation.name in _CLASSIFICATION_OUTPUTS:
            last.keep_logits = True  # the fused cross-entropy step starts from the logits
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, self.dtype)
        self.output_shape: Shape = shape
        self.slices: list[slice] = []
        start = 0
        for layer in self.layers:
            self.slices.append(slice(start, start + layer.n_params))
            start += layer.n_params
        self._flat_params = np.zeros(start, self.dtype)
        self._flat_grads = np.zeros(start, self.dtype)
        self._bind()
        if initialize:
            for layer in self.layers:
                layer.initialize(self.rng)
        self.set_rng(self.rng)
        self._loss_bufs: BufferCache[tuple[NDArray, NDArray]] = BufferCache(self._make_loss_bufs)
        self.optimizer: Optimizer | None = None
        self.history: History | None = None

    def _bind(self) -> None:
        for layer, s in zip(self.layers, self.slices):
            layer.bind(self._flat_params[s], self._flat_grads[s])
        for layer in self.layers:  # views of another layer's arrays (a tied output layer)
            layer.link(self.layers)

    def _make_loss_bufs(self, n: int) -> tuple[NDArray, NDArray]:
        return (np.empty((n, *self.output_shape), self.dtype),
                np.empty((n, *self.output_shape), self.dtype))

    def set_rng(self, rng: np.random.Generator) -> None:
        """The generator that random layers (Dropout) draw from; fit sets its own."""
        for layer in self.layers:
            layer.rng = rng

    # -- structure -------------------------------------------------------------------
    @property
    def params(self) -> list[NDArray]:
        """The live parameter arrays, layer by layer (Dense: ``W`` then ``b``)."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[NDArray]:
        """The gradient arrays of the last backward pass, aligned with ``params``."""
        return [g for layer in self.layers for g in layer.grads]

    @property
    def flat_params(self) -> NDArray:
        """Every parameter, back to back (n_params,): ``params`` are views into it."""
        return self._flat_params

    @property
    def flat_grads(self) -> NDArray:
        """Every gradient, back to back (n_params,): ``grads`` are views into it."""
        return self._flat_grads

    @property
    def n_params(self) -> int:
        """Total number of trainable parameters."""
        return int(self._flat_params.size)

    @property
    def output_layer(self) -> Layer:
        return self.layers[-1]

    @property
    def output_activation(self) -> str:
        """The name of the activation the network's output ends in (``"identity"`` if none)."""
        act = self.layers[-1].activation
        return "identity" if act is None else act.name

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.output_shape))

    def set_params(self, params: Sequence[NDArray]) -> None:
        """Copies arrays into ``params`` (same order and shapes)."""
        params = list(params)
        counts = [len(layer.param_names) for layer in self.layers]
        if len(params) != sum(counts):
            raise ValueError(f"expected {sum(counts)} arrays (one per entry of params), "
                             f"got {len(params)}")
        start = 0
        for layer, k in zip(self.layers, counts):
            layer.set_params(params[start:start + k])
            start += k

    def decay_mask(self) -> NDArray:
        """(n_params,) of this dtype: 1 where weight decay applies when an optimizer decays
        only the weights (``decay="weights"``: matrices and embeddings), 0 elsewhere
        (biases, normalization gains)."""
        mask = np.zeros_like(self._flat_params)
        for layer, sl in zip(self.layers, self.slices):
            start = sl.start
            for p, decayed in zip(layer.params, layer.decayed()):
                if decayed:
                    mask[start:start + p.size] = 1
                start += p.size
        return mask

    def states(self) -> list[dict[str, NDArray]]:
        """Each layer's state arrays (BatchNorm's running statistics), live."""
        return [layer.state for layer in self.layers]

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle and deepcopy store every array on its own, so the layers' parameters come
        # back as copies, no longer views into the flat buffer the optimizer updates: re-bind.
        self.__dict__.update(state)
        self._bind()

    def summary(self, print_fn: Any = print) -> None:
        """Prints a table of the layers, their output shapes and parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        rows.append(("", "input", _shape_text(self.input_shape), ""))
        for i, layer in enumerate(self.layers, 1):
            rows += _summary_rows(str(i), layer, "")
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        out = [f"{type(self).__name__} ({self.dtype.name})", line]
        for k, r in enumerate(rows):
            out.append(f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  "
                       f"{r[3]:>{widths[3]}}".rstrip())
            if k == 0:
                out.append(line)
        out += [line, f"total parameters: {self.n_params:,}"]
        for text in out:
            print_fn(text)

    def walk(self) -> list[tuple[str, Layer]]:
        """Every layer, the composites' sublayers included, depth first, with its path
        (``"0"``, ``"2.1"``, ...: the rows of ``summary()``). What a rule about a kind of
        layer (stateful, BatchNorm, ...) checks, wherever the layer sits."""
        return walk(self.layers)

    def reset_states(self) -> None:
        """Forgets every stateful recurrent layer's carried state (``Layer.reset_state``)."""
        for layer in self.layers:
            layer.reset_state()

    def release_buffers(self) -> None:
        """Frees every layer's work buffers (rebuilt on demand)."""
        for layer in self.layers:
            layer.release()
        self._loss_bufs.clear()

    # -- checks ----------------------------------------------------------------------
    def check_loss(self, loss: str | Loss) -> Loss:
        """The loss object, after checking it fits this network's output activation."""
        loss_obj = get_loss(loss)
        if len(self.output_shape) > 2:
            raise ValueError(f"this network outputs {_shape_text(self.output_shape)}, but a "
                             f"loss compares (n, n_outputs) or (n, time, n_outputs) arrays: "
                             f"end it in Flatten() (and a Dense head) to train it")
        want, have = loss_obj.output_activation, self.output_activation
        if want is not None and have != want:
            raise ValueError(f"loss {loss_obj.name!r} needs output_activation={want!r}, but this "
                             f"network's output activation is {have!r}: build "
                             f"MLP(..., output_activation={want!r}) (or end a Sequential in "
                             f"Dense(k, activation={want!r})), or use a regression loss "
                             f"such as 'mse' on an identity output")
        if want is None and have in _CLASSIFICATION_OUTPUTS:
            raise ValueError(f"loss {loss_obj.name!r} does not fit a {have!r} output (it "
                             f"would learn through the {have}'s flat ends): pair {have!r} "
                             f"with {_CLASSIFICATION_OUTPUTS[have]!r}, or use "
                             f"output_activation='identity' for {loss_obj.name!r}")
        return loss_obj

    def check_X(self, X: Any, any_length: bool = False) -> NDArray:
        """X checked and converted: (n, *input_shape) in this network's dtype, or integer
        ids (n, T) for a network that starts with an Embedding.

        ``any_length`` (prediction): a sequence may be shorter than the T the network was
        built for (1 to T steps), when every layer works step by step (``time_flexible``).
        """
        first = self.layers[0]
        if first.input_kind == "ids":
            return self._check_ids(X, any_length)
        if len(self.input_shape) == 1:
            return check_X(X, self.input_shape[0], self.dtype)
        arr = as_float_array("X", X, self.dtype)
        self._check_shape("X", arr, any_length)
        check_finite("X", arr)
        return arr

    def _check_shape(self, name: str, arr: NDArray, any_length: bool) -> None:
        want = self.input_shape
        ok = arr.ndim == len(want) + 1 and arr.shape[2:] == want[1:] and (
            arr.shape[1] == want[0] or (any_length and self.time_flexible
                                        and 1 <= arr.shape[1] <= want[0]))
        if not ok:
            dims = ", ".join(map(str, want))
            hint = ""
            if self.time_flexible and arr.ndim == len(want) + 1:
                hint = f" (prediction takes 1 to {want[0]} steps)"
            elif arr.ndim == len(want):
                hint = f": for a single sample use {name}[None]"
            raise ValueError(f"{name} has shape {arr.shape}, expected (n_samples, {dims})"
                             f"{hint}")
        if arr.shape[0] == 0:
            raise ValueError(f"{name} has 0 samples")

    def _check_ids(self, X: Any, any_length: bool) -> NDArray:
        """Token ids (n, T), checked by the first layer's own ``ids`` (whole numbers in
        its vocabulary) after the shape: an index array."""
        arr = np.asarray(X)
        self._check_shape("X", arr, any_length)
        ids: NDArray = self.layers[0].ids(arr)  # type: ignore[attr-defined]
        return ids

    @property
    def time_flexible(self) -> bool:
        """Whether prediction takes sequences shorter than the built T (every layer works
        step by step: Embedding, recurrent, Dense, LayerNorm, ...)."""
        return all(layer.time_flexible for layer in self.layers)

    @property
    def sparse_targets(self) -> bool:
        """Whether y may be class indices: a softmax output, whose one-hot rows they stand for."""
        return self.output_activation == "softmax"

    def check_data(self, X: Any, y: Any = None) -> tuple[NDArray, NDArray | None]:
        """X (and y) checked and converted.

        y: (n, *output_shape) in this network's dtype (a single-output network also takes
        it without the last axis), or, for a softmax output, class indices (n, *output_shape
        without its last axis) as int64, ``IGNORE_INDEX`` (-100) marking targets to skip
        (padding), as torch's ``cross_entropy``.
        """
        Xc = self.check_X(X)
        if y is None:
            return Xc, None
        return Xc, self.check_y(y, Xc.shape[0])

    def check_y(self, y: Any, n: int) -> NDArray:
        """Targets for n samples (see ``check_data``)."""
        out = self.output_shape
        arr = np.asarray(y)
        if self.sparse_targets and arr.ndim == len(out) and arr.shape == (n, *out[:-1]) \
                and arr.dtype.kind in "iu" + ("f" if len(out) > 1 or out[-1] > 1 else ""):
            return _class_indices(arr, out[-1])
        if len(out) == 1:
            return check_y(y, n, self.n_outputs, self.dtype)
        arr = as_float_array("y", y, self.dtype)
        if arr.shape == (n, *out[:-1]) and out[-1] == 1:
            arr = arr[..., None]
        if arr.shape != (n, *out):
            dims = ", ".join(map(str, out))
            hint = (f" or class indices ({n}, {', '.join(map(str, out[:-1]))})"
                    if self.sparse_targets else "")
            raise ValueError(f"y has shape {arr.shape}, expected ({n}, {dims}){hint}: one "
                             f"target per output step")
        check_finite("y", arr)
        return arr

    # -- forward / backward ----------------------------------------------------------
    def forward(self, X: Any, training: bool = False) -> NDArray:
        """The outputs (n, *output_shape) as a new array, keeping what ``backward`` needs.

        ``training``: Dropout drops and BatchNorm uses (and updates) batch statistics.
        """
        a = self.check_X(X)
        for layer in self.layers:
            a = layer.forward(a, training)
        return a.copy()

    def backward(self, grad_output: Any) -> NDArray:
        """dL/d(output) (n, *output_shape) -> dL/dX (n, *input_shape), after ``forward``.

        Fills ``grads`` (aligned with ``params``) and returns dL/dX as a new array (an
        empty one for a network that takes token ids, which have no gradient).
        """
        out = self.layers[-1].output
        g = as_float_array("grad_output", grad_output, self.dtype)
        if g.shape != out.shape:
            raise ValueError(f"grad_output has shape {g.shape}, but the last forward pass "
                             f"output {out.shape}")
        d: NDArray | None = g.copy()  # the layers overwrite what they are given
        ids = self.layers[0].input_kind == "ids"  # token ids have no gradient
        for i in range(len(self.layers) - 1, -1, -1):
            assert d is not None
            d = self.layers[i].backward(d, i > 0 or not ids)
        if ids:
            return np.zeros(0, self.dtype)
        assert d is not None
        return np.array(d, copy=True)

    def batch_loss(self, x: NDArray, y: NDArray, loss: Loss, w: NDArray | None = None,
                   training: bool = True) -> tuple[float, NDArray]:
        """Forward pass and loss on a checked batch; returns (loss, dL/dz of the output).

        The delta is taken before the output layer's final activation (``z``): a fused
        cross-entropy gives it from the logits as ``(p - y) / N``; any other loss gives
        dL/da, turned into dL/dz through the activation's derivative. The array is a work
        buffer, valid until the next call with a batch of the same size.
        """
        a = x
        for layer in self.layers:
            a = layer.forward(a, training)
        out = self.layers[-1]
        bufs = self._loss_bufs
        delta, work = bufs.get(x.shape[0]) or bufs.make(x.shape[0])
        d, rows = delta, None  # rows: the (n*T, K) shape the loss sees a sequence in
        if a.ndim > 2 or y.ndim != a.ndim:
            # A sequence's steps (n, T, K), or class indices: the loss of n*T rows of K (the
            # mean over every step, torch's default), in views of the same buffers; a
            # sample's weight is each of its steps' weight.
            k = a.shape[-1]
            rows = (-1, k)
            steps = a.size // (a.shape[0] * k)
            if w is not None and steps > 1:
                w = np.repeat(w, steps, axis=0)
            a, d, work = a.reshape(rows), delta.reshape(rows), work.reshape(rows)
            if y.dtype.kind != "f":
                sparse = loss.sparse_step()
                return sparse(out.logits.reshape(rows), a, y.reshape(-1), d, w), delta
            y = y.reshape(rows)
        if loss.fused is not None:
            z = out.logits if rows is None else out.logits.reshape(rows)
            return loss.fused(z, a, y, d, w), delta
        assert loss.value_and_grad is not None
        value = loss.value_and_grad(a, y, d, work, w)
        act = out.activation
        if act is not None and act is not IDENTITY:  # identity (the seed's): dL/dz = dL/da
            zk: NDArray | None = None
            if getattr(out, "keep_z", True):
                zk = out.logits if rows is None else out.logits.reshape(rows)
            act.backward(d, zk, a, work)
        return value, delta

    def loss_grad(self, x: NDArray, y: NDArray, loss: Loss, w: NDArray | None = None,
                  scale: float = 1.0, training: bool = True) -> float:
        """One forward and backward pass on a checked batch; fills the flat gradient buffer.

        ``w``: None, or sample weights (n, 1) scaled to sum to n. ``scale``: the gradients
        come out multiplied by it (fit passes ``-lr`` for plain SGD, whose step is then one
        addition); the returned loss is unscaled.
        """
        value, delta = self.batch_loss(x, y, loss, w, training)
        if scale != 1.0:  # every gradient below is linear in delta
            np.multiply(delta, scale, out=delta)
        layers = self.layers
        last = len(layers) - 1
        d = layers[last].backward_from_logits(delta, last > 0)
        for i in range(last - 1, 0, -1):
            d = layers[i].backward(d, True)  # type: ignore[arg-type]
        if last > 0:
            layers[0].backward(d, False)  # type: ignore[arg-type]
        return value

    def loss_and_gradients(self, X: Any, y: Any, loss: str | Loss = "mse",
                           sample_weight: Any = None,
                           training: bool = True) -> tuple[float, list[NDArray]]:
        """The loss on (X, y) and its gradient for every parameter (copies, aligned with params).

        ``sample_weight`` (n_samples,): a weighted mean instead of the plain one.
        ``training``: as in ``forward`` (BatchNorm then updates its running statistics).
        """
        loss_obj = self.check_loss(loss)
        Xc, yc = self.check_data(X, y)
        assert yc is not None
        w = check_sample_weight(sample_weight, Xc.shape[0], self.dtype)
        value = self.loss_grad(Xc, yc, loss_obj, None if w is None else normalized_weights(w),
                               training=training)
        return value, [g.copy() for g in self.grads]

    def eval_loss(self, X: NDArray, y: NDArray, loss: Loss, chunk: int = PREDICT_CHUNK) -> float:
        """The mean loss over checked (X, y) in evaluation mode, in chunks of ``chunk`` rows."""
        total = count = 0.0
        n = X.shape[0]
        for s in range(0, n, chunk):
            xb, yb = X[s:s + chunk], y[s:s + chunk]
            v, _ = self.batch_loss(xb, yb, loss, None, training=False)
            # Regression losses are means over elements, cross-entropies over samples: both
            # combine over chunks as a row-weighted mean; class indices as a mean over the
            # targets that count (not IGNORE_INDEX).
            c = xb.shape[0] if yb.dtype.kind == "f" else int(np.count_nonzero(yb != IGNORE_INDEX))
            total += v * c
            count += c
        return float(total / count) if count else 0.0

    # -- prediction ------------------------------------------------------------------
    def infer(self, x: NDArray, logits: bool = False) -> NDArray:
        """Evaluation-mode outputs of a checked batch, in fresh arrays (thread-safe).

        With ``logits``, the output before the final activation of a Dense output layer.
        """
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if logits and i == last:
                if not isinstance(layer, Dense):
                    raise ValueError("logits need a network ending in a Dense layer")
                return layer.infer(x, logits=True)
            x = layer.infer(x)
        return x

    def predict_checked(self, X: NDArray, chunk: int = PREDICT_CHUNK) -> NDArray:
        """``infer`` over a checked X, ``chunk`` rows at a time (bounded memory)."""
        n = X.shape[0]
        first = self.infer(X[:chunk])  # its shape: a shorter sequence gives fewer steps
        if n <= chunk:  # fresh, unless a layer passed the input through (Dropout)
            return first.copy() if np.may_share_memory(first, X) else first
        out = np.empty((n, *first.shape[1:]), self.dtype)
        out[:chunk] = first
        for s in range(chunk, n, chunk):
            out[s:s + chunk] = self.infer(X[s:s + chunk])
        return out

    def predict(self, X: Any) -> NDArray:
        """Network outputs for X (n_samples, *input_shape) -> (n_samples, *output_shape).

        Always in evaluation mode (no dropout, BatchNorm's running statistics).
        Regression: the values; classification: the probabilities (sigmoid or softmax).
        Processes at most ``PREDICT_CHUNK`` rows at a time, so memory stays bounded.
        """
        return self.predict_checked(self.check_X(X, any_length=True))

    def copy_network(self, dtype: DTypeLike | None = None) -> Network:
        """An independent copy (optionally converted to ``dtype``): layers, parameters,
        states and random generator, without work buffers, optimizer or history."""
        self.release_buffers()
        saved = self.optimizer, self.history
        self.optimizer = self.history = None
        try:
            new = copy.deepcopy(self)  # __setstate__ re-binds the copied layers
        finally:
            self.optimizer, self.history = saved
        if dtype is not None and resolve_dtype(dtype) != new.dtype:
            new._convert(resolve_dtype(dtype))
        return new

    def _convert(self, dtype: np.dtype) -> None:
        """Rebuilds every layer in ``dtype``, keeping the parameters and states."""
        params = [p.copy() for p in self.params]
        states = [{k: v.copy() for k, v in st.items()} for st in self.states()]
        self.dtype = dtype
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, dtype)
        self._flat_params = np.zeros(self._flat_params.size, dtype)
        self._flat_grads = np.zeros(self._flat_grads.size, dtype)
        self._loss_bufs = BufferCache(self._make_loss_bufs)
        self._bind()
        self.set_params(params)
        for layer, st in zip(self.layers, states):
            layer.set_state(st)


def _class_indices(y: NDArray, n_classes: int) -> NDArray:
    """Class indices checked: whole numbers in [0, n_classes), or IGNORE_INDEX; int64."""
    if y.dtype.kind == "f" and (not np.isfinite(y).all() or (y != np.round(y)).any()):
        raise ValueError("y holds class indices, which must be whole numbers: found a "
                         "fractional or non-finite value (or pass one-hot rows)")
    ids = y.astype(np.int64, copy=False)
    bad = (ids != IGNORE_INDEX) & ((ids < 0) | (ids >= n_classes))
    if bad.any():
        raise ValueError(f"y holds class index {ids[bad].flat[0]}, outside [0, {n_classes}) "
                         f"for this network's {n_classes} outputs (use {IGNORE_INDEX} to "
                         f"skip a target, such as padding)")
    return ids


def _summary_rows(number: str, layer: Layer, indent: str) -> list[tuple[str, str, str, str]]:
    """A layer's summary row; a composite's sublayers follow, indented (``2.1``, ``2.2``)."""
    if not layer.composite:
        return [(number, indent + repr(layer), _shape_text(layer.output_shape),
                 f"{layer.n_params:,}")]
    rows = [(number, indent + type(layer).__name__, _shape_text(layer.output_shape),
             f"{layer.n_params:,}")]
    for j, sub in enumerate(getattr(layer, "layers", []), 1):
        rows += _summary_rows(f"{number}.{j}", sub, indent + "  ")
    return rows


def _shape_text(shape: Shape) -> str:
    return "(n, " + ", ".join(map(str, shape)) + ")"


def _check_layers(layers: Any) -> list[Layer]:
    if isinstance(layers, Layer) or not isinstance(layers, Sequence) or isinstance(layers, str):
        raise ValueError(f"layers must be a list of layers, got {layers!r}")
    out = list(layers)
    if not out:
        raise ValueError("a network needs at least one layer")
    # The kinds a model file can name, Dense first (the one most networks start with).
    kinds = ", ".join(sorted(LAYERS, key=lambda name: name != "Dense"))
    check_new_layers(out, f" (zeronn.layers: {kinds})", "network")
    return out


def _input_shape(input_dim: Any, input_shape: Any) -> Shape:
    if (input_dim is None) == (input_shape is None):
        raise ValueError("give the input size: input_dim=n_features, or input_shape=(C, H, W)")
    if input_dim is not None:
        return (positive_number("input_dim", input_dim, integer=True),)
    if isinstance(input_shape, (int, np.integer)):
        input_shape = (input_shape,)
    try:
        dims = tuple(positive_number("each input_shape entry", d, integer=True)
                     for d in input_shape)
    except TypeError:
        raise ValueError(f"input_shape must be a tuple of positive integers, "
                         f"got {input_shape!r}") from None
    if not dims:
        raise ValueError("input_shape must not be empty")
    return dims
