"""The tutorial notebook executes from top to bottom and shows what its text promises."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook test needs the test extra")
nbclient = pytest.importorskip("nbclient", reason="the notebook test needs the test extra")
pytest.importorskip("ipykernel", reason="the notebook test needs the test extra")
pytest.importorskip("matplotlib", reason="the notebook draws with the plot extra")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "01_seed_walkthrough.ipynb"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def executed() -> tuple[Any, float]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb, time.perf_counter() - t0


def _cell(nb: Any, tag: str) -> Any:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}"
    return cells[0]


def _stdout(cell: Any) -> str:
    return "".join(o.text for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def _pngs(cell: Any) -> list[bytes]:
    return [base64.b64decode(o.data["image/png"]) for o in cell.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]


def test_first_code_cell_prints_the_seeds_ten_lines_exactly(executed, seed_lines) -> None:
    nb, _ = executed
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first is _cell(nb, "seed-run")
    assert _stdout(first) == "\n".join(seed_lines) + "\n"


def test_engine_run_matches_the_seed(executed, seed_lines) -> None:
    nb, _ = executed
    out = _stdout(_cell(nb, "engine-run"))
    assert "\n".join(seed_lines) in out
    worst = float(re.search(r"over 1000 epochs: (\S+)", out).group(1))
    assert worst < 1e-10


def test_trace_cells_confirm_the_seeds_values(executed) -> None:
    nb, _ = executed
    trace_out = _stdout(_cell(nb, "trace"))
    for name in ("z1", "a1", "z2", "error_output", "dW2", "db2", "error_hidden", "dW1", "db1"):
        assert re.search(rf"^\s+{name}\s", trace_out, re.MULTILINE), name
    checks = _stdout(_cell(nb, "trace-vs-seed"))
    assert len(re.findall(r":\s+True$", checks, re.MULTILINE)) == 10
    assert "False" not in checks


def test_gradient_check_passes(executed) -> None:
    nb, _ = executed
    out = _stdout(_cell(nb, "gradcheck"))
    assert float(re.search(r"worst relative error: (\S+)", out).group(1)) < 1e-6
    assert "passed: True" in out


def test_diagnostics_are_shown(executed) -> None:
    nb, _ = executed
    out = _stdout(_cell(nb, "diagnostics"))
    hist_norm, trace_norm = map(float, re.search(
        r"first epoch: grad_norm (\S+)\s+from trace: (\S+)", out).groups())
    assert hist_norm == pytest.approx(trace_norm, rel=1e-12)
    assert out.count("dead_relu: 20.0%") == 3  # one of five hidden units killed on purpose


@pytest.mark.parametrize("tag", ["plot-history", "plot-fit", "deeper"])
def test_plots_are_rendered_once_as_png(executed, tag: str) -> None:
    nb, _ = executed
    pngs = _pngs(_cell(nb, tag))
    assert len(pngs) == 1
    assert pngs[0].startswith(PNG) and len(pngs[0]) > 5000


def test_no_errors(executed) -> None:
    nb, _ = executed
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", cell.source
            assert not (o.output_type == "stream" and o.name == "stderr"
                        and "Error" in o.text and "Warning" not in o.text), o.text


def test_headings_are_japanese_and_english() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    assert len(headings) >= 9
    for h in headings:
        ja, _, en = h.partition(" / ")
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja), h
        assert re.search(r"[A-Za-z]{3}", en), h


def test_stored_outputs_are_current(seed_lines) -> None:
    # Readers see the saved notebook without running it: it must be saved executed.
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert _stdout(code[0]) == "\n".join(seed_lines) + "\n"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_readme_ja_code_runs_and_prints_what_it_says(
    tmp_path, monkeypatch, capsys, seed_lines
) -> None:
    root = NOTEBOOK.parents[1]
    blocks = _python_blocks((root / "README.ja.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)  # the plotting block saves PNG files
    ns: dict[str, Any] = {}
    for block in blocks:
        exec(compile(block, "README.ja.md", "exec"), ns)
    out = capsys.readouterr().out
    assert "\n".join(seed_lines) in out
    assert "[[0. 0. 3.]] [[0 0 1]]" in out  # the seed's relu, relu_deriv
    assert "False" not in out and out.count("True") == 4
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG)
    assert (tmp_path / "fit.png").read_bytes().startswith(PNG)


def test_readme_learning_section_code_runs(capsys) -> None:
    import zeronn as zn

    text = (NOTEBOOK.parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Learning from it", 1)[1].split("\n## ", 1)[0]
    (block,) = _python_blocks(section)
    ns: dict[str, Any] = {"zn": zn}
    exec(compile(block, "README.md", "exec"), ns)
    listed = re.search(r"list\(t\)\s+# (\[.*\])", block).group(1)
    assert str(list(ns["t"])) == listed
    assert "error_hidden  (100, 5)      (error_output·W2.T) * relu'(z1)" in capsys.readouterr().out


def test_dropout_example_cures_the_overfit_it_shows() -> None:
    pytest.importorskip("sklearn", reason="the dropout example loads scikit-learn's diabetes data")
    root = NOTEBOOK.parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    # 80 of the 200 epochs: the plain network has long passed its best validation loss.
    run = subprocess.run([sys.executable, str(root / "examples" / "layers_dropout.py"),
                          "--epochs", "80"], capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    rows = {}
    for line in run.stdout.splitlines()[2:]:
        name, numbers = re.match(r"(.+?)\s{2,}(\S.*)", line).groups()
        loss, val, best, epoch, r2 = map(float, re.findall(r"-?\d+\.?\d*", numbers))
        rows[name] = {"loss": loss, "val": val, "best": best, "epoch": epoch, "r2": r2}
    assert list(rows) == ["plain", "Dropout(0.5)", "BatchNorm", "BatchNorm + Dropout(0.5)"]
    plain, dropout = rows["plain"], rows["Dropout(0.5)"]
    # The overfit: training loss near 0 while the validation loss climbed from its best.
    assert plain["loss"] < 0.1 and plain["val"] > 1.3 * plain["best"] and plain["epoch"] < 40
    # Dropout: a higher training loss, a lower validation loss, a better test R².
    assert dropout["loss"] > plain["loss"] and dropout["val"] < plain["val"]
    assert dropout["r2"] > plain["r2"] + 0.1
    assert rows["BatchNorm + Dropout(0.5)"]["val"] < plain["val"]


def _masked(line: str) -> str:
    """A line with its numbers (and timings) masked: what must not change is the words."""
    return re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", line)


def test_readme_command_line_example_prints_what_it_shows(tmp_path) -> None:
    """The unprepared table of the README's command-line section (README.ja.md shows the
    same run) goes through train, predict and export printing the lines shown (numbers
    masked: timings vary)."""
    pytest.importorskip("pandas", reason="the command line reads tables with the data extra")
    pytest.importorskip("onnx", reason="the example exports with the onnx extra")
    root = NOTEBOOK.parents[1]
    text = (root / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```\n(.*?)```", section, re.DOTALL)
                 if b.startswith("$ cd examples"))
    assert block in (root / "README.ja.md").read_text(encoding="utf-8")  # the same run
    steps = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block, re.MULTILINE)
    assert [cmd.split()[0] for cmd, _ in steps] == ["cd", "zeronn", "cat", "zeronn", "zeronn"]
    for name in ("houses.csv", "new_houses.csv"):
        (tmp_path / name).write_bytes((root / "examples" / name).read_bytes())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    for cmd, shown in steps[1:]:
        args = cmd.split()
        if args[0] == "cat":
            assert (tmp_path / args[1]).read_text() == shown
            continue
        run = subprocess.run([sys.executable, "-m", "zeronn.cli", *args[1:]], cwd=tmp_path,
                             capture_output=True, text=True, env=env, timeout=120)
        assert run.returncode == 0, run.stderr
        # warnings (stderr) and results (stdout) interleave in a terminal: compare as sets
        printed = run.stderr.splitlines() + run.stdout.splitlines()
        assert sorted(map(_masked, printed)) == sorted(map(_masked, shown.splitlines())), cmd


CONV_NOTEBOOK = NOTEBOOK.parent / "02_convolution.ipynb"


@pytest.fixture(scope="module")
def executed_conv() -> tuple[Any, float]:
    pytest.importorskip("sklearn", reason="the notebook trains on scikit-learn's digits")
    nb = nbformat.read(CONV_NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(CONV_NOTEBOOK.parent)}})
    t0 = time.perf_counter()
    client.execute()
    return nb, time.perf_counter() - t0


def test_conv_notebook_im2col_and_the_convolution_by_hand(executed_conv) -> None:
    nb, _ = executed_conv
    out = _stdout(_cell(nb, "im2col"))
    assert "col (4, 9)" in out and "[ 5.  6.  7.  9. 10. 11. 13. 14. 15.]]" in out
    assert "[1. 2. 2. 1.]]" in out  # col2im: a corner pixel is read by one window
    by_hand = _stdout(_cell(nb, "by-hand"))
    assert "col · W.T + b equals the layer: True" in by_hand
    assert "the loops equal the layer: True" in by_hand
    pooling = _stdout(_cell(nb, "pooling"))
    assert "by hand: [[5.0, 7.0], [13.0, 15.0]]" in pooling
    assert " [0. 1. 0. 1.]\n [0. 0. 0. 0.]\n [0. 1. 0. 1.]]" in pooling


def test_conv_notebook_learns_the_digits_and_draws_them(executed_conv) -> None:
    nb, _ = executed_conv
    out = _stdout(_cell(nb, "train"))
    assert float(re.search(r"test accuracy: (\S+)", out).group(1)) >= 0.97
    for tag in ("filters", "mistakes"):
        pngs = _pngs(_cell(nb, tag))
        assert len(pngs) == 1 and pngs[0].startswith(PNG) and len(pngs[0]) > 3000, tag
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", cell.source


def test_conv_notebook_headings_and_stored_outputs() -> None:
    nb = nbformat.read(CONV_NOTEBOOK, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    assert len(headings) >= 7
    for h in headings:
        ja, _, en = h.partition(" / ")
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja), h
        assert re.search(r"[A-Za-z]{3}", en), h
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert "the loops equal the layer: True" in _stdout(_cell(nb, "by-hand"))


# The sequence and attention notebooks: each cell gets at most a minute (they run in
# about 15 s each); the text slice and the short runs keep them so. Their kernels use one
# BLAS thread: their matrices are small, and on a busy machine threads that wait for each
# other made a 10-second run take minutes.
SEQ_NOTEBOOK = NOTEBOOK.parent / "03_sequences.ipynb"
ATT_NOTEBOOK = NOTEBOOK.parent / "04_attention.ipynb"


def _execute(path: Path) -> tuple[Any, float]:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parent)}})
    one_thread = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                         "MKL_NUM_THREADS")}
    t0 = time.perf_counter()
    client.execute(env={**os.environ, **one_thread})   # the kernel's environment
    return nb, time.perf_counter() - t0


def _number(cell_out: str, pattern: str) -> float:
    match = re.search(pattern, cell_out)
    assert match, f"{pattern!r} not in {cell_out!r}"
    return float(match.group(1))


def _one_png(nb: Any, tag: str) -> None:
    pngs = _pngs(_cell(nb, tag))
    assert len(pngs) == 1 and pngs[0].startswith(PNG) and len(pngs[0]) > 5000, tag


def _no_errors(nb: Any) -> None:
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            assert o.output_type != "error", cell.source
            assert not (o.output_type == "stream" and o.name == "stderr"), o.text


def _headings_and_stored_outputs(path: Path, minimum: int) -> Any:
    nb = nbformat.read(path, as_version=4)
    headings = [line for c in nb.cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    assert len(headings) >= minimum
    for h in headings:
        ja, _, en = h.partition(" / ")
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", ja), h
        assert re.search(r"[A-Za-z]{3}", en), h
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)  # saved executed, as 01 and 02
    assert all(c.metadata.get("tags") for c in code)
    return nb


@pytest.fixture(scope="module")
def executed_seq() -> tuple[Any, float]:
    return _execute(SEQ_NOTEBOOK)


def test_seq_notebook_rnn_and_bptt_by_hand_equal_zeronn(executed_seq) -> None:
    nb, _ = executed_seq
    forward = _stdout(_cell(nb, "rnn-forward"))
    assert len(re.findall(r"^h[123] = tanh\(x[123]·Wx \+ h[012]·Wh \+ b\) = \[", forward,
                          re.MULTILINE)) == 3
    assert _number(forward, r"max difference \(h, y_pred, loss\): (\S+)") < 1e-12
    bptt = _stdout(_cell(nb, "bptt"))
    assert [int(s) for s in re.findall(r"^step (\d): dL/dh", bptt, re.MULTILINE)] == [3, 2, 1]
    for name in ("dweight_ih", "dweight_hh", "dbias_ih", "dbias_hh", "dW", "db", "dh (trace)"):
        assert re.search(rf"^{re.escape(name)}\s", bptt, re.MULTILINE), name
    assert _number(bptt, r"max difference: (\S+)") < 1e-12


def test_seq_notebook_gradients_vanish_explode_and_clipping_helps(executed_seq) -> None:
    nb, _ = executed_seq
    norms = _stdout(_cell(nb, "grad-norms"))
    last, first = {}, {}
    for scale, at_last, at_first in re.findall(
            r"scale (\S+): \|dL/dh_50\| = (\S+), \|dL/dh_1\| = (\S+)", norms):
        last[scale], first[scale] = float(at_last), float(at_first)
    assert first["0.5"] < 1e-6 * last["0.5"]   # vanished over 49 steps
    assert first["1.5"] > 10 * last["1.5"]     # exploded
    _one_png(nb, "grad-norms")
    clip = _stdout(_cell(nb, "clipping"))
    plain_last = _number(clip, r"without clipping: loss first \S+, last (\S+),")
    clip_first = _number(clip, r"with clip_grad_norm=1.0: loss first (\S+),")
    clip_last = _number(clip, r"with clip_grad_norm=1.0: loss first \S+, last (\S+),")
    assert clip_last < 0.5 * clip_first and clip_last < plain_last
    _one_png(nb, "clipping")


def test_seq_notebook_lstm_learns_the_switch_and_draws_its_gates(executed_seq) -> None:
    nb, _ = executed_seq
    out = _stdout(_cell(nb, "lstm-train"))
    first = _number(out, r"loss: first (\S+),")
    assert _number(out, r"loss: first \S+, last (\S+)") < 0.1 * first
    assert _number(out, r"accuracy over every step: (\S+)") >= 0.99
    _one_png(nb, "lstm-gates")
    gates = _stdout(_cell(nb, "lstm-gates"))
    target = re.search(r"target:\s+([01]+)", gates).group(1)
    assert re.search(r"prediction:\s+([01]+)", gates).group(1) == target


def test_seq_notebook_char_model_learns_and_samples(executed_seq) -> None:
    nb, _ = executed_seq
    assert "tiny Shakespeare: 200,000 of its characters" in _stdout(_cell(nb, "char-data"))
    out = _stdout(_cell(nb, "char-train"))
    assert _number(out, r"training loss: first \S+, last (\S+)") < _number(
        out, r"training loss: first (\S+),")
    before = _number(out, r"validation loss: before (\S+),")
    assert _number(out, r"validation loss: before \S+, after (\S+)") < before - 1.0
    _one_png(nb, "char-train")
    before_text = _stdout(_cell(nb, "char-before")).split("--- generated before training ---\n")[1]
    after_text = _stdout(_cell(nb, "char-after")).split("(temperature 0.8) ---\n")[1]
    assert before_text.startswith("ROMEO:") and after_text.startswith("ROMEO:")
    assert len(after_text) > 300 and after_text[:200] != before_text[:200]
    _no_errors(nb)


def test_seq_notebook_headings_and_stored_outputs() -> None:
    nb = _headings_and_stored_outputs(SEQ_NOTEBOOK, 6)
    assert _number(_stdout(_cell(nb, "bptt")), r"max difference: (\S+)") < 1e-12


@pytest.fixture(scope="module")
def executed_att() -> tuple[Any, float]:
    return _execute(ATT_NOTEBOOK)


def test_att_notebook_attention_by_hand_equals_the_layer(executed_att) -> None:
    nb, _ = executed_att
    out = _stdout(_cell(nb, "attention-by-hand"))
    assert _number(out, r"max difference \(output\): (\S+)") < 1e-12
    assert _number(out, r"max difference \(attention weights\): (\S+)") < 1e-12
    assert out.count("-inf") == 2 * 10 // 2  # head 1's scores: the 10 future entries
    _one_png(nb, "mask")
    assert "[[1 0 0 0 0]\n [1 1 0 0 0]" in _stdout(_cell(nb, "mask"))


def test_att_notebook_gpt_learns_and_shows_its_attention(executed_att) -> None:
    nb, _ = executed_att
    out = _stdout(_cell(nb, "gpt-train"))
    assert _number(out, r"training loss: first \S+, last (\S+)") < _number(
        out, r"training loss: first (\S+),") - 1.0
    before = _number(out, r"validation loss: before (\S+),")
    assert _number(out, r"validation loss: before \S+, after (\S+)") < before - 1.0
    assert "1.88" in _cell(nb, "plot-loss").source  # the full run's line
    _one_png(nb, "plot-loss")
    _one_png(nb, "attention-maps")
    assert "2 attention layers x 4 heads" in _stdout(_cell(nb, "attention-maps"))
    before_text = _stdout(_cell(nb, "sample-before")).split("before training ---\n")[1]
    after_text = _stdout(_cell(nb, "sample-after")).split("after training ---\n")[1]
    assert before_text.startswith("ROMEO:") and after_text.startswith("ROMEO:")
    assert len(after_text) > 300 and after_text[:200] != before_text[:200]
    _no_errors(nb)


def test_att_notebook_headings_and_stored_outputs() -> None:
    nb = _headings_and_stored_outputs(ATT_NOTEBOOK, 6)
    assert "gpt_shakespeare.py" in "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert _number(_stdout(_cell(nb, "attention-by-hand")),
                   r"max difference \(output\): (\S+)") < 1e-12


def _gpt_example() -> Any:
    import importlib.util

    path = NOTEBOOK.parent / "gpt_shakespeare.py"
    spec = importlib.util.spec_from_file_location("gpt_shakespeare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_GPT = ["--iters", "8", "--warmup", "2", "--eval-interval", "4", "--eval-iters", "2",
            "--final-eval-iters", "2", "--block-size", "16", "--batch-size", "4",
            "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--samples", "1",
            "--sample-length", "20"]


def test_the_gpt_example_runs_a_short_run_and_saves(tmp_path, capsys) -> None:
    """examples/gpt_shakespeare.py, nanoGPT's run, in miniature on a text of our own."""
    text = tmp_path / "verse.txt"
    text.write_text("Shall I compare thee to a summer's day?\n" * 60, encoding="utf-8")
    model = tmp_path / "gpt.zeronn"
    assert _gpt_example().main(["--data", str(text), *TINY_GPT, "--save", str(model)]) == 0
    out = capsys.readouterr().out
    steps = re.findall(r"step (\d+): train loss ([\d.]+), val loss ([\d.]+)", out)
    assert [int(s) for s, _, _ in steps] == [0, 4, 8]
    assert float(steps[-1][1]) < float(steps[0][1])  # it learns
    assert "val loss over 2 batches" in out and "--- sample 1 ---" in out
    import zeronn as zn

    assert zn.load(model).n_params > 0


def test_the_gpt_example_says_what_is_wrong(tmp_path, capsys) -> None:
    example = _gpt_example()
    assert example.main(["--data", str(tmp_path / "absent.txt"), *TINY_GPT]) == 2
    assert capsys.readouterr().err.startswith("gpt_shakespeare: error: ")
    text = tmp_path / "t.txt"
    text.write_text("abc " * 400, encoding="utf-8")
    assert example.main(["--data", str(text), *TINY_GPT, "--warmup", "50"]) == 2
    assert "must be larger than warmup" in capsys.readouterr().err
