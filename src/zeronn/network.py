"""The multi-layer perceptron: a stack of :class:`Dense` layers sharing one flat buffer.

All parameters live in one contiguous array (``W1, b1, W2, b2, ...`` back to back) and
all gradients in another, so optimizers update everything with a few vectorised calls,
while ``net.params`` still hands out the familiar per-layer arrays (views into it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

from zeronn._validation import (
    check_sample_weight,
    check_X,
    check_y,
    normalized_weights,
    positive_number,
    resolve_dtype,
)
from zeronn.activations import IDENTITY, Activation, get_activation
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers import Dense
from zeronn.losses import Loss, get_loss

if TYPE_CHECKING:
    from zeronn.optim import Optimizer
    from zeronn.training import History

__all__ = ["MLP"]

PREDICT_CHUNK = 4096  # rows per forward pass in predict(): bounds the memory of a big X


class MLP:
    """A fully connected network ``layer_sizes[0] -> ... -> layer_sizes[-1]``.

    Parameters
    ----------
    layer_sizes : [n_features, hidden..., n_outputs], at least two entries.
    activation : hidden activation name or object, or one per hidden layer.
    output_activation : ``"identity"`` for regression (the seed's), ``"sigmoid"`` or
        ``"softmax"`` for classification with the matching cross-entropy.
    init : initializer name, a callable ``(rng, fan_in, fan_out, dtype) -> W``, or the
        explicit arrays ``[W1, b1, W2, b2, ...]``.
    dtype : ``"float64"`` (default) or ``"float32"``; kept end to end.
    seed : seeds the network's own ``np.random.Generator`` (initialisation, and the
        shuffling of ``fit`` calls that pass no seed of their own).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Activation | Sequence[str | Activation] = "relu",
        output_activation: str | Activation = "identity",
        init: str | Initializer | Sequence[NDArray] = "he_normal",
        dtype: DTypeLike = "float64",
        seed: int | None = None,
    ) -> None:
        sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else []
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes needs at least [n_inputs, n_outputs], got {layer_sizes!r}")
        self.layer_sizes = [positive_number("each layer size", s, integer=True) for s in sizes]
        self.dtype = resolve_dtype(dtype)
        n_hidden = len(sizes) - 2
        if isinstance(activation, (str, Activation)):
            hidden = [get_activation(activation)] * n_hidden
        else:
            hidden = [get_activation(a) for a in activation]
            if len(hidden) != n_hidden:
                raise ValueError(f"activation lists {len(hidden)} entries but the network has "
                                 f"{n_hidden} hidden layers: give one per hidden layer")
        out_act = get_activation(output_activation)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.layers: list[Dense] = []
        for i, (fi, fo) in enumerate(zip(self.layer_sizes[:-1], self.layer_sizes[1:])):
            last = i == n_hidden
            act = out_act if last else hidden[i]
            self.layers.append(Dense(fi, fo, act, dtype=self.dtype,
                                     keep_logits=last and act.name in ("sigmoid", "softmax")))
        total = sum(layer.size for layer in self.layers)
        self._flat_params = np.zeros(total, self.dtype)
        self._flat_grads = np.zeros(total, self.dtype)
        self.slices: list[slice] = []
        start = 0
        for layer in self.layers:
            s = slice(start, start + layer.size)
            layer._bind(self._flat_params[s], self._flat_grads[s])
            self.slices.append(s)
            start += layer.size
        self.init = init if isinstance(init, str) else getattr(init, "__name__", "explicit")
        if isinstance(init, str) or callable(init):
            fn = get_initializer(init)
            for layer in self.layers:
                layer.W = fn(self.rng, layer.fan_in, layer.fan_out, self.dtype)
        else:
            self.set_params(init)
        self.optimizer: Optimizer | None = None
        self.history: History | None = None

    # -- structure -------------------------------------------------------------------
    @property
    def params(self) -> list[NDArray]:
        """The live parameter arrays ``[W1, b1, W2, b2, ...]``."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[NDArray]:
        """The gradient arrays of the last backward pass, aligned with ``params``."""
        return [g for layer in self.layers for g in layer.grads]

    @property
    def n_params(self) -> int:
        """Total number of parameters."""
        return int(self._flat_params.size)

    @property
    def activations(self) -> list[str]:
        """Hidden activation names, one per hidden layer."""
        return [layer.activation.name for layer in self.layers[:-1]]

    @property
    def output_activation(self) -> str:
        """The output layer's activation name."""
        return self.layers[-1].activation.name

    def set_params(self, params: Sequence[NDArray]) -> None:
        """Copies ``[W1, b1, W2, b2, ...]`` into the network (shapes must match)."""
        params = list(params)
        if len(params) != 2 * len(self.layers):
            raise ValueError(f"expected {2 * len(self.layers)} arrays [W1, b1, ...], "
                             f"got {len(params)}")
        for i, layer in enumerate(self.layers):
            layer.W, layer.b = params[2 * i], params[2 * i + 1]

    def __setstate__(self, state: dict[str, Any]) -> None:
        # pickle and deepcopy store every array on its own, so the layers' W, b come back
        # as copies, no longer views into the flat buffer the optimizer updates: re-bind.
        self.__dict__.update(state)
        for layer, s in zip(self.layers, self.slices):
            layer._bind(self._flat_params[s], self._flat_grads[s])

    def copy(self, dtype: DTypeLike | None = None) -> MLP:
        """An independent copy (optionally converted to ``dtype``) without work buffers."""
        new = MLP(self.layer_sizes, [layer.activation for layer in self.layers[:-1]],
                  self.layers[-1].activation, init=self.params,
                  dtype=self.dtype if dtype is None else dtype, seed=self.seed)
        new.init = self.init
        new.rng = copy.deepcopy(self.rng)
        return new

    def __repr__(self) -> str:
        acts = self.activations
        act = acts[0] if acts and all(a == acts[0] for a in acts) else acts
        return (f"MLP({self.layer_sizes}, activation={act!r}, "
                f"output_activation={self.output_activation!r}, dtype={self.dtype.name!r})")

    # -- forward / backward ----------------------------------------------------------
    def _forward(self, x: NDArray) -> NDArray:
        """Forward pass on a checked batch; returns the output layer's work buffer."""
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def _batch_loss(self, x: NDArray, y: NDArray, loss: Loss, w: NDArray | None,
                    backprop: bool) -> tuple[float, NDArray]:
        """Forward pass and loss on a checked batch; returns (loss, the output's delta buffer).

        With ``backprop`` the buffer holds dL/dz of the output layer (else its content is
        scratch).
        """
        a = self._forward(x)
        out = self.layers[-1]
        buf = out._buf
        assert buf is not None
        if buf.delta is None:
            buf.delta = np.empty_like(a)
        delta = buf.delta
        if loss.fused is not None:
            # Fused output step: delta = dL/dz = (p - y) / N, from the logits.
            return loss.fused(buf.z, a, y, delta, w), delta
        assert loss.value_and_grad is not None
        value = loss.value_and_grad(a, y, delta, buf.work, w)
        if backprop and out.activation is not IDENTITY:  # identity (the seed's): dL/dz = dL/da
            out.activation.backward(delta, buf.z if out.keep_z else None, a, buf.work)
        return value, delta

    def _loss_grad(self, x: NDArray, y: NDArray, loss: Loss, w: NDArray | None = None,
                   scale: float = 1.0) -> float:
        """One forward and backward pass on a checked batch; fills the flat gradient buffer.

        ``w``: None, or sample weights (n, 1) scaled to sum to n. ``scale``: the gradients
        come out multiplied by it (fit passes ``-lr`` for plain SGD, whose step is then one
        addition); the returned loss is unscaled.
        """
        value, delta = self._batch_loss(x, y, loss, w, backprop=True)
        if scale != 1.0:  # every gradient below is linear in delta
            np.multiply(delta, scale, out=delta)
        layers = self.layers
        for i in range(len(layers) - 1, 0, -1):
            dx = layers[i].backward_linear(delta, True)
            assert dx is not None
            prev = layers[i - 1]
            pbuf = prev._buf
            assert pbuf is not None
            prev.activation.backward(dx, pbuf.z if prev.keep_z else None, pbuf.a, pbuf.work)
            delta = dx
        layers[0].backward_linear(delta, False)
        return value

    def check_loss(self, loss: str | Loss) -> Loss:
        """The loss object, after checking it fits this network's output activation."""
        loss_obj = get_loss(loss)
        want = loss_obj.output_activation
        if want is not None and self.output_activation != want:
            raise ValueError(f"loss {loss_obj.name!r} needs output_activation={want!r}, but this "
                             f"network's output activation is {self.output_activation!r}: "
                             f"build MLP(..., output_activation={want!r})")
        return loss_obj

    def check_data(self, X: Any, y: Any = None) -> tuple[NDArray, NDArray | None]:
        """X (and y) checked and converted to this network's dtype; see ``_validation``."""
        Xc = check_X(X, self.layer_sizes[0], self.dtype)
        if y is None:
            return Xc, None
        return Xc, check_y(y, Xc.shape[0], self.layer_sizes[-1], self.dtype)

    def forward(self, X: Any) -> NDArray:
        """Outputs after the output activation, (n_samples, n_outputs), as a new array."""
        return self.predict(X)

    def predict(self, X: Any) -> NDArray:
        """Network outputs for X (n_samples, n_features) -> (n_samples, n_outputs).

        Regression: the values; classification: the probabilities (sigmoid or softmax).
        Processes at most ``PREDICT_CHUNK`` rows at a time, so memory stays bounded.
        """
        Xc, _ = self.check_data(X)
        return self._predict_checked(Xc)

    def _forward_fresh(self, x: NDArray, logits: bool = False) -> NDArray:
        """Forward pass on a checked batch in fresh arrays, not the layers' shared training
        buffers: prediction is not the hot loop, and this keeps it safe to call from several
        threads. With ``logits``, the output layer's pre-activation (n, n_outputs)."""
        a = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            z = np.dot(a, layer.W)
            z += layer.b
            if logits and i == last:
                return z
            act = layer.activation
            a = act.forward(z, np.empty_like(z) if act.uses_input else z)
        return a

    def _predict_checked(self, X: NDArray, chunk: int = PREDICT_CHUNK) -> NDArray:
        n = X.shape[0]
        out = np.empty((n, self.layer_sizes[-1]), self.dtype)
        for s in range(0, n, chunk):
            out[s:s + chunk] = self._forward_fresh(X[s:s + chunk])
        return out

    def loss_and_gradients(self, X: Any, y: Any, loss: str | Loss = "mse",
                           sample_weight: Any = None) -> tuple[float, list[NDArray]]:
        """The loss on (X, y) and its gradient for every parameter (copies, aligned with params).

        ``sample_weight`` (n_samples,): a weighted mean instead of the plain one.
        """
        loss_obj = self.check_loss(loss)
        Xc, yc = self.check_data(X, y)
        assert yc is not None
        w = check_sample_weight(sample_weight, Xc.shape[0], self.dtype)
        value = self._loss_grad(Xc, yc, loss_obj, None if w is None else normalized_weights(w))
        return value, [g.copy() for g in self.grads]

    def release_buffers(self) -> None:
        """Frees every layer's work buffers (rebuilt on demand)."""
        for layer in self.layers:
            layer.release()

    def fit(self, X: Any, y: Any, **kwargs: Any) -> History:
        """Trains on (X, y); see :func:`zeronn.training.fit` for every option."""
        from zeronn.training import fit  # training sits above the network (one-way data flow)

        return fit(self, X, y, **kwargs)

    # -- seed compatibility ----------------------------------------------------------
    @classmethod
    def from_classic(cls, nn: Any) -> MLP:
        """The engine's equivalent of a :class:`zeronn.classic.NN`, with its current weights."""
        i, h = nn.W1.shape
        o = nn.W2.shape[1]
        return cls([i, h, o], "relu", "identity", init=[nn.W1, nn.b1, nn.W2, nn.b2])
