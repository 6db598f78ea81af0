"""A table model's ONNX inputs: one graph input per feature column, named after it.

:func:`onnx_columns` describes a fitted :class:`~zeronn.tabular.preprocessing.Preprocessor`
to ``zeronn.onnx_export`` as :class:`~zeronn.onnx_export.InputColumn` s, through one table
keyed by the column's kind, so the graph computes the same encoding from the raw columns
(as scikit-learn-onnx does for a ``ColumnTransformer``). What each input holds, shape
(batch, 1):

=========  ================  ==========================================================
kind       element type      value
=========  ================  ==========================================================
numeric    ``float``         the number; NaN when missing
boolean    ``float``         1 for true (true/yes/1), 0 for false; NaN when missing
category   ``string``        the text with surrounding spaces stripped; ``""`` (or NA,
                             NaN, null, None, n/a in their usual cases) when missing
date       ``double``        days since 1970-01-01 00:00 UTC, a time of day as the
                             fraction; NaN when missing
=========  ================  ==========================================================

Why these: numbers and booleans are what every language's float is, with NaN as the one
missing marker (a boolean's spellings vary, its 0/1 does not). Categories stay text so a
caller passes the cells it has; a value the model never saw lights the "other" column (or
none), as ``predict`` does. Dates come as days, not text: the model file's reader accepts
many date formats (``01/03/2024``, ``Mar 1, 2024``, time zones) that no ONNX operator
parses, while days since the epoch are one subtraction away in any language and exact
in double precision (float32 would round a datetime to minutes); the graph derives the
calendar parts from them. :func:`onnx_inputs` makes these inputs from a DataFrame with
the same parsing ``predict`` uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.onnx_export import InputColumn
from zeronn.tabular.columns import (
    MISSING_TEXTS,
    boolean_values,
    date_days,
    numeric_values,
    text_values,
)
from zeronn.tabular.preprocessing import DATE_PARTS, Preprocessor

__all__ = ["INPUT_NOTES", "INPUT_TYPES", "MISSING_SPELLINGS", "describe_inputs",
           "onnx_columns", "onnx_inputs"]


def _spellings() -> tuple[str, ...]:
    out: list[str] = []
    for t in sorted(MISSING_TEXTS):
        for v in (t, t.upper(), t.title(), t.capitalize(), "NaN" if t == "nan" else t):
            if v not in out:
                out.append(v)
    return tuple(out)


#: The texts a category input may hold for a missing cell: the reader's missing texts in
#: their usual cases ("", "NA", "NaN", "nan", "null", "NULL", "None", "n/a", "N/A"...).
#: Other spellings or case mixes are values like any other.
MISSING_SPELLINGS = _spellings()


def _number(c: dict[str, Any]) -> InputColumn:
    return InputColumn(c["name"], "number", {"fill": c["median"], "indicator": c["indicator"]})


def _category(c: dict[str, Any]) -> InputColumn:
    cats = c["categories"]
    mapping = {v: i for i, v in enumerate(cats) if v is not None}
    if None in cats:  # the "missing" category: every spelling of a missing cell
        mapping.update({t: cats.index(None) for t in MISSING_SPELLINGS})
    # Without a "missing" category a missing cell is a value never seen: like predict, it
    # lights the "other" column, or none when every training value has its own column.
    width = len(cats) + bool(c["other"])
    return InputColumn(c["name"], "category", {
        "mapping": mapping, "width": width, "default": width - 1 if c["other"] else -1})


def _date(c: dict[str, Any]) -> InputColumn:
    return InputColumn(c["name"], "days", {"parts": list(DATE_PARTS), "origin": c["origin"],
                                           "fill": list(c["medians"]),
                                           "indicator": c["indicator"]})


def _as_numbers(name: str, series: Any) -> NDArray:
    values, bad = numeric_values(series)
    if bad.any():
        p = int(np.flatnonzero(bad)[0])
        raise ValueError(f"feature column {name!r} holds numbers but also "
                         f"{text_values(series)[p]!r} at row {series.index[p]}: fix the cell "
                         "(leave a missing value empty)")
    return values.astype(np.float32)


def _as_booleans(name: str, series: Any) -> NDArray:
    return boolean_values(series)[0].astype(np.float32)


def _as_text(name: str, series: Any) -> NDArray:
    return np.array(["" if t is None else t for t in text_values(series)], dtype=object)


def _as_days(name: str, series: Any) -> NDArray:
    return date_days(series)[0]


#: Per kind of column: the element type of its graph input, how the fitted column
#: becomes an ``InputColumn``, and how a DataFrame column becomes that input's values.
INPUT_TYPES: dict[str, str] = {"numeric": "float", "boolean": "float", "category": "string",
                               "date": "double"}
#: What each kind's input holds, in a few words (``zeronn export`` prints them).
INPUT_NOTES: dict[str, str] = {
    "numeric": "float, NaN if missing",
    "boolean": "float 1/0, NaN if missing",
    "category": "string, '' if missing",
    "date": "double: days since 1970-01-01, NaN if missing",
}
_KINDS: dict[str, tuple[Callable[[dict[str, Any]], InputColumn],
                        Callable[[str, Any], NDArray]]] = {
    "numeric": (_number, _as_numbers),
    "boolean": (_number, _as_booleans),
    "category": (_category, _as_text),
    "date": (_date, _as_days),
}
assert set(_KINDS) == set(INPUT_TYPES) == set(INPUT_NOTES)


def onnx_columns(pre: Preprocessor) -> tuple[InputColumn, ...]:
    """The graph inputs of ``pre``'s columns, in order; their encodings yield exactly
    ``pre.output_names`` (so ``pre.n_outputs`` columns)."""
    return tuple(_KINDS[c["kind"]][0](c) for c in pre.columns)


def onnx_inputs(pre: Preprocessor, df: Any) -> dict[str, NDArray]:
    """The graph's inputs for the rows of DataFrame ``df`` (n rows): column name -> (n, 1)
    array (float32, object strings or float64, see the module docstring), read with the
    parsing ``predict`` uses. ``df`` must hold every input column (others are ignored)."""
    absent = [name for name in pre.input_names if name not in df.columns]
    if absent:
        raise ValueError(f"the data lacks the model's feature column(s) "
                         f"{', '.join(map(repr, absent))}")
    return {c["name"]: _KINDS[c["kind"]][1](c["name"], df[c["name"]]).reshape(-1, 1)
            for c in pre.columns}


def describe_inputs(pre: Preprocessor) -> list[str]:
    """One ``"name (what it holds)"`` per graph input, in order."""
    return [f"{c['name']} ({INPUT_NOTES[c['kind']]})" for c in pre.columns]
