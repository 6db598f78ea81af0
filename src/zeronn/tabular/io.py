"""Reading tables as people have them: CSV dialects, encodings, compression, Parquet.

:func:`open_table` looks at a file once (its format, compression, encoding, separator,
decimal mark and header) and returns a :class:`Table`; ``Table.read`` gives the whole
table (or only some columns) as a DataFrame, ``Table.chunks`` the same in pieces of a
bounded number of rows, so a prediction over a huge file never holds all of it.

- CSV, optionally compressed (``.gz``, ``.bz2``, ``.zip`` with one member, ``.xz``,
  told by the extension), and Parquet (``.parquet``/``.pq``, through pyarrow).
- The separator is sniffed among ``,`` ``;`` tab ``|`` unless given; with ``;`` a decimal
  comma (``1,5``) is sniffed too. The encoding is UTF-8 (a BOM is skipped) unless given.
- Header names are stripped of surrounding spaces; an empty name becomes ``Unnamed: i``
  (as pandas names it, so a saved pandas index is recognisable); duplicate names are an
  error. Every such problem of a file is listed in one message (:func:`problems_message`).
- DataFrames are indexed 1, 2, ... by data row (chunks continue the count), so error
  messages name the rows a person sees below the header.

Every problem raises ``ValueError`` whose message names the file, the problem and the
fix (the ``zeronn`` command prints it as one ``zeronn: error:`` line). pandas (and
pyarrow for Parquet) are imported lazily: the ``data`` extra.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPRESSIONS", "MAX_PROBLEMS", "SEPARATORS", "Dialect", "Table", "open_table",
           "problems_message", "read_table"]

SEPARATORS = (",", ";", "\t", "|")  # sniffed, in this order of preference on a tie
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zip": "zip", ".xz": "xz"}
PARQUET_EXTENSIONS = (".parquet", ".pq")
MAX_PROBLEMS = 10  # problems listed in one message before "... and N more"
SNIFF_BYTES = 65536  # decoded text looked at to sniff the dialect
SNIFF_LINES = 200
READ_ROWS = 65536  # a whole CSV is parsed this many rows at a time (see Table._assemble)
_SEP_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_COMMA_NUMBER = re.compile(r"[-+]?\d*,\d+(?:[eE][-+]?\d+)?")
_DOT_NUMBER = re.compile(r"[-+]?\d*\.\d+(?:[eE][-+]?\d+)?")


def _require_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ValueError("reading tables needs pandas: pip install 'zeronn[data]'") from None
    return pd


def problems_message(where: str, problems: Sequence[str], limit: int = MAX_PROBLEMS) -> str:
    """All of a file's problems in one message: ``"2 problems in f.csv: (1) ...; (2) ..."``.

    At most ``limit`` are listed, then how many more there are.
    """
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    shown = "; ".join(f"({i + 1}) {p}" for i, p in enumerate(problems[:limit]))
    more = len(problems) - limit
    return (f"{len(problems)} problems in {where}: {shown}"
            + (f"; and {more} more" if more > 0 else ""))


@dataclass(frozen=True)
class Dialect:
    """How a file is written: ``format`` ``"csv"`` or ``"parquet"``; for CSV the
    separator, the decimal mark, the text encoding and the compression (or None)."""

    format: str = "csv"
    sep: str = ","
    decimal: str = "."
    encoding: str = "utf-8"
    compression: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, for model files."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dialect:
        return cls(**{k: d[k] for k in ("format", "sep", "decimal", "encoding", "compression")
                      if k in d})

    def describe(self) -> str:
        """``"csv, separator ';', decimal ',', utf-8, gzip"``."""
        if self.format == "parquet":
            return "parquet"
        parts = [self.format, f"separator {_SEP_NAMES.get(self.sep, repr(self.sep))}",
                 f"decimal {self.decimal!r}", self.encoding]
        return ", ".join(parts + ([self.compression] if self.compression else []))


def _check_sep(sep: str | None) -> str | None:
    if sep is None:
        return None
    sep = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}.get(sep, sep)
    if len(sep) != 1 or sep in "\"\r\n" or sep.isalnum():
        raise ValueError(f"the separator must be one character such as ',', ';', '|' or "
                         f"'tab', got {sep!r}")
    return sep


def _check_encoding(encoding: str | None) -> str:
    if encoding is None:
        return "utf-8"
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}: give a name such as utf-8, "
                         "latin-1, cp1252 or shift_jis") from None


def _open_binary(path: str, compression: str | None) -> BinaryIO:
    """The file's (decompressed) bytes; a zip must hold exactly one file."""
    if compression == "zip":
        zf = zipfile.ZipFile(path)
        names = [n for n in zf.namelist() if not n.endswith("/")]
        if len(names) != 1:
            zf.close()
            raise ValueError(f"{path} holds {len(names)} files; a zipped table must hold "
                             "exactly one: unzip it and give the file itself")
        return cast(BinaryIO, zf.open(names[0]))
    openers: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bz2": bz2.open,
                                              "xz": lzma.open}
    opener = openers.get(compression or "")
    # The caller closes it.
    return cast(BinaryIO, opener(path, "rb") if opener else open(path, "rb"))


def _compression_of(path: str) -> str | None:
    return COMPRESSIONS.get(os.path.splitext(path)[1].lower())


def _read_head(path: str, compression: str | None, n: int) -> bytes:
    try:
        with _open_binary(path, compression) as f:
            return f.read(n)
    except ValueError:
        raise
    except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
        if compression:
            raise ValueError(f"{path} is not a valid {compression} file ({exc}): check the "
                             "file, or rename it if it is not compressed") from None
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") \
            from None


def _check_path(path: str) -> None:
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder, not a file")


def _decode_error(path: str, encoding: str) -> ValueError:
    if encoding == "utf-8":
        return ValueError(f"{path} is not UTF-8 text (a binary file, or another encoding): "
                          "give its encoding with --encoding (e.g. --encoding cp1252 or "
                          "latin-1), or save it as a UTF-8 CSV file")
    return ValueError(f"{path} is not {encoding} text: give its encoding with --encoding, "
                      "or save it as a UTF-8 CSV file")


def _sniff_sep(text: str) -> str:
    """The candidate separator that splits the header into the most fields that most rows
    repeat; ``,`` when none splits the header (a one-column file)."""
    best: tuple[float, int, int] | None = None
    choice = ","
    for rank, sep in enumerate(SEPARATORS):
        try:
            rows = [r for r in csv.reader(io.StringIO(text), delimiter=sep,
                                          skipinitialspace=True) if r]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        h = len(rows[0])
        body = rows[1:]
        consistent = sum(len(r) == h for r in body) / len(body) if body else 1.0
        key = (consistent, h, -rank)
        if best is None or key > best:
            best, choice = key, sep
    return choice


def _sniff_decimal(text: str, sep: str) -> str:
    """``,`` when the numbers in the sample are written with a decimal comma."""
    comma = dot = 0
    for row in list(csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True))[1:]:
        for cell in row:
            cell = cell.strip()
            if _COMMA_NUMBER.fullmatch(cell):
                comma += 1
            elif _DOT_NUMBER.fullmatch(cell):
                dot += 1
    return "," if comma > dot else "."


def _header_names(raw: Sequence[str]) -> tuple[list[str], list[str]]:
    """(stripped names, empty ones named ``Unnamed: i``; the problems found in them)."""
    names = [n.strip() or f"Unnamed: {i}" for i, n in enumerate(raw)]
    seen: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        seen.setdefault(n, []).append(i + 1)
    problems = [f"the column name {n!r} appears {len(at)} times (columns "
                f"{', '.join(map(str, at))}): rename all but one" for n, at in seen.items()
                if len(at) > 1]
    return names, problems


def open_table(path: str | os.PathLike[str], sep: str | None = None,
               decimal: str | None = None, encoding: str | None = None) -> Table:
    """Looks at ``path`` (format, compression, dialect, header) and returns its :class:`Table`.

    ``sep`` (one character, or ``"tab"``), ``decimal`` (``"."`` or ``","``) and
    ``encoding`` (a Python codec name) force what is otherwise sniffed or assumed.
    Raises ValueError for a missing, empty, binary or undecodable file, a header with
    duplicate names, or options that contradict each other.
    """
    path = os.fspath(path)
    sep = _check_sep(sep)
    if decimal is not None and decimal not in (".", ","):
        raise ValueError(f"the decimal mark must be '.' or ',', got {decimal!r}")
    enc = _check_encoding(encoding)
    _check_path(path)
    if path.lower().endswith(PARQUET_EXTENSIONS):
        return _open_parquet(path)
    compression = _compression_of(path)
    head = _read_head(path, compression, SNIFF_BYTES)
    if not head:
        raise ValueError(f"{path} is empty: a CSV file needs a header line and data rows")
    if b"\x00" in head[:8192] and not enc.startswith("utf-16") and \
            not enc.startswith("utf-32"):
        if head.startswith(b"PAR1"):
            raise ValueError(f"{path} looks like a Parquet file: give it the extension "
                             ".parquet")
        raise ValueError(f"{path} is a binary file, not a CSV text file")
    try:
        text = codecs.getincrementaldecoder("utf-8-sig" if enc == "utf-8" else enc)(
            errors="strict").decode(head, final=len(head) < SNIFF_BYTES)
    except UnicodeDecodeError:
        raise _decode_error(path, enc) from None
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    sample = "\n".join(lines[:SNIFF_LINES])
    if sep is None:
        sep = _sniff_sep(sample)
    if decimal is None:
        decimal = _sniff_decimal(sample, sep) if sep == ";" else "."
    if decimal == sep:
        raise ValueError(f"the decimal mark and the separator are both {sep!r}: a file with "
                         "decimal commas needs another separator, such as ';'")
    try:
        raw = next(iter(csv.reader(io.StringIO(sample), delimiter=sep,
                                   skipinitialspace=True)), [])
    except csv.Error as exc:
        raise ValueError(f"{path}: its header line could not be read ({exc})") from None
    if not raw or not any(n.strip() for n in raw):
        raise ValueError(f"{path} has no header line: a CSV file needs a header line naming "
                         "the columns, then data rows")
    names, problems = _header_names(raw)
    if problems:
        raise ValueError(problems_message(path, problems))
    dialect = Dialect("csv", sep, decimal, enc, compression)
    return Table(path, dialect, names)


def _open_parquet(path: str) -> Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("reading Parquet files needs pyarrow: pip install 'zeronn[data]'") \
            from None
    try:
        raw = list(pq.ParquetFile(path).schema_arrow.names)
    except Exception as exc:  # pyarrow raises its own errors for a file that is not one
        raise ValueError(f"{path} is not a readable Parquet file "
                         f"({str(exc).strip().splitlines()[0] if str(exc) else exc!r})") \
            from None
    names, problems = _header_names(raw)
    if problems:
        raise ValueError(problems_message(path, problems))
    return Table(path, Dialect("parquet", encoding="utf-8"), names, raw_names=raw)


class Table:
    """A table file whose dialect and header are known; reads it whole or in chunks.

    ``columns`` are the header's names (stripped). Use :func:`open_table` to make one.
    """

    def __init__(self, path: str, dialect: Dialect, columns: list[str],
                 raw_names: list[str] | None = None) -> None:
        self.path, self.dialect, self.columns = path, dialect, columns
        self._raw = raw_names if raw_names is not None else columns
        self._checked_fields = False

    def __repr__(self) -> str:
        return f"Table({self.path!r}, {self.dialect.describe()}, {len(self.columns)} columns)"

    def _select(self, columns: Sequence[str] | None) -> list[str] | None:
        """The requested columns in file order, or None for all; unknown names fail."""
        if columns is None:
            return None
        wanted = set(columns)
        unknown = [c for c in dict.fromkeys(columns) if c not in set(self.columns)]
        if unknown:
            shown = ", ".join(repr(c) for c in unknown[:MAX_PROBLEMS])
            raise ValueError(f"{self.path} has no column {shown}; it has: "
                             f"{', '.join(repr(c) for c in self.columns[:20])}"
                             + (f" and {len(self.columns) - 20} more"
                                if len(self.columns) > 20 else ""))
        return [c for c in self.columns if c in wanted]

    # -- whole -------------------------------------------------------------------------
    def read(self, columns: Sequence[str] | None = None,
             str_columns: Sequence[str] = ()) -> pd.DataFrame:
        """The table (only ``columns``, in file order, when given) as a DataFrame indexed
        1..n; ``str_columns`` are read as text (labels kept exactly as written)."""
        chunks = list(self.chunks(None, columns, str_columns))
        if len(chunks) != 1:  # pragma: no cover - chunks(None) yields exactly one
            raise AssertionError("one chunk expected")
        return chunks[0]

    # -- in pieces -----------------------------------------------------------------------
    def chunks(self, rows: int | None, columns: Sequence[str] | None = None,
               str_columns: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
        """DataFrames of at most ``rows`` rows each (None: one), indexed by data row from 1
        across the chunks. A table without data rows raises ValueError."""
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int)
                                 or rows < 1):
            raise ValueError(f"rows per chunk must be a positive integer, got {rows!r}")
        use = self._select(columns)
        if self.dialect.format == "parquet":
            it = self._parquet_chunks(rows, use, str_columns)
        elif rows is None:
            it = iter([self._read_whole(use, str_columns)])
        else:
            it = self._csv_chunks(rows, use, str_columns)
        start = 0
        pd = _require_pandas()
        for df in it:
            if len(df) == 0 and start == 0:
                continue
            df.index = pd.RangeIndex(start + 1, start + len(df) + 1)
            start += len(df)
            yield df
        if start == 0:
            raise ValueError(f"{self.path} has a header but no data rows")

    def _csv_chunks(self, rows: int | None, use: list[str] | None,
                    str_columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        pd = _require_pandas()
        d = self.dialect
        keep = set(use) if use is not None else set(self.columns)
        dtype = {c: str for c in str_columns if c in keep} or None
        kwargs: dict[str, Any] = dict(
            sep=d.sep, decimal=d.decimal, skipinitialspace=True, header=0,
            names=self.columns, usecols=use, dtype=dtype, compression=d.compression,
            encoding="utf-8-sig" if d.encoding == "utf-8" else d.encoding,
            chunksize=rows,
            # Never a column as the index: pandas would take one silently when every row
            # has a field more than the header (it warns instead, and that is checked).
            index_col=False)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = pd.read_csv(self.path, **kwargs)  # whole: read here; chunks: later
            frames = iter(result) if rows is not None else iter([result])
            while True:
                with warnings.catch_warnings(record=True) as more:
                    warnings.simplefilter("always")
                    try:
                        df = next(frames)
                    except StopIteration:
                        break
                caught += more
                # A column of mixed types (DtypeWarning) is the column typing's business;
                # a row longer than the header (ParserWarning) is a broken file.
                longer = any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)
                caught = []
                self._check_fields(df, longer)
                yield df
        except pd.errors.EmptyDataError:
            return
        except pd.errors.ParserError as exc:
            m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if m:
                raise ValueError(f"{self.path}: line {m.group(2)} has {m.group(3)} fields, but "
                                 f"the header has {m.group(1)}: every row needs one value per "
                                 "column") from None
            raise ValueError(f"{self.path} could not be parsed as CSV: "
                             f"{str(exc).strip().splitlines()[0]}") from None
        except UnicodeDecodeError:
            raise _decode_error(self.path, d.encoding) from None
        except (OSError, EOFError, lzma.LZMAError, zipfile.BadZipFile) as exc:
            raise ValueError(f"cannot read {self.path}: {exc}") from None

    def _read_whole(self, use: list[str] | None, str_columns: Sequence[str]) -> pd.DataFrame:
        frame, mixed = self._assemble(self._csv_chunks(READ_ROWS, use, str_columns))
        if mixed:
            # Numbers in some chunks, text in others: read as text, as one pandas read of
            # the whole file takes such a column (every value as written).
            again, _ = self._assemble(self._csv_chunks(READ_ROWS, mixed,
                                                       [*str_columns, *mixed]))
            for c in mixed:
                frame[c] = again[c]  # the same 0..n-1 index
        return frame

    @staticmethod
    def _assemble(frames: Iterator[pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
        """One DataFrame from the chunks, holding about one copy of the data at its peak.

        pandas reading a whole file keeps the parsed pieces of each column, joins them, and
        then copies all columns into one 2-D block: three copies of the data at once. Here
        each chunk's columns are copied out (a chunk's worth of extra memory) so the chunk
        is freed at once, each column is joined from its pieces (which are then freed), and
        the frame keeps the columns as they are (one block each, no consolidating copy).
        Also returns the columns parsed as text in some chunks and not in others.
        """
        pd = _require_pandas()
        pieces: dict[str, list[Any]] = {}
        names: list[str] = []
        for df in frames:
            if not pieces:
                names = [str(c) for c in df.columns]
                pieces = {c: [] for c in names}
            for c in names:
                pieces[c].append(df[c].copy())
            del df
        if not pieces:
            return pd.DataFrame(columns=names), []
        columns = {}
        mixed = []
        for c in names:
            parts = pieces.pop(c)
            text = {p.dtype.kind in "OSUT" or str(p.dtype) == "str" for p in parts}
            if len(text) > 1:
                mixed.append(c)
            columns[c] = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
            del parts
        return pd.DataFrame(columns, copy=False), mixed

    def _check_fields(self, df: pd.DataFrame, longer: bool) -> None:
        """pandas pads short rows with missing values and only warns (``longer``) when
        rows are longer than the header: a pass with the csv module (same dialect) tells
        those apart from honest empty cells, at most once per file and only when a frame
        leaves a doubt."""
        if self._checked_fields or not (longer or bool(df.isna().to_numpy().any())):
            return
        self._checked_fields = True
        problem = self._field_count_error()
        if problem is None and longer:
            problem = f"{self.path}: the rows have more fields than the header"
        if problem:
            raise ValueError(problem)

    def _field_count_error(self) -> str | None:
        d = self.dialect
        n_columns = len(self.columns)
        with _open_binary(self.path, d.compression) as raw, io.TextIOWrapper(
                raw, encoding="utf-8-sig" if d.encoding == "utf-8" else d.encoding,
                newline="") as f:
            reader = csv.reader(f, delimiter=d.sep, skipinitialspace=True)
            for record in reader:
                if not record:  # pandas skips blank lines too
                    continue
                if len(record) != n_columns:
                    return (f"{self.path}: line {reader.line_num} has {len(record)} fields, "
                            f"but the header has {n_columns}: every row needs one value per "
                            "column")
        return None

    def _parquet_chunks(self, rows: int | None, use: list[str] | None,
                        str_columns: Sequence[str]) -> Iterator[pd.DataFrame]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        raw_of = dict(zip(self.columns, self._raw))
        cols = None if use is None else [raw_of[c] for c in use]
        names = self.columns if use is None else use
        pf = pq.ParquetFile(self.path)
        try:
            if rows is None:
                tables = iter([pf.read(columns=cols)])
            else:
                tables = (pa.Table.from_batches([b]) for b in
                          pf.iter_batches(batch_size=rows, columns=cols))
            for t in tables:
                # Each column its own block, the Arrow buffers released as they are
                # converted: no consolidated copy of the whole table.
                df = t.to_pandas(split_blocks=True, self_destruct=True)
                del t
                df.columns = list(names)
                for c in str_columns:  # as read_csv's dtype=str: text, missing kept missing
                    if c in df.columns:
                        df[c] = df[c].astype(str).where(df[c].notna())
                yield df
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"cannot read {self.path}: {exc}") from None


def read_table(path: str | os.PathLike[str], columns: Sequence[str] | None = None,
               str_columns: Sequence[str] = (), sep: str | None = None,
               decimal: str | None = None, encoding: str | None = None) -> pd.DataFrame:
    """``open_table(path, sep, decimal, encoding).read(columns, str_columns)``: a table file
    as a DataFrame indexed 1..n by data row."""
    return open_table(path, sep=sep, decimal=decimal, encoding=encoding).read(
        columns, str_columns)
