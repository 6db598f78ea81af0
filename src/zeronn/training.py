"""The fit loop: mini-batches, validation, early stopping, callbacks, schedules, History.

Hot-loop rules (DESIGN.md "Numerics"): buffers are allocated once per batch size;
shuffling permutes an index array in place and gathers rows with ``np.take(..., out=)``;
the optimizer updates the network's one flat parameter buffer in place, using the
gradient buffer as scratch. Per batch there is no Python work per sample.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm  # not tqdm.auto: it warns in every Jupyter kernel without ipywidgets

from zeronn._validation import (
    check_sample_weight,
    non_negative_number,
    normalized_weights,
    positive_number,
)
from zeronn.activations import RELU
from zeronn.losses import Loss
from zeronn.network import MLP
from zeronn.optim import SGD, Adam, Optimizer, Schedule, get_optimizer, get_schedule

__all__ = ["EarlyStopping", "History", "TrainingInterrupted", "fit"]

Callback = Callable[[int, "History"], Any]


class TrainingInterrupted(UserWarning):
    """Warned when Ctrl-C stops ``fit``: the weights and history so far are kept."""


class History(dict[str, list[Any]]):
    """What ``fit`` records, one value per epoch under each key.

    ``loss``: the epoch's training loss, the mean of its batch losses weighted by batch
    size (full batch: the loss before the epoch's update, as the seed prints it).
    ``val_loss`` (with validation data), ``lr``, ``grad_norm`` (global L2 norm of the
    gradient, as a root mean square over the epoch's batches), ``layer_grad_norms`` (the
    same per layer, a list per epoch), ``dead_relu_fraction`` (share of ReLU hidden units that
    output 0 for every sample of the epoch; leaky_relu and elu units output negative values
    there and keep a gradient, so they never count; absent without ReLU units),
    ``time`` (seconds). Attributes: ``epochs`` run, ``stopped_early``, ``best_epoch``
    (1-based, with early stopping), ``interrupted``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped_early = False
        self.interrupted = False
        self.best_epoch: int | None = None

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.get("loss", []))

    def append(self, **values: Any) -> None:
        for k, v in values.items():
            self.setdefault(k, []).append(v)

    def extend(self, other: History) -> None:
        """Appends another history's epochs (a later ``fit`` of the same network)."""
        for k, v in other.items():
            self.setdefault(k, []).extend(v)

    def __repr__(self) -> str:
        last = self.get("loss", [None])[-1] if self.epochs else None
        return f"History(epochs={self.epochs}, keys={list(self)}, last_loss={last!r})"


class EarlyStopping:
    """Stops when the monitored loss has not improved by ``min_delta`` for ``patience`` epochs.

    ``monitor``: ``"val_loss"`` (default when there is validation data) or ``"loss"``.
    ``restore_best``: put back the weights of the best epoch when stopping (or at the end).
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0, restore_best: bool = True,
                 monitor: str | None = None) -> None:
        self.patience = positive_number("patience", patience, integer=True)
        self.min_delta = non_negative_number("min_delta", min_delta)
        self.restore_best = bool(restore_best)
        if monitor not in (None, "loss", "val_loss"):
            raise ValueError(f"monitor must be 'loss' or 'val_loss', got {monitor!r}")
        self.monitor = monitor

    def __repr__(self) -> str:
        return (f"EarlyStopping(patience={self.patience}, min_delta={self.min_delta}, "
                f"restore_best={self.restore_best}, monitor={self.monitor!r})")


def _early_stopping(value: Any) -> EarlyStopping | None:
    if value is None or value is False:
        return None
    if value is True:
        return EarlyStopping()
    if isinstance(value, EarlyStopping):
        return value
    if isinstance(value, (int, np.integer)):
        return EarlyStopping(patience=int(value))
    raise ValueError(f"early_stopping must be None, True, a patience (int) or an "
                     f"EarlyStopping, got {value!r}")


@contextmanager
def _defer_sigint() -> Iterator[list[bool]]:
    """While active, Ctrl-C sets a flag (checked after each batch) instead of raising.

    A second Ctrl-C raises at once. Only the main thread may install signal handlers;
    elsewhere Ctrl-C keeps its usual behaviour.
    """
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _split_validation(X: NDArray, y: NDArray, validation_split: float,
                      validation_data: Any, net: MLP) -> tuple[NDArray, NDArray, Any]:
    if validation_data is not None:
        if validation_split:
            raise ValueError("pass validation_split or validation_data, not both")
        try:
            Xv, yv = validation_data
        except (TypeError, ValueError):
            raise ValueError("validation_data must be a pair (X_val, y_val)") from None
        Xv, yv = net.check_data(Xv, yv)
        return X, y, (Xv, yv)
    split = non_negative_number("validation_split", validation_split)
    if split == 0:
        return X, y, None
    if split >= 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    n_val = round(X.shape[0] * split)
    if n_val < 1 or n_val >= X.shape[0]:
        raise ValueError(f"validation_split={validation_split} leaves {n_val} validation rows "
                         f"of {X.shape[0]}: use more data or another split")
    # The last rows are held out, before any shuffling (as Keras does): no randomness here.
    cut = X.shape[0] - n_val
    return X[:cut], y[:cut], (X[cut:], y[cut:])


def _eval_loss(net: MLP, X: NDArray, y: NDArray, loss: Loss, chunk: int) -> float:
    """The mean loss over (X, y), in chunks (reusing the training buffers' sizes)."""
    total = 0.0
    n = X.shape[0]
    for s in range(0, n, chunk):
        xb, yb = X[s:s + chunk], y[s:s + chunk]
        v, _ = net._batch_loss(xb, yb, loss, None, backprop=False)
        # Regression losses are means over elements, cross-entropies over samples: both
        # combine over chunks as a row-weighted mean.
        total += v * xb.shape[0]
    return total / n


class _DeadUnits:
    """Which hidden units fired this epoch, for ``dead_relu_fraction``.

    Only units that can die count: ReLU-family activations that output exactly 0 below
    the kink (leaky_relu and elu output negative values there and keep a gradient). Per
    batch each such layer's column maximum of its outputs is folded into ``alive``
    (> 0: the unit fired); for the built-in ReLU, whose outputs are >= 0, the column sum
    (one BLAS call with a ones vector) says the same, faster.
    """

    def __init__(self, net: MLP, batch_rows: set[int], single: bool) -> None:
        layers = [layer for layer in net.layers[:-1] if layer.activation.relu_family
                  and layer.activation(np.array([[-1.0]], net.dtype))[0, 0] == 0]
        self.alive = np.zeros(sum(layer.fan_out for layer in layers), net.dtype)
        self.entries = []
        start = 0
        for layer in layers:
            view = self.alive[start:start + layer.fan_out]
            self.entries.append((layer, np.zeros(layer.fan_out, net.dtype), view,
                                 layer.activation is RELU))
            start += layer.fan_out
        self.all_plain = all(plain for *_, plain in self.entries)
        self.ones = {m: np.ones(m, net.dtype) for m in batch_rows}
        self.single = single  # one batch an epoch: straight into `alive`, nothing to fold

    def start_epoch(self) -> None:
        if not self.single:
            self.alive.fill(0.0)

    def observe(self, rows: int) -> None:
        """Folds in the batch of ``rows`` rows that the layers' buffers hold now."""
        for layer, colmax, alive, plain in self.entries:
            a = layer._buf.a  # type: ignore[union-attr]
            out = alive if self.single else colmax
            if plain:
                np.dot(self.ones[rows], a, out=out)
            else:
                np.maximum.reduce(a, axis=0, out=out)
            if not self.single:
                np.maximum(alive, colmax, out=alive)

    def fraction(self) -> float:
        if self.all_plain:  # column sums are >= 0: nonzero means alive
            fired = int(np.count_nonzero(self.alive))
        else:
            fired = int(np.count_nonzero(self.alive > 0))
        return (self.alive.size - fired) / self.alive.size


class _Batches:
    """The epoch's batches: views of the data without shuffling, else rows gathered into
    buffers made once (a full batch and the remainder) from a fresh permutation."""

    def __init__(self, X: NDArray, y: NDArray, weights: NDArray | None, bs: int,
                 shuffle: bool, rng: np.random.Generator) -> None:
        n = X.shape[0]
        self.X, self.y, self.weights, self.shuffle, self.rng = X, y, weights, shuffle, rng
        self.spans = [(b, s, min(s + bs, n)) for b, s in enumerate(range(0, n, bs))]
        self.rows = {e - s for _, s, e in self.spans}
        if shuffle:
            self.order = np.arange(n)
            self.idx = np.empty_like(self.order)
            self.xbufs = {m: np.empty((m, X.shape[1]), X.dtype) for m in self.rows}
            self.ybufs = {m: np.empty((m, y.shape[1]), y.dtype) for m in self.rows}
        else:
            self.views = [(X[s:e], y[s:e]) for _, s, e in self.spans]

    def __len__(self) -> int:
        return len(self.spans)

    def __iter__(self) -> Iterator[tuple[int, int, NDArray, NDArray, NDArray | None]]:
        """(batch index, rows, X batch, y batch, raw weights or None)."""
        weights, idx = self.weights, None
        if self.shuffle:
            # A fresh permutation each epoch (as rng.permutation), without allocating.
            idx = self.idx
            np.copyto(idx, self.order)
            self.rng.shuffle(idx)
        for b, s, e in self.spans:
            if idx is not None:
                m = e - s
                xb, yb = self.xbufs[m], self.ybufs[m]
                # mode="clip": the indices are a permutation, always in range, and the
                # default mode="raise" would gather into a temporary first.
                np.take(self.X, idx[s:e], axis=0, out=xb, mode="clip")
                np.take(self.y, idx[s:e], axis=0, out=yb, mode="clip")
            else:
                xb, yb = self.views[b]
            wb = None if weights is None else (weights[idx[s:e]] if idx is not None
                                               else weights[s:e])
            yield b, e - s, xb, yb, wb


class _Stopper:
    """Early-stopping state: the best monitored value, the wait, the best weights."""

    def __init__(self, config: EarlyStopping, flat_p: NDArray) -> None:
        self.config, self.flat_p = config, flat_p
        self.best, self.wait = math.inf, 0
        self.best_params: NDArray | None = None

    def update(self, metric: float, epoch: int, history: History) -> bool:
        """Records epoch ``epoch`` (0-based); True when training should stop."""
        if metric < self.best - self.config.min_delta:
            self.best, self.wait = metric, 0
            history.best_epoch = epoch + 1
            if self.config.restore_best:
                if self.best_params is None:
                    self.best_params = self.flat_p.copy()
                else:
                    np.copyto(self.best_params, self.flat_p)
            return False
        self.wait += 1
        if self.wait >= self.config.patience:
            history.stopped_early = True
            return True
        return False

    def restore(self) -> None:
        if self.config.restore_best and self.best_params is not None:
            np.copyto(self.flat_p, self.best_params)


def _check_targets(loss: Loss, y: NDArray) -> None:
    if loss.output_activation is not None and (y.min() < 0 or (
            loss.name == "binary_crossentropy" and y.max() > 1)):
        want = "[0, 1]" if loss.name == "binary_crossentropy" else ">= 0 (one-hot rows)"
        raise ValueError(f"{loss.name} needs targets in {want}; "
                         f"got values in [{y.min():g}, {y.max():g}]")


def fit(
    net: MLP,
    X: Any,
    y: Any,
    loss: str | Loss = "mse",
    optimizer: str | Optimizer | None = None,
    epochs: int = 100,
    batch_size: int | None = 32,
    shuffle: bool = True,
    validation_split: float = 0.0,
    validation_data: tuple[Any, Any] | None = None,
    early_stopping: bool | int | EarlyStopping | None = None,
    callbacks: Sequence[Callback] = (),
    lr_schedule: str | Schedule | None = None,
    verbose: int = 0,
    seed: int | None = None,
    sample_weight: Any = None,
) -> History:
    """Trains ``net`` on X (n_samples, n_features) and y (n_samples, n_outputs) in place.

    ``optimizer``: a name, an :class:`~zeronn.optim.Optimizer`, or ``None`` to continue with
    the last fit's optimizer and its state (``Adam(lr=1e-3)`` the first time).
    ``batch_size=None`` is full batch (the seed's way). ``shuffle`` permutes the rows each
    epoch with one ``np.random.Generator``: from ``seed``, or, when ``seed`` is None, the
    network's own generator (so consecutive fits continue one random stream).
    ``validation_split`` holds out the *last* fraction of rows; ``validation_data`` is
    an explicit ``(X_val, y_val)``. ``early_stopping``: True, a patience, or an
    :class:`EarlyStopping`. ``callbacks``: ``cb(epoch, history)`` called after each epoch
    (``epoch`` counts from 1); a truthy return stops training. ``lr_schedule``: name or
    :class:`~zeronn.optim.Schedule`. ``verbose``: 0 silent, 1 a progress bar, 2 a line
    per epoch. ``sample_weight`` (n_samples,): each batch's loss becomes the weighted mean
    (integer weights equal repeated rows for a full batch). Returns this fit's
    :class:`History`; ``net.history`` holds every fit's.

    A loss or gradient that turns NaN or inf, or an update that would make a weight
    non-finite, raises ``ValueError`` before that step is applied: the weights stay as
    they were (all finite) and the optimizer's state is reset. Ctrl-C stops at the end
    of the current batch, keeps weights and history, and warns :class:`TrainingInterrupted`.
    """
    # -- check everything before touching the network ------------------------------------
    loss_obj = net.check_loss(loss)
    Xc, yc = net.check_data(X, y)
    assert yc is not None
    _check_targets(loss_obj, yc)
    epochs = positive_number("epochs", epochs, integer=True)
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    for cb in callbacks:
        if not callable(cb) and not hasattr(cb, "on_epoch_end"):
            raise ValueError(f"callback {cb!r} is not callable")
    weights = check_sample_weight(sample_weight, Xc.shape[0], net.dtype)
    stop_config = _early_stopping(early_stopping)
    schedule = get_schedule(lr_schedule)
    Xt, yt, val = _split_validation(Xc, yc, validation_split, validation_data, net)
    if weights is not None:
        weights = weights[:Xt.shape[0]]
    n = Xt.shape[0]
    bs = n if batch_size is None else min(
        positive_number("batch_size", batch_size, integer=True), n)
    if optimizer is None:
        opt = net.optimizer if net.optimizer is not None else Adam(lr=1e-3)
    else:
        opt = get_optimizer(optimizer)
    monitor = "val_loss" if val is not None else "loss"
    if stop_config is not None:
        if stop_config.monitor == "val_loss" and val is None:
            raise ValueError("early stopping monitors val_loss but there is no validation data: "
                             "pass validation_split/validation_data or monitor='loss'")
        monitor = stop_config.monitor or monitor

    # -- set up: everything the batches need is allocated here, once ---------------------
    net.optimizer = opt
    flat_p, flat_g = net._flat_params, net._flat_grads
    params, grads = [flat_p], [flat_g]
    stopper = None if stop_config is None else _Stopper(stop_config, flat_p)
    rng = np.random.default_rng(seed) if seed is not None else net.rng
    batches = _Batches(Xt, yt, weights, bs, shuffle, rng)
    dead = _DeadUnits(net, batches.rows, single=len(batches) == 1)
    gviews = [flat_g[sl] for sl in net.slices]  # each layer's gradient, for its norm
    opt.prepare(params, grads)  # checked once; each batch then takes the unchecked step
    updates = opt.updates_prepared
    # No weight is ever written non-finite, without keeping a copy of the weights to roll
    # back to: |p + u| <= ||p|| + ||u|| elementwise, so while a running bound on ||p|| plus
    # the update's norm stays below `limit` the update is applied directly; past it (a
    # diverging run) the new weights are formed in the update's buffer and checked first.
    # The limit keeps ||p||^2 finite too (weights beyond sqrt(max) count as diverged).
    limit = _norm_limit(net.dtype)
    # Plain SGD (no momentum, no weight decay): the backward pass computes the update
    # -lr * gradient itself (scaling the output gradient, a few numbers), so the step is one
    # pass over the parameters, p += g. The diagnostics divide the lr back out.
    fold_lr = type(opt) is SGD and not opt.momentum and not opt.weight_decay
    loss_grad, dot, isfinite = net._loss_grad, np.dot, math.isfinite

    history = History()
    appenders: list[tuple[str, Callable[[Any], None]]] = []
    bar = tqdm(total=epochs, unit="epoch", disable=verbose != 1, leave=True,
               file=sys.stderr, dynamic_ncols=True)
    try:
        # Overflow inside a diverging step is reported once, by the finiteness checks below.
        with _defer_sigint() as interrupted, np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(epochs):
                t0 = time.perf_counter()
                opt.lr = lr = schedule.lr(epoch, opt.initial_lr)
                # Not for lr = 0 (a schedule may reach it) nor tiny ones: the scaled
                # gradients' squares (the norms) would underflow in float32.
                folded = fold_lr and lr >= 1e-6
                scale = -lr if folded else 1.0
                unscale = 1.0 / (lr * lr) if folded else 1.0  # for the squared norms
                pnorm = math.sqrt(float(dot(flat_p, flat_p)))  # exact again each epoch
                total = wtotal = 0.0
                used = 0  # batches with weight (zero-weight batches are skipped)
                layer_sq = [0.0] * len(gviews)
                dead.start_epoch()
                for b, rows, xb, yb, wb in batches:
                    bw: float = rows
                    if wb is None:
                        value = loss_grad(xb, yb, loss_obj, None, scale)
                    else:
                        bw = float(wb.sum())
                        if bw <= 0:  # only zero-weight rows: nothing to learn from
                            continue
                        value = loss_grad(xb, yb, loss_obj, normalized_weights(wb), scale)
                    dead.observe(rows)
                    gsq = 0.0  # of the gradient buffer, -lr * gradient when folded
                    for i, g in enumerate(gviews):
                        sq = float(dot(g, g))
                        layer_sq[i] += sq * unscale
                        gsq += sq
                    if not (isfinite(value) and isfinite(gsq)):
                        what = f"loss became {value}" if not isfinite(value) else \
                            "the gradient became non-finite"
                        _fail(opt, what, epoch, b, lr)
                    if folded:  # the buffer holds the update already
                        opt.t += 1
                        usq = gsq
                    else:
                        usq = updates(params, grads)
                    unorm = math.sqrt(usq) if usq >= 0.0 else math.inf  # NaN: not >= 0
                    if pnorm + unorm < limit:
                        flat_p += flat_g
                        pnorm += unorm
                    else:
                        pnorm = _apply_checked(flat_p, flat_g, opt, epoch, b, lr)
                    total += value * bw
                    wtotal += bw
                    used += 1
                    if interrupted[0]:
                        break
                if interrupted[0]:
                    history.interrupted = True
                    warnings.warn(
                        f"training interrupted at epoch {epoch + 1} (batch {b + 1} of "
                        f"{len(batches)}); the weights and the history of the "
                        f"{history.epochs} completed epochs are kept",
                        TrainingInterrupted, stacklevel=2)
                    break
                used = max(used, 1)
                record: dict[str, Any] = {
                    "loss": total / wtotal if wtotal else 0.0,
                    "lr": lr,
                    "grad_norm": math.sqrt(sum(layer_sq) / used),
                    "layer_grad_norms": [math.sqrt(v / used) for v in layer_sq],
                }
                if val is not None:
                    record["val_loss"] = _eval_loss(net, val[0], val[1], loss_obj, bs)
                if dead.entries:
                    record["dead_relu_fraction"] = dead.fraction()
                record["time"] = time.perf_counter() - t0
                if appenders:  # the same keys every epoch: append to the lists directly
                    for key, append in appenders:
                        append(record[key])
                else:
                    history.append(**record)
                    appenders = [(key, history[key].append) for key in record]
                metric = record[monitor]
                schedule.observe(metric)
                stop = stopper is not None and stopper.update(metric, epoch, history)
                for cb in callbacks:
                    hook = getattr(cb, "on_epoch_end", cb)
                    if hook(epoch + 1, history):
                        stop = True
                if verbose == 2:
                    print(_epoch_line(epoch + 1, epochs, record), flush=True)
                elif verbose == 1:
                    bar.update(1)
                    bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "val_loss")
                                     if k in record}, refresh=False)
                if stop:
                    break
    finally:
        bar.close()
        if net.history is None:
            net.history = History()
        net.history.extend(history)
    if stopper is not None:
        stopper.restore()
    return history


def _norm_limit(dtype: np.dtype) -> float:
    """Below this bound on ``||p|| + ||update||`` no new weight can be non-finite."""
    return 0.5 * math.sqrt(float(np.finfo(dtype).max))


def _apply_checked(flat_p: NDArray, flat_g: NDArray, opt: Optimizer, epoch: int, batch: int,
                   lr: float) -> float:
    """``flat_p += flat_g`` only if every new weight is finite; returns the new ``||p||``.

    The new weights are formed in the update's buffer, checked, then copied: the weights
    are never left half updated.
    """
    np.add(flat_p, flat_g, out=flat_g)
    sq = float(np.dot(flat_g, flat_g))
    if not math.isfinite(sq):
        _fail(opt, "the weights became non-finite", epoch, batch, lr)
    np.copyto(flat_p, flat_g)
    return math.sqrt(sq)


def _fail(opt: Optimizer, what: str, epoch: int, batch: int, lr: float) -> NoReturn:
    """Resets the optimizer and raises the user's error; the weights were not touched.

    The optimizer's moments already took the failed step, so they are reset (its lr back
    to the initial one) rather than left to mismatch the weights.
    """
    opt.reset()
    raise ValueError(
        f"{what} at epoch {epoch + 1} (batch {batch + 1}) with lr={lr:g}: the learning rate "
        f"is probably too large, try a smaller one (e.g. {lr / 10:g}); the weights are kept "
        f"as they were before this step (all finite) and the optimizer state was reset")


def _epoch_line(epoch: int, epochs: int, record: dict[str, Any]) -> str:
    parts = [f"Epoch {epoch}/{epochs}", f"loss: {record['loss']:.6g}"]
    if "val_loss" in record:
        parts.append(f"val_loss: {record['val_loss']:.6g}")
    parts.append(f"lr: {record['lr']:.3g}")
    parts.append(f"grad_norm: {record['grad_norm']:.3g}")
    if "dead_relu_fraction" in record:
        parts.append(f"dead_relu: {record['dead_relu_fraction']:.1%}")
    parts.append(f"{record['time'] * 1000:.1f} ms")
    return " - ".join(parts)
