"""The fitted encoding: imputation + indicators, one-hot with 'other', dates, the state."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from zeronn.tabular.columns import ColumnPlan
from zeronn.tabular.preprocessing import Preprocessor, Remarks, date_parts


def fitted(df: pd.DataFrame, kinds: dict[str, str], **kw) -> Preprocessor:
    return Preprocessor(**kw).fit(df, [ColumnPlan(n, k) for n, k in kinds.items()])


def test_numeric_matches_simple_imputer_with_indicator() -> None:
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    a[::7] = np.nan
    b = rng.normal(size=50)
    df = pd.DataFrame({"a": a, "b": b})
    pre = fitted(df, {"a": "numeric", "b": "numeric"})
    X, notes = pre.transform(df)
    want = SimpleImputer(strategy="median", add_indicator=True).fit_transform(df)
    np.testing.assert_allclose(X[:, [0, 2, 1]], want)
    assert pre.output_names == ["a", "a (missing)", "b"] and notes == []


def test_categories_keep_the_most_frequent_and_group_the_rest() -> None:
    df = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] + [None] * 3})
    pre = fitted(df, {"c": "category"}, max_categories=3)
    assert pre.columns[0]["categories"] == [None, "a", "b"] and pre.columns[0]["other"]
    assert pre.output_names == ["c=(missing)", "c=a", "c=b", "c=(other)"]
    X, notes = pre.transform(pd.DataFrame({"c": ["a", "", "d", "zzz"]}))
    np.testing.assert_array_equal(X, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1],
                                      [0, 0, 0, 1]])
    assert len(notes) == 1 and "'c' (2)" in notes[0]  # 'd' was grouped; 'zzz' is new


def test_unseen_without_other_is_all_zeros() -> None:
    pre = fitted(pd.DataFrame({"c": ["x", "y"]}), {"c": "category"})
    X, notes = pre.transform(pd.DataFrame({"c": ["q"]}))
    np.testing.assert_array_equal(X, [[0, 0]])
    assert "unseen" in notes[0]


def test_remarks_add_up_over_chunks_in_column_order() -> None:
    df = pd.DataFrame({"c": ["x", "y"] * 3, "f": ["yes", "no"] * 3,
                       "d": ["2024-03-01"] * 6})
    pre = fitted(df, {"c": "category", "f": "boolean", "d": "date"})
    new = pd.DataFrame({"c": ["q", "x", "r"], "f": ["maybe", "yes", ""],
                        "d": ["2024-03-02", "soon", "later"]})
    total = Remarks()
    assert not total and total.lines() == []
    for rows in (slice(0, 1), slice(1, 3), slice(0, 3)):
        X, remarks = pre.transform_counted(new.iloc[rows])
        np.testing.assert_array_equal(X, pre.transform(new.iloc[rows])[0])
        total += remarks
    assert total.counts == {"unseen": {"c": 4}, "unreadable": {"f": 2, "d": 4}}
    assert total.lines() == [
        "values not among the training categories kept (unseen, or rare in training) were "
        "taken as 'other' in column (rows): 'c' (4)",
        "unreadable booleans or dates were taken as missing in column (rows): 'f' (2), "
        "'d' (4)"]
    assert pre.transform(new)[1] == pre.transform_counted(new)[1].lines()


def test_booleans_and_dates() -> None:
    df = pd.DataFrame({"f": ["yes", "no", ""], "d": ["2024-03-01", "2024-03-04", ""]})
    pre = fitted(df, {"f": "boolean", "d": "date"})
    X, _ = pre.transform(df)
    np.testing.assert_array_equal(X[:, :2], [[1, 0], [0, 0], [0.5, 1]])
    # 2024-03-01 is a Friday (4), day 61 of a leap year; origin is the training minimum.
    np.testing.assert_array_equal(X[0, 2:8], [2024, 3, 4, 61, 0, 0])
    np.testing.assert_array_equal(X[1, 2:8], [2024, 3, 0, 64, 3, 0])
    assert X[2, 7] == 1 and pre.n_outputs == 8


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(-100_000, 100_000))
def test_date_parts_agree_with_pandas(day: int) -> None:
    ts = pd.Timestamp("1970-01-01") + pd.Timedelta(days=day)
    got = date_parts(np.array([day + 0.25]), origin=float(day))[0]
    np.testing.assert_array_equal(got, [ts.year, ts.month, ts.day_of_week, ts.day_of_year, 0.25])


def test_state_is_json_and_round_trips() -> None:
    df = pd.DataFrame({"n": [1.0, np.nan, 3.0], "c": ["a", None, "b"],
                       "d": ["2020-01-01", "2020-02-01", None], "f": ["yes", "no", "yes"]})
    pre = fitted(df, {"n": "numeric", "c": "category", "d": "date", "f": "boolean"})
    state = json.loads(json.dumps(pre.state()))
    back = Preprocessor.from_state(state)
    np.testing.assert_array_equal(back.transform(df)[0], pre.transform(df)[0])
    assert back.output_names == pre.output_names


@pytest.mark.parametrize(("edit", "message"), [
    (lambda s: s.update(version=9), "version 9"),
    (lambda s: s.update(columns=[]), "non-empty list"),
    (lambda s: s["columns"][0].update(kind="weird"), "kind 'weird'"),
    (lambda s: s["columns"][0].update(median=float("nan")), "median must be a finite"),
    (lambda s: s["columns"][0].update(indicator="yes"), "indicator must be"),
    (lambda s: s["columns"][1].update(categories=["a", "a"]), "distinct texts"),
    (lambda s: s["columns"][1].update(categories=[1]), "distinct texts"),
    (lambda s: s["columns"][1].update(other=None), "other must be"),
    (lambda s: s["columns"][2].update(medians=[1, 2]), "5 numbers"),
    (lambda s: s["columns"][2].update(origin="x"), "origin must be"),
    (lambda s: s["columns"].append(dict(s["columns"][0])), "appears twice"),
    (lambda s: s.update(excluded=[{"name": 1}]), "excluded must be"),
    (lambda s: s.update(max_categories=0), "max_categories"),
])
def test_hostile_states_are_refused(edit, message: str) -> None:
    df = pd.DataFrame({"n": [1.0, 2.0], "c": ["a", "b"], "d": ["2020-01-01", "2020-01-02"]})
    state = fitted(df, {"n": "numeric", "c": "category", "d": "date"}).state()
    edit(state)
    with pytest.raises(ValueError, match=message):
        Preprocessor.from_state(state)
    with pytest.raises(ValueError, match="not a mapping"):
        Preprocessor.from_state([1])
