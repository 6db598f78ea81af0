"""ONNX export: onnxruntime computes what predict computes, for every activation and head."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zeronn as zn
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
    outs = _run(tmp_path / "t.onnx", X)
    want = model.predict(df)
    if model.classes:
        label, proba = outs
        assert np.array_equal(label.astype(want.dtype), want)
        _assert_close(proba, model.predict_proba(df))
    else:
        _assert_close(outs[0], want)
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "t.onnx")).metadata_props}
    assert props["feature_names"] == '["a", "b", "c", "d"]'
