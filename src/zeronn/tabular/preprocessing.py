"""The fitted encoding of a table's columns into the numbers a network takes.

:class:`Preprocessor` learns, from the training rows, how to turn each input column into
one or more float columns ("encoded columns"), in the order of :attr:`Preprocessor.columns`
and, inside a column, in the order below. Its whole state is :meth:`Preprocessor.state`, a
JSON-safe dict (numbers, strings, lists), so a model file holds it as it is; the
:class:`~zeronn.tabular.model.TabularModel` then standardizes the encoded columns
(``(x - x_mean) / x_scale``, arrays of the model) before its network.

Per input column, ``kind`` and its parameters, and the encoded columns it yields
(``m`` marks "missing": an empty cell, NA, NaN, None, ``null``, ``n/a``; any case):

``numeric`` ``{"median": float, "indicator": bool}``
    ``x`` (``median`` where missing); then, when ``indicator`` (the training rows had a
    missing value), ``1.0 if m else 0.0``. This is scikit-learn's
    ``SimpleImputer(strategy="median", add_indicator=True)``. Infinite values are errors;
    text in a numeric column is an error too.
``boolean`` ``{"median": float, "indicator": bool}``
    as ``numeric`` on ``1.0`` (true/yes/1) and ``0.0`` (false/no/0); unreadable is missing.
``category`` ``{"categories": [str | None, ...], "other": bool}``
    one 0/1 column per entry of ``categories`` (``None`` is the "missing" category, when
    the training rows had missing cells), then, when ``other``, one 0/1 column "other"
    for every value not in ``categories``. Without ``other`` (every training value kept),
    a value never seen in training encodes as all zeros. ``categories`` are the
    ``max_categories`` most frequent training values (ties by text order) in text order.
    Values are compared as stripped text.
``date`` ``{"origin": float, "medians": [5 floats], "indicator": bool}``
    ``d`` = days since 1970-01-01 UTC (a time of day is a fraction); five columns:
    year, month (1-12), day of week (Monday 0: ``(floor(d) + 3) mod 7``), day of year
    (1-366), ``d - origin`` (``origin``: the training minimum); each takes its
    ``medians`` entry where missing (or unreadable); then the indicator as ``numeric``.
    The calendar is the proleptic Gregorian one (numpy's ``datetime64``).

``excluded`` lists ``{"name", "reason"}`` for the columns left out (no encoded column).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.tabular.columns import (
    ColumnPlan,
    boolean_values,
    date_days,
    numeric_values,
    text_values,
)

__all__ = ["DATE_PARTS", "DEFAULT_MAX_CATEGORIES", "ENCODED_KINDS", "STATE_VERSION",
           "Preprocessor", "Remarks", "date_parts"]

STATE_VERSION = 1
DEFAULT_MAX_CATEGORIES = 50
ENCODED_KINDS = ("numeric", "boolean", "category", "date")
DATE_PARTS = ("year", "month", "dayofweek", "dayofyear", "days")
MISSING_LABEL = "(missing)"
OTHER_LABEL = "(other)"


def date_parts(days: NDArray, origin: float) -> NDArray:
    """(n, 5) year, month, day of week, day of year, days - origin for days since 1970
    (n,) float (NaN rows stay NaN)."""
    out = np.full((days.size, len(DATE_PARTS)), np.nan)
    ok = np.isfinite(days)
    if not ok.any():
        return out
    whole = np.floor(days[ok]).astype(np.int64)
    dt = whole.astype("datetime64[D]")
    year = dt.astype("datetime64[Y]")
    month = dt.astype("datetime64[M]")
    out[ok, 0] = year.astype(np.int64) + 1970
    out[ok, 1] = month.astype(np.int64) % 12 + 1
    out[ok, 2] = (whole + 3) % 7  # 1970-01-01 was a Thursday (Monday is 0)
    out[ok, 3] = (dt - year.astype("datetime64[D]")).astype(np.int64) + 1
    out[ok, 4] = days[ok] - origin
    return out


def _median(values: NDArray) -> float:
    present = values[~np.isnan(values)]
    return float(np.median(present)) if present.size else 0.0


def _check_finite(name: str, series: Any, values: NDArray) -> None:
    inf = np.flatnonzero(np.isinf(values))
    if inf.size:
        p = int(inf[0])
        raise ValueError(f"feature column {name!r} has an infinite value ({values[p]}) at "
                         f"row {series.index[p]}: fix the cell (leave it empty if unknown)")


class Remarks:
    """What encoding rows had to make do with, counted per column: values unseen in
    training (taken as "other") and unreadable booleans or dates (taken as missing).

    Counts add up over several calls (``+=``), so a file encoded in chunks is reported
    once, with its totals; :meth:`lines` is the report, a line per kind of remark.
    """

    KINDS = ("unseen", "unreadable")

    def __init__(self) -> None:
        # kind -> column name -> rows, columns in the order first met (the model's order)
        self.counts: dict[str, dict[str, int]] = {k: {} for k in self.KINDS}

    def add(self, kind: str, column: str, rows: int) -> None:
        per_column = self.counts[kind]
        per_column[column] = per_column.get(column, 0) + rows

    def __iadd__(self, other: Remarks) -> Remarks:
        for kind, per_column in other.counts.items():
            for column, rows in per_column.items():
                self.add(kind, column, rows)
        return self

    def __bool__(self) -> bool:
        return any(self.counts.values())

    def __repr__(self) -> str:
        return f"Remarks({self.counts})"

    def lines(self) -> list[str]:
        """One-line remarks, e.g. ``... taken as 'other' in column (rows): 'city' (3)``."""
        def listing(kind: str) -> str:
            return ", ".join(f"{name!r} ({rows})" for name, rows in self.counts[kind].items())

        notes = []
        if self.counts["unseen"]:
            notes.append("values not among the training categories kept (unseen, or rare "
                         f"in training) were taken as 'other' in column (rows): "
                         f"{listing('unseen')}")
        if self.counts["unreadable"]:
            notes.append("unreadable booleans or dates were taken as missing in column "
                         f"(rows): {listing('unreadable')}")
        return notes


class Preprocessor:
    """Learns the encoding of a table's input columns (see the module docstring).

    ``max_categories``: most categories kept per text column; rarer values share one
    "other" column.
    """

    def __init__(self, max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        if isinstance(max_categories, bool) or not isinstance(max_categories, int) \
                or max_categories < 1:
            raise ValueError(f"max_categories must be an integer >= 1, got {max_categories!r}")
        self.max_categories = max_categories
        self.columns: list[dict[str, Any]] = []
        self.excluded: list[dict[str, str]] = []

    # -- description -----------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        """The input columns used, in order."""
        return [c["name"] for c in self.columns]

    @property
    def output_names(self) -> list[str]:
        """A name per encoded column (``age``, ``age (missing)``, ``sex=female``, ...)."""
        names: list[str] = []
        for c in self.columns:
            name, kind = c["name"], c["kind"]
            if kind == "category":
                names += [f"{name}={MISSING_LABEL if v is None else v}"
                          for v in c["categories"]]
                if c["other"]:
                    names.append(f"{name}={OTHER_LABEL}")
                continue
            if kind == "date":
                names += [f"{name}.{p}" for p in DATE_PARTS]
            else:
                names.append(name)
            if c["indicator"]:
                names.append(f"{name} {MISSING_LABEL}")
        return names

    @property
    def n_outputs(self) -> int:
        return len(self.output_names)

    def kinds(self) -> dict[str, str]:
        """Input column name -> kind."""
        return {c["name"]: c["kind"] for c in self.columns}

    # -- fitting ---------------------------------------------------------------------
    def fit(self, df: Any, plans: Sequence[ColumnPlan]) -> Preprocessor:
        """Learns each planned column's parameters from ``df`` (the training rows)."""
        columns: list[dict[str, Any]] = []
        excluded: list[dict[str, str]] = []
        for plan in plans:
            if plan.kind == "excluded":
                excluded.append({"name": plan.name, "reason": plan.reason})
                continue
            s = df[plan.name]
            if plan.kind in ("numeric", "boolean"):
                if plan.kind == "numeric":
                    values, _ = numeric_values(s)
                    _check_finite(plan.name, s, values)
                else:
                    values, _ = boolean_values(s)
                miss = np.isnan(values)
                columns.append({"name": plan.name, "kind": plan.kind,
                                "median": _median(values), "indicator": bool(miss.any())})
            elif plan.kind == "category":
                text = text_values(s)
                counts = Counter(text.tolist())
                ranked = sorted(counts.items(),
                                key=lambda kv: (-kv[1], kv[0] is not None, str(kv[0])))
                kept = [v for v, _ in ranked[:self.max_categories]]
                cats = sorted(kept, key=lambda v: (v is not None, str(v)))
                columns.append({"name": plan.name, "kind": "category", "categories": cats,
                                "other": len(ranked) > self.max_categories})
            elif plan.kind == "date":
                days, _ = date_days(s)
                origin = float(np.nanmin(days)) if np.isfinite(days).any() else 0.0
                parts = date_parts(days, origin)
                medians = [_median(parts[:, j]) for j in range(len(DATE_PARTS))]
                columns.append({"name": plan.name, "kind": "date", "origin": origin,
                                "medians": medians, "indicator": bool(np.isnan(days).any())})
            else:
                raise ValueError(f"unknown column kind {plan.kind!r} for {plan.name!r}")
        self.columns, self.excluded = columns, excluded
        return self

    # -- encoding --------------------------------------------------------------------
    def transform(self, df: Any) -> tuple[NDArray, list[str]]:
        """(encoded (n, n_outputs) float64, notes): ``notes`` are one-line remarks
        (values unseen in training, unreadable booleans/dates taken as missing)."""
        out, remarks = self.transform_counted(df)
        return out, remarks.lines()

    def transform_counted(self, df: Any) -> tuple[NDArray, Remarks]:
        """As :meth:`transform`, the remarks as counts (to sum over chunks of a file)."""
        n = len(df)
        out = np.empty((n, self.n_outputs), np.float64)
        remarks = Remarks()
        j = 0
        for c in self.columns:
            name, kind = c["name"], c["kind"]
            s = df[name]
            if kind in ("numeric", "boolean"):
                if kind == "numeric":
                    values, bad = numeric_values(s)
                    if bad.any():
                        p = int(np.flatnonzero(bad)[0])
                        raise ValueError(
                            f"feature column {name!r} holds numbers but also "
                            f"{text_values(s)[p]!r} at row {s.index[p]}: fix the cell "
                            "(leave a missing value empty)")
                    _check_finite(name, s, values)
                else:
                    values, bad = boolean_values(s)
                    if bad.any():
                        remarks.add("unreadable", name, int(bad.sum()))
                miss = np.isnan(values)
                out[:, j] = np.where(miss, c["median"], values)
                j += 1
                if c["indicator"]:
                    out[:, j] = miss
                    j += 1
            elif kind == "category":
                text = text_values(s)
                index = {v: i for i, v in enumerate(c["categories"])}
                width = len(c["categories"]) + (1 if c["other"] else 0)
                block = np.zeros((n, width))
                codes = np.fromiter((index.get(v, -1) for v in text), np.intp, n)
                new = codes < 0
                if new.any():
                    remarks.add("unseen", name, int(new.sum()))
                known = np.flatnonzero(~new)
                block[known, codes[known]] = 1.0
                if c["other"]:
                    block[new, -1] = 1.0
                out[:, j:j + width] = block
                j += width
            else:  # date
                days, bad = date_days(s)
                if bad.any():
                    remarks.add("unreadable", name, int(bad.sum()))
                parts = date_parts(days, c["origin"])
                miss = np.isnan(days)
                parts[miss] = c["medians"]
                out[:, j:j + len(DATE_PARTS)] = parts
                j += len(DATE_PARTS)
                if c["indicator"]:
                    out[:, j] = miss
                    j += 1
        return out, remarks

    # -- the state -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything fitted, JSON-safe (``from_state`` rebuilds it)."""
        return {"version": STATE_VERSION, "max_categories": self.max_categories,
                "columns": [dict(c) for c in self.columns],
                "excluded": [dict(e) for e in self.excluded]}

    @classmethod
    def numeric(cls, names: Sequence[str], medians: Sequence[float]) -> Preprocessor:
        """All-numeric columns with no indicator (the encoding of zeronn 0.1 model files)."""
        pre = cls()
        pre.columns = [{"name": str(n), "kind": "numeric", "median": float(m),
                        "indicator": False} for n, m in zip(names, medians)]
        return pre

    @classmethod
    def from_state(cls, state: Any) -> Preprocessor:
        """Rebuilds from :meth:`state`; anything malformed raises ValueError saying what."""
        def bad(why: str) -> ValueError:
            return ValueError(f"inconsistent preprocessing state: {why}")

        if not isinstance(state, dict):
            raise bad("not a mapping")
        if state.get("version") != STATE_VERSION:
            raise bad(f"version {state.get('version')!r} (this zeronn reads "
                      f"{STATE_VERSION}): upgrade zeronn")
        try:
            pre = cls(state.get("max_categories", DEFAULT_MAX_CATEGORIES))
        except ValueError as exc:
            raise bad(str(exc)) from None
        columns, excluded = state.get("columns"), state.get("excluded", [])
        if not isinstance(columns, list) or not columns:
            raise bad("columns must be a non-empty list")
        if not isinstance(excluded, list) or not all(
                isinstance(e, dict) and isinstance(e.get("name"), str)
                and isinstance(e.get("reason"), str) for e in excluded):
            raise bad("excluded must be a list of {name, reason}")
        names: set[str] = set()

        def number(c: dict[str, Any], key: str) -> float:
            v = c.get(key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(f"column {c.get('name')!r}: {key} must be a finite number, got {v!r}")
            return float(v)

        for c in columns:
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise bad("each column must be a mapping with a name")
            name, kind = c["name"], c.get("kind")
            if name in names:
                raise bad(f"column {name!r} appears twice")
            names.add(name)
            if kind not in ENCODED_KINDS:
                raise bad(f"column {name!r}: kind {kind!r} is not one of {ENCODED_KINDS}")
            if kind in ("numeric", "boolean", "date") and not isinstance(c.get("indicator"),
                                                                          bool):
                raise bad(f"column {name!r}: indicator must be true or false")
            if kind in ("numeric", "boolean"):
                number(c, "median")
            elif kind == "date":
                number(c, "origin")
                med = c.get("medians")
                if not isinstance(med, list) or len(med) != len(DATE_PARTS):
                    raise bad(f"column {name!r}: medians must be {len(DATE_PARTS)} numbers")
                for i in range(len(DATE_PARTS)):
                    number({"name": name, "m": med[i]}, "m")
            else:
                cats = c.get("categories")
                if not isinstance(cats, list) or not cats or not all(
                        v is None or isinstance(v, str) for v in cats) \
                        or len(set(cats)) != len(cats):
                    raise bad(f"column {name!r}: categories must be distinct texts (or null)")
                if not isinstance(c.get("other"), bool):
                    raise bad(f"column {name!r}: other must be true or false")
        pre.columns = [dict(c) for c in columns]
        pre.excluded = [dict(e) for e in excluded]
        return pre
