"""Model files: exact round trips and resumes, atomic writes, and hostile or broken files."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import pickle
import stat
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn import persistence
from zeronn.optim import SGD, AdaGrad, Adam, AdamW, RMSProp


def _data(rng: np.random.Generator, n: int = 40, d: int = 3, k: int = 1):
    X = rng.standard_normal((n, d))
    Y = np.tanh(X @ rng.standard_normal((d, k)))
    return X, Y


def _trained(tmp_path: Path, **fit: Any) -> tuple[zn.MLP, Path, np.ndarray]:
    """A small trained network (optimizer state and history included) saved to a file."""
    rng = np.random.default_rng(7)
    X, Y = _data(rng)
    net = zn.MLP([3, 5, 4, 1], activation=["tanh", "relu"], seed=3)
    net.fit(X, Y, epochs=3, batch_size=16, **fit)
    path = tmp_path / "model.zeronn"
    zn.save(net, path)
    return net, path, X


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _write_zip(path: Path, members: dict[str, bytes],
               compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _npy(arr: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def _edit_header(src: Path, dst: Path, edit: Callable[[dict], Any]) -> Path:
    """A copy of ``src`` whose header.json went through ``edit`` (a valid zip again)."""
    members = _members(src)
    header = json.loads(members["header.json"])
    edit(header)
    members["header.json"] = json.dumps(header).encode()
    return _write_zip(dst, members)


def _load_fails(path: Path, *words: str) -> ValueError:
    with pytest.raises(ValueError) as info:
        zn.load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, msg
    return info.value


# The hostile-file tests run on both formats: a file written now (format 2) and one
# written by zeronn 0.1 (format 1), both a trained MLP [3, h, 4, 1].
V01 = Path(__file__).parent / "data" / "v0_1"
FORMATS = pytest.mark.parametrize("fmt", ["v2", "v1"])


def _source(tmp_path: Path, fmt: str) -> tuple[Path, dict[str, str], int]:
    """(the file, the members holding W1, b1, W2, b2, the hidden size h)."""
    if fmt == "v1":
        path = tmp_path / "v1.zeronn"
        path.write_bytes((V01 / "mlp_f64.zeronn").read_bytes())
        return path, {k: f"network/{k}.npy" for k in ("W1", "b1", "W2", "b2")}, 6
    _, path, _ = _trained(tmp_path)
    return path, {f"{p}{i}": f"network/{i}/{p}.npy" for p in "Wb" for i in (1, 2)}, 5


# -- round trips -----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("acts,out,k", [
    (["relu", "gelu"], "identity", 2),
    (["elu", "softplus"], "sigmoid", 1),
    (["leaky_relu", "tanh"], "softmax", 3),
])
def test_round_trip_predictions_identical(tmp_path, dtype, acts, out, k):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    net = zn.MLP([4, 6, 5, k], activation=acts, output_activation=out, dtype=dtype, seed=1)
    path = tmp_path / "m.zeronn"
    zn.save(net, path)
    back = zn.load(path)
    assert isinstance(back, zn.MLP)
    assert back.layer_sizes == net.layer_sizes
    assert back.activations == acts and back.output_activation == out
    assert back.dtype == net.dtype and back.init == "he_normal" and back.seed == 1
    assert back.optimizer is None and back.history is None
    pred = back.predict(X)
    assert pred.dtype == np.dtype(dtype)
    assert np.array_equal(pred, net.predict(X))
    for a, b in zip(back.params, net.params):
        assert np.array_equal(a, b) and a.dtype == b.dtype


def test_same_model_same_bytes(tmp_path):
    net, path, _ = _trained(tmp_path)
    zn.save(net, tmp_path / "again.zeronn")
    assert path.read_bytes() == (tmp_path / "again.zeronn").read_bytes()


def test_file_is_a_plain_zip_of_npy_and_json(tmp_path):
    net, path, _ = _trained(tmp_path)
    members = _members(path)
    header = json.loads(members["header.json"])
    assert header["format"] == "zeronn-model" and header["format_version"] == 2
    assert header["zeronn_version"] == zn.__version__
    assert header["kind"] == "network"
    net_head = header["network"]
    assert net_head["class"] == "MLP" and net_head["input_shape"] == [3]
    assert net_head["layers"] == [
        {"type": "Dense", "config": {"units": 5, "activation": "tanh", "init": "he_normal"},
         "params": ["W", "b"], "state": []},
        {"type": "Dense", "config": {"units": 4, "activation": "relu", "init": "he_normal"},
         "params": ["W", "b"], "state": []},
        {"type": "Dense", "config": {"units": 1, "activation": "identity",
                                     "init": "he_normal"},
         "params": ["W", "b"], "state": []}]
    assert net_head["optimizer"]["name"] == "adam"
    W1 = np.load(io.BytesIO(members["network/1/W.npy"]), allow_pickle=False)
    assert np.array_equal(W1, net.params[0])
    assert set(members) == {"header.json", *header["arrays"]}


@pytest.mark.parametrize("opt", [
    SGD(lr=0.05, momentum=0.9, nesterov=True), AdaGrad(lr=0.05),
    RMSProp(lr=0.01, momentum=0.5, centered=True), Adam(lr=0.01, amsgrad=True),
    AdamW(lr=0.01, weight_decay=0.1),
], ids=lambda o: type(o).__name__)
def test_optimizer_and_history_round_trip(tmp_path, opt):
    net, path, _ = _trained(tmp_path, optimizer=opt, validation_split=0.25,
                            early_stopping=zn.EarlyStopping(patience=1, monitor="loss"))
    back = zn.load(path)
    o = back.optimizer
    assert type(o) is type(opt)
    assert o.hyperparameters() == json.loads(json.dumps(opt.hyperparameters()))
    assert (o.t, o.lr, o.initial_lr) == (opt.t, opt.lr, opt.initial_lr)
    assert len(o.state) == len(opt.state) == 1
    for k, v in opt.state[0].items():
        assert np.array_equal(o.state[0][k], v) and o.state[0][k].dtype == v.dtype
    assert dict(back.history) == dict(net.history)
    assert back.history.best_epoch == net.history.best_epoch
    assert back.history.stopped_early == net.history.stopped_early
    assert back.history.interrupted == net.history.interrupted
    assert back.rng.bit_generator.state == net.rng.bit_generator.state


@pytest.mark.parametrize("opt", [lambda: Adam(lr=0.01), lambda: SGD(lr=0.05, momentum=0.9),
                                 lambda: RMSProp(lr=0.005)], ids=["adam", "sgd", "rmsprop"])
def test_resume_equals_one_long_fit(tmp_path, opt):
    """10 epochs, save, load, 10 more (optimizer=None, seed=None) == 20 epochs in one go."""
    rng = np.random.default_rng(5)
    X, Y = _data(rng, n=50, k=2)
    kw = dict(batch_size=8, shuffle=True, seed=None)
    whole = zn.MLP([3, 7, 2], activation="tanh", seed=11)
    whole.fit(X, Y, optimizer=opt(), epochs=20, **kw)
    part = zn.MLP([3, 7, 2], activation="tanh", seed=11)
    part.fit(X, Y, optimizer=opt(), epochs=10, **kw)
    zn.save(part, tmp_path / "half.zeronn")
    resumed = zn.load(tmp_path / "half.zeronn")
    resumed.fit(X, Y, optimizer=None, epochs=10, **kw)
    for a, b in zip(resumed.params, whole.params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(resumed.history["loss"], whole.history["loss"], rtol=1e-12)
    assert resumed.optimizer.t == whole.optimizer.t


def test_resume_needs_the_saved_rng_state(tmp_path):
    """The control for the test above: a fresh shuffling stream gives another trajectory."""
    rng = np.random.default_rng(5)
    X, Y = _data(rng, n=50)
    whole = zn.MLP([3, 7, 1], seed=11)
    whole.fit(X, Y, epochs=4, batch_size=8)
    part = zn.MLP([3, 7, 1], seed=11)
    part.fit(X, Y, epochs=2, batch_size=8)
    zn.save(part, tmp_path / "m.zeronn")
    resumed = zn.load(tmp_path / "m.zeronn")
    resumed.rng = np.random.default_rng(11)
    resumed.fit(X, Y, epochs=2, batch_size=8)
    assert not np.allclose(resumed.params[0], whole.params[0], rtol=1e-12, atol=0)


# -- any stack of layers -----------------------------------------------------------------
# Examples per run; raise it for a deeper search, e.g. ZERONN_PERSISTENCE_EXAMPLES=300.
EXAMPLES = examples(12, "ZERONN_PERSISTENCE_EXAMPLES")
_HIDDEN_ACTS = ["relu", "tanh", "gelu", "elu", "sigmoid", "identity", "leaky_relu"]


@st.composite
def _stacks(draw: Any) -> tuple[int, list[tuple[type, dict[str, Any]]], int]:
    """(input size, [(layer class, arguments)...] ending in a linear Dense, output size)."""
    specs: list[tuple[type, dict[str, Any]]] = []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["dense", "activation", "dropout", "batchnorm",
                                     "layernorm"]))
        if kind == "dense":
            specs.append((zn.Dense, {
                "units": draw(st.integers(1, 6)),
                "activation": draw(st.sampled_from(_HIDDEN_ACTS)),
                "init": draw(st.sampled_from(["he_normal", "glorot_uniform", "xavier_uniform"])),
                "use_bias": draw(st.booleans())}))
        elif kind == "activation":
            specs.append((zn.Activation, {"activation": draw(st.sampled_from(_HIDDEN_ACTS))}))
        elif kind == "dropout":
            specs.append((zn.Dropout, {"rate": draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))}))
        elif kind == "batchnorm":
            specs.append((zn.BatchNorm, {"momentum": draw(st.sampled_from([0.1, 0.5, 1.0, None])),
                                         "eps": draw(st.sampled_from([1e-5, 1e-3, 0.5]))}))
        else:
            specs.append((zn.LayerNorm, {"eps": draw(st.sampled_from([1e-5, 1e-2]))}))
    k = draw(st.integers(1, 3))
    specs.append((zn.Dense, {"units": k, "use_bias": draw(st.booleans())}))
    return draw(st.integers(1, 4)), specs, k


def _assert_same_network(a: zn.Network, b: zn.Network) -> None:
    """Same class, layers, parameters and states, bit for bit and dtype for dtype."""
    assert type(a) is type(b) and a.dtype == b.dtype and a.input_shape == b.input_shape
    assert [(type(x), x.config()) for x in a.layers] == [(type(x), x.config()) for x in b.layers]
    assert len(a.params) == len(b.params)
    for p, q in zip(a.params, b.params):
        assert p.dtype == q.dtype and np.array_equal(p, q)
    for s, t in zip(a.states(), b.states()):
        assert list(s) == list(t)
        for name in s:
            assert s[name].dtype == t[name].dtype and np.array_equal(s[name], t[name]), name


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stack=_stacks(), dtype=st.sampled_from(["float32", "float64"]),
       opt=st.sampled_from(["adam", "sgd", "rmsprop", "adamw"]))
def test_any_layer_stack_round_trips_and_resumes(tmp_path, stack, dtype, opt):
    """Trained, saved, loaded: the same network bit for bit, and one more epoch on each
    (optimizer=None, the saved generator for shuffling and dropout) stays identical."""
    d, specs, k = stack
    X, Y = _data(np.random.default_rng(0), n=16, d=d, k=k)
    net = zn.Sequential([cls(**kw) for cls, kw in specs], input_dim=d, dtype=dtype, seed=1)
    net.fit(X, Y, optimizer=opt, epochs=1, batch_size=4)
    path = tmp_path / "s.zeronn"
    zn.save(net, path)
    back = zn.load(path)
    _assert_same_network(back, net)
    pred = back.predict(X)
    assert pred.dtype == np.dtype(dtype) and np.array_equal(pred, net.predict(X))
    assert back.rng.bit_generator.state == net.rng.bit_generator.state
    net.fit(X, Y, epochs=1, batch_size=4)
    back.fit(X, Y, epochs=1, batch_size=4)
    _assert_same_network(back, net)
    assert back.optimizer.t == net.optimizer.t
    assert back.history["loss"] == net.history["loss"]


def _dropout_net() -> zn.Sequential:
    return zn.Sequential([zn.Dense(8, activation="relu"), zn.BatchNorm(), zn.Dropout(0.25),
                          zn.LayerNorm(), zn.Dense(2)], input_dim=3, seed=5)


def test_sequential_with_dropout_resumes_bit_for_bit(tmp_path):
    """2 epochs, save, load, 2 more == 4 epochs straight: weights, running statistics,
    optimizer and losses, bit for bit (the dropout masks continue the saved stream)."""
    X, Y = _data(np.random.default_rng(5), n=48, k=2)
    whole = _dropout_net()
    whole.fit(X, Y, optimizer=Adam(lr=0.01), epochs=4, batch_size=8)
    part = _dropout_net()
    part.fit(X, Y, optimizer=Adam(lr=0.01), epochs=2, batch_size=8)
    zn.save(part, tmp_path / "half.zeronn")
    resumed = zn.load(tmp_path / "half.zeronn")
    assert isinstance(resumed, zn.Sequential) and not isinstance(resumed, zn.MLP)
    resumed.fit(X, Y, optimizer=None, epochs=2, batch_size=8)
    _assert_same_network(resumed, whole)
    assert resumed.history["loss"] == whole.history["loss"]
    assert resumed.optimizer.t == whole.optimizer.t
    assert int(resumed.layers[1].num_batches_tracked) == 4 * 6
    # The control: another generator gives other masks and shuffles, other weights.
    control = zn.load(tmp_path / "half.zeronn")
    control.rng = np.random.default_rng(5)
    control.fit(X, Y, optimizer=None, epochs=2, batch_size=8)
    assert not np.array_equal(control.params[0], whole.params[0])


def test_loading_draws_no_initial_weights(tmp_path, monkeypatch):
    net = _dropout_net()
    mlp = zn.MLP([3, 4, 1], init="glorot_uniform", seed=0)
    zn.save(net, tmp_path / "s.zeronn")
    zn.save(mlp, tmp_path / "m.zeronn")

    def boom(self: Any, rng: Any) -> None:
        raise AssertionError("initialize() called while loading")

    for cls in (zn.Dense, zn.BatchNorm, zn.LayerNorm):
        monkeypatch.setattr(cls, "initialize", boom)
    _assert_same_network(zn.load(tmp_path / "s.zeronn"), net)
    _assert_same_network(zn.load(tmp_path / "m.zeronn"), mlp)


def _ones_init(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: Any) -> np.ndarray:
    return np.full((fan_in, fan_out), 0.25, dtype)


def test_custom_initializer_is_not_saved_and_not_needed(tmp_path):
    net = zn.Sequential([zn.Dense(3, activation="tanh", init=_ones_init), zn.Dense(1)],
                        input_dim=2, seed=0)
    zn.save(net, tmp_path / "s.zeronn")
    header = json.loads(_members(tmp_path / "s.zeronn")["header.json"])
    assert header["network"]["layers"][0]["config"] == {"units": 3, "activation": "tanh"}
    back = zn.load(tmp_path / "s.zeronn")
    assert np.array_equal(back.params[0], np.full((2, 3), 0.25))
    assert np.array_equal(back.predict(np.ones((2, 2))), net.predict(np.ones((2, 2))))
    mlp = zn.MLP([2, 3, 1], init=_ones_init, seed=0)
    zn.save(mlp, tmp_path / "m.zeronn")
    back_mlp = zn.load(tmp_path / "m.zeronn")
    assert back_mlp.init == "_ones_init"
    for p, q in zip(back_mlp.params, mlp.params):
        assert np.array_equal(p, q)


def test_only_zeronn_layers_and_models_are_saved(tmp_path):
    class MyDense(zn.Dense):
        pass

    net = zn.Sequential([MyDense(2), zn.Dense(1)], input_dim=2)
    with pytest.raises(ValueError, match=r"MyDense.*LAYERS"):
        zn.save(net, tmp_path / "m.zeronn")
    with pytest.raises(ValueError, match=r"bare Network.*Sequential"):
        zn.save(zn.Network([zn.Dense(1)], input_dim=2), tmp_path / "m.zeronn")
    assert not any(tmp_path.iterdir())


def test_layers_table_holds_every_layer_class():
    """The loader's table: each public layer class under its own name, nothing else."""
    assert zn.layers.LAYERS == {name: getattr(zn.layers, name) for name in zn.layers.__all__
                                if name not in ("LAYERS", "Layer", "Param")}
    for name, cls in zn.layers.LAYERS.items():
        assert cls.__name__ == name and issubclass(cls, zn.Layer)


def test_non_finite_layer_state_is_not_saved(tmp_path):
    net = _dropout_net()
    net.layers[1].running_var[0] = np.inf
    with pytest.raises(ValueError, match=r"running_var.*NaN or inf"):
        zn.save(net, tmp_path / "m.zeronn")


# -- kinds of model file: registered by front ends, or declared as entry points -------------
class _Box:
    """A minimal object of the model-file protocol."""

    def __init__(self, net: zn.Sequential | None, note: str) -> None:
        self.net, self.note = net, note

    def zeronn_state(self) -> tuple[Any, dict[str, Any], dict[str, np.ndarray]]:
        return self.net, {"note": self.note}, {"scale": np.arange(3.0)}

    @classmethod
    def from_zeronn_state(cls, net: Any, meta: dict[str, Any],
                          arrays: dict[str, np.ndarray]) -> _Box:
        if not np.array_equal(arrays["scale"], np.arange(3.0)):
            raise ValueError("bad scale")
        return cls(net, meta["note"])


@pytest.fixture()
def kinds(monkeypatch) -> dict[str, type]:
    """A private copy of the registry, restored after the test."""
    table = dict(persistence._KINDS)
    monkeypatch.setattr(persistence, "_KINDS", table)
    return table


def test_a_registered_kind_round_trips(tmp_path, kinds):
    persistence.register_kind("tests.Box", _Box)
    persistence.register_kind("tests.Box", _Box)  # the same class again: fine
    assert "tests.Box" in persistence.kinds()
    for net in (_dropout_net(), None):
        zn.save(_Box(net, "hi"), tmp_path / "b.zeronn")
        back = zn.load(tmp_path / "b.zeronn")
        assert isinstance(back, _Box) and back.note == "hi"
        if net is None:
            assert back.net is None
        else:
            _assert_same_network(back.net, net)
    bad = _edit_header(tmp_path / "b.zeronn", tmp_path / "c.zeronn",
                       lambda h: h.update(kind="tests.Other"))
    _load_fails(bad, "unknown kind 'tests.Other'", "tests.Box")
    kinds.pop("tests.Box")
    _load_fails(tmp_path / "b.zeronn", "unknown kind 'tests.Box'")


def test_register_kind_refuses_bad_registrations(kinds):
    class Other(_Box):
        pass

    persistence.register_kind("tests.Box", _Box)
    for kind, cls, words in [
        ("tests.Box", Other, "already registered"),
        ("network", _Box, "zeronn's own"),
        ("mlp", _Box, "zeronn's own"),
        ("bad kind!", _Box, "dotted name"),
        ("a..b", _Box, "dotted name"),
        (3, _Box, "dotted name"),
        ("tests.Obj", object, "zeronn_state"),
        ("tests.Inst", _Box(None, ""), "zeronn_state"),
    ]:
        with pytest.raises(ValueError, match=words):
            persistence.register_kind(kind, cls)
    assert kinds["tests.Box"] is _Box and "tests.Obj" not in kinds


def _entry_points(table: dict[str, str]) -> Callable[..., list[Any]]:
    from importlib.metadata import EntryPoint

    eps = [EntryPoint(name=k, value=v, group=persistence.ENTRY_POINT_GROUP)
           for k, v in table.items()]

    def entry_points(*, group: str) -> list[Any]:
        return [ep for ep in eps if ep.group == group]

    return entry_points


def _declared() -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib")
    with open(Path(__file__).parents[1] / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    return dict(project["entry-points"][persistence.ENTRY_POINT_GROUP])


def test_pyproject_declares_every_front_end_kind():
    pytest.importorskip("zeronn.sklearn")
    pytest.importorskip("zeronn.tabular")
    registered = {k: f"{c.__module__}:{c.__qualname__}" for k, c in persistence._KINDS.items()
                  if c.__module__.startswith("zeronn.")}
    assert registered == _declared()


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning: few iterations
def test_a_declared_kind_loads_before_its_module_registers_it(tmp_path, kinds, monkeypatch):
    """A kind nobody registered yet is looked up in the installed entry points (by its
    exact name), whose class then handles the file."""
    sk = pytest.importorskip("zeronn.sklearn")
    est = sk.MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0)
    X, Z = _data(np.random.default_rng(1), n=20)
    est.fit(X, Z[:, 0])
    zn.save(est, tmp_path / "e.zeronn")
    kinds.clear()
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(_declared()))
    back = zn.load(tmp_path / "e.zeronn")
    assert type(back) is sk.MLPRegressor and np.array_equal(back.predict(X), est.predict(X))
    assert kinds["sklearn.MLPRegressor"] is sk.MLPRegressor
    # A declared class without the protocol, and a declared module that cannot be imported.
    kinds.clear()
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(
        {"sklearn.MLPRegressor": "zeronn.models:Sequential"}))
    _load_fails(tmp_path / "e.zeronn", "sklearn.MLPRegressor", "not a model class")
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(
        {"sklearn.MLPRegressor": "zeronn_no_such_module:Model"}))
    with pytest.raises(ImportError, match="zeronn_no_such_module"):
        zn.load(tmp_path / "e.zeronn")
    # Undeclared: unknown, whatever the file says.
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points({}))
    _load_fails(tmp_path / "e.zeronn", "unknown kind 'sklearn.MLPRegressor'")


@pytest.mark.parametrize("bitgen", [np.random.MT19937, np.random.Philox, np.random.SFC64,
                                    np.random.PCG64DXSM])
def test_other_bit_generators_round_trip(tmp_path, bitgen):
    net = zn.MLP([2, 3, 1], seed=0)
    net.rng = np.random.Generator(bitgen(42))
    net.rng.random(3)
    zn.save(net, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    assert type(back.rng.bit_generator) is bitgen
    assert np.array_equal(back.rng.random(5), net.rng.random(5))


def test_registered_activation_round_trips_and_unknown_one_fails(tmp_path):
    zn.register_activation("cube_test", lambda z: z ** 3, lambda z: 3 * z ** 2)
    try:
        net = zn.Sequential([zn.Dense(3, activation="cube_test"), zn.Activation("cube_test"),
                             zn.Dense(1)], input_dim=2, seed=0)
        path = tmp_path / "m.zeronn"
        zn.save(net, path)
        X = np.ones((2, 2))
        assert np.array_equal(zn.load(path).predict(X), net.predict(X))
        del zn.ACTIVATIONS["cube_test"]
        _load_fails(path, "'cube_test'", "register_activation")
    finally:  # the registry is global: other tests list its activations
        zn.ACTIVATIONS.pop("cube_test", None)


def test_unregistered_activation_object_cannot_be_saved(tmp_path):
    relu = zn.ACTIVATIONS["relu"]
    stray = zn.ActivationFunction("stray", relu.forward, relu.backward)
    net = zn.MLP([2, 3, 1], activation=stray, seed=0)
    with pytest.raises(ValueError, match="register_activation"):
        zn.save(net, tmp_path / "m.zeronn")
    assert not any(tmp_path.iterdir())


def test_non_finite_weights_or_state_are_not_saved(tmp_path):
    net = zn.MLP([2, 3, 1], seed=0)
    net.fit(np.ones((4, 2)), np.ones(4), epochs=1)
    zn.save(net, tmp_path / "m.zeronn")
    before = (tmp_path / "m.zeronn").read_bytes()
    net.optimizer.state[0]["exp_avg"][0] = np.inf
    with pytest.raises(ValueError, match="optimizer state holds NaN or inf"):
        zn.save(net, tmp_path / "m.zeronn")
    net.params[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="weights hold NaN or inf"):
        zn.save(net, tmp_path / "m.zeronn")
    assert (tmp_path / "m.zeronn").read_bytes() == before


def test_custom_optimizer_is_skipped_with_a_warning(tmp_path):
    class MySGD(SGD):
        pass

    net = zn.MLP([2, 3, 1], seed=0)
    net.fit(np.ones((4, 2)), np.ones(4), optimizer=MySGD(lr=0.1), epochs=1)
    with pytest.warns(UserWarning, match="not saved"):
        zn.save(net, tmp_path / "m.zeronn")
    assert zn.load(tmp_path / "m.zeronn").optimizer is None


def test_save_refuses_other_objects(tmp_path):
    for obj in (object(), {"W": 1}, [np.ones(2)]):
        with pytest.raises(ValueError, match=r"zeronn\.save takes an MLP"):
            zn.save(obj, tmp_path / "m.zeronn")


def test_save_refuses_a_class_claiming_a_kind(tmp_path):
    class Impostor:
        zeronn_kind = "sklearn.MLPRegressor"

        def zeronn_state(self):
            return None, {}, {}

    with pytest.raises(ValueError, match="cannot save a Impostor"):
        zn.save(Impostor(), tmp_path / "m.zeronn")


# -- atomic writes --------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["write_array", "fsync", "replace"])
def test_failed_save_keeps_old_file_and_leaves_no_temp_files(tmp_path, monkeypatch, where):
    old, path, X = _trained(tmp_path)
    before = path.read_bytes()
    new = zn.MLP([3, 5, 4, 1], seed=99)
    calls = []

    def boom(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        raise KeyboardInterrupt if where == "fsync" else OSError("disk full")

    if where == "write_array":
        real = np.lib.format.write_array

        def partial(fp: Any, arr: Any, *a: Any, **k: Any) -> None:
            if calls:  # the second array: the file is half written
                boom()
            calls.append(0)
            real(fp, arr, *a, **k)

        monkeypatch.setattr(np.lib.format, "write_array", partial)
    else:
        monkeypatch.setattr(persistence.os, where, boom)
    with pytest.raises((OSError, KeyboardInterrupt)):
        zn.save(new, path)
    assert calls
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zeronn"]
    assert np.array_equal(zn.load(path).predict(X), old.predict(X))


def test_save_to_a_missing_folder_or_a_folder(tmp_path):
    net = zn.MLP([2, 1], seed=0)
    with pytest.raises(FileNotFoundError, match="folder does not exist"):
        zn.save(net, tmp_path / "nope" / "m.zeronn")
    with pytest.raises(IsADirectoryError):
        zn.save(net, tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_file_mode_follows_umask_and_is_kept_on_overwrite(tmp_path):
    net = zn.MLP([2, 1], seed=0)
    path = tmp_path / "m.zeronn"
    mask = os.umask(0o022)
    try:
        zn.save(net, path)
    finally:
        os.umask(mask)
    # mkstemp creates 0600; the result must look like any other new file instead.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    zn.save(net, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# -- hostile and broken files ---------------------------------------------------------------
def test_missing_path_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        zn.load(tmp_path / "absent.zeronn")
    with pytest.raises(OSError):
        zn.load(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.zeronn"
    path.write_bytes(b"")
    _load_fails(path, "empty")


@pytest.mark.parametrize("content", [
    b"hello, this is a text file\n", bytes(range(256)) * 4,
    pickle.dumps({"W1": np.ones(3)}), b"\x93NUMPY\x01\x00", b"PK\x03\x04 not really a zip",
], ids=["text", "random", "pickle", "npy", "fake-zip"])
def test_not_a_model_file(tmp_path, content):
    path = tmp_path / "bad.zeronn"
    path.write_bytes(content)
    _load_fails(path)


def test_truncated_files(tmp_path):
    _, path, _ = _trained(tmp_path)
    data = path.read_bytes()
    bad = tmp_path / "cut.zeronn"
    for cut in (1, 4, 30, 100, len(data) // 2, len(data) - 22, len(data) - 1):
        bad.write_bytes(data[:cut])
        _load_fails(bad)


def test_a_zip_without_header(tmp_path):
    path = _write_zip(tmp_path / "m.zeronn", {"network/W1.npy": _npy(np.ones((2, 2)))})
    _load_fails(path, "header.json")


_CALLS: list[str] = []


def _record(what: str) -> None:
    _CALLS.append(what)


class _Payload:
    """Unpickling this would call _record: the test checks it never happens."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_record, ("unpickled",))


@FORMATS
def test_pickled_object_array_is_refused_without_running_it(tmp_path, fmt):
    path, names, h = _source(tmp_path, fmt)
    W1 = names["W1"]
    members = _members(path)
    evil = np.empty((3, h), dtype=object)
    evil[...] = _Payload()
    members[W1] = _npy(evil, allow_pickle=True)
    bad = _write_zip(tmp_path / "evil.zeronn", members)
    # even a header claiming the object dtype is refused
    also = _edit_header(bad, tmp_path / "evil2.zeronn",
                        lambda hd: hd["arrays"][W1].update(dtype="object"))
    _load_fails(bad, W1)
    _load_fails(also, "object")
    assert _CALLS == []


def test_module_named_by_the_file_is_never_imported(tmp_path, monkeypatch):
    flag = tmp_path / "imported"
    (tmp_path / "evil_zn_mod.py").write_text(f"open({str(flag)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, path, _ = _trained(tmp_path)
    for kind in ("evil_zn_mod", "evil_zn_mod.Model", "evil_zn_mod:Model", "mlp"):
        bad = _edit_header(path, tmp_path / "k.zeronn", lambda h, k=kind: h.update(kind=k))
        _load_fails(bad, "unknown kind")
    for edit in (lambda h: h["network"]["layers"][0].update(type="evil_zn_mod"),
                 lambda h: h["network"]["layers"][0].update(type="evil_zn_mod:Layer"),
                 lambda h: h["network"].update(**{"class": "evil_zn_mod.Model"}),
                 lambda h: h["network"]["layers"][0]["config"].update(
                     activation="evil_zn_mod"),
                 lambda h: h["network"]["layers"][0]["config"].update(init="evil_zn_mod")):
        _load_fails(_edit_header(path, tmp_path / "e.zeronn", edit), "evil_zn_mod")
    assert not flag.exists() and "evil_zn_mod" not in sys.modules


@FORMATS
def test_missing_and_extra_arrays(tmp_path, fmt):
    path, names, _ = _source(tmp_path, fmt)
    members = _members(path)
    gone = dict(members)
    del gone[names["b2"]]
    _load_fails(_write_zip(tmp_path / "a.zeronn", gone), "missing", names["b2"])
    more = dict(members, **{"network/W9.npy": _npy(np.ones(2))})
    _load_fails(_write_zip(tmp_path / "b.zeronn", more), "network/W9.npy")
    # listed in the manifest and present, but nothing in the header uses it
    listed = _edit_header(_write_zip(tmp_path / "c.zeronn", more), tmp_path / "d.zeronn",
                          lambda h: h["arrays"].update(
                              {"network/W9.npy": {"dtype": "float64", "shape": [2]}}))
    _load_fails(listed, "network/W9.npy")


@FORMATS
def test_array_shape_contradicting_the_header(tmp_path, fmt):
    path, names, h = _source(tmp_path, fmt)
    W2 = names["W2"]
    members = _members(path)
    members[W2] = _npy(np.ones((h, 3)))  # the header says (h, 4)
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), W2)
    # the manifest agrees with the array, but the architecture does not
    fixed = _edit_header(tmp_path / "a.zeronn", tmp_path / "b.zeronn",
                         lambda hd: hd["arrays"][W2].update(shape=[h, 3]))
    _load_fails(fixed, W2, "architecture")

    # layer sizes changed: the stored weights no longer fit
    def wider(hd: dict) -> None:
        if fmt == "v1":
            hd["network"].update(layer_sizes=[3, h + 1, 4, 1])
        else:
            hd["network"]["layers"][0]["config"].update(units=h + 1)

    _load_fails(_edit_header(path, tmp_path / "c.zeronn", wider), names["W1"])


@FORMATS
def test_dtype_contradicting_the_header(tmp_path, fmt):
    path, names, h = _source(tmp_path, fmt)
    members = _members(path)
    members[names["b1"]] = _npy(np.ones((1, h), np.float32))
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), names["b1"])
    f32 = _edit_header(path, tmp_path / "b.zeronn", lambda hd: hd["network"].update(
        dtype="float32"))
    _load_fails(f32, "float32")


def test_future_and_invalid_versions(tmp_path):
    _, path, _ = _trained(tmp_path)
    future = _edit_header(path, tmp_path / "f.zeronn", lambda h: h.update(format_version=3))
    _load_fails(future, "format version 3", "newer", "upgrade")
    for v in (0, "2", 2.0, None):
        bad = _edit_header(path, tmp_path / "v.zeronn", lambda h, v=v: h.update(format_version=v))
        _load_fails(bad, "format_version")
    other = _edit_header(path, tmp_path / "o.zeronn", lambda h: h.update(format="keras"))
    _load_fails(other, "zeronn-model")
    # a format-2 network read as format 1 (or the reverse) is refused, not misread
    old = _edit_header(path, tmp_path / "1.zeronn", lambda h: h.update(format_version=1))
    _load_fails(old, "kind 'network'")
    v1 = tmp_path / "v1.zeronn"
    v1.write_bytes((V01 / "mlp_f64.zeronn").read_bytes())
    _load_fails(_edit_header(v1, tmp_path / "2.zeronn", lambda h: h.update(format_version=2)),
                "kind 'mlp'")


def _layer(i: int, **cfg: Any) -> Callable[[dict], None]:
    """An edit of layer ``i``'s config (0-based)."""
    return lambda h: h["network"]["layers"][i]["config"].update(cfg)


def _entry(i: int, **fields: Any) -> Callable[[dict], None]:
    return lambda h: h["network"]["layers"][i].update(fields)


_COMMON_EDITS = [
    (lambda h: h["network"].update(dtype="int64"), ["dtype"]),
    (lambda h: h["network"].update(seed=-1), ["network.seed"]),
    (lambda h: h["network"].update(rng={"bit_generator": "os.system"}), ["rng"]),
    (lambda h: h["network"]["rng"]["state"].update(state="x"), ["rng"]),
    (lambda h: h["network"]["optimizer"].update(name="lbfgs"), ["optimizer 'lbfgs'"]),
    (lambda h: h["network"]["optimizer"]["hyperparameters"].update(lr=-1), ["hyperparameters"]),
    (lambda h: h["network"]["optimizer"]["hyperparameters"].update(evil=1), ["hyperparameters"]),
    (lambda h: h["network"]["optimizer"].update(t=-3), ["optimizer.t"]),
    (lambda h: h["network"]["optimizer"].update(lr=float("nan")), ["optimizer.lr"]),
    (lambda h: h["network"]["optimizer"].update(name="sgd", hyperparameters={"lr": 0.1}),
     ["state"]),
    (lambda h: h["network"]["history"].update(best_epoch="x"), ["best_epoch"]),
    (lambda h: h["arrays"][next(iter(h["arrays"]))].update(shape=[3, -5]), ["shape"]),
    (lambda h: h["arrays"][next(iter(h["arrays"]))].update(dtype="<U5"), ["dtype"]),
    (lambda h: h.update(network=None), ["without a network"]),
    (lambda h: h.update(meta={"x": 1}), ["metadata"]),
    (lambda h: h.update(kind="sklearn"), ["unknown kind"]),
    (lambda h: h.pop("arrays"), ["arrays"]),
    (lambda h: h.clear(), ["zeronn-model"]),
]
_V1_EDITS = [
    (lambda h: h["network"].update(activations=["tanh", "quux"]), ["'quux'"]),
    (lambda h: h["network"].update(output_activation=7), ["output_activation"]),
    (lambda h: h["network"].update(activations=["tanh"]), ["one activation per hidden"]),
    (lambda h: h["network"].update(layer_sizes=[3, 0, 4, 1]), ["layer_sizes"]),
    (lambda h: h["network"].update(layer_sizes=[3, True, 4, 1]), ["layer_sizes"]),
    (lambda h: h["network"].update(init=None), ["network.init"]),
]
_V2_EDITS = [
    # the model class and the input
    (lambda h: h["network"].update(**{"class": "Network"}), ["network.class", "'Network'"]),
    (lambda h: h["network"].update(**{"class": "os.system"}), ["network.class"]),
    (lambda h: h["network"].update(**{"class": 3}), ["network.class"]),
    (lambda h: h["network"].pop("class"), ["network.class"]),
    (lambda h: h["network"].update(input_shape=[0]), ["input_shape"]),
    (lambda h: h["network"].update(input_shape=[3, True]), ["input_shape"]),
    (lambda h: h["network"].update(input_shape=[]), ["input_shape"]),
    (lambda h: h["network"].update(input_shape="3"), ["input_shape"]),
    (lambda h: h["network"].update(input_shape=[2**40]), ["input_shape", "per sample"]),
    (lambda h: h["network"].update(input_shape=[4]), ["network/1/W.npy"]),
    # (3, 1) is a sequence of 3 steps of 1 feature: Dense reads it, with other weights.
    (lambda h: h["network"].update(input_shape=[3, 1]), ["network/1/W.npy", "needs (1, 5)"]),
    (lambda h: h["network"].update(input_shape=[3, 1, 1]), ["layer 1", "Flatten"]),
    (lambda h: h["network"].update(init=5), ["network.init"]),
    # the layer list
    (lambda h: h["network"].update(layers=[]), ["network.layers"]),
    (lambda h: h["network"].update(layers="Dense"), ["network.layers"]),
    (lambda h: h["network"]["layers"].append(h["network"]["layers"][-1]), ["network/4/W.npy"]),
    (lambda h: h["network"]["layers"].pop(), ["no layer uses", "network/3/W.npy"]),
    (lambda h: h["network"]["layers"].pop(1), ["network/2/W.npy"]),
    (_entry(0, type="Conv9"), ["'Conv9'", "not a zeronn layer"]),
    (_entry(0, type="Layer"), ["'Layer'", "not a zeronn layer"]),
    (_entry(0, type=None), ["type"]),
    (_entry(1, config="units=4"), ["config"]),
    # layer arguments: each checked by the layer's constructor
    (_layer(0, units=-3), ["layer 1", "units"]),
    (_layer(0, units=0), ["layer 1", "units"]),
    (_layer(0, units="5"), ["layer 1", "units"]),
    (_layer(0, units=5.0), ["layer 1", "units"]),
    (_layer(0, units=True), ["layer 1", "units"]),
    (_layer(1, activation="quux"), ["'quux'", "register_activation"]),
    (_layer(1, activation=3), ["layer 2"]),
    (_layer(1, init="quux"), ["layer 2", "quux"]),
    (_layer(1, evil=1), ["layer 2", "evil"]),
    (lambda h: h["network"]["layers"][2]["config"].pop("units"), ["layer 3", "units"]),
    # the arrays each layer has
    (_entry(0, params=["W"]), ["layer 1", "parameters", "['W', 'b']"]),
    (_entry(0, params=["W", "b", "c"]), ["layer 1", "parameters"]),
    (_entry(0, params=None), ["params"]),
    (_entry(2, state=["running_mean"]), ["layer 3", "state", "none"]),
]


@pytest.mark.parametrize("fmt,edit,words", [
    *[("v2", e, w) for e, w in _COMMON_EDITS + _V2_EDITS],
    *[("v1", e, w) for e, w in _COMMON_EDITS + _V1_EDITS],
], ids=lambda x: x if isinstance(x, str) else "")
def test_inconsistent_headers(tmp_path, fmt, edit, words):
    path, _, _ = _source(tmp_path, fmt)
    _load_fails(_edit_header(path, tmp_path / "bad.zeronn", edit), *words)


def _stack() -> list[zn.Layer]:
    return [zn.Dense(6, activation="relu"), zn.BatchNorm(momentum=0.2), zn.Dropout(0.3),
            zn.LayerNorm(), zn.Dense(2, init="xavier_uniform", use_bias=False)]


@pytest.fixture()
def seq_file(tmp_path) -> Path:
    """A trained Sequential: Dense, BatchNorm (state), Dropout, LayerNorm, Dense without bias."""
    rng = np.random.default_rng(4)
    X, Y = _data(rng, n=24, d=3, k=2)
    net = zn.Sequential(_stack(), input_dim=3, seed=2)
    net.fit(X, Y, epochs=2, batch_size=6)
    path = tmp_path / "seq.zeronn"
    zn.save(net, path)
    return path


@pytest.mark.parametrize("edit,words", [
    (_layer(2, rate=2), ["layer 3", "rate"]),
    (_layer(2, rate=-0.1), ["layer 3", "rate"]),
    (_layer(2, rate="0.5"), ["layer 3", "rate"]),
    (_layer(1, eps=0), ["layer 2", "eps"]),
    (_layer(1, eps=-1e-5), ["layer 2", "eps"]),
    (_layer(1, momentum=2), ["layer 2", "momentum"]),
    (_layer(3, eps=0), ["layer 4", "eps"]),
    (_layer(3, eps=float("nan")), ["layer 4", "eps"]),
    (_layer(4, use_bias=True), ["layer 5", "parameters"]),
    (_entry(2, state=["running_mean"]), ["layer 3", "state", "running_mean"]),
    (_entry(1, state=[]), ["layer 2", "running_mean", "none"]),
    (_entry(1, state=["running_mean", "running_var"]), ["layer 2", "num_batches_tracked"]),
    (_entry(3, params=[]), ["layer 4", "gamma"]),
    (lambda h: h["network"].update(**{"class": "MLP"}), ["MLP", "layer 2", "Sequential"]),
    (lambda h: h["network"]["layers"].insert(2, h["network"]["layers"][1]),
     ["network/3/gamma.npy"]),
], ids=lambda x: "" if callable(x) else x[0])
def test_inconsistent_layer_stacks(tmp_path, seq_file, edit, words):
    _load_fails(_edit_header(seq_file, tmp_path / "bad.zeronn", edit), *words)


@pytest.mark.parametrize("member,value,words", [
    ("network/2/running_var.npy", np.ones(5), ["network/2/running_var.npy", "(6,)"]),
    ("network/2/running_var.npy", np.ones(6, np.float32), ["network/2/running_var.npy",
                                                          "float64"]),
    ("network/2/running_mean.npy", np.array([0, 1, 2, np.nan, 4, 5.0]), ["running_mean",
                                                                        "NaN"]),
    ("network/2/running_mean.npy", np.full(6, np.inf), ["running_mean", "NaN or inf"]),
    ("network/2/num_batches_tracked.npy", np.array(8.0), ["num_batches_tracked", "int64"]),
    ("network/2/num_batches_tracked.npy", np.array([8]), ["num_batches_tracked", "()"]),
    ("network/4/gamma.npy", np.array([1, 1, np.nan, 1, 1, 1.0]), ["network/4/gamma.npy",
                                                                 "NaN"]),
    ("network/5/W.npy", np.ones((6, 3)), ["network/5/W.npy", "(6, 2)"]),
])
def test_bad_parameter_and_state_arrays(tmp_path, seq_file, member, value, words):
    """Each bad array, with the manifest agreeing (so the layers are what refuse it)."""
    members = _members(seq_file)
    members[member] = _npy(value)
    raw = _write_zip(tmp_path / "a.zeronn", members)
    _load_fails(raw, member)  # the manifest contradicts the array
    agreed = _edit_header(raw, tmp_path / "b.zeronn", lambda h: h["arrays"][member].update(
        dtype=value.dtype.name, shape=list(value.shape)))
    _load_fails(agreed, *words)


@pytest.mark.parametrize("member,value", [
    ("network/2/running_var.npy", np.array([1, 1, -0.5, 1, 1, 1.0])),
    ("network/2/num_batches_tracked.npy", np.array(-3)),
])
def test_out_of_range_state_arrays(tmp_path, seq_file, member, value):
    """Right dtype and shape, impossible values: a negative variance would give NaN."""
    members = _members(seq_file)
    members[member] = _npy(value)
    name = member.split("/")[-1][:-len(".npy")]
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), name, "negative")


def test_state_arrays_for_a_layer_without_state(tmp_path, seq_file):
    members = _members(seq_file)
    members["network/3/running_mean.npy"] = _npy(np.zeros(6))
    raw = _write_zip(tmp_path / "a.zeronn", members)
    listed = _edit_header(raw, tmp_path / "b.zeronn", lambda h: h["arrays"].update(
        {"network/3/running_mean.npy": {"dtype": "float64", "shape": [6]}}))
    _load_fails(listed, "no layer uses", "network/3/running_mean.npy")
    claimed = _edit_header(listed, tmp_path / "c.zeronn", _entry(2, state=["running_mean"]))
    _load_fails(claimed, "layer 3", "Dropout", "state")


@FORMATS
def test_non_finite_weights(tmp_path, fmt):
    path, names, _ = _source(tmp_path, fmt)
    members = _members(path)
    W = np.load(io.BytesIO(members[names["W1"]]))
    W[1, 2] = np.nan
    members[names["W1"]] = _npy(W)
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), "NaN")


def test_header_that_is_not_json_or_too_deep(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    for text in (b"{not json", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b"[1, 2]"):
        _load_fails(_write_zip(tmp_path / "h.zeronn", {**members, "header.json": text}))


@FORMATS
def test_zip_bomb_is_refused_before_reading(tmp_path, monkeypatch, fmt):
    """A deflated member that would expand far beyond what the header needs."""
    path, names, _ = _source(tmp_path, fmt)
    members = _members(path)
    members[names["W1"]] = b"\0" * 50_000_000  # ~50 kB once deflated
    bomb = _write_zip(tmp_path / "bomb.zeronn", members, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 200_000
    reads: list[int] = []
    real_open = zipfile.ZipFile.open

    def spy(self: Any, name: Any, *a: Any, **k: Any) -> Any:
        reads.append(1)
        return real_open(self, name, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    _load_fails(bomb, names["W1"], "declares")
    assert len(reads) == 1  # the header only: the bomb itself was never opened


def test_deflated_files_load_but_not_inflated_ones(tmp_path):
    net, path, X = _trained(tmp_path)
    members = _members(path)
    packed = _write_zip(tmp_path / "deflated.zeronn", members, zipfile.ZIP_DEFLATED)
    assert np.array_equal(zn.load(packed).predict(X), net.predict(X))
    # A header that agrees with a huge, highly compressible array is still refused.
    wide = zn.MLP([20000, 5, 1], seed=0)
    wide.layers[0].W = np.zeros((20000, 5))
    zn.save(wide, tmp_path / "wide.zeronn")
    assert zn.load(tmp_path / "wide.zeronn").layer_sizes[0] == 20000  # stored: fine
    members = _members(tmp_path / "wide.zeronn")
    _load_fails(_write_zip(tmp_path / "c.zeronn", members, zipfile.ZIP_DEFLATED), "ratio")


def test_member_sizes_lying_about_the_file(tmp_path):
    """Central directory sizes edited to claim more data than the file has."""
    path = tmp_path / "m.zeronn"
    zn.save(zn.MLP([3, 5, 4, 1]), path)
    members = _members(path)
    members["network/1/W.npy"] = _npy(np.ones((3000, 5)))
    big = _edit_header(_write_zip(tmp_path / "a.zeronn", members), tmp_path / "b.zeronn",
                       lambda h: h["network"].update(input_shape=[3000]) or
                       h["arrays"]["network/1/W.npy"].update(shape=[3000, 5]))
    assert zn.load(big).layer_sizes[0] == 3000  # consistent so far
    data = bytearray(big.read_bytes())
    data = data[: len(data) // 2] + data[-2000:]  # the middle of the big array is gone
    bad = tmp_path / "c.zeronn"
    bad.write_bytes(bytes(data))
    _load_fails(bad)


@FORMATS
def test_duplicate_members(tmp_path, fmt):
    path, names, _ = _source(tmp_path, fmt)
    members = _members(path)
    bad = tmp_path / "dup.zeronn"
    with zipfile.ZipFile(bad, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr(names["W1"], members[names["W1"]])
    _load_fails(bad, "duplicate")


# -- mutation fuzzing: a working model or ValueError, nothing else -----------------------------
@pytest.fixture(scope="module", params=["mlp", "sequential"])
def valid_file(request, tmp_path_factory) -> tuple[bytes, np.ndarray, type, int]:
    """(a trained model's file, inputs, its class, its outputs): an MLP, or a Sequential
    whose layers have state, dropout and configs of every kind."""
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "mlp":
        _, path, X = _trained(folder, validation_split=0.25)
        return path.read_bytes(), X, zn.MLP, 1
    X, Y = _data(np.random.default_rng(3), n=24, d=3, k=2)
    net = zn.Sequential(_stack(), input_dim=3, seed=2)
    net.fit(X, Y, epochs=2, batch_size=6, validation_split=0.25)
    zn.save(net, folder / "seq.zeronn")
    return (folder / "seq.zeronn").read_bytes(), X, zn.Sequential, 2


def _load_or_value_error(path: Path, X: np.ndarray, cls: type, k: int) -> None:
    try:
        model = zn.load(path)
    except (ValueError, OSError) as exc:
        assert str(path) in str(exc)
        return
    assert type(model) is cls
    with np.errstate(all="ignore"):  # an edited statistic may make NaN: still a model
        assert model.predict(X).shape == (X.shape[0], k)


# Examples per file and test; raise it for a deeper search, e.g. ZERONN_FUZZ_EXAMPLES=5000.
_fuzz = settings(max_examples=examples(200, "ZERONN_FUZZ_EXAMPLES"), deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fuzz
@given(data=st.data())
def test_mutated_bytes_load_or_fail_cleanly(tmp_path, valid_file, data):
    raw, X, cls, k = valid_file
    buf = bytearray(raw)
    how = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
    pos = data.draw(st.integers(0, len(buf) - 1))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 8))):
            p = data.draw(st.integers(0, len(buf) - 1))
            buf[p] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        del buf[pos:]
    elif how == "insert":
        buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    else:
        del buf[pos:pos + data.draw(st.integers(1, 64))]
    path = tmp_path / "mutant.zeronn"
    path.write_bytes(bytes(buf))
    _load_or_value_error(path, X, cls, k)


@_fuzz
@given(data=st.data())
def test_mutated_members_with_valid_checksums(tmp_path, valid_file, data):
    """Mutations the zip's CRC cannot catch: edits inside members, re-zipped properly."""
    raw, X, cls, k = valid_file
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {n: bytearray(zf.read(n)) for n in zf.namelist()}
    name = data.draw(st.sampled_from(sorted(members)))
    buf = members[name]
    for _ in range(data.draw(st.integers(1, 4))):
        p = data.draw(st.integers(0, len(buf) - 1))
        buf[p] = data.draw(st.sampled_from([*b'0123456789"[]{},:-.eE ', 0, 255,
                                            data.draw(st.integers(0, 255))]))
    path = _write_zip(tmp_path / "mutant.zeronn", {n: bytes(b) for n, b in members.items()})
    _load_or_value_error(path, X, cls, k)


# -- estimators and CLI models through the protocol ---------------------------------------
def _tabular_frames():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    df = pd.DataFrame(X * [1, 10, 100] + [0, 5, -50], columns=["a", "b", "c"])
    df["y"] = X @ [1.0, -2.0, 0.5] + 3
    df["cls"] = np.where(X[:, 0] > 0.3, "high", np.where(X[:, 0] < -0.3, "low", "mid"))
    df["flag"] = X[:, 1] > 0
    return df


@pytest.mark.parametrize("target,features,layers", [
    ("y", ["a", "b", "c"], {}), ("cls", ["a", "b"], {}), ("flag", ["a", "b", "c"], {}),
    ("cls", ["a", "b", "c"], {"dropout": 0.2, "batch_norm": True}),
])
def test_tabular_model_round_trip(tmp_path, target, features, layers):
    tabular = pytest.importorskip("zeronn.tabular")
    df = _tabular_frames()
    model = tabular.TabularModel(hidden=(6,), epochs=5, validation_split=0.2, **layers)
    model.fit(df, target, features=features)
    zn.save(model, tmp_path / "t.zeronn")
    back = zn.load(tmp_path / "t.zeronn")
    assert isinstance(back, tabular.TabularModel)
    assert back.feature_names == features and back.classes == model.classes
    assert back.config() == model.config()
    pred, pred0 = back.predict(df), model.predict(df)
    assert pred.dtype == pred0.dtype and np.array_equal(pred, pred0)
    if model.classes:
        assert np.array_equal(back.predict_proba(df), model.predict_proba(df))
    assert dict(back.net.history) == dict(model.net.history)
    _assert_same_network(back.net, model.net)


def test_unfitted_tabular_model_round_trip(tmp_path):
    tabular = pytest.importorskip("zeronn.tabular")
    model = tabular.TabularModel(hidden=(3, 2), activation="tanh", epochs=7)
    zn.save(model, tmp_path / "t.zeronn")
    back = zn.load(tmp_path / "t.zeronn")
    assert back.net is None and back.config() == model.config()


def test_tabular_metadata_inconsistency_is_a_value_error(tmp_path):
    tabular = pytest.importorskip("zeronn.tabular")
    df = _tabular_frames()
    model = tabular.TabularModel(hidden=(4,), epochs=2)
    model.fit(df, "cls", features=["a", "b"])
    zn.save(model, tmp_path / "t.zeronn")
    bad = _edit_header(tmp_path / "t.zeronn", tmp_path / "b.zeronn",
                       lambda h: h["meta"].update(feature_names=["a"]))
    _load_fails(bad, "feature")
    worse = _edit_header(tmp_path / "t.zeronn", tmp_path / "c.zeronn",
                         lambda h: h["meta"].update(config={"hidden": [4], "bogus": 1}))
    _load_fails(worse)


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning: few iterations
@pytest.mark.parametrize("labels", ["strings", "ints3", "multilabel", None, "layers"])
def test_sklearn_estimators_round_trip(tmp_path, labels):
    sk = pytest.importorskip("zeronn.sklearn")
    rng = np.random.default_rng(2)
    X, Z = _data(rng, n=60, d=4, k=3)
    if labels == "layers":  # a Sequential with BatchNorm and Dropout inside
        est = sk.MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=15, dropout=0.2,
                              batch_norm=True, random_state=0)
        y: Any = Z[:, :2]
    elif labels is None:
        est = sk.MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=15, early_stopping=True,
                              random_state=0)
        y = Z[:, :2]
    else:
        est = sk.MLPClassifier(hidden_layer_sizes=(6,), max_iter=15, random_state=0)
        y = {"strings": np.where(Z[:, 0] > 0, "pos", "neg"),
             "ints3": np.digitize(Z[:, 0], [-0.3, 0.3]) + 4,
             "multilabel": (Z > 0).astype(int)}[labels]
    est.fit(X, y)
    zn.save(est, tmp_path / "e.zeronn")
    back = zn.load(tmp_path / "e.zeronn")
    assert type(back) is type(est)
    assert back.get_params() == est.get_params()
    pred, pred0 = back.predict(X), est.predict(X)
    assert pred.dtype == pred0.dtype and np.array_equal(pred, pred0)
    if labels not in (None, "layers"):
        assert np.array_equal(back.classes_, est.classes_)
        assert np.array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.loss_curve_ == est.loss_curve_ and back.n_iter_ == est.n_iter_
    _assert_same_network(back.net_, est.net_)
    unfitted = type(est)(hidden_layer_sizes=(3,), alpha=0.5)
    zn.save(unfitted, tmp_path / "u.zeronn")
    assert zn.load(tmp_path / "u.zeronn").get_params() == unfitted.get_params()


def test_sklearn_metadata_inconsistency_is_a_value_error(tmp_path):
    sk = pytest.importorskip("zeronn.sklearn")
    rng = np.random.default_rng(2)
    X, Z = _data(rng, n=30, d=4, k=1)
    est = sk.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    with pytest.warns(UserWarning):
        est.fit(X, Z[:, 0] > 0)
    zn.save(est, tmp_path / "e.zeronn")
    for edit in (lambda h: h["meta"].update(n_outputs=2),
                 lambda h: h["meta"].update(y_type="continuous"),
                 lambda h: h["meta"]["params"].update(hidden_layer_sizes=[5]),
                 lambda h: h["meta"].pop("n_iter")):
        _load_fails(_edit_header(tmp_path / "e.zeronn", tmp_path / "b.zeronn", edit))


# -- files written by zeronn 0.1 (tests/data/v0_1, made by make_files.py there) ----------
# The stored predictions were computed on another machine: the last bits of a float there
# depend on the CPU (OpenBLAS's kernel, NumPy's SIMD exp/tanh), so they are compared to
# a few epsilons of the largest stored value, never bit for bit.


def assert_matches_stored(actual: np.ndarray, stored: np.ndarray, ulps: float) -> None:
    """``actual`` equals ``stored`` to ``ulps`` epsilons (of stored's dtype) of its largest
    entry: normwise, as rounding moves every entry by a little of the array's scale."""
    assert actual.dtype == stored.dtype and actual.shape == stored.shape
    eps = float(np.finfo(stored.dtype).eps)
    np.testing.assert_allclose(actual, stored, rtol=0,
                               atol=ulps * eps * float(np.max(np.abs(stored))))


# mlp_softmax_f32 has sigmoid hidden units, whose formula changed after 0.1 (now
# 1 / (1 + exp(-z)), 3 ulps from exact where exp(-logaddexp(0, -z)) was 9-32): its float32
# predictions move by up to 4 ulps, well inside the 16 eps of the comparison below.
@pytest.mark.stored_numbers
@pytest.mark.parametrize("name, pred", [
    ("mlp_f64", "mlp_f64_pred"),
    ("mlp_softmax_f32", "mlp_softmax_f32_pred"),
])
def test_v01_network_files_load_and_predict_the_same_up_to_rounding(name: str,
                                                                     pred: str) -> None:
    net = zn.load(V01 / f"{name}.zeronn")
    X = np.load(V01 / "X.npy")
    expected = np.load(V01 / f"{pred}.npy")
    out = net.predict(X.astype(net.dtype))
    # Three small layers (relu/tanh, sigmoid/softmax): 1.5 eps seen across kernels; 16 eps.
    assert_matches_stored(out, expected, ulps=16)
    assert net.history is not None and net.history.epochs > 0
    assert net.optimizer is not None


@pytest.mark.stored_numbers
def test_v01_estimator_files_load_and_predict_the_same_up_to_rounding() -> None:
    pytest.importorskip("zeronn.sklearn")  # registers the kinds (entry points aside)
    X = np.load(V01 / "X.npy")
    reg = zn.load(V01 / "sklearn_regressor.zeronn")
    # One hidden layer each: 1.2 eps (regressor), 0.6 eps (probabilities) seen; 16 eps.
    assert_matches_stored(reg.predict(X), np.load(V01 / "sklearn_regressor_pred.npy"), ulps=16)
    clf = zn.load(V01 / "sklearn_classifier.zeronn")
    assert_matches_stored(clf.predict_proba(X), np.load(V01 / "sklearn_classifier_proba.npy"),
                          ulps=16)


@pytest.mark.stored_numbers
def test_v01_tabular_files_load_and_predict_the_same_up_to_rounding() -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("zeronn.tabular")
    df = pd.read_csv(V01 / "table.csv")[["x1", "x2", "x3"]]
    reg = zn.load(V01 / "tabular_regression.zeronn")
    # Scaling, one hidden layer, unscaling: 0.5 eps seen across kernels; 16 eps.
    assert_matches_stored(np.asarray(reg.predict(df), dtype=float),
                          np.load(V01 / "tabular_regression_pred.npy"), ulps=16)
    clf = zn.load(V01 / "tabular_classification.zeronn")
    # Labels, not floats: every probability is at least 0.0028 from the 0.5 threshold,
    # far beyond rounding, so the labels must be the same ones.
    np.testing.assert_array_equal(np.asarray(clf.predict(df)).astype(str),  # exact: labels
                                  np.load(V01 / "tabular_classification_pred.npy"))


# -- convnets: Conv2D, MaxPool2D, AvgPool2D, Flatten ---------------------------------------
def _convnet(dtype: str = "float64") -> zn.Sequential:
    return zn.Sequential([
        zn.Conv2D(3, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
        zn.Conv2D(4, (2, 3), stride=(1, 2), init="glorot_uniform", use_bias=False),
        zn.BatchNorm(), zn.AvgPool2D(2, stride=1, padding=1), zn.Flatten(),
        zn.Dense(2)], input_shape=(2, 6, 7), dtype=dtype, seed=3)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convnet_round_trips_and_resumes(tmp_path, dtype):
    """Every new layer's config and W (filters, C, KH, KW), b (filters,) come back bit for bit,
    and training on from the file continues exactly as the original."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((12, 2, 6, 7)).astype(dtype)
    Y = rng.standard_normal((12, 2)).astype(dtype)
    net = _convnet(dtype)
    net.fit(X, Y, optimizer="adam", epochs=2, batch_size=4)
    zn.save(net, tmp_path / "c.zeronn")
    back = zn.load(tmp_path / "c.zeronn")
    _assert_same_network(back, net)
    assert back.params[0].shape == (3, 2, 3, 3) and back.params[1].shape == (3,)
    assert back.layers[2].kernel_size == (2, 3) and back.layers[2].stride == (1, 2)
    assert np.array_equal(back.predict(X), net.predict(X))
    net.fit(X, Y, epochs=1, batch_size=4)
    back.fit(X, Y, epochs=1, batch_size=4)
    _assert_same_network(back, net)


@pytest.fixture()
def conv_file(tmp_path) -> Path:
    net = _convnet()
    path = tmp_path / "conv.zeronn"
    zn.save(net, path)
    return path


@pytest.mark.parametrize("edit,words", [
    (_layer(0, kernel_size=-3), ["layer 1", "kernel_size", "-3"]),
    (_layer(0, kernel_size=0), ["layer 1", "kernel_size"]),
    (_layer(0, kernel_size=[3, 3, 3]), ["layer 1", "kernel_size"]),
    (_layer(0, kernel_size=True), ["layer 1", "kernel_size"]),
    (_layer(0, stride=0), ["layer 1", "stride"]),
    (_layer(0, padding=-1), ["layer 1", "padding"]),
    (_layer(0, filters=0), ["layer 1", "filters"]),
    (_layer(0, filters="3"), ["layer 1", "filters"]),
    (_layer(0, kernel_size=9), ["layer 1", "larger than the padded input"]),
    (_layer(0, padding=100_000, kernel_size=1), ["layer 1", "values per sample"]),
    (_layer(0, activation="no_such"), ["no_such"]),
    (_layer(0, groups=2), ["layer 1", "groups"]),
    (_layer(1, pool_size=0), ["layer 2", "pool_size"]),
    (_layer(1, pool_size=2, padding=2), ["layer 2", "padding", "half"]),
    (_layer(1, stride=[1]), ["layer 2", "stride"]),
    (_layer(1, pool_size=50), ["layer 2", "larger than the padded input"]),
    (_layer(4, padding=-1), ["layer 5", "padding"]),
    (_layer(5, start_dim=2), ["layer 6", "start_dim"]),
    (_layer(2, use_bias=True), ["layer 3", "parameters", "'b'"]),
    (_entry(0, params=["W"]), ["layer 1", "parameters"]),
    (_layer(0, filters=5), ["network/1/W.npy"]),
], ids=lambda x: "" if callable(x) else x[0])
def test_hostile_convnet_files(tmp_path, conv_file, edit, words):
    _load_fails(_edit_header(conv_file, tmp_path / "bad.zeronn", edit), *words)


@pytest.mark.parametrize("member,value,words", [
    ("network/1/W.npy", np.ones((3, 2, 3, 2)), ["network/1/W.npy", "(3, 2, 3, 3)"]),
    ("network/1/W.npy", np.ones((3, 18)), ["network/1/W.npy", "(3, 2, 3, 3)"]),
    ("network/1/b.npy", np.ones((1, 3)), ["network/1/b.npy", "(3,)"]),
    ("network/1/b.npy", np.array([0.0, np.nan, 1.0]), ["network/1/b.npy", "NaN"]),
    ("network/3/W.npy", np.ones((4, 3, 2, 3), np.float32), ["network/3/W.npy", "float64"]),
])
def test_bad_convnet_arrays(tmp_path, conv_file, member, value, words):
    members = _members(conv_file)
    members[member] = _npy(value)
    agreed = _edit_header(_write_zip(tmp_path / "a.zeronn", members), tmp_path / "b.zeronn",
                          lambda h: h["arrays"][member].update(dtype=value.dtype.name,
                                                                shape=list(value.shape)))
    _load_fails(agreed, *words)


# -- sequence, attention and composite layers: their fields in hostile files -------------
@pytest.fixture()
def gpt_file(tmp_path) -> Path:
    """A trained little GPT: Embedding, PositionalEmbedding, Residual blocks (LayerNorm,
    MultiHeadAttention; LayerNorm, Dense, Dense), LayerNorm, TiedDense."""
    net = zn.gpt(9, 6, n_layer=1, n_head=2, n_embd=4, bias=True, dtype="float64", seed=0)
    ids = np.random.default_rng(0).integers(0, 9, (8, 6))
    net.fit(ids, np.roll(ids, -1, axis=1), loss="categorical_crossentropy", epochs=1,
            batch_size=4)
    path = tmp_path / "gpt.zeronn"
    zn.save(net, path)
    return path


@pytest.fixture()
def lstm_file(tmp_path) -> Path:
    """A trained char model: Embedding, LSTM (stateful), GRU, Dense."""
    net = zn.Sequential([zn.Embedding(7, 3), zn.LSTM(4, return_sequences=True, stateful=True),
                         zn.GRU(5, return_sequences=True), zn.Dense(7, activation="softmax")],
                        input_shape=(5,), seed=0)
    ids = np.random.default_rng(1).integers(0, 7, (6, 5))
    net.fit(ids, ids, loss="categorical_crossentropy", epochs=1, batch_size=3, shuffle=False)
    path = tmp_path / "lstm.zeronn"
    zn.save(net, path)
    return path


def _sub(i: int, j: int, **cfg: Any) -> Callable[[dict], None]:
    """An edit of sublayer ``j`` of composite layer ``i``'s config (0-based)."""
    return lambda h: h["network"]["layers"][i]["config"]["layers"][j]["config"].update(cfg)


def _nest(depth: int) -> Callable[[dict], None]:
    def edit(h: dict) -> None:
        entry = h["network"]["layers"][2]
        for _ in range(depth):
            entry = {"type": "Composite", "config": {"layers": [entry]}}
        h["network"]["layers"][2] = entry
    return edit


def test_sequence_and_gpt_files_round_trip(tmp_path, gpt_file, lstm_file):
    ids = np.random.default_rng(2).integers(0, 7, (3, 5))
    for path, x in ((gpt_file, ids[:, :5] % 9), (lstm_file, ids)):
        net = zn.load(path)
        assert zn.load(path).predict(x).shape == net.predict(x).shape
        np.testing.assert_array_equal(zn.load(path).predict(x), net.predict(x))


@pytest.mark.parametrize("edit,words", [
    (_layer(0, vocab_size=0), ["layer 1", "vocab_size"]),
    (_layer(0, vocab_size=8), ["network/1/W.npy", "(8, 4)"]),
    (_layer(0, dim="4"), ["layer 1", "dim"]),
    (_layer(1, max_len=3), ["layer 2", "PositionalEmbedding(6)"]),
    (_sub(2, 1, num_heads=3), ["layer 3", "num_heads"]),
    (_sub(2, 1, dropout=1.5), ["layer 3", "dropout"]),
    (_sub(2, 1, causal="yes"), ["layer 3"]),
    (_sub(2, 1, evil=1), ["layer 3", "evil"]),
    (_sub(3, 1, activation="quux"), ["'quux'", "register_activation"]),
    (lambda h: h["network"]["layers"][2]["config"].update(layers=[]), ["layer 3", "1 to"]),
    (lambda h: h["network"]["layers"][2]["config"].update(layers="LayerNorm"), ["layer 3"]),
    (lambda h: h["network"]["layers"][2]["config"]["layers"][0].update(type="os.system"),
     ["layer 3", "'os.system'"]),
    (lambda h: h["network"]["layers"][2]["config"]["layers"].append(
        {"type": "Dense", "config": {"units": 5}}), ["layer 3", "parameters"]),
    (_nest(9), ["layer 3", "nested at most 8 deep"]),
    (lambda h: h["network"]["layers"][-1].update(type="Dense"), ["layer 6", "parameters"]),
    (_layer(5, units=8), ["TiedDense(8)", "units=9"]),
    (lambda h: h["network"]["layers"].pop(0), ["layer"]),
], ids=lambda x: "" if callable(x) else x[0])
def test_hostile_gpt_files(tmp_path, gpt_file, edit, words):
    _load_fails(_edit_header(gpt_file, tmp_path / "bad.zeronn", edit), *words)


@pytest.mark.parametrize("edit,words", [
    (_layer(1, units=-4), ["layer 2", "units"]),
    (_layer(1, return_sequences="yes"), ["layer 2", "return_sequences"]),
    (_layer(1, stateful=1), ["layer 2", "stateful"]),
    (_layer(1, use_bias=False), ["layer 2", "parameters"]),
    (_layer(2, units=6), ["network/3/weight_ih.npy", "(18, 4)"]),
    (_entry(1, type="GRU"), ["network/2/weight_ih.npy"]),
    (lambda h: h["network"].update(input_shape=[5, 1]), ["layer 1"]),
], ids=lambda x: "" if callable(x) else x[0])
def test_hostile_sequence_files(tmp_path, lstm_file, edit, words):
    _load_fails(_edit_header(lstm_file, tmp_path / "bad.zeronn", edit), *words)


def test_bad_recurrent_and_attention_arrays(tmp_path, gpt_file, lstm_file):
    members = _members(lstm_file)
    members["network/2/weight_hh.npy"] = _npy(np.full((16, 4), np.nan))
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), "network/2/weight_hh.npy", "NaN")
    members = _members(gpt_file)
    members["network/3/1.W_qkv.npy"] = _npy(np.ones((4, 4)))
    _load_fails(_write_zip(tmp_path / "b.zeronn", members), "network/3/1.W_qkv.npy")
