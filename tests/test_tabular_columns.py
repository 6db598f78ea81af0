"""Column kinds: numbers, booleans, categories, dates, and the columns left out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from zeronn.tabular.columns import (
    MIN_ROWS_FOR_EXCLUSION,
    boolean_values,
    date_days,
    is_missing,
    numeric_values,
    plan_columns,
)

N = 40


def kinds(df: pd.DataFrame, **kw) -> dict[str, str]:
    return {p.name: p.kind for p in plan_columns(df, list(df.columns), **kw)}


def mixed(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "Unnamed: 0": np.arange(n),
        "PassengerId": np.arange(1, n + 1),
        "age": np.where(np.arange(n) % 5 == 0, np.nan, rng.normal(30, 5, n)),
        "age_text": [("" if i % 4 == 0 else str(20 + i)) for i in range(n)],
        "sex": rng.choice(["male", "female"], n),
        "flag": rng.choice(["yes", "no", "NA"], n),
        "alive": rng.choice([True, False], n),
        "sold": [f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}" for i in range(n)],
        "name": [f"Person {i}, Mr. X" for i in range(n)],
        "ticket": [f"T{i:04d}" for i in range(n)],
        "month": rng.choice(["May", "June"], n),
        "empty": [None] * n,
    })


def test_each_kind_is_detected() -> None:
    assert kinds(mixed()) == {
        "Unnamed: 0": "excluded", "PassengerId": "excluded", "age": "numeric",
        "age_text": "numeric", "sex": "category", "flag": "boolean", "alive": "boolean",
        "sold": "date", "name": "excluded", "ticket": "excluded", "month": "category",
        "empty": "excluded"}


def test_exclusions_say_why_and_how_to_force() -> None:
    reasons = {p.name: p.reason for p in plan_columns(mixed(), list(mixed().columns))}
    assert "pandas index" in reasons["Unnamed: 0"]
    assert "(an ID)" in reasons["PassengerId"] and "--features" in reasons["PassengerId"]
    assert "free text" in reasons["name"]
    assert "no values" in reasons["empty"]
    assert reasons["sex"] == ""


def test_features_force_columns_in_and_exclude_leaves_them_out() -> None:
    df = mixed()
    forced = kinds(df[["PassengerId", "name", "sex"]], forced=True)
    assert forced == {"PassengerId": "numeric", "name": "category", "sex": "category"}
    assert kinds(df[["age", "sex"]], exclude=["sex"]) == {"age": "numeric", "sex": "excluded"}


def test_small_tables_never_lose_columns_to_the_id_rules() -> None:
    df = mixed(MIN_ROWS_FOR_EXCLUSION - 1)
    k = kinds(df)
    assert k["PassengerId"] == "numeric" and k["name"] == "category"


def test_numbers_with_stray_words_are_one_error_listing_every_column() -> None:
    df = pd.DataFrame({"a": ["1", "2", "abc", "4"] * 10, "b": ["1", "x", "3", "4"] * 10,
                       "c": ["u", "v", "w", "z"] * 10})
    with pytest.raises(ValueError, match=r"^2 columns .*--exclude\): column 'a' holds numbers "
                       r"but also 'abc' at row 2 \(10 such cells\); column 'b' .*'x'"):
        plan_columns(df, ["a", "b", "c"])


def test_many_spoilt_columns_lead_with_the_fix_and_list_ten() -> None:
    """Twelve spoilt columns: the fix comes first (a long message is cut at its end by the
    command line), then ten of them and how many more."""
    names = [f"col{i:02d}" for i in range(12)]
    df = pd.DataFrame({n: ["1", "2", "3", "4", "5"] * 4 for n in names})
    for i, n in enumerate(names):
        df.loc[i, n] = "oops"
    with pytest.raises(ValueError) as exc:
        plan_columns(df, names)
    text = str(exc.value)
    assert text.startswith("12 columns hold numbers but also text: fix the cells (leave a "
                           "missing value empty), or leave the columns out (--exclude): "
                           "column 'col00' holds numbers but also 'oops' at row 0; ")
    assert "'col09'" in text and "'col10'" not in text and text.endswith("; and 2 more")


def test_missing_texts() -> None:
    s = pd.Series(["", " NA ", "NaN", "null", None, "n/a", "x", "0"])
    np.testing.assert_array_equal(is_missing(s), [1, 1, 1, 1, 1, 1, 0, 0])
    values, bad = numeric_values(pd.Series(["1.5", "", "x"]))
    np.testing.assert_array_equal(np.isnan(values), [False, True, True])
    np.testing.assert_array_equal(bad, [False, False, True])
    b, bad = boolean_values(pd.Series(["Yes", "no", "", "maybe"]))
    np.testing.assert_array_equal(b[:2], [1.0, 0.0])
    assert np.isnan(b[2:]).all() and bad.tolist() == [False, False, False, True]


def test_dates_parse_formats_and_reject_non_dates() -> None:
    days, bad = date_days(pd.Series(["1970-01-02", "1970-01-01 12:00", "", "soon",
                                     "Jan 3, 1970"]))
    np.testing.assert_allclose(days[[0, 1, 4]], [1.0, 0.5, 2.0])
    assert np.isnan(days[2:4]).all() and bad.tolist() == [False, False, False, True, False]


@settings(max_examples=examples(30), deadline=None)
@given(st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=30))
def test_whole_numbers_round_trip_as_numeric(values: list[int]) -> None:
    s = pd.Series([str(v) for v in values], dtype=object)
    out, bad = numeric_values(s)
    np.testing.assert_array_equal(out, np.array(values, float))
    assert not bad.any()
    assert kinds(pd.DataFrame({"x": s}), forced=True) == {"x": "numeric"}
