"""A table model's ONNX graph takes the raw columns and equals predict on the hardest rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zeronn as zn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pd = pytest.importorskip("pandas")
tabular = pytest.importorskip("zeronn.tabular")
from zeronn.tabular import onnx_inputs  # noqa: E402  (after the extras are known present)


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _assert_close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    """Within ``rtol``, relative to each value or to the output's scale."""
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))
def _mixed_table(n: int, seed: int) -> Any:
    """Numbers with gaps, categories (a rare tail, missing cells), yes/no, dates."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 12, n).round(1)
    age[rng.random(n) < 0.15] = np.nan
    fare = np.exp(rng.normal(3, 1, n)).round(2)
    sex = rng.choice(["male", "female"], n)
    port = rng.choice(np.array(["S", "C", "Q", None], object), n, p=[0.6, 0.2, 0.15, 0.05])
    town = np.array([f"town{int(k)}" for k in rng.zipf(1.6, n) % 40], object)
    member = rng.choice(np.array(["yes", "no", None], object), n, p=[0.45, 0.45, 0.1])
    days = rng.integers(0, 3000, n)
    joined = np.array([str(np.datetime64("2015-01-01") + int(d)) for d in days], object)
    joined[rng.random(n) < 0.1] = ""
    df = pd.DataFrame({"age": age, "fare": fare, "sex": sex, "port": port, "town": town,
                       "member": member, "joined": joined})
    score = (np.nan_to_num(age, nan=40) / 12 + np.log(fare) + (sex == "female") * 1.5
             + (port == "C") - (member == "yes") * 0.8 + days / 1000 + rng.normal(0, 0.3, n))
    df["price"] = 100 + 20 * score
    df["grade"] = np.select([score > 7, score < 5.5], ["high", "low"], "mid")
    df["paid"] = np.where(score > 6.2, "yes", "no")
    return df


def _hostile_rows() -> Any:
    """Rows zeronn predict must still answer: gaps everywhere (columns that had none in
    training too), categories never seen, spellings of missing."""
    return pd.DataFrame({
        "age": [np.nan, 30.0, 61.5, np.nan, 18.0, 44.0],
        "fare": [np.nan, 12.5, 300.0, 7.25, np.nan, 1.0],
        "sex": ["female", "unknown", None, "male", "NA", "male"],
        "port": [None, "Zanzibar", "C", "", "S", "null"],
        "town": ["town1", "nowhere", None, "town3", "town39", "town2"],
        "member": [None, "yes", "no", "maybe", "yes", ""],
        "joined": ["", "2016-02-29", "2030-12-31", None, "1999-07-04", "2018-06-15"],
    })


def _feeds(frame: Any, kinds: dict[str, str]) -> dict[str, np.ndarray]:
    """The graph's inputs, written out by hand from values in their plain forms (the
    documented contract, independent of the model's own helper)."""
    out = {}
    for name, kind in kinds.items():
        s = frame[name]
        if kind == "category":
            v = np.array(["" if x is None or x is np.nan else str(x) for x in s], object)
        elif kind == "boolean":
            v = np.array([{"yes": 1.0, "no": 0.0}.get(x, np.nan) for x in s], np.float32)
        elif kind == "date":
            t = pd.to_datetime(s.replace("", None), format="ISO8601")
            v = ((t - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)).to_numpy(np.float64)
        else:
            v = s.to_numpy(np.float32)
        out[name] = v.reshape(-1, 1)
    return out


@pytest.mark.filterwarnings("ignore::UserWarning")  # unseen categories, as zeronn warns
@pytest.mark.parametrize("target", ["price", "grade", "paid"])
def test_tabular_model_takes_raw_columns(tmp_path, target):
    df = _mixed_table(240, seed=1)
    features = ["age", "fare", "sex", "port", "town", "member", "joined"]
    model = tabular.TabularModel(hidden=(12,), epochs=25, max_categories=8)
    model.fit(df, target, features=features)
    kinds = model.preprocessor.kinds()
    assert kinds == {"age": "numeric", "fare": "numeric", "sex": "category",
                     "port": "category", "town": "category", "member": "boolean",
                     "joined": "date"}
    path = tmp_path / "t.onnx"
    zn.export_onnx(model, path)
    sess = _session(path)
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("age", "tensor(float)"), ("fare", "tensor(float)"), ("sex", "tensor(string)"),
        ("port", "tensor(string)"), ("town", "tensor(string)"), ("member", "tensor(float)"),
        ("joined", "tensor(double)")]
    rows = pd.concat([df[features].iloc[:40], _hostile_rows()], ignore_index=True)
    for feeds in (_feeds(rows, kinds), model.onnx_inputs(rows)):
        outs = sess.run(None, feeds)
        want = model.predict(rows)
        if model.classes:
            label, proba = outs
            assert list(label) == list(want)
            _assert_close(proba, model.predict_proba(rows))
        else:
            _assert_close(outs[0], want)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["feature_names"]) == features
    assert json.loads(props["encoded_names"]) == model.preprocessor.output_names


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_dates_of_a_short_span_match_predict(tmp_path):
    """Sales over two years: the year part is about 2020.5 with a spread of 0.5, so
    standardizing it in float32 (its mean stored to 6e-5) is off by 1e-4 of a standard
    deviation, and the price by more than 1e-5 of its scale; the graph standardizes in
    double."""
    rng = np.random.default_rng(1)
    n = 300
    days = rng.integers(0, 700, n)
    when = pd.Timestamp("2020-01-01") + pd.to_timedelta(days, unit="D")
    x = rng.normal(size=n).round(3)
    df = pd.DataFrame({"city": rng.choice(["a", "b", "c", "d"], n),
                       "sold": when.strftime("%Y-%m-%d"), "x": x,
                       "y": 2 * x + 3 * (when.year - 2020) + rng.normal(0, 0.1, n)})
    model = tabular.TabularModel(epochs=30)
    model.fit(df, "y")
    year = model.preprocessor.output_names.index("sold.year")
    mean, scale = model.x_mean[year], model.x_scale[year]
    assert abs(float(np.float32(mean)) - mean) / scale > 1e-4  # the hard case, indeed
    zn.export_onnx(model, tmp_path / "s.onnx")
    rows = pd.concat([df.iloc[:50], pd.DataFrame({"city": ["zz", None], "x": [np.nan, 1.0],
                                                  "sold": ["", "2023-01-01"]})])
    got = _session(tmp_path / "s.onnx").run(None, model.onnx_inputs(rows))[0]
    _assert_close(got, model.predict(rows))


def test_columns_encode_to_the_preprocessings_outputs():
    """Each kind maps to its input type, and the encoded widths are the model's features."""
    df = _mixed_table(120, seed=2)
    model = tabular.TabularModel(hidden=(4,), epochs=2, max_categories=5)
    model.fit(df, "price", features=["age", "fare", "sex", "port", "town", "member",
                                     "joined"])
    pre = model.preprocessor
    cols = onnx_inputs.onnx_columns(pre)
    assert [c.name for c in cols] == pre.input_names
    assert sum(c.width for c in cols) == pre.n_outputs == model.net.input_shape[0]
    assert {c.name: onnx_inputs.INPUT_TYPES[pre.kinds()[c.name]] for c in cols} == {
        "age": "float", "fare": "float", "sex": "string", "port": "string",
        "town": "string", "member": "float", "joined": "double"}
    port = next(c for c in cols if c.name == "port")  # categories None, C, Q, S; no other
    assert port.params["default"] == -1 and port.params["width"] == 4
    assert {port.params["mapping"][t] for t in ("", "NA", "NaN", "null", "None", "N/A")} == {0}
    town = next(c for c in cols if c.name == "town")  # rare towns share "other", last
    assert town.params["default"] == town.params["width"] - 1 == 5
    feeds = model.onnx_inputs(_hostile_rows())
    assert feeds["member"][:, 0].tolist()[:3] == [pytest.approx(np.nan, nan_ok=True), 1.0, 0.0]
    assert feeds["port"][:, 0].tolist() == ["", "Zanzibar", "C", "", "S", ""]
    assert feeds["age"].dtype == np.float32 and feeds["joined"].dtype == np.float64
    assert feeds["joined"][1, 0] == (np.datetime64("2016-02-29") - np.datetime64(
        "1970-01-01")).astype(int)


def test_onnx_inputs_name_what_is_wrong():
    df = _mixed_table(60, seed=3)
    model = tabular.TabularModel(hidden=(4,), epochs=2)
    model.fit(df, "price", features=["age", "sex"])
    with pytest.raises(ValueError, match="lacks the model's feature column 'sex'"):
        model.onnx_inputs(df[["age"]])
    with pytest.raises(ValueError, match="'age' holds numbers but also 'old' at row 1"):
        model.onnx_inputs(pd.DataFrame({"age": ["old", "3"], "sex": ["male", "female"]},
                                       index=[1, 2]))
    with pytest.raises(ValueError, match="not fitted"):
        tabular.TabularModel().onnx_inputs(df)


def test_a_model_file_of_numbers_only_exports_per_column(tmp_path):
    """A 0.1 model file (numbers only, no preprocessing stored) exports with one float
    input per column too: the stored mean stands in for a missing value, as predict does."""
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"x": rng.normal(size=50), "z": rng.normal(size=50)})
    df["y"] = 3 * df["x"] - df["z"]
    model = tabular.TabularModel(hidden=(4,), epochs=5)
    model.fit(df, "y")
    net, meta, arrays = model.zeronn_state()
    del meta["preprocessing"]  # what a 0.1 file holds
    old = tabular.TabularModel.from_zeronn_state(net, meta, arrays)
    zn.export_onnx(old, tmp_path / "old.onnx")
    sess = _session(tmp_path / "old.onnx")
    rows = pd.DataFrame({"x": [0.5, np.nan], "z": [np.nan, -1.0]})
    (got,) = sess.run(None, old.onnx_inputs(rows))
    _assert_close(got, old.predict(rows))


def test_describe_inputs_says_what_each_input_holds():
    df = _mixed_table(60, seed=6)
    model = tabular.TabularModel(hidden=(4,), epochs=2)
    model.fit(df, "price", features=["age", "sex", "member", "joined"])
    assert onnx_inputs.describe_inputs(model.preprocessor) == [
        "age (float, NaN if missing)", "sex (string, '' if missing)",
        "member (float 1/0, NaN if missing)",
        "joined (double: days since 1970-01-01, NaN if missing)"]
