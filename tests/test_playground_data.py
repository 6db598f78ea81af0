"""The playground's datasets, features, grids and CSV uploads (zeronn.playground.data)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from zeronn.playground import data

BINARY = ["circle", "xor", "gauss", "spiral", "moons"]


@pytest.mark.parametrize("name", data.DATASETS)
@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_datasets_have_the_shapes_ranges_and_labels_promised(name, noise):
    X, y = data.make_dataset(name, n_points=300, noise=noise, seed=3, classes=4)
    assert X.shape == (300, 2) and y.shape == (300,)
    assert X.dtype == np.float64 and np.all(np.isfinite(X))
    if noise == 0:  # noise may push a few Gaussian points over the edge; without, none
        assert np.abs(X).max() <= data.EXTENT
    if name in BINARY:
        assert set(np.unique(y)) == {0.0, 1.0}
    elif name == "multiclass":
        assert set(np.unique(y)) == {0.0, 1.0, 2.0, 3.0}
    else:
        assert y.min() >= -1 and y.max() <= 1 and len(np.unique(y)) > 10


@pytest.mark.parametrize("name", data.DATASETS)
def test_a_seed_gives_the_same_points_and_another_seed_others(name):
    a = data.make_dataset(name, 200, 0.1, seed=7)
    b = data.make_dataset(name, 200, 0.1, seed=7)
    c = data.make_dataset(name, 200, 0.1, seed=8)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_the_classic_rules_hold_without_noise():
    X, y = data.make_dataset("circle", 400, 0.0, seed=0)
    np.testing.assert_array_equal(y == 1, np.hypot(X[:, 0], X[:, 1]) < 2.5)
    X, y = data.make_dataset("xor", 400, 0.0, seed=0)
    np.testing.assert_array_equal(y == 1, X[:, 0] * X[:, 1] >= 0)
    assert np.abs(X).min() >= 0.3  # kept off the axes
    X, y = data.make_dataset("plane", 400, 0.0, seed=0)
    np.testing.assert_allclose(y, np.clip((X[:, 0] + X[:, 1]) / 10, -1, 1))
    X, y = data.make_dataset("gauss", 400, 0.0, seed=0)
    assert X[y == 1].mean(axis=0) == pytest.approx([2, 2], abs=0.3)
    assert X[y == 0].mean(axis=0) == pytest.approx([-2, -2], abs=0.3)


@pytest.mark.parametrize("shape", ["blobs", "spiral"])
@pytest.mark.parametrize("k", [3, 4, 5])
def test_multiclass_has_k_balanced_classes(shape, k):
    _, y = data.make_dataset("multiclass", 500, 0.0, seed=1, classes=k, multiclass_shape=shape)
    counts = np.bincount(y.astype(int))
    assert len(counts) == k and counts.max() - counts.min() <= 1


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown dataset 'rings'.*circle"):
        data.make_dataset("rings")
    with pytest.raises(ValueError, match="multiclass_shape"):
        data.make_dataset("multiclass", multiclass_shape="stars")


def test_features_are_the_functions_of_x1_and_x2():
    X = np.array([[1.0, 2.0], [-3.0, 0.5]])
    F = data.make_features(X, ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"])
    expected = np.array([[1, 2, 1, 4, 2, np.sin(1), np.sin(2)],
                         [-3, 0.5, 9, 0.25, -1.5, np.sin(-3), np.sin(0.5)]])
    np.testing.assert_allclose(F, expected)
    assert data.make_features(X, ["x2"]).shape == (2, 1)


def test_grid_points_run_row_major_from_the_top_left():
    g = data.grid_points(4)
    assert g.shape == (16, 2)
    np.testing.assert_allclose(g[0], [-4.5, 4.5])  # top-left cell centre
    np.testing.assert_allclose(g[3], [4.5, 4.5])  # top-right: x grows along a row
    np.testing.assert_allclose(g[4], [-4.5, 1.5])  # next row: y goes down
    np.testing.assert_allclose(g[-1], [4.5, -4.5])


@pytest.mark.parametrize(("n", "share", "k"), [(500, 0.5, 250), (100, 0.1, 10), (4, 0.9, 3),
                                               (5, 0.1, 1)])
def test_split_keeps_the_share_and_at_least_one_row_each_side(n, share, k):
    X, y = np.arange(2 * n).reshape(n, 2), np.arange(n)
    Xtr, ytr, Xte, yte = data.split(X, y, share)
    assert len(Xtr) == len(ytr) == k and len(Xte) == len(yte) == n - k
    np.testing.assert_array_equal(np.concatenate([ytr, yte]), y)


@given(arrays(np.float64, st.integers(1, 30),
              elements=st.floats(-1e6, 1e6, allow_nan=False)),
       st.floats(-10, 0), st.floats(0.5, 10))
def test_scale_to_maps_min_and_max_onto_the_bounds(values, lo, width):
    hi = lo + width
    out = data.scale_to(values, lo, hi)
    assert out.shape == values.shape
    assert np.all(out >= lo - 1e-9 * width) and np.all(out <= hi + 1e-9 * width)
    if values.max() > values.min():
        assert out[np.argmin(values)] == pytest.approx(lo)
        assert out[np.argmax(values)] == pytest.approx(hi)
        # Order is kept: scaling is monotone.
        assert np.all(np.diff(out[np.argsort(values, kind="stable")]) >= -1e-9 * width)
    else:
        np.testing.assert_allclose(out, (lo + hi) / 2)


# -- uploads ----------------------------------------------------------------------------
def test_parse_csv_reads_columns_and_finds_the_numeric_ones():
    t = data.parse_csv(b"a,b,label,c\n1,2.5,x,3\n-1,0,y,z\n4,5e-1,x,1\n")
    assert t.columns == ["a", "b", "label", "c"] and t.rows == 3
    assert t.numeric_columns == ["a", "b"]
    np.testing.assert_allclose(t.numeric["b"], [2.5, 0, 0.5])


def test_parse_csv_sniffs_semicolons_and_skips_a_bom_and_blank_lines():
    t = data.parse_csv("\ufeffx;y;t\n1;2;a\n\n3;4;b\n".encode())
    assert t.columns == ["x", "y", "t"] and t.rows == 2 and t.numeric_columns == ["x", "y"]


@pytest.mark.parametrize(("raw", "needle"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a CSV"),
    ("a,b\n1,2\n".encode("utf-16"), "not a CSV|UTF-8"),
    (b"\xff\xfe\xfa,b\n", "UTF-8"),
    (b"justonecolumn\n1\n2\n", "fewer than 2 columns"),
    (b"a,b,c\n", "no data rows"),
    (b"a,b,c\n1,2\n", "row 1 has 2 cells"),
    (b"a,a,c\n1,2,3\n", "distinct"),
    (b"a,b,c\n1,x,y\n2,z,w\n", "1 numeric column"),
    (b"a,b,c\n1,nan,x\n2,3,y\n", "1 numeric column"),
])
def test_bad_files_are_refused_naming_the_problem(raw, needle):
    with pytest.raises(ValueError, match=needle):
        data.parse_csv(raw)


def test_too_many_rows_and_bytes_are_refused():
    rows = "a,b,c\n" + "1,2,3\n" * (data.MAX_UPLOAD_ROWS + 1)
    with pytest.raises(ValueError, match="at most 5000 rows"):
        data.parse_csv(rows.encode())
    with pytest.raises(ValueError, match="2 MB"):
        data.parse_csv(b"a,b\n" + b"1,2\n" * (data.MAX_UPLOAD_BYTES // 4 + 1))


def _table(target: list[str]) -> data.Table:
    n = len(target)
    lines = ["u,v,t"] + [f"{i},{(i * 7) % 5},{t}" for i, t in zip(range(n), target)]
    return data.parse_csv("\n".join(lines).encode())


def test_a_text_target_is_classification_in_sorted_order():
    t = _table(["dog", "cat", "cat", "emu", "dog", "cat"])
    X, y, classes = data.table_dataset(t, "u", "v", "t", seed=0)
    assert classes == ["cat", "dog", "emu"]
    assert X.shape == (6, 2) and X.min() == -6 and X.max() == 6
    assert sorted(y.tolist()) == [0, 0, 0, 1, 1, 2]


def test_a_numeric_target_with_few_integers_is_classification_else_regression():
    _, y, classes = data.table_dataset(_table(["1", "3", "1", "3", "1"]), "u", "v", "t")
    assert classes == ["1", "3"] and set(y) == {0.0, 1.0}
    _, y, classes = data.table_dataset(_table(["0.5", "1.5", "2", "7", "9"]), "u", "v", "t")
    assert classes == [] and y.min() == -1 and y.max() == 1


@pytest.mark.parametrize(("target", "args", "needle"), [
    (list("abcdef"), ("u", "v", "t"), "6 distinct values"),
    (["a"] * 5, ("u", "v", "t"), "single value"),
    (["a", "b"] * 3, ("u", "nope", "t"), "upload_x2 'nope' is not a column"),
    (["a", "b"] * 3, ("u", "t", "v"), "upload_x2 't' is not a numeric column"),
    (["a", "b", "a"], ("u", "v", "t"), "at least 4"),
])
def test_bad_column_choices_are_refused(target, args, needle):
    with pytest.raises(ValueError, match=needle):
        data.table_dataset(_table(target), *args)
