"""The fully connected layer: ``z = x·W + b``, ``a = f(z)``, and its backward pass.

As in deep-learning-from-scratch's ``Affine``: ``forward`` keeps what ``backward``
needs; ``backward`` sets the parameter gradients and returns ``dL/dx``. Unlike it, the
layer owns its arrays: ``W``/``b`` are fixed arrays (views into the network's one flat
parameter buffer, so an optimizer updates every parameter in one vectorised step), and
assigning ``layer.W = new`` copies into them instead of silently unhooking them.
Work buffers are allocated once per batch size and reused.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import resolve_dtype
from zeronn.activations import IDENTITY, Activation, get_activation

__all__ = ["Dense"]

_add_reduce = np.add.reduce
_MAX_CACHED_BATCH_SIZES = 4  # a training batch, its remainder, and a prediction chunk or two


class _Buffers:
    """Per-batch-size work arrays of one layer, all (n, fan_out), allocated on first use."""

    __slots__ = ("a", "delta", "dx", "work", "z")

    def __init__(self, n: int, fan_in: int, fan_out: int, dtype: np.dtype, keep_z: bool) -> None:
        self.a = np.empty((n, fan_out), dtype)
        self.z = np.empty((n, fan_out), dtype) if keep_z else self.a
        self.work = np.empty((n, fan_out), dtype)
        self.dx: NDArray | None = None  # (n, fan_in), only when a gradient flows further back
        self.delta: NDArray | None = None  # (n, fan_out), the loss gradient at an output layer


class Dense:
    """A dense layer with activation: x (n, fan_in) -> a (n, fan_out).

    ``W`` (fan_in, fan_out), ``b`` (1, fan_out), as in the seed; ``dW``, ``db`` alike.
    ``keep_logits`` keeps ``z`` beside ``a`` (the output layer of a cross-entropy net).
    """

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        activation: str | Activation = "relu",
        *,
        W: NDArray | None = None,
        b: NDArray | None = None,
        dtype: str | np.dtype = "float64",
        keep_logits: bool = False,
    ) -> None:
        self.fan_in, self.fan_out = int(fan_in), int(fan_out)
        self.activation = get_activation(activation)
        self.dtype = resolve_dtype(dtype)
        self.keep_z = self.activation.uses_input or keep_logits
        n = self.size
        self._bind(np.zeros(n, self.dtype), np.zeros(n, self.dtype))
        if W is not None:
            self.W = W
        if b is not None:
            self.b = b
        self._cache: OrderedDict[int, _Buffers] = OrderedDict()
        self._x: NDArray | None = None
        self._buf: _Buffers | None = None

    @property
    def size(self) -> int:
        """Number of parameters: fan_in * fan_out + fan_out."""
        return self.fan_in * self.fan_out + self.fan_out

    def _bind(self, flat_params: NDArray, flat_grads: NDArray) -> None:
        """Makes W, b (and dW, db) views into the given flat buffers of length ``size``."""
        k = self.fan_in * self.fan_out
        self._W = flat_params[:k].reshape(self.fan_in, self.fan_out)
        self._b = flat_params[k:].reshape(1, self.fan_out)
        self.dW = flat_grads[:k].reshape(self.fan_in, self.fan_out)
        self.db = flat_grads[k:].reshape(1, self.fan_out)
        self._db_flat = flat_grads[k:]
        self.flat_params, self.flat_grads = flat_params, flat_grads

    @property
    def W(self) -> NDArray:
        """Weights, (fan_in, fan_out)."""
        return self._W

    @W.setter
    def W(self, value: NDArray) -> None:
        self._assign(self._W, value, "W")

    @property
    def b(self) -> NDArray:
        """Biases, (1, fan_out)."""
        return self._b

    @b.setter
    def b(self, value: NDArray) -> None:
        self._assign(self._b, np.reshape(value, (1, -1)) if np.ndim(value) == 1 else value, "b")

    def _assign(self, target: NDArray, value: NDArray, name: str) -> None:
        arr = np.asarray(value)
        if arr.shape != target.shape:
            raise ValueError(f"{name} has shape {arr.shape}, expected {target.shape}")
        if arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            raise ValueError(f"{name} must hold finite numbers")
        target[...] = arr

    @property
    def params(self) -> list[NDArray]:
        """``[W, b]``, the live arrays."""
        return [self._W, self._b]

    @property
    def grads(self) -> list[NDArray]:
        """``[dW, db]`` from the last backward pass, aligned with ``params``."""
        return [self.dW, self.db]

    def buffers(self, n: int) -> _Buffers:
        """The work buffers for batches of ``n`` rows (allocated once, then reused)."""
        buf = self._cache.get(n)
        if buf is None:
            buf = _Buffers(n, self.fan_in, self.fan_out, self.dtype, self.keep_z)
            self._cache[n] = buf
            if len(self._cache) > _MAX_CACHED_BATCH_SIZES:
                self._cache.popitem(last=False)
        return buf

    def release(self) -> None:
        """Frees the work buffers (they are rebuilt on the next forward pass)."""
        self._cache.clear()
        self._x = self._buf = None

    def forward(self, x: NDArray) -> NDArray:
        """x (n, fan_in) -> a (n, fan_out). Returns a work buffer, valid until the next call."""
        buf = self._cache.get(x.shape[0])
        if buf is None:
            buf = self.buffers(x.shape[0])
        z = buf.z
        np.dot(x, self._W, out=z)
        if self.fan_out == 1:
            # A scalar add skips the broadcasting loop's setup: twice as fast on small
            # batches, and the same arithmetic (the value is the bias itself).
            np.add(z, self._b.item(), out=z)
        else:
            np.add(z, self._b, out=z)
        if z is not buf.a or self.activation is not IDENTITY:
            self.activation.forward(z, buf.a)
        self._x, self._buf = x, buf
        return buf.a

    def backward(self, grad_a: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/da (n, fan_out) -> dL/dx (n, fan_in); sets dW, db. ``grad_a`` is overwritten."""
        buf = self._buf
        assert buf is not None, "backward() needs a forward() first"
        self.activation.backward(grad_a, buf.z if self.keep_z else None, buf.a, buf.work)
        return self.backward_linear(grad_a, need_dx)

    def backward_linear(self, delta: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dz (n, fan_out) -> dL/dx (n, fan_in); sets dW = x.T·delta, db = sum(delta)."""
        buf, x = self._buf, self._x
        assert buf is not None and x is not None, "backward() needs a forward() first"
        np.dot(x.T, delta, out=self.dW)
        _add_reduce(delta, axis=0, out=self._db_flat)  # np.sum without its Python wrapper
        if not need_dx:
            return None
        if buf.dx is None:
            buf.dx = np.empty((delta.shape[0], self.fan_in), self.dtype)
        return np.dot(delta, self._W.T, out=buf.dx)

    def __repr__(self) -> str:
        return (f"Dense({self.fan_in}, {self.fan_out}, activation={self.activation.name!r}, "
                f"dtype={self.dtype.name!r})")
