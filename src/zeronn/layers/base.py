"""The layer: the unit a network is built from, in the from-scratch books' shape.

As deep-learning-from-scratch's ``common/layers.py``: ``forward(x, training)`` keeps what
``backward`` needs, and ``backward(dout)`` writes the layer's parameter gradients and
returns ``dL/dx``. Unlike the books, a layer owns its arrays: a network builds its layers
(each learns its input shape and says its output shape), then hands each one views into
the network's one flat parameter buffer and one flat gradient buffer (``bind``), so an
optimizer step is a few passes over one array and a parameter can never be silently
rebound (assigning ``layer.W = new`` copies into the view).

Shapes exclude the batch axis: a dense layer's input shape is ``(features,)``; a batch
is ``(n, *shape)``.

Work arrays are allocated once per batch size and reused (``BufferCache``): the array
returned by ``forward`` or ``backward`` is valid until the layer's next call with a
batch of the same size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from zeronn.activations import IDENTITY, Activation, get_activation
from zeronn.activations import Activation as ActivationFunction
from zeronn.initializers import Initializer, get_initializer

__all__ = ["AffineLayer", "BufferCache", "Layer", "Param", "check_new_layers"]

Shape = tuple[int, ...]
T = TypeVar("T")

_MAX_CACHED_BATCH_SIZES = 4  # a training batch, its remainder, and a prediction chunk or two


class BufferCache(OrderedDict[int, T]):
    """Work arrays per batch size: ``cache.get(n) or cache.make(n)``; at most 4 sizes kept.

    A dict, so the hot loop's lookup is one C call (``get``); ``make`` builds and stores
    the arrays for a new size with the function given, dropping the oldest size.
    """

    def __init__(self, make: Callable[[int], T]) -> None:
        super().__init__()
        self._make = make

    def make(self, n: int) -> T:
        buf = self[n] = self._make(n)
        if len(self) > _MAX_CACHED_BATCH_SIZES:
            self.popitem(last=False)
        return buf

    def fetch(self, n: int) -> T:
        """The arrays for batches of ``n`` rows, made on first use."""
        buf = self.get(n)
        return self.make(n) if buf is None else buf

    def __reduce__(self) -> Any:
        # Pickled without its arrays (work buffers are rebuilt on demand).
        return (type(self), (self._make,))


class Param:
    """A parameter attribute (``W = Param()`` in the class body).

    Reading gives the live view into the network's flat buffer; assigning copies into it
    (after checking the shape and that the values are finite numbers), so the optimizer's
    buffer and the layer can never drift apart. A 1-D value is accepted for a (1, k) bias.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name, self.key = name, "_" + name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        try:
            # getattr, not obj.__dict__: touching __dict__ materialises the instance dict,
            # which makes every attribute read of the layer slower (the hot loop's too).
            return getattr(obj, self.key)
        except AttributeError:
            raise AttributeError(f"{type(obj).__name__}.{self.name} does not exist until the "
                                 "layer is built into a network (Sequential([...]))") from None

    def __set__(self, obj: Any, value: Any) -> None:
        target = self.__get__(obj)
        arr = np.asarray(value)
        if arr.ndim == 1 and target.ndim == 2 and target.shape[0] == 1:
            arr = arr.reshape(1, -1)  # a bias given as (k,)
        if arr.shape != target.shape:
            raise ValueError(f"{self.name} has shape {arr.shape}, expected {target.shape}")
        if arr.dtype.kind not in "biuf" or not np.isfinite(arr).all():
            raise ValueError(f"{self.name} must hold finite numbers")
        target[...] = arr


class Layer:
    """Base class of every layer.

    A subclass sets ``param_names`` (the order of ``params``, e.g. ``("W", "b")``) and
    ``state_names`` (non-trainable arrays saved with the model, e.g. BatchNorm's running
    statistics), and writes ``build``, ``forward``, ``backward`` and ``config``.
    Parameter-free layers need only ``forward``/``backward`` (and ``infer`` if
    ``forward`` keeps buffers).

    Attributes after ``build``: ``input_shape``, ``output_shape``, ``dtype``.
    ``activation``: the activation applied last, if the layer ends in one (Dense with an
    activation, Activation); the network asks it to pair the output with a loss.
    ``rng``: the random generator of layers that draw random numbers (Dropout); the network
    sets it (its own generator, or a fit's).
    """

    param_names: ClassVar[tuple[str, ...]] = ()
    state_names: ClassVar[tuple[str, ...]] = ()
    #: a short name for summaries and traces ("dense", "dropout", ...)
    kind: ClassVar[str] = "layer"
    #: what the layer takes as the network's first layer: "values" (floats in the network's
    #: dtype), or "ids" (integer token ids: Embedding, whose ``ids(x)`` checks and converts
    #: them); the network checks and converts X accordingly.
    input_kind: ClassVar[str] = "values"
    #: whether ``infer`` works step by step on a sequence of any length up to the built
    #: one (Dense, LayerNorm, recurrent layers, ...): prediction then takes shorter ones.
    time_flexible: ClassVar[bool] = False
    #: the parameters weight decay leaves alone with ``decay="weights"`` (biases,
    #: normalization gains), as nanoGPT's AdamW groups them
    no_decay: ClassVar[tuple[str, ...]] = ()
    #: whether the layer holds layers (``zeronn.layers.composite``): its ``config()`` then
    #: lists them as ``{"layers": [{"type": ..., "config": ...}, ...]}``.
    composite: ClassVar[bool] = False

    input_shape: Shape
    output_shape: Shape
    dtype: np.dtype
    activation: Activation | None = None
    rng: np.random.Generator | None = None

    # -- structure -------------------------------------------------------------------
    @property
    def built(self) -> bool:
        return hasattr(self, "output_shape")

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        """Learns the input shape and dtype; returns the output shape (default: the same)."""
        self.input_shape, self.dtype = tuple(input_shape), np.dtype(dtype)
        self.output_shape = self.input_shape
        return self.output_shape

    def param_shapes(self) -> list[Shape]:
        """The shape of each parameter, in ``param_names`` order (after ``build``)."""
        return []

    @property
    def n_params(self) -> int:
        """Number of trainable parameters."""
        return int(sum(int(np.prod(s)) for s in self.param_shapes()))

    def bind(self, flat_params: NDArray, flat_grads: NDArray) -> None:
        """Makes the parameters (and gradients) views into flat buffers of length ``n_params``.

        Each parameter is then ``self.W`` (a :class:`Param`: assignment copies into the
        view) and its gradient ``self.dW``; the hot loop reads the view as ``self._W``.
        """
        start = 0
        self.flat_params, self.flat_grads = flat_params, flat_grads
        for name, shape in zip(self.param_names, self.param_shapes()):
            size = int(np.prod(shape))
            setattr(self, "_" + name, flat_params[start:start + size].reshape(shape))
            setattr(self, "d" + name, flat_grads[start:start + size].reshape(shape))
            start += size

    def initialize(self, rng: np.random.Generator) -> None:
        """Sets the initial parameters (and resets the state); default: nothing to do."""

    def link(self, layers: list[Layer]) -> None:
        """Called by the network once every layer is bound, with its layers: a layer that
        uses another's arrays (``TiedDense``) finds them here; default: nothing to do."""

    @property
    def params(self) -> list[NDArray]:
        """The live parameter arrays, in ``param_names`` order."""
        return [getattr(self, name) for name in self.param_names]

    @property
    def grads(self) -> list[NDArray]:
        """The gradient arrays of the last backward pass, aligned with ``params``."""
        return [getattr(self, "d" + name) for name in self.param_names]

    def decayed(self) -> list[bool]:
        """For each parameter (``param_names`` order): whether weight decay applies to it
        when an optimizer decays only the weights."""
        return [name not in self.no_decay for name in self.param_names]

    def set_params(self, values: list[Any]) -> None:
        """Copies arrays into ``params`` (in ``param_names`` order; shapes checked)."""
        for name, value in zip(self.param_names, values):
            setattr(self, name, value)

    @property
    def state(self) -> dict[str, NDArray]:
        """Non-trainable arrays that belong to the model (saved in model files)."""
        return {name: getattr(self, name) for name in self.state_names}

    def set_state(self, state: dict[str, NDArray]) -> None:
        """Copies saved state arrays in (shapes must match)."""
        for name in self.state_names:
            target = getattr(self, name)
            value = np.asarray(state[name])
            if value.shape != target.shape:
                raise ValueError(f"{self.kind} state {name!r} has shape {value.shape}, "
                                 f"expected {target.shape}")
            target[...] = value

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe: ``type(layer)(**layer.config())`` rebuilds it."""
        return {}

    # -- computation -----------------------------------------------------------------
    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        """x (n, *input_shape) -> (n, *output_shape); keeps what ``backward`` needs."""
        raise NotImplementedError

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/d(output) -> dL/dx; writes the parameter gradients. ``dout`` may be overwritten.

        With ``need_dx=False`` (the first layer) it only writes the gradients.
        """
        raise NotImplementedError

    def backward_from_logits(self, delta: NDArray, need_dx: bool = True) -> NDArray | None:
        """Like ``backward``, but ``delta`` is dL/dz *before* the layer's final activation
        (a fused cross-entropy gives it from the logits). A layer without an activation
        (BatchNorm, Dropout, ...) has no step after its logits: this is ``backward``."""
        if self.activation is None:
            return self.backward(delta, need_dx)
        raise ValueError(f"{self!r} does not end in an activation")

    @property
    def logits(self) -> NDArray:
        """The pre-activation of the last forward pass (layers ending in an activation)."""
        raise ValueError(f"{self!r} does not end in an activation")

    @property
    def output(self) -> NDArray:
        """The output of the last forward pass (a work buffer); layers keep it in ``_out``."""
        out: NDArray | None = getattr(self, "_out", None)
        if out is None:
            raise ValueError("no forward pass yet")
        return out

    def infer(self, x: NDArray) -> NDArray:
        """Evaluation-mode output in fresh arrays, touching no buffer or state.

        Prediction is not the hot loop, and this keeps it safe from several threads.
        """
        return np.array(self.forward(x, training=False), copy=True)

    def release(self) -> None:
        """Frees the work buffers (rebuilt on the next forward pass)."""

    def reset_state(self) -> None:
        """Forgets a carried recurrent state (``stateful`` layers); default: nothing to do."""

    # -- description -----------------------------------------------------------------
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def check_new_layers(layers: Sequence[Any], hint: str, place: str) -> None:
    """Each entry a layer that belongs nowhere yet, and no layer object twice, inside
    composites too (a network's layers, a composite's): else the user's ``ValueError``.
    ``hint`` follows "is not a layer"; ``place`` is what to make a new layer for."""
    for layer in layers:
        if not isinstance(layer, Layer):
            raise ValueError(f"{layer!r} is not a layer{hint}")
        if layer.built:
            raise ValueError(f"{layer!r} already belongs to a network: make a new layer "
                             f"for each {place}")
    every = [sub for layer in layers for sub in _with_sublayers(layer)]
    if len({id(layer) for layer in every}) != len(every):
        raise ValueError("the same layer object appears twice: make a new layer for each place")


def _with_sublayers(layer: Layer) -> list[Layer]:
    """The layer and, for a composite, every layer inside it."""
    subs: list[Layer] = getattr(layer, "layers", []) if layer.composite else []
    return [layer, *(s for sub in subs for s in _with_sublayers(sub))]


class AffineLayer(Layer):
    """A linear map ``z`` followed by the layer's activation ``a = f(z)``: Dense, Conv2D.

    Subclasses keep the last forward pass's buffers in ``_buf`` (``z``, ``a``, ``work``;
    ``z`` is ``a`` unless ``keep_z``) and write ``forward`` and ``backward_from_logits``
    (dL/dz -> dL/dx through the linear map); the activation's part of the backward pass is
    the same for all of them and lives here.
    """

    activation: ActivationFunction
    keep_z: bool
    _buf: Any

    def _init_affine(self, activation: str | ActivationFunction | None,
                     init: str | Initializer, use_bias: bool) -> None:
        """The constructor's part shared by every affine layer: activation, initializer
        (an unknown name fails here, not at build time) and the bias."""
        self.activation = get_activation("identity" if activation is None else activation)
        self.init = init if isinstance(init, str) else get_initializer(init)
        get_initializer(init)
        self.use_bias = bool(use_bias)
        self.param_names = ("W", "b") if self.use_bias else ("W",)  # type: ignore[misc]
        self.no_decay = ("b",)  # type: ignore[misc]
        self.keep_logits = False

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/da -> dL/dx; sets the parameter gradients. ``dout`` is overwritten (dL/dz)."""
        buf = self._buf
        if buf is None:
            raise ValueError("backward() needs a forward() first")
        if self.activation is not IDENTITY:
            self.activation.backward(dout, buf.z if self.keep_z else None, buf.a, buf.work)
        return self.backward_from_logits(dout, need_dx)

    @property
    def logits(self) -> NDArray:
        if self._buf is None:
            raise ValueError("no forward pass yet")
        return self._buf.z

    @property
    def output(self) -> NDArray:
        if self._buf is None:
            raise ValueError("no forward pass yet")
        return self._buf.a
