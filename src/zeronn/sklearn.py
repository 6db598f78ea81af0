"""scikit-learn estimators over the zeronn engine: :class:`MLPRegressor`, :class:`MLPClassifier`.

They take scikit-learn's ``MLPRegressor``/``MLPClassifier`` parameter names and defaults
and train with one call of :func:`zeronn.training.fit` (no second training loop): the
per-epoch bookkeeping scikit-learn does (``loss_curve_``, ``tol``/``n_iter_no_change``,
validation scores for ``early_stopping``, the ``invscaling``/``adaptive`` learning rates)
runs as a callback and a learning-rate schedule of that one loop.

How scikit-learn's parameters map onto the engine:

- ``solver="sgd"`` -> ``zeronn.optim.SGD(lr, momentum, nesterov)``, ``"adam"`` ->
  ``Adam(lr, betas=(beta_1, beta_2), eps=epsilon)``, any other zeronn optimizer name
  (``"adamw"``, ``"rmsprop"``, ``"adagrad"``) with ``lr=learning_rate_init``.
  ``"lbfgs"`` is not available (zeronn trains with first-order optimizers only).
- ``alpha``: scikit-learn adds ``alpha * ||W||^2 / (2 * batch weight sum)`` to each batch's
  loss. Here it is the optimizer's ``weight_decay = alpha / (batch_size * mean sample
  weight)`` (the expected weight sum of a batch), which penalizes every parameter; the
  same term, ``0.5 * weight_decay * ||params||^2``, is added to ``loss_curve_``. It equals
  scikit-learn's exactly for full batches except that biases are penalized too.
- ``loss="squared_error"`` trains and reports *half* the mean squared error, as
  scikit-learn does (so ``loss_curve_`` values are comparable with its MLP).
- Initial weights and biases are scikit-learn's: uniform in ``+-sqrt(6 / (fan_in +
  fan_out))`` (``sqrt(2 / ...)`` after a logistic layer), drawn from ``random_state``
  exactly as scikit-learn draws them.
- Beyond scikit-learn: ``dropout=RATE`` and ``batch_norm=True`` give every hidden layer
  ``Dense(h) -> [BatchNorm()] -> activation -> [Dropout(RATE)]`` (a :class:`Sequential`);
  with neither, ``net_`` is the plain :class:`MLP` scikit-learn's MLP corresponds to.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state, column_or_1d
from sklearn.utils.multiclass import (
    _check_partial_fit_first_call,
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from zeronn._registry import unknown_name
from zeronn._validation import flag, fraction, number_in, resolve_dtype
from zeronn.activations import get_activation
from zeronn.layers import Activation, BatchNorm, Dense, Dropout, Layer
from zeronn.losses import Loss, get_loss
from zeronn.models import MLP, Sequential
from zeronn.network import Network
from zeronn.onnx_export import GraphSpec
from zeronn.optim import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, Schedule
from zeronn.persistence import register_kind
from zeronn.tasks import (
    BINARY,
    MULTICLASS,
    MULTILABEL,
    REGRESSION,
    Task,
    label_kind_of_dtype,
    probabilities,
)

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names that zeronn spells differently.
_ACTIVATION_ALIASES = {"logistic": "sigmoid"}
_SKLEARN_NAMES = {"sigmoid": "logistic"}
_LEARNING_RATES = ("constant", "invscaling", "adaptive")
_REGRESSION_LOSSES = {"squared_error": "half_squared_error", "absolute_error": "mae",
                      "huber": "huber"}
# LabelBinarizer's y_type_ -> the task rule (its "binary" needs one sigmoid output).
_TASK_OF_Y_TYPE = {"binary": BINARY, "multiclass": MULTICLASS, "multilabel-indicator": MULTILABEL}
_MIN_ADAPTIVE_LR = 1e-6  # scikit-learn's SGD stops once "adaptive" has divided lr below it

_MSE = get_loss("mse")


def _half_mse(a: NDArray, y: NDArray, grad: NDArray, work: NDArray,
              w: NDArray | None) -> float:
    # scikit-learn's "squared_error" is half the MSE: its gradient is then (a - y) / size.
    assert _MSE.value_and_grad is not None
    value = _MSE.value_and_grad(a, y, grad, work, w)
    grad *= 0.5
    return 0.5 * value


_HALF_SQUARED_ERROR = Loss("half_squared_error", _half_mse)


def _loss_object(name: str) -> Loss:
    return _HALF_SQUARED_ERROR if name == "half_squared_error" else get_loss(name)


def _layers(sizes: Sequence[int], activations: Sequence[str], output_activation: str,
            dropout: float, batch_norm: bool) -> list[Layer]:
    """The estimator's layers for ``sizes`` [n_features, hidden..., n_outputs].

    Each hidden layer is ``Dense(h) -> BatchNorm() -> Activation(act) -> Dropout(rate)``
    (BatchNorm only with ``batch_norm``, Dropout only when ``dropout > 0``; without
    BatchNorm the activation stays fused in the Dense layer, as in an MLP).
    """
    layers: list[Layer] = []
    for units, act in zip(sizes[1:-1], activations):
        if batch_norm:
            layers += [Dense(units), BatchNorm(), Activation(act)]
        else:
            layers.append(Dense(units, act))
        if dropout > 0:
            layers.append(Dropout(dropout))
    layers.append(Dense(sizes[-1], output_activation))
    return layers


def _signature(layers: Sequence[Layer]) -> list[tuple[str, dict[str, Any]]]:
    """What two networks must share to be the same architecture (initializers aside)."""
    return [(layer.kind, {k: v for k, v in layer.config().items() if k != "init"})
            for layer in layers]


def _dense_layers(net: Network) -> list[Dense]:
    return [layer for layer in net.layers if isinstance(layer, Dense)]


class _SklearnLearningRate(Schedule):
    """scikit-learn's SGD learning rates as a zeronn schedule.

    ``constant``: ``learning_rate_init``. ``invscaling``: after ``t`` training samples,
    ``learning_rate_init / (t + 1) ** power_t`` (updated at each epoch's end, as
    scikit-learn does). ``adaptive``: divided by 5 each time ``n_iter_no_change`` epochs
    pass without improvement (the callback calls :meth:`reduce`).
    """

    name = "sklearn"

    def __init__(self, kind: str, lr_init: float, power_t: float, current: float) -> None:
        self.kind = kind
        self.lr_init = lr_init
        self.power_t = power_t
        self.current = current

    def lr(self, epoch: int, base_lr: float) -> float:
        return self.current

    def iteration_ends(self, t: int) -> None:
        if self.kind == "invscaling":
            self.current = self.lr_init / (t + 1) ** self.power_t

    def reduce(self) -> bool:
        """Divides the rate by 5; False when it is already too small (time to stop)."""
        if self.kind != "adaptive" or self.current <= _MIN_ADAPTIVE_LR:
            return False
        self.current /= 5.0
        return True


class _BaseMLP(BaseEstimator):
    """What the regressor and the classifier share: parameters, training, persistence."""

    zeronn_kind: ClassVar[str]
    _is_classifier: ClassVar[bool] = False

    # -- parameters --------------------------------------------------------------------
    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(f"hidden_layer_sizes must be an int or a sequence of ints, got "
                             f"{self.hidden_layer_sizes!r}") from None
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must hold positive integers, got "
                                 f"{self.hidden_layer_sizes!r}: e.g. (100,) or (64, 32)")
        return [int(s) for s in sizes]

    def _activations(self, n_hidden: int) -> list[str]:
        acts = self.activation
        names = [acts] * n_hidden if isinstance(acts, str) else list(acts)
        if len(names) != n_hidden:
            raise ValueError(f"activation lists {len(names)} entries but hidden_layer_sizes "
                             f"has {n_hidden} layers: give one activation per hidden layer")
        out = []
        for a in names:
            if not isinstance(a, str):
                a = getattr(a, "name", a)
            if not isinstance(a, str):
                raise ValueError(f"activation must be a name (or one per hidden layer), got "
                                 f"{a!r}")
            key = _ACTIVATION_ALIASES.get(a.lower(), a.lower())
            get_activation(key)  # unknown names fail here, listing the known ones
            out.append(key)
        return out

    def _check_params(self) -> None:
        """Validates every hyperparameter (scikit-learn's ranges), naming the bad one."""
        solver = self.solver
        if not isinstance(solver, str):
            raise ValueError(f"solver must be a name, got {solver!r}")
        if solver.lower() == "lbfgs":
            raise ValueError("solver='lbfgs' is not available in zeronn, which trains with "
                             "first-order optimizers only: use solver='adam' (the default) "
                             f"or 'sgd' (or any of: {', '.join(sorted(OPTIMIZERS))})")
        if OPTIMIZERS.key(solver) is None:
            raise unknown_name("solver", solver, OPTIMIZERS)
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(f"learning_rate must be one of {_LEARNING_RATES}, got "
                             f"{self.learning_rate!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            number_in("batch_size ('auto' or an int)", self.batch_size, 1, integer=True)
        number_in("alpha", self.alpha, 0)
        number_in("learning_rate_init", self.learning_rate_init, 0, low_open=True)
        number_in("power_t", self.power_t, 0)
        number_in("max_iter", self.max_iter, 1, integer=True)
        number_in("tol", self.tol, 0)
        number_in("momentum", self.momentum, 0, 1)
        fraction("validation_fraction", self.validation_fraction)
        fraction("beta_1", self.beta_1)
        fraction("beta_2", self.beta_2)
        number_in("epsilon", self.epsilon, 0, low_open=True)
        if self.n_iter_no_change != np.inf:
            number_in("n_iter_no_change", self.n_iter_no_change, 1, integer=True)
        for option in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            flag(option, getattr(self, option))
        resolve_dtype(self.dtype)
        self._activations(len(self._hidden_sizes()))
        number_in("dropout (the share of hidden units dropped while training, e.g. 0.2)",
                  self.dropout, 0, 1, high_open=True)
        flag("batch_norm", self.batch_norm)

    def _new_optimizer(self) -> Optimizer:
        name = self.solver.lower()
        lr = float(self.learning_rate_init)
        if name == "sgd":
            return SGD(lr=lr, momentum=float(self.momentum),
                       nesterov=bool(self.nesterovs_momentum) and self.momentum > 0)
        betas = (float(self.beta_1), float(self.beta_2))
        if name == "adam":
            return Adam(lr=lr, betas=betas, eps=float(self.epsilon))
        if name == "adamw":
            return AdamW(lr=lr, betas=betas, eps=float(self.epsilon))
        return OPTIMIZERS[name](lr=lr)

    # -- what the subclasses define ------------------------------------------------------
    def _validate_input(self, X: Any, y: Any, incremental: bool,
                        reset: bool) -> tuple[NDArray, NDArray, Any]:
        """(X (n, n_features), Y (n, n_outputs) in the training dtype, y as scored)."""
        raise NotImplementedError

    def _output_activation(self) -> str:
        raise NotImplementedError

    def _loss_name(self) -> str:
        raise NotImplementedError

    def _score_validation(self, X: NDArray, y: Any, sample_weight: NDArray | None) -> float:
        raise NotImplementedError

    # -- data --------------------------------------------------------------------------
    def _dtype(self) -> np.dtype:
        return resolve_dtype(self.dtype)

    def _check_X(self, X: Any, reset: bool) -> NDArray:
        X = validate_data(self, X, accept_sparse=True, dtype=self._dtype(), reset=reset)
        return self._densify(X)

    def _densify(self, X: Any) -> NDArray:
        # The engine is dense: sparse input is converted (rows stay rows).
        if sp.issparse(X):
            X = X.toarray()
        return np.ascontiguousarray(X, dtype=self._dtype())

    # -- training ----------------------------------------------------------------------
    def _initialize(self, n_features: int, n_outputs: int,
                    rng: np.random.RandomState) -> None:
        hidden = self._hidden_sizes()
        acts = self._activations(len(hidden))
        sizes = [n_features, *hidden, n_outputs]
        dtype = self._dtype()
        init: list[NDArray] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # scikit-learn's Glorot-style bound, with its factor 2 for logistic units (the
            # layer's own activation, or the last hidden one for the output layer); the
            # same draws from the same RandomState, so equal random_state, equal start.
            act = acts[min(i, len(acts) - 1)] if acts else "identity"
            factor = 2.0 if act == "sigmoid" else 6.0
            bound = math.sqrt(factor / (fan_in + fan_out))
            W = rng.uniform(-bound, bound, (fan_in, fan_out))
            b = rng.uniform(-bound, bound, fan_out)
            init += [W.astype(dtype), b.reshape(1, -1).astype(dtype)]
        out_act = self._output_activation()
        # No further draws here: the validation split comes next from the same stream, as
        # in scikit-learn (each fit passes the engine its own shuffling seed).
        self.net_: Sequential = self._network(sizes, acts, out_act, init)
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(sizes)
        self.out_activation_ = _SKLEARN_NAMES.get(out_act, out_act)
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_: list[float] = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_: list[float] | None = []
            self.validation_loss_curve_: list[float] | None = []
            self.best_validation_score_: float | None = -np.inf
            self.best_loss_: float | None = None
        else:
            self.validation_scores_ = None
            self.validation_loss_curve_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf

    def _network(self, sizes: list[int], acts: list[str], out_act: str,
                 init: list[NDArray]) -> Sequential:
        """An MLP, or with dropout/batch_norm a Sequential, with the Dense layers' [W1, b1,
        ...] set to ``init`` (BatchNorm starts at gamma 1, beta 0, as in torch)."""
        dtype = self._dtype()
        if not self.dropout and not self.batch_norm:
            return MLP(sizes, activation=acts, output_activation=out_act, init=init,
                       dtype=dtype)
        # seed=0: the Dense weights drawn here are overwritten; shuffling and dropout masks
        # come from each fit's own seed.
        net = Sequential(_layers(sizes, acts, out_act, float(self.dropout),
                                 bool(self.batch_norm)), input_dim=sizes[0], dtype=dtype,
                         seed=0)
        for layer, W, b in zip(_dense_layers(net), init[::2], init[1::2], strict=True):
            layer.W, layer.b = W, b
        return net

    def _expected_layers(self, n_features: int, n_outputs: int,
                         out_act: str) -> list[Layer]:
        hidden = self._hidden_sizes()
        return _layers([n_features, *hidden, n_outputs], self._activations(len(hidden)),
                       out_act, float(self.dropout), bool(self.batch_norm))

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(f"Got `batch_size` ({self.batch_size}) larger than the sample size "
                          f"({n}). It is going to be clipped", UserWarning, stacklevel=4)
        return int(np.clip(self.batch_size, 1, n))

    def _fit(self, X: Any, y: Any, sample_weight: Any, incremental: bool) -> _BaseMLP:
        self._check_params()
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True: use fit, or "
                             "set early_stopping=False")
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        Xc, Y, y_scored = self._validate_input(X, y, incremental, reset=first_pass)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, Xc, dtype=Xc.dtype,
                                      ensure_non_negative=True)
        rng = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Xc.shape[1], Y.shape[1], rng)
        else:
            self._check_architecture(Xc.shape[1], Y.shape[1])
        net = self.net_

        val = None
        Xt, Yt, swt = Xc, Y, sw
        if self.early_stopping:
            # scikit-learn's split: same RandomState draws, stratified for one output only.
            stratify = y_scored if self._is_classifier and self.n_outputs_ == 1 else None
            arrays = [Xc, Y, y_scored] + ([sw] if sw is not None else [])
            parts = train_test_split(*arrays, random_state=rng,
                                     test_size=self.validation_fraction, stratify=stratify)
            Xt, Xv, Yt, Yv, _, yv = parts[:6]
            swt, swv = (parts[6], parts[7]) if sw is not None else (None, None)
            if Xv.shape[0] < 2:
                raise ValueError("The validation set is too small: increase "
                                 "validation_fraction or use more data")
            val = (Xv, Yv, yv, swv)

        n = Xt.shape[0]
        batch_size = self._batch_size(n)
        if self.batch_norm and (n == 1 or n % batch_size == 1):
            raise ValueError(
                "batch_norm=True needs at least 2 samples in every batch, but "
                + ("the 1 sample given makes a batch of 1 row" if n == 1 else
                   f"{n} training samples in batches of {batch_size} leave a last batch "
                   "of 1 sample") + ": change batch_size, or set batch_norm=False")
        opt = net.optimizer
        if opt is None or not incremental:
            opt = self._new_optimizer()  # fit (also with warm_start) starts a fresh optimizer
        mean_w = 1.0 if swt is None else float(np.mean(swt))
        if mean_w <= 0:
            raise ValueError("sample_weight is zero for every training row: give some rows "
                             "a positive weight")
        # alpha / (expected weight sum of a batch): scikit-learn's L2 term as weight decay.
        opt.weight_decay = float(self.alpha) / (batch_size * mean_w)
        sgd = self.solver.lower() == "sgd"
        schedule = _SklearnLearningRate(
            self.learning_rate if sgd else "constant", float(self.learning_rate_init),
            float(self.power_t), opt.lr if opt.t else float(self.learning_rate_init))

        epochs = 1 if incremental else int(self.max_iter)
        self.n_iter_ = 0
        best: _Snapshot | None = None
        if val is not None and not first_pass and self.validation_scores_:
            # warm start: the weights the last fit kept hold best_validation_score_ so far
            best = _Snapshot(net)
        rules = _SklearnEpochEnd(self, opt, schedule, val, n, best)
        net.fit(Xt, Yt, loss=_loss_object(self._loss_name()), optimizer=opt, epochs=epochs,
                batch_size=batch_size, shuffle=bool(self.shuffle),
                validation_data=None if val is None else (val[0], val[1]),
                callbacks=[rules.on_epoch_end], lr_schedule=schedule, verbose=0,
                seed=int(rng.randint(np.iinfo(np.int32).max)), sample_weight=swt)
        opt.lr = schedule.current  # the next partial_fit goes on from here
        if rules.best is not None:
            rules.best.restore(net)  # early stopping keeps the best validation weights
        net.release_buffers()
        if not incremental and not rules.stopped and self.n_iter_ == self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def _check_architecture(self, n_features: int, n_outputs: int) -> None:
        expected = self._expected_layers(n_features, n_outputs, self.net_.output_activation)
        if n_outputs != self.n_outputs_ or _signature(expected) != _signature(
                self.net_.layers):
            raise ValueError(
                f"warm_start/partial_fit continue the fitted network {self.net_!r}, but "
                f"hidden_layer_sizes={self.hidden_layer_sizes!r}, "
                f"activation={self.activation!r}, dropout={self.dropout!r}, "
                f"batch_norm={self.batch_norm!r} and y has {n_outputs} outputs: keep them, "
                "or set warm_start=False to start anew")

    # -- prediction --------------------------------------------------------------------
    def _logits(self, X: NDArray) -> NDArray:
        """The output layer's pre-activation (n, n_outputs).

        Fresh arrays instead of the network's work buffers, so one fitted estimator can
        predict from several threads at once (dask's threaded scheduler does that).
        """
        return self.net_.infer(X, logits=True)

    def _outputs(self, X: NDArray) -> NDArray:
        z = self._logits(X)
        return _dense_layers(self.net_)[-1].activation.forward(z, z)

    # -- fitted attributes as scikit-learn names them ----------------------------------
    @property
    def coefs_(self) -> list[NDArray]:
        """Weight matrices, (fan_in, fan_out) per layer: live views into the network."""
        check_is_fitted(self, "net_")
        return [layer.W for layer in _dense_layers(self.net_)]

    @coefs_.setter
    def coefs_(self, value: Sequence[NDArray]) -> None:
        check_is_fitted(self, "net_")
        for layer, W in zip(_dense_layers(self.net_), value, strict=True):
            layer.W = W

    @property
    def intercepts_(self) -> list[NDArray]:
        """Bias vectors, (fan_out,) per layer: live views into the network."""
        check_is_fitted(self, "net_")
        return [layer.b[0] for layer in _dense_layers(self.net_)]

    @intercepts_.setter
    def intercepts_(self, value: Sequence[NDArray]) -> None:
        check_is_fitted(self, "net_")
        for layer, b in zip(_dense_layers(self.net_), value, strict=True):
            layer.b = b

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- model files (zeronn.save / zeronn.load) ---------------------------------------
    _STAT_ARRAYS: ClassVar[tuple[str, ...]] = (
        "loss_curve_", "validation_scores_", "validation_loss_curve_")
    _STAT_SCALARS: ClassVar[tuple[str, ...]] = ("loss_", "best_loss_", "best_validation_score_")

    def _plain_params(self) -> dict[str, Any]:
        params = self.get_params()
        out: dict[str, Any] = {}
        for k, v in params.items():
            if k == "hidden_layer_sizes":
                v = self._hidden_sizes()
            elif k == "activation" and not isinstance(v, str):
                v = [getattr(a, "name", a) for a in v]
            elif k == "random_state" and not (v is None or isinstance(v, numbers.Integral)):
                v = None  # a RandomState instance cannot live in a model file
            elif k == "dtype":
                v = resolve_dtype(v).name
            elif k == "n_iter_no_change" and v == np.inf:
                v = "inf"
            elif isinstance(v, (np.generic,)):
                v = v.item()
            out[k] = v
        return out

    def zeronn_state(self) -> tuple[Sequential | None, dict[str, Any], dict[str, NDArray]]:
        """(the fitted network or None, JSON-safe metadata, numeric arrays) for zeronn.save."""
        meta: dict[str, Any] = {"params": self._plain_params()}
        if not hasattr(self, "net_"):
            return None, meta, {}
        meta.update({
            "n_features_in": int(self.n_features_in_),
            "n_outputs": int(self.n_outputs_),
            "n_iter": int(self.n_iter_),
            "t": int(self.t_),
            "no_improvement_count": int(self._no_improvement_count),
            "early_stopping_fitted": self.validation_scores_ is not None,
        })
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(f) for f in self.feature_names_in_]
        arrays: dict[str, NDArray] = {}
        for name in self._STAT_ARRAYS:
            v = getattr(self, name)
            if v is not None:
                arrays[name.rstrip("_")] = np.asarray(v, dtype=np.float64)
        for name in self._STAT_SCALARS:
            v = getattr(self, name, None)
            if v is not None:
                arrays[name.rstrip("_")] = np.asarray([v], dtype=np.float64)
        self._extra_state(meta, arrays)
        return self.net_, meta, arrays

    def onnx_spec(self) -> GraphSpec:
        """What ``zeronn.export_onnx`` builds the graph from: the fitted network, its task
        and class labels, and the feature names (as ``metadata_props``)."""
        if not hasattr(self, "net_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet: call fit first")
        task, classes = self._onnx_task()
        meta: dict[str, Any] = {}
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(f) for f in self.feature_names_in_]
        return GraphSpec(self.net_, task=task, classes=classes, kind=self.zeronn_kind,
                         metadata=meta)

    def _onnx_task(self) -> tuple[str, NDArray | None]:
        """(the GraphSpec task, the class labels or None)."""
        return "regression", None

    def _extra_state(self, meta: dict[str, Any], arrays: dict[str, NDArray]) -> None:
        return None

    def _restore_extra(self, meta: dict[str, Any], arrays: dict[str, NDArray]) -> None:
        return None

    @classmethod
    def from_zeronn_state(cls, net: Network | None, meta: dict[str, Any],
                          arrays: dict[str, NDArray]) -> _BaseMLP:
        """Rebuilds an estimator from what :meth:`zeronn_state` returned (checked)."""
        if not isinstance(meta, dict) or not isinstance(meta.get("params"), dict):
            raise ValueError(f"{cls.__name__} model file: metadata lacks 'params'")
        params = dict(meta["params"])
        if params.get("n_iter_no_change") == "inf":
            params["n_iter_no_change"] = np.inf
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        try:
            est = cls(**params)
            est._check_params()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{cls.__name__} model file: bad parameters ({exc})") from None
        if net is None:
            return est
        try:
            n_features = int(meta["n_features_in"])
            n_outputs = int(meta["n_outputs"])
            sizes = [n_features, *est._hidden_sizes(), n_outputs]
            if not isinstance(net, Sequential):
                raise ValueError(f"the network is a {type(net).__name__}, not a Sequential")
            out_act = est._output_activation_for(n_outputs, meta)
            if net.output_activation != out_act:
                raise ValueError(f"output activation {net.output_activation!r} does not fit "
                                 "the task")
            expected = est._expected_layers(n_features, n_outputs, out_act)
            if (net.input_shape != (n_features,)
                    or _signature(net.layers) != _signature(expected)):
                raise ValueError(f"the network {net!r} is not the one the parameters "
                                 f"describe, {Sequential(expected, input_dim=n_features)!r}")
            est.net_ = net
            est.n_features_in_ = n_features
            est.n_outputs_ = n_outputs
            est.n_layers_ = len(sizes)
            out = net.output_activation
            est.out_activation_ = _SKLEARN_NAMES.get(out, out)
            est.n_iter_ = int(meta["n_iter"])
            est.t_ = int(meta["t"])
            est._no_improvement_count = int(meta["no_improvement_count"])
            if "feature_names_in" in meta:
                names = np.asarray(meta["feature_names_in"], dtype=object)
                if names.shape != (n_features,):
                    raise ValueError("feature_names_in has the wrong length")
                est.feature_names_in_ = names
            es = bool(meta["early_stopping_fitted"])
            for name in cls._STAT_ARRAYS:
                key = name.rstrip("_")
                v = arrays.get(key)
                if v is not None:
                    setattr(est, name, [float(x) for x in np.asarray(v).reshape(-1)])
                else:  # the validation curves exist (maybe empty) only with early stopping
                    setattr(est, name, [] if es or name == "loss_curve_" else None)
            for name in cls._STAT_SCALARS:
                v = arrays.get(name.rstrip("_"))
                if v is not None:
                    setattr(est, name, float(np.asarray(v).reshape(-1)[0]))
                elif name != "loss_":
                    setattr(est, name, None)
            est._restore_extra(meta, arrays)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{cls.__name__} model file: incomplete metadata ({exc!r})"
                             ) from None
        except ValueError as exc:
            raise ValueError(f"{cls.__name__} model file is inconsistent: {exc}") from None
        return est

    def _output_activation_for(self, n_outputs: int, meta: dict[str, Any]) -> str:
        return self._output_activation()


class _Snapshot:
    """A copy of a network's parameters and state (BatchNorm's running statistics, which
    belong to the weights they were gathered with)."""

    def __init__(self, net: Network) -> None:
        self.params = [p.copy() for p in net.params]
        self.states = [{k: v.copy() for k, v in s.items()} for s in net.states()]

    def restore(self, net: Network) -> None:
        net.set_params(self.params)
        for layer, state in zip(net.layers, self.states, strict=True):
            layer.set_state(state)


class _SklearnEpochEnd:
    """scikit-learn's per-epoch bookkeeping, run as the training loop's callback.

    Each branch follows one rule of scikit-learn's ``BaseMultilayerPerceptron``
    (``_fit_stochastic``, ``_update_no_improvement_count``) or of its
    ``SGDOptimizer`` (``iteration_ends``, ``trigger_stopping``):

    - ``loss_curve_`` / ``loss_``: the epoch's mean training loss plus the L2 term
      ``0.5 * weight_decay * ||params||^2`` of the weights the epoch *started* with
      (scikit-learn adds the term per batch before the update); ``n_iter_`` counts epochs
      and ``t_`` samples seen. ``verbose`` prints its "Iteration i, loss = ..." line.
    - ``early_stopping``: the validation score (accuracy or R2) is recorded in
      ``validation_scores_``; an epoch counts as no improvement when the score is below
      ``best_validation_score_ + tol``, and the best score's weights are kept.
    - otherwise: no improvement when the loss is above ``best_loss_ - tol``.
    - ``iteration_ends``: the ``invscaling`` rate is updated from ``t_`` at every
      epoch's end.
    - ``trigger_stopping``: after more than ``n_iter_no_change`` epochs without
      improvement, ``adaptive`` divides the rate by 5 and the count restarts; any other
      rate (or an adaptive one already at 1e-6 or below) stops training, which
      :attr:`stopped` records (``fit`` then gives no ConvergenceWarning).
    """

    def __init__(self, est: _BaseMLP, opt: Optimizer, schedule: _SklearnLearningRate,
                 val: tuple[NDArray, NDArray, Any, NDArray | None] | None, n: int,
                 best: _Snapshot | None) -> None:
        self.est, self.opt, self.schedule, self.val, self.n = est, opt, schedule, val, n
        self.best = best  # the network of the best validation score so far (early stopping)
        self.stopped = False
        self.flat = est.net_.flat_params
        # The L2 term of an epoch's loss, from the weights it starts with (full batch: the
        # very term scikit-learn adds; mini-batches: it averages the batches' terms).
        self.penalty = self._l2_term()

    def _l2_term(self) -> float:
        return 0.5 * self.opt.weight_decay * float(np.dot(self.flat, self.flat))

    def on_epoch_end(self, epoch: int, history: dict[str, list[Any]]) -> bool:
        """Records the epoch as scikit-learn does; True asks the loop to stop."""
        est, val, schedule = self.est, self.val, self.schedule
        loss = float(history["loss"][-1]) + self.penalty
        self.penalty = self._l2_term()
        est.n_iter_ += 1
        est.t_ += self.n
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if val is not None:
            assert est.validation_scores_ is not None
            assert est.validation_loss_curve_ is not None
            assert est.best_validation_score_ is not None
            score = est._score_validation(val[0], val[2], val[3])
            est.validation_scores_.append(score)
            est.validation_loss_curve_.append(float(history["val_loss"][-1]))
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best = _Snapshot(est.net_)
        else:
            assert est.best_loss_ is not None
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, loss)
        schedule.iteration_ends(est.t_)
        if est._no_improvement_count > est.n_iter_no_change:
            what = ("Validation score" if val is not None else "Training loss")
            msg = (f"{what} did not improve more than tol={est.tol:f} for "
                   f"{est.n_iter_no_change} consecutive epochs.")
            if schedule.reduce():
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{msg} Setting learning rate to {schedule.current:f}")
            else:
                if est.verbose:
                    print(f"{msg} Stopping.")
                self.stopped = True
                return True
        return False


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor with scikit-learn's API, trained by zeronn.

    Parameters are scikit-learn's ``MLPRegressor``'s (same names and defaults; see the
    module docstring for how they map onto the engine), plus:

    loss : ``"squared_error"`` (half the MSE, as scikit-learn), ``"absolute_error"`` or
        ``"huber"`` (delta 1).
    activation : a name (``"identity"``, ``"logistic"``, ``"tanh"``, ``"relu"`` or any
        zeronn activation) or one name per hidden layer.
    solver : ``"adam"``, ``"sgd"`` or any zeronn optimizer name (not ``"lbfgs"``).
    dtype : ``"float64"`` or ``"float32"``, kept through training and prediction.
    dropout : share of each hidden layer's outputs dropped while training (inverted
        dropout, in [0, 1); 0 adds no layer). Prediction never drops.
    batch_norm : put a ``BatchNorm`` (torch ``BatchNorm1d``) between each hidden ``Dense``
        and its activation; prediction uses its running statistics. Every training batch
        then needs at least 2 samples.

    Fitted attributes: scikit-learn's (``coefs_``, ``intercepts_``, ``loss_``,
    ``loss_curve_``, ``best_loss_``, ``validation_scores_``, ``best_validation_score_``,
    ``n_iter_``, ``t_``, ``n_features_in_``, ``feature_names_in_``, ``n_layers_``,
    ``n_outputs_``, ``out_activation_``), plus ``validation_loss_curve_`` (the held-out
    loss per epoch with ``early_stopping``, unweighted) and ``net_`` (the network: a
    :class:`zeronn.MLP`, or a :class:`zeronn.Sequential` with dropout or batch_norm;
    ``coefs_``/``intercepts_`` are its Dense layers').
    """

    zeronn_kind: ClassVar[str] = "sklearn.MLPRegressor"

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: str = "float64",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm

    def _check_params(self) -> None:
        if self.loss not in _REGRESSION_LOSSES:
            raise ValueError(f"loss must be one of {sorted(_REGRESSION_LOSSES)}, got "
                             f"{self.loss!r}")
        super()._check_params()

    def _loss_name(self) -> str:
        return _REGRESSION_LOSSES[self.loss]

    def _output_activation(self) -> str:
        return REGRESSION.output_activation

    def _validate_input(self, X: Any, y: Any, incremental: bool,
                        reset: bool) -> tuple[NDArray, NDArray, Any]:
        X, y = validate_data(self, X, y, accept_sparse=True, multi_output=True,
                             y_numeric=True, dtype=self._dtype(), reset=reset)
        X = self._densify(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.ascontiguousarray(y.reshape(len(y), -1), dtype=self._dtype())
        return X, Y, Y

    def _score_validation(self, X: NDArray, y: Any, sample_weight: NDArray | None) -> float:
        pred = self._outputs(X)
        if not np.isfinite(pred).all():
            return float("nan")
        return float(r2_score(y, pred, sample_weight=sample_weight))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Trains on X (n_samples, n_features) and y (n_samples,) or (n_samples, n_outputs).

        ``sample_weight`` (n_samples,): each batch's loss is the weighted mean, so integer
        weights equal repeated rows (exactly for a full batch; with mini-batches the
        batches themselves differ).
        """
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over (X, y), continuing the weights and the optimizer's state."""
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def predict(self, X: Any) -> NDArray:
        """Predictions, (n_samples,) for one output, else (n_samples, n_outputs)."""
        check_is_fitted(self, "net_")
        pred = self._outputs(self._check_X(X, reset=False))
        return pred.ravel() if pred.shape[1] == 1 else pred

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier with scikit-learn's API, trained by zeronn.

    Binary and multilabel targets get sigmoid outputs with binary cross-entropy, more
    than two classes a softmax with categorical cross-entropy; ``classes_`` come from a
    ``LabelBinarizer`` as in scikit-learn's MLP. Parameters are scikit-learn's
    ``MLPClassifier``'s (see :class:`MLPRegressor` for the additions ``activation`` lists,
    any zeronn ``solver``, ``dtype``, ``dropout`` and ``batch_norm``). Fitted attributes: those of
    :class:`MLPRegressor` plus ``classes_``.
    """

    zeronn_kind: ClassVar[str] = "sklearn.MLPClassifier"
    _is_classifier: ClassVar[bool] = True

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        dtype: str = "float64",
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.dtype = dtype
        self.dropout = dropout
        self.batch_norm = batch_norm

    @staticmethod
    def _task_of(y_type: Any) -> Task:
        # Anything but multiclass trains sigmoid outputs (scikit-learn's MLP does the same).
        return _TASK_OF_Y_TYPE.get(y_type, BINARY)

    def _output_activation(self) -> str:
        return self._task_of(self._label_binarizer.y_type_).output_activation

    def _output_activation_for(self, n_outputs: int, meta: dict[str, Any]) -> str:
        return self._task_of(meta.get("y_type")).output_activation

    def _loss_name(self) -> str:
        return self._task_of(self._label_binarizer.y_type_).loss

    def _validate_input(self, X: Any, y: Any, incremental: bool,
                        reset: bool) -> tuple[NDArray, NDArray, Any]:
        X, y = validate_data(self, X, y, accept_sparse=True, multi_output=True,
                             dtype=self._dtype(), reset=reset)
        X = self._densify(X)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in "
                        f"the previous call to fit. Previously got {self.classes_}, `y` has "
                        f"{classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` "
                                 f"has {self.classes_}. 'y' has {classes}.")
        Y = np.ascontiguousarray(self._label_binarizer.transform(y), dtype=self._dtype())
        return X, Y, y

    def _labels(self, proba: NDArray) -> Any:
        if proba.shape[1] == 1:
            proba = proba.ravel()
        return self._label_binarizer.inverse_transform(proba)

    def _score_validation(self, X: NDArray, y: Any, sample_weight: NDArray | None) -> float:
        proba = self._outputs(X)
        if not np.isfinite(proba).all():
            return float("nan")
        return float(accuracy_score(y, self._labels(proba), sample_weight=sample_weight))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Trains on X (n_samples, n_features) and labels y (n_samples,), or a multilabel
        indicator matrix (n_samples, n_labels). ``sample_weight``: as in
        :meth:`MLPRegressor.fit`."""
        self._fit(X, y, sample_weight, incremental=False)
        return self

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None,
                    classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing weights and optimizer state.

        ``classes``: every label the model will see, required on the first call.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        self._fit(X, y, sample_weight, incremental=True)
        return self

    def predict(self, X: Any) -> Any:
        """Class labels (n_samples,), or a label indicator matrix for multilabel targets."""
        check_is_fitted(self, "net_")
        return self._labels(self._outputs(self._check_X(X, reset=False)))

    def predict_proba(self, X: Any) -> NDArray:
        """Probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self, "net_")
        return probabilities(self._outputs(self._check_X(X, reset=False)))

    def predict_log_proba(self, X: Any) -> NDArray:
        """log of :meth:`predict_proba`, computed from the logits so it stays finite."""
        check_is_fitted(self, "net_")
        z = self._logits(self._check_X(X, reset=False))
        if self.out_activation_ == "softmax":
            z -= z.max(axis=1, keepdims=True)
            z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
            return z
        # log sigmoid(z) = -log(1 + e^-z), log(1 - sigmoid(z)) = -log(1 + e^z)
        log_p = -np.logaddexp(0, -z)
        if z.shape[1] == 1:
            return np.hstack([-np.logaddexp(0, z), log_p])
        return log_p

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _onnx_task(self) -> tuple[str, NDArray | None]:
        multilabel = self._label_binarizer.y_type_ == "multilabel-indicator"
        return ("multilabel" if multilabel else "classification"), self.classes_

    # -- model files -------------------------------------------------------------------
    def _extra_state(self, meta: dict[str, Any], arrays: dict[str, NDArray]) -> None:
        classes = self.classes_
        meta["y_type"] = str(self._label_binarizer.y_type_)
        meta["classes_dtype"] = classes.dtype.str
        if classes.dtype.kind == "O" and not all(isinstance(c, str) for c in classes):
            raise ValueError("classes_ mixes types a model file cannot hold: use numeric or "
                             "string labels")
        if label_kind_of_dtype(classes.dtype) is None:
            raise ValueError(f"class labels of dtype {classes.dtype} cannot be saved: use "
                             "numeric or string labels")
        meta["classes"] = classes.tolist()

    def _restore_extra(self, meta: dict[str, Any], arrays: dict[str, NDArray]) -> None:
        y_type = meta["y_type"]
        classes = np.asarray(meta["classes"], dtype=np.dtype(meta["classes_dtype"]))
        if classes.ndim != 1 or len(classes) == 0:
            raise ValueError("classes must be a non-empty list")
        lb = LabelBinarizer()
        if y_type == "multilabel-indicator":
            if len(classes) < 2:
                raise ValueError("a multilabel model needs at least two labels")
            lb.fit(np.eye(len(classes), dtype=int))
            lb.classes_ = classes
        elif y_type in ("binary", "multiclass"):
            lb.fit(classes)
            if lb.y_type_ != y_type and not (y_type == "binary" and len(classes) <= 2):
                raise ValueError(f"{len(classes)} classes do not make a {y_type} task")
        else:
            raise ValueError(f"unknown target type {y_type!r}")
        n_out = len(classes) if y_type != "binary" else 1
        if n_out != self.n_outputs_:
            raise ValueError(f"{len(classes)} classes ({y_type}) need {n_out} outputs, the "
                             f"network has {self.n_outputs_}")
        self._label_binarizer = lb
        self.classes_ = lb.classes_


# zeronn.save/zeronn.load handle the estimators (also declared as entry points in
# pyproject.toml, so their files load before this module is imported).
register_kind(MLPRegressor.zeronn_kind, MLPRegressor)
register_kind(MLPClassifier.zeronn_kind, MLPClassifier)
