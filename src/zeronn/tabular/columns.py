"""What each column of a table is: numbers, booleans, categories, dates, or left out.

:func:`plan_columns` looks at the training rows and decides, per candidate feature column,
one of :data:`KINDS`:

- ``"numeric"``: every present value reads as a number (pandas dtype or text that
  parses).
- ``"boolean"``: a bool column, or text whose present values are all among
  ``true/false``, ``yes/no`` (any case).
- ``"date"``: text whose present values all look like dates (``2024-03-01``,
  ``01/03/2024``, ``2024-03-01 12:30``, ``Mar 1, 2024``) and parse as such.
- ``"category"``: any other text.
- ``"excluded"``: left out, with the reason: a pandas index column (``Unnamed: 0``); an
  ID-like column (a distinct integer per row running without gaps, or an ``id``-named
  column of distinct values, or distinct text per row); free text (at least
  :data:`FREE_TEXT_SHARE` of the present values distinct, with more than
  :data:`MIN_ROWS_FOR_EXCLUSION` rows); a column with no value at all.

Missing cells are the empty string, pandas' NA/NaN/None and the texts of
:data:`MISSING_TEXTS` (any case, surrounding spaces ignored); they never decide a kind.

``features`` (the ``--features`` option) forces columns in: a forced column is never
excluded (an ID or free text becomes a number or a category). ``exclude`` (``--exclude``)
leaves columns out. A column mostly of numbers with a few stray words (``"abc"`` among
numbers) is a data error, not a category: every such column is listed in one message.

pandas is needed only by the functions that read a column (imported lazily).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FREE_TEXT_SHARE", "KINDS", "MIN_ROWS_FOR_EXCLUSION", "MISSING_TEXTS",
           "ColumnPlan", "boolean_values", "date_days", "is_missing", "numeric_values",
           "plan_columns", "text_values"]

KINDS = ("numeric", "boolean", "category", "date", "excluded")
MISSING_TEXTS = frozenset({"", "na", "nan", "null", "none", "n/a"})
TRUE_TEXTS = frozenset({"true", "yes"})
FALSE_TEXTS = frozenset({"false", "no"})
FREE_TEXT_SHARE = 0.9  # distinct share of present values above which text is "free text"
MIN_ROWS_FOR_EXCLUSION = 20  # fewer present values: a column is never judged ID or free text
MAX_LISTED = 10  # column problems listed in one message
_ID_NAME = re.compile(r"(?i)^(id|.*[_\s-]id|.*Id|index|key|uuid)$")
# A date needs digits in a date shape: bare words ("May") or numbers are not dates.
_DATE_SHAPE = re.compile(
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
    r"|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}|\d{1,2} [A-Za-z]{3,9}\.? \d{4}")
_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True)
class ColumnPlan:
    """One candidate feature column: its ``name``, its ``kind`` (one of :data:`KINDS`) and
    ``reason``, the one line that says why an excluded column was left out ("" otherwise)."""

    name: str
    kind: str
    reason: str = ""


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ValueError("reading tables needs pandas: pip install 'zeronn[data]'") from None
    return pd


def is_missing(series: Any) -> NDArray:
    """(n,) bool: True where a cell is missing (NA, NaN, None, or a :data:`MISSING_TEXTS`)."""
    pd = _pandas()
    na = series.isna().to_numpy(dtype=bool)
    if series.dtype.kind in "biufcmM":
        return na
    text = series.astype(object).where(~na, "").astype(str).str.strip().str.lower()
    return na | text.isin(MISSING_TEXTS).to_numpy(dtype=bool) | pd.isna(series).to_numpy()


def text_values(series: Any) -> NDArray:
    """(n,) object: each present cell as stripped text, missing cells as None."""
    missing = is_missing(series)
    out = series.astype(object).astype(str).str.strip().to_numpy(dtype=object)
    out[missing] = None
    return out


def numeric_values(series: Any) -> tuple[NDArray, NDArray]:
    """(values (n,) float64 with NaN where missing, bad (n,) bool: present but not a number).

    Infinite values stay (callers decide); text that parses (``"3.5"``) counts as a number.
    """
    pd = _pandas()
    if series.dtype.kind in "biuf":
        v = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return v, np.zeros(len(v), bool)
    missing = is_missing(series)
    obj = series.astype(object).where(~missing, None)
    num = pd.to_numeric(obj, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return num, np.isnan(num) & ~missing


def boolean_values(series: Any) -> tuple[NDArray, NDArray]:
    """(values (n,) float64 1.0/0.0, NaN where missing or unreadable, unreadable (n,) bool)."""
    if series.dtype.kind == "b":
        return series.to_numpy(dtype=np.float64), np.zeros(len(series), bool)
    text = text_values(series)
    out = np.full(len(text), np.nan)
    bad = np.zeros(len(text), bool)
    for i, t in enumerate(text):
        if t is None:
            continue
        low = t.lower()
        if low in TRUE_TEXTS or low in ("1", "1.0"):
            out[i] = 1.0
        elif low in FALSE_TEXTS or low in ("0", "0.0"):
            out[i] = 0.0
        else:
            bad[i] = True
    return out, bad


def date_days(series: Any) -> tuple[NDArray, NDArray]:
    """(days since 1970-01-01 (n,) float64, NaN where missing or unreadable; unreadable (n,)).

    Time zones are converted to UTC; a time of day is kept as a fraction of a day.
    """
    pd = _pandas()
    if series.dtype.kind == "M":
        stamps = pd.to_datetime(series, utc=True)
        bad = np.zeros(len(series), bool)
    else:
        text = text_values(series)
        present = np.array([t is not None for t in text], bool)
        shaped = np.array([t is not None and bool(_DATE_SHAPE.search(t)) for t in text], bool)
        with warnings.catch_warnings():
            # pandas warns when it falls back to parsing each value on its own.
            warnings.simplefilter("ignore")
            kept = pd.Series([t if ok else None for t, ok in zip(text, shaped)], dtype=object)
            stamps = pd.to_datetime(kept, errors="coerce",
                                    utc=True, format="mixed")
        bad = present & (stamps.isna().to_numpy() | ~shaped)
    ns = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    days = ns / _DAY_NS
    days[stamps.isna().to_numpy() | bad] = np.nan
    return days, bad


def _looks_like_dates(text: NDArray) -> bool:
    """True when every present value has a date's shape and parses (a sample first)."""
    pd = _pandas()
    present = [t for t in text if t is not None]
    if not present or not all(_DATE_SHAPE.search(t) for t in present[:200]):
        return False
    if not all(_DATE_SHAPE.search(t) for t in present):
        return False
    _, bad = date_days(pd.Series(present, dtype=object))
    return not bool(bad.any())


def _detect(name: str, series: Any, forced: bool) -> tuple[str, str, str | None]:
    """(kind, reason, problem): ``problem`` is a data error to report, else None."""
    if series.dtype.kind == "b":
        return "boolean", "", None
    if series.dtype.kind == "M":
        return "date", "", None
    missing = is_missing(series)
    n_present = int((~missing).sum())
    if n_present == 0:
        return ("numeric", "", None) if forced else (
            "excluded", f"column {name!r} has no values: left out", None)
    judge = not forced and n_present >= MIN_ROWS_FOR_EXCLUSION
    hint = f"give --features (with {name!r} among them) to use it"
    if judge and name.startswith("Unnamed:"):
        return "excluded", f"column {name!r} looks like a saved pandas index: left out; " \
            f"{hint}", None
    values, bad = numeric_values(series)
    n_bad = int(bad.sum())
    if n_bad == 0:
        present = values[~missing]
        if judge and np.all(present == np.round(present)) and np.isfinite(present).all():
            distinct = np.unique(present)
            if distinct.size == n_present and (
                    distinct[-1] - distinct[0] == n_present - 1 or _ID_NAME.match(name)):
                return "excluded", f"column {name!r} holds a distinct whole number per row " \
                    f"(an ID): left out; {hint}", None
        return "numeric", "", None
    text = text_values(series)
    if series.dtype.kind not in "biuf" and set(
            t.lower() for t in text if t is not None) <= TRUE_TEXTS | FALSE_TEXTS:
        return "boolean", "", None
    bad_texts = sorted({str(t) for t in text[bad]})
    if n_bad < n_present - n_bad and (n_bad <= 0.1 * n_present or len(bad_texts) <= 3):
        first = int(np.flatnonzero(bad)[0])
        return "category", "", (
            f"column {name!r} holds numbers but also {text[first]!r} at row "
            f"{series.index[first]}"
            + (f" ({n_bad} such cells)" if n_bad > 1 else ""))
    if _looks_like_dates(text):
        return "date", "", None
    if judge:
        n_distinct = len({t for t in text if t is not None})
        words = any(" " in t for t in text[:200] if t is not None)
        if n_distinct == n_present and not words:
            return "excluded", f"column {name!r} holds a distinct text per row (an ID): " \
                f"left out; {hint}", None
        if n_distinct >= FREE_TEXT_SHARE * n_present:
            return "excluded", f"column {name!r} is free text ({n_distinct} distinct values " \
                f"in {n_present} rows): left out; {hint}", None
    return "category", "", None


def plan_columns(df: Any, candidates: Sequence[Any], forced: bool = False,
                 exclude: Sequence[str] = ()) -> list[ColumnPlan]:
    """The kind of each column of ``df`` named in ``candidates`` (frame keys), in order.

    ``forced``: the candidates were chosen by the user (``--features``), so none is left
    out by the ID/free-text rules. ``exclude``: names left out by request. Columns of
    numbers spoilt by a few words raise one ValueError listing them all (up to
    :data:`MAX_LISTED`).
    """
    skip = {str(e) for e in exclude}
    plans: list[ColumnPlan] = []
    problems: list[str] = []
    for col in candidates:
        name = str(col)
        if name in skip:
            plans.append(ColumnPlan(name, "excluded", f"column {name!r} left out (--exclude)"))
            continue
        kind, reason, problem = _detect(name, df[col], forced)
        if problem:
            problems.append(problem)
        plans.append(ColumnPlan(name, kind, reason))
    if len(problems) == 1:
        raise ValueError(f"{problems[0]}: fix the cells (leave a missing value empty), or "
                         "leave the column out (--exclude)")
    if problems:
        # The fix first: a long list is what a one-line report may cut.
        more = len(problems) - MAX_LISTED
        listed = "; ".join(problems[:MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        raise ValueError(f"{len(problems)} columns hold numbers but also text: fix the cells "
                         "(leave a missing value empty), or leave the columns out "
                         f"(--exclude): {listed}")
    return plans
