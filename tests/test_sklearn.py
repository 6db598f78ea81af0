"""zeronn.sklearn: scikit-learn's own estimator checks, parity with its MLP, the sklearn
semantics (tol, early stopping, learning rates, warm start, partial_fit, weights), the
ecosystem (Pipeline, GridSearchCV, pickle, model files, dask-ml) and bad input."""

from __future__ import annotations

import pickle
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_multilabel_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import zeronn as zn
from conftest import examples
from zeronn.sklearn import MLPClassifier, MLPRegressor

# Small budgets on purpose; the one test about the warning asks for it with pytest.warns.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# -- scikit-learn's own checks, with the default parameters, no expected failures ----------
# (and with the layers the estimators add: Dropout, BatchNorm)
@parametrize_with_checks([MLPRegressor(), MLPClassifier(),
                          MLPRegressor(dropout=0.2, batch_norm=True),
                          MLPClassifier(dropout=0.2, batch_norm=True)])
def test_sklearn_estimator_checks(estimator, check):
    name = getattr(check, "func", check).__name__
    if (estimator.dropout or estimator.batch_norm) and name.startswith(
            "check_sample_weight_equivalence"):
        # Integer weights cannot equal repeated rows here: repeated rows draw their own
        # dropout masks and count in BatchNorm's batch statistics; a weight does neither.
        # test_layers_weights_scale_the_loss_only checks what the weights do instead.
        pytest.skip("sample weights weight the loss, not dropout masks or batch statistics")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# -- data -----------------------------------------------------------------------------------
def _regression(n=60, d=4, k=1, seed=0):
    X, y = make_regression(n_samples=n, n_features=d, n_targets=k, noise=0.1,
                           random_state=seed)
    return StandardScaler().fit_transform(X), y / np.std(y)


def _blobs(n=90, centers=3, seed=0):
    X, y = make_blobs(n_samples=n, centers=centers, n_features=4, random_state=seed)
    return StandardScaler().fit_transform(X), y


def _sklearn_init(random_state, sizes, factor=6.0):
    """scikit-learn's initial [W1, b1, ...], drawn the way its MLP draws them."""
    rs = np.random.RandomState(random_state)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(factor / (fan_in + fan_out))
        out += [rs.uniform(-bound, bound, (fan_in, fan_out)), rs.uniform(-bound, bound, fan_out)]
    return out


FULL_BATCH_SGD = dict(solver="sgd", shuffle=False, alpha=0.0, learning_rate_init=0.05,
                      tol=0.0, n_iter_no_change=1000, random_state=3)


# -- parity with scikit-learn's MLP ----------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_regressor_trajectory_equals_sklearn(momentum):
    """Same init, half-MSE, full-batch SGD: the same weights and loss_curve_ epoch by epoch."""
    X, y = _regression()
    kw = dict(FULL_BATCH_SGD, hidden_layer_sizes=(7, 5), momentum=momentum,
              batch_size=len(X), max_iter=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = MLPRegressor(**kw).fit(X, y), SkRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("centers", [2, 3])
def test_classifier_trajectory_equals_sklearn(centers):
    """Binary (sigmoid + binary CE) and multiclass (softmax + CE): sklearn's steps exactly."""
    X, y = _blobs(centers=centers)
    kw = dict(FULL_BATCH_SGD, hidden_layer_sizes=(6,), activation="tanh", momentum=0.5,
              batch_size=len(X), max_iter=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = MLPClassifier(**kw).fit(X, y), SkClassifier(**kw).fit(X, y)
    assert ours.out_activation_ == theirs.out_activation_
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)


def test_logistic_init_and_alpha_follow_the_documented_formulas():
    """Init: scikit-learn's draws (factor 2 for logistic). alpha: weight decay alpha / batch on
    every parameter, so after one full-batch step the weights equal scikit-learn's and each
    bias is scikit-learn's minus lr * alpha / n * b0; loss_curve_ adds 0.5 alpha/n ||params||^2."""
    X, y = _regression(n=40)
    alpha, lr, n = 0.3, 0.05, len(X)
    kw = dict(FULL_BATCH_SGD, hidden_layer_sizes=(5,), activation="logistic", momentum=0.0,
              batch_size=n, max_iter=1, alpha=alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours, theirs = MLPRegressor(**kw).fit(X, y), SkRegressor(**kw).fit(X, y)
    _, b1, _, b2 = _sklearn_init(3, [4, 5, 1], factor=2.0)
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-10)
    for a, b, b0 in zip(ours.intercepts_, theirs.intercepts_, [b1, b2]):
        np.testing.assert_allclose(a, b - lr * alpha / n * b0, rtol=1e-10)
    bias_term = 0.5 * alpha / n * (b1 @ b1 + b2 @ b2)
    assert ours.loss_curve_[0] == pytest.approx(theirs.loss_curve_[0] + bias_term, rel=1e-10)


def test_adam_defaults_track_sklearn():
    """Adam and mini-batches: not bit-equal (shuffling streams differ), but the same run."""
    X, y = _blobs(n=300, seed=1)
    ours = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    theirs = SkClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(X, y)
        theirs.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_[:5], theirs.loss_curve_[:5], rtol=0.02)
    assert ours.score(X, y) >= theirs.score(X, y) - 0.02


# -- scikit-learn's training semantics ------------------------------------------------------
def test_tol_and_n_iter_no_change_stop_training():
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(8,), tol=10.0, n_iter_no_change=3, max_iter=100,
                       random_state=0).fit(X, y)
    # the first epoch sets best_loss_; the next ones fail to improve it by 10, and the
    # n_iter_no_change + 1-th such epoch stops training (scikit-learn's count)
    assert est.n_iter_ == 5 == len(est.loss_curve_)
    assert est.best_loss_ == min(est.loss_curve_)
    assert est.loss_ == est.loss_curve_[-1]
    assert est.t_ == 5 * len(X)
    sk = SkRegressor(hidden_layer_sizes=(8,), tol=10.0, n_iter_no_change=3, max_iter=100,
                     random_state=0).fit(X, y)
    assert sk.n_iter_ == est.n_iter_


def test_max_iter_reached_warns_convergence():
    X, y = _regression()
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert est.n_iter_ == 3


def test_early_stopping_records_validation_and_keeps_best_weights():
    X, y = _blobs(n=200)
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, validation_fraction=0.2,
                        n_iter_no_change=4, max_iter=300, learning_rate_init=0.05,
                        random_state=0).fit(X, y)
    n = est.n_iter_
    assert len(est.validation_scores_) == len(est.validation_loss_curve_) == n
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.best_loss_ is None
    assert n < 300
    assert all(np.isfinite(est.validation_loss_curve_))
    # the kept weights are the best epoch's: refitting with max_iter at that epoch ends there
    best_epoch = int(np.argmax(est.validation_scores_)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = clone(est).set_params(max_iter=best_epoch).fit(X, y)
    for a, b in zip(est.coefs_, again.coefs_):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_early_stopping_validation_set_too_small():
    X, y = _regression(n=10)
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.1).fit(X, y)


def test_invscaling_learning_rate_per_epoch():
    X, y = _regression()
    n = len(X)
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="invscaling",
                       learning_rate_init=0.1, power_t=0.5, max_iter=5, tol=0.0,
                       n_iter_no_change=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    want = [0.1] + [0.1 / (k * n + 1) ** 0.5 for k in range(1, 5)]
    np.testing.assert_allclose(est.net_.history["lr"], want, rtol=1e-12)


def test_adaptive_learning_rate_divides_by_five_then_stops():
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive",
                       learning_rate_init=1e-4, tol=1e9, n_iter_no_change=1, max_iter=500,
                       random_state=0).fit(X, y)
    lrs = est.net_.history["lr"]
    # no epoch improves by tol: after n_iter_no_change + 1 = 2 stalled epochs (3 for the first
    # rate, whose first epoch sets best_loss_) the rate is divided by 5; once it is <= 1e-6
    # the next stall stops training
    want = [1e-4] * 3 + [2e-5] * 2 + [4e-6] * 2 + [8e-7] * 2
    np.testing.assert_allclose(lrs, want, rtol=1e-12)
    assert est.n_iter_ == 9


def test_warm_start_continues_and_checks_classes():
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = [c.copy() for c in est.coefs_]
        est.fit(X, y)
    assert len(est.loss_curve_) == 10 and est.n_iter_ == 5 and est.t_ == 10 * len(X)
    assert est.loss_curve_[5] < est.loss_curve_[0]  # continued, not restarted
    assert not np.allclose(first[0], est.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        est.fit(X, np.where(y == 2, 5, y))
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        est.set_params(hidden_layer_sizes=(3,)).fit(X, y)


def test_partial_fit_needs_classes_first_and_continues_the_optimizer():
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(8,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        est.partial_fit(X, y)
    est.partial_fit(X[:30], y[:30], classes=[0, 1, 2])
    steps = est.net_.optimizer.t
    est.partial_fit(X[30:], y[30:])
    assert est.net_.optimizer.t == 2 * steps  # same optimizer, state carried on
    assert est.n_iter_ == 1 and est.t_ == len(X) and len(est.loss_curve_) == 2
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X, y + 7)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(*_regression())


def test_partial_fit_epochs_learn_like_fit():
    X, y = _blobs(n=150)
    est = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    for _ in range(40):
        est.partial_fit(X, y, classes=np.unique(y))
    assert est.score(X, y) > 0.95


@settings(max_examples=examples(10), deadline=None)
@given(weights=st.lists(st.integers(0, 3), min_size=8, max_size=8).filter(lambda w: sum(w) > 1),
       solver=st.sampled_from(["sgd", "adam"]))
def test_integer_weights_equal_repeated_rows(weights, solver):
    """Full batch: weight k fits exactly like the row repeated k times (alpha included)."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((8, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    w = np.array(weights)
    kw = dict(hidden_layer_sizes=(5,), solver=solver, alpha=0.01, max_iter=5, shuffle=False,
              batch_size=200, learning_rate_init=0.01, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = MLPRegressor(**kw).fit(X, y, sample_weight=w)
        b = MLPRegressor(**kw).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-7, atol=1e-9)


# -- the additions: losses, activations, solvers, dtype, outputs ---------------------------
@pytest.mark.parametrize("loss", ["squared_error", "absolute_error", "huber"])
def test_regression_losses_learn(loss):
    X, y = _regression(n=200)
    est = MLPRegressor(loss=loss, hidden_layer_sizes=(16,), learning_rate_init=0.01,
                       max_iter=300, random_state=0).fit(X, y)
    assert est.score(X, y) > 0.9


def test_squared_error_reports_half_the_mse():
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(4,), alpha=0.0, max_iter=1, batch_size=len(X),
                       solver="sgd", learning_rate_init=1e-12, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    half_mse = 0.5 * np.mean((est.predict(X) - y) ** 2)
    assert est.loss_curve_[0] == pytest.approx(half_mse, rel=1e-9)


def test_multioutput_regression():
    X, Y = _regression(n=120, k=3)
    est = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300,
                       random_state=0).fit(X, Y)
    assert est.predict(X).shape == (120, 3) and est.n_outputs_ == 3
    assert est.score(X, Y) > 0.9


def test_multilabel_classification():
    X, Y = make_multilabel_classification(n_samples=150, n_classes=4, random_state=0)
    est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0).fit(X, Y)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 4
    pred, proba = est.predict(X), est.predict_proba(X)
    assert pred.shape == proba.shape == (150, 4)
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert est.score(X, Y) > 0.5  # subset accuracy


def test_string_labels_proba_and_log_proba():
    X, y = _blobs()
    labels = np.array(["ant", "bee", "cat"])[y]
    est = MLPClassifier(hidden_layer_sizes=(8,), max_iter=200, random_state=0).fit(X, labels)
    assert list(est.classes_) == ["ant", "bee", "cat"]
    proba = est.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-9, atol=1e-12)


def test_log_proba_stays_finite_when_proba_saturates():
    X, y = _blobs(centers=2)
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y)
    est.coefs_[-1][...] *= 1e4  # push the logits far out: probabilities round to 0 and 1
    assert (est.predict_proba(X) == 0).any()
    assert np.isfinite(est.predict_log_proba(X)).all()


def test_activation_list_and_names():
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(6, 5, 4), activation=["relu", "logistic", "gelu"],
                       max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.net_.activations == ["relu", "sigmoid", "gelu"]
    assert est.n_layers_ == 5 and [c.shape for c in est.coefs_] == [(4, 6), (6, 5), (5, 4),
                                                                    (4, 1)]
    with pytest.raises(ValueError, match="one activation per hidden layer"):
        MLPRegressor(hidden_layer_sizes=(3,), activation=["relu", "tanh"]).fit(X, y)
    with pytest.raises(ValueError, match="unknown activation"):
        MLPRegressor(activation="swish").fit(X, y)


@pytest.mark.parametrize("solver", ["sgd", "adam", "adamw", "rmsprop", "adagrad"])
def test_every_zeronn_optimizer_trains(solver):
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(8,), solver=solver, learning_rate_init=0.01,
                        max_iter=100, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.net_.optimizer.name == solver
    assert est.score(X, y) > 0.9


def test_lbfgs_is_refused_clearly():
    with pytest.raises(ValueError, match=r"lbfgs.*not available.*adam"):
        MLPClassifier(solver="lbfgs").fit(*_blobs())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dtype_is_kept(dtype):
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3, dtype=dtype, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X.astype(np.float64), y)
    assert est.net_.dtype == np.dtype(dtype)
    assert est.predict(X).dtype == np.dtype(dtype)
    assert all(c.dtype == np.dtype(dtype) for c in est.coefs_ + est.intercepts_)


def test_sparse_input_is_densified():
    sp = pytest.importorskip("scipy.sparse")
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        dense = clone(est).fit(X, y).predict_proba(X)
        sparse = clone(est).fit(sp.csr_matrix(X), y).predict_proba(sp.csr_matrix(X))
    np.testing.assert_allclose(dense, sparse, rtol=1e-12)


@pytest.mark.parametrize("bad, match", [
    (dict(alpha=-1.0), "alpha"),
    (dict(batch_size=0), "batch_size"),
    (dict(learning_rate="cyclic"), "learning_rate"),
    (dict(momentum=1.5), "momentum"),
    (dict(validation_fraction=1.0), "validation_fraction"),
    (dict(hidden_layer_sizes=(3, 0)), "hidden_layer_sizes"),
    (dict(dtype="float16"), "dtype"),
    (dict(solver="newton"), "unknown solver"),
    (dict(loss="poisson"), "loss"),
    (dict(dropout=1.0), r"dropout .* got 1\.0"),
    (dict(dropout=-0.1), r"dropout .* got -0\.1"),
    (dict(dropout="0.2"), "dropout"),
    (dict(batch_norm="yes"), "batch_norm must be True or False, got 'yes'"),
])
def test_bad_parameters_name_the_problem(bad, match):
    with pytest.raises(ValueError, match=match):
        MLPRegressor(**bad).fit(*_regression())


def test_unfitted_and_wrong_width():
    X, y = _regression()
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)
    with pytest.raises(NotFittedError):
        _ = MLPRegressor().coefs_
    est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])


# -- layers: dropout and batch_norm -----------------------------------------------------------
def test_layers_are_added_to_every_hidden_layer_only_when_asked():
    X, y = _regression()
    kinds = {}
    for kw in ({}, {"dropout": 0.3}, {"batch_norm": True}, {"dropout": 0.3, "batch_norm": True}):
        est = MLPRegressor(hidden_layer_sizes=(6, 5), max_iter=3, random_state=0, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        kinds[tuple(kw)] = [layer.kind for layer in est.net_.layers]
        # scikit-learn's attributes still describe the Dense layers, with its initial draws
        assert [W.shape for W in est.coefs_] == [(4, 6), (6, 5), (5, 1)]
        assert [b.shape for b in est.intercepts_] == [(6,), (5,), (1,)]
        assert est.n_layers_ == 4 and est.get_params()["dropout"] == kw.get("dropout", 0.0)
    assert kinds[()] == ["dense"] * 3
    assert kinds[("dropout",)] == ["dense", "dropout"] * 2 + ["dense"]
    assert kinds[("batch_norm",)] == ["dense", "batchnorm", "activation"] * 2 + ["dense"]
    assert kinds[("dropout", "batch_norm")] == (
        ["dense", "batchnorm", "activation", "dropout"] * 2 + ["dense"])
    assert type(MLPRegressor(max_iter=1).fit(X, y).net_) is zn.MLP
    assert type(MLPRegressor(max_iter=1, dropout=0.1).fit(X, y).net_) is zn.Sequential


def test_layers_start_from_sklearns_weights_and_the_default_is_unchanged():
    X, y = _regression()
    start = _sklearn_init(0, [4, 7, 1])
    for kw in ({}, {"dropout": 0.0}, {"dropout": 0.5, "batch_norm": True}):
        est = MLPRegressor(hidden_layer_sizes=(7,), max_iter=1, random_state=0,
                           learning_rate_init=1e-12, **kw)  # a step too small to move them
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        for got, want in zip([*est.coefs_, *est.intercepts_], [*start[::2], *start[1::2]]):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    plain = MLPRegressor(hidden_layer_sizes=(7,), max_iter=20, random_state=0)
    zero = MLPRegressor(hidden_layer_sizes=(7,), max_iter=20, random_state=0, dropout=0.0,
                        batch_norm=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(plain.fit(X, y).predict(X), zero.fit(X, y).predict(X))


@pytest.mark.parametrize("Est, data", [(MLPClassifier, _blobs), (MLPRegressor, _regression)])
def test_layers_train_reproducibly_and_predict_in_evaluation_mode(Est, data):
    X, y = data(n=120)
    ests = [Est(hidden_layer_sizes=(32,), dropout=0.2, batch_norm=True, max_iter=60,
                random_state=1) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in ests:
            est.fit(X, y)
    np.testing.assert_array_equal(ests[0].predict(X), ests[1].predict(X))  # seeded masks
    np.testing.assert_array_equal(ests[0].predict(X), ests[0].predict(X))  # no dropout
    bn = ests[0].net_.layers[1]
    assert int(bn.num_batches_tracked) == ests[0].n_iter_ and not np.allclose(bn.running_var, 1)
    assert ests[0].score(X, y) > 0.9


def test_layers_with_early_stopping_keep_the_best_running_statistics():
    X, y = _regression(n=200)
    est = MLPRegressor(hidden_layer_sizes=(16,), batch_norm=True, dropout=0.1,
                       early_stopping=True, n_iter_no_change=3, max_iter=200,
                       learning_rate_init=0.05, random_state=0)
    est.fit(X, y)
    best_epoch = int(np.argmax(est.validation_scores_))
    assert best_epoch < len(est.validation_scores_) - 1  # stopped after the best epoch
    # BatchNorm's running statistics were restored with the weights: one update per batch
    # up to the best epoch (auto batch of 180 rows = 1 batch per epoch).
    assert int(est.net_.layers[1].num_batches_tracked) == best_epoch + 1


def test_layers_weights_scale_the_loss_only():
    X, y = _regression(n=40)
    w = np.ones(40)
    w[:20] = 0.0
    fits = [MLPRegressor(hidden_layer_sizes=(8,), batch_norm=True, dropout=0.2, max_iter=50,
                         random_state=0) for _ in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fits[0].fit(X, y, sample_weight=w)
        fits[1].fit(X, y)
    assert fits[0].loss_curve_ != fits[1].loss_curve_  # zero weights leave rows out of the loss
    assert np.isfinite(fits[0].predict(X)).all()


def test_batch_norm_refuses_a_one_sample_batch_with_the_fix():
    X, y = _regression(n=201)
    with pytest.raises(ValueError, match=r"201 training samples in batches of 200 .* batch_size"):
        MLPRegressor(batch_norm=True).fit(X, y)
    with pytest.raises(ValueError, match="1 sample"):
        MLPRegressor(batch_norm=True).fit(X[:1], y[:1])
    MLPRegressor(batch_norm=True, batch_size=67, max_iter=1).fit(X, y)  # 3 full batches


def test_warm_start_refuses_changed_layers():
    X, y = _regression()
    est = MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        est.set_params(dropout=0.5)
        with pytest.raises(ValueError, match=r"dropout=0\.5"):
            est.fit(X, y)
        est.set_params(dropout=0.0)
        est.fit(X, y)


@pytest.mark.parametrize("Est, data", [(MLPClassifier, _blobs), (MLPRegressor, _regression)])
def test_layers_round_trip_through_pickle_and_model_files(tmp_path, Est, data):
    X, y = data()
    est = Est(hidden_layer_sizes=(8,), dropout=0.25, batch_norm=True, max_iter=5,
              random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    _, meta, _ = est.zeronn_state()
    assert meta["params"]["dropout"] == 0.25 and meta["params"]["batch_norm"] is True
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    zn.save(est, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    assert back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


# -- the ecosystem ---------------------------------------------------------------------------
def test_pipeline_gridsearch_cross_val_score_clone():
    X, y = _blobs(n=120)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=100, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (16,)],
                               "mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert grid.best_score_ > 0.9 and scores.mean() > 0.9
    assert grid.best_estimator_[-1].n_features_in_ == 4
    c = clone(grid.best_estimator_[-1])
    assert not hasattr(c, "net_") and c.get_params() == grid.best_estimator_[-1].get_params()


@pytest.mark.parametrize("Est, data", [(MLPClassifier, _blobs), (MLPRegressor, _regression)])
def test_pickle_round_trip_then_partial_fit_identically(Est, data):
    X, y = data()
    kw = {"classes": np.unique(y)} if Est is MLPClassifier else {}
    est = Est(hidden_layer_sizes=(8,), random_state=0)
    est.partial_fit(X, y, **kw)
    copy = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(copy.predict(X), est.predict(X))
    est.partial_fit(X, y)
    copy.partial_fit(X, y)
    for a, b in zip(est.coefs_, copy.coefs_):
        np.testing.assert_array_equal(a, b)


def test_feature_names_in():
    pd = pytest.importorskip("pandas")
    X, y = _regression()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(df, y)
    assert list(est.feature_names_in_) == ["a", "b", "c", "d"]


def test_concurrent_predictions_agree():
    """Prediction allocates its own arrays: threads sharing one estimator get the same answers."""
    X, y = _blobs(n=600)
    est = MLPClassifier(hidden_layer_sizes=(32,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    chunks = np.array_split(np.arange(len(X)), 12) * 4
    want = [est.predict_proba(X[i]) for i in chunks]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: est.predict_proba(X[i]), chunks))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# -- model files (zeronn.save / zeronn.load) -------------------------------------------------
needs_persistence = pytest.mark.skipif(not hasattr(zn, "save"),
                                       reason="zeronn.save/zeronn.load are not available")


@needs_persistence
@pytest.mark.parametrize("labels", [None, ["no", "yes", "maybe"], [1.0, 2.0, 4.0]])
def test_save_load_classifier(tmp_path, labels):
    X, y = _blobs()
    yy = y if labels is None else np.array(labels)[y]
    est = MLPClassifier(hidden_layer_sizes=(8,), early_stopping=True, max_iter=30,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, yy)
    zn.save(est, tmp_path / "m.zeronn")
    back = zn.load(tmp_path / "m.zeronn")
    assert type(back) is MLPClassifier and back.get_params() == est.get_params()
    assert back.classes_.dtype == est.classes_.dtype
    np.testing.assert_array_equal(back.classes_, est.classes_)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    for name in ("loss_curve_", "validation_scores_", "validation_loss_curve_", "n_iter_",
                 "t_", "best_validation_score_", "best_loss_", "out_activation_", "n_layers_"):
        assert getattr(back, name) == getattr(est, name), name


@needs_persistence
def test_save_load_regressor_resumes_partial_fit(tmp_path):
    X, Y = _regression(k=2)
    est = MLPRegressor(hidden_layer_sizes=(8,), activation=["tanh"], random_state=0,
                       n_iter_no_change=np.inf)
    for _ in range(3):
        est.partial_fit(X, Y)
    zn.save(est, tmp_path / "r.zeronn")
    back = zn.load(tmp_path / "r.zeronn")
    est.partial_fit(X, Y)
    back.partial_fit(X, Y)  # the optimizer's state came back too
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    assert back.loss_curve_ == est.loss_curve_


@needs_persistence
def test_save_load_unfitted_and_inconsistent(tmp_path):
    zn.save(MLPRegressor(alpha=0.5), tmp_path / "u.zeronn")
    back = zn.load(tmp_path / "u.zeronn")
    assert back.alpha == 0.5 and not hasattr(back, "net_")
    X, y = _blobs()
    est = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    net, meta, arrays = est.zeronn_state()
    meta["classes"] = meta["classes"][:2]
    with pytest.raises(ValueError, match="inconsistent"):
        MLPClassifier.from_zeronn_state(net, meta, arrays)
    meta = est.zeronn_state()[1]
    meta["n_features_in"] = 7
    with pytest.raises(ValueError, match="inconsistent"):
        MLPClassifier.from_zeronn_state(net, meta, arrays)


# -- larger than memory: dask-ml's Incremental over a row-chunked dask array ---------------
def test_dask_incremental_partial_fit_and_predict():
    da = pytest.importorskip("dask.array")
    dask = pytest.importorskip("dask")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _blobs(n=400, centers=2)
    Xd, yd = da.from_array(X, chunks=(100, 4)), da.from_array(y, chunks=100)
    est = MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    with dask.config.set(scheduler="threads"):
        inc = wrappers.Incremental(est, scoring="accuracy", random_state=0)
        for _ in range(5):
            inc.partial_fit(Xd, yd, classes=[0, 1])
        fitted = inc.estimator_
        assert fitted.t_ == 5 * 400 and len(fitted.loss_curve_) == 20
        pred = inc.predict(Xd)
        assert isinstance(pred, da.Array)
        np.testing.assert_array_equal(pred.compute(), fitted.predict(X))
        np.testing.assert_allclose(inc.predict_proba(Xd).compute(), fitted.predict_proba(X))
        assert inc.score(Xd, yd) > 0.95

        Xr, yr = _regression(n=300)
        reg = wrappers.Incremental(MLPRegressor(hidden_layer_sizes=(16,), random_state=0,
                                                learning_rate_init=0.01),
                                   scoring="neg_mean_squared_error", random_state=0)
        reg.fit(da.from_array(Xr, chunks=(75, 4)), da.from_array(yr, chunks=75))
        assert reg.estimator_.t_ == 300
        assert reg.predict(da.from_array(Xr, chunks=(75, 4))).compute().shape == (300,)
