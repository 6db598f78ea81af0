"""What ``fit`` records and the hooks that act between epochs: History, EarlyStopping.

``fit`` calls each callback after every epoch as ``cb(epoch, history)`` (or
``cb.on_epoch_end(epoch, history)`` when it has that method); a truthy return stops
training. :class:`EarlyStopping` is the built-in one with its own rule (monitored loss,
patience, best weights restored), run by the fit loop itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from zeronn._validation import non_negative_number, positive_number

__all__ = ["Callback", "EarlyStopping", "History", "TrainingInterrupted", "early_stopping_config"]

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
    (1-based, with early stopping), ``interrupted``, and which path trained it:
    ``engines`` (``"numpy"`` or ``"compiled"`` per epoch: ``engine="auto"`` may start on
    NumPy while the compiled epoch is being prepared and switch at an epoch boundary) and
    ``engine`` (the path of the last epoch, or of the fit when it recorded none).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped_early = False
        self.interrupted = False
        self.best_epoch: int | None = None
        self.engine: str | None = None
        self.engines: list[str] = []

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.get("loss", []))

    def append(self, **values: Any) -> None:
        for k, v in values.items():
            self.setdefault(k, []).append(v)

    def extend(self, other: History) -> None:
        """Appends another history's epochs (a later ``fit`` of the same network).

        The flags become the later fit's, its ``best_epoch`` counted in the combined epochs.
        """
        offset = self.epochs
        for k, v in other.items():
            self.setdefault(k, []).extend(v)
        self.stopped_early, self.interrupted = other.stopped_early, other.interrupted
        self.best_epoch = None if other.best_epoch is None else offset + other.best_epoch
        self.engines = self.engines + other.engines
        self.engine = other.engine

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


def early_stopping_config(value: Any) -> EarlyStopping | None:
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
