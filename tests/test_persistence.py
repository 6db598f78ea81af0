"""Model files: exact round trips and resumes, atomic writes, and hostile or broken files."""

from __future__ import annotations

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
    assert header["format"] == "zeronn-model" and header["format_version"] == 1
    assert header["zeronn_version"] == zn.__version__
    assert header["network"]["layer_sizes"] == [3, 5, 4, 1]
    assert header["network"]["activations"] == ["tanh", "relu"]
    assert header["network"]["optimizer"]["name"] == "adam"
    W1 = np.load(io.BytesIO(members["network/W1.npy"]), allow_pickle=False)
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


def test_registered_activation_round_trips_and_unknown_one_fails(tmp_path, monkeypatch):
    act = zn.register_activation("cube_test", lambda z: z ** 3, lambda z: 3 * z ** 2)
    monkeypatch.setitem(zn.ACTIVATIONS, "cube_test", act)  # removed again after the test
    net = zn.MLP([2, 3, 1], activation="cube_test", seed=0)
    path = tmp_path / "m.zeronn"
    zn.save(net, path)
    X = np.ones((2, 2))
    assert np.array_equal(zn.load(path).predict(X), net.predict(X))
    monkeypatch.delitem(zn.ACTIVATIONS, "cube_test")
    _load_fails(path, "'cube_test'", "register_activation")


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
        _zeronn_kind = "mlp"

        def _zeronn_state(self):
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


def test_pickled_object_array_is_refused_without_running_it(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    evil = np.empty((3, 5), dtype=object)
    evil[...] = _Payload()
    members["network/W1.npy"] = _npy(evil, allow_pickle=True)
    bad = _write_zip(tmp_path / "evil.zeronn", members)
    # even a header claiming the object dtype is refused
    also = _edit_header(bad, tmp_path / "evil2.zeronn",
                        lambda h: h["arrays"]["network/W1.npy"].update(dtype="object"))
    _load_fails(bad, "network/W1.npy")
    _load_fails(also, "object")
    assert _CALLS == []


def test_module_named_by_the_file_is_never_imported(tmp_path, monkeypatch):
    flag = tmp_path / "imported"
    (tmp_path / "evil_zn_mod.py").write_text(f"open({str(flag)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _, path, _ = _trained(tmp_path)
    for kind in ("evil_zn_mod", "evil_zn_mod.Model", "evil_zn_mod:Model"):
        bad = _edit_header(path, tmp_path / "k.zeronn", lambda h, k=kind: h.update(kind=k))
        _load_fails(bad, "unknown kind")
    assert not flag.exists() and "evil_zn_mod" not in sys.modules


def test_missing_and_extra_arrays(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    gone = dict(members)
    del gone["network/b2.npy"]
    _load_fails(_write_zip(tmp_path / "a.zeronn", gone), "missing", "network/b2.npy")
    more = dict(members, **{"network/W9.npy": _npy(np.ones(2))})
    _load_fails(_write_zip(tmp_path / "b.zeronn", more), "network/W9.npy")
    # listed in the manifest and present, but nothing in the header uses it
    listed = _edit_header(_write_zip(tmp_path / "c.zeronn", more), tmp_path / "d.zeronn",
                          lambda h: h["arrays"].update(
                              {"network/W9.npy": {"dtype": "float64", "shape": [2]}}))
    _load_fails(listed, "network/W9.npy")


def test_array_shape_contradicting_the_header(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    members["network/W2.npy"] = _npy(np.ones((5, 3)))  # the header says (5, 4)
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), "network/W2.npy")
    # the manifest agrees with the array, but the architecture does not
    fixed = _edit_header(tmp_path / "a.zeronn", tmp_path / "b.zeronn", lambda h: h["arrays"][
        "network/W2.npy"].update(shape=[5, 3]))
    _load_fails(fixed, "network/W2.npy", "architecture")
    # layer sizes changed: the stored weights no longer fit
    wider = _edit_header(path, tmp_path / "c.zeronn",
                         lambda h: h["network"].update(layer_sizes=[3, 6, 4, 1]))
    _load_fails(wider, "network/W1.npy")


def test_dtype_contradicting_the_header(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    members["network/b1.npy"] = _npy(np.ones((1, 5), np.float32))
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), "network/b1.npy")
    f32 = _edit_header(path, tmp_path / "b.zeronn", lambda h: h["network"].update(
        dtype="float32"))
    _load_fails(f32, "float32")


def test_future_and_invalid_versions(tmp_path):
    _, path, _ = _trained(tmp_path)
    future = _edit_header(path, tmp_path / "f.zeronn", lambda h: h.update(format_version=2))
    _load_fails(future, "format version 2", "newer", "upgrade")
    for v in (0, "1", 1.0, None):
        bad = _edit_header(path, tmp_path / "v.zeronn", lambda h, v=v: h.update(format_version=v))
        _load_fails(bad, "format_version")
    other = _edit_header(path, tmp_path / "o.zeronn", lambda h: h.update(format="keras"))
    _load_fails(other, "zeronn-model")


@pytest.mark.parametrize("edit,words", [
    (lambda h: h["network"].update(activations=["tanh", "quux"]), ["'quux'"]),
    (lambda h: h["network"].update(output_activation=7), ["output_activation"]),
    (lambda h: h["network"].update(activations=["tanh"]), ["one activation per hidden"]),
    (lambda h: h["network"].update(layer_sizes=[3, 0, 4, 1]), ["layer_sizes"]),
    (lambda h: h["network"].update(layer_sizes=[3, True, 4, 1]), ["layer_sizes"]),
    (lambda h: h["network"].update(dtype="int64"), ["dtype"]),
    (lambda h: h["network"].update(seed=-1), ["network.seed"]),
    (lambda h: h["network"].update(init=None), ["network.init"]),
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
    (lambda h: h["arrays"]["network/W1.npy"].update(shape=[3, -5]), ["shape"]),
    (lambda h: h["arrays"]["network/W1.npy"].update(dtype="<U5"), ["dtype"]),
    (lambda h: h.update(network=None), ["without a network"]),
    (lambda h: h.update(meta={"x": 1}), ["metadata"]),
    (lambda h: h.update(kind="sklearn"), ["unknown kind"]),
    (lambda h: h.pop("arrays"), ["arrays"]),
    (lambda h: h.clear(), ["zeronn-model"]),
], ids=lambda x: "" if callable(x) else x[0])
def test_inconsistent_headers(tmp_path, edit, words):
    _, path, _ = _trained(tmp_path)
    _load_fails(_edit_header(path, tmp_path / "bad.zeronn", edit), *words)


def test_header_that_is_not_json_or_too_deep(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    for text in (b"{not json", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe", b"[1, 2]"):
        _load_fails(_write_zip(tmp_path / "h.zeronn", {**members, "header.json": text}))


def test_non_finite_weights(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    W = np.load(io.BytesIO(members["network/W1.npy"]))
    W[1, 2] = np.nan
    members["network/W1.npy"] = _npy(W)
    _load_fails(_write_zip(tmp_path / "a.zeronn", members), "NaN")


def test_zip_bomb_is_refused_before_reading(tmp_path, monkeypatch):
    """A deflated member that would expand far beyond what the header needs."""
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    members["network/W1.npy"] = b"\0" * 50_000_000  # ~50 kB once deflated
    bomb = _write_zip(tmp_path / "bomb.zeronn", members, zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 200_000
    reads: list[int] = []
    real_open = zipfile.ZipFile.open

    def spy(self: Any, name: Any, *a: Any, **k: Any) -> Any:
        reads.append(1)
        return real_open(self, name, *a, **k)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    _load_fails(bomb, "network/W1.npy", "declares")
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
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    members["network/W1.npy"] = _npy(np.ones((3000, 5)))
    big = _edit_header(_write_zip(tmp_path / "a.zeronn", members), tmp_path / "b.zeronn",
                       lambda h: h["network"].update(layer_sizes=[3000, 5, 4, 1]) or
                       h["arrays"]["network/W1.npy"].update(shape=[3000, 5]))
    data = bytearray(big.read_bytes())
    data = data[: len(data) // 2] + data[-2000:]  # the middle of the big array is gone
    bad = tmp_path / "c.zeronn"
    bad.write_bytes(bytes(data))
    _load_fails(bad)


def test_duplicate_members(tmp_path):
    _, path, _ = _trained(tmp_path)
    members = _members(path)
    bad = tmp_path / "dup.zeronn"
    with zipfile.ZipFile(bad, "w") as zf, pytest.warns(UserWarning, match="Duplicate"):
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("network/W1.npy", members["network/W1.npy"])
    _load_fails(bad, "duplicate")


# -- mutation fuzzing: a working model or ValueError, nothing else -----------------------------
@pytest.fixture(scope="module")
def valid_file(tmp_path_factory) -> tuple[bytes, np.ndarray]:
    _, path, X = _trained(tmp_path_factory.mktemp("fuzz"), validation_split=0.25)
    return path.read_bytes(), X


def _load_or_value_error(path: Path, X: np.ndarray) -> None:
    try:
        model = zn.load(path)
    except (ValueError, OSError) as exc:
        assert str(path) in str(exc)
        return
    assert isinstance(model, zn.MLP)
    assert model.predict(X).shape == (X.shape[0], 1)


_fuzz = settings(max_examples=400, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@_fuzz
@given(data=st.data())
def test_mutated_bytes_load_or_fail_cleanly(tmp_path, valid_file, data):
    raw, X = valid_file
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
    _load_or_value_error(path, X)


@_fuzz
@given(data=st.data())
def test_mutated_members_with_valid_checksums(tmp_path, valid_file, data):
    """Mutations the zip's CRC cannot catch: edits inside members, re-zipped properly."""
    raw, X = valid_file
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        members = {n: bytearray(zf.read(n)) for n in zf.namelist()}
    name = data.draw(st.sampled_from(sorted(members)))
    buf = members[name]
    for _ in range(data.draw(st.integers(1, 4))):
        p = data.draw(st.integers(0, len(buf) - 1))
        buf[p] = data.draw(st.sampled_from([*b'0123456789"[]{},:-.eE ', 0, 255,
                                            data.draw(st.integers(0, 255))]))
    path = _write_zip(tmp_path / "mutant.zeronn", {n: bytes(b) for n, b in members.items()})
    _load_or_value_error(path, X)


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


@pytest.mark.parametrize("target,features", [("y", ["a", "b", "c"]), ("cls", ["a", "b"]),
                                             ("flag", ["a", "b", "c"])])
def test_tabular_model_round_trip(tmp_path, target, features):
    tabular = pytest.importorskip("zeronn.tabular")
    df = _tabular_frames()
    model = tabular.TabularModel(hidden=(6,), epochs=5, validation_split=0.2)
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
@pytest.mark.parametrize("labels", ["strings", "ints3", "multilabel", None])
def test_sklearn_estimators_round_trip(tmp_path, labels):
    sk = pytest.importorskip("zeronn.sklearn")
    rng = np.random.default_rng(2)
    X, Z = _data(rng, n=60, d=4, k=3)
    if labels is None:
        est = sk.MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=15, early_stopping=True,
                              random_state=0)
        y: Any = Z[:, :2]
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
    if labels is not None:
        assert np.array_equal(back.classes_, est.classes_)
        assert np.array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.loss_curve_ == est.loss_curve_ and back.n_iter_ == est.n_iter_
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
V01 = Path(__file__).parent / "data" / "v0_1"


@pytest.mark.parametrize("name, pred", [
    ("mlp_f64", "mlp_f64_pred"),
    ("mlp_softmax_f32", "mlp_softmax_f32_pred"),
])
def test_v01_network_files_load_and_predict_identically(name: str, pred: str) -> None:
    net = zn.load(V01 / f"{name}.zeronn")
    X = np.load(V01 / "X.npy")
    expected = np.load(V01 / f"{pred}.npy")
    out = net.predict(X.astype(net.dtype))
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    assert net.history is not None and net.history.epochs > 0
    assert net.optimizer is not None


def test_v01_estimator_files_load_and_predict_identically() -> None:
    X = np.load(V01 / "X.npy")
    reg = zn.load(V01 / "sklearn_regressor.zeronn")
    np.testing.assert_array_equal(reg.predict(X), np.load(V01 / "sklearn_regressor_pred.npy"))
    clf = zn.load(V01 / "sklearn_classifier.zeronn")
    np.testing.assert_array_equal(clf.predict_proba(X),
                                  np.load(V01 / "sklearn_classifier_proba.npy"))


def test_v01_tabular_files_load_and_predict_identically() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.read_csv(V01 / "table.csv")[["x1", "x2", "x3"]]
    reg = zn.load(V01 / "tabular_regression.zeronn")
    np.testing.assert_array_equal(np.asarray(reg.predict(df), dtype=float),
                                  np.load(V01 / "tabular_regression_pred.npy"))
    clf = zn.load(V01 / "tabular_classification.zeronn")
    np.testing.assert_array_equal(np.asarray(clf.predict(df)).astype(str),
                                  np.load(V01 / "tabular_classification_pred.npy"))
