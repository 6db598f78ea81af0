"""The fit loop: the seed trajectory, batching, validation, early stopping, callbacks,
schedules, diagnostics, and failing safe (non-finite loss, Ctrl-C)."""

from __future__ import annotations

import math
import os
import signal
import threading
import warnings

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn.classic import mse_loss
from zeronn.training import EarlyStopping, History, TrainingInterrupted


def _regression(rng: np.random.Generator, n: int = 64, d: int = 3, k: int = 1):
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, k))
    return X, np.tanh(X @ W) + 0.05 * rng.standard_normal((n, k))


# -- the seed, through the engine ---------------------------------------------------------
def test_engine_equals_seed_every_epoch(seed_problem):
    """Seed weights, mse, SGD(lr=0.05), full batch, no shuffle: the seed's loss, all 1000 epochs."""
    X, y, nn = seed_problem
    net = zn.MLP.from_classic(nn)
    hist = net.fit(X, y, loss="mse", optimizer=zn.optim.SGD(lr=0.05), epochs=1000,
                   batch_size=None, shuffle=False)
    seed_losses = []
    for _ in range(1000):
        y_pred = nn.forward(X)
        seed_losses.append(mse_loss(y, y_pred))
        nn.backward(X, y, y_pred, 0.001)
    ours, theirs = np.array(hist["loss"]), np.array(seed_losses)
    assert ours.shape == (1000,)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=0)
    # and the weights end where the seed's do
    for a, b in zip(net.params, [nn.W1, nn.b1, nn.W2, nn.b2]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert [f"{v:.4f}" for v in ours[::100]] == ["10.1670", "0.0126", "0.0112", "0.0105",
                                                 "0.0101", "0.0098", "0.0096", "0.0094",
                                                 "0.0093", "0.0092"]


def test_full_batch_loss_is_loss_before_update(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 4, 1], seed=0)
    before, _ = net.loss_and_gradients(X, y)
    hist = net.fit(X, y, optimizer=zn.optim.SGD(lr=0.1), epochs=1, batch_size=None)
    assert hist["loss"][0] == pytest.approx(before, rel=1e-12)
    after, _ = net.loss_and_gradients(X, y)
    assert after < before


def test_epoch_loss_is_weighted_mean_of_batch_losses(rng):
    X, y = _regression(rng, n=10)
    net = zn.MLP([3, 4, 1], seed=0)
    ref = net.copy()
    opt = zn.optim.SGD(lr=0.01)
    hist = net.fit(X, y, optimizer=opt, epochs=1, batch_size=4, shuffle=False)
    # replay by hand: batches of 4, 4, 2
    ref_opt = zn.optim.SGD(lr=0.01)
    total = 0.0
    for s in (0, 4, 8):
        v, g = ref.loss_and_gradients(X[s:s + 4], y[s:s + 4])
        ref_opt.step(ref.params, g)
        total += v * len(X[s:s + 4])
    assert hist["loss"][0] == pytest.approx(total / 10, rel=1e-12)
    for a, b in zip(net.params, ref.params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_shuffle_is_reproducible_with_seed_and_differs_without_shuffle(rng):
    X, y = _regression(rng)
    runs = []
    for shuffle, seed in [(True, 3), (True, 3), (True, 4), (False, 3)]:
        net = zn.MLP([3, 8, 1], seed=0)
        net.fit(X, y, optimizer=zn.optim.SGD(lr=0.05), epochs=3, batch_size=8,
                shuffle=shuffle, seed=seed)
        runs.append(net.predict(X))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0], runs[3])


def test_second_fit_continues_weights_and_optimizer_state(rng):
    X, y = _regression(rng)
    one = zn.MLP([3, 8, 1], seed=0)
    one.fit(X, y, optimizer=zn.optim.Adam(lr=0.01), epochs=6, batch_size=16, shuffle=False)
    two = zn.MLP([3, 8, 1], seed=0)
    two.fit(X, y, optimizer=zn.optim.Adam(lr=0.01), epochs=3, batch_size=16, shuffle=False)
    h = two.fit(X, y, optimizer=None, epochs=3, batch_size=16, shuffle=False)
    assert len(h["loss"]) == 3 and two.history is not None and two.history.epochs == 6
    for a, b in zip(one.params, two.params):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert two.optimizer is not None and two.optimizer.t == 6 * 4  # 4 batches an epoch


def test_seedless_fits_continue_one_random_stream(rng):
    X, y = _regression(rng)
    a = zn.MLP([3, 8, 1], seed=5)
    a.fit(X, y, optimizer=zn.optim.SGD(lr=0.05), epochs=4, batch_size=8)
    b = zn.MLP([3, 8, 1], seed=5)
    b.fit(X, y, optimizer=zn.optim.SGD(lr=0.05), epochs=2, batch_size=8)
    b.fit(X, y, optimizer=None, epochs=2, batch_size=8)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-12)


def test_default_optimizer_is_adam_1e3(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 4, 1], seed=0)
    net.fit(X, y, epochs=1)
    assert isinstance(net.optimizer, zn.optim.Adam) and net.optimizer.lr == 1e-3


def test_optimizer_by_name(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 4, 1], seed=0)
    net.fit(X, y, optimizer="rmsprop", epochs=1)
    assert isinstance(net.optimizer, zn.optim.RMSProp)


def test_training_reduces_loss_for_every_loss_pair(rng):
    X = rng.standard_normal((120, 4))
    labels = (X[:, 0] + X[:, 1] > 0).astype(int)
    cases = [
        ("mse", "identity", X[:, :1] * 2 - X[:, 1:2]),
        ("mae", "identity", X[:, :1] * 2 - X[:, 1:2]),
        ("huber", "identity", X[:, :1] * 2 - X[:, 1:2]),
        ("binary_crossentropy", "sigmoid", labels.reshape(-1, 1).astype(float)),
        ("categorical_crossentropy", "softmax", np.eye(2)[labels]),
    ]
    for loss, out, y in cases:
        net = zn.MLP([4, 16, y.shape[1]], "tanh", out, seed=0)
        hist = net.fit(X, y, loss=loss, optimizer=zn.optim.Adam(lr=0.01), epochs=60,
                       batch_size=32, seed=0)
        assert hist["loss"][-1] < 0.5 * hist["loss"][0], loss


def test_float32_stays_float32(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 8, 1], dtype="float32", seed=0)
    net.fit(X.astype(np.float32), y.astype(np.float32), epochs=2, batch_size=16)
    assert all(p.dtype == np.float32 for p in net.params)
    assert net.predict(X).dtype == np.float32
    opt = net.optimizer
    assert opt is not None
    assert all(a.dtype == np.float32 for s in opt.state for a in s.values())


# -- validation, early stopping, callbacks, schedules ----------------------------------
def test_validation_split_holds_out_last_rows(rng):
    X, y = _regression(rng, n=50)
    net = zn.MLP([3, 4, 1], seed=0)
    ref = net.copy()
    hist = net.fit(X, y, epochs=2, validation_split=0.2, batch_size=None,
                   optimizer=zn.optim.SGD(lr=0.01))
    assert len(hist["val_loss"]) == 2
    # the recorded val_loss is the held-out (last 10 rows) loss after the epoch's update
    ref.fit(X[:40], y[:40], epochs=2, batch_size=None, optimizer=zn.optim.SGD(lr=0.01))
    v, _ = ref.loss_and_gradients(X[40:], y[40:])
    assert hist["val_loss"][-1] == pytest.approx(v, rel=1e-12)


def test_validation_data_explicit(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 4, 1], seed=0)
    hist = net.fit(X, y, epochs=3, validation_data=(X[:10], y[:10]))
    assert len(hist["val_loss"]) == 3
    v, _ = net.loss_and_gradients(X[:10], y[:10])
    assert hist["val_loss"][-1] == pytest.approx(v, rel=1e-12)


def test_early_stopping_stops_and_restores_best(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 16, 1], seed=0)
    # validation targets of the opposite sign: learning the training data makes them worse,
    # so the best epoch comes early and training stops `patience` epochs after it
    Xv, yv = X[48:], -y[48:]
    hist = net.fit(X[:48], y[:48], optimizer=zn.optim.Adam(lr=0.01), epochs=200,
                   batch_size=8, validation_data=(Xv, yv),
                   early_stopping=EarlyStopping(patience=3, restore_best=True))
    assert hist.stopped_early and hist.epochs < 200
    best = int(np.argmin(hist["val_loss"]))
    assert hist.best_epoch == best + 1
    assert hist.epochs == hist.best_epoch + 3
    v, _ = net.loss_and_gradients(Xv, yv)
    assert v == pytest.approx(hist["val_loss"][best], rel=1e-12)


def test_early_stopping_min_delta_and_int_patience(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 8, 1], seed=0)
    hist = net.fit(X, y, epochs=100, early_stopping=2, validation_split=0.2)
    hist2 = zn.MLP([3, 8, 1], seed=0).fit(
        X, y, epochs=100, validation_split=0.2,
        early_stopping=EarlyStopping(patience=2, min_delta=1.0))
    assert hist2.epochs == 3  # nothing improves by 1.0 after the first epoch: 1 + patience
    assert hist.epochs >= hist2.epochs


def test_early_stopping_without_validation_needs_monitor_loss(rng):
    X, y = _regression(rng)
    with pytest.raises(ValueError, match="no validation data"):
        zn.MLP([3, 4, 1]).fit(X, y, early_stopping=EarlyStopping(monitor="val_loss"))
    hist = zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=5, early_stopping=3)
    assert "val_loss" not in hist


def test_callback_receives_history_and_can_stop(rng):
    X, y = _regression(rng)
    seen = []

    def cb(epoch: int, history: History) -> bool:
        seen.append((epoch, len(history["loss"])))
        return epoch == 4

    hist = zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=50, callbacks=[cb])
    assert seen == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert hist.epochs == 4


def test_callback_object_with_on_epoch_end(rng):
    X, y = _regression(rng)

    class Stopper:
        def on_epoch_end(self, epoch: int, history: History) -> bool:
            return epoch >= 2

    assert zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=9, callbacks=[Stopper()]).epochs == 2


@pytest.mark.parametrize(("schedule", "expected"), [
    (zn.optim.StepLR(step_size=2, gamma=0.5), [0.1, 0.1, 0.05, 0.05, 0.025]),
    (zn.optim.ExponentialLR(gamma=0.5), [0.1, 0.05, 0.025, 0.0125, 0.00625]),
    (zn.optim.CosineAnnealingLR(T_max=4), [0.1 * (1 + math.cos(math.pi * e / 4)) / 2
                                           for e in range(5)]),
    ("constant", [0.1] * 5),
])
def test_lr_schedules_recorded_in_history(rng, schedule, expected):
    X, y = _regression(rng)
    hist = zn.MLP([3, 4, 1], seed=0).fit(X, y, optimizer=zn.optim.SGD(lr=0.1), epochs=5,
                                         lr_schedule=schedule)
    np.testing.assert_allclose(hist["lr"], expected, rtol=1e-12, atol=1e-15)


def test_reduce_on_plateau_cuts_lr_when_stuck(rng):
    X, y = _regression(rng)
    sched = zn.optim.ReduceLROnPlateau(factor=0.5, patience=1, threshold=10.0)
    hist = zn.MLP([3, 4, 1], seed=0).fit(X, y, optimizer=zn.optim.SGD(lr=0.1), epochs=6,
                                         lr_schedule=sched)
    # threshold 10 means "never an improvement", not even against the initial best of inf
    # (as torch: inf * (1 - 10) = -inf): 2 bad epochs > patience 1 halve the lr each time
    assert hist["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


# -- diagnostics --------------------------------------------------------------------------
def test_grad_norm_matches_gradients_full_batch(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 4, 1], seed=0)
    _, grads = net.loss_and_gradients(X, y)
    hist = net.fit(X, y, optimizer=zn.optim.SGD(lr=0.01), epochs=1, batch_size=None)
    total = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert hist["grad_norm"][0] == pytest.approx(total, rel=1e-12)
    per_layer = [math.sqrt(float((grads[2 * i] ** 2).sum() + (grads[2 * i + 1] ** 2).sum()))
                 for i in range(2)]
    assert hist["layer_grad_norms"][0] == pytest.approx(per_layer, rel=1e-12)


def test_dead_relu_fraction(rng):
    X = np.abs(rng.standard_normal((40, 2)))
    y = rng.standard_normal((40, 1))
    net = zn.MLP([2, 4, 1], seed=0)
    # units 0 and 1 can never fire on positive inputs: negative weights, negative bias
    W1 = np.abs(net.params[0])
    W1[:, :2] *= -1
    b1 = np.zeros((1, 4))
    b1[0, :2] = -1.0
    net.set_params([W1, b1, net.params[2], net.params[3]])
    hist = net.fit(X, y, optimizer=zn.optim.SGD(lr=1e-4), epochs=2, batch_size=8)
    assert hist["dead_relu_fraction"] == [0.5, 0.5]
    assert "dead_relu_fraction" not in zn.MLP([2, 3, 1], "tanh").fit(X, y, epochs=1)


def test_verbose_2_prints_a_line_per_epoch(rng, capsys):
    X, y = _regression(rng)
    zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, verbose=2, validation_split=0.25)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Epoch 1/3 - loss: ")
    for key in ("val_loss:", "lr:", "grad_norm:", "dead_relu:"):
        assert key in lines[0]


def test_verbose_1_progress_bar_on_stderr(rng, capsys):
    X, y = _regression(rng)
    zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=3, verbose=1)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err and "loss" in captured.err


def test_progress_bar_moves_within_an_epoch(rng, capsys, monkeypatch):
    """Every due check draws the share of the epoch done (throttle off here), and the
    epoch ends on a whole number, so the bar reads 1.5/2 mid-way and 2/2 at the end."""
    import zeronn.training as training

    monkeypatch.setattr(training, "PROGRESS_SECONDS", 0.0)
    X, y = _regression(rng)  # 40 rows: batches of 4 -> 10 a epoch
    zn.MLP([3, 4, 1], seed=0).fit(X[:40], y[:40], epochs=2, batch_size=4, verbose=1)
    err = capsys.readouterr().err
    assert "0.5/2" in err and "1.5/2" in err and "2/2" in err
    assert "2.0/2" not in err


def test_progress_checks_are_throttled(rng, capsys, monkeypatch):
    """With the default throttle a fast epoch never draws a part of itself."""
    X, y = _regression(rng)
    zn.MLP([3, 4, 1], seed=0).fit(X[:40], y[:40], epochs=2, batch_size=4, verbose=1)
    err = capsys.readouterr().err
    assert "0.5/2" not in err and "2/2" in err


def test_verbose_0_is_silent(rng, capsys):
    X, y = _regression(rng)
    zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=3)
    assert capsys.readouterr() == ("", "")


# -- failing safe -------------------------------------------------------------------------
def test_non_finite_loss_stops_with_epoch_and_keeps_the_last_finite_weights(rng):
    X, y = _regression(rng)
    y = y * 1e3
    net = zn.MLP([3, 16, 16, 1], seed=0)
    snapshots = []

    def keep(epoch, history):
        snapshots.append([p.copy() for p in net.params])

    # Full batch: one step an epoch, so the weights before the failing step are the
    # weights at the end of the previous epoch, which the callback saw.
    with pytest.raises(ValueError, match=r"at epoch (\d+).*smaller.*before this step") as info:
        net.fit(X, y, optimizer=zn.optim.SGD(lr=10.0), epochs=500, batch_size=None,
                callbacks=[keep])
    msg = str(info.value)
    epoch = int(msg.split("at epoch ")[1].split()[0])
    assert "lr=10" in msg and epoch > 1
    assert all(np.isfinite(p).all() for p in net.params)
    assert net.history is not None and net.history.epochs == epoch - 1
    assert len(snapshots) == epoch - 1
    for a, b in zip(net.params, snapshots[-1]):
        np.testing.assert_array_equal(a, b)


def test_mini_batch_failure_keeps_finite_weights(rng):
    X, y = _regression(rng)
    net = zn.MLP([3, 16, 16, 1], seed=0)
    for opt in (zn.optim.SGD(lr=10.0), zn.optim.Adam(lr=1e3), zn.optim.RMSProp(lr=1e3)):
        with pytest.raises(ValueError, match="before this step"):
            net.fit(X, y * 1e3, optimizer=opt, epochs=500, batch_size=8)
        assert all(np.isfinite(p).all() for p in net.params)


@settings(max_examples=examples(40, "ZERONN_FAILSAFE_EXAMPLES"), deadline=None)
@given(name=st.sampled_from(["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                             "adamw"]),
       log_lr=st.floats(-2, 300), scale=st.sampled_from([1.0, 1e3, 1e150]),
       dtype=st.sampled_from(["float64", "float32"]))
def test_fit_never_leaves_non_finite_weights(name, log_lr, scale, dtype):
    """Any optimizer, any learning rate up to 1e300, targets up to 1e150: fit either ends
    with finite weights or raises ValueError with the weights of before the failing step
    (full batch: one step an epoch, so those are the last epoch's, or the initial ones)."""
    lr = 10.0 ** log_lr
    opt = {"sgd": lambda: zn.optim.SGD(lr=lr),
           "momentum": lambda: zn.optim.SGD(lr=lr, momentum=0.9),
           "nesterov": lambda: zn.optim.SGD(lr=lr, momentum=0.9, nesterov=True),
           "adagrad": lambda: zn.optim.AdaGrad(lr=lr),
           "rmsprop": lambda: zn.optim.RMSProp(lr=lr, momentum=0.5, centered=True),
           "adam": lambda: zn.optim.Adam(lr=lr),
           "adamw": lambda: zn.optim.AdamW(lr=lr)}[name]()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3))
    y = np.tanh(X[:, :1]) * min(scale, 1e30 if dtype == "float32" else scale)
    net = zn.MLP([3, 8, 1], dtype=dtype, seed=0)
    last = [p.copy() for p in net.params]

    def keep(epoch, history):
        last[:] = [p.copy() for p in net.params]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning escapes either
        try:
            net.fit(X, y, optimizer=opt, epochs=5, batch_size=None, callbacks=[keep])
            event("trained")
        except ValueError as exc:
            event("refused a step")
            assert "smaller" in str(exc) and "before this step" in str(exc)
            for a, b in zip(net.params, last):
                np.testing.assert_array_equal(a, b)
    assert all(np.isfinite(p).all() for p in net.params)


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
def test_checked_update_path_gives_the_same_weights(rng, monkeypatch, opt):
    """Past the norm bound the update is formed in its buffer, checked, then copied: the
    same arithmetic as the direct ``p += update``, so the same weights to the bit."""
    from zeronn import training

    X, y = _regression(rng, n=64)
    make = {"sgd": lambda: zn.optim.SGD(lr=0.01),
            "momentum": lambda: zn.optim.SGD(lr=0.01, momentum=0.9),
            "adam": lambda: zn.optim.Adam(lr=0.01)}[opt]
    direct = zn.MLP([3, 8, 1], seed=0)
    direct.fit(X, y, optimizer=make(), epochs=3, batch_size=16, seed=0)
    monkeypatch.setattr(training, "_norm_limit", lambda dtype: 0.0)  # always check first
    checked = zn.MLP([3, 8, 1], seed=0)
    checked.fit(X, y, optimizer=make(), epochs=3, batch_size=16, seed=0)
    for a, b in zip(direct.params, checked.params):
        np.testing.assert_array_equal(a, b)


def test_overflow_in_the_last_update_is_caught():
    """A found bug: the check looked only at each batch's loss, so an update that overflowed
    the weights in the very last step returned inf weights without a word."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 2)) * 100, rng.standard_normal((20, 1))
    net = zn.MLP([2, 3, 1], seed=0)
    before = [p.copy() for p in net.params]
    # (momentum: plain SGD folds -lr into the gradients, which would overflow first)
    with pytest.raises(ValueError, match="the weights became non-finite at epoch 1"):
        net.fit(X, y, optimizer=zn.optim.SGD(lr=1e306, momentum=0.5), epochs=1,
                batch_size=None)
    for a, b in zip(net.params, before):
        np.testing.assert_array_equal(a, b)


def test_failure_resets_the_optimizer_state():
    """After a refused step the optimizer's moments belong to the abandoned trajectory: they are
    reset, so a later fit(optimizer=None) starts them afresh from the kept weights."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1)) * 1e3
    net = zn.MLP([3, 16, 16, 1], seed=0)
    opt = zn.optim.SGD(lr=10.0, momentum=0.9)
    with pytest.raises(ValueError, match="optimizer state was reset"):
        net.fit(X, y, optimizer=opt, epochs=500, batch_size=8)
    assert opt.t == 0 and opt.state == [] and opt.lr == 10.0


def test_zero_weight_batches_do_not_dilute_the_gradient_norm():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    w = np.r_[np.ones(8), np.zeros(8)]
    a = zn.MLP([3, 4, 1], seed=0)
    b = a.copy()
    ha = a.fit(X, y, sample_weight=w, optimizer=zn.optim.SGD(lr=0.01), epochs=1,
               batch_size=8, shuffle=False)
    hb = b.fit(X[:8], y[:8], optimizer=zn.optim.SGD(lr=0.01), epochs=1, batch_size=8)
    assert ha["grad_norm"] == pytest.approx(hb["grad_norm"], rel=1e-12)
    assert ha["loss"] == pytest.approx(hb["loss"], rel=1e-12)


def test_ctrl_c_stops_at_end_of_batch_and_keeps_progress(rng):
    X, y = _regression(rng, n=256)
    net = zn.MLP([3, 8, 1], seed=0)
    calls = []

    def interrupt(epoch, history):
        calls.append(epoch)
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = net.fit(X, y, epochs=50, batch_size=16, callbacks=[interrupt])
    assert any(issubclass(w.category, TrainingInterrupted) for w in caught)
    assert hist.interrupted
    # the signal lands after epoch 2's callback: epoch 3's first batch is the last one run
    assert hist.epochs == 2
    assert net.optimizer is not None and net.optimizer.t == 2 * 16 + 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_fit_in_a_thread_works_without_signal_handler(rng):
    X, y = _regression(rng)
    out = {}

    def run():
        out["h"] = zn.MLP([3, 4, 1], seed=0).fit(X, y, epochs=2)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert out["h"].epochs == 2


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"epochs": -3}, "epochs must be a positive integer"),
    ({"epochs": 2.5}, "epochs must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": float("nan")}, "batch_size must be a positive integer"),
    ({"optimizer": "adamx"}, r"unknown optimizer 'adamx'; known: adagrad, adam, adamw"),
    ({"loss": "hinge"}, r"unknown loss 'hinge'; known: binary_crossentropy"),
    ({"validation_split": 1.5}, "validation_split must be in"),
    ({"validation_split": -0.1}, "validation_split must be a finite number"),
    ({"verbose": 5}, "verbose must be 0, 1 or 2"),
    ({"lr_schedule": "cyclic"}, "unknown learning-rate schedule"),
    ({"early_stopping": "yes"}, "early_stopping must be"),
    ({"validation_data": (np.zeros((2, 3)),)}, "validation_data must be a pair"),
    ({"loss": "binary_crossentropy"}, "needs output_activation='sigmoid'"),
    ({"sample_weight": np.ones(5)}, r"sample_weight has shape \(5,\)"),
    ({"sample_weight": -np.ones(64)}, "negative"),
])
def test_fit_rejects_bad_options(rng, kwargs, match):
    X, y = _regression(rng)
    with pytest.raises(ValueError, match=match):
        zn.MLP([3, 4, 1]).fit(X, y, **kwargs)


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf")])
def test_optimizer_rejects_bad_lr(lr):
    with pytest.raises(ValueError, match="lr must be a positive finite number"):
        zn.optim.SGD(lr=lr)


def test_cross_entropy_targets_checked(rng):
    X = rng.standard_normal((10, 3))
    with pytest.raises(ValueError, match=r"needs targets in \[0, 1\]"):
        zn.MLP([3, 4, 1], output_activation="sigmoid").fit(
            X, np.full(10, 2.0), loss="binary_crossentropy")


# -- memory: the hot loop allocates nothing per step; fit's peak stays within budget -----
# Timing lives in benchmarks/run.py; these check the allocation rules the speed relies on.
def _mlp_problem(n: int, d: int, dtype: str = "float64"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    return X, np.tanh(X[:, :1]) + 0.1 * rng.standard_normal((n, 1)).astype(dtype)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_steady_state_training_allocates_nothing_per_step(dtype, opt):
    """200 steps (epochs 2 to 22, 10 shuffled batches each) under tracemalloc: memory grows
    only by History's few numbers per epoch, and no temporary is anywhere near the size of
    one batch's activations (numpy's fixed 8192-element iterator buffer is the largest)."""
    import tracemalloc

    X, y = _mlp_problem(2560, 16, dtype)
    net = zn.MLP([16, 128, 128, 1], dtype=dtype, seed=0)
    optimizer = zn.optim.SGD(lr=1e-3) if opt == "sgd" else zn.optim.Adam(lr=1e-3)
    marks: list[tuple[int, int]] = []

    def mark(epoch, history):
        if epoch in (2, 22):
            marks.append(tracemalloc.get_traced_memory())
            tracemalloc.reset_peak()

    tracemalloc.start()
    try:
        net.fit(X, y, optimizer=optimizer, epochs=22, batch_size=256, callbacks=[mark], seed=0)
    finally:
        tracemalloc.stop()
    (start, _), (end, peak) = marks
    one_activation = 256 * 128 * np.dtype(dtype).itemsize  # one hidden layer, one batch
    assert end - start < 16_000  # a retained (256, 1) array per step alone would be 400 kB
    assert peak - start < one_activation / 2


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_convnet_steady_state_allocates_nothing_per_step(dtype):
    """A small convnet (Conv2D with padding, max and average pooling, Flatten, a remainder
    batch) for 100 steps under tracemalloc: no step allocates an array; the largest
    temporary stays far below one batch's im2col matrix."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2, 10, 10)).astype(dtype)
    y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 200)]
    net = zn.Sequential([
        zn.Conv2D(4, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
        zn.Conv2D(6, 2, stride=1, activation="tanh"), zn.AvgPool2D(2, stride=1, padding=1),
        zn.Flatten(), zn.Dense(3, activation="softmax")], input_shape=(2, 10, 10),
        dtype=dtype, seed=0)
    marks: list[tuple[int, int]] = []

    def mark(epoch, history):
        if epoch in (2, 12):
            marks.append(tracemalloc.get_traced_memory())
            tracemalloc.reset_peak()

    tracemalloc.start()
    try:  # 10 steps an epoch: 9 of 24 rows and a remainder of 8
        net.fit(X, y, loss="categorical_crossentropy", optimizer="adam", epochs=12,
                batch_size=24, callbacks=[mark], seed=0)
    finally:
        tracemalloc.stop()
    (start, _), (end, peak) = marks
    col = 24 * 10 * 10 * 2 * 9 * np.dtype(dtype).itemsize  # the first layer's col
    assert end - start < 16_000
    assert peak - start < col / 2


@pytest.mark.parametrize(("optimizer", "multiple"), [
    (zn.optim.SGD(lr=1e-4), 2),
    (zn.optim.SGD(lr=1e-4, momentum=0.9), 3),
    (zn.optim.AdaGrad(lr=1e-4), 3),
    (zn.optim.RMSProp(lr=1e-4), 3),
    (zn.optim.Adam(lr=1e-4), 4),
    (zn.optim.AdamW(lr=1e-4), 4),
], ids=["sgd", "sgd-momentum", "adagrad", "rmsprop", "adam", "adamw"])
def test_fit_peak_memory_within_budget(optimizer, multiple):
    """Peak while fitting <= data + k x parameters + 3 x one batch's activations + 10 MB.

    k counts the parameters, their gradients and the optimizer's state arrays, nothing
    more: 2 for plain SGD, 3 with one state array (momentum, AdaGrad, RMSProp), 4 for
    Adam's two moments, the budget asked for. No copy of the weights is kept to recover
    from a non-finite step: such a step is refused before it is applied.
    """
    import tracemalloc

    X, y = _mlp_problem(512, 128)  # allocated before tracing: the data term
    h, bs = 1536, 64
    net = zn.MLP([128, h, h, 1], seed=0)  # parameters and gradients: 2 x params, untraced
    tracemalloc.start()
    try:
        net.fit(X, y, optimizer=optimizer, epochs=1, batch_size=bs, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    params = net.n_params * 8
    activations = bs * (h + h + 1) * 8
    assert params > 20e6  # big enough that one more copy of the weights would not fit
    total = 2 * params + peak
    assert total <= multiple * params + 3 * activations + 10e6
    assert total > multiple * params  # the count above is the real one, not a loose bound


@pytest.mark.parametrize("activation", ["relu", "test_clipped_relu"])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_dead_unit_fraction_matches_an_explicit_count(activation, batch_size):
    """The per-batch dead-unit bookkeeping (a column sum for the built-in ReLU, a column
    max for other activations that output 0 below their kink; straight into the result for
    a full batch) counts what the forward pass shows: units whose output is 0 for every
    sample."""
    if activation == "test_clipped_relu":  # a user's ReLU-family activation
        zn.register_activation(activation, lambda z: np.clip(z, 0, 6),
                               lambda z: ((z > 0) & (z < 6)).astype(float), relu_family=True)
    rng = np.random.default_rng(1)
    X = np.abs(rng.standard_normal((40, 3)))
    y = rng.standard_normal((40, 1))
    net = zn.MLP([3, 6, 5, 1], activation=activation, seed=0)
    W1 = np.abs(net.params[0])
    W1[:, :2] *= -1  # units 0 and 1 never fire on positive inputs
    b1 = np.zeros((1, 6))
    b1[0, :2] = -1.0
    net.set_params([W1, b1, *net.params[2:]])
    act = zn.ACTIVATIONS[activation]
    a, dead, units = X, 0, 0
    for W, b in zip(net.params[0:-2:2], net.params[1:-2:2]):
        a = act(a @ W + b)
        dead += int(np.count_nonzero((a <= 0).all(axis=0)))
        units += a.shape[1]
    assert dead >= 2
    # A tiny learning rate: the weights barely move within the epoch.
    hist = net.fit(X, y, optimizer=zn.optim.SGD(lr=1e-12), epochs=1, batch_size=batch_size,
                   shuffle=False)
    zn.ACTIVATIONS.pop("test_clipped_relu", None)
    assert hist["dead_relu_fraction"] == [dead / units]


@pytest.mark.parametrize("activation", ["leaky_relu", "elu"])
def test_units_that_keep_a_gradient_below_zero_are_not_counted_as_dead(activation):
    """leaky_relu and elu output negative values (never 0) below the kink and keep a
    gradient there: they cannot die, so the diagnostic leaves them out."""
    rng = np.random.default_rng(1)
    X = np.abs(rng.standard_normal((40, 3)))
    net = zn.MLP([3, 6, 1], activation=activation, seed=0)
    W1 = -np.abs(net.params[0])  # every unit is below its kink on every sample
    net.set_params([W1, net.params[1] - 1.0, *net.params[2:]])
    hist = net.fit(X, rng.standard_normal(40), optimizer=zn.optim.SGD(lr=1e-12), epochs=1)
    assert "dead_relu_fraction" not in hist
    mixed = zn.MLP([3, 6, 4, 1], activation=["relu", activation], seed=0)
    mixed.set_params([W1, net.params[1], *mixed.params[2:]])
    hist = mixed.fit(X, rng.standard_normal(40), optimizer=zn.optim.SGD(lr=1e-12), epochs=1)
    assert hist["dead_relu_fraction"] == [1.0]  # the 6 ReLU units, all dead


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_plain_sgd_fast_path_equals_the_general_step(dtype):
    """fit folds plain SGD's -lr into the backward pass (the step becomes p += g); a
    subclass takes the general optimizer step. Same weights and diagnostics, to rounding."""

    class GeneralSGD(zn.optim.SGD):
        pass

    X, y = _mlp_problem(96, 4, dtype)
    nets = [zn.MLP([4, 8, 8, 1], dtype=dtype, seed=0) for _ in range(2)]
    hists = [net.fit(X, y, optimizer=cls(lr=0.05), epochs=5, batch_size=16, seed=0,
                     lr_schedule="cosine")
             for net, cls in zip(nets, (zn.optim.SGD, GeneralSGD))]
    rtol = 1e-10 if dtype == "float64" else 1e-4
    for a, b in zip(nets[0].params, nets[1].params):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3)
    for key in ("loss", "grad_norm", "dead_relu_fraction"):
        np.testing.assert_allclose(hists[0][key], hists[1][key], rtol=rtol)
    assert nets[0].optimizer is not None and nets[0].optimizer.t == 30


def test_trainer_steps_equal_full_batch_fit(rng):
    """Trainer.step on the same full batch each time is fit's full-batch epoch: the same
    forward, backward, schedule and update, so the same weights (one process: equal)."""
    X, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    a = zn.MLP([3, 5, 2], seed=0)
    b = a.copy()
    hist = a.fit(X, y, optimizer=zn.optim.AdamW(0.01, weight_decay=0.1, decay="weights"),
                 epochs=5, batch_size=None, shuffle=False, clip_grad_norm=0.5,
                 lr_schedule=zn.optim.WarmupCosine(2, 4, min_lr=1e-3), engine="numpy")
    trainer = zn.Trainer(b, optimizer=zn.optim.AdamW(0.01, weight_decay=0.1, decay="weights"),
                         lr_schedule=zn.optim.WarmupCosine(2, 4, min_lr=1e-3),
                         clip_grad_norm=0.5)
    losses = [trainer.step(X, y) for _ in range(5)]
    np.testing.assert_allclose(losses, hist["loss"], rtol=1e-13)
    np.testing.assert_allclose(trainer.history["lr"], hist["lr"], rtol=1e-15)
    np.testing.assert_allclose(b.flat_params, a.flat_params, rtol=1e-12, atol=1e-15)
    assert trainer.t == 5 and b.optimizer is trainer.opt
    assert trainer.evaluate(X, y) == pytest.approx(float(np.mean((b.predict(X) - y) ** 2)))


def test_clip_grad_norm_rescales_the_step_as_torch():
    """SGD with clipping: the step is -lr * g * max_norm / (|g| + 1e-6) when |g| > max_norm."""
    X, y = np.ones((4, 2)), np.full((4, 1), 10.0)
    net = zn.MLP([2, 1], seed=0)
    _, (gW, gb) = net.loss_and_gradients(X, y)
    norm = math.sqrt(float((gW ** 2).sum() + (gb ** 2).sum()))
    before = [p.copy() for p in net.params]
    hist = net.fit(X, y, optimizer=zn.optim.SGD(0.1), epochs=1, batch_size=None,
                   clip_grad_norm=0.5)
    coef = 0.5 / (norm + 1e-6)
    assert coef < 1 and hist["grad_norm"][0] == pytest.approx(norm, rel=1e-12)
    for p, p0, g in zip(net.params, before, (gW, gb)):
        np.testing.assert_allclose(p, p0 - 0.1 * coef * g, rtol=1e-12)
    with pytest.raises(ValueError, match="clip_grad_norm"):
        net.fit(X, y, epochs=1, clip_grad_norm=0)


def test_trainer_refuses_a_diverging_step_and_keeps_weights():
    net = zn.MLP([1, 1], seed=0)
    trainer = zn.Trainer(net, optimizer=zn.optim.SGD(1e300))
    before = net.flat_params.copy()
    with pytest.raises(ValueError, match=r"at step 1 with lr=1e\+300"):
        trainer.step(np.array([[1e10]]), np.array([[-1e10]]))
    np.testing.assert_array_equal(net.flat_params, before)


def test_trainer_steps_do_not_grow_memory():
    """After warm-up (buffers made per batch size, optimizer state), more steps of a small
    GPT allocate nothing that stays: tracemalloc's traced memory stays flat."""
    import tracemalloc

    net = zn.gpt(11, 8, n_layer=2, n_head=2, n_embd=8, seed=0)
    trainer = zn.Trainer(net, loss="categorical_crossentropy",
                         optimizer=zn.optim.AdamW(1e-3, weight_decay=0.1, decay="weights"),
                         lr_schedule=zn.optim.WarmupCosine(2, 50), clip_grad_norm=1.0)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 11, 500)
    batches = [zn.text.random_blocks(data, 8, 4, rng) for _ in range(40)]
    for x, y in batches[:5]:
        trainer.step(x, y)
    tracemalloc.start()
    try:
        trainer.step(*batches[5])
        before, _ = tracemalloc.get_traced_memory()
        for x, y in batches[6:]:
            trainer.step(x, y)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The history's three floats per step are all that may stay (34 steps: a few KB).
    assert after - before < 16_000, f"{after - before} bytes kept over 34 steps"
