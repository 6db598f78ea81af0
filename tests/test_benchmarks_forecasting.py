"""benchmarks/forecasting.py's pieces: the data, windows, seasonal-naive, CSV reading, and
a short zeronn fit end to end.

The quality claim (zeronn within 10% of the better baseline) is the benchmark's, with its
full tuning; here a small recurrent network only has to beat seasonal-naive.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from conftest import load_benchmark

fc = load_benchmark("forecasting")


def _monthly(n: int, start: str = "2001-01", seed: int = 0) -> fc.Series:
    """A seasonal series with noise: n months from ``start``."""
    t = np.arange(n)
    rng = np.random.default_rng(seed)
    values = 10 + 3 * np.sin(2 * np.pi * t / 12) + 0.01 * t + 0.3 * rng.standard_normal(n)
    dates = pd.period_range(start, periods=n, freq="M").astype(str)
    return fc.monthly_series(dates, values, name="synthetic")


def _write_csv(path: Path, dates: list[str], values: list[object], **extra: list) -> Path:
    pd.DataFrame({"date": dates, "value": values, **extra}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def elnino() -> fc.Series:
    pytest.importorskip("statsmodels", reason="the elnino data ships with statsmodels")
    return fc.load_elnino()


def test_elnino_loads_as_732_months_read_row_by_row(elnino):
    assert len(elnino) == 732 and elnino.start == "1950-01"
    assert elnino.month_label(731) == "2010-12"
    np.testing.assert_array_equal(elnino.months[:14], [*range(1, 13), 1, 2])
    # the table's first row (1950) JAN, FEB; then 1951 JAN; the last cell, 2010 DEC
    assert elnino.values[0] == 23.11 and elnino.values[1] == 24.20
    assert elnino.values[12] == 24.19 and elnino.values[-1] == 22.07
    assert elnino.values.dtype == np.float64 and np.isfinite(elnino.values).all()


def test_windows_are_the_months_before_each_target():
    f = np.arange(10.0)
    X = fc.windows(f, [3, 5, 10], 3)
    assert X.shape == (3, 3, 1)
    np.testing.assert_array_equal(X[:, :, 0], [[0, 1, 2], [2, 3, 4], [7, 8, 9]])
    two = np.column_stack([f, -f])
    np.testing.assert_array_equal(fc.windows(two, [4], 2)[0], [[2, -2], [3, -3]])
    with pytest.raises(ValueError, match=r"targets must lie in \[3, 10\]"):
        fc.windows(f, [2], 3)
    with pytest.raises(ValueError, match="targets must lie"):
        fc.windows(f, [11], 3)


def test_seasonal_naive_is_exactly_the_value_12_months_before():
    v = np.arange(30) * 1.5
    np.testing.assert_array_equal(fc.seasonal_naive(v, [12, 20, 29]), [v[0], v[8], v[17]])
    with pytest.raises(ValueError, match="12 months before"):
        fc.seasonal_naive(v, [11])


def test_lag_features_are_the_last_lags_and_the_target_month():
    s = _monthly(40, start="2001-03")
    F = fc.lag_features(s, [24, 25], 12)
    np.testing.assert_array_equal(F[0, :12], s.values[12:24])
    np.testing.assert_array_equal(F[1, :12], s.values[13:25])
    assert F[0, 12] == 3 and F[1, 12] == 4  # index 24: 2003-03, 25: 2003-04


def test_month_features_put_december_next_to_january():
    f = fc.month_features(np.arange(1, 13))
    np.testing.assert_allclose(np.hypot(f[:, 0], f[:, 1]), 1.0)
    gaps = np.linalg.norm(f - np.roll(f, 1, axis=0), axis=1)
    np.testing.assert_allclose(gaps, gaps[0])  # Dec -> Jan as close as any two months


def test_periods_and_errors():
    val, test = fc.periods(100, 24)
    assert (val.start, val.stop, test.start, test.stop) == (52, 76, 76, 100)
    mae, rmse = fc.errors(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    assert mae == 1.5 and rmse == pytest.approx(np.sqrt(2.5))


def test_csv_is_sorted_by_date_and_read_as_months(tmp_path):
    dates = [f"{2001 + i // 12}-{i % 12 + 1:02d}-28" for i in range(30)]
    values = [float(i) for i in range(30)]
    order = np.random.default_rng(0).permutation(30)
    path = _write_csv(tmp_path / "s.csv", [dates[i] for i in order],
                      [values[i] for i in order])
    s = fc.load_csv(path, "date")  # the one other column is the value
    assert s.start == "2001-01" and len(s) == 30 and s.name == "s.csv:value"
    np.testing.assert_array_equal(s.values, values)
    np.testing.assert_array_equal(s.months[:13], [*range(1, 13), 1])
    path = _write_csv(tmp_path / "t.csv", dates, values, other=values)
    assert len(fc.load_csv(path, "date", "other")) == 30


@pytest.mark.parametrize(("dates", "values", "message"), [
    (["2001-01", "2001-02", "2001-04"], [1, 2, 3], r"not monthly: no value for 2001-03"),
    (["2001-01", "2001-02", "2001-02-15"], [1, 2, 3],
     r"not monthly: 1 date\(s\) fall in a month .* 2001-02"),
    (["2001-01", "2001-02", "2001-03"], [1, "n/a", 3], r"not numbers, the first at row 1"),
    (["2001-01", "2001-02", "2001-03"], [1, None, 3], r"missing or not numbers"),
    (["2001-01", "soon", "2001-03"], [1, 2, 3], r"could not be read as dates.*'soon'"),
])
def test_bad_csvs_say_what_is_wrong(tmp_path, dates, values, message):
    path = _write_csv(tmp_path / "bad.csv", dates, values)
    with pytest.raises(ValueError, match=message):
        fc.load_csv(path, "date", "value")


def test_bad_csv_columns_and_files_say_the_fix(tmp_path):
    path = _write_csv(tmp_path / "c.csv", ["2001-01"], [1.0], more=[2.0])
    with pytest.raises(ValueError, match=r"no date column 'when'.*--date-column"):
        fc.load_csv(path, "when", "value")
    with pytest.raises(ValueError, match=r"no value column 'x'.*--value-column"):
        fc.load_csv(path, "date", "x")
    with pytest.raises(ValueError, match=r"2 columns besides 'date'.*--value-column"):
        fc.load_csv(path, "date")
    with pytest.raises(FileNotFoundError, match="no CSV file"):
        fc.load_csv(tmp_path / "absent.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="could not be read as a CSV"):
        fc.load_csv(tmp_path / "empty.csv")


def test_the_command_line_reports_a_bad_csv_and_a_short_series(tmp_path, capsys):
    path = _write_csv(tmp_path / "gap.csv", ["2001-01", "2001-03"], [1, 2])
    assert fc.main(["--csv", str(path)]) == 2
    assert "error: " in capsys.readouterr().err
    short = _monthly(60)
    with pytest.raises(ValueError, match="has 60 months; the protocol needs at least 96"):
        fc.run(short)


def test_a_zero_network_forecasts_the_mean_or_seasonal_naive():
    s = _monthly(120)
    for target in ("level", "residual"):
        model = fc.Forecaster(fc.Config("GRU", 12, target, units=4), s, split=96)
        for p in model.net.params:
            p[...] = 0.0
        pred = model.predict(np.arange(96, 120))
        expected = (np.full(24, s.values[:96].mean()) if target == "level"
                    else fc.seasonal_naive(s.values, np.arange(96, 120)))
        np.testing.assert_allclose(pred, expected)


def test_a_short_lstm_fit_beats_seasonal_naive_on_the_held_out_months(elnino):
    _, test = fc.periods(len(elnino))
    model = fc.Forecaster(fc.Config("LSTM", 12, "level", units=16), elnino, test.start)
    pred = model.fit(20).predict(test)
    truth = elnino.values[test.start:test.stop]
    mae, rmse = fc.errors(pred, truth)
    naive_mae, naive_rmse = fc.errors(fc.seasonal_naive(elnino.values, test), truth)
    assert mae < naive_mae and rmse < naive_rmse


def test_the_comparison_runs_end_to_end_on_a_csv(tmp_path):
    s = _monthly(110)
    path = _write_csv(tmp_path / "m.csv", list(pd.period_range("2001-01", periods=110,
                                                               freq="M").astype(str)),
                      list(s.values))
    with threadpool_limits(1):  # OpenMP's spinning threads crawl on a busy machine
        report = fc.run(fc.load_csv(path, "date", "value"), lags=(12,), widths=(12,),
                        cells=("GRU",), targets=("level", "residual"), epoch_step=5,
                        max_epochs=10, seeds=(0, 1), units=8)
    assert set(report.results) == {"seasonal-naive", "gradient boosting", "zeronn"}
    assert len(report.tuning) == 1 + 2 * 2 and list(report.seed_maes) == [0, 1]
    assert report.results["zeronn"].mae == report.seed_maes[0]
    assert report.results["zeronn"].forecasts.shape == (24,)
    text = fc.format_report(report)
    assert "24 one-step-ahead forecasts from the true history" in text
    assert "2008-03 .. 2010-02" in text and "targets: beats seasonal-naive" in text
    assert "refitted with seeds 0, 1: test MAE" in text
