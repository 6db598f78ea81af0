"""benchmarks/run.py's helpers: FLOP counts, targets, engine selection, the report.

Nothing here is timed (speed is measured by the benchmark itself): these check that the
bench counts, compares and reports what it says, including when the compiled path or
JAX is absent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import load_benchmark

run = load_benchmark("run")


def test_gemm_flops_counts_forward_dw_and_dx_except_the_first_layer():
    w = run.WORKLOADS["small"]  # 2000 x 8 -> 32 -> 1
    n = 2000
    first = 2 * (2 * n * 8 * 32)  # forward, dW (no dX: the input needs no gradient)
    second = 3 * (2 * n * 32 * 1)  # forward, dW, dX
    assert run.gemm_flops(w) == first + second


def test_issue_16_targets_are_declared():
    got = {(t.workload, t.dtype, t.optimizer, t.impl, t.ref): t.limit for t in run.TARGETS}
    assert got[("small", "float64", "sgd", "compiled", "gemm")] == 0.35
    assert got[("small", "float32", "sgd", "compiled", "jax")] == 0.9
    assert got[("seed", "float64", "sgd", "compiled", "classic")] == 0.1
    assert got[("tabular", "float64", "adam", "compiled", "zeronn")] == 0.5
    assert ("wide", None, None, "auto", "zeronn") in got


def _cell(name: str, dtype: str, optimizer: str, rounds: dict[str, list[float]],
          missing: dict[str, str] | None = None) -> Any:
    c = run.Cell(run.WORKLOADS[name], dtype, optimizer)
    c.rounds = rounds
    c.missing = dict(missing or {})
    return c


def test_targets_match_every_dtype_and_optimizer_when_none():
    t = run.Target("medium", None, None, "zeronn", 1.05, impl="auto")
    assert t.matches(_cell("medium", "float64", "adam", {}))
    assert t.matches(_cell("medium", "float32", "sgd", {}))
    assert not t.matches(_cell("wide", "float32", "sgd", {}))


def test_check_targets_uses_paired_round_ratios_and_says_not_available():
    met = _cell("small", "float64", "sgd",
                {"compiled": [1.0, 2.0, 3.0], "gemm": [4.0, 4.0, 4.0], "jax": [1.0, 2.0, 3.0],
                 "zeronn": [5.0, 5.0, 5.0]})
    absent = _cell("small", "float32", "sgd", {"gemm": [1.0], "zeronn": [2.0]},
                   missing={"compiled": "not available: no engine"})
    results = {(t.ref, c.dtype): (r, ok, run.target_status(t, c, ok))
               for t, c, r, ok in run.check_targets([met, absent]) if t.impl == "compiled"}
    assert results[("gemm", "float64")] == (0.5, False, "not met")  # median of 1/4, 2/4, 3/4
    assert results[("jax", "float64")] == (1.0, False, "not met")
    assert results[("gemm", "float32")] == (None, None, "not available")


def test_engine_kwargs_follow_what_fit_accepts(monkeypatch):
    monkeypatch.setattr(run, "HAS_ENGINE", False)
    assert run.engine_kwargs(None) == {}
    with pytest.raises(run.Unavailable, match="no engine argument"):
        run.engine_kwargs("compiled")
    monkeypatch.setattr(run, "HAS_ENGINE", True)
    assert run.engine_kwargs(None) == {"engine": "numpy"}
    assert run.engine_kwargs("auto") == {"engine": "auto"}


def test_a_tiny_cell_runs_end_to_end_and_is_reported(monkeypatch, tmp_path):
    tiny = run.Workload("tiny", 40, (3, 4, 1), 16, 1, 2)
    monkeypatch.setitem(run.WORKLOADS, "tiny", tiny)
    impls = ["zeronn", "compiled", "auto", "gemm", "classic"]
    cells = run.run_cells(["tiny"], ["float64"], ["sgd"], impls, 1.0, quick=False)
    (c,) = cells
    assert set(c.rounds) >= {"zeronn", "gemm"}
    assert all(len(ts) == 2 and min(ts) > 0 for ts in c.rounds.values())
    assert c.engines["zeronn"] == "numpy"
    if run.HAS_ENGINE and "compiled" in c.rounds:
        assert c.engines["compiled"] == "compiled"
        assert c.checks["compiled"] <= run.CHECK_TOLERANCE["float64"]
    else:
        assert c.missing["compiled"].startswith("not available")
    out = tmp_path / "bench.md"
    run.write_markdown(cells, out, out.with_suffix(".png"), {"threads": "1"}, "run.py",
                       {"float64": 1.0})
    text = out.read_text()
    assert "| tiny | float64 | sgd |" in text
    assert "## Times and ratios: the compiled path and JAX" in text


def test_peak_gflops_is_a_positive_rate():
    assert run.peak_gflops("float32", size=64, repeats=1) > 0


def test_flop_rates_only_on_small():
    small = _cell("small", "float64", "sgd", {"gemm": [0.001], "zeronn": [0.004]})
    medium = _cell("medium", "float64", "sgd", {"gemm": [0.1]})
    ((c, rates),) = run.flop_rates([small, medium], {"float64": 50.0})
    assert c is small
    flops = run.gemm_flops(run.WORKLOADS["small"])
    np.testing.assert_allclose(rates["gemm"], flops / 0.001 / 1e9)
    np.testing.assert_allclose(rates["zeronn"], flops / 0.004 / 1e9)


def test_engine_of_reads_the_engines_a_fit_reports():
    import zeronn as zn

    h = zn.History(loss=[1.0])
    assert run.engine_of(h) == "numpy"  # before the compiled path: no engine attribute
    h.engine = "compiled"
    assert run.engine_of(h) == "compiled"
    h.engines = ["numpy", "compiled", "compiled"]  # auto switched at an epoch boundary
    assert run.engine_of(h) == "compiled/numpy"


def test_best_ratio_divides_the_fastest_rounds():
    c = _cell("small", "float64", "sgd", {"compiled": [3.0, 1.0], "gemm": [2.0, 4.0]})
    assert c.best_ratio("compiled", "gemm") == 0.5
    assert c.best_ratio("compiled", "jax") is None


def test_time_rounds_takes_turns_on_the_chosen_clock(monkeypatch):
    calls: list[str] = []
    ticks = iter(range(100))
    monkeypatch.setitem(run.CLOCKS, "fake", lambda: float(next(ticks)))
    monkeypatch.setattr(run, "CLOCK", ["fake"])
    runners = {"a": lambda k: calls.append("a"), "b": lambda k: calls.append("b")}
    times, engines = run.time_rounds(runners, 2, 3)
    assert calls == ["a", "b"] + ["a", "b"] * 3  # a warm-up each, then turns
    assert times == {"a": [0.5] * 3, "b": [0.5] * 3}  # one tick a call, over k=2 epochs
    assert engines == {}


def test_charlstm_is_a_workload_of_its_own():
    assert run.split_workloads(["small", "charlstm", "wide"]) == (["small", "wide"], True)
    assert run.split_workloads(["small"]) == (["small"], False)


def test_charlstm_says_why_it_did_not_run_without_the_text(monkeypatch, tmp_path):
    monkeypatch.setattr(run.charlstm, "TEXT", tmp_path / "absent.txt")
    (line,) = run.run_text_model(1, quick=True)
    assert line.startswith("skipped: no text at") and "absent.txt" in line


def test_the_report_has_a_charlstm_section_only_when_it_ran(tmp_path):
    cell = _cell("small", "float64", "sgd", {"gemm": [0.001], "zeronn": [0.002]})
    out = tmp_path / "bench.md"
    run.write_markdown([cell], out, out.with_suffix(".png"), {}, "run.py", {"float64": 1.0})
    assert "Character-level LSTM" not in out.read_text()
    run.write_markdown([cell], out, out.with_suffix(".png"), {}, "run.py", {"float64": 1.0},
                       ["time per epoch: zeronn 1.00 s, torch 1.00 s"])
    text = out.read_text()
    assert "## Character-level LSTM against PyTorch" in text
    assert "- time per epoch: zeronn 1.00 s, torch 1.00 s" in text


def test_gpt_is_a_workload_of_its_own(tmp_path):
    assert run.take_gpt(["small", "gpt", "charlstm"]) == (["small", "charlstm"], True)
    assert run.take_gpt(["small"]) == (["small"], False)
    cell = _cell("small", "float64", "sgd", {"gemm": [0.001], "zeronn": [0.002]})
    out = tmp_path / "bench.md"
    run.write_markdown([cell], out, out.with_suffix(".png"), {}, "run.py", {"float64": 1.0})
    assert "character-level GPT" not in out.read_text()
    run.write_markdown([cell], out, out.with_suffix(".png"), {}, "run.py", {"float64": 1.0},
                       None, ["gpt step (float32, 2 threads): zeronn 50 ms, torch 50 ms"])
    assert "## nanoGPT's character-level GPT against PyTorch" in out.read_text()
