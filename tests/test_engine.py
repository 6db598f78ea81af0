"""The compiled path (zeronn.engine, zeronn._fast.dense) against the NumPy reference: the
same weights and History on drawn networks and settings, the seed's run, failing safe,
Ctrl-C, resuming, the random stream, and which engine runs when."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zeronn as zn
from conftest import examples
from zeronn import engine as engines
from zeronn.classic import mse_loss
from zeronn.training import TrainingInterrupted

pytest.importorskip("numba")
pytestmark = pytest.mark.skipif(engines.coverage(zn.MLP([1, 1]), zn.losses.LOSSES["mse"],
                                                     zn.optim.SGD()) is not None,
                                reason="the compiled path is switched off (ZERONN_NO_FAST)")

TOL = {"float64": 1e-12, "float32": 1e-5}
ACTIVATIONS = ["identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus",
               "softmax"]


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    for dtype in ("float64", "float32"):
        engines.ensure_ready(np.dtype(dtype))


def _assert_same(a: zn.Sequential, ha: zn.History, b: zn.Sequential, hb: zn.History,
                 rtol: float) -> None:
    """Weights and every History entry (but the times) equal to ``rtol`` (gradient norms to
    4 ``rtol``): the weights relative to the network's largest weight (a weight array that
    ends near 0 by cancellation, e.g. a lone output weight of 1e-5 in float32, keeps the
    error of the sums that formed it), each History entry relative to its largest value."""
    scale = max(max(np.abs(p).max() for p in a.params), 1e-30)
    for p, q in zip(a.params, b.params):
        np.testing.assert_allclose(q, p, rtol=0, atol=rtol * scale)
    assert list(ha) == list(hb)
    for key in ha:
        if key == "time":
            continue
        x, y = np.array(ha[key], float), np.array(hb[key], float)
        # Gradient norms carry the gradients' own rounding, which a saturated tanh/sigmoid
        # output magnifies (1 - a^2 cancels): 4 times the weights' tolerance.
        tol = rtol * (4 if "grad_norm" in key else 1)
        np.testing.assert_allclose(y, x, rtol=0, atol=tol * max(np.abs(x).max(), 1e-30),
                                   err_msg=key)
    assert (ha.epochs, ha.stopped_early, ha.best_epoch) == (hb.epochs, hb.stopped_early,
                                                            hb.best_epoch)


def _fit_both(make, X, y, optimizer_factory, **kwargs):
    """The same fit on each engine: (net, History or the ValueError it raised) for each."""
    out = []
    for engine in ("numpy", "compiled"):
        net = make()
        try:
            result = net.fit(X, y, engine=engine, optimizer=optimizer_factory(), **kwargs)
        except ValueError as err:  # a diverging run: refused alike on both (checked below)
            result = err
        out += [net, result]
    return out


# Learning rates that keep the drawn runs calm: in a diverging run (or one that crosses
# ReLU kinks at random) last-bit differences of the matrix products grow without bound.
_OPTIMIZERS = st.sampled_from([
    lambda: zn.optim.SGD(lr=0.02),
    lambda: zn.optim.SGD(lr=0.01, momentum=0.9),
    lambda: zn.optim.SGD(lr=0.01, momentum=0.8, nesterov=True, weight_decay=1e-3),
    lambda: zn.optim.SGD(lr=0.01, momentum=0.5, dampening=0.3),
    lambda: zn.optim.Adam(lr=0.005),
    lambda: zn.optim.Adam(lr=0.005, weight_decay=1e-2, amsgrad=True),
    lambda: zn.optim.AdamW(lr=0.005),
])


# ZERONN_ENGINE_EXAMPLES=400 for a deeper run
@settings(max_examples=examples(30, "ZERONN_ENGINE_EXAMPLES"), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_equals_numpy_on_drawn_networks(data):
    """Drawn: widths, activations, the output and loss, the optimizer, batching, shuffling,
    sample weights, validation, a schedule, dtype. Both engines: the same run."""
    dtype = data.draw(st.sampled_from(["float64", "float32"]))
    n_in = data.draw(st.integers(1, 5))
    hidden = data.draw(st.lists(st.integers(1, 7), min_size=0, max_size=3))
    acts = [data.draw(st.sampled_from(ACTIVATIONS)) for _ in hidden]
    head = data.draw(st.sampled_from(["mse", "mae", "huber", "bce", "cce", "tanh-mse"]))
    n_out = 1 if head == "bce" else data.draw(st.integers(1, 3)) + (head == "cce")
    n = data.draw(st.integers(4, 32))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, n_in))
    if head == "bce":
        y, out, loss = (rng.random((n, 1)) > 0.5).astype(float), "sigmoid", "binary_crossentropy"
    elif head == "cce":
        y, out, loss = np.eye(n_out)[rng.integers(0, n_out, n)], "softmax", \
            "categorical_crossentropy"
    else:
        y = np.tanh(X @ rng.standard_normal((n_in, n_out)))
        out, loss = ("tanh", "mse") if head == "tanh-mse" else ("identity", head)
    seed = data.draw(st.integers(0, 100))
    as_layers = data.draw(st.booleans()) and hidden  # Dense + Activation("...") layers

    def make():
        if as_layers:
            layers = []
            for width, act in zip(hidden, acts):
                layers += [zn.Dense(width), zn.Activation(act)]
            layers.append(zn.Dense(n_out, activation=out))
            return zn.Sequential(layers, input_dim=n_in, dtype=dtype, seed=seed)
        return zn.MLP([n_in, *hidden, n_out], activation=acts, output_activation=out,
                      dtype=dtype, seed=seed)

    kwargs = dict(loss=loss, optimizer_factory=data.draw(_OPTIMIZERS),
                  epochs=data.draw(st.integers(1, 3)),
                  batch_size=data.draw(st.sampled_from([None, 3, 8, 16])),
                  shuffle=data.draw(st.booleans()), seed=data.draw(st.integers(0, 9)))
    if data.draw(st.booleans()):
        kwargs["sample_weight"] = rng.random(n) * (rng.random(n) > 0.2) + 1e-3 * (
            np.arange(n) == 0)
    if data.draw(st.booleans()) and n >= 8:
        kwargs["validation_split"] = 0.25
    kwargs["lr_schedule"] = data.draw(st.sampled_from([None, "cosine", zn.optim.StepLR(1, 0.5)]))
    a, ha, b, hb = _fit_both(make, X, y, **kwargs)
    if isinstance(ha, ValueError) or isinstance(hb, ValueError):
        assert str(ha) == str(hb)
        return
    assert ha.engine == "numpy" and hb.engine == "compiled"
    assert hb.engines == ["compiled"] * hb.epochs
    _assert_same(a, ha, b, hb, TOL[dtype])


def test_saturated_tanh_output_float32_gradient_norms_agree():
    """Hypothesis's example: a tanh output far from its targets (loss 3.9) saturates, its
    derivative 1 - a^2 cancels, and each engine's float32 gradient norm lands about 5e-6
    from float64's, on opposite sides: 1e-5 apart, neither wrong."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 5))
    y = np.tanh(X @ rng.standard_normal((5, 1)))
    sw = rng.random(4) * (rng.random(4) > 0.2) + 1e-3 * (np.arange(4) == 0)
    a, ha, b, hb = _fit_both(
        lambda: zn.MLP([5, 1, 1], activation=["identity"], output_activation="tanh",
                       dtype="float32", seed=21),
        X, y, lambda: zn.optim.SGD(lr=0.02), loss="mse", epochs=1, batch_size=None,
        shuffle=False, seed=0, sample_weight=sw)
    _assert_same(a, ha, b, hb, TOL["float32"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_many_epochs_in_one_call_equal_numpy(dtype):
    """A fit with nothing to run between epochs goes through the kernel several epochs at a
    time (the same permutations drawn ahead): the same run, and the same random stream."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    a = zn.MLP([3, 8, 2], dtype=dtype, seed=0)
    b = a.copy()
    ha = a.fit(X, y, optimizer=zn.optim.Adam(0.01), epochs=30, batch_size=16, engine="numpy")
    hb = b.fit(X, y, optimizer=zn.optim.Adam(0.01), epochs=30, batch_size=16, engine="compiled")
    _assert_same(a, ha, b, hb, 10 * TOL[dtype])
    assert a.rng.bit_generator.state == b.rng.bit_generator.state  # seedless: net.rng


@pytest.mark.parametrize("engine", ["numpy", "compiled"])
def test_seed_run_on_both_engines(seed_problem, seed_lines, engine):
    """The seed's initial weights, mse, SGD(0.05), full batch: the seed's loss every epoch."""
    X, y, nn = seed_problem
    net = zn.MLP.from_classic(nn)
    hist = net.fit(X, y, loss="mse", optimizer=zn.optim.SGD(lr=0.05), epochs=1000,
                   batch_size=None, shuffle=False, engine=engine)
    assert hist.engine == engine
    seed_losses = []
    for _ in range(1000):
        y_pred = nn.forward(X)
        seed_losses.append(mse_loss(y, y_pred))
        nn.backward(X, y, y_pred, 0.001)
    np.testing.assert_allclose(hist["loss"], seed_losses, rtol=1e-10, atol=0)
    assert [f"Epoch {e}, Loss: {hist['loss'][e]:.4f}" for e in range(0, 1000, 100)] == seed_lines


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_early_stopping_and_callbacks_between_compiled_epochs(dtype):
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((80, 4)), rng.standard_normal((80, 1))
    seen: dict[str, list[int]] = {"numpy": [], "compiled": []}
    out = []
    for engine in ("numpy", "compiled"):
        net = zn.MLP([4, 16, 1], dtype=dtype, seed=2)
        hist = net.fit(X, y, optimizer=zn.optim.Adam(0.05), epochs=200, batch_size=16,
                       validation_split=0.25, early_stopping=zn.EarlyStopping(patience=3),
                       callbacks=[lambda e, h, s=seen[engine]: s.append(e)],
                       lr_schedule=zn.optim.ReduceLROnPlateau(patience=1), engine=engine)
        out += [net, hist]
    a, ha, b, hb = out
    assert ha.stopped_early and ha.epochs < 200
    assert seen["numpy"] == seen["compiled"]
    _assert_same(a, ha, b, hb, 10 * TOL[dtype])


def test_resume_continues_exactly_on_both_engines():
    """3 + 2 epochs (optimizer=None: the same optimizer and state) equal 5 epochs, on each
    engine and across them."""
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 1))
    base = zn.MLP([3, 6, 1], seed=0)
    nets = {}
    for engine in ("numpy", "compiled"):
        once, split = base.copy(), base.copy()
        h5 = once.fit(X, y, optimizer=zn.optim.Adam(0.01), epochs=5, seed=1, engine=engine)
        split.fit(X, y, optimizer=zn.optim.Adam(0.01), epochs=3, engine=engine)
        split.fit(X, y, epochs=2, engine="compiled" if engine == "numpy" else "numpy")
        nets[engine] = (once, h5)
        assert once.optimizer.t == split.optimizer.t == 5 * 2
    _assert_same(nets["numpy"][0], nets["numpy"][1], nets["compiled"][0], nets["compiled"][1],
                 1e-12)


@pytest.mark.parametrize("optimizer", [lambda: zn.optim.SGD(lr=10.0, momentum=0.9),
                                       lambda: zn.optim.SGD(lr=1e6)])
def test_non_finite_step_is_refused_alike(optimizer):
    """The same error at the same epoch and batch, the weights of the step before, the
    optimizer reset, the completed epochs kept, the same random stream."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((64, 3)), rng.standard_normal((64, 1)) * 1e3
    results = {}
    for engine in ("numpy", "compiled"):
        net = zn.MLP([3, 16, 16, 1], seed=0)
        opt = optimizer()
        with pytest.raises(ValueError) as err:
            net.fit(X, y, optimizer=opt, epochs=500, batch_size=8, engine=engine)
        assert opt.t == 0 and opt.state == []
        assert all(np.isfinite(p).all() for p in net.params)
        results[engine] = (str(err.value), net, net.rng.bit_generator.state)
    assert results["numpy"][0] == results["compiled"][0]
    assert results["numpy"][2] == results["compiled"][2]
    a, b = results["numpy"][1], results["compiled"][1]
    for p, q in zip(a.params, b.params):
        np.testing.assert_allclose(q, p, rtol=1e-9, atol=1e-9 * np.abs(p).max())
    assert a.history.epochs == b.history.epochs


def test_ctrl_c_stops_the_compiled_path_between_calls(rng):
    """Ctrl-C is looked at between kernel calls (here one epoch each): the signal lands in
    epoch 2's callback, so training stops there, keeping the weights and the 2 epochs."""
    X = rng.standard_normal((256, 3))
    y = X[:, :1] ** 2
    net = zn.MLP([3, 8, 1], seed=0)

    def interrupt(epoch, history):
        if epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = net.fit(X, y, epochs=50, batch_size=16, callbacks=[interrupt],
                       engine="compiled")
    assert any(issubclass(w.category, TrainingInterrupted) for w in caught)
    assert hist.interrupted and hist.epochs == 2
    assert net.optimizer is not None and net.optimizer.t == 2 * 16
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_compiled_refuses_what_it_does_not_cover_and_auto_falls_back():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 1))
    cases = [
        (zn.Sequential([zn.Dense(4, activation="relu"), zn.Dropout(0.1), zn.Dense(1)],
                       input_dim=3), {}, "Dropout"),
        (zn.MLP([3, 4, 1]), {"optimizer": zn.optim.RMSProp()}, "optimizer RMSProp"),
        (zn.Sequential([zn.Dense(4, activation="relu"), zn.Activation("tanh"), zn.Dense(1)],
                       input_dim=3), {}, "Activation"),
    ]
    for net, kwargs, what in cases:
        with pytest.raises(ValueError, match=f"engine='compiled' cannot train this fit: .*{what}"):
            net.copy().fit(X, y, engine="compiled", epochs=1, **kwargs)
        hist = net.fit(X, y, engine="auto", epochs=1, **kwargs)
        assert hist.engine == "numpy" and hist.engines == ["numpy"]
    with pytest.raises(ValueError, match="engine must be 'auto', 'numpy' or 'compiled'"):
        zn.MLP([3, 1]).fit(X, y, engine="fast")


def test_user_activation_and_loss_keep_the_numpy_path():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 2)), rng.standard_normal((20, 1))
    act = zn.activations.Activation("cube", lambda z, out: np.power(z, 3, out=out),
                                    lambda d, z, a, work: None)
    with pytest.raises(ValueError, match="activation 'cube' is not a built-in one"):
        zn.MLP([2, 3, 1], activation=act).fit(X, y, engine="compiled", epochs=1)
    loss = zn.losses.Loss("mse2", lambda a, y, grad, work, w: 0.0)
    with pytest.raises(ValueError, match="loss 'mse2' is not a built-in one"):
        zn.MLP([2, 3, 1]).fit(X, y, loss=loss, engine="compiled", epochs=1)
    assert zn.MLP([2, 3, 1], activation=act).fit(X, y, epochs=1).engine == "numpy"
    # a copied network keeps copies of the built-in activations: still compiled
    assert zn.MLP([2, 3, 1]).copy().fit(X, y, epochs=1, engine="compiled").engine == "compiled"


def test_auto_switches_at_an_epoch_boundary(monkeypatch):
    """While the kernel is being prepared "auto" trains on NumPy; once it is ready the next
    epoch runs compiled. History.engines records each epoch's path; the run is the same."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    calls = []
    monkeypatch.setattr(engines, "auto_choice", lambda *a: "later")
    monkeypatch.setattr(engines, "start_compiling", lambda dtype: calls.append(dtype))
    monkeypatch.setattr(engines, "is_ready", lambda dtype: len(calls) > 3 or calls.append(1))
    a = zn.MLP([3, 5, 1], seed=0)
    b = a.copy()
    hb = b.fit(X, y, optimizer=zn.optim.SGD(0.05, momentum=0.9), epochs=6, batch_size=8)
    ha = a.fit(X, y, optimizer=zn.optim.SGD(0.05, momentum=0.9), epochs=6, batch_size=8,
               engine="numpy")
    assert hb.engines == ["numpy"] * 3 + ["compiled"] * 3 and hb.engine == "compiled"
    _assert_same(a, ha, b, hb, 1e-12)
    a.fit(X, y, epochs=2, engine="numpy")
    assert a.history.engines == ["numpy"] * 8 and a.history.engine == "numpy"


def test_auto_choice_by_size_and_run_length():
    small, wide = zn.MLP([8, 32, 1]), zn.MLP([64, 512, 512, 1])
    assert engines.auto_choice(wide, 10_000, 100, 100) == "numpy"  # BLAS wins
    assert engines.auto_choice(small, 100, 4, 1) == "numpy"  # too short to matter
    assert engines.auto_choice(small, 2000, 63, 200) == "compiled"  # ready in this process


def test_import_does_not_import_numba():
    code = ("import sys, zeronn, numpy as np; zeronn.MLP([2, 3, 1]).fit(np.zeros((4, 2)), "
            "np.zeros((4, 1)), epochs=2); print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


def test_cancelling_bias_gradient_under_adam_equals_numpy():
    """MAE's gradients are +-1/size: an output whose residual signs balance has a bias
    gradient of exactly 0 in exact arithmetic, 1e-17 or 0 by summation order, and Adam
    divides that by eps (a 7e-12 step here). The kernel sums the bias gradient in the
    reference's order, so the step is the same."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 1))
    y = np.tanh(X @ rng.standard_normal((1, 2)))
    a, ha, b, hb = _fit_both(lambda: zn.MLP([1, 2], seed=1), X, y,
                             lambda: zn.optim.Adam(lr=0.005), loss="mae", epochs=1,
                             batch_size=None, shuffle=False)
    assert a.params[1][0, 1] != 0.0  # the case: a residual step, not an exact zero
    np.testing.assert_allclose(b.params[1], a.params[1], rtol=0, atol=1e-16)
    _assert_same(a, ha, b, hb, TOL["float64"])
