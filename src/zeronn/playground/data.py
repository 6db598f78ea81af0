"""The playground's toy datasets and input features, in NumPy only.

The classic ones follow the well-known TensorFlow playground's generators
(``tensorflow/playground``'s ``dataset.ts``): points in [-6, 6]², noise given as a share
0-0.5 (the page's 0-50 percent divided by 100), binary labels 0/1 (the original's -1/1)
and regression targets in [-1, 1]. Two kinds are new here: ``moons`` (two interleaving
half circles) and ``multiclass`` (k Gaussian blobs on a ring, or k spiral arms).

Every generator takes a ``np.random.Generator`` and returns ``(X, y)``: ``X`` (n, 2)
float64 with columns x1, x2; ``y`` (n,) float64: 0/1 labels (binary), class indices
0..k-1 (multiclass) or targets in [-1, 1] (regression).

Features: the page's inputs, each a function of (x1, x2): ``x1``, ``x2``, ``x1sq`` (x1²),
``x2sq``, ``x1x2`` (x1·x2), ``sinx1`` (sin x1), ``sinx2``; :func:`make_features` stacks the
chosen ones as the network's input columns (not standardized: as in the original, the
raw values in [-6, 6] go in).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLASSIFICATION",
    "DATASETS",
    "EXTENT",
    "FEATURES",
    "REGRESSION",
    "grid_points",
    "make_dataset",
    "make_features",
    "split",
]

EXTENT = 6.0  # the plane shown: [-6, 6]²
CLASSIFICATION = ("circle", "xor", "gauss", "spiral", "moons", "multiclass")
REGRESSION = ("plane", "surface")
DATASETS = CLASSIFICATION + REGRESSION

FEATURES: dict[str, Callable[[NDArray, NDArray], NDArray]] = {
    "x1": lambda a, b: a,
    "x2": lambda a, b: b,
    "x1sq": lambda a, b: a * a,
    "x2sq": lambda a, b: b * b,
    "x1x2": lambda a, b: a * b,
    "sinx1": lambda a, b: np.sin(a),
    "sinx2": lambda a, b: np.sin(b),
}
FEATURE_LABELS = {"x1": "x1", "x2": "x2", "x1sq": "x1²", "x2sq": "x2²", "x1x2": "x1·x2",
                  "sinx1": "sin(x1)", "sinx2": "sin(x2)"}


def _uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> NDArray:
    return rng.uniform(lo, hi, n)


def circle(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Label 1 inside radius 2.5, 0 in the ring 3.5-5 (labels read from the noisy point)."""
    radius = 5.0
    half = n // 2
    r = np.concatenate([_uniform(rng, 0, radius * 0.5, half),
                        _uniform(rng, radius * 0.7, radius, n - half)])
    angle = _uniform(rng, 0, 2 * math.pi, n)
    x, y = r * np.sin(angle), r * np.cos(angle)
    nx = _uniform(rng, -radius, radius, n) * noise
    ny = _uniform(rng, -radius, radius, n) * noise
    label = (np.hypot(x + nx, y + ny) < radius * 0.5).astype(float)
    return np.column_stack([x, y]), label


def xor(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Label 1 where x1·x2 >= 0 (first and third quadrants), points kept 0.3 off the axes."""
    pad = 0.3
    x = _uniform(rng, -5, 5, n)
    x += np.where(x > 0, pad, -pad)
    y = _uniform(rng, -5, 5, n)
    y += np.where(y > 0, pad, -pad)
    nx = _uniform(rng, -5, 5, n) * noise
    ny = _uniform(rng, -5, 5, n) * noise
    label = ((x + nx) * (y + ny) >= 0).astype(float)
    return np.column_stack([x, y]), label


def gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Two Gaussian clusters at (2, 2) (label 1) and (-2, -2); variance 0.5-4 with noise."""
    variance = 0.5 + min(max(noise, 0.0), 0.5) / 0.5 * 3.5
    sd = math.sqrt(variance)
    half = n // 2
    centers = np.concatenate([np.full(half, 2.0), np.full(n - half, -2.0)])
    x = centers + rng.normal(0, sd, n)
    y = centers + rng.normal(0, sd, n)
    label = (centers > 0).astype(float)
    return np.column_stack([x, y]), label


def _spiral_arms(rng: np.random.Generator, n: int, noise: float,
                 arms: int) -> tuple[NDArray, NDArray]:
    counts = [n // arms + (1 if i < n % arms else 0) for i in range(arms)]
    xs, ys, labels = [], [], []
    for k, m in enumerate(counts):
        t = np.arange(m) / max(m, 1)
        r = t * 5
        angle = 1.75 * t * 2 * math.pi + 2 * math.pi * k / arms
        xs.append(r * np.sin(angle) + _uniform(rng, -1, 1, m) * noise)
        ys.append(r * np.cos(angle) + _uniform(rng, -1, 1, m) * noise)
        labels.append(np.full(m, float(k)))
    return np.column_stack([np.concatenate(xs), np.concatenate(ys)]), np.concatenate(labels)


def spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Two interleaved spiral arms (the first labelled 1, as the original's positive arm)."""
    X, arm = _spiral_arms(rng, n, noise, 2)
    return X, 1.0 - arm


def moons(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Two interleaving half circles (scikit-learn's make_moons), scaled into [-6, 6]²."""
    half = n // 2
    t_out = _uniform(rng, 0, math.pi, half)
    t_in = _uniform(rng, 0, math.pi, n - half)
    x = np.concatenate([np.cos(t_out), 1 - np.cos(t_in)])
    y = np.concatenate([np.sin(t_out), 1 - np.sin(t_in) - 0.5])
    # (x, y) spans [-1, 2] x [-0.5, 1]: centred and scaled by 2.5 to about [-3.75, 3.75].
    x = (x - 0.5) * 2.5 + rng.normal(0, 1, n) * noise * 2.5
    y = (y - 0.25) * 2.5 + rng.normal(0, 1, n) * noise * 2.5
    label = np.concatenate([np.zeros(half), np.ones(n - half)])
    return np.column_stack([x, y]), label


def blobs(rng: np.random.Generator, n: int, noise: float, classes: int) -> tuple[NDArray, NDArray]:
    """``classes`` Gaussian blobs on a ring of radius 3.5; spread 0.6-2.1 with noise."""
    sd = 0.6 + min(max(noise, 0.0), 0.5) * 3
    label = np.arange(n) % classes
    angle = 2 * math.pi * label / classes + math.pi / 2
    x = 3.5 * np.cos(angle) + rng.normal(0, sd, n)
    y = 3.5 * np.sin(angle) + rng.normal(0, sd, n)
    return np.column_stack([x, y]), label.astype(float)


def plane(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Target (x1 + x2) / 10 of the noisy point, clipped to [-1, 1]."""
    x = _uniform(rng, -EXTENT, EXTENT, n)
    y = _uniform(rng, -EXTENT, EXTENT, n)
    nx = _uniform(rng, -EXTENT, EXTENT, n) * noise
    ny = _uniform(rng, -EXTENT, EXTENT, n) * noise
    return np.column_stack([x, y]), np.clip((x + nx + y + ny) / 10, -1, 1)


_GAUSSIANS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def surface(rng: np.random.Generator, n: int, noise: float) -> tuple[NDArray, NDArray]:
    """Six bumps of sign +-1 (the original's "Gaussian" regression): the strongest wins."""
    x = _uniform(rng, -EXTENT, EXTENT, n)
    y = _uniform(rng, -EXTENT, EXTENT, n)
    nx = _uniform(rng, -EXTENT, EXTENT, n) * noise
    ny = _uniform(rng, -EXTENT, EXTENT, n) * noise
    px, py = x + nx, y + ny
    label = np.zeros(n)
    for cx, cy, sign in _GAUSSIANS:
        new = sign * np.clip(1 - np.hypot(px - cx, py - cy) / 2, 0, 1)
        label = np.where(np.abs(new) > np.abs(label), new, label)
    return np.column_stack([x, y]), label


def make_dataset(name: str, n_points: int = 500, noise: float = 0.0, seed: int = 0,
                 classes: int = 3, multiclass_shape: str = "blobs") -> tuple[NDArray, NDArray]:
    """The dataset ``name`` (one of :data:`DATASETS`): X (n, 2), y (n,), shuffled.

    ``noise``: 0-0.5 (the page's percent / 100). ``classes`` and ``multiclass_shape``
    (``"blobs"`` or ``"spiral"``) shape the multiclass dataset.
    """
    rng = np.random.default_rng(seed)
    if name == "multiclass":
        if multiclass_shape == "spiral":
            X, y = _spiral_arms(rng, n_points, noise, classes)
        elif multiclass_shape == "blobs":
            X, y = blobs(rng, n_points, noise, classes)
        else:
            raise ValueError(f"multiclass_shape must be 'blobs' or 'spiral', got "
                             f"{multiclass_shape!r}")
    else:
        makers = {"circle": circle, "xor": xor, "gauss": gauss, "spiral": spiral,
                  "moons": moons, "plane": plane, "surface": surface}
        if name not in makers:
            raise ValueError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
        X, y = makers[name](rng, n_points, noise)
    order = rng.permutation(n_points)  # the train/test split takes the first rows
    return X[order], y[order]


def split(X: NDArray, y: NDArray, train_share: float) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """The first ``round(n * train_share)`` rows (at least 1, and 1 left) train, the rest test."""
    n = X.shape[0]
    k = min(max(round(n * train_share), 1), n - 1)
    return X[:k], y[:k], X[k:], y[k:]


def make_features(X: NDArray, features: Sequence[str]) -> NDArray:
    """The network's inputs (n, len(features)) from points X (n, 2)."""
    a, b = X[:, 0], X[:, 1]
    return np.column_stack([FEATURES[f](a, b) for f in features]).astype(np.float64)


def grid_points(size: int, extent: float = EXTENT) -> NDArray:
    """(size*size, 2) cell centres row-major: y from +extent (top row) down, x from -extent."""
    step = 2 * extent / size
    centres = -extent + (np.arange(size) + 0.5) * step
    gx, gy = np.meshgrid(centres, centres[::-1])
    return np.column_stack([gx.ravel(), gy.ravel()])


# -- uploads ----------------------------------------------------------------------------
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_UPLOAD_ROWS = 5000
MAX_CLASSES = 5


class Table:
    """A parsed CSV upload: column names, each column's text, and the numeric columns' values.

    ``numeric[name]`` is a float64 (rows,) array for every column whose cells all read as
    finite numbers.
    """

    def __init__(self, columns: list[str], cells: list[list[str]]) -> None:
        self.columns = columns
        self.cells = {c: [row[j] for row in cells] for j, c in enumerate(columns)}
        self.rows = len(cells)
        self.numeric: dict[str, NDArray] = {}
        for c in columns:
            try:
                values = np.array([float(v) for v in self.cells[c]], dtype=np.float64)
            except ValueError:
                continue
            if np.all(np.isfinite(values)):
                self.numeric[c] = values

    @property
    def numeric_columns(self) -> list[str]:
        return [c for c in self.columns if c in self.numeric]


def parse_csv(raw: bytes) -> Table:
    """A CSV file's bytes -> :class:`Table`; ``ValueError`` naming the problem and the fix.

    Needs a header line, at most :data:`MAX_UPLOAD_ROWS` data rows of equal length and at
    least two numeric columns. The delimiter (comma, semicolon, tab) is sniffed.
    """
    import csv
    import io

    if not raw.strip():
        raise ValueError("the file is empty: upload a CSV file with a header line and rows")
    if len(raw) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the file has {len(raw)} bytes, more than the "
                         f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB allowed: upload a smaller "
                         "sample of it")
    if b"\x00" in raw:
        raise ValueError("this is not a CSV file (it holds binary data): upload a text file "
                         "with comma-separated columns")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8 text: save it as a UTF-8 CSV file") from None
    lines = text.splitlines()
    try:
        dialect: Any = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [r for r in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in r)]
    except csv.Error as exc:
        raise ValueError(f"this is not a readable CSV file ({exc}): upload comma-separated "
                         "columns with a header line") from None
    if not rows:
        raise ValueError("the file is empty: upload a CSV file with a header line and rows")
    header = [h.strip() for h in rows[0]]
    body = [[c.strip() for c in r] for r in rows[1:]]
    if len(header) < 2:
        raise ValueError("the file has fewer than 2 columns: upload comma-separated columns "
                         "(two numeric features and a target)")
    if not body:
        raise ValueError("the file has a header but no data rows: add rows below the header")
    if len(body) > MAX_UPLOAD_ROWS:
        raise ValueError(f"the file has {len(body)} data rows, more than {MAX_UPLOAD_ROWS}: "
                         f"upload at most {MAX_UPLOAD_ROWS} rows")
    if any(not h for h in header) or len(set(header)) != len(header):
        raise ValueError("the header line needs a distinct, non-empty name for every column")
    for i, r in enumerate(body, start=1):
        if len(r) != len(header):
            raise ValueError(f"data row {i} has {len(r)} cells, the header {len(header)}: "
                             "give every row one cell per column")
    table = Table(header, body)
    if len(table.numeric_columns) < 2:
        raise ValueError(f"the file has {len(table.numeric_columns)} numeric column(s), the "
                         "playground needs at least 2 (x1 and x2): add numeric feature columns")
    return table


def scale_to(values: NDArray, lo: float, hi: float) -> NDArray:
    """Min-max scaling of ``values`` onto [lo, hi] (a constant column -> the middle)."""
    vmin, vmax = float(values.min()), float(values.max())
    if vmax == vmin:
        return np.full(values.shape, (lo + hi) / 2)
    return lo + (values - vmin) * (hi - lo) / (vmax - vmin)


def table_dataset(table: Table, x1: str, x2: str, target: str,
                  seed: int = 0) -> tuple[NDArray, NDArray, list[str]]:
    """Points X (n, 2) scaled to [-6, 6]², y (n,) and the class names ([] for regression).

    The target is classification when it is text, or numbers with at most
    :data:`MAX_CLASSES` distinct integer values (y = the class index, in sorted order);
    otherwise regression with y scaled to [-1, 1]. Rows are shuffled with ``seed``.
    """
    for role, col in (("x1", x1), ("x2", x2), ("target", target)):
        if col not in table.columns:
            raise ValueError(f"upload_{role} {col!r} is not a column of the upload: use one "
                             f"of {', '.join(table.columns)}")
    for role, col in (("x1", x1), ("x2", x2)):
        if col not in table.numeric:
            raise ValueError(f"upload_{role} {col!r} is not a numeric column: use one of "
                             f"{', '.join(table.numeric_columns)}")
    X = np.column_stack([scale_to(table.numeric[x1], -EXTENT, EXTENT),
                         scale_to(table.numeric[x2], -EXTENT, EXTENT)])
    classes: list[str] = []
    if target in table.numeric:
        t = table.numeric[target]
        distinct = np.unique(t)
        if len(distinct) <= MAX_CLASSES and np.all(distinct == np.round(distinct)):
            classes = [f"{v:g}" for v in distinct]
            y = np.searchsorted(distinct, t).astype(np.float64)
        else:
            y = scale_to(t, -1.0, 1.0)
    else:
        labels = table.cells[target]
        names = sorted(set(labels))
        if len(names) > MAX_CLASSES:
            raise ValueError(f"the target {target!r} has {len(names)} distinct values, the "
                             f"playground takes at most {MAX_CLASSES} classes: choose another "
                             "target column")
        index = {v: i for i, v in enumerate(names)}
        y = np.array([index[v] for v in labels], dtype=np.float64)
        classes = names
    if len(classes) == 1:
        raise ValueError(f"the target {target!r} has a single value: choose a target column "
                         "with at least 2 classes or varying numbers")
    if table.rows < 4:
        raise ValueError(f"the upload has {table.rows} rows: the playground needs at least 4 "
                         "(to train and test)")
    order = np.random.default_rng(seed).permutation(table.rows)
    return X[order], y[order], classes
