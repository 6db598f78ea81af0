"""Task rules: the output layer and loss per target kind, label encoding and label dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from zeronn import tasks
from zeronn.activations import ACTIVATIONS
from zeronn.losses import LOSSES, get_loss


def test_rules_name_registered_activations_and_matching_losses():
    assert (tasks.REGRESSION.output_activation, tasks.REGRESSION.loss) == ("identity", "mse")
    assert (tasks.BINARY.output_activation, tasks.BINARY.loss) == ("sigmoid",
                                                                   "binary_crossentropy")
    assert (tasks.MULTICLASS.output_activation, tasks.MULTICLASS.loss) == (
        "softmax", "categorical_crossentropy")
    for task in tasks.TARGET_KINDS.values():
        assert task.output_activation in ACTIVATIONS and task.loss in LOSSES
        # a cross-entropy's fused gradient is valid only after its own output activation
        fused = get_loss(task.loss).output_activation
        assert fused in (None, task.output_activation)


def test_classification_task_and_outputs():
    assert tasks.classification_task(2) is tasks.BINARY
    assert tasks.classification_task(3) is tasks.MULTICLASS
    assert tasks.BINARY.n_outputs(2) == 1 and tasks.MULTICLASS.n_outputs(5) == 5
    assert tasks.MULTILABEL.n_outputs(2) == 2
    with pytest.raises(ValueError, match="at least two classes, got 1"):
        tasks.classification_task(1)


def test_encoding_shapes():
    np.testing.assert_array_equal(tasks.encode(["b", "a", "b"], ["a", "b"]),
                                  [[1.0], [0.0], [1.0]])
    np.testing.assert_array_equal(tasks.encode([2, 0], [0, 1, 2]),
                                  [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(tasks.one_hot([1, 0], 2), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="label 'z' is not one of the classes"):
        tasks.encode(["z"], ["a", "b"])


def test_decoding_threshold_and_probabilities():
    out = np.array([[0.5], [0.51], [0.2]])
    np.testing.assert_array_equal(tasks.decode_indices(out), [0, 1, 0])  # p > 0.5, strict
    np.testing.assert_allclose(tasks.probabilities(out), [[0.5, 0.5], [0.49, 0.51],
                                                          [0.8, 0.2]])
    soft = np.array([[0.1, 0.7, 0.2]])
    assert tasks.decode_indices(soft).tolist() == [1]
    assert tasks.probabilities(soft) is soft


def test_label_kinds_and_dtypes():
    assert tasks.label_kind_of_values([True, np.bool_(False)]) == "bool"
    assert tasks.label_kind_of_values([1, np.int32(2)]) == "int"
    assert tasks.label_kind_of_values([1, 2.5]) == "float"
    assert tasks.label_kind_of_values([1, "a"]) == "str"
    for dtype, kind in ((np.int8, "int"), (np.uint16, "int"), (np.float32, "float"),
                        (bool, "bool"), ("<U3", "str"), (object, "str"), ("S3", None),
                        ("complex128", None)):
        assert tasks.label_kind_of_dtype(dtype) == kind
    assert tasks.label_array(["a", "b"], None).dtype == object
    assert tasks.label_array([1, 2], "int").dtype == np.int64
    assert tasks.as_label(np.float32(1.5), "float") == 1.5 and tasks.as_label(3, "str") == "3"


labels = st.one_of(
    st.lists(st.text(max_size=5), min_size=1, max_size=30),
    st.lists(st.integers(-10**12, 10**12), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=1, max_size=30),
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=30),
)


@given(labels)
def test_encode_then_decode_gives_the_labels_back(values):
    kind = tasks.label_kind_of_values(values)
    plain = [tasks.as_label(v, kind) for v in values]
    classes = sorted(set(plain))
    if len(classes) < 2:  # one distinct label: add a second class the data lacks
        other = next(c for c in (0, 1) if tasks.as_label(c, kind) not in classes)
        classes = sorted([*classes, tasks.as_label(other, kind)])
    Y = tasks.encode(plain, classes)
    k = len(classes)
    assert Y.shape == (len(plain), 1 if k == 2 else k)
    # the network's ideal outputs are the targets themselves
    back = tasks.decode(Y, tasks.label_array(classes, kind))
    assert back.tolist() == plain
    # and a restored label array holds the same plain values (what model files store)
    restored = [tasks.as_label(c, kind) for c in tasks.label_array(classes, kind).tolist()]
    assert restored == classes
    if kind == "float":
        assert all(math.isfinite(c) for c in classes)
