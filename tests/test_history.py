"""History and EarlyStopping: records per epoch, a network's history over several fits,
the early-stopping settings and their errors."""

from __future__ import annotations

import numpy as np
import pytest

import zeronn as zn
from zeronn.history import EarlyStopping, History, early_stopping_config


def test_append_extend_epochs_and_repr() -> None:
    h = History()
    assert h.epochs == 0 and repr(h) == "History(epochs=0, keys=[], last_loss=None)"
    h.append(loss=2.0, lr=0.1)
    h.append(loss=1.5, lr=0.1)
    assert h.epochs == 2 and h["loss"] == [2.0, 1.5]
    assert repr(h) == "History(epochs=2, keys=['loss', 'lr'], last_loss=1.5)"
    later = History(loss=[1.0], val_loss=[1.2])
    h.extend(later)
    assert h["loss"] == [2.0, 1.5, 1.0] and h["val_loss"] == [1.2] and h.epochs == 3
    assert not h.stopped_early and not h.interrupted and h.best_epoch is None


def test_extend_carries_the_later_fits_flags_in_the_combined_numbering() -> None:
    h = History(loss=[3.0, 2.0])
    later = History(loss=[1.0, 0.5, 0.7])
    later.stopped_early, later.best_epoch = True, 2
    h.extend(later)
    assert h.stopped_early and h.best_epoch == 4  # epoch 2 of the later fit, 4 overall
    last = History(loss=[0.6])
    last.interrupted = True
    h.extend(last)
    assert h.interrupted and not h.stopped_early and h.best_epoch is None


def test_the_networks_history_keeps_early_stopping() -> None:
    """A bug: net.history dropped stopped_early and best_epoch (and so did model files)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    net = zn.MLP([3, 8, 1], seed=0)
    first = net.fit(X, y, epochs=5, batch_size=8)
    stop = EarlyStopping(patience=2, min_delta=0.01, monitor="loss")
    second = net.fit(X, y, epochs=500, batch_size=8, early_stopping=stop)
    assert second.stopped_early and second.best_epoch is not None
    assert net.history is not None and net.history.epochs == first.epochs + second.epochs
    assert net.history.stopped_early
    assert net.history.best_epoch == first.epochs + second.best_epoch
    assert net.history["loss"][net.history.best_epoch - 1] == \
        second["loss"][second.best_epoch - 1]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"patience": 0}, "patience must be a positive integer"),
    ({"patience": 2.5}, "patience must be a positive integer"),
    ({"min_delta": -1.0}, "min_delta"),
    ({"monitor": "accuracy"}, "monitor must be 'loss' or 'val_loss', got 'accuracy'"),
])
def test_early_stopping_settings_are_checked(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_early_stopping_config_and_repr() -> None:
    assert early_stopping_config(None) is None and early_stopping_config(False) is None
    default = early_stopping_config(True)
    assert isinstance(default, EarlyStopping) and default.patience == 10
    assert early_stopping_config(np.int64(3)).patience == 3  # type: ignore[union-attr]
    mine = EarlyStopping(patience=4, min_delta=0.5, restore_best=False, monitor="loss")
    assert early_stopping_config(mine) is mine
    assert repr(mine) == ("EarlyStopping(patience=4, min_delta=0.5, restore_best=False, "
                          "monitor='loss')")
    for bad in ("yes", 1.5, [3]):
        with pytest.raises(ValueError, match="early_stopping must be None, True, a patience"):
            early_stopping_config(bad)
