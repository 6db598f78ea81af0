"""A model for tables: an :class:`~zeronn.network.MLP` plus everything a CSV needs around it.

:class:`TabularModel` is what the ``zeronn`` command trains and saves. Around the network
it keeps the feature and target column names, the task (``"regression"`` or
``"classification"``), the input standardization (``x_mean``, ``x_scale``), the regression
target standardization (``y_mean``, ``y_scale``) and the class labels (strings stay
strings, numbers stay numbers). It reads pandas DataFrames, matching columns by name, and
implements the model-file protocol (kind ``"tabular"``, see ``zeronn.persistence``) so
``zeronn.save`` / ``zeronn.load`` round-trip it.

pandas is imported lazily (the ``data`` extra), so loading a model file never needs it
until data is actually read.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import (
    flag,
    fraction,
    non_negative_number,
    positive_number,
    resolve_dtype,
)
from zeronn.activations import get_activation
from zeronn.history import EarlyStopping, History
from zeronn.layers import Activation, BatchNorm, Dense, Dropout, Layer
from zeronn.losses import get_loss
from zeronn.models import MLP, Sequential
from zeronn.onnx_export import GraphSpec
from zeronn.optim import get_optimizer
from zeronn.persistence import register_kind
from zeronn.tabular.columns import ColumnPlan, is_missing, plan_columns
from zeronn.tabular.onnx_inputs import onnx_columns, onnx_inputs
from zeronn.tabular.preprocessing import DEFAULT_MAX_CATEGORIES, Preprocessor, Remarks
from zeronn.tasks import (
    LABEL_KINDS,
    REGRESSION,
    as_label,
    classification_task,
    decode,
    encode_codes,
    label_array,
    label_kind_of_values,
    probabilities,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LABEL_KINDS", "TASKS", "TabularModel"]

TASKS = ("auto", "regression", "classification")
CLASS_WEIGHTS = (None, "balanced")
MAX_INTEGER_CLASSES = 20  # an all-integer target with at most this many values: classes
REGRESSION_LOSSES = ("mse", "mae", "huber")
MAX_LISTED = 20  # column names listed in an error message before "... and N more"
# early_stopping="auto": wait this many epochs, and at least this many optimizer steps
# (a small table's epoch is a handful of steps; iris: 4).
AUTO_PATIENCE_EPOCHS = 50
AUTO_PATIENCE_STEPS = 1000
# The stacklevel of a warning raised in a helper that fit calls: the warning then names the
# line that called fit (1 would name the helper, 2 fit).
_FIT_CALLER = 3


def _require_pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ValueError("reading tables needs pandas: pip install 'zeronn[data]'") from None
    return pd


def _listing(names: Sequence[Any], limit: int = MAX_LISTED) -> str:
    """``'a', 'b', 'c'`` (at most ``limit`` names, then how many more)."""
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    more = len(names) - limit
    return shown + (f" and {more} more" if more > 0 else "") if names else "(no columns)"


def _column_map(df: pd.DataFrame) -> dict[str, Any]:
    """Column name (as str) -> the frame's column key; duplicate names are refused."""
    seen: dict[str, Any] = {}
    for c in df.columns:
        key = str(c)
        if key in seen:
            raise ValueError(f"the data has two columns named {key!r}: rename one")
        seen[key] = c
    return seen


def _resolve_columns(df: pd.DataFrame, names: Sequence[str], role: str) -> list[Any]:
    """The frame's keys for ``names``; unknown names fail listing the available columns."""
    cmap = _column_map(df)
    missing = [n for n in names if str(n) not in cmap]
    if missing:
        what = "column" if len(missing) == 1 else "columns"
        raise ValueError(f"unknown {role} {what} {_listing(missing)}; the data has: "
                         f"{_listing(list(cmap))}")
    return [cmap[str(n)] for n in names]


def _row(df: pd.DataFrame, pos: int) -> str:
    """How errors name a row: its index label (the CLI numbers data rows from 1)."""
    return f"row {df.index[pos]}"


def _numeric_column(df: pd.DataFrame, col: Any, role: str) -> NDArray:
    """One column as finite float64 (n,); names the first bad cell's row and column."""
    pd = _require_pandas()
    s = df[col]
    if s.dtype.kind in "biuf":
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        obj = s.astype(object)
        num = pd.to_numeric(obj, errors="coerce")
        bad = np.flatnonzero(num.isna().to_numpy() & obj.notna().to_numpy())
        if bad.size:
            p = int(bad[0])
            raise ValueError(f"{role} column {str(col)!r} has a non-numeric value "
                             f"{obj.iloc[p]!r} at {_row(df, p)}: fix the cell, or leave the "
                             f"column out")
        values = num.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.flatnonzero(np.isnan(values))
    if nan.size:
        raise ValueError(f"{role} column {str(col)!r} has a missing value at "
                         f"{_row(df, int(nan[0]))}: fill it in or drop the row")
    inf = np.flatnonzero(np.isinf(values))
    if inf.size:
        p = int(inf[0])
        raise ValueError(f"{role} column {str(col)!r} has an infinite value ({values[p]}) at "
                         f"{_row(df, p)}: fix the cell or drop the row")
    return values


def _numeric_matrix(df: pd.DataFrame, cols: Sequence[Any], role: str) -> NDArray:
    """Columns as a checked float64 matrix (n, len(cols))."""
    out = np.empty((len(df), len(cols)), np.float64)
    for j, c in enumerate(cols):
        out[:, j] = _numeric_column(df, c, role)
    return out


def _label_column(df: pd.DataFrame, col: Any) -> tuple[list[Any], str]:
    """A target column as plain labels and their kind; missing or non-finite labels fail."""
    pd = _require_pandas()
    values = df[col].astype(object).to_numpy()
    missing = np.flatnonzero(pd.isna(values))
    if missing.size:
        raise ValueError(f"target column {str(col)!r} has a missing label at "
                         f"{_row(df, int(missing[0]))}: fill it in or drop the row")
    kind = label_kind_of_values(values)
    labels = [as_label(v, kind) for v in values]
    if kind == "float":
        bad = [i for i, v in enumerate(labels) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"target column {str(col)!r} has a non-finite label at "
                             f"{_row(df, bad[0])}: fix the cell or drop the row")
    return labels, kind


def _is_numeric(series: Any) -> bool:
    return bool(series.dtype.kind in "iuf")


def _standardizer(a: NDArray) -> tuple[NDArray, NDArray]:
    """Column means and standard deviations (constant columns get scale 1, as scikit-learn)."""
    mean = a.mean(axis=0)
    # Column by column: np.std over the whole matrix would hold a full-size temporary
    # (a big table's training peak).
    scale = np.array([a[:, j].std() for j in range(a.shape[1])], dtype=np.float64)
    scale[~(scale > np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean)))] = 1.0
    return mean, scale


class _KeepBestAccuracy:
    """Early stopping for classifiers: keeps the epoch of the best validation accuracy.

    On a small table the validation share is a few dozen rows, and its log loss is
    noisy: a few confident mistakes make it lowest after a handful of epochs while the
    accuracy still improves for hundreds (iris: 17 validation rows, lowest loss at epoch
    12). So classifiers keep the epoch with the highest validation accuracy, the lower
    validation loss breaking ties (as scikit-learn's ``early_stopping`` scores
    classifiers by accuracy), and stop after ``patience`` epochs without either
    improving. ``weights`` (the validation rows' class weights) make the accuracy
    weighted (balanced, with ``class_weight="balanced"``).

    A callback of the fit (``cb(epoch, history)``, truthy stops); :meth:`restore` puts the
    kept weights back afterwards.
    """

    def __init__(self, net: Sequential, Xv: NDArray, Yv: NDArray, patience: int,
                 weights: NDArray | None) -> None:
        self.net, self.Xv, self.patience = net, Xv, patience
        # Yv: one-hot rows (n_val, k), or (n_val, 1) 0/1 for two classes (sigmoid).
        self.truth = Yv.argmax(axis=1) if Yv.shape[1] > 1 else Yv[:, 0] > 0.5
        self.weights = (np.ones(len(Xv)) if weights is None
                        else np.asarray(weights, np.float64))
        self.best_accuracy, self.best_loss = -1.0, math.inf
        self.best_epoch, self.wait = 0, 0
        self.best_params: NDArray | None = None

    def __call__(self, epoch: int, history: History) -> bool:
        out = self.net.predict(self.Xv)
        pred = out.argmax(axis=1) if out.shape[1] > 1 else out[:, 0] > 0.5
        accuracy = float(self.weights[pred == self.truth].sum() / self.weights.sum())
        loss = history["val_loss"][-1]
        if accuracy > self.best_accuracy or (accuracy == self.best_accuracy
                                             and loss < self.best_loss):
            self.best_accuracy, self.best_loss = accuracy, loss
            self.best_epoch, self.wait = epoch, 0
            history.best_epoch = epoch
            if self.best_params is None:
                self.best_params = self.net.flat_params.copy()
            else:
                np.copyto(self.best_params, self.net.flat_params)
            return False
        self.wait += 1
        if self.wait >= self.patience:
            history.stopped_early = True
            return True
        return False

    def restore(self, history: History) -> None:
        """The kept epoch's weights back into the network (after the fit)."""
        if self.best_params is not None:
            np.copyto(self.net.flat_params, self.best_params)
            history.best_epoch = self.best_epoch


class _FitColumns(NamedTuple):
    """The columns a fit reads, named by text: the targets, the candidate features, the excluded."""

    targets: list[str]
    features: list[str]
    excluded: list[str]


def _fit_columns(df: pd.DataFrame, targets: str | Sequence[str],
                 features: Sequence[str] | None, exclude: Sequence[str] | None) -> _FitColumns:
    """``fit``'s arguments checked and its columns found in ``df`` (ValueError says what is off)."""
    if not hasattr(df, "columns") or not hasattr(df, "iloc"):
        raise ValueError(f"fit needs a pandas DataFrame, got {type(df).__name__}")
    target_list = [targets] if isinstance(targets, str) else list(targets)
    if not target_list:
        raise ValueError("give at least one target column")
    if len(set(map(str, target_list))) != len(target_list):
        raise ValueError(f"a target column is listed twice: {_listing(target_list)}")
    tcols = _resolve_columns(df, target_list, "target")
    cmap = _column_map(df)
    exclude_list = [str(e) for e in exclude or ()]
    if exclude_list:
        _resolve_columns(df, exclude_list, "excluded")
    if features is None:
        tset = {str(c) for c in tcols}
        feature_list = [name for name in cmap if name not in tset]
    else:
        feature_list = [str(f) for f in features]
        if len(set(feature_list)) != len(feature_list):
            raise ValueError(f"a feature column is listed twice: {_listing(feature_list)}")
    fcols = _resolve_columns(df, feature_list, "feature")
    both = [str(c) for c in fcols if str(c) in {str(t) for t in tcols}]
    if both:
        raise ValueError(f"column {_listing(both)} is both a feature and a target: "
                         "leave it out of the features")
    if not fcols:
        raise ValueError("there are no feature columns left besides the targets: "
                         "the data needs at least one input column")
    if len(df) == 0:
        raise ValueError("the data has no rows: it needs at least one")
    return _FitColumns([str(c) for c in tcols], [str(c) for c in fcols], exclude_list)


def _rows_with_targets(df: pd.DataFrame, targets: list[str]) -> tuple[pd.DataFrame, int]:
    """(``df`` named by text, less the rows without a target (warned); how many those were)."""
    # From here on columns are named by text (what the model file keeps).
    df = df.set_axis([str(c) for c in df.columns], axis=1)
    # Rows without a target teach nothing: drop them, and say how many.
    absent = np.zeros(len(df), bool)
    for c in targets:
        absent |= is_missing(df[c])
    if absent.all():
        raise ValueError(f"the target column {_listing(targets)} has no values: every row's "
                         "target is missing")
    if absent.any():
        warnings.warn(f"{int(absent.sum())} of {len(df)} rows have no target value: "
                      "left out of training", stacklevel=_FIT_CALLER)
        df = df[~absent]
    return df, int(absent.sum())


def _planned(df: pd.DataFrame, columns: _FitColumns, forced: bool) -> list[ColumnPlan]:
    """The candidate features' plans; a column the rules leave out says why in a warning."""
    plans = plan_columns(df, columns.features, forced=forced, exclude=columns.excluded)
    for plan in plans:
        if plan.kind == "excluded" and plan.reason and "--exclude" not in plan.reason:
            warnings.warn(plan.reason, stacklevel=_FIT_CALLER)
    if all(plan.kind == "excluded" for plan in plans):
        raise ValueError("every feature column was left out: name the input columns "
                         "with features (--features)")
    return plans


class _Goal(NamedTuple):
    """What the network learns: its targets, loss and output activation, and the labels."""

    Y: NDArray  # (n, n_outputs): the values, or the class codes (one-hot, or 0/1 for two)
    loss: str
    out_act: str
    classes: list[Any]  # [] for regression
    kind: str | None  # the labels' kind (None for regression)
    weights: NDArray | None  # each row's class weight (class_weight="balanced"), or None


class _Scalings(NamedTuple):
    """The standardization: inputs' means and scales, the regression targets' (none for classes)."""

    x_mean: NDArray
    x_scale: NDArray
    y_mean: NDArray
    y_scale: NDArray


class _TrainingData(NamedTuple):
    """The rows as the network trains on them: shuffled once, inputs (and values) standardized."""

    X: NDArray
    Y: NDArray
    weights: NDArray | None


class _Stopping(NamedTuple):
    """How a fit stops early (all None: it trains every epoch)."""

    patience: int | None
    stopping: EarlyStopping | None  # regression: the engine's, on the validation loss
    keeper: _KeepBestAccuracy | None  # classification: on the validation accuracy


class TabularModel:
    """An MLP for a table: named features in, named targets (values or labels) out.

    Parameters
    ----------
    hidden : hidden layer sizes, e.g. ``(64, 64)``; ``()`` is a linear model.
    activation : hidden activation name (see ``zeronn.ACTIVATIONS``).
    loss : ``None`` (``"mse"`` for regression, the matching cross-entropy for
        classification) or a regression loss name (``mse``, ``mae``, ``huber``).
    optimizer, lr : optimizer name (``zeronn.optim``) and its learning rate.
    epochs, batch_size : training length and mini-batch size (``None``: full batch).
    validation_split : the share of rows held out to report ``val_loss`` (and to drive
        early stopping). The rows are shuffled once with ``seed`` before the split, so a
        table sorted by its target still validates on a fair sample.
    early_stopping : ``"auto"`` (default), a patience in epochs, or ``None`` (train all
        ``epochs``). Training stops after ``patience`` epochs without a better validation
        score and the best epoch's weights are restored. The score: the validation
        accuracy for classification (weighted with ``class_weight``; the lower validation
        loss breaks ties), the validation loss for regression. ``"auto"``: 50 epochs, or
        on a small table enough epochs for 1000 optimizer steps (see :meth:`patience`).
    standardize : scale inputs (and regression targets) to mean 0, std 1 from the
        training data; the scaling is stored and applied again by ``predict``.
    task : ``"auto"``, ``"regression"`` or ``"classification"``. ``"auto"``:
        classification when the target is text or booleans, or numbers that are all whole
        with at most 20 distinct values (scikit-learn's ``type_of_target`` rule; a
        warning says so), else regression.
    seed : seeds initialisation, the split and the shuffling (and the dropout masks).
    dtype : ``"float64"`` or ``"float32"`` for the network.
    dropout : share of each hidden layer's outputs dropped while training, in [0, 1)
        (default 0.2); 0 adds no Dropout layer.
    batch_norm : a BatchNorm between each hidden Dense layer and its activation (every
        training batch then needs at least 2 rows).
    weight_decay : L2 penalty of the optimizer (decoupled for ``adamw``).
    max_categories : most one-hot columns per text column (the rarest values share an
        "other" column), see :mod:`zeronn.tabular.preprocessing`.
    class_weight : ``None`` or ``"balanced"`` (classification: each row weighs
        ``n_rows / (n_classes * n_rows_of_its_class)``, as scikit-learn).

    The input columns are typed and encoded by :mod:`zeronn.tabular.columns` and
    :mod:`zeronn.tabular.preprocessing` (numbers with median imputation and a missing
    indicator, booleans, one-hot categories, dates; ID and free-text columns left out):
    the fitted encoding is :attr:`preprocessor`, kept in the model file.

    The defaults hold out 15% of the rows and stop when their score (accuracy for
    classifiers, loss for regressors) has not improved for 50 epochs or 1000 optimizer
    steps, whichever is longer, keeping the best epoch's weights
    (``training["kept_epoch"]``, ``"kept_val_accuracy"``, ``"patience"``), with dropout
    0.2 and weight decay 1e-4 (measured in ``benchmarks/tables.py``: within 0.02 of
    scikit-learn on its bundled datasets and on mixed tables, ``docs/tables.md``).

    Each hidden layer is ``Dense -> [BatchNorm] -> activation -> [Dropout]``; with neither
    option the network is a plain :class:`~zeronn.models.MLP`.
    """

    zeronn_kind: ClassVar[str] = "tabular"

    def __init__(
        self,
        hidden: Sequence[int] = (64, 64),
        activation: str = "relu",
        loss: str | None = None,
        optimizer: str = "adam",
        lr: float = 1e-3,
        epochs: int = 500,
        batch_size: int | None = 32,
        validation_split: float = 0.15,
        early_stopping: int | str | None = "auto",
        standardize: bool = True,
        task: str = "auto",
        seed: int | None = 0,
        dtype: str = "float64",
        dropout: float = 0.2,
        batch_norm: bool = False,
        weight_decay: float = 1e-4,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        class_weight: str | None = None,
    ) -> None:
        if isinstance(hidden, (str, bytes)):
            raise ValueError(f"hidden must be a list of layer sizes, got {hidden!r}")
        self.hidden = [positive_number("each hidden layer size", h, integer=True)
                       for h in hidden]
        self.activation = get_activation(activation).name
        if loss is not None:
            loss = get_loss(loss).name
        self.loss = loss
        self.lr = positive_number("lr", lr)
        self.optimizer = get_optimizer(optimizer, lr=self.lr).name
        self.epochs = positive_number("epochs", epochs, integer=True)
        self.batch_size = (None if batch_size is None
                           else positive_number("batch_size", batch_size, integer=True))
        self.validation_split = fraction("validation_split", validation_split)
        if early_stopping is not None and early_stopping != "auto" and (
                isinstance(early_stopping, bool)
                or not isinstance(early_stopping, (int, np.integer)) or early_stopping < 1):
            raise ValueError("early_stopping must be a patience in epochs (an integer >= 1), "
                             f"'auto' or None (no early stopping), got {early_stopping!r}")
        self.early_stopping: int | str | None = (
            int(early_stopping) if isinstance(early_stopping, (int, np.integer))
            else early_stopping)
        self.standardize = bool(standardize)
        if task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
        self.task = task
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                                 or seed < 0):
            raise ValueError(f"seed must be an integer >= 0 or None, got {seed!r}")
        self.seed = seed
        self.dtype = resolve_dtype(dtype).name
        self.dropout = fraction("dropout (the share of hidden units dropped while training)",
                                dropout)
        self.batch_norm = flag("batch_norm", batch_norm)
        self.weight_decay = non_negative_number("weight_decay", weight_decay)
        Preprocessor(max_categories)  # checks it
        self.max_categories = int(max_categories)
        if class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
        self.class_weight = class_weight
        self._summed: Remarks | None = None  # inside remarks_summed(): the counts so far
        self._reset()

    def _reset(self) -> None:
        self.net: Sequential | None = None
        self.feature_names: list[str] = []
        self.target_names: list[str] = []
        self.classes: list[Any] = []
        self.label_kind: str | None = None
        self.x_mean = np.zeros(0)
        self.x_scale = np.zeros(0)
        self.y_mean = np.zeros(0)
        self.y_scale = np.zeros(0)
        self.training: dict[str, Any] = {}
        self.preprocessor = Preprocessor(self.max_categories)

    # -- description -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The constructor arguments (JSON-safe)."""
        return {"hidden": list(self.hidden), "activation": self.activation, "loss": self.loss,
                "optimizer": self.optimizer, "lr": self.lr, "epochs": self.epochs,
                "batch_size": self.batch_size, "validation_split": self.validation_split,
                "early_stopping": self.early_stopping, "standardize": self.standardize,
                "task": self.task, "seed": self.seed, "dtype": self.dtype,
                "dropout": self.dropout, "batch_norm": self.batch_norm,
                "weight_decay": self.weight_decay, "max_categories": self.max_categories,
                "class_weight": self.class_weight}

    @property
    def fitted(self) -> bool:
        return self.net is not None

    @property
    def fitted_task(self) -> str:
        """``"regression"`` or ``"classification"`` (after ``fit``)."""
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        return "classification" if self.classes else "regression"

    def __repr__(self) -> str:
        if self.net is None:
            return f"TabularModel(hidden={self.hidden}, activation={self.activation!r}, unfitted)"
        return (f"TabularModel({self.fitted_task}, features={self.feature_names}, "
                f"targets={self.target_names}, net={self.net!r})")

    # -- training --------------------------------------------------------------------
    def fit(self, df: pd.DataFrame, targets: str | Sequence[str],
            features: Sequence[str] | None = None, verbose: int = 0,
            exclude: Sequence[str] | None = None) -> History:
        """Trains on the DataFrame ``df`` (n_samples rows); returns the fit's History.

        ``targets``: one column name or several (several only for regression).
        ``features``: the input columns (default: every other column, less the ones the
        column rules leave out, see :mod:`zeronn.tabular.columns`); given, they are all
        used. ``exclude``: columns left out. Rows whose target is missing are dropped
        (a warning counts them). Remarks (columns left out, the task chosen, dropped rows,
        an early minimum of the validation loss) are ``warnings.warn`` lines.
        """
        _require_pandas()
        columns = _fit_columns(df, targets, features, exclude)
        df, n_dropped = _rows_with_targets(df, columns.targets)
        plans = _planned(df, columns, forced=features is not None)
        task = self._decide_task(df, columns.targets)
        pre = Preprocessor(self.max_categories).fit(df, plans)
        X, _ = pre.transform(df)
        goal = (self._classification_goal(df, columns.targets[0]) if task == "classification"
                else self._regression_goal(df, columns.targets))
        scalings = self._scalings(X, goal.Y, task)
        data = self._standardized_and_shuffled(X, goal, scalings, task)
        split = self._validation_share(len(df))
        net = self._network(X.shape[1], data.Y.shape[1], goal.out_act, self._init())
        stop = self._early_stopping(net, data, split, task)
        hist, seconds = self._train(net, data, goal.loss, split, stop, verbose)
        self._keep(net, pre, columns.targets, goal, scalings)
        self._record(hist, goal.loss, len(df), split, n_dropped, stop, seconds)
        return hist

    def _classification_goal(self, df: pd.DataFrame, target: str) -> _Goal:
        """The labels of column ``target`` as classes and their codes, for cross-entropy."""
        t = df[target]
        if t.dtype.kind == "f" and np.all(t.to_numpy() == np.round(t.to_numpy())):
            # 0/1/2 read as floats (a column that had empty cells): labels are ints.
            df = df.copy()
            df[target] = t.astype(np.int64)
        labels, kind = _label_column(df, target)
        classes = sorted(set(labels))
        if len(classes) < 2:
            raise ValueError(f"target column {target!r} has a single class "
                             f"{classes[0]!r}: classification needs at least two")
        index = {c: i for i, c in enumerate(classes)}
        codes = np.fromiter((index[v] for v in labels), np.intp, len(labels))
        Y = encode_codes(codes, len(classes))
        rule = classification_task(len(classes))
        loss = rule.loss
        if self.loss not in (None, loss):
            raise ValueError(f"loss {self.loss!r} is for regression; classification "
                             f"trains with {loss}: leave the loss unset")
        weights: NDArray | None = None
        if self.class_weight == "balanced":
            counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
            weights = (len(codes) / (len(classes) * counts))[codes]
        return _Goal(Y, loss, rule.output_activation, classes, kind, weights)

    def _regression_goal(self, df: pd.DataFrame, targets: list[str]) -> _Goal:
        """The target columns' values (n, n_targets), trained with a regression loss."""
        if self.class_weight is not None:
            raise ValueError("class_weight is for classification; this target is "
                             "regression: leave it out")
        Y = _numeric_matrix(df, targets, "target")
        loss = self.loss or REGRESSION.loss
        if loss not in REGRESSION_LOSSES:
            raise ValueError(f"loss {loss!r} is for classification; regression trains with "
                             f"one of {', '.join(REGRESSION_LOSSES)}")
        return _Goal(Y, loss, REGRESSION.output_activation, [], None, None)

    def _scalings(self, X: NDArray, Y: NDArray, task: str) -> _Scalings:
        """The data's means and scales with ``standardize``, else ones that change nothing."""
        if self.standardize:
            x_mean, x_scale = _standardizer(X)
        else:
            x_mean, x_scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        if task == "regression" and self.standardize:
            y_mean, y_scale = _standardizer(Y)
        elif task == "regression":
            y_mean, y_scale = np.zeros(Y.shape[1]), np.ones(Y.shape[1])
        else:
            y_mean, y_scale = np.zeros(0), np.zeros(0)
        return _Scalings(x_mean, x_scale, y_mean, y_scale)

    def _standardized_and_shuffled(self, X: NDArray, goal: _Goal, scalings: _Scalings,
                                   task: str) -> _TrainingData:
        """``X`` standardized and its rows shuffled (once, with ``seed``) in place; Y alike."""
        # In place, and the rows shuffled column by column: a big table's matrix exists
        # once (no full-size temporaries besides it).
        X -= scalings.x_mean
        X /= scalings.x_scale
        Ys = ((goal.Y - scalings.y_mean) / scalings.y_scale if task == "regression"
              else goal.Y)

        # One shuffle before the engine holds out the *last* rows for validation: a table
        # sorted by its target would otherwise validate on one end of it only.
        order = np.random.default_rng(self.seed).permutation(len(X))
        for j in range(X.shape[1]):  # column by column: no second copy of the matrix
            X[:, j] = X[order, j]
        weights = None if goal.weights is None else goal.weights[order]
        return _TrainingData(X, Ys[order], weights)

    def _validation_share(self, n_rows: int) -> float:
        """``validation_split``, or 0 (with a warning) when it would hold out no row."""
        split = self.validation_split
        if split and round(n_rows * split) == 0:
            warnings.warn(f"{n_rows} rows are too few to hold out {split:g} of them for "
                          "validation: training on all rows, without early stopping",
                          stacklevel=_FIT_CALLER)
            split = 0.0
        return split

    def _init(self) -> str:
        """The weights' initializer: He's for the ReLU family, else Glorot's."""
        return "he_normal" if get_activation(self.activation).relu_family else "glorot_uniform"

    def _early_stopping(self, net: Sequential, data: _TrainingData, split: float,
                        task: str) -> _Stopping:
        """How the fit of ``net`` stops early when it holds out ``split`` of the rows."""
        if self.early_stopping is None or not split:
            return _Stopping(None, None, None)
        # The engine holds out the last rows (the keeper scores the same rows).
        cut = len(data.X) - round(len(data.X) * split)
        patience = self.patience(cut)
        assert patience is not None
        if task == "classification":
            keeper = _KeepBestAccuracy(net, data.X[cut:], data.Y[cut:], patience,
                                       None if data.weights is None else data.weights[cut:])
            return _Stopping(patience, None, keeper)
        return _Stopping(patience, EarlyStopping(patience), None)

    def _train(self, net: Sequential, data: _TrainingData, loss: str, split: float,
               stop: _Stopping, verbose: int) -> tuple[History, float]:
        """Trains ``net``, the kept epoch's weights restored; (its History, the seconds taken)."""
        t0 = time.perf_counter()
        hist = net.fit(data.X, data.Y, loss=loss,
                       optimizer=get_optimizer(self.optimizer, lr=self.lr,
                                               weight_decay=self.weight_decay),
                       epochs=self.epochs, batch_size=self.batch_size, shuffle=True,
                       validation_split=split, early_stopping=stop.stopping,
                       callbacks=[] if stop.keeper is None else [stop.keeper],
                       verbose=verbose, seed=self.seed, sample_weight=data.weights)
        if stop.keeper is not None:
            stop.keeper.restore(hist)
        return hist, time.perf_counter() - t0

    def _keep(self, net: Sequential, pre: Preprocessor, targets: list[str], goal: _Goal,
              scalings: _Scalings) -> None:
        """The fitted network, encoding, names, labels and scalings, in place of any before."""
        self._reset()
        self.net = net
        self.preprocessor = pre
        self.feature_names = pre.input_names
        self.target_names = list(targets)
        self.classes, self.label_kind = goal.classes, goal.kind
        self.x_mean, self.x_scale, self.y_mean, self.y_scale = scalings

    def _record(self, hist: History, loss: str, n_rows: int, split: float, n_dropped: int,
                stop: _Stopping, seconds: float) -> None:
        """``training``, the fit's summary; an early minimum of the validation loss is warned."""
        kept = hist.best_epoch if hist.best_epoch and stop.patience else hist.epochs
        has_val = "val_loss" in hist
        self.training = {
            "loss_name": loss,
            "n_samples": n_rows,
            "n_validation": round(n_rows * split) if split else 0,
            "n_dropped_no_target": n_dropped,
            "epochs_run": hist.epochs,
            "final_loss": hist["loss"][-1] if hist.epochs else None,
            "final_val_loss": hist["val_loss"][-1] if has_val else None,
            "kept_epoch": kept,
            "kept_loss": hist["loss"][kept - 1] if kept else None,
            "kept_val_loss": hist["val_loss"][kept - 1] if has_val and kept else None,
            "kept_val_accuracy": (stop.keeper.best_accuracy if stop.keeper is not None
                                  else None),
            "patience": stop.patience,
            "early_minimum": False,
            "stopped_early": bool(hist.stopped_early),
            "best_epoch": hist.best_epoch,
            "interrupted": bool(hist.interrupted),
            "seconds": seconds,
        }
        if has_val and hist.epochs >= 10:
            lowest = int(np.argmin(hist["val_loss"])) + 1
            if lowest <= hist.epochs / 10:
                self.training["early_minimum"] = True
                warnings.warn(f"the validation loss was lowest at epoch {lowest} of "
                              f"{hist.epochs}, in the first tenth of the run: the model "
                              "learns fast and then overfits; a smaller learning rate (--lr) "
                              "or network (--hidden) may do better",
                              stacklevel=_FIT_CALLER)

    def patience(self, n_train: int) -> int | None:
        """The early-stopping patience in epochs for ``n_train`` training rows (None: off).

        ``"auto"``: 50 epochs, or more on a small table so that the wait covers at least
        1000 optimizer steps (iris's 95 training rows, 3 batches of 32 an epoch: 334 epochs).
        """
        if self.early_stopping is None or isinstance(self.early_stopping, int):
            return self.early_stopping
        steps = max(1, math.ceil(n_train / (self.batch_size or n_train)))
        return max(AUTO_PATIENCE_EPOCHS, math.ceil(AUTO_PATIENCE_STEPS / steps))

    def _network(self, n_in: int, n_out: int, out_act: str, init: str) -> Sequential:
        """The MLP, or with dropout/batch_norm the same Dense layers with those around them."""
        if not self.dropout and not self.batch_norm:
            return MLP([n_in, *self.hidden, n_out], self.activation, out_act, init=init,
                       dtype=self.dtype, seed=self.seed)
        layers: list[Layer] = []
        for units in self.hidden:
            if self.batch_norm:
                layers += [Dense(units, init=init), BatchNorm(), Activation(self.activation)]
            else:
                layers.append(Dense(units, self.activation, init=init))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        layers.append(Dense(n_out, out_act, init=init))
        return Sequential(layers, input_dim=n_in, dtype=self.dtype, seed=self.seed)

    def _decide_task(self, df: pd.DataFrame, tcols: list[Any]) -> str:
        if self.task == "regression":
            return "regression"
        numeric = [_is_numeric(df[c]) for c in tcols]
        if self.task == "auto" and all(numeric):
            if len(tcols) == 1:
                values = df[tcols[0]].to_numpy(dtype=np.float64)
                distinct = np.unique(values)
                if np.isfinite(distinct).all() and np.all(distinct == np.round(distinct)) \
                        and 2 <= distinct.size <= MAX_INTEGER_CLASSES:
                    warnings.warn(
                        f"target column {str(tcols[0])!r} holds {distinct.size} distinct whole "
                        f"numbers: trained as classification (task 'regression', "
                        f"--task regression, to predict numbers)", stacklevel=_FIT_CALLER)
                    return "classification"
            return "regression"
        if len(tcols) != 1:
            raise ValueError(f"classification takes one target column, got {len(tcols)} "
                             f"({_listing([str(c) for c in tcols])}): train one model per "
                             "target")
        if self.task == "auto":
            # A numeric column spoilt by a few typos should not silently become hundreds
            # of classes: ask for the intent instead.
            pd = _require_pandas()
            s = df[tcols[0]]
            if s.dtype.kind not in "b":
                obj = s.astype(object)
                num = pd.to_numeric(obj, errors="coerce")
                present = obj.notna().to_numpy()
                bad = np.flatnonzero(num.isna().to_numpy() & present)
                n_num = int(present.sum()) - bad.size
                if bad.size and n_num > bad.size:
                    p = int(bad[0])
                    raise ValueError(
                        f"target column {str(tcols[0])!r} is mostly numeric but has "
                        f"{obj.iloc[p]!r} at {_row(df, p)}: fix the cell for regression, "
                        "or choose the task 'classification' to treat the values as labels")
        return "classification"

    # -- prediction ------------------------------------------------------------------
    def _inputs(self, df: pd.DataFrame) -> NDArray:
        """The model's feature columns of ``df``, checked and standardized (n, n_features)."""
        _require_pandas()
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        if not hasattr(df, "columns") or not hasattr(df, "iloc"):
            raise ValueError(f"predict needs a pandas DataFrame, got {type(df).__name__}")
        cmap = _column_map(df)
        missing = [f for f in self.feature_names if f not in cmap]
        if missing:
            what = "column" if len(missing) == 1 else "columns"
            raise ValueError(f"the data lacks the model's feature {what} {_listing(missing)}; "
                             f"it has: {_listing(list(cmap))}")
        if len(df) == 0:
            raise ValueError("the data has no rows: it needs at least one")
        X = self.encode(df)
        return (X - self.x_mean) / self.x_scale

    def _feature_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """The model's feature columns of ``df``, named as the model names them."""
        cmap = _column_map(df)
        missing = [f for f in self.feature_names if f not in cmap]
        if missing:
            what = "column" if len(missing) == 1 else "columns"
            raise ValueError(f"the data lacks the model's feature {what} {_listing(missing)}; "
                             f"it has: {_listing(list(cmap))}")
        frame = df[[cmap[f] for f in self.feature_names]]
        frame.columns = list(self.feature_names)
        return frame

    def encode(self, df: pd.DataFrame) -> NDArray:
        """The feature columns of ``df`` encoded (n, n_encoded), before standardization.

        Missing cells are imputed; values unseen in training give one warning line.
        """
        _require_pandas()
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        X, remarks = self.preprocessor.transform_counted(self._feature_frame(df))
        if self._summed is not None:
            self._summed += remarks
        else:
            for note in remarks.lines():
                warnings.warn(note, stacklevel=3)
        return X

    @contextlib.contextmanager
    def remarks_summed(self) -> Iterator[None]:
        """Inside it, the remarks of every call (values unseen in training, unreadable
        dates) are added up and warned once when it ends, a line per kind with the totals:
        a file predicted chunk by chunk gets the remarks of the whole file, not one line
        per chunk. Nothing is warned if the block raises."""
        if self._summed is not None:  # nested: the outer block reports
            yield
            return
        self._summed = Remarks()
        try:
            yield
            summed = self._summed
        finally:
            self._summed = None
        for note in summed.lines():
            warnings.warn(note, stacklevel=3)

    def _outputs(self, df: pd.DataFrame) -> NDArray:
        X = self._inputs(df)  # raises first if unfitted
        assert self.net is not None
        return np.asarray(self.net.predict(X), dtype=np.float64)

    def predict(self, df: pd.DataFrame) -> NDArray:
        """Regression: values (n, n_targets) in the targets' units; classification: labels (n,).

        Labels come back as they were in the training data: strings (object array), ints,
        floats or bools.
        """
        out = self._outputs(df)
        if self.fitted_task == "regression":
            return out * self.y_scale + self.y_mean
        return decode(out, self._label_array())

    def predict_with_proba(self, df: pd.DataFrame) -> tuple[NDArray, NDArray]:
        """Classification: (labels (n,), probabilities (n, n_classes)) from one pass over
        the rows (``predict`` and ``predict_proba`` would each encode them)."""
        if self.fitted_task != "classification":
            raise ValueError("predict_with_proba is for classifiers; this model does "
                             "regression")
        out = self._outputs(df)
        return decode(out, self._label_array()), probabilities(out)

    def predict_proba(self, df: pd.DataFrame) -> NDArray:
        """Class probabilities (n, n_classes), columns in the order of ``classes``."""
        if self.fitted_task != "classification":
            raise ValueError("predict_proba is for classifiers; this model does regression")
        return probabilities(self._outputs(df))

    def raw_network(self) -> Sequential:
        """A copy of the network with the scaling folded into its first and last layers.

        It takes raw feature values (n, n_features) and returns targets in their own units
        (regression) or the class probabilities (classification), so it can be plotted or
        exported without the scaling step. Exact up to rounding: standardization is affine,
        ``((x - m) / s) @ W + b = x @ (W / s[:, None]) + (b - (m / s) @ W)``. It takes
        the encoded columns (:meth:`encode`). Dropout does nothing at inference, so a
        network whose only extra layers are Dropout comes back as a plain MLP.
        """
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        params = [np.array(p, dtype=np.float64) for p in self.net.params]
        W1, b1 = params[0], params[1]
        params[0] = W1 / self.x_scale[:, None]
        params[1] = b1 - (self.x_mean / self.x_scale) @ W1
        if self.fitted_task == "regression":
            params[-2] = params[-2] * self.y_scale
            params[-1] = params[-1] * self.y_scale + self.y_mean
        net = self.net.copy()
        dense = [layer for layer in net.layers if isinstance(layer, Dense)]
        if not isinstance(net, MLP) and all(isinstance(layer, (Dense, Dropout))
                                            for layer in net.layers):
            net = MLP([net.input_shape[0], *(d.units for d in dense)], self.activation,
                      net.output_activation, dtype=net.dtype)
        net.set_params([p.astype(net.dtype) for p in params])
        return net

    def encode_targets(self, df: pd.DataFrame, targets: str | Sequence[str] | None = None
                       ) -> NDArray:
        """The true targets as the raw network's outputs (n, n_outputs).

        Regression: the values; two classes: 1.0 for the second class, else 0.0; more
        classes: one-hot rows in the order of ``classes``. Unknown labels raise ValueError.
        """
        codes, tcols = self._target_codes(df, targets)
        if codes is None:
            return _numeric_matrix(df, tcols, "target")
        return encode_codes(codes, len(self.classes))

    def _target_codes(self, df: pd.DataFrame, targets: str | Sequence[str] | None
                      ) -> tuple[NDArray | None, list[Any]]:
        """(class indices (n,) or None for regression, the target columns' keys)."""
        names = (self.target_names if targets is None
                 else [targets] if isinstance(targets, str) else list(targets))
        tcols = _resolve_columns(df, names, "target")
        if len(tcols) != len(self.target_names):
            raise ValueError(f"the model predicts {len(self.target_names)} target(s) "
                             f"({_listing(self.target_names)}), got {len(tcols)} to compare")
        if self.fitted_task == "regression":
            return None, tcols
        labels, _ = _label_column(df, tcols[0])
        if self.label_kind == "str":
            labels = [str(v) for v in labels]
        index = {c: i for i, c in enumerate(self.classes)}
        unseen = sorted({str(v) for v in labels if v not in index})
        if unseen:
            raise ValueError(f"target column {str(tcols[0])!r} has labels the model never "
                             f"saw: {_listing(unseen, 5)}; it knows {_listing(self.classes)}")
        return np.fromiter((index[v] for v in labels), np.intp, len(labels)), tcols

    def _label_array(self) -> NDArray:
        return label_array(self.classes, self.label_kind)

    # -- evaluation ------------------------------------------------------------------
    def evaluate(self, df: pd.DataFrame, targets: str | Sequence[str] | None = None
                 ) -> dict[str, Any]:
        """Scores on ``df`` against its true ``targets`` columns (default: the trained ones).

        Regression: ``{"task", "n", "targets", "mse", "mae", "r2"}`` with one value per
        target (in the targets' units). Classification: ``{"task", "n", "accuracy",
        "log_loss", "labels", "confusion_matrix"}``, the matrix (n_classes, n_classes)
        counting true labels in rows and predicted labels in columns.
        """
        names = (self.target_names if targets is None
                 else [targets] if isinstance(targets, str) else list(targets))
        absent = np.zeros(len(df), bool)
        for c in _resolve_columns(df, names, "target"):
            absent |= is_missing(df[c])
        if absent.any():
            warnings.warn(f"{int(absent.sum())} of {len(df)} rows have no target value: left "
                          "out of the scores", stacklevel=2)
            df = df[~absent]
        if len(df) == 0:
            raise ValueError("no row has a target value to compare with")
        true, tcols = self._target_codes(df, targets)
        n = len(df)
        if self.fitted_task == "regression":
            Y = _numeric_matrix(df, tcols, "target")
            P = self.predict(df)
            err = P - Y
            ss_res = (err ** 2).sum(axis=0)
            ss_tot = ((Y - Y.mean(axis=0)) ** 2).sum(axis=0)
            # R2 of a constant truth is undefined: 1 for a perfect fit, else 0 (scikit-learn).
            r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1),
                          np.where(ss_res == 0, 1.0, 0.0))
            return {"task": "regression", "n": n, "targets": [str(c) for c in tcols],
                    "mse": (err ** 2).mean(axis=0).tolist(),
                    "mae": np.abs(err).mean(axis=0).tolist(), "r2": r2.tolist()}
        assert true is not None
        proba = self.predict_proba(df)
        pred = proba.argmax(axis=1)
        cm = np.zeros((len(self.classes), len(self.classes)), np.int64)
        np.add.at(cm, (true, pred), 1)
        eps = np.finfo(np.float64).eps
        p_true = np.clip(proba[np.arange(n), true], eps, 1.0)
        return {"task": "classification", "n": n, "targets": [str(tcols[0])],
                "accuracy": float((pred == true).mean()),
                "log_loss": float(-np.log(p_true).mean()),
                "labels": list(self.classes), "confusion_matrix": cm}

    # -- ONNX export ------------------------------------------------------------------
    def onnx_spec(self) -> GraphSpec:
        """What ``zeronn.export_onnx`` builds the graph from: one input per feature column,
        named after it, encoded inside the graph as ``predict`` encodes it (see
        :mod:`zeronn.tabular.onnx_inputs` for what each input holds), the standardisation,
        the network, the target's scaling undone (regression) or the class labels
        (classification), and the column names (as ``metadata_props``)."""
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        task = self.fitted_task
        x = (self.x_mean, self.x_scale) if np.size(self.x_mean) else None
        y = (self.y_mean, self.y_scale) if task == "regression" and np.size(self.y_mean) \
            else None
        return GraphSpec(self.net, task=task, x_scaling=x, y_scaling=y,
                         classes=self._label_array() if task == "classification" else None,
                         kind=self.zeronn_kind, columns=onnx_columns(self.preprocessor),
                         metadata={"feature_names": list(self.feature_names),
                                   "encoded_names": self.preprocessor.output_names,
                                   "target_names": list(self.target_names)})

    def onnx_inputs(self, df: pd.DataFrame) -> dict[str, NDArray]:
        """The exported graph's inputs for the rows of ``df`` (n rows): feature column name
        -> (n, 1) array (float32 numbers and booleans, text, float64 days; see
        :mod:`zeronn.tabular.onnx_inputs`), ready for ``onnxruntime``'s ``run``."""
        _require_pandas()
        if self.net is None:
            raise ValueError("this TabularModel is not fitted yet: call fit(df, targets) first")
        return onnx_inputs(self.preprocessor, self._feature_frame(df))

    # -- the model-file protocol -----------------------------------------------------
    def zeronn_state(self) -> tuple[Sequential | None, dict[str, Any], dict[str, NDArray]]:
        """(the network or None, JSON-safe metadata, numeric arrays) for ``zeronn.save``."""
        meta = {
            "config": self.config(),
            "feature_names": list(self.feature_names),
            "target_names": list(self.target_names),
            "task": self.fitted_task if self.net is not None else None,
            "classes": list(self.classes),
            "label_kind": self.label_kind,
            "training": dict(self.training),
            "preprocessing": self.preprocessor.state() if self.net is not None else None,
        }
        arrays = {"x_mean": self.x_mean, "x_scale": self.x_scale,
                  "y_mean": self.y_mean, "y_scale": self.y_scale}
        return self.net, meta, {k: np.asarray(v, np.float64) for k, v in arrays.items()}

    @classmethod
    def from_zeronn_state(cls, net: Sequential | None, meta: dict[str, Any],
                          arrays: dict[str, NDArray]) -> TabularModel:
        """Rebuilds a model from ``zeronn_state``'s parts; inconsistencies raise ValueError."""
        def bad(why: str) -> ValueError:
            return ValueError(f"inconsistent tabular model: {why}")

        if not isinstance(meta, dict):
            raise bad("the metadata is not a mapping")
        config = meta.get("config")
        if not isinstance(config, dict):
            raise bad("no config")
        try:
            model = cls(**config)
        except TypeError as exc:
            raise bad(f"config does not match TabularModel ({exc})") from None
        if net is None:
            return model
        if not isinstance(net, Sequential) or not isinstance(net.layers[0], Dense) \
                or not isinstance(net.layers[-1], Dense):
            raise bad(f"the network {net!r} is not an MLP or a Sequential that starts and "
                      "ends with a Dense layer")
        feats, targs = meta.get("feature_names"), meta.get("target_names")
        for key, names in (("feature_names", feats), ("target_names", targs)):
            if not isinstance(names, list) or not names or \
                    not all(isinstance(n, str) for n in names):
                raise bad(f"{key} must be a non-empty list of strings")
        assert isinstance(feats, list) and isinstance(targs, list)
        task = meta.get("task")
        if task not in ("regression", "classification"):
            raise bad(f"task must be 'regression' or 'classification', got {task!r}")
        try:
            x_mean, x_scale, y_mean, y_scale = (
                np.asarray(arrays[k], np.float64).reshape(-1)
                for k in ("x_mean", "x_scale", "y_mean", "y_scale"))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"scaling arrays missing or not numeric ({exc})") from None
        n_in, n_out = net.input_shape[0], net.n_outputs
        state = meta.get("preprocessing")
        if state is None:
            # zeronn 0.1 files: numeric columns only, none ever missing (the mean stands in).
            if not (len(feats) == x_mean.size):
                raise bad(f"{len(feats)} feature names but {x_mean.size} scaling values")
            pre = Preprocessor.numeric(feats, x_mean.tolist())
        else:
            pre = Preprocessor.from_state(state)
            if pre.input_names != feats:
                raise bad(f"the preprocessing's columns {pre.input_names} are not the feature "
                          f"names {feats}")
        if not (pre.n_outputs == n_in == x_mean.size == x_scale.size):
            raise bad(f"{pre.n_outputs} encoded features, {x_mean.size}/{x_scale.size} "
                      f"scaling values, but the network takes {n_in} inputs")
        for name, a in (("x_mean", x_mean), ("x_scale", x_scale), ("y_mean", y_mean),
                        ("y_scale", y_scale)):
            if not np.isfinite(a).all():
                raise bad(f"{name} holds NaN or inf")
        if (x_scale <= 0).any() or (y_scale <= 0).any():
            raise bad("a scale is <= 0")
        classes = meta.get("classes")
        kind = meta.get("label_kind")
        if not isinstance(classes, list):
            raise bad("classes must be a list")
        if task == "regression":
            if classes or not (len(targs) == n_out == y_mean.size == y_scale.size):
                raise bad(f"regression with {len(targs)} targets, {y_mean.size} target "
                          f"scalings and {n_out} network outputs")
            if net.output_activation != REGRESSION.output_activation:
                raise bad("a regression network must have an identity output")
        else:
            if kind not in LABEL_KINDS:
                raise bad(f"label_kind must be one of {LABEL_KINDS}, got {kind!r}")
            assert isinstance(kind, str)
            try:
                restored = [as_label(c, kind) for c in classes]
            except (TypeError, ValueError):
                raise bad(f"classes {classes!r} are not of kind {kind!r}") from None
            if restored != classes or len(set(restored)) != len(restored) or len(restored) < 2:
                raise bad(f"classes {classes!r} must be >= 2 distinct values of kind {kind!r}")
            rule = classification_task(len(classes))
            want_out, want_act = rule.n_outputs(len(classes)), rule.output_activation
            if len(targs) != 1 or n_out != want_out or net.output_activation != want_act:
                raise bad(f"{len(classes)} classes need one target and {want_out} "
                          f"{want_act} output(s), got {len(targs)} target(s) and {n_out} "
                          f"{net.output_activation} output(s)")
            if y_mean.size or y_scale.size:
                raise bad("a classifier has no target scaling")
        model.net = net
        model.preprocessor = pre
        model.feature_names, model.target_names = list(feats), list(targs)
        model.classes, model.label_kind = (list(classes), kind) if task == "classification" \
            else ([], None)
        model.x_mean, model.x_scale, model.y_mean, model.y_scale = \
            x_mean, x_scale, y_mean, y_scale
        training = meta.get("training", {})
        model.training = dict(training) if isinstance(training, dict) else {}
        return model


# zeronn.save/zeronn.load handle TabularModel (also declared as an entry point in
# pyproject.toml, so its files load before this module is imported).
register_kind(TabularModel.zeronn_kind, TabularModel)
