"""ONNX export: a trained network (or estimator, or CLI model) as a standard ONNX graph.

The graph takes ``X`` as float32 (batch, *input_shape), or as int64 token ids (batch, T)
when the network's first layer is an ``Embedding``, with a dynamic batch dimension. A
network of sequences whose every layer works step by step (``net.time_flexible``: ids
(T,) or values (T, features) in) takes a dynamic number of steps too, 1 to T, as
``predict`` does; other inputs have the network's fixed shape. The graph computes what
``predict`` computes (evaluation mode), layer by layer through one table keyed by
``layer.kind``:

- ``Dense``: ``Gemm`` (``MatMul`` without a bias; ``MatMul`` and ``Add`` on sequences
  (batch, T, D), every step alike), then its activation;
- ``Activation``: its activation as ONNX nodes: Relu, LeakyRelu(alpha=0.01),
  Elu(alpha=1), Sigmoid, Tanh, Softplus, Softmax on the last axis; GELU's tanh
  approximation is composed from Mul/Add/Tanh where the opset has no ``Gelu`` (below 20);
- ``Dropout``: nothing (evaluation mode is the identity);
- ``BatchNorm``: ``BatchNormalization`` with the running statistics;
- ``LayerNorm``: ``LayerNormalization`` over every feature axis, or over the last axis
  of a sequence (batch, T, D) (opset 17 or newer);
- ``Conv2D``: ``Conv`` (strides, pads), then its activation;
- ``MaxPool2D``: ``MaxPool`` (its padding is -inf, as zeronn's);
- ``AvgPool2D``: ``AveragePool`` with ``count_include_pad=1`` (the padding zeros count);
- ``Flatten``: ``Flatten(axis=1)``, the same (C, H, W) order;
- ``Embedding``, ``PositionalEmbedding``, ``RNN``, ``LSTM``, ``GRU``,
  ``MultiHeadAttention``: see :mod:`zeronn.onnx_sequences` (``Gather``, ``Add`` of
  ``W[:T]``, ONNX's recurrent operators, the attention's matrix products and softmax);
- ``Composite``: its sublayers' nodes in turn; ``Residual``: those, plus ``Add`` of its
  input.

What goes around the network comes from a :class:`GraphSpec`: a network exports with
its default spec; a front-end object (a ``zeronn.sklearn`` estimator, a
``zeronn.tabular`` model) is asked for one through its ``onnx_spec()`` method, so this
module knows no front end. Input scaling (``(x - mean) / scale``) is applied first;
output scaling (``y * scale + mean``) is undone last; classifiers output ``label`` and
``probabilities``.

A spec may instead describe its inputs column by column (``GraphSpec.columns``, a tuple of
:class:`InputColumn`): the graph then takes one (batch, 1) input per column, named after
it, and encodes each through one table keyed by ``InputColumn.encoding``
(:data:`ENCODINGS`), as scikit-learn-onnx does for a ``ColumnTransformer``:

- ``number``: float, NaN for missing: ``IsNaN``/``Where`` fill it (a median, say), and
  an optional 0/1 "was missing" column follows;
- ``category``: string: an ``ai.onnx.ml`` ``LabelEncoder`` maps each listed value to its
  output column and every other value to a ``default`` column (an "other" bucket), then
  ``Equal`` against the column numbers one-hot encodes it;
- ``days``: double, days since 1970-01-01 (fractions for times of day), NaN for missing:
  calendar parts (year, month, day, day of week, day of year) by integer calendar
  arithmetic (``Floor``/``Div``), and days since an origin, each NaN part filled.

The encoded blocks are concatenated in order (optionally permuted by
``GraphSpec.feature_order``) into the network's input; this module knows encodings, not
what a front end uses them for.

``onnx`` is an optional extra, imported only when exporting.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn import onnx_sequences
from zeronn._atomic import atomic_write
from zeronn._validation import flag
from zeronn._version import __version__
from zeronn.activations import GELU_C, GELU_K, LEAKY_SLOPE
from zeronn.layers.base import Layer
from zeronn.layers.composite import Composite, Residual
from zeronn.models import MLP
from zeronn.network import Network
from zeronn.tasks import (
    MULTILABEL,
    THRESHOLD,
    classification_task,
    label_array,
    label_kind_of_dtype,
)

__all__ = ["DATE_PARTS", "DTYPES", "ENCODINGS", "MIN_OPSET", "TASKS", "GraphSpec", "InputColumn",
           "export_onnx", "graph_spec"]

MIN_OPSET = 13  # Softmax works on one axis (and Split/Squeeze take inputs) from opset 13
GELU_OPSET = 20  # the first opset with a Gelu operator (approximate="tanh")
LAYERNORM_OPSET = 17  # the first opset with LayerNormalization
ML_OPSET = 3  # ai.onnx.ml: LabelEncoder maps strings to int64 (opset 2 on), what ORT runs

#: What the graph outputs, per task (the default ``GraphSpec.output_names``):
#: ``network`` the network's output as is; ``regression`` predictions (after undoing
#: the output scaling); ``classification`` one label per row and the class
#: probabilities; ``multilabel`` a 0/1 indicator per label and the label probabilities.
TASKS: dict[str, tuple[str, ...]] = {
    "network": ("output",),
    "regression": ("predictions",),
    "classification": ("label", "probabilities"),
    "multilabel": ("label", "probabilities"),
}


#: The column encodings of :class:`InputColumn`, each with the element type of its graph
#: input (shape (batch, 1)): ``number`` float (NaN: missing), ``category`` string,
#: ``days`` double (days since 1970-01-01, NaN: missing).
ENCODINGS: dict[str, str] = {"number": "float", "category": "string", "days": "double"}

#: What a ``days`` column can output, pandas' ``.dt`` meanings: ``year``, ``month``
#: (1-12), ``day`` (1-31), ``dayofweek`` (Monday 0 to Sunday 6), ``dayofyear`` (1-366),
#: ``days`` (days since ``origin``, fractions kept).
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "days")


@dataclass(frozen=True, eq=False)
class InputColumn:
    """One graph input, a (batch, 1) column named ``name``, and the features it encodes.

    ``encoding`` is a key of :data:`ENCODINGS`; ``params`` are its settings:

    - ``number``: ``fill`` (the finite value a NaN becomes) and ``indicator`` (bool,
      default False: a 0/1 "was NaN" column follows). Width 1 or 2.
    - ``category``: ``mapping`` ({value: output column}), ``width`` (the number of
      output columns, default ``max(mapping) + 1``), ``default`` (the column every value
      not in ``mapping`` lights up, default -1: none, a row of zeros). Width ``width``.
    - ``days``: ``parts`` (names from :data:`DATE_PARTS`, in output order), ``origin``
      (days since 1970-01-01 the ``days`` part counts from, default 0), ``fill`` (one
      finite value per part, what that part is when the input is NaN) and ``indicator``
      (bool, default False: a 0/1 "was NaN" column follows). Width ``len(parts)`` (+1).

    Every encoding outputs float32 columns; their number is :attr:`width`.
    """

    name: str
    encoding: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"an input column needs a non-empty name, got {self.name!r}")
        entry = _ENCODING_OPS.get(self.encoding)
        if entry is None:
            raise ValueError(f"input column {self.name!r}: unknown encoding "
                             f"{self.encoding!r}; use one of {', '.join(ENCODINGS)}")
        if not isinstance(self.params, Mapping):
            raise ValueError(f"input column {self.name!r}: params must be a mapping")
        unknown = sorted(set(map(str, self.params)) - set(entry.keys))
        if unknown:
            raise ValueError(f"input column {self.name!r} ({self.encoding}): unknown "
                             f"param(s) {', '.join(unknown)}; it takes "
                             f"{', '.join(entry.keys)}")
        try:
            params = entry.check(dict(self.params))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"input column {self.name!r} ({self.encoding}): {exc}") from None
        object.__setattr__(self, "params", params)

    @property
    def width(self) -> int:
        """How many float columns this input becomes."""
        return int(_ENCODING_OPS[self.encoding].width(self.params))


@dataclass(frozen=True, eq=False)
class GraphSpec:
    """Everything ONNX export needs: the network and what goes around it.

    Parameters
    ----------
    network : the trained network (its ``predict`` is what the graph computes inside).
    task : a key of :data:`TASKS`: ``"network"`` (default), ``"regression"``,
        ``"classification"`` or ``"multilabel"``.
    x_scaling : ``(mean, scale)``, each ``input_shape`` values (flattened is fine): the
        graph computes ``(X - mean) / scale`` before the network. ``None``: no scaling.
    y_scaling : ``(mean, scale)``, each ``n_outputs`` values: the output is
        ``out * scale + mean`` (``network`` and ``regression`` tasks only).
    classes : the class labels (n_classes,), for ``classification`` and ``multilabel``;
        their kind (strings, integers, floats or booleans) sets the dtype of the
        ``label`` output. Stored as the array of that kind (strings as objects).
    input_name : the graph's input (default ``"X"``).
    output_names : the graph's outputs, as many as the task's defaults in :data:`TASKS`
        (empty: those defaults).
    kind : what made the model, written as the ``zeronn_kind`` metadata (empty: the
        network class's name in lower case, ``"mlp"``, ``"sequential"``...).
    metadata : more ``metadata_props``, each value written as JSON (feature names...).
    columns : :class:`InputColumn` s (empty: the one input ``input_name``). Given, the
        graph takes one input per column, named after it, encodes each, and concatenates
        the blocks (in order) into the network's input; their widths must add up to it.
        ``x_scaling`` then applies to the encoded features.
    feature_order : with ``columns``, a permutation of the concatenated encoded columns:
        network input ``j`` is encoded column ``feature_order[j]`` (``None``: in order).

    The network's outputs must fit the task: one sigmoid output for two classes, one
    softmax output per class for more, one sigmoid output per label for multilabel.
    """

    network: Network
    task: str = "network"
    x_scaling: tuple[NDArray, NDArray] | None = None
    y_scaling: tuple[NDArray, NDArray] | None = None
    classes: NDArray | None = None
    input_name: str = "X"
    output_names: tuple[str, ...] = ()
    kind: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    columns: tuple[InputColumn, ...] = ()
    feature_order: NDArray | None = None

    def __post_init__(self) -> None:
        net = self.network
        if not isinstance(net, Network):
            raise ValueError(f"GraphSpec.network must be a zeronn Network, got "
                             f"{type(net).__name__}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        set_ = object.__setattr__  # frozen: normalise the fields once, here
        n_in = int(np.prod(net.input_shape))
        if net.layers[0].input_kind == "ids" and (self.x_scaling is not None or self.columns):
            raise ValueError("the network takes token ids (its first layer is an "
                             "Embedding): the graph's input is the int64 ids, which take "
                             "no x_scaling and no input columns")
        if self.x_scaling is not None:
            set_(self, "x_scaling", _scaling(self.x_scaling, n_in, "x_scaling"))
        if self.y_scaling is not None:
            if self.task not in ("network", "regression"):
                raise ValueError(f"y_scaling applies to network and regression outputs, "
                                 f"not to a {self.task} task")
            set_(self, "y_scaling", _scaling(self.y_scaling, net.n_outputs, "y_scaling"))
        if self.task in ("classification", "multilabel"):
            set_(self, "classes", _label_array(self.classes))
            self._check_head()
        elif self.classes is not None:
            raise ValueError(f"classes are for classification and multilabel tasks, not "
                             f"{self.task}")
        self._check_columns(n_in)
        inputs = self.input_names
        names = tuple(self.output_names) or TASKS[self.task]
        if len(names) != len(TASKS[self.task]) or len({*names, *inputs}) != \
                len(names) + len(inputs) or not all(isinstance(n, str) and n for n in names) \
                or not (isinstance(self.input_name, str) and self.input_name):
            raise ValueError(f"a {self.task} graph has {len(TASKS[self.task])} output(s) "
                             f"({', '.join(TASKS[self.task])}): give as many distinct, "
                             f"non-empty output_names, none equal to an input name "
                             f"({_names(inputs)}); got {names!r}")
        set_(self, "output_names", names)
        set_(self, "kind", self.kind or type(net).__name__.lower())
        set_(self, "metadata", dict(self.metadata))

    @property
    def input_names(self) -> tuple[str, ...]:
        """The graph's inputs: one per column, or ``input_name``."""
        return tuple(c.name for c in self.columns) if self.columns else (self.input_name,)

    def _check_columns(self, n_in: int) -> None:
        set_ = object.__setattr__
        columns = tuple(self.columns)
        if not all(isinstance(c, InputColumn) for c in columns):
            raise ValueError("GraphSpec.columns must hold InputColumn objects")
        set_(self, "columns", columns)
        if not columns:
            if self.feature_order is not None:
                raise ValueError("feature_order permutes encoded columns: give columns too")
            return
        if len(self.network.input_shape) != 1:
            raise ValueError(f"input columns feed a network with flat inputs, not one of "
                             f"input shape {self.network.input_shape}")
        names = [c.name for c in columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"input column names must be distinct: {_names(twice)} "
                             "appear more than once")
        width = sum(c.width for c in columns)
        if width != n_in:
            raise ValueError(f"the input columns encode {width} features, but the network "
                             f"takes {n_in}")
        if self.feature_order is not None:
            order = np.asarray(self.feature_order)
            if order.shape != (n_in,) or order.dtype.kind not in "iu" or \
                    not np.array_equal(np.sort(order), np.arange(n_in)):
                raise ValueError(f"feature_order must be a permutation of 0..{n_in - 1} "
                                 f"(one index per network input), got {self.feature_order!r}")
            set_(self, "feature_order", order.astype(np.int64))

    def _check_head(self) -> None:
        """The network's output layer must be the one the task decodes."""
        net, classes = self.network, self.classes
        assert classes is not None
        n = len(classes)
        rule = MULTILABEL if self.task == "multilabel" else classification_task(n)
        want, act = rule.n_outputs(n), rule.output_activation
        if net.n_outputs != want or net.output_activation != act or len(net.output_shape) != 1:
            raise ValueError(f"{n} classes ({self.task}) need {want} {act} output(s), but "
                             f"the network has {net.n_outputs} {net.output_activation} "
                             "output(s)")


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _scaling(pair: Any, n: int, what: str) -> tuple[NDArray, NDArray]:
    try:
        mean, scale = pair
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a (mean, scale) pair of arrays or None") from None
    out = []
    for a, part in ((mean, "mean"), (scale, "scale")):
        arr = np.asarray(a, dtype=np.float64).reshape(-1)
        if arr.size != n:
            raise ValueError(f"{what} {part} has {arr.size} values, expected {n}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} {part} must hold finite numbers")
        out.append(arr)
    return out[0], out[1]


def _label_array(classes: Any) -> NDArray:
    """The class labels as the array ``label`` is taken from, of the dtype of their kind
    (``zeronn.tasks.label_array``: strings as objects, int64, float64 or bool)."""
    arr = None if classes is None else np.asarray(classes)
    kind = None if arr is None else label_kind_of_dtype(arr.dtype)
    if arr is None or arr.ndim != 1 or arr.size < 2 or kind is None or (
            kind == "str" and not all(isinstance(c, str) for c in arr.tolist())):
        raise ValueError(f"no usable class labels (classes={classes!r}): export needs at "
                         "least two classes of numbers, strings or booleans")
    return label_array(arr.tolist(), kind)


def graph_spec(model: Any) -> GraphSpec:
    """The :class:`GraphSpec` ``model`` exports with: a network's default spec, a spec as
    is, or what an object's ``onnx_spec()`` method returns."""
    if isinstance(model, GraphSpec):
        return model
    if isinstance(model, Network):
        return GraphSpec(model)
    method = getattr(model, "onnx_spec", None)
    if not callable(method):
        raise ValueError(f"cannot export a {type(model).__name__}: export_onnx takes a "
                         "network (Sequential, MLP), a zeronn.sklearn estimator, a "
                         "zeronn.tabular model, or an object whose onnx_spec() returns a "
                         "GraphSpec")
    spec = method()
    if not isinstance(spec, GraphSpec):
        raise ValueError(f"{type(model).__name__}.onnx_spec() returned a "
                         f"{type(spec).__name__}, not a GraphSpec")
    return spec


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install zeronn[onnx]") \
            from None
    return onnx


class _Graph:
    """Accumulates nodes and constant tensors, giving every value a unique name."""

    def __init__(self, onnx: Any, opset: int, dynamic_time: bool = False,
                 dtype: Any = np.float32) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.opset = opset
        self.dynamic_time = dynamic_time  # the input's T may be shorter than the network's
        self.dtype = np.dtype(dtype)  # the network's values and constants
        self.float_type = int(onnx.helper.np_dtype_to_tensor_dtype(self.dtype))
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.uses_ml = False  # an ai.onnx.ml operator is in the graph: import its domain
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: Any, dtype: Any = None) -> str:
        """A constant, in the graph's float type unless ``dtype`` says otherwise."""
        arr = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.name(stem)
        if arr.dtype == object:
            t = self.helper.make_tensor(name, self.onnx.TensorProto.STRING, arr.shape,
                                        [str(v).encode("utf-8") for v in arr.ravel()])
        else:
            # (ascontiguousarray alone makes a 0-d array 1-d: a scalar index must stay 0-d)
            t = self.onnx.numpy_helper.from_array(
                np.ascontiguousarray(arr).reshape(arr.shape), name)
        self.initializers.append(t)
        return name

    def op(self, op_type: str, inputs: Sequence[str], stem: str | None = None,
           output: str | None = None, **attrs: Any) -> str:
        out = output or self.name(stem or op_type.lower())
        self.node(op_type, inputs, [out], **attrs)
        return out

    def node(self, op_type: str, inputs: Sequence[str], outputs: Sequence[str],
             **attrs: Any) -> None:
        """A node of several outputs (an empty name: that optional output not computed)."""
        self.nodes.append(self.helper.make_node(op_type, list(inputs), list(outputs),
                                                name=self.name(op_type), **attrs))


def _activation(g: _Graph, name: str, x: str, stem: str) -> str:
    """The nodes computing activation ``name`` of ``x`` (batch, width)."""
    if name == "identity":
        return x
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}
    if name in simple:
        # Softplus: zeronn returns z itself above 20 (PyTorch's threshold), where
        # log(1 + e^z) already equals z to float32 precision, so the plain operator matches.
        return g.op(simple[name], [x], stem)
    if name == "leaky_relu":
        return g.op("LeakyRelu", [x], stem, alpha=LEAKY_SLOPE)
    if name == "elu":
        return g.op("Elu", [x], stem, alpha=1.0)
    if name == "softmax":
        return g.op("Softmax", [x], stem, axis=-1)
    if name == "gelu":
        if g.opset >= GELU_OPSET:
            return g.op("Gelu", [x], stem, approximate="tanh")
        # 0.5 z (1 + tanh(c z (1 + k z^2))), in the order zeronn's own forward pass uses.
        one = g.const("one", 1.0)
        u = g.op("Mul", [x, x])
        u = g.op("Mul", [u, g.const("gelu_k", GELU_K)])
        u = g.op("Add", [u, one])
        u = g.op("Mul", [u, x])
        u = g.op("Mul", [u, g.const("gelu_c", GELU_C)])
        u = g.op("Tanh", [u])
        u = g.op("Add", [u, one])
        u = g.op("Mul", [x, u])
        return g.op("Mul", [u, g.const("half", 0.5)], stem)
    raise ValueError(f"activation {name!r} has no ONNX equivalent; export supports identity, "
                     "relu, leaky_relu, elu, gelu, sigmoid, tanh, softplus and softmax")


# -- one entry per kind of layer --------------------------------------------------------------
# Each reads the layer through the Layer interface only (params by name, state, config),
# so a layer class needs nothing export-specific. ``i`` is the layer's place, "3" or, in a
# composite, "3.1": it makes the names of its constants readable.
def _activation_name(layer: Layer) -> str:
    return "identity" if layer.activation is None else layer.activation.name


def _dense(g: _Graph, layer: Layer, x: str, i: str) -> str:
    p = onnx_sequences.params_of(layer)
    W = g.const(f"W{i}", p["W"])
    if "b" not in p:
        z = g.op("MatMul", [x, W], f"z{i}")
    elif len(layer.input_shape) == 1:
        z = g.op("Gemm", [x, W, g.const(f"b{i}", p["b"].reshape(-1))], f"z{i}")
    else:  # (batch, T, D): MatMul acts on the last axis, every step alike; Gemm is 2-D only
        z = g.op("Add", [g.op("MatMul", [x, W]), g.const(f"b{i}", p["b"].reshape(-1))],
                 f"z{i}")
    return _activation(g, _activation_name(layer), z, f"a{i}")


def _tied_dense(g: _Graph, layer: Layer, x: str, i: str) -> str:
    # The Embedding's matrix, transposed (layer.W is that view): a constant of its own here.
    W = g.const(f"W{i}", np.ascontiguousarray(layer.W))  # type: ignore[attr-defined]
    return _activation(g, _activation_name(layer), g.op("MatMul", [x, W], f"z{i}"), f"a{i}")


def _activation_layer(g: _Graph, layer: Layer, x: str, i: str) -> str:
    return _activation(g, _activation_name(layer), x, f"a{i}")


def _dropout(g: _Graph, layer: Layer, x: str, i: str) -> str:
    return x  # inverted dropout: evaluation mode passes x through unchanged


def _batchnorm(g: _Graph, layer: Layer, x: str, i: str) -> str:
    # Inference mode: (x - running_mean) / sqrt(running_var + eps) * gamma + beta, per
    # feature (axis 1), for (n, C) and (n, C, H, W) inputs alike.
    p, s = onnx_sequences.params_of(layer), layer.state
    inputs = [x, g.const(f"gamma{i}", p["gamma"]), g.const(f"beta{i}", p["beta"]),
              g.const(f"running_mean{i}", s["running_mean"]),
              g.const(f"running_var{i}", s["running_var"])]
    return g.op("BatchNormalization", inputs, f"bn{i}", epsilon=float(layer.config()["eps"]))


def _layernorm(g: _Graph, layer: Layer, x: str, i: str) -> str:
    # Over every axis after the batch (axis 1 on), gamma and beta shaped like one sample;
    # a sequence (batch, T, D) step by step over its last axis, gamma and beta (D,).
    p = onnx_sequences.params_of(layer)
    axis = -1 if len(layer.input_shape) == 2 else 1
    return g.op("LayerNormalization",
                [x, g.const(f"gamma{i}", p["gamma"]), g.const(f"beta{i}", p["beta"])],
                f"ln{i}", axis=axis, epsilon=float(layer.config()["eps"]))


def _pads(layer: Layer) -> list[int]:
    """ONNX's [top, left, bottom, right] from a (height, width) padding on each side."""
    ph, pw = layer.padding  # type: ignore[attr-defined]
    return [ph, pw, ph, pw]


def _conv(g: _Graph, layer: Layer, x: str, i: str) -> str:
    p = onnx_sequences.params_of(layer)
    inputs = [x, g.const(f"W{i}", p["W"])]
    if "b" in p:
        inputs.append(g.const(f"b{i}", p["b"]))
    z = g.op("Conv", inputs, f"z{i}", kernel_shape=list(p["W"].shape[2:]),
             strides=list(layer.stride), pads=_pads(layer))  # type: ignore[attr-defined]
    return _activation(g, _activation_name(layer), z, f"a{i}")


def _pool(op_type: str, **attrs: Any) -> Callable[[_Graph, Layer, str, str], str]:
    def emit(g: _Graph, layer: Layer, x: str, i: str) -> str:
        return g.op(op_type, [x], f"pool{i}",
                    kernel_shape=list(layer.pool_size),  # type: ignore[attr-defined]
                    strides=list(layer.stride), pads=_pads(layer),  # type: ignore[attr-defined]
                    **attrs)
    return emit


def _flatten(g: _Graph, layer: Layer, x: str, i: str) -> str:
    return g.op("Flatten", [x], f"flat{i}", axis=1)


def _sublayers(layer: Layer) -> list[Layer]:
    return list(layer.layers)  # type: ignore[attr-defined]


def _composite(g: _Graph, layer: Layer, x: str, i: str) -> str:
    """The sublayers' nodes in turn."""
    for j, sub in enumerate(_sublayers(layer)):
        x = _LAYER_OPS[sub.kind].emit(g, sub, x, f"{i}.{j}")
    return x


def _residual(g: _Graph, layer: Layer, x: str, i: str) -> str:
    return g.op("Add", [x, _composite(g, layer, x, i)], f"residual{i}")


@dataclass(frozen=True)
class _LayerOp:
    """How one kind of layer becomes nodes: ``emit(graph, layer, x, index) -> output``."""

    emit: Callable[[_Graph, Layer, str, str], str]
    operator: str  # named in errors
    min_opset: int = MIN_OPSET


_LAYER_OPS: dict[str, _LayerOp] = {
    "dense": _LayerOp(_dense, "Gemm"),
    "tied_dense": _LayerOp(_tied_dense, "MatMul"),
    "activation": _LayerOp(_activation_layer, "its activation"),
    "dropout": _LayerOp(_dropout, "nothing"),
    "batchnorm": _LayerOp(_batchnorm, "BatchNormalization"),
    "layernorm": _LayerOp(_layernorm, "LayerNormalization", LAYERNORM_OPSET),
    "conv2d": _LayerOp(_conv, "Conv"),
    "maxpool2d": _LayerOp(_pool("MaxPool"), "MaxPool"),
    "avgpool2d": _LayerOp(_pool("AveragePool", count_include_pad=1), "AveragePool"),
    "flatten": _LayerOp(_flatten, "Flatten"),
    "embedding": _LayerOp(onnx_sequences.embedding, "Gather"),
    "positional_embedding": _LayerOp(onnx_sequences.positional_embedding, "Add"),
    "rnn": _LayerOp(onnx_sequences.recurrent, "RNN"),
    "lstm": _LayerOp(onnx_sequences.recurrent, "LSTM"),
    "gru": _LayerOp(onnx_sequences.recurrent, "GRU"),
    "attention": _LayerOp(onnx_sequences.attention, "MatMul/Softmax"),
    "composite": _LayerOp(_composite, "its layers' nodes"),
    "residual": _LayerOp(_residual, "its layers' nodes and Add"),
}


def _check_layer(layer: Layer, i: str, opset: int) -> None:
    """Raises, naming the layer, unless it (and every sublayer) can be exported."""
    entry = _LAYER_OPS.get(layer.kind)
    if entry is None:
        raise ValueError(f"layer {i} ({type(layer).__name__}, kind {layer.kind!r}) has no "
                         f"ONNX export; export supports the layer kinds "
                         f"{', '.join(_LAYER_OPS)}")
    if opset < entry.min_opset:
        raise ValueError(f"layer {i} ({type(layer).__name__}) exports as {entry.operator}, "
                         f"which needs ONNX opset {entry.min_opset} or newer: export with "
                         f"opset={entry.min_opset} (got opset={opset})")
    if entry.emit in (_composite, _residual):
        base = Residual if entry.emit is _residual else Composite
        if type(layer).infer is not base.infer:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has an infer() of its "
                             f"own, so its output is not {base.__name__}'s: export "
                             f"supports {base.__name__} as it is")
        for j, sub in enumerate(_sublayers(layer)):
            _check_layer(sub, f"{i}.{j}", opset)


def _network(g: _Graph, net: Network, x: str) -> str:
    """The nodes of every layer in turn; returns the name of the network's output."""
    for i, layer in enumerate(net.layers, start=1):
        _check_layer(layer, str(i), g.opset)
    for i, layer in enumerate(net.layers, start=1):
        x = _LAYER_OPS[layer.kind].emit(g, layer, x, str(i))
    return x


# -- one entry per column encoding ------------------------------------------------------------
# Each has a check (normalises and validates the params, raising TypeError/ValueError with
# the reason), a width (how many float columns) and an emit: (graph, params, input) -> the
# name of a float32 (batch, width) value.
def _finite(value: Any, what: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{what} must be a finite number, got {value!r}")
    return out


def _index(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or \
            not low <= value < high:
        raise ValueError(f"{what} must be an integer from {low} to {high - 1}, got {value!r}")
    return int(value)


def _check_number(p: dict[str, Any]) -> dict[str, Any]:
    if "fill" not in p:
        raise ValueError("give fill, the value a missing (NaN) input becomes")
    return {"fill": _finite(p["fill"], "fill"),
            "indicator": flag("indicator", p.get("indicator", False))}


def _check_category(p: dict[str, Any]) -> dict[str, Any]:
    mapping = p.get("mapping")
    if not isinstance(mapping, Mapping) or not mapping or \
            not all(isinstance(k, str) for k in mapping):
        raise ValueError("mapping must be a non-empty {string value: output column} dict")
    width = p.get("width", max(int(v) for v in mapping.values()) + 1)
    width = _index(width, "width", 1, 2 ** 31)
    mapping = {k: _index(v, f"the column of {k!r}", 0, width) for k, v in mapping.items()}
    default = _index(p.get("default", -1), "default (-1: no column)", -1, width)
    return {"mapping": mapping, "width": width, "default": default}


def _check_days(p: dict[str, Any]) -> dict[str, Any]:
    parts = p.get("parts")
    if isinstance(parts, str) or not isinstance(parts, Sequence) or not parts or \
            any(part not in DATE_PARTS for part in parts) or len(set(parts)) != len(parts):
        raise ValueError(f"parts must be distinct names from {', '.join(DATE_PARTS)}, got "
                         f"{parts!r}")
    fill = p.get("fill")
    if isinstance(fill, str) or not isinstance(fill, Sequence) or len(fill) != len(parts):
        raise ValueError(f"fill must hold one value per part ({len(parts)}), got {fill!r}")
    return {"parts": tuple(parts), "origin": _finite(p.get("origin", 0.0), "origin"),
            "fill": tuple(_finite(v, "each fill") for v in fill),
            "indicator": flag("indicator", p.get("indicator", False))}


def _emit_number(g: _Graph, p: Mapping[str, Any], x: str) -> str:
    missing = g.op("IsNaN", [x])
    filled = g.op("Where", [missing, g.const("fill", [p["fill"]], np.float32), x])
    if not p["indicator"]:
        return filled
    flag = g.op("Cast", [missing], to=g.onnx.TensorProto.FLOAT)
    return g.op("Concat", [filled, flag], axis=1)


def _emit_category(g: _Graph, p: Mapping[str, Any], x: str) -> str:
    mapping = p["mapping"]
    g.uses_ml = True
    index = g.op("LabelEncoder", [x], domain="ai.onnx.ml", keys_strings=list(mapping),
                 values_int64s=list(mapping.values()), default_int64=p["default"])
    # (batch, 1) == (width,) broadcasts to the one-hot rows (batch, width); -1 lights none.
    hot = g.op("Equal", [index, g.const("columns", np.arange(p["width"]), np.int64)])
    return g.op("Cast", [hot], to=g.onnx.TensorProto.FLOAT)


def _emit_days(g: _Graph, p: Mapping[str, Any], x: str) -> str:
    """Calendar parts of days since 1970-01-01, in double (exact on whole numbers far
    beyond any date), by the proleptic Gregorian arithmetic of Howard Hinnant's
    ``civil_from_days`` (March-based years make February's leap day the year's last)."""
    consts: dict[float, str] = {}

    def c(v: float) -> str:  # one initializer per constant
        if v not in consts:
            consts[v] = g.const("k", [v], np.float64)
        return consts[v]

    def op(name: str, a: str, b: float | str) -> str:
        return g.op(name, [a, b if isinstance(b, str) else c(b)])

    def floordiv(a: str, b: float) -> str:
        return g.op("Floor", [op("Div", a, b)])

    def mod(a: str, b: float) -> str:  # a - b * floor(a / b): in [0, b) for negatives too
        return op("Sub", a, op("Mul", floordiv(a, b), b))

    def flag(name: str, a: str, b: float) -> str:
        return g.op("Cast", [g.op(name, [a, c(b)])], to=g.onnx.TensorProto.DOUBLE)

    day = g.op("Floor", [x])  # the date of a time of day
    values: dict[str, str] = {}
    parts = p["parts"]
    if "days" in parts:
        values["days"] = op("Sub", x, p["origin"])
    if "dayofweek" in parts:  # 1970-01-01 was a Thursday (3 with Monday 0)
        values["dayofweek"] = mod(op("Add", day, 3.0), 7.0)
    if {"year", "month", "day", "dayofyear"} & set(parts):
        z = op("Add", day, 719468.0)  # days since 0000-03-01
        era = floordiv(z, 146097.0)  # 400-year cycles
        doe = op("Sub", z, op("Mul", era, 146097.0))  # [0, 146096]
        yoe = op("Sub", doe, floordiv(doe, 1460.0))
        yoe = op("Add", yoe, floordiv(doe, 36524.0))
        yoe = floordiv(op("Sub", yoe, floordiv(doe, 146096.0)), 365.0)  # [0, 399]
        leap_days = op("Sub", op("Add", op("Mul", yoe, 365.0), floordiv(yoe, 4.0)),
                       floordiv(yoe, 100.0))
        doy = op("Sub", doe, leap_days)  # [0, 365], from March 1st
        mp = floordiv(op("Add", op("Mul", doy, 5.0), 2.0), 153.0)  # March 0 .. February 11
        values["day"] = op("Add", op("Sub", doy, floordiv(
            op("Add", op("Mul", mp, 153.0), 2.0), 5.0)), 1.0)
        month = op("Sub", op("Add", mp, 3.0), op("Mul", flag("GreaterOrEqual", mp, 10.0),
                                                  12.0))
        values["month"] = month
        year = op("Add", op("Add", yoe, op("Mul", era, 400.0)),
                  flag("LessOrEqual", month, 2.0))
        values["year"] = year
        # January 1st of that year in days since 1970: 365 a + a//4 - a//100 + a//400
        # with a = year - 1, less 719162 (the days from 0001-01-01 to 1970-01-01).
        a = op("Sub", year, 1.0)
        jan1 = op("Add", op("Sub", op("Add", op("Mul", a, 365.0), floordiv(a, 4.0)),
                            floordiv(a, 100.0)), floordiv(a, 400.0))
        values["dayofyear"] = op("Add", op("Sub", day, op("Sub", jan1, 719162.0)), 1.0)
    block = g.op("Concat", [values[part] for part in parts], axis=1) if len(parts) > 1 \
        else values[parts[0]]
    missing = g.op("IsNaN", [x])
    block = g.op("Where", [missing, g.const("fill", p["fill"], np.float64), block])
    block = g.op("Cast", [block], to=g.onnx.TensorProto.FLOAT)
    if not p["indicator"]:
        return block
    return g.op("Concat", [block, g.op("Cast", [missing], to=g.onnx.TensorProto.FLOAT)],
                axis=1)


@dataclass(frozen=True)
class _EncodingOp:
    """How one column encoding is checked, sized and emitted (see ``InputColumn``)."""

    keys: tuple[str, ...]
    check: Callable[[dict[str, Any]], dict[str, Any]]
    width: Callable[[Mapping[str, Any]], int]
    emit: Callable[[_Graph, Mapping[str, Any], str], str]


_ENCODING_OPS: dict[str, _EncodingOp] = {
    "number": _EncodingOp(("fill", "indicator"), _check_number,
                          lambda p: 1 + p["indicator"], _emit_number),
    "category": _EncodingOp(("mapping", "width", "default"), _check_category,
                            lambda p: p["width"], _emit_category),
    "days": _EncodingOp(("parts", "origin", "fill", "indicator"), _check_days,
                        lambda p: len(p["parts"]) + p["indicator"], _emit_days),
}
assert set(_ENCODING_OPS) == set(ENCODINGS)

_INPUT_TYPES = {"float": "FLOAT", "string": "STRING", "double": "DOUBLE"}


def _encoded_inputs(g: _Graph, spec: GraphSpec) -> tuple[str, list[Any]]:
    """The nodes encoding every input column into the network's input; returns its name
    and the graph's input declarations."""
    tp, blocks, inputs = g.onnx.TensorProto, [], []
    for column in spec.columns:
        elem = getattr(tp, _INPUT_TYPES[ENCODINGS[column.encoding]])
        inputs.append(g.helper.make_tensor_value_info(column.name, elem, ["batch", 1]))
        blocks.append(_ENCODING_OPS[column.encoding].emit(g, column.params, column.name))
    x = g.op("Concat", blocks, "features", axis=1) if len(blocks) > 1 else blocks[0]
    order = spec.feature_order
    if order is not None and not np.array_equal(order, np.arange(order.size)):
        x = g.op("Gather", [x, g.const("feature_order", order, np.int64)], "features",
                 axis=1)
    return x, inputs


def _model_props(spec: GraphSpec) -> dict[str, str]:
    net = spec.network
    props = {"zeronn_kind": spec.kind,
             "input_shape": json.dumps(list(net.input_shape)),
             "layers": json.dumps([{"type": type(layer).__name__, **layer.config()}
                                   for layer in net.layers]),
             "output_activation": net.output_activation}
    if isinstance(net, MLP):  # the 0.1 keys, still read by existing consumers
        props["layer_sizes"] = json.dumps(net.layer_sizes)
        props["activations"] = json.dumps(net.activations)
    if spec.columns:
        props["input_columns"] = json.dumps([{"name": c.name, "encoding": c.encoding,
                                              "type": ENCODINGS[c.encoding]}
                                             for c in spec.columns])
    if spec.classes is not None:
        props["classes"] = json.dumps(spec.classes.tolist())
    for key, value in spec.metadata.items():
        props[str(key)] = json.dumps(value)
    return props


def _takes_ids(net: Network) -> bool:
    """Whether the network's input is token ids (its first layer is an Embedding)."""
    return net.layers[0].input_kind == "ids"


def _dynamic_time(net: Network) -> bool:
    """Whether the graph takes sequences of any length up to the network's T: a network
    of sequences (ids (T,) or (T, features)) whose every layer works step by step."""
    rank = 1 if _takes_ids(net) else 2
    return len(net.input_shape) == rank and net.time_flexible


def _keeps_time(net: Network) -> bool:
    """Whether the output still has the steps axis (no recurrent layer, at the top or in
    a composite, returns only its last state)."""
    return not any(getattr(layer, "return_sequences", True) is False
                   for _, layer in net.walk())


def _build(onnx: Any, spec: GraphSpec, opset: int, dtype: np.dtype) -> Any:
    helper, tp = onnx.helper, onnx.TensorProto
    net = spec.network
    dynamic = _dynamic_time(net)
    g = _Graph(onnx, opset, dynamic, dtype)
    n_out = net.n_outputs
    if spec.columns:
        x, graph_inputs = _encoded_inputs(g, spec)
    else:
        x = spec.input_name
        dims: list[str | int] = ["batch", *net.input_shape]
        if dynamic:
            dims[1] = "time"
        elem = tp.INT64 if _takes_ids(net) else g.float_type
        graph_inputs = [helper.make_tensor_value_info(spec.input_name, elem, dims)]
    if spec.x_scaling is not None:
        mean, scale = (a.reshape(net.input_shape) for a in spec.x_scaling)
        if spec.columns:
            # Encoded columns can be large and narrow (a date's year: about 2020, spread
            # 0.5): a float32 mean is off by 6e-5, 1e-4 of a standard deviation. They are
            # standardized in double, and the network then takes float32 again.
            x = g.op("Cast", [x], to=tp.DOUBLE)
            x = g.op("Sub", [x, g.const("x_mean", mean, np.float64)], "x_centered")
            x = g.op("Div", [x, g.const("x_scale", scale, np.float64)])
            x = g.op("Cast", [x], "x_scaled", to=g.float_type)
        else:
            x = g.op("Sub", [x, g.const("x_mean", mean)], "x_centered")
            x = g.op("Div", [x, g.const("x_scale", scale)], "x_scaled")
    elif spec.columns and g.float_type != tp.FLOAT:  # the encodings make float32 columns
        x = g.op("Cast", [x], "features_cast", to=g.float_type)
    out = _network(g, net, x)
    names = spec.output_names
    outputs: list[Any] = []
    if spec.task == "multilabel":  # an indicator per label: p > 0.5, as predict
        g.op("Identity", [out], output=names[1])
        pos = g.op("Greater", [out, g.const("threshold", THRESHOLD)])
        g.op("Cast", [pos], output=names[0], to=tp.INT64)
        outputs = [
            helper.make_tensor_value_info(names[0], tp.INT64, ["batch", n_out]),
            helper.make_tensor_value_info(names[1], g.float_type, ["batch", n_out]),
        ]
    elif spec.task == "classification":
        classes = spec.classes
        assert classes is not None  # GraphSpec checked it
        if n_out == 1:  # binary: P(class 1) = p, label = classes[p > 0.5], as predict does
            one_minus = g.op("Sub", [g.const("one", 1.0), out])
            g.op("Concat", [one_minus, out], output=names[1], axis=1)
            pos = g.op("Greater", [out, g.const("threshold", THRESHOLD)])
            pos = g.op("Cast", [pos], to=tp.INT64)
            index = g.op("Squeeze", [pos, g.const("axis", [1], np.int64)])
        else:
            g.op("Identity", [out], output=names[1])
            index = g.op("ArgMax", [out], axis=1, keepdims=0)
        labels = g.const("classes", classes, dtype=classes.dtype)
        g.op("Gather", [labels, index], output=names[0], axis=0)
        label_type = int(helper.np_dtype_to_tensor_dtype(classes.dtype))
        outputs = [
            helper.make_tensor_value_info(names[0], label_type, ["batch"]),
            helper.make_tensor_value_info(names[1], g.float_type, ["batch", len(classes)]),
        ]
    else:
        if spec.y_scaling is not None:
            mean, scale = (a.reshape(net.output_shape) for a in spec.y_scaling)
            out = g.op("Mul", [out, g.const("y_scale", scale)])
            g.op("Add", [out, g.const("y_mean", mean)], output=names[0])
        else:
            g.op("Identity", [out], output=names[0])
        out_dims: list[str | int] = ["batch", *net.output_shape]
        if dynamic and _keeps_time(net):
            out_dims[1] = "time"
        outputs = [helper.make_tensor_value_info(names[0], g.float_type, out_dims)]
    graph = helper.make_graph(
        g.nodes, "zeronn_" + spec.kind.replace(".", "_"), graph_inputs, outputs,
        initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    if g.uses_ml:
        opsets.append(helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    m = helper.make_model(graph, opset_imports=opsets, producer_name="zeronn",
                          producer_version=__version__,
                          doc_string=f"{net!r} exported by zeronn")
    # The lowest IR version that carries this opset: what older runtimes accept too.
    m.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(m, _model_props(spec))
    onnx.checker.check_model(m, full_check=True)
    return m


#: The graph's float types (``export_onnx``'s ``dtype``).
DTYPES = ("float32", "float64")


def export_onnx(model: Any, path: str | os.PathLike[str], opset: int = 17,
                dtype: str = "float32") -> None:
    """Writes ``model`` as an ONNX file, atomically.

    ``model``: a network (``Sequential``, ``MLP``), an object with an ``onnx_spec()``
    method (the ``zeronn.sklearn`` estimators, ``zeronn.tabular.TabularModel``) or a
    :class:`GraphSpec`. Input ``X``: float32 (batch, *input_shape), or int64 token ids
    (batch, T) for a network that starts with an ``Embedding``; sequences of 1 to T steps
    when every layer works step by step (``net.time_flexible``); a spec with ``columns``
    (a ``TabularModel``'s) takes one (batch, 1) input per column instead. Outputs: ``output``
    (batch, *output_shape) for a network, ``predictions`` for a regressor, ``label`` (batch,)
    and ``probabilities`` (batch, n_classes) for a classifier. ``opset``: from 13 to the
    installed onnx's newest (17 or newer with a ``LayerNorm``). ``dtype``: the graph's float
    type, ``"float32"`` (the default, whatever the network's dtype: what every runtime
    runs) or ``"float64"`` (double inputs, constants and outputs; onnxruntime's CPU
    kernels of ``RNN``/``LSTM``/``GRU``, ``Elu``, ``Softplus``, ``Conv`` and ``AveragePool``
    are float32 only, and ``LeakyRelu``'s slope is a float32 attribute). Needs the
    ``onnx`` extra (``pip install zeronn[onnx]``).
    """
    onnx = _require_onnx()
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the "
                         f"installed onnx's newest), got {opset!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)} (the graph's float "
                         f"type), got {dtype!r}")
    m = _build(onnx, graph_spec(model), int(opset), np.dtype(dtype))
    data = m.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
