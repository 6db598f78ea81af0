"""Monthly forecasting: a zeronn LSTM/GRU against seasonal-naive and gradient boosting.

Not a unit test: ``python benchmarks/forecasting.py`` (about a minute on one core).

The data: statsmodels' bundled ``elnino`` (monthly sea surface temperature of the
Pacific's El Nino region, a year x 12-month table, 1950-01 .. 2010-12, 732 months), read
from the installed package (nothing is downloaded), or any monthly series of the user's:
``--csv PATH --date-column NAME --value-column NAME``.

The protocol, the same for all three models:

- the last ``HORIZON`` (24) months are the test months; every model is fitted once on
  the months before them;
- each test month is a **one-step-ahead** forecast from the *true* history up to the
  month before it (the models are not refitted inside the test period; no forecast
  feeds another);
- MAE and RMSE over the 24 test months, in the series' own units.

The models:

- ``seasonal-naive``: the value 12 months earlier;
- ``gradient boosting``: scikit-learn's ``HistGradientBoostingRegressor`` (defaults,
  ``random_state=0``) on the last L values plus the month of year (categorical);
- ``zeronn``: ``Sequential([LSTM or GRU(units), Dense(1)])`` on windows of the last W
  months, each step ``(value, sin, cos of its month)`` (``input_shape=(W, 3)``), float64,
  Adam, batch 32, seeded. The series is standardized with the training months' mean
  and standard deviation. The target is the next month's standardized value, or its
  difference from the seasonal-naive value (a residual target); the tuning chooses.

Tuning is honest: the last ``HORIZON`` months *before* the test months are a validation
period. Every candidate is fitted on the months before it and scored by validation MAE:
L in ``LAGS`` for gradient boosting; for zeronn the cell (LSTM or GRU) x W x target, and
the number of epochs (scored after every ``EPOCH_STEP`` epochs of one model, its fits
continuing one another; the final fits train in the same steps). Then the chosen
configuration of each is refitted on all the months before the test period and scored
once on the test months. The chosen zeronn configuration is also refitted with other
seeds, to show the spread.

The targets: zeronn's test MAE and RMSE below seasonal-naive's, and within 10% of the
better baseline's (the baseline with the lower test MAE).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

import zeronn as zn

HORIZON = 24          # test months, and validation months
SEASON = 12           # months in a year: seasonal-naive's lag
LAGS = (12, 24, 36)   # gradient boosting's candidate L
WINDOWS = (12, 24)    # zeronn's candidate W
CELLS = ("LSTM", "GRU")
TARGETS = ("level", "residual")
UNITS = 32
LEARNING_RATE = 3e-3
BATCH_SIZE = 32
EPOCH_STEP = 20
MAX_EPOCHS = 80
SEEDS = (0, 1, 2)     # the chosen configuration's refits; the first is the reported one
TOLERANCE = 0.10      # zeronn within 10% of the better baseline


@dataclass(frozen=True)
class Series:
    """A monthly series with no gaps: ``values`` (n,) float64, ``months`` (n,) the month
    of year of each value (1..12), ``start`` its first month ("1950-01")."""

    name: str
    values: NDArray[np.float64]
    months: NDArray[np.int64]
    start: str

    def __len__(self) -> int:
        return len(self.values)

    def month_label(self, i: int) -> str:
        """The month of index ``i`` ("2009-01")."""
        return str(pd.Period(self.start, freq="M") + i)


def min_length(horizon: int = HORIZON) -> int:
    """The fewest months the protocol needs: test and validation periods, and at least
    four years of training months before them (windows of up to 36 months and a few
    dozen training windows)."""
    return 2 * horizon + 48


def monthly_series(dates: Any, values: Any, name: str = "series") -> Series:
    """The series of ``values`` at ``dates`` (anything ``pd.to_datetime`` reads), sorted by
    date, checked to be monthly: one value a month, no month missing, all numbers."""
    stamps = pd.to_datetime(pd.Series(dates), errors="coerce")
    if stamps.isna().any():  # pandas reads every date in the first one's format: retry
        stamps = pd.to_datetime(pd.Series(dates), errors="coerce", format="mixed")
    vals = pd.to_numeric(pd.Series(values), errors="coerce")
    if len(stamps) != len(vals):
        raise ValueError(f"{len(stamps)} dates but {len(vals)} values")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        raw = pd.Series(dates).iloc[bad[0]]
        raise ValueError(f"{name}: {bad.size} date(s) could not be read as dates, the first "
                         f"at row {bad[0]}: {raw!r}; write dates as YYYY-MM or YYYY-MM-DD")
    bad = np.flatnonzero(vals.isna().to_numpy())
    if bad.size:
        raw = pd.Series(values).iloc[bad[0]]
        raise ValueError(f"{name}: {bad.size} value(s) are missing or not numbers, the first "
                         f"at row {bad[0]} ({stamps.iloc[bad[0]]:%Y-%m-%d}): {raw!r}; fill "
                         f"or drop them first")
    order = np.argsort(stamps.to_numpy(), kind="stable")
    periods = pd.PeriodIndex(stamps.iloc[order], freq="M")
    v = vals.to_numpy(dtype=np.float64)[order]
    dup = periods.duplicated()
    if dup.any():
        month = periods[np.flatnonzero(dup)[0]]
        raise ValueError(f"{name} is not monthly: {int(dup.sum())} date(s) fall in a month "
                         f"that already has a value, the first in {month}; give one value "
                         f"a month (e.g. resample to monthly means first)")
    steps = np.diff(periods.asi8)
    gap = np.flatnonzero(steps != 1)
    if gap.size:
        i = gap[0]
        raise ValueError(f"{name} is not monthly: no value for {periods[i] + 1} (between "
                         f"{periods[i]} and {periods[i + 1]}); {gap.size} gap(s) in all; "
                         f"fill the missing months first")
    return Series(name, v, periods.month.to_numpy().astype(np.int64), str(periods[0]))


def load_elnino() -> Series:
    """statsmodels' bundled ``elnino``: the year x 12-month table read row by row as one
    monthly series, 1950-01 .. 2010-12 (no download: the data ships with statsmodels)."""
    from statsmodels.datasets import elnino

    table = elnino.load_pandas().data
    months = table.drop(columns="YEAR")
    years = table["YEAR"].astype(int).to_numpy()
    dates = [f"{y}-{m:02d}" for y in years for m in range(1, 13)]
    return monthly_series(dates, months.to_numpy().ravel(), name="elnino")


def load_csv(path: str | Path, date_column: str = "date",
             value_column: str | None = None) -> Series:
    """A monthly series from a CSV: ``date_column`` (any format pandas reads) and
    ``value_column`` (default: the one other column, when there is exactly one)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} could not be read as a CSV file: {err}") from err
    columns = [str(c) for c in frame.columns]
    if date_column not in columns:
        raise ValueError(f"{path} has no date column {date_column!r}; its columns: "
                         f"{columns}; name it with --date-column")
    if value_column is None:
        others = [c for c in columns if c != date_column]
        if len(others) != 1:
            raise ValueError(f"{path} has {len(others)} columns besides {date_column!r} "
                             f"({others}): name the series with --value-column")
        value_column = others[0]
    if value_column not in columns:
        raise ValueError(f"{path} has no value column {value_column!r}; its columns: "
                         f"{columns}; name it with --value-column")
    series = monthly_series(frame[date_column], frame[value_column],
                            name=f"{path.name}:{value_column}")
    return series


# -- features and baselines ----------------------------------------------------------
def month_features(months: NDArray[np.int64]) -> NDArray[np.float64]:
    """(n, 2): sin and cos of each month's angle on the year's circle (December is next
    to January)."""
    angle = 2 * np.pi * (np.asarray(months) - 1) / SEASON
    return np.column_stack([np.sin(angle), np.cos(angle)])


def windows(features: NDArray, targets: Sequence[int] | NDArray, width: int) -> NDArray:
    """(m, width, F): for each target index t, the rows ``features[t - width : t]`` (the
    ``width`` months before t, oldest first). ``features`` is (n, F) or (n,) (one
    feature: F = 1)."""
    f = np.asarray(features)
    f = f[:, None] if f.ndim == 1 else f
    t = np.asarray(targets, dtype=np.int64)
    if t.size and (t.min() < width or t.max() > len(f)):
        raise ValueError(f"targets must lie in [{width}, {len(f)}] for windows of "
                         f"{width}, got {t.min()}..{t.max()}")
    return f[t[:, None] + np.arange(-width, 0)]


def seasonal_naive(values: NDArray, targets: Sequence[int] | NDArray) -> NDArray:
    """The forecast of each target month: the value ``SEASON`` (12) months before it."""
    t = np.asarray(targets, dtype=np.int64)
    if t.size and t.min() < SEASON:
        raise ValueError(f"seasonal-naive needs {SEASON} months before each target; "
                         f"the first target is {t.min()}")
    return np.asarray(values, dtype=np.float64)[t - SEASON]


def lag_features(series: Series, targets: Sequence[int] | NDArray, lags: int) -> NDArray:
    """(m, lags + 1): the last ``lags`` values before each target (oldest first) and the
    target's month of year (1..12) last."""
    t = np.asarray(targets, dtype=np.int64)
    return np.column_stack([windows(series.values, t, lags)[:, :, 0], series.months[t]])


def errors(pred: NDArray, true: NDArray) -> tuple[float, float]:
    """(MAE, RMSE)."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(d))), float(np.sqrt(np.mean(d * d)))


def periods(n: int, horizon: int = HORIZON) -> tuple[range, range]:
    """The validation and test months' indices of a series of ``n`` months."""
    return range(n - 2 * horizon, n - horizon), range(n - horizon, n)


def fit_boosting(series: Series, end: int, lags: int, horizon: int = HORIZON,
                 seed: int = 0) -> tuple[NDArray, float, float]:
    """Gradient boosting fitted on the months before ``end - horizon``: its one-step
    forecasts of the ``horizon`` months before ``end``, and the fit's wall and CPU seconds."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    split = end - horizon
    train = np.arange(lags, split)
    model = HistGradientBoostingRegressor(random_state=seed, categorical_features=[lags])
    t0, c0 = time.perf_counter(), time.process_time()
    model.fit(lag_features(series, train, lags), series.values[train])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return model.predict(lag_features(series, np.arange(split, end), lags)), wall, cpu


# -- the zeronn model ----------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    """One zeronn forecaster: ``cell`` LSTM or GRU, windows of ``width`` months,
    ``target`` "level" (the next standardized value) or "residual" (its difference from
    the seasonal-naive value)."""

    cell: str = "LSTM"
    width: int = 24
    target: str = "level"
    units: int = UNITS
    lr: float = LEARNING_RATE
    batch_size: int = BATCH_SIZE

    def __str__(self) -> str:
        return f"{self.cell}({self.units}), W={self.width}, {self.target} target"


@dataclass
class Forecaster:
    """A zeronn network fitted on the months before ``split`` (the standardization's too),
    forecasting one month ahead from the true history."""

    config: Config
    series: Series
    split: int
    seed: int = 0
    net: zn.Sequential = field(init=False)
    mean: float = field(init=False)
    std: float = field(init=False)
    inputs: NDArray = field(init=False)   # (n, 3) standardized value, sin, cos of the month
    z: NDArray = field(init=False)        # (n,) the standardized series
    seconds: float = 0.0                  # time spent in fit: wall, CPU (all threads)
    cpu: float = 0.0
    epochs: int = 0                       # epochs trained so far

    def __post_init__(self) -> None:
        c = self.config
        if c.cell not in CELLS or c.target not in TARGETS:
            raise ValueError(f"cell must be one of {CELLS} and target one of {TARGETS}, "
                             f"got {c.cell!r}, {c.target!r}")
        train = self.series.values[:self.split]
        self.mean, self.std = float(train.mean()), float(train.std()) or 1.0
        self.z = (self.series.values - self.mean) / self.std
        self.inputs = np.column_stack([self.z, month_features(self.series.months)])
        layer = getattr(zn, c.cell)(c.units)
        self.net = zn.Sequential([layer, zn.Dense(1)], input_shape=(c.width, 3),
                                 dtype="float64", seed=self.seed)

    def _targets(self, t: NDArray) -> NDArray:
        base = self.z[t - SEASON] if self.config.target == "residual" else 0.0
        return (self.z[t] - base)[:, None]

    def fit(self, epochs: int) -> Forecaster:
        """``epochs`` more epochs of Adam on every window that ends before ``split``
        (the optimizer's state carries on across calls)."""
        t = np.arange(max(self.config.width, SEASON), self.split)
        first = self.epochs == 0
        t0, c0 = time.perf_counter(), time.process_time()
        self.net.fit(windows(self.inputs, t, self.config.width), self._targets(t),
                     loss="mse", optimizer=zn.optim.Adam(self.config.lr) if first else None,
                     epochs=epochs, batch_size=self.config.batch_size,
                     seed=self.seed if first else None)
        self.seconds += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        self.epochs += epochs
        return self

    def predict(self, targets: Sequence[int] | NDArray) -> NDArray:
        """One-step forecasts of the ``targets`` months, in the series' units, each from
        the true values of the ``width`` months before it."""
        t = np.asarray(targets, dtype=np.int64)
        out = self.net.predict(windows(self.inputs, t, self.config.width))[:, 0]
        if self.config.target == "residual":
            out = out + self.z[t - SEASON]
        return out * self.std + self.mean


# -- the whole comparison ------------------------------------------------------------
@dataclass
class Result:
    """One model's test forecasts and scores."""

    model: str
    mae: float
    rmse: float
    seconds: float
    cpu: float
    detail: str = ""
    forecasts: NDArray = field(default_factory=lambda: np.empty(0))


@dataclass
class Report:
    """The comparison: results per model, the choices tuning made, the validation scores."""

    series: Series
    horizon: int
    results: dict[str, Result]
    tuning: list[tuple[str, float]]          # (candidate, validation MAE)
    seed_maes: dict[int, float]              # the chosen configuration's test MAE by seed
    seconds: float                           # the whole run's wall and CPU seconds
    cpu: float

    @property
    def better_baseline(self) -> Result:
        return min((self.results["seasonal-naive"], self.results["gradient boosting"]),
                   key=lambda r: r.mae)

    def targets_met(self) -> dict[str, bool]:
        z, naive, best = (self.results["zeronn"], self.results["seasonal-naive"],
                          self.better_baseline)
        return {"beats seasonal-naive": z.mae < naive.mae and z.rmse < naive.rmse,
                "within 10% of the better baseline":
                    z.mae <= (1 + TOLERANCE) * best.mae
                    and z.rmse <= (1 + TOLERANCE) * best.rmse}


def run(series: Series, horizon: int = HORIZON, lags: Sequence[int] = LAGS,
        widths: Sequence[int] = WINDOWS, cells: Sequence[str] = CELLS,
        targets: Sequence[str] = TARGETS, epoch_step: int = EPOCH_STEP,
        max_epochs: int = MAX_EPOCHS, seeds: Sequence[int] = SEEDS, units: int = UNITS,
        verbose: bool = False) -> Report:
    """Tune on the validation months, refit on everything before the test months, score
    the test months (see the module's docstring)."""
    n = len(series)
    if n < min_length(horizon):
        raise ValueError(f"{series.name} has {n} months; the protocol needs at least "
                         f"{min_length(horizon)} ({horizon} test, {horizon} validation, "
                         f"48 to train on)")
    if max(*lags, *widths) + SEASON > n - 2 * horizon:
        raise ValueError(f"{series.name}: windows of {max(*lags, *widths)} months leave too "
                         f"few training months ({n - 2 * horizon}); use shorter windows")
    t_start, c_start = time.perf_counter(), time.process_time()
    val, test = periods(n, horizon)
    y_val, y_test = series.values[val.start:val.stop], series.values[test.start:test.stop]
    tuning: list[tuple[str, float]] = []

    def say(text: str) -> None:
        if verbose:
            print(text, flush=True)

    # gradient boosting: L by validation MAE
    best_lag, best_mae = lags[0], np.inf
    for lag in lags:
        pred, *_ = fit_boosting(series, val.stop, lag, horizon)
        mae = errors(pred, y_val)[0]
        tuning.append((f"gradient boosting, L={lag}", mae))
        say(f"  validation: gradient boosting L={lag}: MAE {mae:.4f}")
        if mae < best_mae:
            best_lag, best_mae = lag, mae

    # zeronn: cell x W x target, and epochs, by validation MAE
    best_cfg, best_epochs, best_mae = None, epoch_step, np.inf
    for cell, width, target in itertools.product(cells, widths, targets):
        cfg = Config(cell, width, target, units=units)
        model = Forecaster(cfg, series, val.start, seed=seeds[0])
        for epochs in range(epoch_step, max_epochs + 1, epoch_step):
            mae = errors(model.fit(epoch_step).predict(val), y_val)[0]
            tuning.append((f"{cfg}, {epochs} epochs", mae))
            say(f"  validation: {cfg}, {epochs} epochs: MAE {mae:.4f}")
            if mae < best_mae:
                best_cfg, best_epochs, best_mae = cfg, epochs, mae
    assert best_cfg is not None

    results: dict[str, Result] = {}
    naive = seasonal_naive(series.values, test)
    results["seasonal-naive"] = Result("seasonal-naive", *errors(naive, y_test), 0.0, 0.0,
                                       "value 12 months earlier", naive)
    pred, wall, cpu = fit_boosting(series, test.stop, best_lag, horizon)
    results["gradient boosting"] = Result("gradient boosting", *errors(pred, y_test), wall,
                                          cpu, f"L={best_lag} lags + month", pred)
    seed_maes: dict[int, float] = {}
    for seed in seeds:
        model = Forecaster(best_cfg, series, test.start, seed=seed)
        for _ in range(best_epochs // epoch_step):  # in the same steps as the tuning's fits
            model.fit(epoch_step)
        pred = model.predict(test)
        mae, rmse = errors(pred, y_test)
        seed_maes[seed] = mae
        if seed == seeds[0]:
            results["zeronn"] = Result("zeronn", mae, rmse, model.seconds, model.cpu,
                                       f"{best_cfg}, {best_epochs} epochs, seed {seed}", pred)
        say(f"  test: zeronn seed {seed}: MAE {mae:.4f}")
    return Report(series, horizon, results, tuning, seed_maes,
                  time.perf_counter() - t_start, time.process_time() - c_start)


def format_report(report: Report) -> str:
    """The table and what it means, as printed."""
    s, h = report.series, report.horizon
    n = len(s)
    best = report.better_baseline
    lines = [
        f"{s.name}: {n} months {s.start} .. {s.month_label(n - 1)}; test: the last {h} "
        f"({s.month_label(n - h)} .. {s.month_label(n - 1)}), validation: the {h} before",
        f"protocol: {h} one-step-ahead forecasts from the true history; every model fitted "
        "once on the months before the test period",
        "",
        f"{'model':<18} {'MAE':>8} {'RMSE':>8} {'MAE/best':>9} {'RMSE/best':>10} "
        f"{'fit s':>7} {'cpu s':>7}  configuration",
    ]
    for r in report.results.values():
        lines.append(f"{r.model:<18} {r.mae:8.4f} {r.rmse:8.4f} {r.mae / best.mae:9.3f} "
                     f"{r.rmse / best.rmse:10.3f} {r.seconds:7.2f} {r.cpu:7.2f}  {r.detail}")
    maes = ", ".join(f"{m:.4f}" for m in report.seed_maes.values())
    lines += [
        f"best baseline: {best.model}; zeronn's chosen configuration refitted with seeds "
        f"{', '.join(map(str, report.seed_maes))}: test MAE {maes}",
        "targets: " + "; ".join(f"{k}: {'ok' if v else 'MISSED'}"
                                for k, v in report.targets_met().items()),
        f"fit s, cpu s: the final fit's wall and CPU seconds; the whole run, tuning "
        f"included: {report.seconds:.1f} s wall, {report.cpu:.1f} s CPU",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="a CSV with a date column and a monthly value column "
                                      "(default: statsmodels' elnino)")
    parser.add_argument("--date-column", default="date", help="the CSV's date column")
    parser.add_argument("--value-column", help="the CSV's value column (default: the one "
                                               "column besides the date)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads (default 1: the times are one core's)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print every validation score")
    args = parser.parse_args(argv)
    try:
        series = (load_csv(args.csv, args.date_column, args.value_column) if args.csv
                  else load_elnino())
        from threadpoolctl import threadpool_limits

        with threadpool_limits(args.threads):
            report = run(series, verbose=args.verbose)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    return 0 if all(report.targets_met().values()) else 1


if __name__ == "__main__":
    sys.exit(main())
