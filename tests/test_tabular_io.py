"""zeronn.tabular.io: table files as people have them (dialects, encodings, compression,
Parquet), read whole or in chunks, every header problem in one message."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import string
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")

from conftest import examples  # noqa: E402
from zeronn.tabular import io as tio  # noqa: E402
from zeronn.tabular.io import Dialect, open_table, problems_message, read_table  # noqa: E402

EXAMPLES = examples(25)
COMPRESS = {"": lambda b: b, ".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}


def write(path: Path, text: str | bytes, encoding: str = "utf-8") -> Path:
    data = text.encode(encoding) if isinstance(text, str) else text
    ext = "".join(path.suffixes[1:]) if len(path.suffixes) > 1 else ""
    if ext == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(path.stem, data)
    else:
        path.write_bytes(COMPRESS.get(ext, lambda b: b)(data))
    return path


# -- sniffing -------------------------------------------------------------------------------
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_the_separator_is_sniffed(tmp_path: Path, sep: str) -> None:
    p = write(tmp_path / "t.csv", sep.join(["a", "b", "c"]) + "\n"
              + "\n".join(sep.join(["1.5", "2", "x y"]) for _ in range(5)) + "\n")
    t = open_table(p)
    assert t.dialect.sep == sep and t.columns == ["a", "b", "c"]
    df = t.read()
    assert df["a"].tolist() == [1.5] * 5 and df["c"].tolist() == ["x y"] * 5


def test_an_excel_export_with_decimal_commas(tmp_path: Path) -> None:
    """The issue's file: ';' separated, decimal commas: sniffed, read as numbers."""
    p = write(tmp_path / "eu.csv", "preis;fläche;zimmer;ort\n1234,5;80,25;3;Köln\n"
              "999,0;55,5;2;Bonn\n", encoding="utf-8-sig")
    t = open_table(p)
    assert (t.dialect.sep, t.dialect.decimal) == (";", ",")
    df = t.read()
    assert df["preis"].tolist() == [1234.5, 999.0] and df["fläche"].dtype.kind == "f"
    assert df["zimmer"].tolist() == [3, 2] and df["ort"].tolist() == ["Köln", "Bonn"]
    assert t.dialect.describe() == "csv, separator ';', decimal ',', utf-8"


def test_a_semicolon_file_with_decimal_points_keeps_them(tmp_path: Path) -> None:
    t = open_table(write(tmp_path / "t.csv", "a;b\n1.5;2.25\n3.5;4\n"))
    assert t.dialect.decimal == "." and t.read()["a"].tolist() == [1.5, 3.5]


def test_forced_options_win(tmp_path: Path) -> None:
    # a tab file with decimal commas: the decimal mark is given, the separator sniffed
    p = write(tmp_path / "t.tsv", "a\tb\n1,5\t2\n")
    assert read_table(p, decimal=",")["a"].tolist() == [1.5]
    # a one-column file whose values hold ';': forcing ',' keeps them whole
    p = write(tmp_path / "one.csv", "a;b\nx;y\n")
    assert read_table(p, sep=",").columns.tolist() == ["a;b"]
    assert read_table(p, sep="semicolon").columns.tolist() == ["a", "b"]
    assert open_table(write(tmp_path / "t2.csv", "a\tb\n1\t2\n"), sep="tab").dialect.sep == "\t"


def test_a_one_column_file_reads_as_one_column(tmp_path: Path) -> None:
    df = read_table(write(tmp_path / "t.csv", "y\n1\n2\n"))
    assert df.columns.tolist() == ["y"] and df["y"].tolist() == [1, 2]


@pytest.mark.parametrize(("kwargs", "needles"), [
    ({"sep": "ab"}, ["separator", "'ab'"]),
    ({"sep": "x"}, ["separator"]),
    ({"decimal": ";"}, ["decimal mark", "','"]),
    ({"sep": ",", "decimal": ","}, ["decimal mark and the separator", "';'"]),
    ({"encoding": "klingon"}, ["unknown encoding 'klingon'", "cp1252"]),
])
def test_bad_options_are_named(tmp_path: Path, kwargs: dict, needles: list[str]) -> None:
    p = write(tmp_path / "t.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError) as exc:
        open_table(p, **kwargs)
    for needle in needles:
        assert needle in str(exc.value)


# -- encodings ------------------------------------------------------------------------------
def test_another_encoding_names_the_option(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "name;wert\ncafé;1,5\nJürgen;2\n", encoding="cp1252")
    with pytest.raises(ValueError, match=r"not UTF-8.*--encoding"):
        read_table(p)
    df = read_table(p, encoding="cp1252")
    assert df["name"].tolist() == ["café", "Jürgen"] and df["wert"].tolist() == [1.5, 2.0]
    assert open_table(p, encoding="latin1").dialect.encoding == "iso8859-1"


def test_a_bad_byte_past_the_sniffed_sample_is_the_same_error(tmp_path: Path) -> None:
    body = "a,b\n" + "1,2\n" * 30000 + "caf\xe9,3\n"
    p = write(tmp_path / "t.csv", body, encoding="latin-1")
    with pytest.raises(ValueError, match=r"not UTF-8.*--encoding"):
        read_table(p)


def test_a_utf8_bom_is_not_part_of_the_first_name(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "a,b\n1,2\n", encoding="utf-8-sig")
    assert open_table(p).columns == ["a", "b"]


# -- compression and Parquet -------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_files_by_extension(tmp_path: Path, ext: str) -> None:
    p = write(tmp_path / f"t.csv{ext}", "a;b\n1,5;2\n3;4\n")
    t = open_table(p)
    assert t.dialect.compression == {".gz": "gzip", ".bz2": "bz2", ".xz": "xz",
                                     ".zip": "zip"}[ext]
    assert t.read()["a"].tolist() == [1.5, 3.0]
    assert [len(c) for c in t.chunks(1)] == [1, 1]


def test_bad_compressed_files(tmp_path: Path) -> None:
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="not a valid gzip file"):
        open_table(tmp_path / "bad.csv.gz")
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        zf.writestr("a.csv", "a\n1\n")
        zf.writestr("b.csv", "b\n2\n")
    with pytest.raises(ValueError, match="holds 2 files"):
        open_table(tmp_path / "two.zip")


def test_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({" x ": [1.5, 2.5, np.nan], "n": [1, 2, 3], "s": ["a", None, "c"]})
    df.to_parquet(tmp_path / "t.parquet")
    t = open_table(tmp_path / "t.parquet")
    assert t.dialect.format == "parquet" and t.columns == ["x", "n", "s"]
    got = t.read()
    assert got.index.tolist() == [1, 2, 3]
    assert got["x"].tolist()[:2] == [1.5, 2.5] and np.isnan(got["x"].iloc[2])
    assert got["s"].isna().tolist() == [False, True, False] and got["s"].iloc[2] == "c"
    assert t.read(["s", "x"]).columns.tolist() == ["x", "s"]  # file order
    parts = list(t.chunks(2, ["n"], str_columns=["n"]))
    assert [p.index.tolist() for p in parts] == [[1, 2], [3]]
    assert parts[0]["n"].tolist() == ["1", "2"]


def test_bad_parquet_files(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        open_table(tmp_path / "bad.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "real.parquet")
    os.replace(tmp_path / "real.parquet", tmp_path / "real.csv")
    with pytest.raises(ValueError, match="looks like a Parquet file"):
        open_table(tmp_path / "real.csv")


# -- the header ---------------------------------------------------------------------------
def test_names_are_stripped_and_empty_ones_named_as_pandas_does(tmp_path: Path) -> None:
    t = open_table(write(tmp_path / "t.csv", ",  price , size\n0,1,2\n1,3,4\n"))
    assert t.columns == ["Unnamed: 0", "price", "size"]
    assert t.read()["price"].tolist() == [1, 3]


def test_every_duplicate_name_in_one_message(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "a,b,a ,c,b,d\n1,2,3,4,5,6\n")
    with pytest.raises(ValueError) as exc:
        open_table(p)
    msg = str(exc.value)
    assert msg.startswith(f"2 problems in {p}: (1)")
    assert "'a' appears 2 times (columns 1, 3)" in msg and "'b' appears 2 times (columns 2, 5)" \
        in msg and "rename" in msg


def test_problems_message_lists_at_most_ten() -> None:
    msg = problems_message("f.csv", [f"p{i}" for i in range(13)])
    assert msg.startswith("13 problems in f.csv: (1) p0; ") and "(10) p9; and 3 more" in msg
    assert "p10" not in msg
    assert problems_message("f.csv", ["only"]) == "f.csv: only"


@pytest.mark.parametrize(("data", "needle"), [
    (b"", "is empty"),
    (bytes(range(256)) * 4, "is a binary file"),
    (b"a,b\n", "has a header but no data rows"),
    (b"\n\n", "has no header line"),
    (b"a,b\n1,2\n3\n", "line 3 has 1 fields, but the header has 2"),
    (b"a,b\n1,2,3\n", "line 2 has 3 fields, but the header has 2"),
    (b"a,b\n1,2,3\n4,5,6\n", "line 2 has 3 fields, but the header has 2"),
    (b"a,b\n0,2,3\n1,5,6\n", "line 2 has 3 fields, but the header has 2"),
])
def test_broken_files(tmp_path: Path, data: bytes, needle: str) -> None:
    p = tmp_path / "t.csv"
    p.write_bytes(data)
    with pytest.raises(ValueError, match=needle):
        read_table(p)


def test_missing_paths_and_unknown_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        open_table(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a folder"):
        open_table(tmp_path)
    t = open_table(write(tmp_path / "t.csv", "a,b\n1,2\n"))
    with pytest.raises(ValueError, match="has no column 'z'; it has: 'a', 'b'"):
        t.read(["a", "z"])
    with pytest.raises(ValueError, match="positive integer"):
        next(t.chunks(0))


# -- chunks -----------------------------------------------------------------------------------
def test_chunks_add_up_to_the_whole_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=1003), "k": rng.integers(0, 9, 1003),
                       "s": rng.choice(["u", "v"], 1003)})
    df.to_csv(tmp_path / "t.csv", sep=";", index=False)
    t = open_table(tmp_path / "t.csv")
    whole = t.read()
    parts = list(t.chunks(100, ["s", "x"]))
    assert [len(p) for p in parts] == [100] * 10 + [3]
    joined = pd.concat(parts)
    assert joined.index.tolist() == list(range(1, 1004))  # data rows, counted on
    pd.testing.assert_frame_equal(joined, whole[["x", "s"]])


def test_a_short_row_in_a_later_chunk_is_found(tmp_path: Path) -> None:
    p = write(tmp_path / "t.csv", "a,b\n" + "1,2\n" * 50 + "3\n" + "1,2\n" * 10)
    with pytest.raises(ValueError, match="line 52 has 1 fields"):
        list(open_table(p).chunks(20))


def test_str_columns_keep_text_as_written(tmp_path: Path) -> None:
    df = read_table(write(tmp_path / "t.csv", "id,x\n007,1\n010,2\n"), str_columns=["id"])
    assert df["id"].tolist() == ["007", "010"] and df["x"].tolist() == [1, 2]


def test_dialect_round_trips_through_a_dict() -> None:
    d = Dialect("csv", ";", ",", "cp1252", "gzip")
    assert Dialect.from_dict(d.to_dict()) == d
    assert Dialect.from_dict({"format": "parquet"}).describe() == "parquet"


# -- every dialect, random tables ---------------------------------------------------------------
NA_WORDS = {"NA", "NaN", "nan", "NULL", "null", "None", "N", "n", "NAN", "Nan", "na", "n/a",
            "N/A", "inf", "Inf", "INF", "True", "False", "TRUE", "FALSE", "true", "false"}
words = st.text(alphabet=string.ascii_letters, min_size=1, max_size=6).filter(
    lambda w: w not in NA_WORDS and w.lower() not in {"nan", "inf", "infinity", "null"})
names = st.lists(words, min_size=2, max_size=5, unique_by=str.lower)


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    cols = draw(names)
    n = draw(st.integers(1, 12))
    data = {}
    for c in cols:
        kind = draw(st.sampled_from(["float", "int", "text"]))
        if kind == "float":
            data[c] = draw(st.lists(st.floats(-1e6, 1e6, allow_nan=False).filter(
                lambda v: v != int(v)), min_size=n, max_size=n))
        elif kind == "int":
            data[c] = draw(st.lists(st.integers(-10**6, 10**6), min_size=n, max_size=n))
        else:
            data[c] = draw(st.lists(words, min_size=n, max_size=n))
    return pd.DataFrame(data)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=tables(),
       dialect=st.sampled_from([(",", "."), (";", ","), (";", "."), ("\t", "."), ("|", ".")]),
       ext=st.sampled_from(["", ".gz", ".bz2", ".xz", ".zip"]),
       encoding=st.sampled_from(["utf-8", "cp1252"]))
def test_random_tables_round_trip_through_every_dialect(tmp_path: Path, df: pd.DataFrame,
                                                        dialect: tuple[str, str], ext: str,
                                                        encoding: str) -> None:
    sep, decimal = dialect
    p = tmp_path / f"t.csv{ext}"
    text = df.to_csv(sep=sep, decimal=decimal, index=False)
    write(p, text, encoding=encoding)
    t = open_table(p, encoding=None if encoding == "utf-8" else encoding,
                   # a sample without any decimal number cannot tell: say it
                   decimal=decimal if decimal == "," and not any(
                       df[c].dtype.kind == "f" for c in df) else None)
    assert (t.dialect.sep, t.dialect.decimal) == (sep, decimal)
    got = t.read()
    expected = df.set_axis(pd.RangeIndex(1, len(df) + 1))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False, rtol=1e-12)


@settings(max_examples=max(5, EXAMPLES // 3), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(df=tables(), rows=st.integers(1, 5))
def test_random_tables_round_trip_through_parquet(tmp_path: Path, df: pd.DataFrame,
                                                  rows: int) -> None:
    pytest.importorskip("pyarrow")
    df.to_parquet(tmp_path / "t.parquet", index=False)
    got = pd.concat(list(open_table(tmp_path / "t.parquet").chunks(rows)))
    pd.testing.assert_frame_equal(got, df.set_axis(pd.RangeIndex(1, len(df) + 1)),
                                  check_dtype=False)


def test_the_module_names_what_it_exports() -> None:
    assert set(tio.__all__) <= set(dir(tio))


def test_a_whole_read_joins_its_chunks_as_pandas_reads_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed READ_ROWS rows at a time and joined by column: the same values and dtypes
    as one pandas read, also when a later chunk turns a column's type (ints that meet an
    empty cell, numbers that meet text), and each column its own block (no copy of all)."""
    monkeypatch.setattr(tio, "READ_ROWS", 7)
    n = 30
    rows = ["i,f,mixed,s"] + [
        f"{k},{k / 4},{'x' if k == 25 else k},{'ab'[k % 2]}" if k != 20 else f"{k},,{k},a"
        for k in range(n)]
    p = write(tmp_path / "t.csv", "\n".join(rows) + "\n")
    got = read_table(p)
    want = pd.read_csv(p).set_axis(pd.RangeIndex(1, n + 1))
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert got["i"].dtype.kind == "i" and got["f"].dtype.kind == "f"
    assert got["mixed"].tolist()[25] == "x" and got._mgr.nblocks == 4
