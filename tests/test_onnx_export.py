"""ONNX export: onnxruntime computes what predict computes, for every activation and head."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn import onnx_export, persistence

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

HIDDEN = ["identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus",
          "softmax"]
HEADS = [("identity", 3), ("sigmoid", 1), ("sigmoid", 2), ("softmax", 4)]


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(path: Path, X: np.ndarray) -> list[np.ndarray]:
    return _session(path).run(None, {"X": np.asarray(X, np.float32)})


def _assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    """Within ``rtol`` relative, elementwise, or relative to the output's scale (an output
    that crosses zero cannot be matched relatively at the crossing by float32 arithmetic)."""
    assert got.shape == want.shape
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


def _inputs(rng: np.random.Generator, n: int = 64, d: int = 5) -> np.ndarray:
    # Wide inputs: units reach the saturated and thresholded parts of every activation
    # (softplus above 20, sigmoid's tails, elu's exponential side).
    return (rng.standard_normal((n, d)) * 4).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("head,k", HEADS, ids=[f"{h}{k}" for h, k in HEADS])
@pytest.mark.parametrize("act", HIDDEN)
def test_every_activation_and_head_matches_predict(tmp_path, act, head, k):
    rng = np.random.default_rng([HIDDEN.index(act), k, len(head)])  # stable across runs
    net = zn.MLP([5, 16, 8, k], activation=[act, "tanh"], output_activation=head,
                 init="glorot_uniform", seed=3)
    net.layers[0].W = net.layers[0].W * 3  # large pre-activations in the tested layer
    X = _inputs(rng)
    path = tmp_path / "m.onnx"
    zn.export_onnx(net, path)
    (out,) = _run(path, X)
    assert out.dtype == np.float32
    _assert_close(out, net.predict(X))


def test_softplus_threshold_and_saturation(tmp_path):
    """zeronn's softplus is z above 20; onnxruntime's Softplus must agree out there."""
    net = zn.MLP([1, 7, 1], activation="softplus", init="glorot_uniform", seed=0)
    net.layers[0].W = np.array([[1.0, -1.0, 0.5, 30.0, -30.0, 2.0, 0.1]])
    net.layers[1].W = np.ones((7, 1)) / 7
    X = np.linspace(-40, 40, 161).reshape(-1, 1)
    zn.export_onnx(net, tmp_path / "sp.onnx")
    (out,) = _run(tmp_path / "sp.onnx", X)
    np.testing.assert_allclose(out, net.predict(X), rtol=1e-5)
    act = zn.ACTIVATIONS["softplus"]
    z = np.array([-30.0, -5.0, 0.0, 5.0, 19.9, 20.1, 40.0, 80.0])
    single = zn.MLP([1, 1], output_activation="softplus", init=[np.ones((1, 1)), np.zeros(1)])
    zn.export_onnx(single, tmp_path / "sp1.onnx")
    (o1,) = _run(tmp_path / "sp1.onnx", z.reshape(-1, 1))
    np.testing.assert_allclose(o1.ravel(), act(z), rtol=1e-5)


@pytest.mark.parametrize("opset", [13, 17, 20])
def test_gelu_composed_or_native(tmp_path, opset):
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip(f"the installed onnx has no opset {opset}")
    net = zn.MLP([5, 12, 2], activation="gelu", seed=1)
    X = _inputs(np.random.default_rng(0))
    path = tmp_path / "g.onnx"
    zn.export_onnx(net, path, opset=opset)
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ("Gelu" in ops) == (opset >= 20)
    assert model.opset_import[0].version == opset
    (out,) = _run(path, X)
    _assert_close(out, net.predict(X))


def test_graph_structure(tmp_path):
    net = zn.MLP([5, 9, 6, 2], activation=["relu", "elu"], output_activation="softmax",
                 dtype="float32", seed=0)
    path = tmp_path / "m.onnx"
    zn.export_onnx(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == onnx.helper.find_min_ir_version_for(list(model.opset_import))
    (inp,) = model.graph.input
    assert inp.name == "X"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # the batch is dynamic
    assert dims[1].dim_value == 5
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("Gemm") == 3 and "Relu" in ops and "Elu" in ops and "Softmax" in ops
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert onnx.helper.get_attribute_value(softmax.attribute[0]) == -1
    props = {p.key: p.value for p in model.metadata_props}
    assert props["zeronn_kind"] == "mlp" and props["layer_sizes"] == "[5, 9, 6, 2]"
    # any batch size, including one row
    for n in (1, 7, 300):
        X = np.random.default_rng(n).standard_normal((n, 5))
        (out,) = _run(path, X)
        _assert_close(out, net.predict(X))


def test_refusals(tmp_path):
    net = zn.MLP([2, 3, 1], seed=0)
    for opset in (12, 99, "17", 17.0, True):
        with pytest.raises(ValueError, match="opset"):
            zn.export_onnx(net, tmp_path / "m.onnx", opset=opset)
    act = zn.register_activation("square_onnx_test", lambda z: z * z, lambda z: 2 * z)
    try:
        odd = zn.MLP([2, 3, 1], activation=act, seed=0)
        with pytest.raises(ValueError, match="'square_onnx_test' has no ONNX equivalent"):
            zn.export_onnx(odd, tmp_path / "m.onnx")
    finally:
        del zn.ACTIVATIONS["square_onnx_test"]
    with pytest.raises(ValueError, match="cannot export a dict"):
        zn.export_onnx({"W": 1}, tmp_path / "m.onnx")
    assert not any(tmp_path.iterdir())


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` fail
    with pytest.raises(ImportError, match=r"pip install zeronn\[onnx\]"):
        zn.export_onnx(zn.MLP([2, 1], seed=0), tmp_path / "m.onnx")


def test_export_is_atomic(tmp_path, monkeypatch):
    net = zn.MLP([2, 3, 1], seed=0)
    path = tmp_path / "m.onnx"
    zn.export_onnx(net, path)
    before = path.read_bytes()

    def boom(*a: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        zn.export_onnx(zn.MLP([2, 3, 1], seed=5), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_float32_network(tmp_path):
    net = zn.MLP([5, 8, 3], activation="gelu", output_activation="softmax", dtype="float32",
                 seed=2)
    X = _inputs(np.random.default_rng(1))
    zn.export_onnx(net, tmp_path / "m.onnx", opset=onnx_export.MIN_OPSET)
    (out,) = _run(tmp_path / "m.onnx", X)
    _assert_close(out, net.predict(X).astype(np.float64))


# -- estimators and CLI models ---------------------------------------------------------------
def _xy(n: int = 90, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)) * [1, 10, 0.1, 100] + [0, 50, -1, 0]
    return X, rng.standard_normal((n, d))


# max_iter is kept small on purpose: scikit-learn's ConvergenceWarning is a UserWarning.
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("labels", ["strings2", "ints3", "bools", "multilabel"])
def test_sklearn_classifier_outputs_labels_and_probabilities(tmp_path, labels):
    sk = pytest.importorskip("zeronn.sklearn")
    X, Z = _xy()
    y: Any = {
        "strings2": np.where(Z[:, 0] > 0, "yes", "no"),
        "ints3": np.digitize(Z[:, 0], [-0.5, 0.5]) * 10 - 5,
        "bools": Z[:, 1] > 0,
        "multilabel": (Z[:, :3] > 0).astype(int),
    }[labels]
    est = sk.MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, learning_rate_init=0.01,
                           random_state=0)
    est.fit(X / [1, 10, 0.1, 100], y)
    zn.export_onnx(est, tmp_path / "c.onnx")
    label, proba = _run(tmp_path / "c.onnx", X / [1, 10, 0.1, 100])
    want = est.predict(X / [1, 10, 0.1, 100])
    assert label.shape == want.shape
    assert np.array_equal(label.astype(want.dtype), want)
    _assert_close(proba, est.predict_proba(X / [1, 10, 0.1, 100]))
    names = [o.name for o in _session(tmp_path / "c.onnx").get_outputs()]
    assert names == ["label", "probabilities"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sklearn_regressor(tmp_path):
    sk = pytest.importorskip("zeronn.sklearn")
    X, Z = _xy()
    X = X / [1, 10, 0.1, 100]
    est = sk.MLPRegressor(hidden_layer_sizes=(8, 4), activation="tanh", max_iter=20, random_state=0)
    est.fit(X, Z[:, :2] * 5)
    zn.export_onnx(est, tmp_path / "r.onnx")
    (pred,) = _run(tmp_path / "r.onnx", X)
    _assert_close(pred, est.predict(X))


def test_unfitted_estimator_is_refused(tmp_path):
    sk = pytest.importorskip("zeronn.sklearn")
    with pytest.raises(ValueError, match="not fitted"):
        zn.export_onnx(sk.MLPRegressor(), tmp_path / "r.onnx")


@pytest.mark.parametrize("target", ["y", "y2", "cls", "two", "flag", "code", "half"])
def test_tabular_model_bakes_in_scaling(tmp_path, target):
    tabular = pytest.importorskip("zeronn.tabular")
    pd = pytest.importorskip("pandas")
    X, Z = _xy()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["y"] = 1000 + 300 * np.tanh(Z[:, 0])
    df["y2"] = -5 + 0.01 * Z[:, 1]
    df["cls"] = np.select([Z[:, 0] > 0.4, Z[:, 0] < -0.4], ["high", "low"], "mid")
    df["two"] = np.where(Z[:, 1] > 0, "up", "down")
    df["flag"] = Z[:, 2] > 0
    df["code"] = np.where(Z[:, 3] > 0, 7, 3)
    df["half"] = np.select([Z[:, 3] > 0.3, Z[:, 3] < -0.3], [0.5, -2.25], 1.5)
    targets = ["y", "y2"] if target == "y2" else target
    task = "classification" if target in ("code", "half") else "auto"  # numeric labels
    model = tabular.TabularModel(hidden=(8,), epochs=15, task=task)
    model.fit(df, targets, features=["a", "b", "c", "d"])
    assert model.x_scale.max() > 10  # the scaling matters: forgetting it would fail
    zn.export_onnx(model, tmp_path / "t.onnx")
    # one float input per numeric column, named after it
    feeds = {name: X[:, [j]].astype(np.float32) for j, name in enumerate("abcd")}
    outs = _session(tmp_path / "t.onnx").run(None, feeds)
    want = model.predict(df)
    if model.classes:
        label, proba = outs
        assert np.array_equal(label.astype(want.dtype), want)
        _assert_close(proba, model.predict_proba(df))
    else:
        _assert_close(outs[0], want)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert props["feature_names"] == '["a", "b", "c", "d"]'


# -- every layer kind -------------------------------------------------------------------------
# ZERONN_ONNX_EXAMPLES=200 for a deeper run.
LAYER_EXAMPLES = examples(12, "ZERONN_ONNX_EXAMPLES")
ACTIVATIONS = [None, *HIDDEN]


def test_hidden_covers_every_builtin_activation():
    assert set(HIDDEN) == set(zn.ACTIVATIONS)


@st.composite
def _layer_specs(draw: Any) -> list[tuple[Any, ...]]:
    """Recipes (not layers: a layer belongs to one network) for a stack of 1 to 6 layers."""
    kinds = st.sampled_from(["dense", "activation", "dropout", "batchnorm", "layernorm"])
    specs = []
    for kind in draw(st.lists(kinds, min_size=1, max_size=6)):
        if kind == "dense":
            specs.append((kind, draw(st.integers(1, 7)), draw(st.sampled_from(ACTIVATIONS)),
                          draw(st.booleans())))
        elif kind == "activation":
            specs.append((kind, draw(st.sampled_from(HIDDEN))))
        elif kind == "dropout":
            specs.append((kind, draw(st.sampled_from([0.0, 0.2, 0.5, 0.9]))))
        elif kind == "batchnorm":
            specs.append((kind, draw(st.sampled_from([0.1, 0.5, None])),
                          draw(st.sampled_from([1e-5, 1e-3]))))
        else:
            specs.append((kind, draw(st.sampled_from([1e-5, 1e-3]))))
    return specs


def _make_layer(spec: tuple[Any, ...]) -> zn.Layer:
    kind, *args = spec
    if kind == "dense":
        units, act, bias = args
        return zn.Dense(units, activation=act, init="glorot_uniform", use_bias=bias)
    if kind == "activation":
        return zn.Activation(args[0])
    if kind == "dropout":
        return zn.Dropout(args[0])
    if kind == "batchnorm":
        return zn.BatchNorm(momentum=args[0], eps=args[1])
    return zn.LayerNorm(eps=args[0])


def _trained(specs: list[tuple[Any, ...]], d: int, dtype: str, seed: int) -> zn.Sequential:
    """A Sequential of ``specs`` as training leaves it: parameters moved off their
    initial values (BatchNorm's and LayerNorm's gamma and beta too), and 3 epochs of
    training-mode passes (Dropout masks drawn) moving BatchNorm's running statistics.

    Training-mode forward passes, not ``fit``: the stacks may end in any layer, and what
    export reads is the parameters and statistics whatever set them (``fit`` sets them in
    test_layer_nodes and test_any_object_with_onnx_spec_exports).
    """
    rng = np.random.default_rng(seed)
    net = zn.Sequential([_make_layer(s) for s in specs], input_dim=d, dtype=dtype, seed=seed)
    net.flat_params[:] += rng.normal(0, 0.3, net.n_params)
    X = rng.standard_normal((48, d)) * 2 + 1
    for _ in range(3):
        for batch in np.split(X[rng.permutation(48)], 3):
            net.forward(batch, training=True)
    return net


@settings(max_examples=LAYER_EXAMPLES, deadline=None)
@given(specs=_layer_specs(), d=st.integers(1, 5), dtype=st.sampled_from(["float32", "float64"]),
       seed=st.integers(0, 2**16))
def test_any_layer_stack_matches_predict(tmp_path_factory, specs, d, dtype, seed):
    net = _trained(specs, d, dtype, seed)
    for layer in net.layers:
        if layer.kind == "batchnorm":
            assert not np.allclose(layer.state["running_var"], 1)
    X = np.random.default_rng(seed + 1).standard_normal((37, d)) * 2 + 1
    path = tmp_path_factory.mktemp("stack") / "m.onnx"
    zn.export_onnx(net, path)
    (out,) = _run(path, X)
    assert out.dtype == np.float32
    want = net.predict(X).astype(np.float64)
    # The graph computes in float32, in its own order: where the stack is ill-conditioned
    # (a BatchNorm of a near-constant feature divides a cancellation by sqrt(eps)), float32
    # rounding alone moves the output further than 1e-5 of its scale. The allowance is
    # then what rounding every input, parameter, statistic and layer output to float32
    # precision does to the model; a well-conditioned stack gets the plain 1e-5 bound.
    noise = _float32_sensitivity(net, X)
    err = np.abs(out - want).max()
    scale = np.abs(want).max()
    assert err <= 1e-5 * scale + 10 * noise, (err, noise, scale)
    if noise < 1e-7 * scale:
        _assert_close(out, want)


def _float32_sensitivity(net: zn.Network, X: np.ndarray, draws: int = 3) -> float:
    """The largest change of the output (float64) when every value the computation reads
    or writes moves by float32's rounding, over ``draws`` random draws.

    Inputs, parameters, statistics and layer outputs move by a relative 2**-24; an
    activation's output by 2**-24 times (|its input| + 1) absolute, the size of the terms
    its formula cancels (``1 + tanh`` in GELU, ``e^z - 1`` in ELU); a LayerNorm's variance
    as a one-pass ``E[x^2] - mean^2`` computes it (onnxruntime's kernel).
    """
    ref = net.copy_network("float64")
    base = ref.predict(X)
    worst = 0.0
    for k in range(draws):
        rng = np.random.default_rng(k)
        jiggle = functools.partial(_jiggle, rng)
        p = ref.copy_network()
        p.flat_params[:] = jiggle(p.flat_params)
        for layer in p.layers:
            for arr in layer.state.values():
                if arr.dtype.kind == "f":
                    arr[...] = jiggle(arr)
        a = jiggle(X)
        for layer in p.layers:
            if layer.kind == "layernorm":
                a = jiggle(_layernorm_one_pass(layer, a, rng))
            elif layer.activation is not None:
                z = layer.infer(a, logits=True) if layer.kind == "dense" else a
                a = jiggle(layer.infer(a), np.abs(jiggle(z)) + 1)
            else:
                a = jiggle(layer.infer(a))
        worst = max(worst, float(np.abs(a - base).max()))
    return worst


def _jiggle(rng: np.random.Generator, a: np.ndarray, size: Any = None) -> np.ndarray:
    """``a`` moved by up to 2**-24 times ``size`` (default ``|a|``: a relative rounding)."""
    size = np.abs(a) if size is None else size
    return a + rng.uniform(-1, 1, a.shape) * 2.0**-24 * size


def _layernorm_one_pass(layer: zn.Layer, a: np.ndarray, rng: np.random.Generator
                        ) -> np.ndarray:
    """LayerNorm with the rounding of a one-pass variance, ``E[x^2] - mean^2`` (what
    onnxruntime's kernel computes): off by float32's epsilon times ``E[x^2]``."""
    axes = tuple(range(1, a.ndim))
    mean = a.mean(axis=axes, keepdims=True)
    var = np.square(a - mean).mean(axis=axes, keepdims=True)
    var += rng.uniform(-1, 1, var.shape) * 2.0**-23 * np.square(a).mean(axis=axes, keepdims=True)
    gamma, beta = layer.params
    eps = layer.config()["eps"]
    return (a - mean) / np.sqrt(np.maximum(var, 0) + eps) * gamma + beta


def test_layer_nodes(tmp_path):
    """One table entry per kind: Gemm or MatMul, BatchNormalization with the running
    statistics, LayerNormalization over the features, and nothing for Dropout."""
    net = zn.Sequential([zn.Dense(6, use_bias=False), zn.BatchNorm(eps=1e-3), zn.Dropout(0.5),
                         zn.Activation("relu"), zn.Dense(4, activation="tanh"),
                         zn.LayerNorm(eps=1e-4), zn.Dense(2)], input_dim=3, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3)) * 3 + 2
    net.fit(X, rng.standard_normal((40, 2)), epochs=2, batch_size=8, seed=0)
    bn, ln = net.layers[1], net.layers[5]
    path = tmp_path / "m.onnx"
    zn.export_onnx(net, path)
    model = onnx.load(str(path))
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["MatMul", "BatchNormalization", "Relu", "Gemm", "Tanh",
                   "LayerNormalization", "Gemm", "Identity"]
    init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    node = model.graph.node[1]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs["epsilon"] == pytest.approx(1e-3)
    scale, bias, mean, var = (init[name] for name in node.input[1:])
    np.testing.assert_allclose(scale, bn.params[0], rtol=1e-6)
    np.testing.assert_allclose(bias, bn.params[1], rtol=1e-6)
    np.testing.assert_allclose(mean, bn.state["running_mean"], rtol=1e-6)
    np.testing.assert_allclose(var, bn.state["running_var"], rtol=1e-6)
    assert not np.allclose(var, 1) and not np.allclose(mean, 0)
    node = model.graph.node[5]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"axis": 1, "epsilon": pytest.approx(1e-4)}
    np.testing.assert_allclose(init[node.input[1]], ln.params[0], rtol=1e-6)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["zeronn_kind"] == "sequential"
    assert json.loads(props["layers"])[1] == {"type": "BatchNorm", "momentum": 0.1,
                                              "eps": 1e-3}
    (out,) = _run(path, X)
    _assert_close(out, net.predict(X))


def test_batchnorm_on_channels(tmp_path):
    """(n, C, H, W) inputs: BatchNormalization's axis 1 is the channel, as zeronn's."""
    net = zn.Sequential([zn.BatchNorm(), zn.LayerNorm()], input_shape=(3, 2, 2), seed=0)
    X = np.random.default_rng(0).standard_normal((16, 3, 2, 2)) * [[[4]], [[1]], [[0.5]]]
    for _ in range(3):
        net.forward(X + 1, training=True)  # moves the running statistics
    zn.export_onnx(net, tmp_path / "m.onnx")
    (out,) = _run(tmp_path / "m.onnx", X)
    assert out.shape == (16, 3, 2, 2)
    _assert_close(out, net.predict(X))


@pytest.mark.parametrize("opset", [13, 16])
def test_layernorm_needs_opset_17(tmp_path, opset):
    net = zn.Sequential([zn.Dense(3), zn.LayerNorm()], input_dim=2, seed=0)
    with pytest.raises(ValueError, match=r"layer 2 \(LayerNorm\).*opset=17"):
        zn.export_onnx(net, tmp_path / "m.onnx", opset=opset)
    zn.export_onnx(net, tmp_path / "m.onnx", opset=17)
    assert not any(p.name != "m.onnx" for p in tmp_path.iterdir())


class _Square(zn.Layer):
    kind = "square"

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        return x * x

    def infer(self, x: np.ndarray) -> np.ndarray:
        return x * x


def test_unsupported_layer_is_named(tmp_path):
    net = zn.Sequential([zn.Dense(3), _Square()], input_dim=2, seed=0)
    with pytest.raises(ValueError, match=r"layer 2 \(_Square, kind 'square'\) has no ONNX "
                                         r"export.*dense, activation, dropout"):
        zn.export_onnx(net, tmp_path / "m.onnx")
    assert not any(tmp_path.iterdir())


# -- the GraphSpec protocol -------------------------------------------------------------------
class _Front:
    """A front end of its own: export asks it for its spec, nothing else."""

    def __init__(self, net: zn.Network) -> None:
        self.net = net

    def onnx_spec(self) -> onnx_export.GraphSpec:
        return onnx_export.GraphSpec(self.net, task="classification", classes=["b", "a", "c"],
                                     x_scaling=([1, 2], [2, 4]), input_name="features",
                                     output_names=("y", "p"), kind="front.Custom",
                                     metadata={"note": {"k": [1]}})


def test_any_object_with_onnx_spec_exports(tmp_path):
    net = zn.Sequential([zn.Dense(5, activation="relu"), zn.BatchNorm(), zn.Dropout(0.3),
                         zn.Dense(3, activation="softmax")], input_dim=2, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2)) * [2, 4] + [1, 2]
    net.fit((X - [1, 2]) / [2, 4], np.eye(3)[rng.integers(0, 3, 30)],
            loss="categorical_crossentropy", epochs=2, batch_size=10, seed=0)
    zn.export_onnx(_Front(net), tmp_path / "m.onnx")
    sess = _session(tmp_path / "m.onnx")
    assert [i.name for i in sess.get_inputs()] == ["features"]
    assert [o.name for o in sess.get_outputs()] == ["y", "p"]
    y, p = sess.run(None, {"features": X.astype(np.float32)})
    want = net.predict((X - [1, 2]) / [2, 4])
    _assert_close(p, want)
    assert list(y) == list(np.array(["b", "a", "c"], object)[want.argmax(axis=1)])
    model = onnx.load(str(tmp_path / "m.onnx"))
    props = {q.key: q.value for q in model.metadata_props}
    assert props["zeronn_kind"] == "front.Custom" and model.graph.name == "zeronn_front_Custom"
    assert json.loads(props["note"]) == {"k": [1]}
    assert json.loads(props["classes"]) == ["b", "a", "c"]


def test_graph_spec_checks_itself():
    GraphSpec = onnx_export.GraphSpec
    net = zn.MLP([2, 4, 3], output_activation="softmax", seed=0)
    binary = zn.MLP([2, 4, 1], output_activation="sigmoid", seed=0)
    assert GraphSpec(net).output_names == ("output",) and GraphSpec(net).kind == "mlp"
    spec = GraphSpec(binary, task="classification", classes=np.array([3, 1], np.int32))
    assert spec.classes.dtype == np.int64 and spec.output_names == ("label", "probabilities")
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        GraphSpec(net, task="ranking")
    with pytest.raises(ValueError, match="must be a zeronn Network"):
        GraphSpec({"W": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"3 classes \(classification\) need 3 softmax"):
        GraphSpec(binary, task="classification", classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"2 classes .* need 1 sigmoid"):
        GraphSpec(net, task="classification", classes=["a", "b"])
    with pytest.raises(ValueError, match="no usable class labels"):
        GraphSpec(net, task="classification", classes=None)
    with pytest.raises(ValueError, match="no usable class labels"):
        GraphSpec(binary, task="classification", classes=np.array(["a", 1], object))
    with pytest.raises(ValueError, match="classes are for classification"):
        GraphSpec(net, task="regression", classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="y_scaling applies to network and regression"):
        GraphSpec(net, task="classification", classes=[1, 2, 3], y_scaling=([0], [1]))
    with pytest.raises(ValueError, match="x_scaling mean has 3 values, expected 2"):
        GraphSpec(net, x_scaling=([0, 0, 0], [1, 1]))
    with pytest.raises(ValueError, match="x_scaling scale must hold finite"):
        GraphSpec(net, x_scaling=([0, 0], [1, np.nan]))
    with pytest.raises(ValueError, match="x_scaling must be a"):
        GraphSpec(net, x_scaling=np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1 output"):
        GraphSpec(net, output_names=("a", "b"))
    with pytest.raises(ValueError, match="none equal to an input name"):
        GraphSpec(net, output_names=("X",))


def test_onnx_spec_must_return_a_graph_spec(tmp_path):
    class Odd:
        def onnx_spec(self) -> dict[str, Any]:
            return {}

    with pytest.raises(ValueError, match=r"Odd.onnx_spec\(\) returned a dict, not a GraphSpec"):
        zn.export_onnx(Odd(), tmp_path / "m.onnx")


def test_front_ends_give_their_spec():
    """The estimators and the tabular model describe themselves; export reads nothing else."""
    sk = pytest.importorskip("zeronn.sklearn")
    X, Z = _xy()
    with pytest.warns(UserWarning):  # few iterations on purpose: ConvergenceWarning
        est = sk.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(
            X, np.where(Z[:, 0] > 0, "yes", "no"))
    spec = est.onnx_spec()
    assert (spec.task, spec.kind, spec.network) == ("classification", "sklearn.MLPClassifier",
                                                    est.net_)
    assert spec.classes.dtype == object and list(spec.classes) == ["no", "yes"]
    assert spec.x_scaling is None and spec.y_scaling is None
    with pytest.raises(ValueError, match="not fitted"):
        sk.MLPClassifier().onnx_spec()


# -- convnets ---------------------------------------------------------------------------------
_CONVNETS = {
    "lenet": ((1, 12, 12), lambda: [
        zn.Conv2D(4, 3, activation="relu"), zn.MaxPool2D(2), zn.Conv2D(6, 3, padding=1),
        zn.Activation("tanh"), zn.AvgPool2D(2), zn.Flatten(), zn.Dense(3, activation="softmax")]),
    "strided-padded": ((3, 9, 8), lambda: [
        zn.Conv2D(5, (3, 2), stride=(2, 1), padding=(1, 2), activation="elu"),
        zn.MaxPool2D(3, stride=1, padding=1), zn.AvgPool2D((2, 3), stride=2, padding=1),
        zn.BatchNorm(), zn.Conv2D(2, 1, use_bias=False), zn.Flatten(), zn.Dense(2)]),
    "conv-output": ((2, 7, 7), lambda: [
        zn.Conv2D(3, 2, stride=2, padding=1, activation="sigmoid"), zn.MaxPool2D((1, 2))]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(_CONVNETS))
def test_convnets_match_predict(tmp_path, name, dtype):
    """Conv (strides, pads), MaxPool (-inf padding), AveragePool (count_include_pad=1) and
    Flatten (the (C, H, W) order): onnxruntime equals predict to 1e-5."""
    shape, layers = _CONVNETS[name]
    rng = np.random.default_rng(3)
    net = zn.Sequential(layers(), input_shape=shape, dtype=dtype, seed=1)
    X = rng.standard_normal((20, *shape))
    for layer in net.layers:  # nonzero biases and moved running statistics
        if isinstance(layer, zn.Conv2D) and layer.use_bias:
            layer.b = rng.standard_normal(layer.filters)
    if any(isinstance(layer, zn.BatchNorm) for layer in net.layers):
        net.forward(X * 2 + 1, training=True)
    zn.export_onnx(net, tmp_path / "c.onnx")
    model = onnx.load(tmp_path / "c.onnx")
    ops = [n.op_type for n in model.graph.node]
    for layer in net.layers:
        want = {zn.Conv2D: "Conv", zn.MaxPool2D: "MaxPool", zn.AvgPool2D: "AveragePool",
                zn.Flatten: "Flatten"}.get(type(layer))
        assert want is None or want in ops
    for node in model.graph.node:
        if node.op_type == "AveragePool":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert attrs["count_include_pad"] == 1
    (out,) = _run(tmp_path / "c.onnx", X)
    _assert_close(out, net.predict(X.astype(np.float32).astype(dtype)))


# -- input columns: one graph input per column, encoded inside the graph ----------------------
def _identity_net(width: int) -> zn.MLP:
    """A network whose output is its input: what the encoded features are, to compare."""
    net = zn.MLP([width, width], output_activation="identity", seed=0)
    net.layers[0].W = np.eye(width)
    net.layers[0].b = np.zeros((1, width))
    return net


def _encode(tmp_path: Path, columns: tuple[onnx_export.InputColumn, ...],
            feeds: dict[str, np.ndarray], **kw: Any) -> np.ndarray:
    """The encoded features onnxruntime computes for ``feeds`` (each (n,) or (n, 1))."""
    width = sum(c.width for c in columns)
    spec = onnx_export.GraphSpec(_identity_net(width), columns=columns, **kw)
    path = tmp_path / "cols.onnx"
    zn.export_onnx(spec, path)
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == [c.name for c in columns]
    types = {"float": np.float32, "double": np.float64, "string": object}
    inputs = {c.name: np.asarray(feeds[c.name], types[onnx_export.ENCODINGS[c.encoding]])
              .reshape(-1, 1) for c in columns}
    (out,) = sess.run(None, inputs)
    return out


def test_number_column_fills_missing_and_flags_it(tmp_path):
    cols = (onnx_export.InputColumn("age", "number", {"fill": 28.5, "indicator": True}),
            onnx_export.InputColumn("fare", "number", {"fill": -1.0}))
    age = np.array([22.0, np.nan, 3.25, np.nan])
    fare = np.array([np.nan, 7.5, 0.0, 1e6])
    out = _encode(tmp_path, cols, {"age": age, "fare": fare})
    want = np.column_stack([np.where(np.isnan(age), 28.5, age), np.isnan(age),
                            np.where(np.isnan(fare), -1.0, fare)])
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_category_column_one_hot_with_other_and_missing(tmp_path):
    # Columns: "S", "C", other (rare or unseen values), missing ("").
    col = onnx_export.InputColumn("embarked", "category", {
        "mapping": {"S": 0, "C": 1, "Q": 2, "": 3}, "width": 4, "default": 2})
    values = np.array(["S", "C", "Q", "", "Zanzibar", "s", "S "], object)
    out = _encode(tmp_path, (col,), {"embarked": values})
    want = np.eye(4)[[0, 1, 2, 3, 2, 2, 2]]
    np.testing.assert_array_equal(out, want)
    # default -1: an unlisted value is a row of zeros (no "other" column)
    col = onnx_export.InputColumn("c", "category", {"mapping": {"a": 0, "b": 1}})
    assert col.params == {"mapping": {"a": 0, "b": 1}, "width": 2, "default": -1}
    out = _encode(tmp_path, (col,), {"c": np.array(["b", "zz", "a"], object)})
    np.testing.assert_array_equal(out, [[0, 1], [0, 0], [1, 0]])


_EPOCH = np.datetime64("1970-01-01T00:00:00", "s")


def _days_since_epoch(stamps: Any) -> np.ndarray:
    pd = pytest.importorskip("pandas")
    s = pd.Series(pd.to_datetime(stamps, format="ISO8601"))
    return ((s - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(np.float64)


def _date_parts(stamps: Any, origin: float) -> np.ndarray:
    """pandas' own calendar: the reference for the graph's arithmetic (n, 6)."""
    pd = pytest.importorskip("pandas")
    s = pd.Series(pd.to_datetime(stamps, format="ISO8601"))
    return np.column_stack([s.dt.year, s.dt.month, s.dt.day, s.dt.day_of_week,
                            s.dt.day_of_year, _days_since_epoch(stamps) - origin])


@settings(max_examples=examples(25, "ZERONN_ONNX_EXAMPLES"), deadline=None)
@given(days=st.lists(st.integers(-150_000, 150_000), min_size=1, max_size=40),
       frac=st.sampled_from([0.0, 0.25, 0.999]))
def test_days_column_matches_pandas_calendar(tmp_path_factory, days, frac):
    """Year, month, day, day of week, day of year over five centuries either side of 1970,
    leap years (1900 not, 2000 yes) and times of day included."""
    stamps = _EPOCH + np.array(days, "timedelta64[D]").astype("timedelta64[s]") + \
        np.timedelta64(int(frac * 86400), "s")
    origin = -1234.5
    col = onnx_export.InputColumn("when", "days", {
        "parts": list(onnx_export.DATE_PARTS), "origin": origin, "fill": [0] * 6})
    x = _days_since_epoch(stamps)
    out = _encode(tmp_path_factory.mktemp("d"), (col,), {"when": x})
    want = _date_parts(stamps, origin)
    np.testing.assert_array_equal(out[:, :5], want[:, :5])
    np.testing.assert_allclose(out[:, 5], want[:, 5], rtol=1e-6)


def test_days_column_leap_days_and_missing(tmp_path):
    stamps = ["1900-02-28", "1900-03-01", "2000-02-29", "2000-12-31", "2024-02-29",
              "1969-12-31 23:59:59", "1970-01-01", "1600-03-01", None]
    x = _days_since_epoch(stamps)
    assert np.isnan(x[-1])
    fill = [2000.0, 6.0, 15.0, 3.0, 180.0, -7.0]
    col = onnx_export.InputColumn("d", "days", {
        "parts": ["dayofyear", "year", "month", "day", "dayofweek", "days"], "origin": 10.0,
        "fill": fill[4:5] + fill[:4] + fill[5:], "indicator": True})
    out = _encode(tmp_path, (col,), {"d": x})
    want = _date_parts(stamps[:-1], 10.0)[:, [4, 0, 1, 2, 3, 5]]
    np.testing.assert_allclose(out[:-1, :6], want, rtol=1e-6)
    np.testing.assert_array_equal(out[-1], [180.0, 2000, 6, 15, 3, -7, 1])
    assert not out[:-1, 6].any()


def test_feature_order_and_scaling_apply_to_encoded_columns(tmp_path):
    cols = (onnx_export.InputColumn("n", "number", {"fill": 0.0, "indicator": True}),
            onnx_export.InputColumn("c", "category", {"mapping": {"a": 0}, "width": 2,
                                                      "default": 1}))
    # network input: c=other, n, c=a, n missing
    order = np.array([3, 0, 2, 1])
    mean, scale = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 8.0, 16.0])
    out = _encode(tmp_path, cols, {"n": np.array([5.0, np.nan]),
                                   "c": np.array(["a", "b"], object)},
                  feature_order=order, x_scaling=(mean, scale))
    raw = np.array([[0, 5, 1, 0], [1, 0, 0, 1]], np.float64)
    np.testing.assert_allclose(out, (raw - mean) / scale)


def test_input_columns_check_themselves():
    col = onnx_export.InputColumn
    bad = [
        (("x", "text", {}), "unknown encoding 'text'; use one of number, category, days"),
        (("x", "number", {}), "give fill"),
        (("x", "number", {"fill": np.nan}), "fill must be a finite number"),
        (("x", "number", {"fill": 0, "median": 1}), r"unknown param\(s\) median"),
        (("x", "category", {"mapping": {}}), "mapping must be a non-empty"),
        (("x", "category", {"mapping": {"a": 2}, "width": 2}),
         "the column of 'a' must be an integer from 0 to 1"),
        (("x", "category", {"mapping": {"a": 0}, "default": 1}), "default"),
        (("x", "days", {"parts": ["hour"], "fill": [0]}), "parts must be distinct names"),
        (("x", "days", {"parts": ["year"], "fill": []}), "fill must hold one value per part"),
        (("", "number", {"fill": 0}), "non-empty name"),
    ]
    for args, match in bad:
        with pytest.raises(ValueError, match=match):
            col(*args)
    net = _identity_net(3)
    a = col("a", "number", {"fill": 0.0, "indicator": True})
    with pytest.raises(ValueError, match="encode 2 features, but the network takes 3"):
        onnx_export.GraphSpec(net, columns=(a,))
    with pytest.raises(ValueError, match="must be distinct: 'a'"):
        onnx_export.GraphSpec(net, columns=(a, col("a", "number", {"fill": 0.0})))
    b = col("b", "number", {"fill": 0.0})
    with pytest.raises(ValueError, match=r"feature_order must be a permutation of 0\.\.2"):
        onnx_export.GraphSpec(net, columns=(a, b), feature_order=np.array([0, 0, 1]))
    with pytest.raises(ValueError, match="none equal to an input name"):
        onnx_export.GraphSpec(net, columns=(a, col("output", "number", {"fill": 0.0})))
    with pytest.raises(ValueError, match="give columns too"):
        onnx_export.GraphSpec(net, feature_order=np.arange(3))


# -- sequences: token ids, recurrent layers, attention, composites ----------------------------
def _seq_run(path: Path, X: np.ndarray, dtype: str = "float32") -> np.ndarray:
    sess = _session(path)
    (inp,) = sess.get_inputs()
    feed = X.astype(np.int64) if inp.type == "tensor(int64)" else X.astype(dtype)
    (out,) = sess.run(None, {"X": feed})
    return out


def _moved(net: zn.Network, seed: int = 0) -> zn.Network:
    """Parameters off their initial values: nonzero biases, gamma and beta."""
    net.flat_params[:] += np.random.default_rng(seed).normal(0, 0.3, net.n_params)
    return net


def _sequence_net(name: str, dtype: str) -> tuple[zn.Network, np.ndarray]:
    """A network with the layer kind ``name`` and sequences for it, (T, features) or ids."""
    rng = np.random.default_rng(7)
    ids = name.startswith("ids-")
    layers: list[zn.Layer] = {
        "ids-embedding": [zn.Embedding(9, 4)],
        "dense": [zn.Dense(5, activation="gelu"), zn.Dense(2)],
        "layernorm": [zn.LayerNorm(eps=1e-3)],
        "softmax": [zn.Activation("softmax")],
        "rnn-tanh": [zn.RNN(6, return_sequences=True)],
        "rnn-relu-last": [zn.RNN(6, activation="relu")],
        "lstm": [zn.LSTM(6, return_sequences=True)],
        "lstm-last": [zn.LSTM(6)],
        "gru": [zn.GRU(6, return_sequences=True)],
        "gru-last-nobias": [zn.GRU(6, use_bias=False)],
        "attention": [zn.MultiHeadAttention(2)],
        "attention-causal": [zn.MultiHeadAttention(4, causal=True)],
        "attention-nobias": [zn.MultiHeadAttention(1, causal=True, use_bias=False)],
        "positional": [zn.PositionalEmbedding(9)],
        "residual": [zn.Residual([zn.LayerNorm(), zn.Dense(4, activation="tanh")])],
        "composite": [zn.Composite([zn.Dense(3), zn.Residual([zn.Dense(3)]),
                                    zn.Activation("relu")])],
        "ids-lstm-gru": [zn.Embedding(9, 4), zn.LSTM(5, return_sequences=True),
                         zn.Dropout(0.3), zn.GRU(3)],
    }[name]
    shape = (7,) if ids else (7, 4)
    net = _moved(zn.Sequential(layers, input_shape=shape, dtype=dtype, seed=1))
    X = rng.integers(0, 9, (6, 7)) if ids else rng.standard_normal((6, 7, 4)) * 2
    return net, X


SEQUENCE_NETS = ["ids-embedding", "dense", "layernorm", "softmax", "rnn-tanh", "rnn-relu-last",
                 "lstm", "lstm-last", "gru", "gru-last-nobias", "attention", "attention-causal",
                 "attention-nobias", "positional", "residual", "composite", "ids-lstm-gru"]
# onnxruntime's CPU kernels of RNN, LSTM and GRU are float32 only
_NO_DOUBLE = ("rnn", "lstm", "gru")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", SEQUENCE_NETS)
def test_sequence_layers_match_predict(tmp_path, name, dtype):
    """Each kind alone (or in a small stack): float32 graphs to 1e-5 relative, float64
    graphs to 1e-10 where onnxruntime runs them; 1 to T steps."""
    net, X = _sequence_net(name, dtype)
    path = tmp_path / "s.onnx"
    zn.export_onnx(net, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    X32 = X if X.dtype.kind == "i" else X.astype(np.float32).astype(np.float64)
    for steps in (7, 3, 1):
        want = net.predict(X32[:, :steps]).astype(np.float64)
        got = _seq_run(path, X32[:, :steps])
        assert got.dtype == np.float32
        _assert_close(got.astype(np.float64), want)
    if dtype == "float64" and not any(k in name for k in _NO_DOUBLE):
        zn.export_onnx(net, path, dtype="float64")
        got = _seq_run(path, X, "float64")
        assert got.dtype == np.float64
        _assert_close(got, net.predict(X), rtol=1e-10)


def test_char_model_embedding_lstm_softmax(tmp_path):
    """A character model: ids (batch, T) int64 in, next-character probabilities out."""
    text = "hello world, hello onnx. " * 8
    chars = sorted(set(text))
    ids = np.array([chars.index(c) for c in text])
    T = 10
    X = np.stack([ids[i:i + T] for i in range(len(ids) - T)])
    y = ids[T:]
    net = zn.Sequential([zn.Embedding(len(chars), 8), zn.LSTM(16),
                         zn.Dense(len(chars), activation="softmax")],
                        input_shape=(T,), dtype="float32", seed=0)
    net.fit(X, y, loss="categorical_crossentropy", epochs=3, batch_size=32, seed=0)
    path = tmp_path / "char.onnx"
    zn.export_onnx(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    (inp,) = model.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [d.dim_param for d in inp.type.tensor_type.shape.dim] == ["batch", "time"]
    ops = [n.op_type for n in model.graph.node]
    assert ops[:3] == ["Gather", "Transpose", "LSTM"] and "Softmax" in ops
    got = _seq_run(path, X)
    _assert_close(got, net.predict(X).astype(np.float64))
    np.testing.assert_allclose(got.sum(axis=1), 1, rtol=1e-5)


def test_lstm_and_gru_gates_in_onnx_order(tmp_path):
    """ONNX's LSTM W is torch's i, f, g, o blocks as i, o, f, c; GRU's r, z, n as z, r, h."""
    for cls, order in ((zn.LSTM, [0, 3, 1, 2]), (zn.GRU, [1, 0, 2])):
        net = _moved(zn.Sequential([cls(3)], input_shape=(4, 2), seed=0))
        zn.export_onnx(net, tmp_path / "r.onnx")
        model = onnx.load(str(tmp_path / "r.onnx"))
        node = next(n for n in model.graph.node if n.op_type == cls.__name__)
        init = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        layer = net.layers[0]
        W, R, B = (init[name] for name in node.input[1:4])
        blocks = [layer.weight_ih[3 * k:3 * (k + 1)] for k in order]
        np.testing.assert_allclose(W[0], np.concatenate(blocks), rtol=1e-6)
        assert R.shape == (1, 3 * len(order), 3) and B.shape == (1, 6 * len(order))
        np.testing.assert_allclose(B[0, 3 * len(order):3 * len(order) + 3],
                                   layer.bias_hh[3 * order[0]:3 * order[0] + 3], rtol=1e-6)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["hidden_size"] == 3
        assert attrs.get("linear_before_reset") == (1 if cls is zn.GRU else None)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gru_and_relu_rnn_sequences_stack(tmp_path, dtype):
    net = _moved(zn.Sequential([zn.GRU(6, return_sequences=True), zn.LayerNorm(),
                                zn.RNN(5, activation="relu", return_sequences=True),
                                zn.Dense(2)], input_shape=(8, 3), dtype=dtype, seed=2))
    X = np.random.default_rng(1).standard_normal((10, 8, 3))
    zn.export_onnx(net, tmp_path / "g.onnx")
    for steps in (8, 5):
        got = _seq_run(tmp_path / "g.onnx", X[:, :steps])
        assert got.shape == (10, steps, 2)
        _assert_close(got.astype(np.float64),
                      net.predict(X[:, :steps].astype(np.float32).astype(dtype)))


def _gpt(dtype: str) -> zn.Sequential:
    return zn.Sequential([
        zn.Embedding(11, 8), zn.PositionalEmbedding(6),
        zn.Residual([zn.LayerNorm(), zn.MultiHeadAttention(2, causal=True)]),
        zn.Residual([zn.LayerNorm(), zn.Dense(16, activation="gelu"), zn.Dense(8)]),
        zn.LayerNorm(), zn.Dense(11)], input_shape=(6,), dtype=dtype, seed=0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpt_like_stack_matches_predict(tmp_path, dtype):
    net = _moved(_gpt(dtype), seed=3)
    ids = np.random.default_rng(0).integers(0, 11, (9, 6))
    path = tmp_path / "gpt.onnx"
    zn.export_onnx(net, path)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    ops = [n.op_type for n in model.graph.node]
    for op in ("Gather", "LayerNormalization", "Softmax", "Reshape", "Slice"):
        assert op in ops
    assert ops.count("Add") >= 2 + 2  # the residuals and the positional embedding, at least
    (out,) = model.graph.output
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == \
        ["batch", "time", 11]
    for steps in (6, 4, 1):  # the causal mask and W[:T] sliced to the input's T
        want = net.predict(ids[:, :steps]).astype(np.float64)
        got = _seq_run(path, ids[:, :steps])
        assert got.shape == (9, steps, 11)
        _assert_close(got.astype(np.float64), want, rtol=1e-4)
    # causal: a later token changes no earlier logits
    changed = ids.copy()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    np.testing.assert_array_equal(_seq_run(path, changed)[:, :-1], _seq_run(path, ids)[:, :-1])
    zn.export_onnx(net, path, dtype="float64")
    got = _seq_run(path, ids, "float64")
    assert got.dtype == np.float64
    _assert_close(got, net.predict(ids).astype(np.float64),
                  rtol=1e-10 if dtype == "float64" else 1e-5)


def test_fixed_steps_when_a_layer_needs_them(tmp_path):
    """Flatten needs the network's T: the graph's input then has it fixed."""
    net = _moved(zn.Sequential([zn.Embedding(5, 3), zn.MultiHeadAttention(1, causal=True),
                                zn.Flatten(), zn.Dense(2)], input_shape=(4,), seed=0))
    zn.export_onnx(net, tmp_path / "f.onnx")
    model = onnx.load(str(tmp_path / "f.onnx"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 4
    assert "Slice" not in [n.op_type for n in model.graph.node]  # the mask as it is
    ids = np.random.default_rng(0).integers(0, 5, (7, 4))
    _assert_close(_seq_run(tmp_path / "f.onnx", ids), net.predict(ids))


class _Doubled(zn.Residual):
    def infer(self, x: np.ndarray) -> np.ndarray:
        return 2 * super().infer(x)


def test_sequence_refusals(tmp_path):
    ids_net = zn.Sequential([zn.Embedding(5, 3), zn.LSTM(2)], input_shape=(4,), seed=0)
    with pytest.raises(ValueError, match=r"takes token ids.*no x_scaling"):
        onnx_export.GraphSpec(ids_net, x_scaling=(np.zeros(4), np.ones(4)))
    with pytest.raises(ValueError, match="dtype must be one of float32, float64"):
        zn.export_onnx(ids_net, tmp_path / "m.onnx", dtype="float16")
    inner = zn.Sequential([zn.Residual([zn.Dense(3), _Square()])], input_shape=(2, 3), seed=0)
    with pytest.raises(ValueError, match=r"layer 1\.1 \(_Square, kind 'square'\) has no ONNX"):
        zn.export_onnx(inner, tmp_path / "m.onnx")
    odd = zn.Sequential([_Doubled([zn.Dense(3)])], input_shape=(2, 3), seed=0)
    with pytest.raises(ValueError, match=r"layer 1 \(_Doubled\) has an infer\(\) of its own"):
        zn.export_onnx(odd, tmp_path / "m.onnx")
    ln = zn.Sequential([zn.Embedding(5, 4), zn.Residual([zn.LayerNorm()])], input_shape=(3,),
                       seed=0)
    with pytest.raises(ValueError, match=r"layer 2\.0 \(LayerNorm\).*opset=17"):
        zn.export_onnx(ln, tmp_path / "m.onnx", opset=16)
    assert not any(tmp_path.iterdir())


def test_tied_gpt_exports_its_shared_matrix(tmp_path):
    """zn.gpt (lm_head tied to wte): the head is a MatMul by the Embedding's W.T."""
    net = zn.gpt(11, 6, n_layer=1, n_head=2, n_embd=8, seed=0)
    ids = np.random.default_rng(0).integers(0, 11, (4, 6))
    path = tmp_path / "gpt.onnx"
    zn.export_onnx(net, path)
    sess = ort.InferenceSession(str(path))
    got = sess.run(None, {sess.get_inputs()[0].name: ids.astype(np.int64)})[0]
    np.testing.assert_allclose(got, net.predict(ids), rtol=1e-5, atol=1e-6)
