"""The playground's page in a real browser: Chromium driven by playwright's sync API.

One server (uvicorn in a background thread, 127.0.0.1, a free port) and one browser serve
the whole module; every test opens its own page, so it gets its own session. The tests
skip, saying why, when playwright or the Chromium binary is missing (`.ci/run` installs
Chromium; playwright's own browser download is not used).

``ZERONN_SCREENSHOT=1`` makes the screenshot test also write ``docs/playground.png`` (the
README's picture); by default it only checks that the screenshot is not blank.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zeronn as zn

pytest.importorskip("starlette", reason="the playground extra is not installed: "
                    "pip install 'zeronn[playground]'")
uvicorn = pytest.importorskip("uvicorn", reason="the playground extra is not installed: "
                              "pip install 'zeronn[playground]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: "
                               "pip install 'zeronn[test]'")

CHROMIUM = os.environ.get("ZERONN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ZERONN_CHROMIUM)",
                allow_module_level=True)

from zeronn.playground import create_app  # noqa: E402  (after the skips: needs the extra)

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 20_000  # for waits on the server; generous, the machine is shared


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the playground server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Page:
    """One tab on the playground, with what it logged and what it tried to fetch."""

    def __init__(self, browser: Any, base_url: str, fragment: str = "") -> None:
        self.base = base_url
        self.context = browser.new_context(viewport={"width": 1400, "height": 900},
                                           accept_downloads=True)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.external: list[str] = []
        # Offline: anything not from the local server is refused and remembered.
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(base_url + fragment)
        self.wait_snapshot()

    def _route(self, route: Any) -> None:
        if route.request.url.startswith(self.base):
            route.continue_()
        else:
            self.external.append(route.request.url)
            route.abort()

    def tid(self, name: str) -> Any:
        return self.page.locator(f'[data-testid="{name}"]')

    def text(self, name: str) -> str:
        return str(self.tid(name).text_content())

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def wait(self, expression: str, arg: Any = None) -> None:
        self.page.wait_for_function(expression, arg=arg, timeout=TIMEOUT_MS)

    def wait_snapshot(self) -> None:
        """Until the page holds a snapshot answering its own current setup."""
        # Every field the page asked for, as the server's answer echoes it (config), so a
        # late answer to an earlier setup does not count.
        self.wait("""() => { const s = window.zeronnPlayground;
            if (!s.last || !s.points || !s.last.config || s.playing) return false;
            const a = s.config, b = s.last.config;
            const layers = (c) => JSON.stringify(c.layers.map((l) =>
                [l.units, l.activation, Number(l.dropout || 0), !!l.batch_norm]));
            const keys = ["dataset", "classes", "multiclass_shape", "noise", "train_share",
                "batch_size", "n_points", "seed", "learning_rate", "optimizer",
                "regularization", "regularization_rate"];
            if (a.dataset === "upload") keys.push("upload_id", "upload_x1", "upload_x2",
                "upload_target");
            return keys.every((k) => String(a[k]) === String(b[k]))
                && a.features.join() === b.features.join() && layers(a) === layers(b); }""")

    def wait_epoch(self, epoch: int) -> None:
        self.wait("e => document.querySelector('[data-testid=epoch]').textContent === String(e)"
                  " && !window.zeronnPlayground.playing", epoch)

    def step(self, times: int = 1) -> list[str]:
        """Presses step ``times`` times, each after the last answer; the train losses."""
        losses = []
        for _ in range(times):
            epoch = int(self.text("epoch"))
            self.tid("step").click()
            self.wait_epoch(epoch + 1)
            losses.append(self.text("train-loss"))
        return losses

    def neurons(self) -> int:
        return int(self.page.locator('[data-testid="network"] canvas.neuron').count())

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any, base_url: str) -> Iterator[Any]:
    pages: list[Page] = []

    def make(fragment: str = "") -> Page:
        pages.append(Page(browser, base_url, fragment))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def test_page_loads_offline_without_console_errors(open_page: Any) -> None:
    pg = open_page()
    assert pg.text("epoch") == "0"
    float(pg.text("train-loss"))
    assert 0 <= float(pg.text("test-accuracy")) <= 1
    options = pg.tid("dataset").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert set(options) >= {"circle", "xor", "gauss", "spiral", "moons", "plane", "surface",
                            "multiclass"}
    # Every stable selector the issue names is on the page.
    for name in ["play", "step", "reset", "rewind", "dataset", "learning-rate", "add-layer",
                 "remove-layer", "epoch", "train-loss", "test-loss", "test-accuracy",
                 "output-canvas", "explain", "explain-panel", "upload", "message",
                 "export-model", "export-onnx"]:
        assert pg.tid(name).count() == 1, name
    assert pg.errors == [] and pg.external == []


def test_step_trains_exactly_one_epoch(open_page: Any) -> None:
    pg = open_page()
    before = float(pg.text("train-loss"))
    pg.step()
    assert pg.text("epoch") == "1"
    assert float(pg.text("train-loss")) != before
    assert pg.js("window.zeronnPlayground.last.history.train_loss.length") == 2
    assert pg.errors == []


def test_play_learns_the_circle_then_pause_stops(open_page: Any) -> None:
    pg = open_page("#dataset=circle&learning_rate=0.1")
    first = float(pg.text("train-loss"))
    play = pg.tid("play")
    play.click()
    assert play.get_attribute("aria-pressed") == "true"
    assert "Pause" in play.inner_text()
    # The bar: train on the circle until the test accuracy reaches 0.95.
    pg.wait("() => Number(document.querySelector('[data-testid=test-accuracy]').textContent)"
            " >= 0.95")
    play.click()
    pg.wait("() => !window.zeronnPlayground.playing && window.zeronnPlayground.pendingPlay"
            " === null")
    assert play.get_attribute("aria-pressed") == "false"
    assert "Play" in play.inner_text()
    epoch = int(pg.text("epoch"))
    assert epoch > 1
    assert float(pg.text("train-loss")) < first
    assert float(pg.text("test-accuracy")) >= 0.95
    # Paused means paused: no more epochs arrive.
    pg.page.wait_for_timeout(400)
    assert int(pg.text("epoch")) == epoch
    assert pg.errors == []


def test_rewind_gives_the_same_losses_again(open_page: Any) -> None:
    pg = open_page()
    first = pg.step(3)
    values = pg.tid("train-loss").get_attribute("data-value")
    pg.tid("rewind").click()
    pg.wait_epoch(0)
    assert pg.step(3) == first
    assert pg.tid("train-loss").get_attribute("data-value") == values
    # Reset draws new weights: the first epoch's loss differs.
    pg.tid("reset").click()
    pg.wait_epoch(0)
    assert pg.step(1)[0] != first[0]


def _palette_pixels(pg: Page) -> list[int]:
    """How many output-canvas pixels have exactly each class colour (the points' fill)."""
    return list(pg.js("""() => {
        const c = document.querySelector('[data-testid=output-canvas]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const pal = [[245,147,34],[8,119,189],[44,160,44],[214,39,40],[148,103,189]];
        const n = pal.map(() => 0);
        for (let i = 0; i < d.length; i += 4)
          pal.forEach((p, k) => {
            if (d[i] === p[0] && d[i+1] === p[1] && d[i+2] === p[2]) n[k]++; });
        return n; }"""))


def test_multiclass_shows_an_accuracy_and_a_colour_per_class(open_page: Any) -> None:
    pg = open_page()
    assert _palette_pixels(pg)[2:] == [0, 0, 0]  # binary: two colours
    pg.tid("dataset").select_option("multiclass")
    pg.wait_snapshot()
    assert pg.js("window.zeronnPlayground.last.classes") == 3
    pg.step(2)
    assert 0 <= float(pg.text("test-accuracy")) <= 1
    pg.wait("() => window.zeronnPlayground.frames > 0 && !window.zeronnPlayground.drawQueued")
    counts = _palette_pixels(pg)
    assert all(n > 20 for n in counts[:3]), counts
    assert counts[3:] == [0, 0]
    # Four classes: a fourth colour.
    pg.tid("classes").select_option("4")
    pg.wait("() => window.zeronnPlayground.last.classes === 4")
    pg.page.wait_for_timeout(100)
    assert _palette_pixels(pg)[3] > 20


def test_regression_has_no_accuracy(open_page: Any) -> None:
    pg = open_page()
    pg.tid("dataset").select_option("plane")
    pg.wait_snapshot()
    assert pg.js("window.zeronnPlayground.last.task") == "regression"
    pg.step(1)
    assert pg.text("test-accuracy") == ""
    float(pg.text("test-loss"))


def test_layer_buttons_change_the_neurons(open_page: Any) -> None:
    pg = open_page()
    start = pg.neurons()  # 7 features + 4 + 2 hidden + 1 output
    assert start == 14
    pg.tid("add-layer").click()
    assert pg.neurons() == start + 2
    pg.wait_snapshot()
    assert pg.js("window.zeronnPlayground.last.neurons.length") == 5
    pg.tid("remove-layer").click()
    pg.tid("remove-layer").click()
    assert pg.neurons() == start - 2
    pg.tid("units-plus-1").click()
    assert pg.neurons() == start - 1
    pg.tid("activation-1").select_option("relu")
    pg.wait_snapshot()
    first = pg.js("window.zeronnPlayground.last.layers[0]")
    assert (first["units"], first["activation"]) == (5, "relu")
    assert "layers=5:relu" in pg.page.url
    # dead-ReLU share shows for the relu layer in the diagnostics
    assert pg.tid("diagnostics").locator("tbody tr").count() == 2
    assert "%" in pg.tid("diagnostics").locator("tbody tr").first.inner_text()


def test_explain_steps_through_backprop_in_both_languages(open_page: Any) -> None:
    pg = open_page("#batch_size=12")
    panel = pg.tid("explain-panel")
    assert not panel.is_visible()
    pg.tid("explain").click()
    assert panel.is_visible()
    pg.wait("() => window.zeronnPlayground.explain !== null")
    text = panel.inner_text()
    for name in ["z1", "a1", "dW1", "db1", "loss"]:
        assert name in text, name
    # One step at a time: next and previous move through them.
    assert pg.page.locator("#explain-pos").inner_text().startswith("1 ")
    pg.tid("explain-next").click()
    assert pg.page.locator("#explain-step .formula").inner_text().startswith("z1 =")
    pg.tid("explain-prev").click()
    assert pg.page.locator("#explain-pos").inner_text().startswith("1 ")
    # The numbers shown are zn.trace's for the same weights and mini-batch.
    msg = pg.js("window.zeronnPlayground.explain")
    with pg.page.expect_download() as dl:
        pg.tid("export-model").click()
    path = dl.value.path()
    net = zn.load(path)
    train = np.array(pg.js("window.zeronnPlayground.points.train"))
    xb, yb = train[:12, :2], train[:12, 2:]
    assert msg["batch_size"] == 12
    tr = zn.trace(net, xb, yb, loss=msg["loss"])
    shown = {s["name"]: np.array(s["values"], dtype=float) for s in msg["steps"]}
    for name in ["z1", "a1", "z3", "loss", "dW1", "db1", "dW3"]:
        want = np.atleast_2d(np.asarray(tr[name], dtype=float))
        got = shown[name]
        # shown: 4 significant digits; the points: rounded to 4 decimals in the snapshot
        np.testing.assert_allclose(got, want[:got.shape[0], :got.shape[1]], rtol=3e-3,
                                   atol=3e-3, err_msg=name)
    pg.tid("lang-ja").click()
    pg.wait("() => window.zeronnPlayground.explain.lang === 'ja'")
    assert "逆伝播" in panel.inner_text()
    assert panel.get_attribute("lang") == "ja"
    pg.tid("lang-en").click()
    pg.wait("() => window.zeronnPlayground.explain.lang === 'en'")
    assert "逆伝播" not in panel.inner_text()
    # A step changes the weights: the open step-through explains the new ones.
    pg.page.evaluate("window.zeronnPlayground.explain = null")
    pg.step()
    pg.wait("() => window.zeronnPlayground.explain !== null")
    after = {s["name"]: s["values"] for s in pg.js("window.zeronnPlayground.explain.steps")}
    assert after["z1"] != next(s["values"] for s in msg["steps"] if s["name"] == "z1")
    pg.tid("explain-close").click()
    assert not panel.is_visible()


def test_a_bad_upload_shows_a_message(open_page: Any, tmp_path: Path) -> None:
    pg = open_page()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02 not a table \xff\xfe")
    pg.tid("upload").set_input_files(str(bad))
    pg.wait("() => document.querySelector('[data-testid=message]').textContent.length > 0")
    assert "error" in str(pg.tid("message").get_attribute("class"))
    assert pg.js("window.zeronnPlayground.config.dataset") == "circle"
    # too big for the server's cap: answered on the page before it is sent
    big = tmp_path / "big.csv"
    big.write_bytes(b"a,b,c\n" + b"1,2,3\n" * 400_000)
    pg.tid("upload").set_input_files(str(big))
    pg.wait("() => document.querySelector('[data-testid=message]').textContent.includes('2 MB')")


def test_out_of_range_whole_numbers_are_put_back_with_a_message(open_page: Any) -> None:
    pg = open_page()
    for testid, key, bad, says in (("batch-size", "batch_size", "0", "batch size"),
                                   ("seed", "seed", "-3", "seed"),
                                   ("seed", "seed", "1.5", "seed")):
        before = pg.js(f"window.zeronnPlayground.config.{key}")
        pg.tid(testid).fill(bad)
        pg.tid(testid).dispatch_event("change")
        pg.wait("s => document.querySelector('[data-testid=message]').textContent"
                ".includes(s)", f"The {says} is a whole number")
        assert "error" in str(pg.tid("message").get_attribute("class"))
        assert pg.tid(testid).input_value() == str(before)
        assert pg.js(f"window.zeronnPlayground.config.{key}") == before
    pg.tid("batch-size").fill("25")
    pg.tid("batch-size").dispatch_event("change")
    pg.wait("() => window.zeronnPlayground.config.batch_size === 25")


def test_a_good_upload_picks_columns_and_trains(open_page: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xy = rng.normal(size=(120, 3))
    label = np.where(xy[:, 0] * xy[:, 1] > 0, "yes", "no")
    rows = ["height,width,depth,label"] + [f"{a:.3f},{b:.3f},{c:.3f},{t}"
                                           for (a, b, c), t in zip(xy, label, strict=True)]
    csv = tmp_path / "mine.csv"
    csv.write_text("\n".join(rows) + "\n")
    pg = open_page()
    pg.tid("upload").set_input_files(str(csv))
    pg.wait("() => window.zeronnPlayground.config.dataset === 'upload'")
    pg.wait_snapshot()
    assert pg.tid("dataset").input_value() == "upload"
    assert pg.tid("upload-x1").input_value() == "height"
    assert pg.tid("upload-x2").input_value() == "width"
    assert pg.tid("upload-target").input_value() == "label"
    pg.tid("upload-x2").select_option("depth")
    pg.wait("() => window.zeronnPlayground.last.config.upload_x2 === 'depth'")
    assert pg.js("window.zeronnPlayground.last.task") == "classification"
    pg.step(2)
    assert 0 <= float(pg.text("test-accuracy")) <= 1
    assert "upload_x2=depth" in pg.page.url


def test_exported_model_predicts_what_the_page_shows(open_page: Any, tmp_path: Path) -> None:
    pg = open_page("#dataset=xor&learning_rate=0.1")
    pg.step(3)
    with pg.page.expect_download() as dl:
        pg.tid("export-model").click()
    assert dl.value.suggested_filename == "playground.zeronn"
    path = tmp_path / "playground.zeronn"
    dl.value.save_as(path)
    net = zn.load(path)
    snap = pg.js("window.zeronnPlayground.last")
    size = snap["grid"]["size"]
    lo, hi = snap["grid"]["extent"][:2]
    centres = lo + (np.arange(size) + 0.5) * (hi - lo) / size
    gx, gy = np.meshgrid(centres, centres[::-1])
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    np.testing.assert_allclose(net.predict(grid)[:, 0], snap["grid"]["output"], atol=1e-3)
    test = np.array(pg.js("window.zeronnPlayground.points.test"))
    acc = np.mean((net.predict(test[:, :2])[:, 0] > 0.5) == (test[:, 2] > 0.5))
    assert abs(acc - float(pg.text("test-accuracy"))) <= 0.01
    with pg.page.expect_download() as dl:
        pg.tid("export-onnx").click()
    assert dl.value.suggested_filename == "playground.onnx"
    assert Path(dl.value.path()).stat().st_size > 100
    pg.tid("export-snippet").click()
    pg.wait("() => document.querySelector('[data-testid=snippet]').value.length > 0")
    code = pg.tid("snippet").input_value()
    assert "zn.Sequential" in code and ".fit(" in code


def test_the_url_restores_a_setup(open_page: Any) -> None:
    pg = open_page("#dataset=xor&learning_rate=0.1&optimizer=adam&features=x1,x2,x1x2"
                   "&layers=3:relu:d0.2,2:sigmoid:bn&seed=7&noise=10")
    assert pg.tid("dataset").input_value() == "xor"
    assert float(pg.tid("learning-rate").input_value()) == 0.1
    assert pg.tid("optimizer").input_value() == "adam"
    assert pg.tid("noise").input_value() == "10"
    assert pg.tid("feature-x1x2").get_attribute("aria-pressed") == "true"
    assert pg.tid("dropout-1").input_value() == "0.2"
    assert pg.tid("batch-norm-2").is_checked()
    cfg = pg.js("window.zeronnPlayground.last.config")
    assert (cfg["dataset"], cfg["learning_rate"], cfg["optimizer"], cfg["seed"]) == \
        ("xor", 0.1, "adam", 7)
    assert cfg["features"] == ["x1", "x2", "x1x2"]
    assert [(la["units"], la["activation"], la["dropout"], la["batch_norm"])
            for la in cfg["layers"]] == [(3, "relu", 0.2, False), (2, "sigmoid", 0.0, True)]
    # Changing controls updates the link; reloading it gives the same setup again.
    pg.tid("learning-rate").select_option("0.003")
    pg.tid("dataset").select_option("spiral")
    pg.tid("feature-sinx1").click()
    pg.wait_snapshot()
    url = pg.page.url
    assert "learning_rate=0.003" in url and "dataset=spiral" in url and "sinx1" in url
    session = pg.js("window.zeronnPlayground.session")
    pg.page.reload()
    pg.wait_snapshot()
    assert pg.tid("dataset").input_value() == "spiral"
    assert pg.tid("learning-rate").input_value() == "0.003"
    assert pg.js("window.zeronnPlayground.last.config.features") == ["x1", "x2", "x1x2",
                                                                   "sinx1"]
    # A reloaded tab has its own session.
    assert pg.js("window.zeronnPlayground.session") != session
    assert pg.errors == []


def test_keyboard_plays_and_steps(open_page: Any) -> None:
    pg = open_page()
    pg.tid("step").focus()
    pg.page.keyboard.press("Enter")
    pg.wait_epoch(1)
    pg.page.evaluate("document.activeElement.blur()")
    pg.page.keyboard.press("ArrowRight")
    pg.wait_epoch(2)
    pg.page.keyboard.press("Space")
    pg.wait("() => window.zeronnPlayground.playing")
    pg.page.keyboard.press("Space")
    pg.wait("() => !window.zeronnPlayground.playing && window.zeronnPlayground.pendingPlay"
            " === null")
    assert int(pg.text("epoch")) > 2


def test_screenshot_is_not_blank(open_page: Any, tmp_path: Path) -> None:
    pg = open_page("#dataset=spiral&noise=10&features=x1,x2,x1sq,x2sq,sinx1,sinx2"
                   "&layers=8:tanh,6:tanh,4:tanh&learning_rate=0.01&optimizer=adam")
    write = bool(os.environ.get("ZERONN_SCREENSHOT"))
    pg.tid("play").click()
    # The README's picture shows a learned spiral; the check alone needs only some training.
    pg.wait("n => Number(document.querySelector('[data-testid=epoch]').textContent) >= n",
            150 if write else 20)
    pg.tid("play").click()
    pg.wait("() => !window.zeronnPlayground.playing && window.zeronnPlayground.pendingPlay"
            " === null")
    pg.page.wait_for_timeout(200)
    png = pg.page.screenshot(full_page=True)
    # A blank page compresses to a few kB; this one has heatmaps, curves and points.
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 60_000
    if write:
        (ROOT / "docs" / "playground.png").write_bytes(png)
