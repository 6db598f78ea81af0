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

from zeronn import engine as engines
from zeronn._validation import (
    check_sample_weight,
    non_negative_number,
    normalized_weights,
    positive_number,
)
from zeronn.activations import RELU
from zeronn.history import (
    Callback,
    EarlyStopping,
    History,
    TrainingInterrupted,
    early_stopping_config,
)
from zeronn.layers import BatchNorm
from zeronn.losses import Loss
from zeronn.network import Network
from zeronn.optim import (
    SGD,
    Adam,
    Constant,
    Optimizer,
    Schedule,
    get_optimizer,
    get_schedule,
)

__all__ = ["EarlyStopping", "History", "Trainer", "TrainingInterrupted", "fit"]

PROGRESS_CHECKS = 100  # per epoch at most: where the bar may move within an epoch
PROGRESS_SECONDS = 0.2  # and only when this long has passed since it last moved

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
                      validation_data: Any, net: Network) -> tuple[NDArray, NDArray, Any]:
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


class _DeadUnits:
    """Which hidden units fired this epoch, for ``dead_relu_fraction``.

    Only units that can die count: ReLU-family activations that output exactly 0 below
    the kink (leaky_relu and elu output negative values there and keep a gradient). Per
    batch each such layer's column maximum of its outputs is folded into ``alive``
    (> 0: the unit fired); for the built-in ReLU, whose outputs are >= 0, the column sum
    (one BLAS call with a ones vector) says the same, faster.
    """

    def __init__(self, net: Network, batch_rows: set[int], single: bool) -> None:
        probe = np.array([[-1.0]], net.dtype)
        layers = [layer for layer in net.layers[:-1] if layer.activation is not None
                  and layer.activation.relu_family and layer.activation(probe)[0, 0] == 0
                  and len(layer.output_shape) == 1]
        self.alive = np.zeros(sum(layer.output_shape[0] for layer in layers), net.dtype)
        self.entries = []
        start = 0
        for layer in layers:
            width = layer.output_shape[0]
            view = self.alive[start:start + width]
            self.entries.append((layer, np.zeros(width, net.dtype), view,
                                 layer.activation is RELU))
            start += width
        self.all_plain = all(plain for *_, plain in self.entries)
        self.ones = {m: np.ones(m, net.dtype) for m in batch_rows}
        self.single = single  # one batch an epoch: straight into `alive`, nothing to fold

    def start_epoch(self) -> None:
        if not self.single:
            self.alive.fill(0.0)

    def observe(self, rows: int) -> None:
        """Folds in the batch of ``rows`` rows that the layers' buffers hold now."""
        for layer, colmax, alive, plain in self.entries:
            a = layer.output
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
            self.xbufs = {m: np.empty((m, *X.shape[1:]), X.dtype) for m in self.rows}
            self.ybufs = {m: np.empty((m, *y.shape[1:]), y.dtype) for m in self.rows}
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
    if y.dtype.kind != "f":  # class indices: their values are checked by the network
        loss.sparse_step()
        return
    if loss.output_activation is not None and (y.min() < 0 or (
            loss.name == "binary_crossentropy" and y.max() > 1)):
        want = "[0, 1]" if loss.name == "binary_crossentropy" else ">= 0 (one-hot rows)"
        raise ValueError(f"{loss.name} needs targets in {want}; "
                         f"got values in [{y.min():g}, {y.max():g}]")


def fit(
    net: Network,
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
    engine: str = "auto",
    clip_grad_norm: float | None = None,
) -> History:
    """Trains ``net`` on X (n_samples, *input_shape) and y (n_samples, n_outputs) in place.

    Sequences: X (n, T, features), or token ids (n, T) for a network starting with an
    Embedding; y (n, T, n_outputs) per step, or class indices (n, T) (or (n,)) for a
    softmax output, -100 marking targets to skip (see ``Network.check_data``).

    ``loss``: a name or :class:`~zeronn.losses.Loss` that fits the output (a sigmoid
    output takes ``binary_crossentropy``, softmax ``categorical_crossentropy``, others a
    regression loss). ``optimizer``: a name, an :class:`~zeronn.optim.Optimizer`, or
    ``None`` to continue with the last fit's optimizer and its state (``Adam(lr=1e-3)``
    the first time). ``batch_size=None`` is full batch (the seed's way). ``shuffle``
    permutes the rows each epoch with one ``np.random.Generator``: from ``seed``, or, when
    ``seed`` is None, the network's own generator (so consecutive fits continue one random
    stream); Dropout's masks come from the same generator. ``validation_split`` holds out
    the *last* fraction of rows; ``validation_data`` is an explicit ``(X_val, y_val)``;
    validation losses are computed in evaluation mode. ``early_stopping``: True, a
    patience, or an :class:`EarlyStopping`. ``callbacks``: ``cb(epoch, history)`` (or an
    object with ``on_epoch_end(epoch, history)``) called after each epoch (``epoch`` counts
    from 1); a truthy return stops training. ``lr_schedule``: name or
    :class:`~zeronn.optim.Schedule`. ``verbose``: 0 silent, 1 a progress bar, 2 a line per
    epoch. ``sample_weight`` (n_samples,): each batch's loss becomes the weighted mean
    (integer weights equal repeated rows for a full batch). Returns this fit's
    :class:`History`; ``net.history`` holds every fit's.

    A loss or gradient that turns NaN or inf, or an update that would make a weight
    non-finite, raises ``ValueError`` before that step is applied: the weights stay as
    they were (all finite) and the optimizer's state is reset. Ctrl-C stops at the end
    of the current batch, keeps weights and history, and warns :class:`TrainingInterrupted`.

    ``clip_grad_norm``: rescales each batch's gradient so that its global L2 norm is at
    most this value, as ``torch.nn.utils.clip_grad_norm_`` (the factor
    ``max_norm / (norm + 1e-6)`` when below 1); ``History["grad_norm"]`` records the norms
    before clipping. Stateful recurrent layers start each epoch from a zero state.

    ``engine``: ``"auto"`` (default) trains small dense networks with the compiled epoch
    (the extra ``fast``, numba) where it is faster, ``"numpy"`` always with the NumPy
    reference loop, ``"compiled"`` with the compiled epoch or a ``ValueError`` saying why
    it cannot (see :mod:`zeronn.engine`). Both give the same results (to rounding);
    ``History.engine``/``History.engines`` say which ran. The compiled path checks Ctrl-C
    between its calls (a whole epoch, or a part of one, of about a tenth of a second).
    """
    trainer = _Trainer(net, X, y, loss, optimizer, epochs, batch_size, shuffle,
                       validation_split, validation_data, early_stopping, callbacks,
                       lr_schedule, verbose, seed, sample_weight, engine, clip_grad_norm)
    return trainer.run()


class _Trainer:
    """One fit: set-up (everything checked and allocated once), epochs, batches, records."""

    def __init__(self, net: Network, X: Any, y: Any, loss: str | Loss,
                 optimizer: str | Optimizer | None, epochs: int, batch_size: int | None,
                 shuffle: bool, validation_split: float, validation_data: Any,
                 early_stopping: Any, callbacks: Sequence[Callback],
                 lr_schedule: str | Schedule | None, verbose: int, seed: int | None,
                 sample_weight: Any, engine: str = "auto",
                 clip_grad_norm: float | None = None) -> None:
        # -- check everything before touching the network --------------------------------
        self.net, self.loss = net, net.check_loss(loss)
        Xc, yc = net.check_data(X, y)
        assert yc is not None
        _check_targets(self.loss, yc)
        self.epochs = positive_number("epochs", epochs, integer=True)
        self.clip = _max_norm(clip_grad_norm)
        self.engine = engines.check_engine(engine)
        if verbose not in (0, 1, 2) or isinstance(verbose, bool):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        self.verbose = verbose
        for cb in callbacks:
            if not callable(cb) and not hasattr(cb, "on_epoch_end"):
                raise ValueError(f"callback {cb!r} is not callable")
        self.callbacks = [getattr(cb, "on_epoch_end", cb) for cb in callbacks]
        weights = check_sample_weight(sample_weight, Xc.shape[0], net.dtype)
        stop_config = early_stopping_config(early_stopping)
        self.schedule = get_schedule(lr_schedule)
        Xt, yt, self.val = _split_validation(Xc, yc, validation_split, validation_data, net)
        if weights is not None:
            weights = weights[:Xt.shape[0]]
        n = Xt.shape[0]
        self.bs = n if batch_size is None else min(
            positive_number("batch_size", batch_size, integer=True), n)
        _check_batch_norm(net, n, self.bs)
        if shuffle and any(getattr(layer, "stateful", False) for _, layer in net.walk()):
            raise ValueError("a stateful recurrent layer carries its state from one batch to "
                             "the next, which shuffled batches would make meaningless: pass "
                             "shuffle=False (with batch k of each epoch continuing batch k of "
                             "the previous chunk of the series)")
        self.opt = _optimizer_of(net, optimizer)
        self.monitor = "val_loss" if self.val is not None else "loss"
        if stop_config is not None:
            if stop_config.monitor == "val_loss" and self.val is None:
                raise ValueError("early stopping monitors val_loss but there is no validation "
                                 "data: pass validation_split/validation_data or monitor='loss'")
            self.monitor = stop_config.monitor or self.monitor
        # -- set up: everything the batches need is allocated here, once -----------------
        net.optimizer = self.opt
        self.flat_p, self.flat_g = net.flat_params, net.flat_grads
        self.stopper = None if stop_config is None else _Stopper(stop_config, self.flat_p)
        self.rng = np.random.default_rng(seed) if seed is not None else net.rng
        self.batches = _Batches(Xt, yt, weights, self.bs, shuffle, self.rng)
        self.dead = _DeadUnits(net, self.batches.rows, single=len(self.batches) == 1)
        # each parameterised layer's gradient, for its norm
        self.gviews = [self.flat_g[sl] for sl in net.slices if sl.stop > sl.start]
        self.opt.prepare([self.flat_p], [self.flat_g])  # checked once; then unchecked steps
        self.opt.prepare_decay(net.decay_mask)
        # Plain SGD (no momentum, no weight decay): the backward pass computes the update
        # -lr * gradient itself (scaling the output gradient, a few numbers), so the step is
        # one pass over the parameters, p += g. The diagnostics divide the lr back out.
        self.fold_lr = type(self.opt) is SGD and not self.opt.momentum \
            and not self.opt.weight_decay
        self.limit = _norm_limit(net.dtype)
        self.history = History()
        self.appenders: list[tuple[str, Callable[[Any], None]]] = []
        # The bar moves within an epoch too (a big table's epoch takes seconds): every
        # `tick` batches the time is looked at, and the bar redrawn if it is due. 0: no bar.
        self.tick = max(1, len(self.batches) // PROGRESS_CHECKS) if verbose == 1 else 0
        self.bar: Any = None
        self.drawn = 0.0
        self._setup_engine(Xt, yt, weights, shuffle)

    # -- the compiled path (zeronn.engine) -------------------------------------------
    def _setup_engine(self, X: NDArray, y: NDArray, weights: NDArray | None,
                      shuffle: bool) -> None:
        """Decides the engine; for the compiled one, sets up its arrays (once)."""
        self.compiled: engines.CompiledFit | None = None
        self.pending = False  # "auto": the kernel compiles in the background meanwhile
        self.data = (X, y, weights)
        self.shuffled = shuffle
        self.span = 1  # epochs per kernel call, grown while calls stay short
        # Batches per kernel call within an epoch: all of them, unless the epoch is long.
        guess = engines.epoch_seconds(self.net, X.shape[0])
        self.batch_chunk = len(self.batches) if guess < 0.1 else max(
            1, int(len(self.batches) * 0.1 / guess))
        # Epochs go one by one through the kernel when something in Python must run
        # between them; otherwise several in one call (results are the same).
        self.per_epoch_python = (self.val is not None or bool(self.callbacks)
                                 or self.stopper is not None or self.verbose == 2
                                 or type(self.schedule).observe is not Schedule.observe)
        if self.engine == "numpy":
            return
        reason = engines.coverage(self.net, self.loss, self.opt)
        if reason is None and self.clip is not None:
            reason = "clip_grad_norm is not compiled"
        if reason is None and y.dtype.kind != "f":
            reason = "class-index targets are not compiled (one-hot rows are)"
        if reason is not None:
            if self.engine == "compiled":
                raise ValueError(f"engine='compiled' cannot train this fit: {reason}; use "
                                 f"engine='auto' (it takes the NumPy path here) or 'numpy'")
            return
        if self.engine == "compiled":
            engines.ensure_ready(self.net.dtype)
            self._make_compiled()
            return
        choice = engines.auto_choice(self.net, X.shape[0], len(self.batches), self.epochs)
        if choice == "compiled":
            self._make_compiled()
        elif choice == "later":
            engines.start_compiling(self.net.dtype)
            self.pending = True

    def _make_compiled(self) -> None:
        X, y, weights = self.data
        self.compiled = engines.CompiledFit(self.net, self.loss, self.opt, X, y, weights,
                                            self.bs)
        n = X.shape[0]
        self.identity = np.arange(n, dtype=np.int64).reshape(1, n)
        self.pending = False

    def _compiled_epochs(self, epoch: int, interrupted: list[bool], bar: Any) -> tuple[int, bool]:
        """Trains from ``epoch`` with the kernel: several epochs in one call, one epoch, or
        (a long epoch) its batches in calls of about a tenth of a second, checking Ctrl-C
        between calls. Returns (epochs recorded, whether training should stop)."""
        fit = self.compiled
        assert fit is not None
        nb = fit.n_batches
        k = 1
        if not self.per_epoch_python and self.batch_chunk >= nb:
            k = max(1, min(self.span, self.epochs - epoch, 1_000_000 // max(fit.X.shape[0], 1)))
        if type(self.schedule) is Constant:
            lrs = np.full(k, self.schedule.lr(epoch, self.opt.initial_lr))
        else:
            lrs = np.array([self.schedule.lr(e, self.opt.initial_lr)
                            for e in range(epoch, epoch + k)])
        rng_state = self.rng.bit_generator.state if k > 1 and self.shuffled else None
        perms = self._permutations(k)
        t0 = time.perf_counter()
        acc = layer_sq = None
        lo = 0
        while True:
            hi = nb if k > 1 else min(nb, lo + self.batch_chunk)
            start = time.perf_counter()
            acc, layer_sq, status = fit.run(lrs, lo, hi, perms, self.shuffled, acc, layer_sq)
            elapsed = time.perf_counter() - start
            code = int(status[0])
            self.opt.t += int(status[3])
            if code:
                self._compiled_failure(epoch, k, lrs, acc, layer_sq, status, rng_state, t0)
            self.opt.lr = float(lrs[-1])
            # Calls of about a tenth of a second: Ctrl-C and the bar stay responsive.
            if k > 1 or hi - lo == nb:
                per_epoch = elapsed / k
                self.span = max(1, min(self.span * 4, int(0.1 / max(per_epoch, 1e-9))))
                if per_epoch > 0.2:
                    self.batch_chunk = max(1, int(nb * 0.1 / per_epoch))
            else:
                per_batch = elapsed / (hi - lo)
                self.batch_chunk = max(1, min(nb, int(0.1 / max(per_batch, 1e-9))))
            lo = hi
            if interrupted[0] and k == 1:  # as the NumPy path: the epoch is not recorded
                self._interrupted(epoch, lo - 1)
                return 0, True
            if lo >= nb:
                break
            if self.tick:
                self._progress(epoch, lo - 1)
        assert acc is not None and layer_sq is not None
        if k == 1:
            record = self._compiled_record(0, float(lrs[0]), acc, layer_sq)
            self.history.engines.append("compiled")
            stop = self.after_epoch(epoch, record, bar, t0)
        else:
            self._record_many(epoch, k, lrs, acc, layer_sq, time.perf_counter() - t0, bar)
            stop = False
        if interrupted[0] and not stop:  # during several epochs in one call: all kept
            self._interrupted(epoch + k, -1)
            return k, True
        return k, stop

    def _permutations(self, k: int) -> NDArray:
        """The row order of the next ``k`` epochs: the same draws as the NumPy path's."""
        if not self.shuffled:
            return self.identity
        order = self.batches.order
        perms = np.empty((k, order.size), np.int64)
        for row in perms:
            np.copyto(row, order)
            self.rng.shuffle(row)
        return perms

    def _compiled_record(self, j: int, lr: float, acc: NDArray, layer_sq: NDArray,
                         ) -> dict[str, Any]:
        """Epoch ``j`` of a kernel call as the NumPy path's record."""
        total, wtotal, used, _, fired = acc[j].tolist()
        used = max(used, 1.0)
        sq = layer_sq[j].tolist()
        record: dict[str, Any] = {
            "loss": total / wtotal if wtotal else 0.0,
            "lr": lr,
            "grad_norm": math.sqrt(sum(sq) / used),
            "layer_grad_norms": [math.sqrt(v / used) for v in sq],
        }
        fit = self.compiled
        assert fit is not None
        if fit.n_dead_units:
            record["dead_relu_fraction"] = (fit.n_dead_units - int(fired)) / fit.n_dead_units
        return record

    def _record_many(self, epoch: int, k: int, lrs: NDArray, acc: NDArray, layer_sq: NDArray,
                     elapsed: float, bar: Any) -> None:
        """Records ``k`` epochs of one kernel call at once (nothing ran between them): the
        same formulas as :meth:`_compiled_record`, over arrays (a few microseconds an
        epoch count against the seed's whole epoch)."""
        if k == 0:
            return
        acc, sq = acc[:k], layer_sq[:k]
        total, wtotal = acc[:, 0], acc[:, 1]
        used = np.maximum(acc[:, 2], 1.0)[:, None]
        loss = np.divide(total, wtotal, out=np.zeros(k), where=wtotal != 0)
        history = self.history
        history.setdefault("loss", []).extend(loss.tolist())
        history.setdefault("lr", []).extend(lrs[:k].tolist())
        history.setdefault("grad_norm", []).extend(
            np.sqrt(sq.sum(axis=1) / used[:, 0]).tolist())
        history.setdefault("layer_grad_norms", []).extend(np.sqrt(sq / used).tolist())
        fit = self.compiled
        assert fit is not None
        if fit.n_dead_units:
            history.setdefault("dead_relu_fraction", []).extend(
                ((fit.n_dead_units - acc[:, 4]) / fit.n_dead_units).tolist())
        history.setdefault("time", []).extend([elapsed / k] * k)
        history.engines.extend(["compiled"] * k)
        if self.verbose == 1:
            bar.n = epoch + k - 1
            bar.update(1)
            self.drawn = time.perf_counter()
            bar.set_postfix({"loss": f"{history['loss'][-1]:.4g}"}, refresh=False)

    def _compiled_failure(self, epoch: int, k: int, lrs: NDArray, acc: NDArray,
                          layer_sq: NDArray, status: NDArray, rng_state: Any,
                          t0: float) -> None:
        """A step the kernel refused: record the epochs it finished, put the generator
        where the NumPy path would leave it, and raise the NumPy path's error."""
        code, failed, batch = int(status[0]), int(status[1]), int(status[2])
        if failed and k > 1:
            self._record_many(epoch, failed, lrs, acc, layer_sq, time.perf_counter() - t0,
                              self.bar)
        if rng_state is not None:
            self.rng.bit_generator.state = rng_state
            self._permutations(failed + 1)
        lr = float(lrs[failed])
        self.opt.lr = lr
        if code == 1:
            what = f"loss became {float(acc[failed, 3])}"
        elif code == 2:
            what = "the gradient became non-finite"
        else:
            what = "the weights became non-finite"
        _fail(self.opt, what, _place(epoch + failed, batch), lr)

    def run(self) -> History:
        net, history = self.net, self.history
        bar = self.bar = tqdm(total=self.epochs, unit="epoch", disable=self.verbose != 1,
                              leave=True, file=sys.stderr, dynamic_ncols=True)
        self.drawn = time.perf_counter()
        net.set_rng(self.rng)  # Dropout's masks: the fit's generator
        try:
            # Overflow inside a diverging step is reported once, by the finiteness checks.
            with _defer_sigint() as interrupted, np.errstate(over="ignore", invalid="ignore"):
                epoch = 0
                while epoch < self.epochs:
                    if self.pending and engines.is_ready(net.dtype):
                        self._make_compiled()  # switch at this epoch boundary
                    if self.compiled is not None:
                        done, stop = self._compiled_epochs(epoch, interrupted, bar)
                        epoch += done
                        if stop:
                            break
                        continue
                    t0 = time.perf_counter()
                    record = self.epoch(epoch, interrupted)
                    if record is None:
                        break
                    history.engines.append("numpy")
                    if self.after_epoch(epoch, record, bar, t0):
                        break
                    epoch += 1
        finally:
            history.engine = history.engines[-1] if history.engines else (
                "numpy" if self.compiled is None else "compiled")
            bar.close()
            net.set_rng(net.rng)
            if net.history is None:
                net.history = History()
            net.history.extend(history)
        if self.stopper is not None:
            self.stopper.restore()
        return history

    def _learning_rate(self, epoch: int) -> tuple[float, bool]:
        """The epoch's lr, set on the optimizer, and whether SGD's step is folded.

        Not folded for lr = 0 (a schedule may reach it) nor tiny ones: the scaled
        gradients' squares (the norms) would underflow in float32.
        """
        self.opt.lr = lr = self.schedule.lr(epoch, self.opt.initial_lr)
        return lr, self.fold_lr and lr >= 1e-6

    def epoch(self, epoch: int, interrupted: list[bool]) -> dict[str, Any] | None:
        """Trains one epoch (the batch step inline: it is the hot loop); its record, or None
        when Ctrl-C stopped it."""
        opt, flat_p, flat_g, gviews = self.opt, self.flat_p, self.flat_g, self.gviews
        lr, folded = self._learning_rate(epoch)
        scale = -lr if folded else 1.0
        unscale = 1.0 / (lr * lr) if folded else 1.0  # for the squared norms
        # No weight is ever written non-finite, without keeping a copy of the weights to
        # roll back to: |p + u| <= ||p|| + ||u|| elementwise, so while a running bound on
        # ||p|| plus the update's norm stays below `limit` the update is applied directly;
        # past it (a diverging run) the new weights are formed in the update's buffer and
        # checked first (_apply_checked). The limit keeps ||p||^2 finite too.
        limit = self.limit
        pnorm = math.sqrt(float(np.dot(flat_p, flat_p)))  # exact again each epoch
        loss_grad, loss_obj, dead, clip = self.net.loss_grad, self.loss, self.dead, self.clip
        self.net.reset_states()  # stateful layers: each epoch reads the series from its start
        updates, dot, isfinite = opt.updates_prepared, np.dot, math.isfinite
        params, grads = [flat_p], [flat_g]
        total = wtotal = 0.0
        used = 0  # batches with weight (zero-weight batches are skipped)
        layer_sq = [0.0] * len(gviews)
        dead.start_epoch()
        b = 0
        tick = self.tick
        for b, rows, xb, yb, wb in self.batches:
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
                _fail(opt, what, _place(epoch, b), lr)
            if clip is not None:
                gsq = _clip(flat_g, gsq, unscale, clip)
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
                pnorm = _apply_checked(flat_p, flat_g, opt, _place(epoch, b), lr)
            total += value * bw
            wtotal += bw
            used += 1
            if interrupted[0]:
                break
            if tick and b % tick == 0:
                self._progress(epoch, b)
        if interrupted[0]:
            self._interrupted(epoch, b)
            return None
        used = max(used, 1)
        return {
            "loss": total / wtotal if wtotal else 0.0,
            "lr": lr,
            "grad_norm": math.sqrt(sum(layer_sq) / used),
            "layer_grad_norms": [math.sqrt(v / used) for v in layer_sq],
        }

    def _progress(self, epoch: int, batch: int) -> None:
        """Moves the bar to the fraction of the epoch done, if it was last drawn long enough
        ago (a tenth of an epoch shows as e.g. ``3.1/200``)."""
        now = time.perf_counter()
        # The last batch is left to the epoch's end, which draws a whole number.
        if now - self.drawn >= PROGRESS_SECONDS and batch + 1 < len(self.batches):
            self.bar.n = round(epoch + (batch + 1) / len(self.batches), 2)
            self.bar.refresh()
            self.drawn = now

    def _interrupted(self, epoch: int, batch: int) -> None:
        self.history.interrupted = True
        warnings.warn(
            f"training interrupted at epoch {epoch + 1} (batch {batch + 1} of "
            f"{len(self.batches)}); the weights and the history of the "
            f"{self.history.epochs} completed epochs are kept",
            TrainingInterrupted, stacklevel=5)

    def after_epoch(self, epoch: int, record: dict[str, Any], bar: Any, t0: float) -> bool:
        """Validation, diagnostics, History, schedule, early stopping, callbacks, progress.

        ``t0``: when the epoch started (its time includes validation). True when training
        should stop.
        """
        history = self.history
        if self.val is not None:
            record["val_loss"] = self.net.eval_loss(self.val[0], self.val[1], self.loss, self.bs)
        if self.dead.entries and "dead_relu_fraction" not in record:  # compiled: has it
            record["dead_relu_fraction"] = self.dead.fraction()
        record["time"] = time.perf_counter() - t0
        if self.appenders:  # the same keys every epoch: append to the lists directly
            for key, append in self.appenders:
                append(record[key])
        else:
            ordered = {k: record[k] for k in ("loss", "lr", "grad_norm", "layer_grad_norms",
                                              "val_loss", "dead_relu_fraction", "time")
                       if k in record}
            history.append(**ordered)
            self.appenders = [(key, history[key].append) for key in ordered]
        metric = record[self.monitor]
        self.schedule.observe(metric)
        stop = self.stopper is not None and self.stopper.update(metric, epoch, history)
        for hook in self.callbacks:
            if hook(epoch + 1, history):
                stop = True
        if self.verbose == 2:
            print(_epoch_line(epoch + 1, self.epochs, record), flush=True)
        elif self.verbose == 1:
            bar.n = epoch  # whole epochs again (the batches may have moved it part way)
            bar.update(1)
            self.drawn = time.perf_counter()
            bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "val_loss")
                             if k in record}, refresh=False)
        return stop


def _optimizer_of(net: Network, optimizer: str | Optimizer | None) -> Optimizer:
    """The optimizer asked for; None: the network's last one (its state kept), else
    Adam(lr=1e-3)."""
    if optimizer is not None:
        return get_optimizer(optimizer)
    return net.optimizer if net.optimizer is not None else Adam(lr=1e-3)


def _max_norm(clip_grad_norm: Any) -> float | None:
    """``clip_grad_norm`` checked: None (no clipping) or a positive number."""
    if clip_grad_norm is None:
        return None
    return float(positive_number("clip_grad_norm", clip_grad_norm))


def _clip(flat_g: NDArray, gsq: float, unscale: float, max_norm: float) -> float:
    """torch.nn.utils.clip_grad_norm_ on the gradient buffer: scaled by
    ``max_norm / (norm + 1e-6)`` when that is below 1. ``gsq``: the buffer's squared norm,
    ``unscale`` turns it into the gradient's (the buffer may hold -lr * gradient); returns
    the buffer's new squared norm."""
    coef = max_norm / (math.sqrt(gsq * unscale) + 1e-6)
    if coef >= 1.0:
        return gsq
    flat_g *= coef
    return gsq * coef * coef


class Trainer:
    """Training one step at a time on batches the caller draws: nanoGPT's loop.

    ``fit`` walks a data set in epochs; a language model is trained instead for a number
    of iterations, each on a random batch (``zeronn.text.random_blocks``)::

        trainer = zn.Trainer(gpt, loss="categorical_crossentropy",
                             optimizer=zn.optim.AdamW(1e-3, betas=(0.9, 0.99),
                                                      weight_decay=0.1, decay="weights"),
                             lr_schedule=zn.optim.WarmupCosine(100, 2000, min_lr=1e-4),
                             clip_grad_norm=1.0, seed=0)
        for it in range(2000):
            x, y = zn.text.random_blocks(train, 64, 12, rng)
            loss = trainer.step(x, y)

    Each ``step`` is one forward and backward pass, the gradient clipped (as ``fit``'s
    ``clip_grad_norm``), the learning rate of step ``t`` from the schedule (``t`` counts
    from 0), and one optimizer update; ``history`` records ``loss``, ``lr`` and
    ``grad_norm`` (before clipping) per step. As in ``fit``, a non-finite loss, gradient or
    update raises ``ValueError`` with the weights left as they were. ``evaluate(x, y)`` is
    the evaluation-mode loss. ``seed``: the generator of Dropout's masks (default: the
    network's). The optimizer becomes the network's (saved with it).
    """

    def __init__(self, net: Network, loss: str | Loss = "mse",
                 optimizer: str | Optimizer | None = None,
                 lr_schedule: str | Schedule | None = None,
                 clip_grad_norm: float | None = None, seed: int | None = None) -> None:
        self.net, self.loss = net, net.check_loss(loss)
        self.opt = _optimizer_of(net, optimizer)
        self.schedule = get_schedule(lr_schedule)
        self.clip = _max_norm(clip_grad_norm)
        self.flat_p, self.flat_g = net.flat_params, net.flat_grads
        self.opt.prepare([self.flat_p], [self.flat_g])
        self.opt.prepare_decay(net.decay_mask)
        net.optimizer = self.opt
        if seed is not None:
            net.set_rng(np.random.default_rng(seed))
        self.limit = _norm_limit(net.dtype)
        self.t = 0  # steps taken
        self.history = History()

    def step(self, x: Any, y: Any) -> float:
        """One optimizer step on the batch (x, y); returns its loss (before the step)."""
        net, opt, flat_p, flat_g = self.net, self.opt, self.flat_p, self.flat_g
        xb, yb = net.check_data(x, y)
        assert yb is not None
        _check_targets(self.loss, yb)
        opt.lr = lr = self.schedule.lr(self.t, opt.initial_lr)
        with np.errstate(over="ignore", invalid="ignore"):
            value = net.loss_grad(xb, yb, self.loss)
            gsq = float(np.dot(flat_g, flat_g))
            if not (math.isfinite(value) and math.isfinite(gsq)):
                what = f"loss became {value}" if not math.isfinite(value) else \
                    "the gradient became non-finite"
                _fail(opt, what, f"step {self.t + 1}", lr)
            grad_norm = math.sqrt(gsq)
            if self.clip is not None:
                _clip(flat_g, gsq, 1.0, self.clip)
            opt.updates_prepared([flat_p], [flat_g])
            _apply_checked(flat_p, flat_g, opt, f"step {self.t + 1}", lr)
        self.t += 1
        self.history.append(loss=value, lr=lr, grad_norm=grad_norm)
        return value

    def evaluate(self, x: Any, y: Any) -> float:
        """The loss on (x, y) in evaluation mode (no dropout), no gradient kept."""
        xb, yb = self.net.check_data(x, y)
        assert yb is not None
        return self.net.eval_loss(xb, yb, self.loss)


def _check_batch_norm(net: Network, n: int, bs: int) -> None:
    """A BatchNorm cannot train on a batch of 1 row: say so before the first epoch."""
    if any(isinstance(layer, BatchNorm) and len(layer.input_shape) == 1
           for _, layer in net.walk()) and (bs == 1 or n % bs == 1):
        rows = "every batch has" if bs == 1 else f"the last batch of each epoch ({n} rows "\
            f"in batches of {bs}) has"
        raise ValueError(f"BatchNorm needs at least 2 rows per training batch, but {rows} "
                         f"1 row: choose another batch_size (e.g. {bs + 1})")


def _norm_limit(dtype: np.dtype) -> float:
    """Below this bound on ``||p|| + ||update||`` no new weight can be non-finite."""
    return 0.5 * math.sqrt(float(np.finfo(dtype).max))


def _apply_checked(flat_p: NDArray, flat_g: NDArray, opt: Optimizer, place: str,
                   lr: float) -> float:
    """``flat_p += flat_g`` only if every new weight is finite; returns the new ``||p||``.

    The new weights are formed in the update's buffer, checked, then copied: the weights
    are never left half updated.
    """
    np.add(flat_p, flat_g, out=flat_g)
    sq = float(np.dot(flat_g, flat_g))
    if not math.isfinite(sq):
        _fail(opt, "the weights became non-finite", place, lr)
    np.copyto(flat_p, flat_g)
    return math.sqrt(sq)


def _place(epoch: int, batch: int) -> str:
    """Where a fit failed, for its message (both counted from 0)."""
    return f"epoch {epoch + 1} (batch {batch + 1})"


def _fail(opt: Optimizer, what: str, place: str, lr: float) -> NoReturn:
    """Resets the optimizer and raises the user's error; the weights were not touched.

    The optimizer's moments already took the failed step, so they are reset (its lr back
    to the initial one) rather than left to mismatch the weights.
    """
    opt.reset()
    raise ValueError(
        f"{what} at {place} with lr={lr:g}: the learning rate "
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
