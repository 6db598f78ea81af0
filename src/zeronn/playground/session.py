"""One learner's playground: data, features, network, optimizer, training, snapshots.

No web imports: :mod:`zeronn.playground.app` drives a :class:`Session` from its
WebSocket, and the tests drive it directly. Every public method takes the session's lock,
so a training thread and a request handler never see a half-made step.

Training is zeronn's own machinery, one mini-batch at a time: ``Network.loss_grad`` fills
the gradient buffer, the regularization is added to the Dense layers' weight gradients
(never the biases, as the TensorFlow playground does), and a ``zeronn.optim`` optimizer
steps the flat parameter buffer:

- L1: ``dW += rate * sign(W)``; L2: ``dW += rate * W`` (the gradient of ``rate/2 * |W|²``;
  written here rather than as the optimizer's ``weight_decay``, which would also decay the
  biases and BatchNorm's gamma/beta).
- optimizers: ``sgd`` = ``SGD(lr)``, ``momentum`` = ``SGD(lr, momentum=0.9)``, ``adam`` =
  ``Adam(lr)``.

Each epoch shuffles the training rows with the session's generator (seeded from the
weights' seed, as are Dropout's masks), so ``rewind`` (the same initial weights, a fresh
optimizer and generator) trains to the same numbers again, bit for bit.

The losses shown (``train_loss``, ``test_loss`` and their history) are the data loss in
evaluation mode (no dropout, BatchNorm's running statistics), without the penalty;
``history`` holds one value per epoch from epoch 0 (before any training).
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

import zeronn.playground.data as pgdata
from zeronn import optim
from zeronn.layers import Activation, BatchNorm, Dense, Dropout, Layer
from zeronn.models import Sequential
from zeronn.onnx_export import export_onnx
from zeronn.persistence import save
from zeronn.trace import trace

__all__ = ["DEFAULT_CONFIG", "GRID_SIZE", "NEURON_SIZE", "Session", "validate_config"]

GRID_SIZE = 40  # the output's heatmap: GRID_SIZE² cells
NEURON_SIZE = 16  # each neuron's heatmap
HISTORY_POINTS = 500  # the loss curves sent: at most this many points (every k-th epoch)
DIVERGED = "the loss diverged: lower the learning rate"
ACTIVATIONS = ("relu", "tanh", "sigmoid", "identity")
OPTIMIZERS = ("sgd", "momentum", "adam")
REGULARIZATIONS = ("none", "l1", "l2")
# Config keys an "update" changes without new weights; any other key rebuilds.
LIVE_KEYS = frozenset({"learning_rate", "optimizer", "regularization", "regularization_rate",
                       "batch_size"})

DEFAULT_CONFIG: dict[str, Any] = {
    "dataset": "circle",
    "classes": 3,
    "multiclass_shape": "blobs",
    "noise": 0,
    "train_share": 0.5,
    "batch_size": 10,
    "n_points": 500,
    "seed": 0,
    "features": ["x1", "x2"],
    "layers": [{"units": 4, "activation": "tanh", "dropout": 0.0, "batch_norm": False},
               {"units": 2, "activation": "tanh", "dropout": 0.0, "batch_norm": False}],
    "learning_rate": 0.03,
    "optimizer": "sgd",
    "regularization": "none",
    "regularization_rate": 0.0,
    "upload_id": None,
    "upload_x1": None,
    "upload_x2": None,
    "upload_target": None,
}


# -- config ---------------------------------------------------------------------------
def _number(config: Mapping[str, Any], key: str, lo: float, hi: float,
            integer: bool = False) -> Any:
    v = config[key]
    ok = not isinstance(v, bool) and isinstance(v, (int, float))
    if ok and integer and isinstance(v, float):
        ok = v.is_integer()
    if not ok or not math.isfinite(v) or not lo <= v <= hi:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{key} must be {kind} from {lo:g} to {hi:g}, got {v!r}")
    return int(v) if integer else float(v)


def _choice(config: Mapping[str, Any], key: str, options: tuple[str, ...]) -> str:
    v = config[key]
    if v not in options:
        raise ValueError(f"{key} must be one of {', '.join(options)}, got {v!r}")
    return str(v)


def _layer(spec: Any, i: int) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise ValueError(f"layers[{i}] must be an object like {{\"units\": 4, \"activation\": "
                         f"\"tanh\"}}, got {spec!r}")
    unknown = set(spec) - {"units", "activation", "dropout", "batch_norm"}
    if unknown:
        raise ValueError(f"layers[{i}] has unknown key(s) {sorted(unknown)}: use units, "
                         "activation, dropout, batch_norm")
    full = {"units": 4, "activation": "tanh", "dropout": 0.0, "batch_norm": False, **spec}
    out = {"units": _number(full, "units", 1, 8, integer=True),
           "activation": _choice(full, "activation", ACTIVATIONS),
           "dropout": _number(full, "dropout", 0, 0.9),
           "batch_norm": full["batch_norm"]}
    if not isinstance(out["batch_norm"], bool):
        raise ValueError(f"layers[{i}].batch_norm must be true or false, got "
                         f"{full['batch_norm']!r}")
    return out


def validate_config(config: Any, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``config`` over ``base`` (the defaults) checked and normalized; ``ValueError`` names
    the bad key, its value and the allowed ones."""
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be an object, got {type(config).__name__}")
    unknown = set(config) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)}: use "
                         f"{', '.join(DEFAULT_CONFIG)}")
    c = {**(base if base is not None else DEFAULT_CONFIG), **config}
    out: dict[str, Any] = {
        "dataset": _choice(c, "dataset", (*pgdata.DATASETS, "upload")),
        "classes": _number(c, "classes", 3, 5, integer=True),
        "multiclass_shape": _choice(c, "multiclass_shape", ("blobs", "spiral")),
        "noise": _number(c, "noise", 0, 50),
        "train_share": _number(c, "train_share", 0.1, 0.9),
        "batch_size": _number(c, "batch_size", 1, 500, integer=True),
        "n_points": _number(c, "n_points", 100, 2000, integer=True),
        "seed": _number(c, "seed", 0, 2**31 - 1, integer=True),
        "learning_rate": _number(c, "learning_rate", 1e-6, 10),
        "optimizer": _choice(c, "optimizer", OPTIMIZERS),
        "regularization": _choice(c, "regularization", REGULARIZATIONS),
        "regularization_rate": _number(c, "regularization_rate", 0, 10),
    }
    feats = c["features"]
    if (not isinstance(feats, (list, tuple)) or not feats
            or any(f not in pgdata.FEATURES for f in feats) or len(set(feats)) != len(feats)):
        raise ValueError(f"features must be a non-empty list of distinct names from "
                         f"{', '.join(pgdata.FEATURES)}, got {feats!r}")
    out["features"] = [f for f in pgdata.FEATURES if f in feats]  # the page's order
    layers = c["layers"]
    if not isinstance(layers, (list, tuple)) or len(layers) > 6:
        raise ValueError(f"layers must be a list of 0 to 6 hidden layers, got {layers!r}")
    out["layers"] = [_layer(spec, i) for i, spec in enumerate(layers)]
    for key in ("upload_id", "upload_x1", "upload_x2", "upload_target"):
        v = c[key]
        if v is not None and not isinstance(v, str):
            raise ValueError(f"{key} must be a string, got {v!r}")
        out[key] = v
    if out["dataset"] == "upload" and not out["upload_id"]:
        raise ValueError("dataset 'upload' needs an upload_id: upload a CSV file first")
    if out["batch_size"] == 1 and any(spec["batch_norm"] for spec in out["layers"]):
        raise ValueError("batch norm needs batches of at least 2 rows: raise batch_size or "
                         "turn batch norm off")
    return out


def _finite(a: Any, digits: int | None = None) -> Any:
    """A list (of lists) of floats (rounded to ``digits`` decimals, to keep the messages
    small), NaN and infinities as None (JSON null)."""
    arr = np.asarray(a, dtype=np.float64)
    if digits is not None:
        arr = np.round(arr, digits)
    if np.all(np.isfinite(arr)):
        return arr.tolist()
    obj = arr.astype(object)
    obj[~np.isfinite(arr)] = None
    return obj.tolist()


def _float(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _significant(a: NDArray, digits: int = 4) -> Any:
    """Values rounded to ``digits`` significant digits (NaN/inf -> None)."""
    arr = np.asarray(a, dtype=np.float64)
    out = np.array([[float(f"{v:.{digits}g}") if math.isfinite(v) else math.nan for v in row]
                    for row in arr]).reshape(arr.shape)
    return _finite(out)


# -- the session ----------------------------------------------------------------------
class Session:
    """One learner's state. ``uploads`` maps upload ids to :class:`~data.Table`s.

    Call :meth:`setup` first (the constructor does, with ``config``).
    """

    def __init__(self, config: Mapping[str, Any] | None = None,
                 uploads: Mapping[str, pgdata.Table] | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.uploads: Mapping[str, pgdata.Table] = uploads if uploads is not None else {}
        self.lock = threading.RLock()
        self.notices: list[str] = []  # messages for the page, taken by take_notices()
        self.snapshot_seconds = 0.0  # how long the last snapshot took to build
        self.setup(config or {})

    # -- building --------------------------------------------------------------------
    def setup(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """(Re)builds data, features and a network with fresh weights from ``config.seed``.

        ``config`` is complete or partial (missing keys: the defaults). Returns the
        snapshot with points.
        """
        with self.lock:
            cfg = validate_config(config)
            self._make_data(cfg)
            self.config = cfg
            self.init_seed = cfg["seed"]
            self._build()
            return self.snapshot(points=True)

    def update(self, partial: Mapping[str, Any]) -> dict[str, Any]:
        """Live changes (learning rate, optimizer, regularization, batch size) keep the
        weights; any other key rebuilds as :meth:`setup` with the merged config."""
        with self.lock:
            if not isinstance(partial, Mapping):
                raise ValueError(f"config must be an object, got {type(partial).__name__}")
            cfg = validate_config(partial, self.config)
            if set(partial) - LIVE_KEYS:
                return self.setup(cfg)
            old = self.config
            self.config = cfg
            if cfg["optimizer"] != old["optimizer"]:
                self.optimizer = self._make_optimizer()  # a new rule starts from no state
            else:
                self.optimizer.lr = self.optimizer.initial_lr = cfg["learning_rate"]
            return self.snapshot()

    def reset(self) -> dict[str, Any]:
        """New initial weights (the next seed), epoch 0, history cleared."""
        with self.lock:
            self.init_seed += 1
            self._build()
            return self.snapshot(points=True)

    def rewind(self) -> dict[str, Any]:
        """The same initial weights as the last setup/reset, epoch 0, fresh optimizer."""
        with self.lock:
            self._build()
            return self.snapshot(points=True)

    def _make_data(self, cfg: dict[str, Any]) -> None:
        if cfg["dataset"] == "upload":
            table = self.uploads.get(cfg["upload_id"] or "")
            if table is None:
                raise ValueError(f"upload {cfg['upload_id']!r} is unknown (or expired): "
                                 "upload the CSV file again")
            nums = table.numeric_columns
            x1 = cfg["upload_x1"] or nums[0]
            x2 = cfg["upload_x2"] or next(c for c in nums if c != x1)
            target = cfg["upload_target"] or next(
                (c for c in reversed(table.columns) if c not in (x1, x2)), None)
            if target is None:
                raise ValueError("the upload needs a target column besides x1 and x2: add "
                                 "one, or choose upload_target")
            cfg["upload_x1"], cfg["upload_x2"], cfg["upload_target"] = x1, x2, target
            X, y, class_names = pgdata.table_dataset(table, x1, x2, target, cfg["seed"])
            self.classes = len(class_names) if class_names else 1
            self.class_names = class_names
        else:
            X, y = pgdata.make_dataset(cfg["dataset"], cfg["n_points"], cfg["noise"] / 100,
                                       cfg["seed"], cfg["classes"], cfg["multiclass_shape"])
            if cfg["dataset"] == "multiclass":
                self.classes = cfg["classes"]
            else:
                self.classes = 2 if cfg["dataset"] in pgdata.CLASSIFICATION else 1
            self.class_names = [str(k) for k in range(self.classes)] if self.classes > 1 else []
        self.task = "regression" if self.classes == 1 else "classification"
        self.points, self.y_all = X, y
        self.X_train_pts, self.y_train, self.X_test_pts, self.y_test = pgdata.split(
            X, y, cfg["train_share"])
        feats = cfg["features"]
        self.X_train = pgdata.make_features(self.X_train_pts, feats)
        self.X_test = pgdata.make_features(self.X_test_pts, feats)
        self.Y_train = self._encode(self.y_train)
        self.Y_test = self._encode(self.y_test)
        self.grid_X = pgdata.make_features(pgdata.grid_points(GRID_SIZE), feats)
        self.neuron_X = pgdata.make_features(pgdata.grid_points(NEURON_SIZE), feats)

    def _encode(self, y: NDArray) -> NDArray:
        if self.classes > 2:
            return np.eye(self.classes)[y.astype(int)]
        return y.reshape(-1, 1).astype(np.float64)

    @property
    def loss_name(self) -> str:
        return {1: "mse", 2: "binary_crossentropy"}.get(self.classes, "categorical_crossentropy")

    @property
    def output_activation(self) -> str:
        return {1: "identity", 2: "sigmoid"}.get(self.classes, "softmax")

    def build_layers(self) -> list[Layer]:
        """The network's layers for the config: per hidden layer ``Dense(units, f)``, or
        ``Dense(units), BatchNorm(), Activation(f)`` with batch norm, then ``Dropout(rate)``
        when its rate is above 0; then the output ``Dense``."""
        layers: list[Layer] = []
        for spec in self.config["layers"]:
            act, init = spec["activation"], _init_for(spec["activation"])
            if spec["batch_norm"]:
                layers += [Dense(spec["units"], init=init), BatchNorm(), Activation(act)]
            else:
                layers.append(Dense(spec["units"], activation=act, init=init))
            if spec["dropout"] > 0:
                layers.append(Dropout(spec["dropout"]))
        n_out = self.classes if self.classes > 2 else 1
        layers.append(Dense(n_out, activation=self.output_activation, init="glorot_uniform"))
        return layers

    def _build(self) -> None:
        self.net = Sequential(self.build_layers(), input_dim=len(self.config["features"]),
                              seed=self.init_seed)
        # Shuffling and Dropout's masks: one generator from the weights' seed (rewind
        # restarts it, so a rewound run draws the same batches and masks again).
        self.rng = np.random.default_rng([self.init_seed, 1])
        self.net.set_rng(self.rng)
        layers = self.net.layers
        self.dense = [layer for layer in layers if isinstance(layer, Dense)]
        # The position of each hidden layer's activation output (what its neurons show).
        self.hidden_out: list[int] = []
        for i, layer in enumerate(layers[:-1]):
            if isinstance(layer, Dense) and not isinstance(layers[i + 1], BatchNorm):
                self.hidden_out.append(i)
            elif isinstance(layer, Activation):
                self.hidden_out.append(i)
        self.has_bn = any(isinstance(layer, BatchNorm) for layer in layers)
        self.loss = self.net.check_loss(self.loss_name)
        self.optimizer = self._make_optimizer()
        self.epoch = 0
        self.diverged = False
        self.grad_norm: list[float] = [0.0] * len(self.dense)
        self.history: dict[str, list[float]] = {"train_loss": [], "test_loss": []}
        self._record()

    def _make_optimizer(self) -> optim.Optimizer:
        lr, name = self.config["learning_rate"], self.config["optimizer"]
        if name == "adam":
            return optim.Adam(lr)
        return optim.SGD(lr, momentum=0.9 if name == "momentum" else 0.0)

    # -- training --------------------------------------------------------------------
    def _record(self) -> None:
        train = self.net.eval_loss(self.X_train, self.Y_train, self.loss)
        test = self.net.eval_loss(self.X_test, self.Y_test, self.loss)
        self.history["train_loss"].append(train)
        self.history["test_loss"].append(test)
        if not (math.isfinite(train) and math.isfinite(test)):
            # Told once per step or frame: training on from NaN weights changes nothing.
            self.diverged = True
            if DIVERGED not in self.notices:
                self.notices.append(DIVERGED)

    def _train_epoch(self) -> None:
        """One pass over the training rows in mini-batches (see the module docstring)."""
        net, cfg = self.net, self.config
        X, Y = self.X_train, self.Y_train
        n, bs = X.shape[0], min(cfg["batch_size"], X.shape[0])
        reg, rate = cfg["regularization"], cfg["regularization_rate"]
        flat_p, flat_g = net.flat_params, net.flat_grads
        order = self.rng.permutation(n)
        last_start = ((n - 1) // bs) * bs  # where the last batch the epoch trains on starts
        if self.has_bn and n - last_start < 2 and last_start > 0:
            last_start -= bs
        for s in range(0, n, bs):
            idx = order[s:s + bs]
            if self.has_bn and idx.shape[0] < 2:
                continue  # batch statistics of one row are undefined: skip that remainder
            net.loss_grad(X[idx], Y[idx], self.loss)
            if reg != "none" and rate > 0:
                for layer in self.dense:
                    if reg == "l1":
                        layer.dW += rate * np.sign(layer.W)
                    else:
                        layer.dW += rate * layer.W
            if s == last_start:  # the diagnostics: the epoch's last batch's gradients
                self.grad_norm = [float(np.sqrt(sum(float(np.vdot(g, g)) for g in layer.grads)))
                                  for layer in self.dense]
            self.optimizer.step([flat_p], [flat_g], scratch_grads=True)
        self.epoch += 1
        self._record()

    def step(self) -> dict[str, Any]:
        """Exactly one epoch, then a snapshot."""
        with self.lock, _quiet():
            self._train_epoch()
            return self.snapshot()

    def train_for(self, seconds: float, stop: threading.Event | None = None,
                  max_epochs: int = 1_000_000) -> dict[str, Any]:
        """As many epochs as fit in ``seconds`` together with the snapshot that ends them
        (at least one epoch; fewer when ``stop`` is set or the loss diverged)."""
        with self.lock, _quiet():
            t0 = time.perf_counter()
            # Leave room for the snapshot (as long as the last one took), so the frames
            # keep their rhythm on a slow or busy machine.
            t_end = t0 + seconds - self.snapshot_seconds
            done = 0
            while True:
                self._train_epoch()
                done += 1
                if (self.diverged or done >= max_epochs or time.perf_counter() >= t_end
                        or (stop is not None and stop.is_set())):
                    break
            return self.snapshot()

    def take_notices(self) -> list[str]:
        with self.lock:
            out, self.notices = self.notices, []
            return out

    # -- what the page shows ---------------------------------------------------------
    def _outputs_by_layer(self, X: NDArray) -> list[NDArray]:
        """Evaluation-mode outputs of every layer for checked X."""
        outs = []
        a = X
        for layer in self.net.layers:
            a = layer.infer(a)
            outs.append(a)
        return outs

    def snapshot(self, points: bool = False, playing: bool = False) -> dict[str, Any]:
        """The protocol's snapshot message (see :mod:`zeronn.playground.app`)."""
        with self.lock, _quiet():
            t0 = time.perf_counter()
            net = self.net
            grid_out = net.predict_checked(self.grid_X)  # the one predict call per snapshot
            grid: dict[str, Any] = {"size": GRID_SIZE,
                                    "extent": [-pgdata.EXTENT, pgdata.EXTENT,
                                               -pgdata.EXTENT, pgdata.EXTENT]}
            if self.classes > 2:
                grid["output"] = np.argmax(grid_out, axis=1).tolist()
                grid["confidence"] = _finite(np.max(grid_out, axis=1), 3)
            else:
                grid["output"] = _finite(grid_out[:, 0], 3)
            outs = self._outputs_by_layer(self.neuron_X)
            # Heatmaps: two decimals are finer than their colours (and keep the message small).
            neurons = [_finite(self.neuron_X.T, 2)]
            neurons += [_finite(outs[i].T, 2) for i in self.hidden_out]
            neurons.append(_finite(outs[-1].T, 2))
            # Dead ReLU units: never positive on any training row (evaluation mode).
            train_outs = self._outputs_by_layer(self.X_train)
            dead: list[float | None] = []
            for spec, i in zip(self.config["layers"], self.hidden_out):
                if spec["activation"] == "relu":
                    dead.append(float(np.mean(np.all(train_outs[i] <= 0, axis=0))))
                else:
                    dead.append(None)
            train_loss = self.history["train_loss"][-1]
            test_loss = self.history["test_loss"][-1]
            hist_step = max(1, math.ceil(len(self.history["train_loss"]) / HISTORY_POINTS))
            snap: dict[str, Any] = {
                "type": "snapshot",
                "session": self.id,
                "epoch": self.epoch,
                "playing": playing,
                "task": self.task,
                "classes": self.classes,
                "class_names": self.class_names,
                "train_loss": _float(train_loss),
                "test_loss": _float(test_loss),
                "test_accuracy": self._accuracy(net.predict_checked(self.X_test),
                                                self.y_test),
                "train_accuracy": self._accuracy(train_outs[-1], self.y_train),
                "history": {k: _finite(v[::hist_step]) for k, v in self.history.items()},
                "history_step": hist_step,
                "grid": grid,
                "neurons": neurons,
                "features": list(self.config["features"]),
                "layers": [{"units": spec["units"], "activation": spec["activation"],
                            "dropout": spec["dropout"], "batch_norm": spec["batch_norm"]}
                           for spec in self.config["layers"]]
                + [{"units": self.dense[-1].units, "activation": self.output_activation}],
                "weights": [_finite(layer.W, 4) for layer in self.dense],
                "biases": [_finite(layer.b[0], 4) for layer in self.dense],
                "diagnostics": {"grad_norm": [_float(g) for g in self.grad_norm],
                                "dead_relu": dead},
                "config": self.config,
                "diverged": self.diverged,
            }
            self.snapshot_seconds = time.perf_counter() - t0
            if points:
                snap["points"] = {"train": self._points(self.X_train_pts, self.y_train),
                                  "test": self._points(self.X_test_pts, self.y_test)}
            return snap

    def _points(self, X: NDArray, y: NDArray) -> list[list[float]]:
        return _finite(np.column_stack([X, y]), 4)

    def _accuracy(self, out: NDArray, y: NDArray) -> float | None:
        """The share of rows whose predicted class (from outputs ``out``) is ``y``."""
        if self.classes == 1 or out.shape[0] == 0:
            return None
        pred = np.argmax(out, axis=1) if self.classes > 2 else (out[:, 0] > 0.5).astype(int)
        return float(np.mean(pred == y.astype(int)))

    # -- explain ---------------------------------------------------------------------
    def explain_batch(self) -> tuple[NDArray, NDArray]:
        """The step-through's mini-batch: the first ``batch_size`` training rows (the
        order of ``points.train``), as network inputs and encoded targets."""
        k = min(self.config["batch_size"], self.X_train.shape[0])
        return self.X_train[:k], self.Y_train[:k]

    def explain(self, lang: str = "en") -> dict[str, Any]:
        """One mini-batch's forward and backward pass from ``zn.trace`` (Dropout's masks
        from seed 0), no update; each step with its formula, a sentence and its numbers."""
        if lang not in ("en", "ja"):
            raise ValueError(f"lang must be 'en' or 'ja', got {lang!r}")
        with self.lock:
            Xb, Yb = self.explain_batch()
            with _quiet():
                tr = trace(self.net, Xb, Yb, loss=self.loss_name, seed=0)
            steps = [_step("X", Xb, "X = the mini-batch's inputs (features)", lang, describe)]
            for name, value in tr.items():
                steps.append(_step(name, value, f"{name} = {tr.formulas.get(name, '')}", lang,
                                   describe))
            return {"type": "explain", "lang": lang, "batch_size": int(Xb.shape[0]),
                    "loss": self.loss_name, "features": list(self.config["features"]),
                    "steps": steps}

    # -- export ----------------------------------------------------------------------
    def _to_bytes(self, write: Callable[[Any, str], None], suffix: str) -> bytes:
        fd, path = tempfile.mkstemp(suffix=suffix)
        os.close(fd)
        try:
            with self.lock:  # writing reads the weights: not while an epoch changes them
                write(self.net, path)
            with open(path, "rb") as f:
                return f.read()
        finally:
            os.unlink(path)

    def model_bytes(self) -> bytes:
        """The current network as a ``.zeronn`` file (``zn.save``)."""
        return self._to_bytes(save, ".zeronn")

    def onnx_bytes(self) -> bytes:
        """The current network as an ONNX file (``zn.export_onnx``; needs the onnx extra)."""
        return self._to_bytes(export_onnx, ".onnx")

    def snippet(self, epochs: int | None = None) -> str:
        """Python code that rebuilds this data and network with zeronn and trains it."""
        with self.lock:
            return make_snippet(self, epochs if epochs is not None else max(self.epoch, 100))


def _quiet() -> Any:
    # A diverging run overflows on purpose in a playground: the page says so (a notice),
    # the server's console need not.
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def _init_for(activation: str) -> str:
    return "he_normal" if activation == "relu" else "glorot_normal"


def _step(name: str, value: Any, formula: str, lang: str,
          describe: Callable[[str, str], tuple[str, str]]) -> dict[str, Any]:
    phase, text = describe(name, lang)
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1, 1)
    elif arr.ndim == 1:
        arr = arr.reshape(1, -1)
    elif arr.ndim > 2:
        arr = arr.reshape(arr.shape[0], -1)
    formula = formula.replace("·", " · ").replace("  ", " ")
    return {"name": name, "phase": phase, "formula": formula, "text": text,
            "shape": [int(arr.shape[0]), int(arr.shape[1])],
            "values": _significant(arr[:8, :8])}



# -- the step-through's sentences -----------------------------------------------------
_TEXTS: dict[str, tuple[str, str, str]] = {
    # kind: (phase, English, Japanese); {i} is the layer's position, {name} the step's name.
    "X": ("forward",
          "X is the mini-batch: one row per training point, one column per input feature.",
          "X はミニバッチです。学習データ 1 点が 1 行、入力特徴量が 1 列です（順伝播の入力）。"),
    "z": ("forward",
          "{name} is layer {i}'s linear combination: each unit sums its inputs times its "
          "weights and adds its bias.",
          "{name} は第 {i} 層の線形結合です。入力に重みを掛けて足し、バイアスを加えます"
          "（順伝播）。"),
    "a": ("forward",
          "{name} applies the activation function to layer {i}'s values; it is what the "
          "layer passes on (the last one is the prediction).",
          "{name} は第 {i} 層の値に活性化関数を適用したもので、次へ渡されます（最後の層では予測値）"
          "（順伝播）。"),
    "loss": ("loss",
             "The loss measures how far the predictions are from the targets y: the one "
             "number that training makes smaller.",
             "損失は予測と正解 y のずれを 1 つの数で表します。学習はこれを小さくします。"),
    "error_output": ("backward",
                     "error_output is the output layer's error dL/dz: how the loss changes "
                     "with each output value; backpropagation starts here.",
                     "error_output は出力層の誤差 dL/dz です。ここから逆伝播が始まります。"),
    "delta": ("backward",
              "{name} is layer {i}'s error dL/dz: the error of the layer above sent back "
              "through its weights, times the activation's derivative.",
              "{name} は第 {i} 層の誤差 dL/dz です。上の層の誤差を重みを通して逆伝播し、"
              "活性化関数の微分を掛けたものです。"),
    "dW": ("backward",
           "{name} is the gradient of the loss for the weights W{i}: layer {i}'s inputs "
           "(transposed) times its error.",
           "{name} は重み W{i} に対する損失の勾配です。第 {i} 層の入力の転置と誤差の積です"
           "（逆伝播）。"),
    "db": ("backward",
           "{name} is the gradient for the bias b{i}: layer {i}'s error summed over the "
           "mini-batch.",
           "{name} はバイアス b{i} の勾配です。第 {i} 層の誤差をミニバッチで合計します"
           "（逆伝播）。"),
    "mask": ("forward",
             "{name} is dropout's random mask: a dropped unit gets 0, a kept one is scaled "
             "by 1 / (1 - rate).",
             "{name} はドロップアウトの乱数マスクです。落とすユニットは 0、残すユニットは "
             "1 / (1 - rate) 倍です（順伝播）。"),
    "dropout": ("forward",
                "{name} is the layer's input times the dropout mask.",
                "{name} は入力にドロップアウトのマスクを掛けたものです（順伝播）。"),
    "mean": ("forward",
             "{name} is each unit's mean over the mini-batch (batch norm).",
             "{name} はミニバッチでの各ユニットの平均です（バッチ正規化、順伝播）。"),
    "var": ("forward",
            "{name} is each unit's variance over the mini-batch (batch norm).",
            "{name} はミニバッチでの各ユニットの分散です（バッチ正規化、順伝播）。"),
    "xhat": ("forward",
             "{name} is the input normalized to mean 0 and variance 1 per unit.",
             "{name} は各ユニットを平均 0、分散 1 に正規化した入力です（順伝播）。"),
    "bn": ("forward",
           "{name} is batch norm's output: the normalized input scaled by gamma and shifted "
           "by beta, both learned.",
           "{name} はバッチ正規化の出力です。正規化した入力を学習する gamma 倍し beta を"
           "足します（順伝播）。"),
    "dgamma": ("backward",
               "{name} is the gradient for batch norm's scale gamma.",
               "{name} はバッチ正規化の gamma の勾配です（逆伝播）。"),
    "dbeta": ("backward",
              "{name} is the gradient for batch norm's shift beta.",
              "{name} はバッチ正規化の beta の勾配です（逆伝播）。"),
    "dxhat": ("backward",
              "{name} is the error with respect to the normalized input.",
              "{name} は正規化した入力に対する誤差です（逆伝播）。"),
    "dx": ("backward",
           "{name} is the error handed down from layer {i} to the layer below it.",
           "{name} は第 {i} 層から下の層へ渡す誤差です（逆伝播）。"),
    "dout": ("backward",
             "{name} is the loss's gradient with respect to layer {i}'s output.",
             "{name} は第 {i} 層の出力に対する損失の勾配です（逆伝播）。"),
}


def describe(name: str, lang: str) -> tuple[str, str]:
    """(phase, one sentence in ``lang``) for a step of the step-through."""
    if name in ("X", "loss", "error_output"):
        kind, i = name, ""
    elif name == "error_hidden":
        kind, i = "delta", "1"
    else:
        kind = name.rstrip("0123456789")
        i = name[len(kind):]
        if kind not in _TEXTS or not i:
            return "backward" if name.startswith("d") else "forward", name
    phase, en, ja = _TEXTS[kind]
    return phase, (ja if lang == "ja" else en).format(name=name, i=i)


# -- the Python snippet ---------------------------------------------------------------
def make_snippet(s: Session, epochs: int) -> str:
    """Python code that rebuilds ``s``'s data and network with zeronn and trains it."""
    cfg = s.config
    lines = [
        '"""The zeronn playground\'s setup, rebuilt and trained with zeronn.',
        "",
        "Generated by `zeronn playground`; run it with `python playground.py`.",
        '"""',
        "import numpy as np",
        "",
        "import zeronn as zn",
        "from zeronn.playground.data import make_dataset, make_features, split",
        "",
    ]
    if cfg["dataset"] == "upload":
        lines += [
            f"# Your CSV upload ({cfg['upload_x1']!r}, {cfg['upload_x2']!r} -> "
            f"{cfg['upload_target']!r}), scaled as the playground scaled it.",
            f"X = np.array({_finite(s.points, 6)!r})",
            f"y = np.array({_finite(s.y_all, 6)!r})",
        ]
    else:
        lines.append(
            f"X, y = make_dataset({cfg['dataset']!r}, n_points={cfg['n_points']}, "
            f"noise={cfg['noise'] / 100!r}, seed={cfg['seed']}, classes={cfg['classes']}, "
            f"multiclass_shape={cfg['multiclass_shape']!r})")
    lines += [
        f"X_train, y_train, X_test, y_test = split(X, y, train_share={cfg['train_share']!r})",
        f"features = {cfg['features']!r}",
        "F_train, F_test = make_features(X_train, features), make_features(X_test, features)",
    ]
    if s.classes > 2:
        lines.append(f"Y_train, Y_test = np.eye({s.classes})[y_train.astype(int)], "
                     f"np.eye({s.classes})[y_test.astype(int)]")
    else:
        lines.append("Y_train, Y_test = y_train.reshape(-1, 1), y_test.reshape(-1, 1)")
    lines += ["", "net = zn.Sequential(["]
    for spec in cfg["layers"]:
        act, init = spec["activation"], _init_for(spec["activation"])
        if spec["batch_norm"]:
            lines.append(f"    zn.Dense({spec['units']}, init={init!r}), zn.BatchNorm(), "
                         f"zn.Activation({act!r}),")
        else:
            lines.append(f"    zn.Dense({spec['units']}, activation={act!r}, init={init!r}),")
        if spec["dropout"] > 0:
            lines.append(f"    zn.Dropout({spec['dropout']!r}),")
    n_out = s.classes if s.classes > 2 else 1
    lines += [f"    zn.Dense({n_out}, activation={s.output_activation!r}, "
              f"init='glorot_uniform'),",
              f"], input_dim={len(cfg['features'])}, seed={s.init_seed})", ""]
    lr, reg, rate = cfg["learning_rate"], cfg["regularization"], cfg["regularization_rate"]
    decay = ""
    if reg == "l2" and rate > 0:
        lines.append("# L2: the optimizer's weight decay (it also decays the biases; the "
                     "playground decays only the weights).")
        decay = f", weight_decay={rate!r}"
    elif reg == "l1" and rate > 0:
        lines.append(f"# The playground's L1 penalty (rate {rate!r}) has no fit option: this "
                     "trains without it.")
    opt = {"sgd": f"zn.optim.SGD(lr={lr!r}{decay})",
           "momentum": f"zn.optim.SGD(lr={lr!r}, momentum=0.9{decay})",
           "adam": f"zn.optim.Adam(lr={lr!r}{decay})"}[cfg["optimizer"]]
    bs = min(cfg["batch_size"], s.X_train.shape[0])
    if s.has_bn and s.X_train.shape[0] % bs == 1:
        lines.append("# BatchNorm cannot train on a last batch of 1 row: leave one row out.")
        lines.append("F_train, Y_train = F_train[:-1], Y_train[:-1]")
    lines += [
        f"hist = net.fit(F_train, Y_train, loss={s.loss_name!r}, optimizer={opt},",
        f"               epochs={epochs}, batch_size={bs}, shuffle=True,",
        "               validation_data=(F_test, Y_test), seed=0)",
        "print(f\"train loss {hist['loss'][-1]:.4f}, test loss {hist['val_loss'][-1]:.4f}\")",
    ]
    if s.classes == 2:
        lines.append("accuracy = np.mean((net.predict(F_test)[:, 0] > 0.5) == y_test)")
        lines.append('print(f"test accuracy {accuracy:.3f}")')
    elif s.classes > 2:
        lines.append("accuracy = np.mean(net.predict(F_test).argmax(axis=1) == y_test)")
        lines.append('print(f"test accuracy {accuracy:.3f}")')
    return "\n".join(lines) + "\n"
