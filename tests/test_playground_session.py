"""One learner's playground state (zeronn.playground.session), driven without a server."""

from __future__ import annotations

import contextlib
import io
import json
import threading

import numpy as np
import pytest

import zeronn as zn
from zeronn.playground import data
from zeronn.playground.session import (
    DEFAULT_CONFIG,
    DIVERGED,
    GRID_SIZE,
    NEURON_SIZE,
    Session,
    describe,
    validate_config,
)

SMALL = {"n_points": 200}
DEEP = [{"units": 3, "activation": "relu"}, {"units": 2, "activation": "tanh"},
        {"units": 2, "activation": "sigmoid"}]


def as_json(snap: dict) -> dict:
    """What the page receives: strict JSON (NaN or infinity would raise here)."""
    return json.loads(json.dumps(snap, allow_nan=False))


def test_the_default_snapshot_follows_the_protocol():
    s = Session(SMALL)
    snap = as_json(s.snapshot(points=True))
    assert snap["type"] == "snapshot" and snap["session"] == s.id and snap["epoch"] == 0
    assert snap["task"] == "classification" and snap["classes"] == 2
    assert snap["playing"] is False
    assert snap["features"] == ["x1", "x2"]
    assert [(layer["units"], layer["activation"]) for layer in snap["layers"]] == [
        (4, "tanh"), (2, "tanh"), (1, "sigmoid")]
    assert [np.shape(w) for w in snap["weights"]] == [(2, 4), (4, 2), (2, 1)]
    assert [len(b) for b in snap["biases"]] == [4, 2, 1]
    grid = snap["grid"]
    assert grid["size"] == GRID_SIZE and grid["extent"] == [-6, 6, -6, 6]
    assert len(grid["output"]) == GRID_SIZE**2 and "confidence" not in grid
    assert all(0 <= p <= 1 for p in grid["output"])
    # neurons: the 2 inputs, the hidden layers' 4 and 2 units, the output's 1.
    assert [len(layer) for layer in snap["neurons"]] == [2, 4, 2, 1]
    assert all(len(m) == NEURON_SIZE**2 for layer in snap["neurons"] for m in layer)
    assert snap["history"] == {"train_loss": [pytest.approx(snap["train_loss"], abs=1e-6)],
                               "test_loss": [pytest.approx(snap["test_loss"], abs=1e-6)]}
    assert 0 <= snap["test_accuracy"] <= 1
    assert len(snap["diagnostics"]["grad_norm"]) == 3
    assert snap["diagnostics"]["dead_relu"] == [None, None]
    assert len(snap["points"]["train"]) == 100 and len(snap["points"]["test"]) == 100
    assert all(len(p) == 3 for p in snap["points"]["train"])
    assert "points" not in s.snapshot()


def test_the_maps_are_what_the_network_computes():
    s = Session({**SMALL, "features": ["x1", "x2", "x1x2"]})
    s.step()
    snap = s.snapshot()
    pts = data.grid_points(GRID_SIZE)
    expected = s.net.predict(data.make_features(pts, ["x1", "x2", "x1x2"]))[:, 0]
    np.testing.assert_allclose(snap["grid"]["output"], expected, atol=1e-3)
    npts = data.grid_points(NEURON_SIZE)
    np.testing.assert_allclose(snap["neurons"][0][2], npts[:, 0] * npts[:, 1], atol=5e-3)
    first = np.tanh(data.make_features(npts, ["x1", "x2", "x1x2"]) @ s.net.layers[0].W
                    + s.net.layers[0].b)
    np.testing.assert_allclose(snap["neurons"][1], first.T, atol=5e-3)


def test_multiclass_sends_class_indices_and_confidence():
    s = Session({**SMALL, "dataset": "multiclass", "classes": 4})
    snap = as_json(s.step())
    assert snap["classes"] == 4 and snap["task"] == "classification"
    assert set(snap["grid"]["output"]) <= {0, 1, 2, 3}
    assert all(0.25 - 1e-3 <= c <= 1 for c in snap["grid"]["confidence"])
    assert snap["layers"][-1] == {"units": 4, "activation": "softmax"}
    assert len(snap["neurons"][-1]) == 4


def test_regression_has_no_accuracy_and_an_identity_output():
    s = Session({**SMALL, "dataset": "surface", "layers": DEEP})
    snap = as_json(s.step())
    assert snap["task"] == "regression" and snap["classes"] == 1
    assert snap["test_accuracy"] is None
    assert snap["layers"][-1] == {"units": 1, "activation": "identity"}
    dead = snap["diagnostics"]["dead_relu"]
    assert 0 <= dead[0] <= 1 and dead[1:] == [None, None]


def test_training_lowers_the_loss_and_the_circle_is_learned():
    s = Session({"dataset": "circle", "features": ["x1", "x2", "x1sq", "x2sq"],
                 "learning_rate": 0.1})
    for _ in range(30):
        snap = s.step()
    assert snap["epoch"] == 30 and len(snap["history"]["train_loss"]) == 31
    assert snap["train_loss"] < snap["history"]["train_loss"][0] / 2
    assert snap["test_accuracy"] >= 0.95


def test_rewind_trains_to_the_same_numbers_and_reset_does_not():
    cfg = {**SMALL, "optimizer": "adam", "layers": [
        {"units": 5, "activation": "relu", "dropout": 0.3, "batch_norm": True},
        {"units": 3, "activation": "tanh", "dropout": 0.2}]}
    s = Session(cfg)
    first = s.snapshot()["weights"]
    runs = []
    for _ in range(2):
        losses = [s.step()["train_loss"] for _ in range(4)]
        runs.append((losses, s.net.flat_params.copy()))
        rewound = s.rewind()
        assert rewound["epoch"] == 0 and len(rewound["history"]["train_loss"]) == 1
        assert rewound["weights"] == first and "points" in rewound
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    reset = s.reset()
    assert reset["epoch"] == 0 and reset["weights"] != first
    # A setup with the config's seed gives the first weights again.
    assert s.setup(cfg)["weights"] == first


def test_update_keeps_the_weights_for_live_keys_and_rebuilds_for_others():
    s = Session(SMALL)
    s.step()
    w = s.snapshot()["weights"]
    snap = s.update({"learning_rate": 0.5, "batch_size": 7, "regularization": "l2",
                     "regularization_rate": 0.01})
    assert snap["epoch"] == 1 and snap["weights"] == w and "points" not in snap
    assert s.optimizer.lr == 0.5 and s.config["batch_size"] == 7
    snap = s.update({"optimizer": "momentum"})
    assert snap["weights"] == w and s.optimizer.momentum == 0.9
    snap = s.update({"noise": 20})
    assert snap["epoch"] == 0 and "points" in snap and s.config["learning_rate"] == 0.5


def _one_full_batch_step(reg: str, rate: float) -> list[np.ndarray]:
    s = Session({**SMALL, "batch_size": 500, "regularization": reg,
                 "regularization_rate": rate, "learning_rate": 0.1})
    before = [p.copy() for p in s.net.params]
    s.step()
    return [b - p for b, p in zip(before, s.net.params)]  # lr * (grad + penalty)


@pytest.mark.parametrize(("reg", "penalty"), [
    ("none", lambda W: 0 * W),
    ("l1", lambda W: 0.05 * np.sign(W)),
    ("l2", lambda W: 0.05 * W),
])
def test_regularization_is_added_to_the_weight_gradients_only(reg, penalty):
    plain = Session({**SMALL, "batch_size": 500})
    _, grads = plain.net.loss_and_gradients(plain.X_train, plain.Y_train, loss=plain.loss_name)
    weights = [p.copy() for p in plain.net.params]
    steps = _one_full_batch_step(reg, 0.05)
    for k, (g, w, step) in enumerate(zip(grads, weights, steps)):
        extra = penalty(w) if k % 2 == 0 else 0 * w  # params are W1, b1, W2, b2, ...
        np.testing.assert_allclose(step, 0.1 * (g + extra), rtol=1e-9, atol=1e-14)


def test_a_diverging_run_says_so_and_sends_null_not_nan():
    s = Session({**SMALL, "dataset": "plane", "features": ["x1sq", "x2sq"],
                 "learning_rate": 10, "layers": [{"units": 8, "activation": "identity"}]})
    snap = s.train_for(5.0, max_epochs=50)
    assert s.diverged
    assert s.take_notices() == [DIVERGED] and s.take_notices() == []
    out = as_json(snap)
    assert out["train_loss"] is None and out["diverged"] is True
    assert None in out["grid"]["output"]
    s.step()
    assert s.take_notices() == [DIVERGED]
    assert not s.rewind()["diverged"]  # back to the finite start


def test_train_for_stops_after_one_epoch_when_asked():
    s = Session(SMALL)
    stop = threading.Event()
    stop.set()
    assert s.train_for(10.0, stop)["epoch"] == 1
    assert s.train_for(0.0)["epoch"] == 2  # at least one epoch


def test_batch_norm_skips_a_last_batch_of_one_row():
    s = Session({**SMALL, "batch_size": 3, "train_share": 0.5,  # 100 rows: 33 x 3 + 1
                 "layers": [{"units": 3, "activation": "relu", "batch_norm": True}]})
    snap = s.step()
    assert np.isfinite(snap["train_loss"])


@pytest.mark.parametrize(("config", "needle"), [
    ({"dataset": "rings"}, "dataset must be one of"),
    ({"noise": 51}, "noise must be a number from 0 to 50"),
    ({"noise": "5"}, "noise must be a number"),
    ({"noise": float("nan")}, "noise"),
    ({"classes": 6}, "classes must be an integer from 3 to 5"),
    ({"batch_size": 2.5}, "batch_size must be an integer"),
    ({"batch_size": True}, "batch_size"),
    ({"n_points": 99}, "n_points"),
    ({"train_share": 0.95}, "train_share"),
    ({"seed": -1}, "seed"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, momentum, adam"),
    ({"regularization": "l3"}, "regularization must be one of"),
    ({"features": []}, "features must be a non-empty list"),
    ({"features": ["x3"]}, "features"),
    ({"features": ["x1", "x1"]}, "distinct"),
    ({"layers": [{"units": 4}] * 7}, "0 to 6 hidden layers"),
    ({"layers": [{"units": 9}]}, r"units must be an integer from 1 to 8"),
    ({"layers": [{"units": 2, "activation": "gelu"}]}, "activation must be one of"),
    ({"layers": [{"units": 2, "dropout": 0.95}]}, "dropout"),
    ({"layers": [{"units": 2, "batch_norm": "yes"}]}, "batch_norm must be true or false"),
    ({"layers": [{"units": 2, "width": 3}]}, "unknown key"),
    ({"layers": [3]}, r"layers\[0\] must be an object"),
    ({"layers": [{"units": 2, "batch_norm": True}], "batch_size": 1}, "batches of at least 2"),
    ({"dataset": "upload"}, "needs an upload_id"),
    ({"upload_id": 3}, "upload_id must be a string"),
    ({"colour": "red"}, "unknown config key"),
])
def test_bad_configs_are_refused_naming_the_key(config, needle):
    with pytest.raises(ValueError, match=needle):
        validate_config(config)


def test_a_bad_config_leaves_the_session_as_it_was():
    s = Session(SMALL)
    s.step()
    with pytest.raises(ValueError):
        s.setup({"noise": -1})
    with pytest.raises(ValueError):
        s.update({"learning_rate": -1})
    with pytest.raises(ValueError, match="must be an object"):
        s.update([1, 2])  # type: ignore[arg-type]
    assert s.epoch == 1 and s.config["learning_rate"] == DEFAULT_CONFIG["learning_rate"]


def test_no_hidden_layer_is_a_linear_model():
    s = Session({**SMALL, "layers": []})
    snap = s.step()
    assert [np.shape(w) for w in snap["weights"]] == [(2, 1)]
    assert len(snap["neurons"]) == 2 and snap["diagnostics"]["dead_relu"] == []


# -- uploads ----------------------------------------------------------------------------
def _upload_session(target: str) -> Session:
    rng = np.random.default_rng(0)
    rows = ["a,b,label,value"]
    for _ in range(80):
        a, b = rng.normal(size=2)
        rows.append(f"{a * 100:.3f},{b:.3f},{'yes' if a > 0 else 'no'},{a + b:.4f}")
    table = data.parse_csv("\n".join(rows).encode())
    return Session({"dataset": "upload", "upload_id": "u1", "upload_target": target,
                    "learning_rate": 0.3}, uploads={"u1": table})


def test_an_upload_trains_as_classification_or_regression():
    s = _upload_session("label")
    assert s.classes == 2 and s.class_names == ["no", "yes"]
    assert s.config["upload_x1"] == "a" and s.config["upload_x2"] == "b"
    for _ in range(20):
        snap = s.step()
    assert snap["test_accuracy"] >= 0.9
    s = _upload_session("value")
    assert s.task == "regression" and np.abs(s.y_train).max() <= 1
    assert np.abs(s.points).max() == pytest.approx(6)


def test_an_unknown_upload_is_refused():
    with pytest.raises(ValueError, match=r"unknown.*upload the CSV file again"):
        Session({"dataset": "upload", "upload_id": "gone"})


# -- explain ----------------------------------------------------------------------------
SEED_STEPS = ["X", "z1", "a1", "z2", "a2", "loss", "error_output", "dW2", "db2",
              "error_hidden", "dW1", "db1"]


def test_explain_keeps_the_seeds_names_and_equals_zn_trace():
    s = Session({**SMALL, "batch_size": 12, "dataset": "plane",
                 "layers": [{"units": 5, "activation": "relu"}]})
    s.step()
    before = s.net.flat_params.copy()
    out = as_json(s.explain("en"))
    assert out["type"] == "explain" and out["lang"] == "en" and out["batch_size"] == 12
    assert [st["name"] for st in out["steps"]] == SEED_STEPS
    np.testing.assert_array_equal(s.net.flat_params, before)  # no update
    Xb, Yb = s.explain_batch()
    np.testing.assert_array_equal(Xb, s.X_train[:12])
    tr = zn.trace(s.net, Xb, Yb, loss="mse")
    steps = {st["name"]: st for st in out["steps"]}
    for name in SEED_STEPS[1:]:
        value = np.atleast_2d(tr[name])
        assert steps[name]["shape"] == list(value.shape)
        shown = np.array(steps[name]["values"], dtype=float)
        assert shown.shape == (min(8, value.shape[0]), min(8, value.shape[1]))
        np.testing.assert_allclose(shown, value[:8, :8], rtol=5e-4, atol=1e-12)
    assert steps["z1"]["formula"] == "z1 = X · W1 + b1"
    assert [st["phase"] for st in out["steps"]].count("loss") == 1
    assert steps["dW1"]["phase"] == "backward" and steps["a1"]["phase"] == "forward"


def test_explain_in_japanese_and_for_deeper_networks():
    s = Session({**SMALL, "layers": DEEP})
    out = s.explain("ja")
    names = [st["name"] for st in out["steps"]]
    assert names[:9] == ["X", "z1", "a1", "z2", "a2", "z3", "a3", "z4", "a4"]
    assert names[9:] == ["loss", "delta4", "dW4", "db4", "delta3", "dW3", "db3", "delta2",
                         "dW2", "db2", "delta1", "dW1", "db1"]
    text = " ".join(st["text"] for st in out["steps"])
    for word in ("順伝播", "逆伝播", "誤差"):
        assert word in text
    with pytest.raises(ValueError, match="lang must be 'en' or 'ja'"):
        s.explain("fr")


def test_explain_with_dropout_and_batch_norm_names_their_steps():
    s = Session({**SMALL, "layers": [{"units": 3, "activation": "relu", "dropout": 0.5,
                                      "batch_norm": True}]})
    names = [st["name"] for st in s.explain()["steps"]]
    assert {"mask4", "dropout4", "bn2", "xhat2", "dgamma2", "dx4"} <= set(names)


def test_every_step_kind_has_a_sentence_in_both_languages():
    for name in ("X", "z3", "a3", "loss", "error_output", "error_hidden", "delta5", "dW2",
                 "db2", "mask4", "dropout4", "mean2", "var2", "xhat2", "bn2", "dgamma2",
                 "dbeta2", "dxhat2", "dx3", "dout3"):
        for lang in ("en", "ja"):
            phase, text = describe(name, lang)
            assert phase in ("forward", "loss", "backward")
            assert text and text != name and "{" not in text


# -- export -----------------------------------------------------------------------------
def test_the_model_file_loads_and_predicts_the_same(tmp_path):
    s = Session({**SMALL, "dataset": "multiclass", "layers": DEEP})
    s.train_for(0.0)
    path = tmp_path / "playground.zeronn"
    path.write_bytes(s.model_bytes())
    np.testing.assert_array_equal(zn.load(path).predict(s.X_test), s.net.predict(s.X_test))


def test_the_onnx_file_runs_and_predicts_the_same():
    ort = pytest.importorskip("onnxruntime")
    s = Session({**SMALL, "layers": DEEP})
    s.step()
    sess = ort.InferenceSession(s.onnx_bytes())
    out = sess.run(None, {sess.get_inputs()[0].name: s.X_test.astype(np.float32)})[0]
    np.testing.assert_allclose(out, s.net.predict(s.X_test), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("config", [
    {"dataset": "circle", "features": ["x1", "x2", "x1sq"], "regularization": "l2",
     "regularization_rate": 0.001},
    {"dataset": "multiclass", "classes": 3, "optimizer": "adam", "regularization": "l1",
     "regularization_rate": 0.001, "layers": [{"units": 4, "activation": "relu",
                                               "dropout": 0.1, "batch_norm": True}],
     "batch_size": 9},
    {"dataset": "surface", "optimizer": "momentum", "layers": DEEP},
])
def test_the_snippet_rebuilds_the_same_data_and_network_and_trains(config):
    s = Session({**SMALL, **config})
    code = s.snippet(epochs=3)
    namespace: dict = {"__name__": "playground_snippet"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "playground.py", "exec"), namespace)
    # (with BatchNorm a last batch of 1 row is left out: fit refuses it)
    F_train = namespace["F_train"]
    assert len(F_train) >= len(s.X_train) - 1
    np.testing.assert_array_equal(F_train, s.X_train[:len(F_train)])
    np.testing.assert_array_equal(namespace["Y_test"], s.Y_test)
    assert repr(namespace["net"]) == repr(s.net)
    rebuilt = zn.Sequential(s.build_layers(), input_dim=len(s.config["features"]),
                            seed=s.init_seed)
    losses = namespace["hist"]["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]  # it trains
    assert "train loss" in out.getvalue()
    assert namespace["net"].n_params == rebuilt.n_params


def test_the_snippet_of_an_upload_holds_its_points():
    s = _upload_session("label")
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(s.snippet(epochs=2), namespace)
    np.testing.assert_allclose(namespace["F_train"], s.X_train, atol=1e-6)


def test_grad_norms_come_from_the_last_batch_trained_even_when_one_is_skipped():
    s = Session({**SMALL, "batch_size": 3,  # 100 rows: 33 batches of 3, then 1 row skipped
                 "layers": [{"units": 3, "activation": "relu", "batch_norm": True}]})
    s.step()
    assert all(g > 0 for g in s.grad_norm) and len(s.grad_norm) == 2
