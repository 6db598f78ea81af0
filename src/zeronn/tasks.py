"""Task rules in one place: which output layer and loss go with which kind of target, how
class labels become network targets and come back, and how labels are stored.

Every front end (the scikit-learn estimators, the tabular model and its command line, the
ONNX export) reads these rules from here, so a classifier trained by one and read by
another agrees on them.

- regression: identity output, mean squared error; targets are the values.
- binary (two classes): one sigmoid output ``p = P(second class)``, binary cross-entropy;
  a label is encoded as 0.0 or 1.0 and decoded as ``classes[p > 0.5]``.
- multiclass (three or more): one softmax output per class, categorical cross-entropy;
  a label is a one-hot row and decoded by the argmax.
- multilabel (a 0/1 indicator per label, scikit-learn's): one sigmoid output per label,
  binary cross-entropy.

Labels keep their kind (``"str"``, ``"int"``, ``"float"`` or ``"bool"``): it decides the
plain Python values written to model files and the dtype of restored label arrays and of
ONNX label tensors.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = [
    "BINARY",
    "LABEL_DTYPES",
    "LABEL_KINDS",
    "MULTICLASS",
    "MULTILABEL",
    "REGRESSION",
    "TARGET_KINDS",
    "THRESHOLD",
    "Task",
    "as_label",
    "classification_task",
    "decode",
    "decode_indices",
    "encode",
    "encode_codes",
    "label_array",
    "label_kind_of_dtype",
    "label_kind_of_values",
    "one_hot",
    "probabilities",
]


@dataclass(frozen=True)
class Task:
    """A kind of target and the output layer and loss that fit it, by their names in
    ``ACTIVATIONS`` and ``LOSSES`` (a test checks they are registered)."""

    kind: str
    output_activation: str
    loss: str

    def n_outputs(self, n_classes: int) -> int:
        """Network outputs for ``n_classes`` labels: 1 for binary, one per label otherwise
        (regression: ``n_classes`` is the number of targets)."""
        return 1 if self.kind == "binary" else n_classes


REGRESSION = Task("regression", "identity", "mse")
BINARY = Task("binary", "sigmoid", "binary_crossentropy")
MULTICLASS = Task("multiclass", "softmax", "categorical_crossentropy")
MULTILABEL = Task("multilabel", "sigmoid", "binary_crossentropy")
TARGET_KINDS: dict[str, Task] = {t.kind: t for t in (REGRESSION, BINARY, MULTICLASS, MULTILABEL)}

# The binary decision: the second class once its probability is above one half (what
# scikit-learn's LabelBinarizer does for a sigmoid output, and the ONNX graph too).
THRESHOLD = 0.5


def classification_task(n_classes: int) -> Task:
    """:data:`BINARY` for two classes, :data:`MULTICLASS` for more."""
    if n_classes < 2:
        raise ValueError(f"classification needs at least two classes, got {n_classes}")
    return BINARY if n_classes == 2 else MULTICLASS


# -- encoding and decoding ------------------------------------------------------------------
def one_hot(codes: NDArray, n_classes: int, dtype: DTypeLike = np.float64) -> NDArray:
    """Class indices (n,) -> one-hot rows (n, n_classes): the softmax output's targets."""
    codes = np.asarray(codes, dtype=np.intp).reshape(-1)
    Y = np.zeros((codes.size, n_classes), dtype)
    Y[np.arange(codes.size), codes] = 1
    return Y


def encode_codes(codes: NDArray, n_classes: int, dtype: DTypeLike = np.float64) -> NDArray:
    """Class indices (n,) -> network targets: (n, 1) of 0/1 for two classes, else one-hot
    rows (n, n_classes)."""
    if classification_task(n_classes) is BINARY:
        return np.asarray(codes, dtype=np.intp).astype(dtype).reshape(-1, 1)
    return one_hot(codes, n_classes, dtype)


def encode(labels: Sequence[Hashable], classes: Sequence[Hashable],
           dtype: DTypeLike = np.float64) -> NDArray:
    """Labels (n,) -> network targets as :func:`encode_codes`, the column order that of
    ``classes``; a label not in ``classes`` raises ValueError."""
    index = {c: i for i, c in enumerate(classes)}
    try:
        codes = np.fromiter((index[v] for v in labels), np.intp, len(labels))
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of the classes "
                         f"{list(classes)!r}") from None
    return encode_codes(codes, len(classes), dtype)


def decode_indices(out: NDArray) -> NDArray:
    """Network outputs (n, 1) sigmoid or (n, n_classes) softmax -> class indices (n,)."""
    if out.shape[1] == 1:
        return (out[:, 0] > THRESHOLD).astype(np.intp)
    return np.asarray(out.argmax(axis=1), dtype=np.intp)


def decode(out: NDArray, classes: NDArray) -> NDArray:
    """Network outputs (n, 1) or (n, n_classes) -> labels (n,) taken from ``classes``."""
    return classes[decode_indices(out)]


def probabilities(out: NDArray) -> NDArray:
    """Network outputs -> class probabilities (n, n_classes): a sigmoid's ``p`` becomes the
    two columns ``1 - p, p``; softmax rows are already that."""
    if out.shape[1] == 1:
        return np.hstack([1.0 - out, out])
    return out


# -- label kinds and dtypes -----------------------------------------------------------------
LABEL_KINDS = ("str", "int", "float", "bool")
# The dtype of a label array (and of an ONNX label tensor) per kind: strings as objects.
LABEL_DTYPES: dict[str, type] = {"str": object, "int": np.int64, "float": np.float64,
                                 "bool": np.bool_}
# NumPy dtype kinds a label array may have (bytes "S" is not one: it has no JSON form).
_KIND_OF_DTYPE = {"U": "str", "O": "str", "i": "int", "u": "int", "f": "float", "b": "bool"}


def label_kind_of_values(values: Sequence[Any]) -> str:
    """``"bool"``, ``"int"``, ``"float"`` or ``"str"``: the narrowest kind holding every
    value (anything else is kept as its string)."""
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
           for v in values):
        return "int"
    if all(isinstance(v, (int, float, np.integer, np.floating))
           and not isinstance(v, (bool, np.bool_)) for v in values):
        return "float"
    return "str"


def label_kind_of_dtype(dtype: DTypeLike) -> str | None:
    """The label kind of an array dtype (scikit-learn's ``classes_``), None if no kind fits."""
    return _KIND_OF_DTYPE.get(np.dtype(dtype).kind)


def as_label(value: Any, kind: str) -> Any:
    """A label as the plain Python value of ``kind`` (JSON-safe, hashable)."""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


def label_array(classes: Sequence[Any], kind: str | None) -> NDArray:
    """Plain labels -> the array (n_classes,) predictions are taken from (``None``: str)."""
    return np.array(classes, dtype=LABEL_DTYPES[kind or "str"])

