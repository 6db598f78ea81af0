"""The playground's web app (zeronn.playground.app): routes, uploads, exports, the WebSocket."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # it may say it prefers another HTTP client: not ours
    warnings.filterwarnings("ignore", message="Using `httpx`")
    from starlette.testclient import TestClient

import zeronn as zn
from zeronn.playground import create_app, data
from zeronn.playground.app import STATIC

CSV = "a,b,label\n" + "\n".join(
    f"{x:.3f},{y:.3f},{'in' if x * x + y * y < 1 else 'out'}"
    for x, y in np.random.default_rng(0).uniform(-2, 2, (120, 2))) + "\n"


@pytest.fixture
def client():
    with TestClient(create_app()) as c:
        yield c


def receive_snapshot(ws) -> dict:
    """The next snapshot, skipping notices."""
    while True:
        msg = ws.receive_json()
        if msg["type"] == "snapshot":
            return msg
        assert msg["type"] == "notice", msg


# -- HTTP -------------------------------------------------------------------------------
def test_the_page_and_its_files_are_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == (STATIC / "index.html").read_text(encoding="utf-8")
    assert client.get("/static/index.html").status_code == 200


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2Fapp.py",
    "/static/%2e%2e%2f%2e%2e%2fcli.py", "/static//etc/passwd", "/static/%2Fetc%2Fpasswd",
    "/static/", "/static/nothing.js", "/static/.",
])
def test_no_file_outside_the_static_folder_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "import" not in r.text and "root:" not in r.text
    assert "error" in r.json()


def test_an_upload_answers_its_columns(client):
    r = client.post("/api/upload", content=CSV.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 200
    body = r.json()
    assert body["columns"] == ["a", "b", "label"] and body["numeric_columns"] == ["a", "b"]
    assert body["rows"] == 120 and isinstance(body["upload_id"], str)


@pytest.mark.parametrize(("raw", "needle"), [
    (b"", "empty"),
    (b"\x00\x01\x02garbage", "not a CSV"),
    (b"x,y\nfoo,bar\n", "numeric"),
    (b"only\n1\n", "fewer than 2 columns"),
])
def test_a_bad_upload_is_a_400_with_one_line(client, raw, needle):
    r = client.post("/api/upload", content=raw)
    assert r.status_code == 400
    message = r.json()["error"]
    assert needle in message and "\n" not in message


def test_an_upload_over_the_cap_is_refused_with_413(client):
    big = b"a,b\n" + b"1,2\n" * (data.MAX_UPLOAD_BYTES // 4 + 10)
    r = client.post("/api/upload", content=big)
    assert r.status_code == 413 and "2 MB" in r.json()["error"]

    def chunks():  # no content-length: the server counts while it reads
        for _ in range(5):
            yield b"1,2\n" * (data.MAX_UPLOAD_BYTES // 16)
    r = client.post("/api/upload", content=chunks())
    assert r.status_code == 413


def test_exports_of_an_unknown_session_are_404(client):
    for what in ("model", "onnx", "snippet"):
        r = client.get(f"/api/export/nosuch/{what}")
        assert r.status_code == 404 and "no session" in r.json()["error"]


# -- the WebSocket ----------------------------------------------------------------------
def test_connect_setup_step_and_update(client):
    with client.websocket_connect("/ws") as ws:
        first = ws.receive_json()
        assert first["type"] == "snapshot" and first["epoch"] == 0 and "points" in first
        ws.send_json({"type": "step"})
        snap = receive_snapshot(ws)
        assert snap["epoch"] == 1 and "points" not in snap and snap["playing"] is False
        ws.send_json({"type": "setup", "config": {"dataset": "xor", "n_points": 200,
                                                   "layers": [{"units": 3}]}})
        snap = receive_snapshot(ws)
        assert snap["epoch"] == 0 and len(snap["points"]["train"]) == 100
        assert snap["config"]["dataset"] == "xor"
        ws.send_json({"type": "update", "config": {"learning_rate": 0.3}})
        snap = receive_snapshot(ws)
        assert "points" not in snap and snap["config"]["learning_rate"] == 0.3
        ws.send_json({"type": "update", "config": {"noise": 10}})
        snap = receive_snapshot(ws)
        assert "points" in snap and snap["config"]["noise"] == 10
        assert snap["config"]["learning_rate"] == 0.3


def test_play_sends_snapshots_and_pause_stops_them(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "play"})
        epochs = [receive_snapshot(ws) for _ in range(3)]
        assert all(s["playing"] for s in epochs)
        assert epochs[0]["epoch"] >= 1 and epochs[2]["epoch"] > epochs[0]["epoch"]
        # The server keeps answering while it trains: an export now is the current model.
        sid = epochs[0]["session"]
        assert client.get(f"/api/export/{sid}/model").status_code == 200
        ws.send_json({"type": "pause"})
        while (snap := receive_snapshot(ws))["playing"]:
            pass
        # Nothing else comes: the next message answers the next request.
        ws.send_json({"type": "step"})
        after = receive_snapshot(ws)
        assert after["epoch"] == snap["epoch"] + 1 and not after["playing"]


def test_rewind_gives_the_same_losses_again_and_reset_new_weights(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "setup", "config": {"n_points": 200, "optimizer": "adam"}})
        start = receive_snapshot(ws)
        runs = []
        for _ in range(2):
            losses = []
            for _ in range(3):
                ws.send_json({"type": "step"})
                losses.append(receive_snapshot(ws)["train_loss"])
            runs.append(losses)
            ws.send_json({"type": "rewind"})
            rewound = receive_snapshot(ws)
            assert rewound["epoch"] == 0 and rewound["weights"] == start["weights"]
            assert rewound["history"]["train_loss"] == start["history"]["train_loss"]
        assert runs[0] == runs[1]
        ws.send_json({"type": "reset"})
        reset = receive_snapshot(ws)
        assert reset["epoch"] == 0 and reset["weights"] != start["weights"]


def test_explain_answers_the_step_through(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "setup", "config": {"layers": [{"units": 5, "activation": "relu"}]}})
        receive_snapshot(ws)
        ws.send_json({"type": "explain", "lang": "ja"})
        out = ws.receive_json()
        assert out["type"] == "explain" and out["lang"] == "ja" and out["batch_size"] == 10
        assert [s["name"] for s in out["steps"]] == [
            "X", "z1", "a1", "z2", "a2", "loss", "error_output", "dW2", "db2",
            "error_hidden", "dW1", "db1"]


@pytest.mark.parametrize(("message", "needle"), [
    ("not json", "not JSON"),
    ("[1, 2]", "unknown message type"),
    ('{"type": "fly"}', "unknown message type 'fly'"),
    ('{"type": "setup", "config": [1]}', "config must be an object"),
    ('{"type": "setup", "config": {"noise": 99}}', "noise must be a number from 0 to 50"),
    ('{"type": "update", "config": {"optimizer": "lbfgs"}}', "optimizer must be one of"),
    ('{"type": "setup", "config": {"dataset": "upload", "upload_id": "x"}}', "unknown"),
    ('{"type": "explain", "lang": "de"}', "lang must be"),
    ("x" * 200_000, "more than"),
])
def test_bad_messages_get_an_error_and_the_connection_stays(client, message, needle):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_text(message)
        err = ws.receive_json()
        assert err["type"] == "error" and needle in err["message"], err
        ws.send_json({"type": "step"})
        assert receive_snapshot(ws)["epoch"] == 1


def test_a_binary_message_gets_an_error_and_the_connection_stays(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_bytes(b'{"type": "step"}')
        err = ws.receive_json()
        assert err["type"] == "error" and "binary" in err["message"]
        ws.send_json({"type": "step"})
        assert receive_snapshot(ws)["epoch"] == 1


def test_a_diverging_run_stops_playing_with_a_notice(client):
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "setup", "config": {
            "dataset": "plane", "features": ["x1sq", "x2sq"], "learning_rate": 10,
            "layers": [{"units": 8, "activation": "identity"}]}})
        receive_snapshot(ws)
        ws.send_json({"type": "play"})
        while True:
            msg = ws.receive_json()
            if msg["type"] == "notice":
                break
        assert msg["message"] == "the loss diverged: lower the learning rate"
        ws.send_json({"type": "pause"})
        snap = receive_snapshot(ws)
        assert snap["playing"] is False and snap["train_loss"] is None


def test_each_connection_is_its_own_session_and_a_closed_one_ends(client):
    sessions = client.app.state.playground.sessions
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        sa, sb = a.receive_json()["session"], b.receive_json()["session"]
        assert sa != sb and {sa, sb} <= set(sessions)
        a.send_json({"type": "play"})
        receive_snapshot(a)
    deadline = time.monotonic() + 30
    while sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not sessions
    assert client.get(f"/api/export/{sa}/model").status_code == 404


def test_an_uploaded_csv_trains_and_exports(client):
    uid = client.post("/api/upload", content=CSV.encode()).json()["upload_id"]
    with client.websocket_connect("/ws") as ws:
        ws.receive_json()
        ws.send_json({"type": "setup", "config": {
            "dataset": "upload", "upload_id": uid, "upload_x1": "a", "upload_x2": "b",
            "upload_target": "label", "features": ["x1", "x2", "x1sq", "x2sq"],
            "learning_rate": 0.1}})
        snap = receive_snapshot(ws)
        assert snap["classes"] == 2 and snap["class_names"] == ["in", "out"]
        for _ in range(20):
            ws.send_json({"type": "step"})
            snap = receive_snapshot(ws)
        assert snap["test_accuracy"] > 0.8
        sid = snap["session"]
        r = client.get(f"/api/export/{sid}/model")
        assert r.status_code == 200
        assert r.headers["content-disposition"] == 'attachment; filename="playground.zeronn"'
        r = client.get(f"/api/export/{sid}/snippet?epochs=5")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "epochs=5" in r.text and "zn.Sequential" in r.text
        assert client.get(f"/api/export/{sid}/snippet?epochs=x").status_code == 400
        assert client.get(f"/api/export/{sid}/pickle").status_code == 404


def test_the_exported_files_load_and_predict_what_the_page_shows(client, tmp_path):
    with client.websocket_connect("/ws") as ws:
        snap = ws.receive_json()
        ws.send_json({"type": "step"})
        snap = receive_snapshot(ws)
        r = client.get(f"/api/export/{snap['session']}/model")
        path = tmp_path / "playground.zeronn"
        path.write_bytes(r.content)
        net = zn.load(path)
        grid = data.make_features(data.grid_points(snap["grid"]["size"]), snap["features"])
        np.testing.assert_allclose(net.predict(grid)[:, 0], snap["grid"]["output"], atol=1e-3)
        r = client.get(f"/api/export/{snap['session']}/onnx")
        assert r.status_code in (200, 400)  # 400 names the missing onnx extra
        if r.status_code == 200:
            assert r.headers["content-disposition"] == 'attachment; filename="playground.onnx"'
            ort = pytest.importorskip("onnxruntime")
            sess = ort.InferenceSession(r.content)
            out = sess.run(None, {sess.get_inputs()[0].name: grid.astype(np.float32)})[0]
            np.testing.assert_allclose(out[:, 0], snap["grid"]["output"], atol=2e-3)
        else:
            assert "onnx" in r.json()["error"]


def test_snapshots_are_strict_json(client):
    with client.websocket_connect("/ws") as ws:
        text = ws.receive_text()
        json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in a snapshot"))
