"""The ``zeronn`` command, run as a subprocess the way users run it."""

from __future__ import annotations

import importlib.util
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")

from zeronn import cli  # noqa: E402

COMMANDS = ["demo", "train", "predict", "evaluate", "export", "info", "gradcheck",
            "playground"]
FAST = ["--hidden", "8", "--epochs", "30", "--lr", "0.01", "--validation-split", "0.2"]
needs_persistence = pytest.mark.skipif(
    not (Path(cli.__file__).parent / "persistence.py").exists(),
    reason="zeronn.persistence (model files) is not installed")


def run(*args: str, cwd: Path | None = None, timeout: float = 120,
        **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "zeronn.cli", *args], text=True, cwd=cwd,
                          timeout=timeout, **kw)


def run_all(commands: list[list[str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Runs independent commands concurrently (the cores share the interpreter start-ups)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return list(pool.map(lambda args: run(*args, cwd=cwd), commands))


def assert_user_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit code 2, one short `zeronn: error:` message, no traceback, naming the problem."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert 1 <= len(lines) <= 3, r.stderr
    assert all(line.startswith("zeronn: error: ") for line in lines), r.stderr
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr)


def write_regression(path: Path, n: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.uniform(-2, 2, n)
    df = pd.DataFrame({"x1": x1, "x2": x2, "y": 2 * x1 - 3 * x2 + 1})
    df.to_csv(path, index=False)
    return df


def write_labels(path: Path, n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-3, 3, n), rng.normal(size=n)
    label = np.array(["low", "mid", "high"])[np.digitize(x1, [-1, 1])]
    df = pd.DataFrame({"x1": x1, "x2": x2, "band": label})
    df.to_csv(path, index=False)
    return df


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A regression and a classification model, trained once for the tests that read them."""
    if not (Path(cli.__file__).parent / "persistence.py").exists():
        pytest.skip("zeronn.persistence (model files) is not installed")
    d = tmp_path_factory.mktemp("models")
    write_regression(d / "reg.csv")
    write_labels(d / "cls.csv")
    r = run("train", "reg.csv", "--target", "y", "--hidden", "8", "--epochs", "100", "--lr",
            "0.02", "--batch-size", "8", "-o", "reg.zeronn", "-q", cwd=d)
    assert r.returncode == 0, r.stderr
    r = run("train", "cls.csv", "--target", "band", "--hidden", "16", "--epochs", "60",
            "--lr", "0.02", "--validation-split", "0", "-o", "cls.zeronn", "-q", cwd=d)
    assert r.returncode == 0, r.stderr
    return {"dir": d, "reg": d / "reg.zeronn", "cls": d / "cls.zeronn"}


# -- demo and help ------------------------------------------------------------------------
def test_demo_prints_the_seed_lines_exactly(seed_lines) -> None:
    # The timeout guards against a hang; the run itself takes well under a second.
    r = run("demo", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[:10] == seed_lines
    assert r.stderr == ""
    last = r.stdout.splitlines()[-1]
    assert last.startswith("(") and last.endswith(" s)")
    assert float(last[1:-3]) < 30  # its own report: the seed's 1000 tiny epochs, twice


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    out = io.StringIO()
    with pytest.raises(SystemExit) as exc, _redirect(out):
        cli.main([command, "--help"])
    assert exc.value.code == 0
    text = out.getvalue()
    assert f"usage: zeronn {command}" in text
    assert "example" in text and f"zeronn {command}" in text.split("example")[1]


def test_no_command_prints_help_and_fails() -> None:
    r = run()
    assert r.returncode == 2
    assert "train" in r.stdout and "gradcheck" in r.stdout


class _redirect:
    """contextlib.redirect_stdout, spelled out so the SystemExit check stays inside."""

    def __init__(self, target: io.StringIO) -> None:
        self.target = target

    def __enter__(self) -> None:
        self.saved, sys.stdout = sys.stdout, self.target  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self.saved


# -- the happy paths ----------------------------------------------------------------------
@needs_persistence
def test_regression_train_predict_evaluate(trained: dict[str, Path], tmp_path: Path) -> None:
    d = trained["dir"]
    truth = pd.read_csv(d / "reg.csv")
    r = run("predict", str(trained["reg"]), str(d / "reg.csv"))
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(io.StringIO(r.stdout))
    assert list(pred.columns) == ["y"] and len(pred) == len(truth)
    mse = float(((pred["y"] - truth["y"]) ** 2).mean())
    r2 = 1 - mse / float(truth["y"].var(ddof=0))
    assert r2 > 0.95  # a tiny net, 100 short epochs: it learned the plane

    # -o writes the same CSV to a file and says so in one line (rows, file)
    r = run("predict", str(trained["reg"]), str(d / "reg.csv"), "-o", str(tmp_path / "p.csv"))
    assert r.returncode == 0 and r.stdout.splitlines() == [
        f"predicted 40 rows of {d / 'reg.csv'}: wrote {tmp_path / 'p.csv'}"]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "p.csv"), pred)

    # evaluate reports what the predictions give
    r = run("evaluate", str(trained["reg"]), str(d / "reg.csv"), "--target", "y")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("y "))
    got_mse, got_mae, got_r2 = map(float, row.split()[1:])
    assert got_mse == pytest.approx(mse, rel=1e-4)
    assert got_mae == pytest.approx(float((pred["y"] - truth["y"]).abs().mean()), rel=1e-4)
    assert got_r2 == pytest.approx(r2, abs=1e-4)


@needs_persistence
def test_classifier_keeps_text_labels(trained: dict[str, Path]) -> None:
    d = trained["dir"]
    truth = pd.read_csv(d / "cls.csv")
    r = run("predict", str(trained["cls"]), str(d / "cls.csv"), "--proba")
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(io.StringIO(r.stdout))
    assert list(pred.columns) == ["band", "proba_high", "proba_low", "proba_mid"]
    assert set(pred["band"]) <= {"low", "mid", "high"}
    np.testing.assert_allclose(pred.iloc[:, 1:].sum(axis=1), 1.0, rtol=1e-9)
    accuracy = float((pred["band"] == truth["band"]).mean())
    assert accuracy > 0.8

    r = run("evaluate", str(trained["cls"]), str(d / "cls.csv"), "--target", "band")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    acc_line = next(line for line in lines if line.startswith("accuracy:"))
    assert float(acc_line.split()[1]) == pytest.approx(accuracy, abs=1e-4)
    assert any(line.startswith("log loss:") for line in lines)
    header = lines.index(next(line for line in lines if line.startswith("confusion matrix")))
    assert lines[header + 1].split() == ["high", "low", "mid"]
    counts = np.array([[int(v) for v in line.split()[1:]] for line in lines[header + 2:]])
    assert counts.shape == (3, 3) and counts.sum() == len(truth)
    assert np.trace(counts) == round(accuracy * len(truth))


@needs_persistence
def test_numeric_labels_stay_numbers(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    pd.DataFrame({"x": x, "k": (x > 0).astype(int) * 5 + 1}).to_csv(tmp_path / "d.csv",
                                                                      index=False)
    r = run("train", "d.csv", "--target", "k", "--task", "classification", *FAST,
            "-o", "m.zeronn", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("predict", "m.zeronn", "d.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert set(r.stdout.split()[1:]) <= {"1", "6"}  # ints written back as ints, not 1.0


@needs_persistence
def test_progress_quiet_and_verbose(tmp_path: Path) -> None:
    write_regression(tmp_path / "d.csv")
    r = run("train", "d.csv", "--target", "y", *FAST, "-o", "m.zeronn", "-q", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == ""
    assert len(r.stdout.splitlines()) == 1
    summary = r.stdout
    assert "30 epochs in" in summary and "loss" in summary and "val_loss" in summary
    assert "saved m.zeronn" in summary

    r = run("train", "d.csv", "--target", "y", *FAST, "-o", "m.zeronn", "-v", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    epochs = [line for line in r.stderr.splitlines() if line.startswith("Epoch ")]
    assert len(epochs) == 30
    assert all(k in epochs[0] for k in ("loss:", "val_loss:", "lr:", "grad_norm:", "dead_relu"))
    assert len(r.stdout.splitlines()) == 1 and "30 epochs in" in r.stdout

    r = run("train", "d.csv", "--target", "y", *FAST, "-o", "m.zeronn", "-q", "-v",
            cwd=tmp_path)
    assert_user_error(r, "not allowed with argument")


@needs_persistence
@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX terminal")
def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    write_regression(tmp_path / "d.csv")
    master, slave = pty.openpty()
    # A new pty is 0 columns wide, which tqdm would honour by drawing nothing.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    try:
        r = run("train", "d.csv", "--target", "y", *FAST, "-o", "m.zeronn", cwd=tmp_path,
                stderr=slave, stdout=subprocess.PIPE, capture_output=False)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal is closed once everything is read (Linux)
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    assert r.returncode == 0
    bar = b"".join(chunks).decode(errors="replace")
    assert "30/30" in bar and "epoch" in bar and "val_loss" in bar
    assert "30 epochs in" in r.stdout


@needs_persistence
def test_plot_writes_an_image(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    write_labels(tmp_path / "d.csv")
    r = run("train", "d.csv", "--target", "band", *FAST, "--plot", "fit.png", "-o", "m.zeronn",
            "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Three features: the loss curves alone.
    df = write_regression(tmp_path / "d3.csv")
    df.assign(x3=df["x1"] * 2).to_csv(tmp_path / "d3.csv", index=False)
    r = run("train", "d3.csv", "--target", "y", *FAST, "--plot", "loss.png", "-o", "m3.zeronn",
            "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "d.csv", "d3.csv", "fit.png", "loss.png", "m.zeronn", "m3.zeronn"]


@needs_persistence
def test_early_stopping_and_features(tmp_path: Path) -> None:
    write_regression(tmp_path / "d.csv", n=60)
    r = run("train", "d.csv", "--target", "y", "--features", "x2", "--hidden", "4",
            "--epochs", "400", "--lr", "0.05", "--early-stopping", "3", "-o", "m.zeronn", "-q",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "stopped early" in r.stdout
    r = run("info", "m.zeronn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "features (1): x2" in r.stdout


@needs_persistence
def test_info(trained: dict[str, Path]) -> None:
    r = run("info", str(trained["cls"]))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "classification" in out and "classes (3, str): high, low, mid" in out
    # MLP([2, 16, 3]): 2*16+16 + 16*3+3 parameters
    assert "parameters: 99" in out
    assert "training: 60 epochs" in out


@needs_persistence
def test_train_with_dropout_and_batch_norm_then_info(tmp_path: Path) -> None:
    write_regression(tmp_path / "reg.csv", n=60)
    r = run("train", "reg.csv", "--target", "y", *FAST, "--dropout", "0.25", "--batch-norm",
            "-q", "-o", "m.zeronn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("info", "m.zeronn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if line[:1].isdigit()]
    # Dense(8) -> BatchNorm -> ReLU -> Dropout(0.25) -> Dense(1): 2*8+8 + 2*8 + 8+1
    assert [row[3:] for row in rows] == [["identity", "24"], ["batchnorm", "16"],
                                         ["relu", "0"], ["dropout", "0.25", "0"],
                                         ["identity", "9"]]
    assert "parameters: 49" in r.stdout
    r = run("predict", "m.zeronn", "reg.csv", cwd=tmp_path)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 61  # evaluation mode, no error


@needs_persistence
def test_export_matches_predict(trained: dict[str, Path], tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if not (Path(cli.__file__).parent / "onnx_export.py").exists():
        pytest.skip("zeronn.onnx_export is not installed")
    d = trained["dir"]
    r = run("export", str(trained["reg"]), str(tmp_path / "m.onnx"))
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    assert "inputs (2): x1 (float, NaN if missing), x2 (float, NaN if missing)" in r.stdout
    X = pd.read_csv(d / "reg.csv")[["x1", "x2"]].to_numpy(np.float32)
    assert [i.name for i in sess.get_inputs()] == ["x1", "x2"]  # one input per column
    onnx_pred = sess.run(None, {"x1": X[:, [0]], "x2": X[:, [1]]})[0]
    r = run("predict", str(trained["reg"]), str(d / "reg.csv"))
    pred = pd.read_csv(io.StringIO(r.stdout)).to_numpy()
    np.testing.assert_allclose(onnx_pred.reshape(pred.shape), pred, rtol=1e-4, atol=1e-4)


@needs_persistence
def test_export_of_a_mixed_table_takes_its_raw_columns(tmp_path: Path) -> None:
    """Text, gaps and dates go in as they are; the graph equals `predict` on rows with
    missing cells and a category never seen in training."""
    ort = pytest.importorskip("onnxruntime")
    import zeronn as zn

    rng = np.random.default_rng(4)
    n = 80
    area = rng.uniform(40, 160, n).round(1)
    area[::9] = np.nan
    town = rng.choice(["north", "south", "east"], n)
    sold = [str(np.datetime64("2020-01-01") + int(d)) for d in rng.integers(0, 900, n)]
    price = 1000 + 20 * np.nan_to_num(area, nan=100) + (town == "north") * 500
    pd.DataFrame({"area": area, "town": town, "sold": sold, "price": price}).to_csv(
        tmp_path / "houses.csv", index=False)
    (tmp_path / "new.csv").write_text("area,town,sold\n85,north,2021-06-01\n,west,\n"
                                      "120.5,,2019-12-31\n")
    r = run("train", "houses.csv", "--target", "price", *FAST, "-o", "m.zeronn", "-q",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("export", "m.zeronn", "m.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert ("inputs (3): area (float, NaN if missing), town (string, '' if missing), sold "
            "(double: days since 1970-01-01, NaN if missing)") in r.stdout, r.stdout
    r = run("predict", "m.zeronn", "new.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    pred = pd.read_csv(io.StringIO(r.stdout))["price"].to_numpy()
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"area": np.array([[85], [np.nan], [120.5]], np.float32),
             "town": np.array([["north"], ["west"], [""]], object),
             "sold": np.array([[18779.0], [np.nan], [18261.0]])}  # days since 1970-01-01
    (got,) = sess.run(None, feeds)
    np.testing.assert_allclose(got[:, 0], pred, rtol=1e-5)
    model = zn.load(tmp_path / "m.zeronn")
    (again,) = sess.run(None, model.onnx_inputs(pd.read_csv(tmp_path / "new.csv")))
    np.testing.assert_array_equal(again, got)


def test_gradcheck() -> None:
    r = run("gradcheck")
    assert r.returncode == 0, r.stderr
    worst = next(line for line in r.stdout.splitlines() if line.startswith("passed"))
    assert float(worst.split("error ")[1].split()[0]) < 1e-6
    r = run("gradcheck", "--sizes", "4,6,3", "--activation", "gelu", "--loss",
            "categorical_crossentropy")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "softmax" in r.stdout


# -- bad input: exit code 2, one clean line, no output file -----------------------------------
BAD_FILES = {
    "empty.csv": b"",
    "binary.csv": bytes(range(256)) * 4,
    "header_only.csv": b"x1,x2,y\n",
    "short_row.csv": b"x1,x2,y\n1,2,3\n4,5\n7,8,9\n",
    "long_row.csv": b"x1,x2,y\n1,2,3\n4,5,6,7\n7,8,9\n",
    "all_long.csv": b"x1,y\n1,2,3\n4,5,6\n",
    "text_cell.csv": b"x1,x2,y\n1,2,3\n4,abc,6\n7,8,9\n",
    "empty_cell.csv": b"x1,x2,y\n1,2,3\n4,,6\n7,8,9\n",
    "inf_cell.csv": b"x1,x2,y\n1,2,3\n4,5,6\n7,-inf,9\n",
    "latin1.csv": "x1,x2,y\n1,2,3\n4,5,6\n7,8,caf\u00e9\n".encode("latin-1"),
}


def populate(d: Path) -> Path:
    for name, data in BAD_FILES.items():
        (d / name).write_bytes(data)
    write_regression(d / "good.csv")
    (d / "not_a_model.zeronn").write_text("x1,x2,y\n1,2,3\n")
    (d / "noise.zeronn").write_bytes(np.random.default_rng(0).bytes(500))
    return d


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return populate(tmp_path)


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir()}


TRAIN_ERRORS = [
    (["missing.csv", "--target", "y"], ["missing.csv: no such file"]),
    (["empty.csv", "--target", "y"], ["empty.csv is empty"]),
    (["binary.csv", "--target", "y"], ["binary.csv is a binary file"]),
    (["header_only.csv", "--target", "y"], ["header_only.csv has a header but no data rows"]),
    (["short_row.csv", "--target", "y"], ["line 3 has 2 fields, but the header has 3"]),
    (["long_row.csv", "--target", "y"], ["line 3 has 4 fields, but the header has 3"]),
    (["all_long.csv", "--target", "y"], ["line 2 has 3 fields, but the header has 2"]),
    (["text_cell.csv", "--target", "y"], ["column 'x2'", "'abc'", "row 2"]),
    (["inf_cell.csv", "--target", "y"], ["column 'x2'", "infinite", "row 3"]),
    (["latin1.csv", "--target", "y"], ["not UTF-8"]),
    (["good.csv", "--target", "price"], ["unknown target column 'price'",
                                          "'x1', 'x2', 'y'"]),
    (["good.csv", "--target", "y", "--features", "x1,x9"], ["unknown feature column 'x9'",
                                                            "'x1', 'x2', 'y'"]),
    (["good.csv", "--target", "y", "--epochs", "-5"], ["--epochs", "'-5'"]),
    (["good.csv", "--target", "y", "--epochs", "0"], ["--epochs"]),
    (["good.csv", "--target", "y", "--lr", "nan"], ["--lr", "'nan'"]),
    (["good.csv", "--target", "y", "--lr", "inf"], ["--lr", "'inf'"]),
    (["good.csv", "--target", "y", "--lr", "-1"], ["--lr"]),
    (["good.csv", "--target", "y", "--activation", "swish9"], ["unknown activation 'swish9'",
                                                               "relu"]),
    (["good.csv", "--target", "y", "--hidden", "abc"], ["--hidden", "'abc'"]),
    (["good.csv", "--target", "y", "--hidden", "8,-2"], ["--hidden"]),
    (["good.csv", "--target", "y", "--optimizer", "adamm"], ["unknown optimizer 'adamm'"]),
    (["good.csv", "--target", "y", "--loss", "l7"], ["unknown loss 'l7'"]),
    (["good.csv", "--target", "y", "--validation-split", "1.5"], ["--validation-split"]),
    (["good.csv", "--target", "y", "--batch-size", "zero"], ["--batch-size"]),
    (["good.csv", "--target", "y", "--task", "ranking"], ["--task", "'ranking'"]),
    (["good.csv", "--target", "y", "--dropout", "1"], ["--dropout", "'1'", "[0, 1)"]),
    (["good.csv", "--target", "y", "--dropout", "half"], ["--dropout", "'half'"]),
    (["good.csv", "--target", "y", "--batch-norm", "--batch-size", "1"],
     ["BatchNorm needs at least 2 rows", "batch_size"]),
    (["good.csv", "--target", "y", "--no-such-option"], ["--no-such-option"]),
    (["good.csv"], ["--target"]),
    # The engine's own ValueError, mapped: a learning rate that blows the loss up.
    (["good.csv", "--target", "y", "--optimizer", "sgd", "--lr", "1e30", "--epochs", "5",
      "--no-standardize"], ["learning rate is probably too large"]),
]


@pytest.fixture(scope="module")
def train_error_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple]:
    """Every TRAIN_ERRORS case run at once, each in its own folder (the cores share the work).

    Returns {case index: (result, files before, files after)}.
    """
    def one(i: int) -> tuple:
        d = populate(tmp_path_factory.mktemp(f"train_error_{i}"))
        args = TRAIN_ERRORS[i][0]
        before = _files(d)
        r = run("train", *args, "--epochs" if "--epochs" not in args else "--seed", "2",
                "-o", "model.zeronn", "--plot", "loss.png", cwd=d)
        return r, before, _files(d)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(enumerate(pool.map(one, range(len(TRAIN_ERRORS)))))


@pytest.mark.parametrize("case", range(len(TRAIN_ERRORS)),
                         ids=[" ".join(a) for a, _ in TRAIN_ERRORS])
def test_train_user_errors(train_error_runs: dict[int, tuple], case: int) -> None:
    r, before, after = train_error_runs[case]
    assert_user_error(r, *TRAIN_ERRORS[case][1])
    assert after == before  # no model, no plot, no temporary file


@needs_persistence
def test_failed_train_leaves_an_existing_model_untouched(workdir: Path) -> None:
    (workdir / "model.zeronn").write_bytes(b"the old model")
    r = run("train", "text_cell.csv", "--target", "y", "-o", "model.zeronn", cwd=workdir)
    assert_user_error(r, "'abc'")
    assert (workdir / "model.zeronn").read_bytes() == b"the old model"


def test_output_paths_are_checked_before_any_work(workdir: Path) -> None:
    before = _files(workdir)
    train = ["train", "good.csv", "--target", "y"]
    cases = [
        ([*train, "-o", "no/such/dir/m.zeronn"], "does not exist"),
        ([*train, "-o", "."], "is a folder"),
        ([*train, "-o", "good.csv"], "also an input"),
        ([*train, "-o", "m.zeronn", "--plot", "m.zeronn"], "both name m.zeronn"),
        ([*train, "-o", "m.zeronn", "--plot", "fit.jpeg2"], "cannot write .jpeg2 files"),
        (["predict", "noise.zeronn", "good.csv", "-o", "good.csv"], "also an input"),
    ]
    if importlib.util.find_spec("matplotlib") is None:
        cases = cases[:-1]
    for (_, needle), r in zip(cases, run_all([c for c, _ in cases], workdir)):
        assert_user_error(r, needle)
    assert _files(workdir) == before


@needs_persistence
@pytest.mark.parametrize(("command", "extra", "needles"), [
    ("predict", [], ["not_a_model.zeronn", "not a zeronn model file"]),
    ("evaluate", ["--target", "y"], ["not_a_model.zeronn", "not a zeronn model file"]),
    ("info", None, ["not_a_model.zeronn", "not a zeronn model file"]),
    ("export", None, ["not_a_model.zeronn", "not a zeronn model file"]),
])
def test_a_model_file_that_is_not_one(workdir: Path, command: str, extra: list[str] | None,
                                      needles: list[str]) -> None:
    before = _files(workdir)
    models = ("not_a_model.zeronn", "noise.zeronn", "missing.zeronn", "good.csv")
    commands = []
    for model in models:
        if command == "export":
            args = [model, "out.onnx"]
        elif extra is None:
            args = [model]
        else:
            args = [model, "good.csv", "-o", "out.csv", *extra] if command == "predict" \
                else [model, "good.csv", *extra]
        commands.append([command, *args])
    for model, r in zip(models, run_all(commands, workdir)):
        assert_user_error(r, model)
        if model == "not_a_model.zeronn":
            assert_user_error(r, *needles)
    assert _files(workdir) == before


@needs_persistence
def test_predict_and_evaluate_need_the_models_columns(trained: dict[str, Path],
                                                      workdir: Path) -> None:
    model = str(trained["reg"])
    pd.DataFrame({"x1": [1.0, 2.0], "z": [0.0, 1.0]}).to_csv(workdir / "lacks.csv",
                                                             index=False)
    before = _files(workdir)
    lacks, text, binary, unknown, unseen = run_all([
        ["predict", model, "lacks.csv", "-o", "out.csv"],
        ["predict", model, "text_cell.csv", "-o", "out.csv"],
        ["predict", model, "binary.csv", "-o", "out.csv"],
        ["evaluate", model, "good.csv", "--target", "nope"],
        ["evaluate", str(trained["cls"]), "good.csv", "--target", "y"],
    ], workdir)
    assert_user_error(lacks, "lacks the model's feature column 'x2'", "'x1', 'z'")
    assert_user_error(text, "'abc'", "row 2")
    assert_user_error(binary, "binary")
    assert_user_error(unknown, "unknown target column 'nope'")
    assert_user_error(unseen, "labels the model never saw")
    assert _files(workdir) == before


# -- helpers, in process ------------------------------------------------------------------
def test_internal_errors_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args: object) -> int:
        raise KeyError("surprise")

    monkeypatch.setattr(cli, "_gradcheck", boom)
    monkeypatch.delenv("ZERONN_DEBUG", raising=False)
    assert cli.main(["gradcheck"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("zeronn: error: internal error (KeyError") and err.count("\n") == 1
    monkeypatch.setenv("ZERONN_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["gradcheck"])


def test_long_messages_are_cut_to_one_line() -> None:
    text = cli._one_line("a\nb " + "x" * 5000)
    assert "\n" not in text and len(text) <= cli.MAX_ERROR_CHARS and text.startswith("a b")


@needs_persistence
@pytest.mark.parametrize("epochs_done", [3, 0])
def test_ctrl_c_keeps_what_was_learned(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       epochs_done: int) -> None:
    import warnings

    from zeronn.tabular import TabularModel
    from zeronn.training import History, TrainingInterrupted

    original = TabularModel.fit

    def interrupted_fit(self, *args, **kwargs):  # as fit returns after Ctrl-C
        hist = original(self, *args, **kwargs)
        cut = History({k: v[:epochs_done] for k, v in hist.items()})
        cut.interrupted = True
        warnings.warn("training interrupted at epoch 4", TrainingInterrupted, stacklevel=2)
        return cut

    monkeypatch.setattr(TabularModel, "fit", interrupted_fit)
    write_regression(tmp_path / "d.csv")
    model = tmp_path / "m.zeronn"
    code = cli.main(["train", str(tmp_path / "d.csv"), "--target", "y", *FAST, "-o", str(model)])
    out, err = capsys.readouterr()
    assert code == 130  # the shell's code for Ctrl-C: `zeronn train ... && ...` stops
    if epochs_done:
        assert "3 epochs in" in out and "interrupted" in out and model.exists()
        assert "warning" not in err
    else:
        assert out == "" and "nothing saved" in err and not model.exists()


def test_plot_labels_use_the_datas_names() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], label="class 0")
    a.plot([1, 0], label="P(class 2)")
    a.legend()
    b.set_ylabel("P(y=1)")
    cli._relabel(fig, "species", ["setosa", "versicolor", "virginica"])
    assert [t.get_text() for t in a.get_legend().get_texts()] == ["setosa", "P(virginica)"]
    assert b.get_ylabel() == "P(y=1)"  # three classes: no "class 1 vs rest" to name
    cli._relabel(fig, "ok", [False, True])
    assert b.get_ylabel() == "P(ok = True)"
    b.set_ylabel("prediction")
    cli._relabel(fig, "price", [])
    assert b.get_ylabel() == "predicted price"
    plt.close(fig)


# -- real tables: mixed columns, missing values, dates (issue 13) ----------------------
def _titanic(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["male", "female"], n)
    age = rng.normal(30, 12, n).round()
    age[rng.random(n) < 0.2] = np.nan
    emb = rng.choice(["S", "C", "Q"], n).astype(object)
    emb[::17] = None
    survived = ((sex == "female") ^ (rng.random(n) < 0.1)).astype(int)
    return pd.DataFrame({"PassengerId": np.arange(1, n + 1), "survived": survived,
                         "name": [f"Person {i}, Mr. X" for i in range(n)], "sex": sex,
                         "age": age, "fare": rng.lognormal(3, 1, n).round(2),
                         "embarked": emb})


def _houses(n: int = 120, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    hood = rng.choice(["north", "south", "east"], n)
    area = rng.uniform(40, 200, n).round()
    days = rng.integers(0, 1000, n)
    sold = (pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    price = 1000 * area + 20000 * (hood == "north") + 30 * days
    area_seen = area.copy()
    area_seen[::9] = np.nan
    return pd.DataFrame({"neighbourhood": hood, "area": area_seen, "sold": sold,
                         "price": price})


def test_mixed_tables_train_and_predict_with_only_the_target(tmp_path: Path) -> None:
    _titanic().to_csv(tmp_path / "titanic.csv", index=False)
    _houses().to_csv(tmp_path / "houses.csv", index=False)
    fast = ["--epochs", "20"]
    t, h = run_all([["train", "titanic.csv", "--target", "survived", "-o", "t.zeronn", *fast],
                    ["train", "houses.csv", "--target", "price", "-o", "h.zeronn", *fast]],
                   tmp_path)
    assert t.returncode == 0, t.stderr
    assert "classification of survived (2 classes) from 4 feature(s)" in t.stdout
    assert "kept epoch" in t.stdout
    assert "'PassengerId'" in t.stderr and "(an ID)" in t.stderr
    assert "'name' is free text" in t.stderr and "--features" in t.stderr
    assert "2 distinct whole numbers" in t.stderr and "--task regression" in t.stderr
    assert h.returncode == 0, h.stderr
    assert "regression of price" in h.stdout and "from 3 feature(s)" in h.stdout
    # New rows with empty cells and an unseen neighbourhood: every row gets a prediction.
    new = _houses(6, seed=5)
    new.loc[0, "neighbourhood"] = "harbour"
    new.loc[1, ["area", "sold"]] = [np.nan, ""]
    new.to_csv(tmp_path / "new.csv", index=False)
    p, i, e = run_all([["predict", "h.zeronn", "new.csv"], ["info", "h.zeronn"],
                       ["evaluate", "t.zeronn", "titanic.csv"]], tmp_path)
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip().splitlines()) == 7
    assert "taken as 'other'" in p.stderr and "'neighbourhood' (1)" in p.stderr
    assert i.returncode == 0 and "sold (date)" in i.stdout and "kept epoch" in i.stdout
    assert "neighbourhood (category)" in i.stdout
    assert e.returncode == 0 and "accuracy" in e.stdout


def test_column_and_target_options(tmp_path: Path) -> None:
    df = _titanic()
    df.loc[[3, 8], "survived"] = np.nan
    df.to_csv(tmp_path / "t.csv", index=False)
    fast = ["--epochs", "5"]
    r = run_all([
        ["train", "t.csv", "--target", "survived", "--exclude", "sex,age", "-o", "a.zeronn",
         *fast],
        ["train", "t.csv", "--target", "survived", "--features", "PassengerId,name,sex",
         "--max-categories", "3", "-o", "b.zeronn", *fast],
        ["train", "t.csv", "--target", "survived", "--task", "regression", "-o", "c.zeronn",
         *fast],
        ["train", "t.csv", "--target", "survived", "--class-weight", "balanced",
         "-o", "d.zeronn", *fast],
        ["train", "t.csv", "--target", "fare", "--class-weight", "balanced", "-o", "e.zeronn",
         *fast],
        ["train", "t.csv", "--target", "survived", "--max-categories", "0", "-o", "f.zeronn"],
        ["train", "t.csv", "--target", "survived", "--exclude", "nope", "-o", "g.zeronn"],
    ], tmp_path)
    assert r[0].returncode == 0 and "from 2 feature(s)" in r[0].stdout, r[0].stderr
    assert "2 of 120 rows have no target value" in r[0].stderr
    assert r[1].returncode == 0 and "from 3 feature(s)" in r[1].stdout, r[1].stderr
    info = run("info", "b.zeronn", cwd=tmp_path).stdout
    assert "PassengerId (numeric), name (category), sex (category)" in info
    assert r[2].returncode == 0 and "regression of survived" in r[2].stdout
    assert r[3].returncode == 0 and "classification" in r[3].stdout, r[3].stderr
    assert_user_error(r[4], "class_weight is for classification")
    assert_user_error(r[5], "--max-categories")
    assert_user_error(r[6], "unknown excluded column 'nope'")
    for name in "efg":
        assert not (tmp_path / f"{name}.zeronn").exists()


# -- files as people have them ------------------------------------------------------------------
def _variants(d: Path, df: pd.DataFrame) -> dict[str, list[str]]:
    """The same table written as people have it: {file name: extra options to read it}."""
    eu = df.to_csv(sep=";", decimal=",", index=False)
    (d / "eu.csv").write_text(eu, encoding="utf-8-sig")  # an Excel export: BOM, ';', 1,5
    (d / "cp1252.csv").write_bytes(df.assign(note="café").to_csv(sep=";", decimal=",",
                                                                 index=False).encode("cp1252"))
    df.to_csv(d / "tabs.tsv", sep="\t", index=False)
    df.to_csv(d / "pipes.csv.gz", sep="|", index=False)
    df.to_csv(d / "plain.csv.bz2", index=False)
    df.to_csv(d / "plain.csv.xz", index=False)
    df.to_csv(d / "plain.csv.zip", index=False)
    df.rename(columns={"x1": " x1 "}).to_csv(d / "spaces.csv", index=False)
    (d / "tab_comma.txt").write_text(df.to_csv(sep="\t", decimal=",", index=False))
    out = {"eu.csv": [], "cp1252.csv": ["--encoding", "cp1252"], "tabs.tsv": [],
           "pipes.csv.gz": [], "plain.csv.bz2": [], "plain.csv.xz": [], "plain.csv.zip": [],
           "spaces.csv": [], "tab_comma.txt": ["--sep", "tab", "--decimal", ","]}
    if importlib.util.find_spec("pyarrow") is not None:
        df.to_parquet(d / "table.parquet", index=False)
        out["table.parquet"] = []
    return out


@needs_persistence
def test_predict_reads_every_dialect_alike(trained: dict[str, Path], tmp_path: Path) -> None:
    df = write_regression(tmp_path / "plain.csv", n=30, seed=3)
    variants = _variants(tmp_path, df)
    model = str(trained["reg"])
    runs = run_all([["predict", model, "plain.csv"]]
                   + [["predict", model, name, *extra] for name, extra in variants.items()],
                   tmp_path)
    assert runs[0].returncode == 0, runs[0].stderr
    for name, r in zip(variants, runs[1:]):
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout == runs[0].stdout, name


@needs_persistence
def test_train_on_an_excel_export(tmp_path: Path) -> None:
    """The issue's file: ';' separated with decimal commas trains without an option, and
    the dialect is kept in the model file (info shows it)."""
    df = write_regression(tmp_path / "plain.csv")
    (tmp_path / "eu.csv").write_text(df.to_csv(sep=";", decimal=",", index=False))
    r = run("train", "eu.csv", "--target", "y", *FAST, "-o", "m.zeronn", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "from 2 feature(s)" in r.stdout
    from zeronn.persistence import load

    assert load(tmp_path / "m.zeronn").training["data_dialect"] == {
        "format": "csv", "sep": ";", "decimal": ",", "encoding": "utf-8", "compression": None}
    r = run("info", "m.zeronn", cwd=tmp_path)
    assert "read as: csv, separator ';', decimal ','" in r.stdout, r.stdout


def test_file_format_errors(workdir: Path) -> None:
    (workdir / "dupes.csv").write_text("x1,x2, x1,y,x2\n1,2,3,4,5\n")
    (workdir / "cp1252.csv").write_bytes("x1;x2;y\n1,5;2;caf\xe9\n".encode("cp1252"))
    (workdir / "bad.csv.gz").write_bytes(b"plain text, not gzip")
    cases = [
        (["dupes.csv"], ["2 problems in dupes.csv", "'x1' appears 2 times (columns 1, 3)",
                         "'x2' appears 2 times (columns 2, 5)"]),
        (["cp1252.csv"], ["cp1252.csv is not UTF-8", "--encoding"]),
        (["good.csv", "--encoding", "klingon"], ["unknown encoding 'klingon'"]),
        (["good.csv", "--sep", "ab"], ["separator", "'ab'"]),
        (["good.csv", "--decimal", ";"], ["--decimal", "';'"]),
        (["good.csv", "--decimal", ","], ["decimal mark and the separator are both ','"]),
        (["bad.csv.gz"], ["bad.csv.gz is not a valid gzip file"]),
    ]
    before = _files(workdir)
    runs = run_all([["train", *args, "--target", "y", "-o", "m.zeronn"] for args, _ in cases],
                   workdir)
    for (_, needles), r in zip(cases, runs):
        assert_user_error(r, *needles)
    assert _files(workdir) == before


@needs_persistence
def test_predict_ids_and_summary(trained: dict[str, Path], tmp_path: Path) -> None:
    df = write_regression(tmp_path / "plain.csv", n=12, seed=4)
    df.insert(0, "id", [f"{i:03d}" for i in range(12)])
    df["city"] = ["Köln", "Bonn"] * 6
    df.to_csv(tmp_path / "ids.csv", index=False)
    model = str(trained["reg"])
    ok, stdout, unknown, clash, plain = run_all([
        ["predict", model, "ids.csv", "--id", "id", "--id", "city", "-o", "out.csv"],
        ["predict", model, "ids.csv", "--id", "city,id"],
        ["predict", model, "ids.csv", "--id", "nope", "-o", "bad.csv"],
        ["predict", model, "ids.csv", "--id", "y", "-o", "bad.csv"],
        ["predict", model, "plain.csv"],
    ], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "predicted 12 rows of ids.csv: wrote out.csv\n"
    out = pd.read_csv(tmp_path / "out.csv", dtype={"id": str})
    assert out.columns.tolist() == ["id", "city", "y"]
    assert out["id"].tolist() == [f"{i:03d}" for i in range(12)]  # as written: 007 stays
    assert out["city"].tolist() == ["Köln", "Bonn"] * 6
    assert out["y"].tolist() == pd.read_csv(io.StringIO(plain.stdout))["y"].tolist()
    assert stdout.returncode == 0 and stdout.stdout.splitlines()[0] == "city,id,y"
    assert_user_error(unknown, "--id nope", "no such column", "'id', 'x1'")
    assert_user_error(clash, "--id y", "already has a column")
    assert not (tmp_path / "bad.csv").exists()


@needs_persistence
def test_predict_streams_in_chunks(trained: dict[str, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """10,000 rows in chunks of 1,000: the reader hands them over chunk by chunk, and the
    output equals predicting in one go, byte for byte."""
    from zeronn.tabular import io as tio

    rng = np.random.default_rng(5)
    n = 10_000
    pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.uniform(-2, 2, n),
                  "other": rng.normal(size=n)}).to_csv(tmp_path / "big.csv", index=False)
    seen: list[tuple[int, list[str]]] = []
    chunks = tio.Table.chunks

    def spy(self, rows, columns=None, str_columns=()):
        for df in chunks(self, rows, columns, str_columns):
            seen.append((len(df), list(df.columns)))
            yield df

    monkeypatch.setattr(tio.Table, "chunks", spy)
    model = str(trained["reg"])
    assert cli.main(["predict", model, str(tmp_path / "big.csv"), "--chunk-rows", "1000",
                     "-o", str(tmp_path / "chunked.csv")]) == 0
    assert seen == [(1000, ["x1", "x2"])] * 10  # only the model's columns are read
    seen.clear()
    assert cli.main(["predict", model, str(tmp_path / "big.csv"), "--chunk-rows", "100000",
                     "-o", str(tmp_path / "whole.csv")]) == 0
    assert seen == [(n, ["x1", "x2"])]
    assert (tmp_path / "chunked.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert len(pd.read_csv(tmp_path / "whole.csv")) == n


@needs_persistence
def test_a_bad_cell_in_a_later_chunk_names_its_row(trained: dict[str, Path],
                                                    tmp_path: Path) -> None:
    rows = ["x1,x2"] + ["1,2"] * 25 + ["1,abc"] + ["1,2"] * 5
    (tmp_path / "late.csv").write_text("\n".join(rows) + "\n")
    r = run("predict", str(trained["reg"]), "late.csv", "--chunk-rows", "10", "-o", "p.csv",
            cwd=tmp_path)
    assert_user_error(r, "'abc'", "row 26")
    assert not (tmp_path / "p.csv").exists()  # no half-written output


def test_a_tiny_table_with_an_empty_cell_trains_without_validation(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_bytes(BAD_FILES["empty_cell.csv"])
    r = run("train", "e.csv", "--target", "y", "--epochs", "3", "-o", "m.zeronn", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "too few to hold out" in r.stderr


# -- playground -------------------------------------------------------------------------
def test_playground_without_its_extra_says_how_to_install_it(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "starlette", None)  # `import starlette` now fails
    assert cli.main(["playground", "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err == 'zeronn: error: the playground needs the extra: pip install ' \
                  '"zeronn[playground]"\n'


@pytest.mark.parametrize(("args", "needle"), [
    (["--port", "70000"], "--port must be a whole number from 0 to 65535"),
    (["--port", "-1"], "--port"),
    (["--host", "0.0.0.0"], "unrecognized arguments: --host"),
])
def test_playground_option_errors(args: list[str], needle: str) -> None:
    pytest.importorskip("starlette")
    assert_user_error(run("playground", "--no-browser", *args), needle)


def test_playground_on_a_busy_port_is_a_user_error(capsys) -> None:
    pytest.importorskip("uvicorn")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["playground", "--no-browser", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"zeronn: error: cannot listen on 127.0.0.1:{port}")
    assert "choose another --port" in err


def test_playground_serves_on_localhost_and_stops_on_ctrl_c() -> None:
    pytest.importorskip("uvicorn")
    import re
    import signal
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "zeronn.cli", "playground", "--no-browser",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with ThreadPoolExecutor(1) as pool:
            line = pool.submit(proc.stdout.readline).result(timeout=120)  # type: ignore[union-attr]
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = match.group(0)
        with urllib.request.urlopen(url, timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        with urllib.request.urlopen(url + "static/index.html", timeout=30) as page:
            assert page.status == 200
        # Bound to 127.0.0.1 alone: another address of this machine (even another
        # loopback one) finds nothing listening on that port.
        import socket

        with socket.socket() as other, pytest.raises(OSError):
            other.settimeout(10)
            other.connect(("127.0.0.2", int(match.group(1))))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped" in err
