"""TabularModel: columns by name, scaling, labels kept as they were, the model-file protocol."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pd = pytest.importorskip("pandas")

from conftest import examples  # noqa: E402
from zeronn.models import MLP  # noqa: E402
from zeronn.tabular import TabularModel  # noqa: E402

FAST = {"hidden": (8,), "epochs": 40, "lr": 1e-2, "validation_split": 0.0, "dropout": 0.0}


def linear_frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(50.0, 10.0, n)  # far from mean 0 / std 1: standardization matters
    b = rng.normal(-3.0, 0.01, n)
    return pd.DataFrame({"a": a, "b": b, "y": 0.2 * a - 300 * (b + 3) + 7,
                         "z": -0.1 * a + 1.0})


def label_frame(labels: list, n: int = 90, seed: int = 1) -> pd.DataFrame:
    """Two features; the label is the index of the third of the x1 range the row falls in."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(-3, 3, n)
    x2 = rng.normal(size=n)
    k = len(labels)
    idx = np.minimum(((x1 + 3) / 6 * k).astype(int), k - 1)
    return pd.DataFrame({"x1": x1, "x2": x2, "label": [labels[i] for i in idx]})


def state_roundtrip(model: TabularModel) -> TabularModel:
    net, meta, arrays = model.zeronn_state()
    return TabularModel.from_zeronn_state(net, meta, arrays)


# -- regression -------------------------------------------------------------------------
def test_regression_learns_and_keeps_its_scaling() -> None:
    df = linear_frame()
    m = TabularModel(hidden=(16,), epochs=150, lr=1e-2, validation_split=0.0)
    hist = m.fit(df, "y", features=["a", "b"])
    assert hist.epochs == 150
    assert m.fitted_task == "regression"
    assert m.feature_names == ["a", "b"] and m.target_names == ["y"]
    np.testing.assert_allclose(m.x_mean, df[["a", "b"]].mean().to_numpy())
    np.testing.assert_allclose(m.x_scale, df[["a", "b"]].std(ddof=0).to_numpy())
    np.testing.assert_allclose(m.y_mean, [df["y"].mean()])
    pred = m.predict(df)
    assert pred.shape == (len(df), 1)
    scores = m.evaluate(df)
    assert scores["r2"][0] > 0.99


def test_several_regression_targets_and_default_features() -> None:
    df = linear_frame()
    m = TabularModel(**FAST)
    m.fit(df[["a", "b", "y", "z"]], ["y", "z"])
    assert m.feature_names == ["a", "b"]
    assert m.predict(df).shape == (len(df), 2)
    assert m.net is not None and m.net.layer_sizes == [2, 8, 2]


def test_no_standardize_feeds_raw_values() -> None:
    df = linear_frame()
    m = TabularModel(**FAST, standardize=False)
    m.fit(df, "y", features=["a"])
    np.testing.assert_array_equal(m.x_mean, [0.0])
    np.testing.assert_array_equal(m.x_scale, [1.0])
    np.testing.assert_array_equal(m.y_scale, [1.0])
    assert m.net is not None
    np.testing.assert_allclose(m.predict(df), m.net.predict(df[["a"]].to_numpy()))


def test_constant_column_gets_scale_one() -> None:
    df = linear_frame()
    df["c"] = 4.0
    m = TabularModel(**FAST)
    m.fit(df, "y", features=["a", "c"])
    assert m.x_scale[1] == 1.0
    assert np.isfinite(m.predict(df)).all()


def test_predict_matches_columns_by_name_not_position() -> None:
    df = linear_frame()
    m = TabularModel(**FAST)
    m.fit(df, "y", features=["a", "b"])
    shuffled = df[["z", "b", "y", "a"]].copy()
    shuffled["extra"] = "ignored"
    np.testing.assert_array_equal(m.predict(shuffled), m.predict(df))


# -- classification ---------------------------------------------------------------------
@pytest.mark.parametrize(("labels", "dtype_kind"), [
    (["cat", "dog"], "O"),
    (["setosa", "versicolor", "virginica"], "O"),
    ([3, 7, 11], "i"),
    ([0.5, 1.5], "f"),
    ([False, True], "b"),
])
def test_labels_come_back_as_they_went_in(labels: list, dtype_kind: str) -> None:
    df = label_frame(labels)
    # Numbers are regression targets unless classification is asked for; bools are labels.
    task = "classification" if dtype_kind in "if" else "auto"
    m = TabularModel(hidden=(16,), epochs=80, lr=2e-2, validation_split=0.0, task=task)
    m.fit(df, "label")
    assert m.fitted_task == "classification"
    assert m.classes == sorted(labels)
    pred = m.predict(df)
    assert pred.dtype.kind == dtype_kind
    assert set(pred.tolist()) <= set(labels)
    assert (pred == df["label"].to_numpy()).mean() > 0.85
    proba = m.predict_proba(df)
    assert proba.shape == (len(df), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert m.net is not None
    assert m.net.output_activation == ("sigmoid" if len(labels) == 2 else "softmax")


def test_integer_coded_target_is_classification_unless_asked() -> None:
    df = label_frame([0, 1, 2])
    m = TabularModel(**FAST)
    with pytest.warns(UserWarning, match=r"3 distinct whole numbers.*--task regression"):
        m.fit(df, "label")
    assert m.fitted_task == "classification" and m.classes == [0, 1, 2]
    m = TabularModel(**FAST, task="regression")
    m.fit(df, "label")
    assert m.fitted_task == "regression"
    # Whole numbers with more than 20 values, or any fraction: regression.
    many = df.assign(label=np.arange(len(df)) % 21)
    m = TabularModel(**FAST)
    m.fit(many, "label")
    assert m.fitted_task == "regression"
    m = TabularModel(**FAST)
    m.fit(df.assign(label=df["label"] + 0.5), "label")
    assert m.fitted_task == "regression"


def test_missing_target_rows_are_dropped_with_a_count() -> None:
    df = label_frame(["a", "b"])
    df["label"] = df["label"].where(df.index % 10 != 0)
    m = TabularModel(**FAST)
    with pytest.warns(UserWarning, match=r"9 of 90 rows have no target value"):
        m.fit(df, "label")
    assert m.training["n_samples"] == 81 and m.training["n_dropped_no_target"] == 9
    with pytest.warns(UserWarning, match="left out of the scores"):
        assert m.evaluate(df)["n"] == 81


def test_fit_warnings_name_the_line_that_called_fit() -> None:
    # fit warns from the helpers it calls: each warning must still point at the user's
    # code, not at zeronn's own lines.
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=25), "row_id": [f"r{i:03d}" for i in range(25)],
                       "k": np.where(np.arange(25) % 12 == 0, np.nan, np.arange(25) % 3)})
    with pytest.warns(UserWarning) as caught:
        TabularModel(**{**FAST, "validation_split": 0.01}).fit(df, "k")
    # The noise target of the early-minimum test below: lowest validation loss at once.
    noise = pd.DataFrame(np.random.default_rng(1).normal(size=(80, 4)),
                         columns=["a", "b", "c", "y"])
    with pytest.warns(UserWarning) as more:
        TabularModel(hidden=(64, 64), epochs=40, lr=0.01, batch_size=8, validation_split=0.3,
                     early_stopping=None, dropout=0.0).fit(noise, "y")
    said = " | ".join(str(w.message) for w in [*caught, *more])
    for remark in ("3 of 25 rows have no target value", "'row_id' holds a distinct text",
                   "3 distinct whole numbers", "too few to hold out", "in the first tenth"):
        assert remark in said
    assert {w.filename for w in [*caught, *more]} == {__file__}


def test_missing_feature_cells_are_imputed_in_fit_and_predict() -> None:
    df = linear_frame(60)
    df.loc[df.index % 7 == 0, "b"] = np.nan
    m = TabularModel(**FAST)
    m.fit(df, "y", features=["a", "b"])
    assert m.preprocessor.output_names == ["a", "b", "b (missing)"]
    new = df.iloc[:5].assign(a=np.nan, b=np.nan)
    pred = m.predict(new)
    assert pred.shape == (5, 1) and np.isfinite(pred).all()
    # Every cell missing: every row gets the same prediction (the medians').
    np.testing.assert_allclose(pred, pred[0:1].repeat(5, axis=0))


def test_class_weight_balanced_weighs_the_rare_class_up() -> None:
    rng = np.random.default_rng(3)
    n = 300
    x = rng.normal(size=n)
    y = np.where(x + rng.normal(0, 1.0, n) > 1.6, "rare", "common")
    df = pd.DataFrame({"x": x, "x2": rng.normal(size=n), "y": y})
    plain = TabularModel(**FAST)
    plain.fit(df, "y")
    balanced = TabularModel(**FAST, class_weight="balanced")
    balanced.fit(df, "y")
    assert (balanced.predict(df) == "rare").sum() > (plain.predict(df) == "rare").sum()
    with pytest.raises(ValueError, match="class_weight is for classification"):
        TabularModel(**FAST, class_weight="balanced").fit(linear_frame(30), "y")
    with pytest.raises(ValueError, match="class_weight must be None or 'balanced'"):
        TabularModel(class_weight="auto")


def test_mostly_numeric_target_with_a_typo_is_refused_in_auto_mode() -> None:
    df = linear_frame(30)
    df["y"] = df["y"].astype(object)
    df.loc[5, "y"] = "12,5"
    with pytest.raises(ValueError, match=r"mostly numeric.*'12,5'.*row 5"):
        TabularModel(**FAST).fit(df, "y", features=["a"])


def test_evaluate_agrees_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    df = label_frame(["a", "b", "c"])
    m = TabularModel(hidden=(4,), epochs=5, lr=1e-2, validation_split=0.0)
    m.fit(df, "label")
    s = m.evaluate(df)
    truth = df["label"].to_numpy()
    pred = m.predict(df)
    proba = m.predict_proba(df)
    assert s["accuracy"] == pytest.approx(metrics.accuracy_score(truth, pred))
    assert s["log_loss"] == pytest.approx(metrics.log_loss(truth, proba, labels=m.classes))
    np.testing.assert_array_equal(s["confusion_matrix"],
                                  metrics.confusion_matrix(truth, pred, labels=m.classes))
    dfr = linear_frame()
    r = TabularModel(hidden=(4,), epochs=5, lr=1e-2, validation_split=0.0)
    r.fit(dfr, ["y", "z"], features=["a", "b"])
    s = r.evaluate(dfr)
    p = r.predict(dfr)
    y = dfr[["y", "z"]].to_numpy()
    for j in range(2):
        assert s["mse"][j] == pytest.approx(metrics.mean_squared_error(y[:, j], p[:, j]))
        assert s["mae"][j] == pytest.approx(metrics.mean_absolute_error(y[:, j], p[:, j]))
        assert s["r2"][j] == pytest.approx(metrics.r2_score(y[:, j], p[:, j]))


def test_evaluate_refuses_unseen_labels() -> None:
    df = label_frame(["a", "b"])
    m = TabularModel(**FAST)
    m.fit(df, "label")
    df.loc[3, "label"] = "zebra"
    with pytest.raises(ValueError, match="never saw: 'zebra'"):
        m.evaluate(df)


# -- the raw network: scaling folded into the weights -------------------------------------
@settings(max_examples=examples(25), deadline=None)
@given(shift=st.floats(-1e3, 1e3), log_scale=st.floats(-3, 3), seed=st.integers(0, 2**16))
def test_raw_network_equals_scaled_prediction(shift: float, log_scale: float,
                                              seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 20
    X = rng.normal(shift, 10.0 ** log_scale, (n, 2))
    df = pd.DataFrame({"u": X[:, 0], "v": X[:, 1],
                       "t": X[:, 0] * 3 - X[:, 1] + shift,
                       "k": np.where(X[:, 0] > np.median(X[:, 0]), "hi", "lo")})
    for target in ("t", "k"):
        m = TabularModel(hidden=(5,), epochs=2, batch_size=None, validation_split=0.0,
                         seed=seed)
        m.fit(df, target, features=["u", "v"])
        raw = m.raw_network().predict(X)
        want = m.predict(df) if target == "t" else m.predict_proba(df)[:, 1:]
        np.testing.assert_allclose(raw, want, rtol=1e-7, atol=1e-9 * (1 + np.abs(want).max()))


def test_encode_targets() -> None:
    df = label_frame(["x", "y", "z"])
    m = TabularModel(**FAST)
    m.fit(df, "label")
    Y = m.encode_targets(df)
    assert Y.shape == (len(df), 3)
    np.testing.assert_array_equal(Y.argmax(axis=1),
                                  [m.classes.index(v) for v in df["label"]])


# -- bad input ----------------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.assign(b=d["b"].astype(object).where(d.index != 4, "abc")),
     r"column 'b' holds numbers but also 'abc' at row 4"),
    (lambda d: d.assign(a=d["a"].where(d.index != 2, np.inf)),
     r"feature column 'a' has an infinite value \(inf\) at row 2"),
    (lambda d: d.assign(y=d["y"].astype(object).where(d.index != 3, "abc")),
     r"target column 'y' is mostly numeric but has 'abc' at row 3"),
])
def test_bad_cells_name_row_and_column(edit, message: str) -> None:
    df = edit(linear_frame(20))
    with pytest.raises(ValueError, match=message):
        TabularModel(**FAST).fit(df, "y", features=["a", "b"])


def test_unknown_columns_list_the_available_ones() -> None:
    df = linear_frame(20)
    with pytest.raises(ValueError, match=r"unknown target column 'price'.*'a', 'b', 'y', 'z'"):
        TabularModel(**FAST).fit(df, "price")
    with pytest.raises(ValueError, match=r"unknown feature columns 'p', 'q'; the data has"):
        TabularModel(**FAST).fit(df, "y", features=["a", "p", "q"])
    with pytest.raises(ValueError, match="both a feature and a target"):
        TabularModel(**FAST).fit(df, "y", features=["a", "y"])


def test_other_fit_errors() -> None:
    df = label_frame(["a", "b"])
    with pytest.raises(ValueError, match="single class 'a'"):
        TabularModel(**FAST).fit(df.assign(label="a"), "label")
    with pytest.raises(ValueError, match="every row's target is missing"):
        TabularModel(**FAST).fit(df.assign(label=None), "label")
    with pytest.raises(ValueError, match="every feature column was left out"):
        TabularModel(**FAST).fit(df, "label", exclude=["x1", "x2"])
    with pytest.raises(ValueError, match="classification takes one target column"):
        TabularModel(**FAST).fit(df.assign(l2=df["label"]), ["label", "l2"])
    with pytest.raises(ValueError, match="classification trains with binary_crossentropy"):
        TabularModel(**FAST, loss="mae").fit(df, "label")
    with pytest.raises(ValueError, match="two columns named 'x1'"):
        TabularModel(**FAST).fit(pd.concat([df, df[["x1"]]], axis=1), "label")
    with pytest.raises(ValueError, match="no rows"):
        TabularModel(**FAST).fit(df.iloc[:0], "label")
    with pytest.raises(ValueError, match="no feature columns"):
        TabularModel(**FAST).fit(df[["label"]], "label")
    with pytest.raises(ValueError, match="pandas DataFrame"):
        TabularModel(**FAST).fit(np.zeros((3, 2)), "label")  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hidden": "64"}, "list of layer sizes"),
    ({"hidden": [8, 0]}, "hidden layer size"),
    ({"lr": float("nan")}, "lr must be"),
    ({"epochs": -1}, "epochs must be"),
    ({"activation": "swishy"}, "unknown activation 'swishy'"),
    ({"optimizer": "sgdd"}, "unknown optimizer"),
    ({"loss": "l3"}, "unknown loss"),
    ({"task": "ranking"}, "task must be"),
    ({"validation_split": 1.0}, r"validation_split must be a number in \[0, 1\)"),
    ({"early_stopping": 0}, "early_stopping must be"),
    ({"seed": -2}, "seed must be"),
])
def test_invalid_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TabularModel(**kwargs)


def test_predict_needs_the_models_features_and_a_fit() -> None:
    with pytest.raises(ValueError, match="not fitted"):
        TabularModel().predict(linear_frame(5))
    df = linear_frame(20)
    m = TabularModel(**FAST)
    m.fit(df, "y", features=["a", "b"])
    with pytest.raises(ValueError, match=r"lacks the model's feature column 'b'; it has: 'a'"):
        m.predict(df[["a"]])
    with pytest.raises(ValueError, match="predict_proba is for classifiers"):
        m.predict_proba(df)


# -- the model-file protocol ------------------------------------------------------------------
def test_protocol_roundtrip_is_exact() -> None:
    for df, target in ((linear_frame(40), "y"), (label_frame(["p", "q", "r"]), "label")):
        m = TabularModel(**FAST)
        m.fit(df, target)
        back = state_roundtrip(m)
        np.testing.assert_array_equal(back.predict(df), m.predict(df))
        assert back.config() == m.config()
        assert back.classes == m.classes and back.label_kind == m.label_kind
        assert back.training == m.training


def test_unfitted_model_roundtrips() -> None:
    m = TabularModel(hidden=(3, 2), activation="tanh")
    back = state_roundtrip(m)
    assert back.net is None and back.hidden == [3, 2] and back.activation == "tanh"


def test_save_and_load_roundtrip(tmp_path) -> None:
    persistence = pytest.importorskip("zeronn.persistence")
    df = label_frame(["no", "yes"])
    m = TabularModel(**FAST)
    m.fit(df, "label")
    path = tmp_path / "m.zeronn"
    persistence.save(m, path)
    back = persistence.load(path)
    assert isinstance(back, TabularModel)
    np.testing.assert_array_equal(back.predict_proba(df), m.predict_proba(df))
    assert back.predict(df).tolist() == m.predict(df).tolist()


def _corrupt(meta_edit=None, arrays_edit=None, net_edit=None):
    m = TabularModel(**FAST)
    m.fit(label_frame(["a", "b", "c"]), "label")
    net, meta, arrays = m.zeronn_state()
    if meta_edit:
        meta_edit(meta)
    if arrays_edit:
        arrays_edit(arrays)
    if net_edit:
        net = net_edit(net)
    return net, meta, arrays


@pytest.mark.parametrize(("parts", "message"), [
    (_corrupt(meta_edit=lambda m: m.update(task="ranking")), "task must be"),
    (_corrupt(meta_edit=lambda m: m.update(feature_names=["x1"])), "are not the feature names"),
    (_corrupt(meta_edit=lambda m: m.update(feature_names=[1, 2])), "list of strings"),
    (_corrupt(meta_edit=lambda m: m.update(classes=["a", "a", "b"])), "distinct"),
    (_corrupt(meta_edit=lambda m: m.update(classes=["a", "b"])), "2 classes need"),
    (_corrupt(meta_edit=lambda m: m.update(label_kind="int")), "not of kind 'int'"),
    (_corrupt(meta_edit=lambda m: m.update(label_kind="complex")), "label_kind must be"),
    (_corrupt(meta_edit=lambda m: m.pop("config")), "no config"),
    (_corrupt(meta_edit=lambda m: m["config"].update(colour="red")), "config does not match"),
    (_corrupt(arrays_edit=lambda a: a.pop("x_scale")), "scaling arrays missing"),
    (_corrupt(arrays_edit=lambda a: a.update(x_scale=np.array([1.0, 0.0]))), "scale is <= 0"),
    (_corrupt(arrays_edit=lambda a: a.update(x_mean=np.array([np.nan, 0.0]))), "NaN or inf"),
    (_corrupt(arrays_edit=lambda a: a.update(y_mean=np.array([1.0]), y_scale=np.array([1.0]))),
     "no target scaling"),
    (_corrupt(net_edit=lambda n: MLP([2, 3, 3])), "softmax output"),
    (_corrupt(net_edit=lambda n: "weights"), "not an MLP"),
    (_corrupt(meta_edit=lambda m: m.update(preprocessing={"version": 1})), "columns must be"),
    (_corrupt(meta_edit=lambda m: m.update(preprocessing=[1])), "not a mapping"),
    (_corrupt(meta_edit=lambda m: m["preprocessing"]["columns"][0].update(
        kind="category", categories=["p", "q", "r"], other=False)), "4 encoded features"),
    (_corrupt(meta_edit=lambda m: m["preprocessing"]["columns"][1].update(
        median="nan")), "median must be a finite number"),
    (_corrupt(meta_edit=lambda m: m["config"].update(class_weight="heavy")),
     "class_weight must be"),
    (_corrupt(meta_edit=lambda m: m["config"].update(max_categories=-1)),
     "max_categories must be"),
])
def test_inconsistent_state_is_refused(parts, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TabularModel.from_zeronn_state(*parts)


def test_dropout_and_batch_norm_build_the_layers_and_are_checked() -> None:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    df["y"] = df["a"] - 2 * df["b"]
    with pytest.raises(ValueError, match=r"dropout .* got 1\.0"):
        TabularModel(dropout=1.0)
    with pytest.raises(ValueError, match="batch_norm must be True or False"):
        TabularModel(batch_norm="yes")
    m = TabularModel(hidden=(8,), epochs=3, dropout=0.2, batch_norm=True)
    m.fit(df, "y", verbose=0)
    assert [layer.kind for layer in m.net.layers] == [
        "dense", "batchnorm", "activation", "dropout", "dense"]
    assert m.config()["dropout"] == 0.2 and m.config()["batch_norm"] is True
    np.testing.assert_allclose(m.raw_network().predict(df[["a", "b"]].to_numpy()).ravel(),
                               m.predict(df).ravel(), rtol=1e-9, atol=1e-9)
    plain = TabularModel(hidden=(8,), epochs=3, dropout=0.0)
    plain.fit(df, "y", verbose=0)
    assert type(plain.net) is MLP


def test_the_kept_epoch_is_reported_and_an_early_minimum_is_named() -> None:
    df = linear_frame(120)
    m = TabularModel(hidden=(16,), epochs=60, lr=0.05, validation_split=0.3,
                     early_stopping=5, dropout=0.0)
    hist = m.fit(df, "y", features=["a", "b"])
    t = m.training
    assert t["kept_epoch"] == hist.best_epoch
    assert t["kept_val_loss"] == min(hist["val_loss"])
    assert t["kept_loss"] == hist["loss"][hist.best_epoch - 1]
    # A noise target: the validation loss bottoms out at once, and a warning says so.
    rng = np.random.default_rng(1)
    noise = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "y"])
    m = TabularModel(hidden=(64, 64), epochs=40, lr=0.01, batch_size=8,
                     validation_split=0.3, early_stopping=None, dropout=0.0)
    with pytest.warns(UserWarning, match=r"lowest at epoch \d of 40, in the first tenth"):
        m.fit(noise, "y")
    assert m.training["early_minimum"] is True and m.training["kept_epoch"] == 40


def test_raw_network_of_a_dropout_model_is_a_plain_mlp() -> None:
    df = linear_frame(40)
    m = TabularModel(hidden=(8,), epochs=3, dropout=0.2, validation_split=0.0)
    m.fit(df, "y", features=["a", "b"])
    raw = m.raw_network()
    assert type(raw) is MLP
    np.testing.assert_allclose(raw.predict(df[["a", "b"]].to_numpy()).ravel(),
                               m.predict(df).ravel(), rtol=1e-9, atol=1e-9)


def _watch_validation(monkeypatch: pytest.MonkeyPatch) -> tuple[list, dict]:
    """Records, after each epoch of the next fits, the validation rows' accuracy and loss
    (the rows the engine holds out: the last ones); ``last["check"]()`` is the accuracy of
    the network's weights now."""
    from zeronn.models import Sequential

    seen: list[tuple[float, float]] = []
    last: dict = {}
    fit = Sequential.fit

    def spy(self, X, Y, **kw):
        cut = len(X) - round(len(X) * kw["validation_split"])
        Xv, truth = X[cut:], Y[cut:].argmax(axis=1)

        def accuracy() -> float:
            return float((self.predict(Xv).argmax(axis=1) == truth).mean())

        def record(epoch, history):
            seen.append((accuracy(), history["val_loss"][-1]))

        last["check"] = accuracy
        return fit(self, X, Y, **{**kw, "callbacks": [record, *kw.get("callbacks", ())]})

    monkeypatch.setattr(Sequential, "fit", spy)
    return seen, last


def test_a_classifier_keeps_the_epoch_of_best_validation_accuracy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Early stopping of a classifier scores the epochs by validation accuracy, the lower
    validation loss breaking ties, waits `patience` epochs, and restores that epoch."""
    seen, last = _watch_validation(monkeypatch)
    df = label_frame(["a", "b", "c"], n=150, seed=3)
    df["x2"] += np.random.default_rng(0).normal(0, 3, len(df))  # noise to overfit
    df["x1"] += np.random.default_rng(1).normal(0, 0.8, len(df))
    m = TabularModel(hidden=(32,), epochs=200, lr=0.02, validation_split=0.2,
                     early_stopping=15, dropout=0.0)
    hist = m.fit(df, "label")
    best = max(range(len(seen)), key=lambda i: (seen[i][0], -seen[i][1]))  # first best
    t = m.training
    assert t["kept_epoch"] == best + 1 == hist.best_epoch
    assert t["kept_val_accuracy"] == seen[best][0] == last["check"]()
    assert t["kept_val_loss"] == seen[best][1] == hist["val_loss"][best]
    assert len(seen) == hist.epochs == min(200, best + 1 + 15)
    assert hist.stopped_early == (hist.epochs < 200) and t["patience"] == 15


def test_a_regressor_keeps_the_epoch_of_lowest_validation_loss() -> None:
    df = linear_frame(120)
    df["y"] += np.random.default_rng(2).normal(0, 5, len(df))
    m = TabularModel(hidden=(16,), epochs=80, lr=0.05, validation_split=0.3,
                     early_stopping=10, dropout=0.0)
    hist = m.fit(df, "y", features=["a", "b"])
    assert m.training["kept_epoch"] == int(np.argmin(hist["val_loss"])) + 1
    assert m.training["kept_val_accuracy"] is None


@pytest.mark.parametrize(("kwargs", "n_train", "patience"), [
    ({}, 95, 334),            # iris's training rows in the benchmark: 3 batches of 32
    ({}, 97, 250),            # 4 batches
    ({}, 1145, 50),           # digits: 36 batches, 50 epochs are 1800 steps
    ({}, 1_000_000, 50),
    ({"batch_size": None}, 500, 1000),
    ({"batch_size": 8}, 100, 77),
    ({"early_stopping": 7}, 97, 7),
    ({"early_stopping": None}, 97, None),
])
def test_auto_patience_covers_a_thousand_steps(kwargs: dict, n_train: int,
                                               patience: int | None) -> None:
    assert TabularModel(**kwargs).patience(n_train) == patience


@pytest.mark.parametrize("value", [0, -1, 2.5, True, "soon"])
def test_early_stopping_takes_a_patience_auto_or_none(value) -> None:
    with pytest.raises(ValueError, match="early_stopping must be a patience in epochs"):
        TabularModel(early_stopping=value)


def test_auto_patience_is_recorded_and_kept_in_the_model_file() -> None:
    df = label_frame(["a", "b", "c"], n=150, seed=4)  # iris-sized: 128 training rows
    m = TabularModel(hidden=(8,), epochs=5)
    m.fit(df, "label")
    assert m.training["patience"] == 250 and m.training["n_validation"] == 22
    assert m.config()["early_stopping"] == "auto"
    assert state_roundtrip(m).config()["early_stopping"] == "auto"


def test_remarks_of_several_calls_are_summed_into_one_warning() -> None:
    df = pd.DataFrame({"city": ["a", "b", "a", "b"] * 10, "when": ["2024-01-02"] * 40,
                       "y": np.arange(40.0)})
    m = TabularModel(**FAST)
    m.fit(df, "y")
    new = pd.DataFrame({"city": ["a", "zz", "yy"], "when": ["2024-02-01", "never", ""]})
    with pytest.warns(UserWarning) as caught:
        with m.remarks_summed():
            m.predict(new)
            m.predict(new.iloc[1:])
            with m.remarks_summed():  # nested: the outer block reports
                m.predict(new)
    assert [str(w.message) for w in caught] == [
        "values not among the training categories kept (unseen, or rare in training) were "
        "taken as 'other' in column (rows): 'city' (6)",
        "unreadable booleans or dates were taken as missing in column (rows): 'when' (3)"]
    with pytest.warns(UserWarning) as per_call:  # outside: per call, as before
        m.predict(new)
    assert [str(w.message)[-10:] for w in per_call] == ["'city' (2)", "'when' (1)"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a block that raises reports nothing
        with pytest.raises(ValueError, match="lacks the model's feature"), m.remarks_summed():
            m.predict(new)
            m.predict(new[["city"]])
        m.predict(new.iloc[:1])  # and the counting has stopped


def test_predict_with_proba_is_predict_and_predict_proba() -> None:
    df = label_frame(["lo", "mid", "hi"])
    m = TabularModel(**FAST)
    m.fit(df, "label")
    labels, proba = m.predict_with_proba(df)
    np.testing.assert_array_equal(labels, m.predict(df))
    np.testing.assert_array_equal(proba, m.predict_proba(df))
    r = TabularModel(**FAST)
    r.fit(linear_frame(), "y")
    with pytest.raises(ValueError, match="is for classifiers"):
        r.predict_with_proba(linear_frame())
