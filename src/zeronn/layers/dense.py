"""The fully connected layer ``z = x·W + b, a = f(z)`` (the seed's layer), and Activation.

As deep-learning-from-scratch's ``Affine`` followed by an activation layer: ``forward``
keeps its input and outputs, ``backward`` turns dL/da into dL/dz through the activation's
derivative (taken from the output where that is exact, as scikit-learn does), then sets
``dW = x.T·delta``, ``db = sum(delta, axis=0)`` and returns ``dx = delta·W.T``.
Work arrays are allocated once per batch size (``BufferCache``) and reused.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.activations import IDENTITY, get_activation
from zeronn.activations import Activation as ActivationFunction
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers.base import AffineLayer, BufferCache, Layer, Param, Shape

__all__ = ["Activation", "Dense"]

_add_reduce = np.add.reduce


class _Buffers:
    """Per-batch-size work arrays of one layer, all (n, units), allocated on first use."""

    __slots__ = ("a", "dx", "work", "z")

    def __init__(self, n: int, units: int, dtype: np.dtype, keep_z: bool) -> None:
        self.a = np.empty((n, units), dtype)
        self.z = np.empty((n, units), dtype) if keep_z else self.a
        self.work = np.empty((n, units), dtype)
        self.dx: NDArray | None = None  # (n, fan_in), only when a gradient flows further back


class Dense(AffineLayer):
    """A dense layer with an optional activation: x (n, fan_in) -> a (n, units).

    ``W`` (fan_in, units) and ``b`` (1, units), as in the seed; ``dW``, ``db`` alike.
    ``activation``: a name or activation object (``None``: identity, a purely linear layer).
    ``init``: an initializer name or callable ``(rng, fan_in, fan_out, dtype) -> W``;
    biases start at 0. ``use_bias=False`` drops ``b`` (a BatchNorm after it has its own).
    ``keep_logits`` keeps ``z`` beside ``a`` (set by the network for an output layer whose
    loss is fused with its activation).
    """

    kind = "dense"
    time_flexible = True
    W = Param()
    b = Param()
    activation: ActivationFunction
    _W: NDArray  # the live views (set by bind); W/b read them, the hot loop too
    _b: NDArray
    dW: NDArray
    db: NDArray

    def __init__(self, units: int, activation: str | ActivationFunction | None = None,
                 init: str | Initializer = "he_normal", use_bias: bool = True) -> None:
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"Dense units must be a positive integer, got {units!r}")
        self.units = int(units)
        self._init_affine(activation, init, use_bias)
        self._cache: BufferCache[_Buffers] | None = None
        self._x: NDArray | None = None
        self._buf: _Buffers | None = None

    # -- structure -------------------------------------------------------------------
    @property
    def fan_in(self) -> int:
        return self.input_shape[-1]

    @property
    def fan_out(self) -> int:
        return self.units

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) > 2:
            raise ValueError(f"Dense takes (n, features) or (n, time, features) inputs, but "
                             f"its input has shape (n, {', '.join(map(str, input_shape))}): "
                             f"put Flatten() before it")
        super().build(input_shape, dtype)
        self.output_shape = (*self.input_shape[:-1], self.units)
        # A sequence (n, T, features) is n*T rows of one matrix product (torch.nn.Linear).
        self._steps = int(np.prod(self.input_shape[:-1], dtype=np.int64))
        self._sequence = len(self.input_shape) == 2
        self.keep_z = self.activation.uses_input or self.keep_logits
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> _Buffers:
        return _Buffers(n * self._steps, self.units, self.dtype, self.keep_z)

    def param_shapes(self) -> list[Shape]:
        shapes: list[Shape] = [(self.fan_in, self.units)]
        return [*shapes, (1, self.units)] if self.use_bias else shapes

    def bind(self, flat_params: NDArray, flat_grads: NDArray) -> None:
        super().bind(flat_params, flat_grads)
        # The bias gradient as a flat view: np.add.reduce writes into it without a reshape.
        self._db_flat = flat_grads[self.fan_in * self.units:] if self.use_bias else None

    def initialize(self, rng: np.random.Generator) -> None:
        self.W = get_initializer(self.init)(rng, self.fan_in, self.units, self.dtype)
        if self.use_bias:
            self._b.fill(0)

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"units": self.units, "activation": self.activation.name}
        # A callable initializer is not JSON and cannot be found again by name, so it is
        # left out: the rebuilt layer draws he_normal, which does not matter once its
        # weights are loaded (model files) or copied in.
        if isinstance(self.init, str):
            cfg["init"] = self.init
        if not self.use_bias:
            cfg["use_bias"] = False
        return cfg

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._x = self._buf = None

    # -- computation -----------------------------------------------------------------
    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, fan_in) -> a (n, units); (n, T, fan_in) -> (n, T, units), step by step.

        Returns a work buffer, valid until the next call.
        """
        cache = self._cache
        assert cache is not None, "a Dense layer computes once built into a network"
        buf = cache.get(x.shape[0]) or cache.make(x.shape[0])  # one C call when cached
        if self._sequence:
            return self._forward_steps(x, buf)
        z = buf.z
        np.dot(x, self._W, out=z)
        if self.use_bias:
            if self.units == 1:
                # A scalar add skips the broadcasting loop's setup: twice as fast on small
                # batches, and the same arithmetic (the value is the bias itself).
                np.add(z, self._b.item(), out=z)
            else:
                np.add(z, self._b, out=z)
        if z is not buf.a or self.activation is not IDENTITY:
            self.activation.forward(z, buf.a)
        self._x, self._buf = x, buf
        return buf.a

    def _forward_steps(self, x: NDArray, buf: _Buffers) -> NDArray:
        """A sequence's steps as the rows of one product: x (n, T, fan_in) -> (n, T, units)."""
        rows = x.reshape(-1, self.fan_in)  # a view of a contiguous input
        np.dot(rows, self._W, out=buf.z)
        if self.use_bias:
            np.add(buf.z, self._b, out=buf.z)
        if buf.z is not buf.a or self.activation is not IDENTITY:
            self.activation.forward(buf.z, buf.a)
        self._x, self._buf = rows, buf
        return buf.a.reshape(x.shape[0], *self.output_shape)

    def backward_from_logits(self, delta: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dz (n, units) -> dL/dx (n, fan_in); sets dW = x.T·delta, db = sum(delta).

        A sequence's (n, T, units) is taken as its n*T rows.
        """
        buf, x = self._buf, self._x
        if buf is None or x is None:
            raise ValueError("backward() needs a forward() first")
        if self._sequence:
            dx = self._backward_rows(delta.reshape(-1, self.units), buf, x, need_dx)
            return None if dx is None else dx.reshape(-1, *self.input_shape)
        return self._backward_rows(delta, buf, x, need_dx)

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/da -> dL/dx (a sequence's steps as rows, as in forward)."""
        if self._sequence:
            dout = dout.reshape(-1, self.units)
        return super().backward(dout, need_dx)

    def _backward_rows(self, delta: NDArray, buf: _Buffers, x: NDArray,
                       need_dx: bool) -> NDArray | None:
        np.dot(x.T, delta, out=self.dW)
        if self._db_flat is not None:
            _add_reduce(delta, axis=0, out=self._db_flat)  # np.sum without its Python wrapper
        if not need_dx:
            return None
        if buf.dx is None:
            buf.dx = np.empty((delta.shape[0], self.fan_in), self.dtype)
        return np.dot(delta, self._W.T, out=buf.dx)

    @property
    def work(self) -> NDArray:
        """Scratch (n, units) of the last batch size (free between forward and backward)."""
        assert self._buf is not None
        return self._buf.work

    @property
    def logits(self) -> NDArray:
        return self._shaped(super().logits)

    @property
    def output(self) -> NDArray:
        return self._shaped(super().output)

    def _shaped(self, rows: NDArray) -> NDArray:
        """A buffer of rows as the layer's output shape (sequences: (n, T, units))."""
        if not self._sequence:
            return rows
        return rows.reshape(-1, *self.output_shape)

    def infer(self, x: NDArray, logits: bool = False) -> NDArray:
        """Evaluation outputs in fresh arrays; a sequence may be shorter than the built T."""
        z = np.dot(x, self._W)
        if self.use_bias:
            z += self._b
        if logits:
            return z
        act = self.activation
        return act.forward(z, np.empty_like(z) if act.uses_input else z)

    def __repr__(self) -> str:
        cfg = self.config()  # the arguments that differ from the defaults
        if not isinstance(self.init, str):
            cfg["init"] = getattr(self.init, "__name__", "custom")
        args = [str(cfg.pop("units"))] + [f"{k}={v!r}" for k, v in cfg.items()
                                          if (k, v) not in (("activation", "identity"),
                                                            ("init", "he_normal"))]
        return f"Dense({', '.join(args)})"


class Activation(Layer):
    """An activation on its own: a (n, ...) -> f(a), the from-scratch books' ``Relu``/``Sigmoid``.

    ``Dense(64), Activation("relu")`` computes what ``Dense(64, activation="relu")`` does.
    Softmax acts on the last axis.
    """

    kind = "activation"
    time_flexible = True
    activation: ActivationFunction

    def __init__(self, activation: str | ActivationFunction) -> None:
        self.activation = get_activation(activation)
        self._cache: BufferCache[tuple[NDArray, NDArray]] | None = None
        self._x: NDArray | None = None
        self._a: NDArray | None = None
        self._work: NDArray | None = None

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> tuple[NDArray, NDArray]:
        return (np.empty((n, *self.input_shape), self.dtype),
                np.empty((n, *self.input_shape), self.dtype))

    def config(self) -> dict[str, Any]:
        return {"activation": self.activation.name}

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._x = self._a = self._work = None

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        a, work = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        self.activation.forward(x, a)
        self._x, self._a, self._work = x, a, work
        return a

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        if self._a is None or self._work is None:
            raise ValueError("backward() needs a forward() first")
        # The activation's backward works in place on dout (dL/da -> dL/dx).
        self.activation.backward(dout, self._x, self._a, self._work)
        return dout

    def backward_from_logits(self, delta: NDArray, need_dx: bool = True) -> NDArray | None:
        return delta  # delta is dL/dx already: this layer's input is the logits

    @property
    def logits(self) -> NDArray:
        if self._x is None:
            raise ValueError("no forward pass yet")
        return self._x

    @property
    def output(self) -> NDArray:
        if self._a is None:
            raise ValueError("no forward pass yet")
        return self._a

    @property
    def work(self) -> NDArray:
        assert self._work is not None
        return self._work

    def infer(self, x: NDArray) -> NDArray:
        return self.activation.forward(x, np.empty_like(x))

    def __repr__(self) -> str:
        return f"Activation({self.activation.name!r})"
