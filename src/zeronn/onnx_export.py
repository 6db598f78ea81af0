"""ONNX export: a trained network (or estimator, or CLI model) as a standard ONNX graph.

The graph takes ``X`` as float32 (batch, n_features), with a dynamic batch dimension,
and computes what ``predict`` computes: ``Gemm`` per layer, then the layer's activation
as ONNX nodes (Relu, LeakyRelu(alpha=0.01), Elu(alpha=1), Sigmoid, Tanh, Softplus,
Softmax on the last axis; GELU's tanh approximation is composed from Mul/Add/Tanh where
the opset has no ``Gelu``, i.e. below 20). Models that carry input scaling (``x_mean``,
``x_scale``) apply it first; regression target scaling (``y_mean``, ``y_scale``) is
undone last; classifiers output ``label`` and ``probabilities``.

``onnx`` is an optional extra, imported only when exporting.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._atomic import atomic_write
from zeronn._version import __version__
from zeronn.activations import GELU_C, GELU_K, LEAKY_SLOPE
from zeronn.models import MLP
from zeronn.tasks import LABEL_DTYPES, MULTILABEL, classification_task, label_kind_of_dtype

__all__ = ["MIN_OPSET", "export_onnx"]

MIN_OPSET = 13  # Softmax works on one axis (and Split/Squeeze take inputs) from opset 13
GELU_OPSET = 20  # the first opset with a Gelu operator (approximate="tanh")


def _require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx needs the onnx package: pip install zeronn[onnx]") \
            from None
    return onnx


class _Graph:
    """Accumulates nodes and constant tensors, giving every value a unique name."""

    def __init__(self, onnx: Any, opset: int) -> None:
        self.onnx, self.helper = onnx, onnx.helper
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: Any, dtype: Any = np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        name = self.name(stem)
        if arr.dtype == object:
            t = self.helper.make_tensor(name, self.onnx.TensorProto.STRING, arr.shape,
                                        [str(v).encode("utf-8") for v in arr.ravel()])
        else:
            t = self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr), name)
        self.initializers.append(t)
        return name

    def op(self, op_type: str, inputs: Sequence[str], stem: str | None = None,
           output: str | None = None, **attrs: Any) -> str:
        out = output or self.name(stem or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=self.name(op_type), **attrs))
        return out


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


def _network(g: _Graph, net: MLP, x: str) -> str:
    """Gemm + activation per layer; returns the name of the network's output."""
    for i, layer in enumerate(net.layers, start=1):
        W = g.const(f"W{i}", layer.W)
        b = g.const(f"b{i}", layer.b.reshape(-1))
        z = g.op("Gemm", [x, W, b], f"z{i}")
        x = _activation(g, layer.activation.name, z, f"a{i}")
    return x


def _row(a: Any, n: int, what: str) -> NDArray:
    arr = np.asarray(a, dtype=np.float64).reshape(-1)
    if arr.size != n:
        raise ValueError(f"{what} has {arr.size} values, expected {n}")
    return arr


def _label_tensor_type(onnx: Any, kind: str) -> int:
    # The tensor type of the label array predict returns (strings: object -> STRING).
    return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(LABEL_DTYPES[kind])))


def _unwrap(model: Any) -> tuple[str, MLP, dict[str, Any], dict[str, Any]]:
    """(kind, net, meta, arrays) for an MLP or a model-file-protocol object."""
    if isinstance(model, MLP):
        return "mlp", model, {}, {}
    kind = getattr(type(model), "_zeronn_kind", None)
    if kind is None or not hasattr(model, "_zeronn_state"):
        raise ValueError(f"cannot export a {type(model).__name__}: export_onnx takes an MLP, "
                         "a zeronn.sklearn estimator or a zeronn.tabular model")
    net, meta, arrays = model._zeronn_state()
    if net is None:
        raise ValueError(f"this {type(model).__name__} is not fitted yet: call fit first")
    return str(kind), net, dict(meta), dict(arrays)


def _spec(kind: str, net: MLP, meta: dict[str, Any], arrays: dict[str, Any]) -> dict[str, Any]:
    """What to put around the network: scaling, task, classes (from the protocol's meta).

    ``task``: ``network`` (a bare MLP), ``regression``, ``classification`` (one label per
    row) or ``multilabel`` (a 0/1 indicator per output).
    """
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    spec: dict[str, Any] = {"task": "network", "x_scaling": None, "y_scaling": None,
                            "classes": None, "label_kind": None}
    if kind == "mlp":
        return spec
    if arrays.get("x_mean") is not None and np.size(arrays["x_mean"]):
        spec["x_scaling"] = (_row(arrays["x_mean"], n_in, "x_mean"),
                             _row(arrays["x_scale"], n_in, "x_scale"))
    task: Any
    label_kind: Any
    if kind == "sklearn.MLPClassifier":
        y_type = meta.get("y_type")
        task = "multilabel" if y_type == "multilabel-indicator" else "classification"
        label_kind = label_kind_of_dtype(meta.get("classes_dtype", "O")) or "unknown"
    elif kind == "sklearn.MLPRegressor":
        task, label_kind = "regression", None
    else:
        task, label_kind = meta.get("task"), meta.get("label_kind")
    if task == "regression":
        spec["task"] = "regression"
        if arrays.get("y_mean") is not None and np.size(arrays["y_mean"]):
            spec["y_scaling"] = (_row(arrays["y_mean"], n_out, "y_mean"),
                                 _row(arrays["y_scale"], n_out, "y_scale"))
        return spec
    if task not in ("classification", "multilabel"):
        raise ValueError(f"unknown task {task!r} in the model's metadata")
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) < 2 or label_kind not in LABEL_DTYPES:
        raise ValueError(f"the model's metadata has no usable class labels "
                         f"(classes={classes!r}, label kind {label_kind!r}): export needs "
                         "at least two classes of numbers, strings or booleans")
    rule = MULTILABEL if task == "multilabel" else classification_task(len(classes))
    want, act = rule.n_outputs(len(classes)), rule.output_activation
    if n_out != want or net.output_activation != act:
        raise ValueError(f"{len(classes)} classes ({task}) need {want} {act} output(s), but "
                         f"the network has {n_out} {net.output_activation} output(s)")
    spec.update(task=task, classes=classes, label_kind=label_kind)
    return spec


def _build(onnx: Any, model: Any, opset: int) -> Any:
    helper, tp = onnx.helper, onnx.TensorProto
    kind, net, meta, arrays = _unwrap(model)
    spec = _spec(kind, net, meta, arrays)
    g = _Graph(onnx, opset)
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    x = "X"
    if spec["x_scaling"] is not None:
        mean, scale = spec["x_scaling"]
        x = g.op("Sub", [x, g.const("x_mean", mean)], "x_centered")
        x = g.op("Div", [x, g.const("x_scale", scale)], "x_scaled")
    out = _network(g, net, x)
    outputs: list[Any] = []
    if spec["task"] == "multilabel":  # an indicator per label: p > 0.5, as predict
        g.op("Identity", [out], output="probabilities")
        pos = g.op("Greater", [out, g.const("threshold", 0.5)])
        g.op("Cast", [pos], output="label", to=tp.INT64)
        outputs = [
            helper.make_tensor_value_info("label", tp.INT64, ["batch", n_out]),
            helper.make_tensor_value_info("probabilities", tp.FLOAT, ["batch", n_out]),
        ]
    elif spec["task"] == "classification":
        classes = spec["classes"]
        if n_out == 1:  # binary: P(class 1) = p, label = classes[p > 0.5], as predict does
            one_minus = g.op("Sub", [g.const("one", 1.0), out])
            g.op("Concat", [one_minus, out], output="probabilities", axis=1)
            pos = g.op("Greater", [out, g.const("threshold", 0.5)])
            pos = g.op("Cast", [pos], to=tp.INT64)
            index = g.op("Squeeze", [pos, g.const("axis", [1], np.int64)])
        else:
            g.op("Identity", [out], output="probabilities")
            index = g.op("ArgMax", [out], axis=1, keepdims=0)
        labels = g.const("classes", classes, dtype=LABEL_DTYPES[spec["label_kind"]])
        g.op("Gather", [labels, index], output="label", axis=0)
        outputs = [
            helper.make_tensor_value_info("label", _label_tensor_type(onnx, spec["label_kind"]),
                                          ["batch"]),
            helper.make_tensor_value_info("probabilities", tp.FLOAT,
                                          ["batch", len(classes)]),
        ]
    else:
        name = "predictions" if spec["task"] == "regression" else "output"
        if spec["y_scaling"] is not None:
            mean, scale = spec["y_scaling"]
            out = g.op("Mul", [out, g.const("y_scale", scale)])
            g.op("Add", [out, g.const("y_mean", mean)], output=name)
        else:
            g.op("Identity", [out], output=name)
        outputs = [helper.make_tensor_value_info(name, tp.FLOAT, ["batch", n_out])]
    graph = helper.make_graph(
        g.nodes, "zeronn_" + kind.replace(".", "_"),
        [helper.make_tensor_value_info("X", tp.FLOAT, ["batch", n_in])],
        outputs, initializer=g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    m = helper.make_model(graph, opset_imports=opsets, producer_name="zeronn",
                          producer_version=__version__,
                          doc_string=f"{net!r} exported by zeronn")
    # The lowest IR version that carries this opset: what older runtimes accept too.
    m.ir_version = helper.find_min_ir_version_for(opsets)
    props = {"zeronn_kind": kind, "layer_sizes": json.dumps(net.layer_sizes),
             "activations": json.dumps(net.activations),
             "output_activation": net.output_activation}
    for key in ("feature_names", "feature_names_in", "target_names", "classes"):
        if isinstance(meta.get(key), list):
            props[key] = json.dumps(meta[key])
    helper.set_model_props(m, props)
    onnx.checker.check_model(m, full_check=True)
    return m


def export_onnx(model: Any, path: str | os.PathLike[str], opset: int = 17) -> None:
    """Writes ``model`` (an MLP, estimator or CLI model) as an ONNX file, atomically.

    Input ``X``: float32 (batch, n_features). Outputs: ``output`` (batch, n_outputs) for
    an MLP, ``predictions`` for a regressor, ``label`` (batch,) and ``probabilities``
    (batch, n_classes) for a classifier. ``opset``: from 13 to the installed onnx's
    newest. Needs the ``onnx`` extra (``pip install zeronn[onnx]``).
    """
    onnx = _require_onnx()
    newest = int(onnx.defs.onnx_opset_version())
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not MIN_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_OPSET} to {newest} (the "
                         f"installed onnx's newest), got {opset!r}")
    m = _build(onnx, model, int(opset))
    data = m.SerializeToString()
    with atomic_write(path) as f:
        f.write(data)
