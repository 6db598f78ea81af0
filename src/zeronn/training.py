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

    A loss that turns NaN or inf raises ``ValueError`` after restoring the weights of the
    end of the last epoch whose losses were all finite. Ctrl-C stops at the end of the
    current batch, keeps weights and history, and warns :class:`TrainingInterrupted`.
    """
    loss_obj = net.check_loss(loss)
    Xc, yc = net.check_data(X, y)
    assert yc is not None
    if loss_obj.output_activation is not None and (yc.min() < 0 or (
            loss_obj.name == "binary_crossentropy" and yc.max() > 1)):
        want = "[0, 1]" if loss_obj.name == "binary_crossentropy" else ">= 0 (one-hot rows)"
        raise ValueError(f"{loss_obj.name} needs targets in {want}; "
                         f"got values in [{yc.min():g}, {yc.max():g}]")
    epochs = positive_number("epochs", epochs, integer=True)
    if verbose not in (0, 1, 2) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    for cb in callbacks:
        if not callable(cb) and not hasattr(cb, "on_epoch_end"):
            raise ValueError(f"callback {cb!r} is not callable")
    weights = check_sample_weight(sample_weight, Xc.shape[0], net.dtype)
    stopper = _early_stopping(early_stopping)
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
    rng = np.random.default_rng(seed) if seed is not None else net.rng
    monitor = "val_loss" if val is not None else "loss"
    if stopper is not None:
        if stopper.monitor == "val_loss" and val is None:
            raise ValueError("early stopping monitors val_loss but there is no validation data: "
                             "pass validation_split/validation_data or monitor='loss'")
        monitor = stopper.monitor or monitor

    net.optimizer = opt
    flat_p, flat_g = net._flat_params, net._flat_grads
    params, grads = [flat_p], [flat_g]
    last_good = flat_p.copy()  # weights at the end of the last all-finite epoch
    best_params: NDArray | None = None
    best, wait = math.inf, 0
    # Units that can die: ReLU-family activations that output exactly 0 below the kink
    # (leaky_relu and elu output negative values there and keep a gradient: never dead).
    relu_layers = [layer for layer in net.layers[:-1] if layer.activation.relu_family
                   and layer.activation(np.array([[-1.0]], net.dtype))[0, 0] == 0]
    # Dead-unit diagnostic: per batch, each ReLU-family layer's column maximum of its outputs,
    # folded into `alive` (> 0: the unit fired this epoch). Plain ReLU outputs are >= 0, so
    # there the column sum (one BLAS call with a ones vector) says the same, faster.
    alive_all = np.zeros(sum(layer.fan_out for layer in relu_layers), net.dtype)
    alive_bool = np.zeros(alive_all.size, bool)
    diag = []
    start = 0
    for layer in relu_layers:
        al = alive_all[start:start + layer.fan_out]
        diag.append((layer, np.zeros(layer.fan_out, net.dtype), al, layer.activation is RELU))
        start += layer.fan_out
    all_plain = all(plain for *_, plain in diag)
    gviews = [flat_g[sl] for sl in net.slices]  # each layer's gradient, for its norm
    layer_sq = [0.0] * len(gviews)

    # Gather buffers for shuffled batches: a full batch and the remainder.
    starts = list(range(0, n, bs))
    nb = len(starts)
    single = nb == 1
    spans = [(b, s, min(s + bs, n)) for b, s in enumerate(starts)]
    ones = {e - s: np.ones(e - s, net.dtype) for _, s, e in spans}
    if not shuffle:  # the batches are views, made once
        views = [(Xt[s:e], yt[s:e]) for _, s, e in spans]
    if shuffle:
        order = np.arange(n)
        idx = np.empty_like(order)
        xbufs = {m: np.empty((m, Xt.shape[1]), net.dtype) for m in {min(bs, n - s) for s in starts}}
        ybufs = {m: np.empty((m, yt.shape[1]), net.dtype) for m in xbufs}

    opt.prepare(params, grads)  # checked once; each batch then takes the unchecked step
    step = opt.step_prepared
    # Plain SGD (no momentum, no weight decay): the backward pass computes the update
    # -lr * gradient itself (scaling the output gradient, a few numbers), so the step is one
    # pass over the parameters, p += g. The diagnostics divide the lr back out.
    fold_lr = type(opt) is SGD and not opt.momentum and not opt.weight_decay
    loss_grad = net._loss_grad
    dot, max_reduce, isfinite = np.dot, np.maximum.reduce, math.isfinite

    history = History()
    appenders: list[tuple[str, Callable[[Any], None]]] = []
    bar = tqdm(total=epochs, unit="epoch", disable=verbose != 1, leave=True,
               file=sys.stderr, dynamic_ncols=True)
    try:
        # Overflow inside a diverging step is reported once, by the finiteness check below.
        with _defer_sigint() as interrupted, np.errstate(over="ignore", invalid="ignore"):
            for epoch in range(epochs):
                t0 = time.perf_counter()
                opt.lr = lr = schedule.lr(epoch, opt.initial_lr)
                # Not for lr = 0 (a schedule may reach it) nor tiny ones: the scaled
                # gradients' squares (the norms) would underflow in float32.
                folded = fold_lr and lr >= 1e-6
                scale = -lr if folded else 1.0
                unscale = 1.0 / (lr * lr) if folded else 1.0  # for the squared norms
                if shuffle:
                    # A fresh permutation each epoch (as rng.permutation), without allocating.
                    np.copyto(idx, order)
                    rng.shuffle(idx)
                total = 0.0
                wtotal = 0.0
                used = 0  # batches with weight (zero-weight batches are skipped)
                layer_sq = [0.0] * len(gviews)
                if not single:
                    alive_all.fill(0.0)
                for b, s, e in spans:
                    if shuffle:
                        m = e - s
                        xb, yb = xbufs[m], ybufs[m]
                        # mode="clip": the indices are a permutation, always in range, and
                        # the default mode="raise" would gather into a temporary first.
                        np.take(Xt, idx[s:e], axis=0, out=xb, mode="clip")
                        np.take(yt, idx[s:e], axis=0, out=yb, mode="clip")
                    else:
                        xb, yb = views[b]
                    bw: float = e - s
                    if weights is None:
                        value = loss_grad(xb, yb, loss_obj, None, scale)
                    else:
                        wb = weights[idx[s:e]] if shuffle else weights[s:e]
                        bw = float(wb.sum())
                        if bw <= 0:  # only zero-weight rows: nothing to learn from
                            continue
                        value = loss_grad(xb, yb, loss_obj, normalized_weights(wb), scale)
                    for layer, cm, al, plain in diag:
                        lbuf = layer._buf
                        assert lbuf is not None
                        # One batch per epoch: straight into `alive`, nothing to fold.
                        out = al if single else cm
                        if plain:
                            dot(ones[e - s], lbuf.a, out=out)
                        else:
                            max_reduce(lbuf.a, axis=0, out=out)
                        if not single:
                            np.maximum(al, cm, out=al)
                    gsq = 0.0
                    for i, g in enumerate(gviews):
                        sq = float(dot(g, g)) * unscale
                        layer_sq[i] += sq
                        gsq += sq
                    if not (isfinite(value) and isfinite(gsq)):
                        what = f"loss became {value}" if not isfinite(value) else \
                            "the gradient became non-finite"
                        _roll_back(flat_p, last_good, opt, what, epoch, b, lr)
                    if folded:
                        opt.t += 1
                        flat_p += flat_g
                    else:
                        step(params, grads)
                    total += value * bw
                    wtotal += bw
                    used += 1
                    if interrupted[0]:
                        break
                if interrupted[0]:
                    history.interrupted = True
                    warnings.warn(
                        f"training interrupted at epoch {epoch + 1} (batch {b + 1} of "
                        f"{len(starts)}); the weights and the history of the "
                        f"{history.epochs} completed epochs are kept",
                        TrainingInterrupted, stacklevel=2)
                    break
                # The losses were finite, but the epoch's last update may still have overflowed
                # the weights (one BLAS pass; weights beyond 1e154 count as diverged too).
                if not isfinite(float(dot(flat_p, flat_p))):
                    _roll_back(flat_p, last_good, opt, "the weights became non-finite",
                               epoch, b, lr)
                np.copyto(last_good, flat_p)
                used = max(used, 1)
                record: dict[str, Any] = {
                    "loss": total / wtotal if wtotal else 0.0,
                    "lr": lr,
                    "grad_norm": math.sqrt(sum(layer_sq) / used),
                    "layer_grad_norms": [math.sqrt(v / used) for v in layer_sq],
                }
                if val is not None:
                    record["val_loss"] = _eval_loss(net, val[0], val[1], loss_obj, bs)
                if relu_layers:
                    if all_plain:  # column sums are >= 0: nonzero means alive
                        dead = alive_all.size - int(np.count_nonzero(alive_all))
                    else:
                        np.greater(alive_all, 0, out=alive_bool)
                        dead = alive_all.size - int(np.count_nonzero(alive_bool))
                    record["dead_relu_fraction"] = dead / alive_all.size
                record["time"] = time.perf_counter() - t0
                if appenders:  # the same keys every epoch: append to the lists directly
                    for key, append in appenders:
                        append(record[key])
                else:
                    history.append(**record)
                    appenders = [(key, history[key].append) for key in record]
                metric = record[monitor]
                schedule.observe(metric)
                stop = False
                if stopper is not None:
                    if metric < best - stopper.min_delta:
                        best, wait = metric, 0
                        history.best_epoch = epoch + 1
                        if stopper.restore_best:
                            if best_params is None:
                                best_params = flat_p.copy()
                            else:
                                np.copyto(best_params, flat_p)
                    else:
                        wait += 1
                        if wait >= stopper.patience:
                            stop = history.stopped_early = True
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
    if stopper is not None and stopper.restore_best and best_params is not None:
        np.copyto(flat_p, best_params)
    return history


def _roll_back(flat_p: NDArray, last_good: NDArray, opt: Optimizer, what: str, epoch: int,
               batch: int, lr: float) -> NoReturn:
    """Restores the last all-finite weights, resets the optimizer, raises the user's error.

    The optimizer's moments belong to the abandoned trajectory, so they are reset (its lr
    back to the initial one) rather than left to mismatch the restored weights.
    """
    np.copyto(flat_p, last_good)
    opt.reset()
    raise ValueError(
        f"{what} at epoch {epoch + 1} (batch {batch + 1}) with lr={lr:g}: the learning rate "
        f"is probably too large, try a smaller one (e.g. {lr / 10:g}); the weights were "
        f"restored to the end of epoch {epoch} and the optimizer state was reset")


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
