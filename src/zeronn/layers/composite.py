"""Layers made of layers: ``Composite`` (a stack used as one layer) and ``Residual``.

A composite holds its sublayers as a small Sequential does, and is one layer to the
network: its parameters are its sublayers' parameters back to back (named
``"<index>.<name>"``, e.g. ``"1.W"``), so they live in the network's one flat buffer and
model files, ``summary()``, ``trace`` and ``check_gradients`` see them with no code of
their own. A user's composite subclasses :class:`Composite` and writes ``forward`` and
``backward`` from its sublayers' (``self.layers``), as :class:`Residual` does::

    class Residual(Composite):
        def forward(self, x, training=False):
            return x + super().forward(x, training)        # the stack, plus the input
        def backward(self, dout, need_dx=True):
            return super().backward(dout.copy()) + dout    # both paths' gradients

(``Residual`` below does the same with buffers made once per batch size.) Model files
rebuild a composite from ``config()``, ``{"layers": [{"type": ..., "config": ...}, ...]}``,
so a subclass with more constructor arguments adds them to ``config()`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from zeronn.layers.base import BufferCache, Layer, Shape, check_new_layers

__all__ = ["Composite", "Residual", "walk"]


class Composite(Layer):
    """A stack of layers used as one layer: x -> layers[-1](...layers[0](x)).

    ``layers``: the sublayers, in order (each used in one place only). Parameters and
    state arrays are the sublayers', in order, named ``"<i>.<name>"`` (``i`` from 0).
    """

    kind = "composite"
    composite: ClassVar[bool] = True

    def __init__(self, layers: Sequence[Layer]) -> None:
        if isinstance(layers, Layer) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(f"{type(self).__name__} takes a non-empty list of layers, got "
                             f"{layers!r}")
        check_new_layers(layers, f": {type(self).__name__} holds zeronn layers", "place")
        self.layers: list[Layer] = list(layers)
        self.param_names = tuple(  # type: ignore[misc]
            f"{i}.{name}" for i, layer in enumerate(self.layers) for name in layer.param_names)
        self.time_flexible = all(  # type: ignore[misc]
            layer.time_flexible for layer in self.layers)
        self._rng: np.random.Generator | None = None

    # -- structure: everything is the sublayers' -------------------------------------
    @property
    def state_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{i}.{name}" for i, layer in enumerate(self.layers)
                     for name in layer.state_names)

    @property
    def rng(self) -> np.random.Generator | None:
        return self._rng

    @rng.setter
    def rng(self, rng: np.random.Generator | None) -> None:
        self._rng = rng  # the sublayers draw from the network's generator too (Dropout)
        for layer in self.layers:
            layer.rng = rng

    def walk(self) -> list[tuple[str, Layer]]:
        """Every sublayer, depth first, with its path (``"0"``, ``"1.0"``, ...)."""
        return walk(self.layers)

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        shape = self.input_shape
        for layer in self.layers:
            shape = layer.build(shape, self.dtype)
        self.output_shape = shape
        return shape

    def param_shapes(self) -> list[Shape]:
        return [s for layer in self.layers for s in layer.param_shapes()]

    def bind(self, flat_params: NDArray, flat_grads: NDArray) -> None:
        self.flat_params, self.flat_grads = flat_params, flat_grads
        start = 0
        for layer in self.layers:
            stop = start + layer.n_params
            layer.bind(flat_params[start:stop], flat_grads[start:stop])
            start = stop

    def initialize(self, rng: np.random.Generator) -> None:
        for layer in self.layers:
            layer.initialize(rng)

    def link(self, layers: list[Layer]) -> None:
        for layer in self.layers:
            layer.link(layers)

    @property
    def params(self) -> list[NDArray]:
        return [p for layer in self.layers for p in layer.params]

    @property
    def grads(self) -> list[NDArray]:
        return [g for layer in self.layers for g in layer.grads]

    def decayed(self) -> list[bool]:
        return [d for layer in self.layers for d in layer.decayed()]

    def set_params(self, values: list[Any]) -> None:
        start = 0
        for layer in self.layers:
            k = len(layer.param_names)
            layer.set_params(values[start:start + k])
            start += k

    @property
    def state(self) -> dict[str, NDArray]:
        return {f"{i}.{name}": value for i, layer in enumerate(self.layers)
                for name, value in layer.state.items()}

    def set_state(self, state: dict[str, NDArray]) -> None:
        for i, layer in enumerate(self.layers):
            layer.set_state({name: state[f"{i}.{name}"] for name in layer.state_names})

    def config(self) -> dict[str, Any]:
        return {"layers": [{"type": type(layer).__name__, "config": layer.config()}
                           for layer in self.layers]}

    def release(self) -> None:
        for layer in self.layers:
            layer.release()

    def reset_state(self) -> None:
        for layer in self.layers:
            layer.reset_state()

    # -- computation: the stack, as a network runs it --------------------------------
    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        d: NDArray | None = dout
        last = len(self.layers) - 1
        for i in range(last, -1, -1):
            assert d is not None
            d = self.layers[i].backward(d, need_dx or i > 0)
        return d

    @property
    def output(self) -> NDArray:
        return self.layers[-1].output

    def infer(self, x: NDArray) -> NDArray:
        for layer in self.layers:
            x = layer.infer(x)
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}([{', '.join(map(repr, self.layers))}])"


def walk(layers: Sequence[Layer]) -> list[tuple[str, Layer]]:
    """``layers`` and every composite's sublayers, depth first, each with its path
    (``"0"``, ``"2.1"``, ...: the rows of a summary)."""
    out: list[tuple[str, Layer]] = []
    for i, layer in enumerate(layers):
        out.append((str(i), layer))
        if isinstance(layer, Composite):
            out += [(f"{i}.{path}", sub) for path, sub in layer.walk()]
    return out


class Residual(Composite):
    """A residual block: x -> x + layers(x), the shape kept (a transformer's two halves).

    Backward adds the two paths' gradients: dL/dx = dout + (the stack's backward of dout).
    """

    kind = "residual"

    def __init__(self, layers: Sequence[Layer]) -> None:
        super().__init__(layers)
        self._cache: BufferCache[tuple[NDArray, NDArray]] | None = None
        self._out: NDArray | None = None

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        shape = super().build(input_shape, dtype)
        if shape != self.input_shape:
            raise ValueError(f"a Residual's layers must keep the shape of its input "
                             f"(n, {', '.join(map(str, self.input_shape))}), but they output "
                             f"(n, {', '.join(map(str, shape))}): end the stack in a layer of "
                             f"the input's size (e.g. Dense({self.input_shape[-1]}))")
        self._cache = BufferCache(self._make_buffers)
        return shape

    def _make_buffers(self, n: int) -> tuple[NDArray, NDArray]:
        shape = (n, *self.input_shape)
        return np.empty(shape, self.dtype), np.empty(shape, self.dtype)

    def release(self) -> None:
        super().release()
        if self._cache is not None:
            self._cache.clear()
        self._out = None

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        out, _ = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        np.add(x, super().forward(x, training), out=out)
        self._out = out
        return out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        _, d = self._cache.fetch(dout.shape[0])  # type: ignore[union-attr]
        np.copyto(d, dout)  # the stack overwrites what it is given; dout is the skip's
        dx = super().backward(d, need_dx)
        if dx is None:
            return None
        dx += dout
        return dx

    @property
    def output(self) -> NDArray:
        if self._out is None:
            raise ValueError("no forward pass yet")
        return self._out

    def infer(self, x: NDArray) -> NDArray:
        return x + super().infer(x)
