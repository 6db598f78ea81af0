"""zeronn's optimizers and learning-rate schedules against ``torch.optim``.

Each framework trains the same network from the same weights on the same data with its
*own* gradients and its *own* optimizer; the parameters must agree after every step to a
relative ``F64_TOL`` (float64) or ``F32_TOL`` (float32), metric
``conftest.relative_error``. Both ways of stepping are covered: ``opt.step(net.params,
grads)`` by hand, and ``net.fit`` with mini-batches and a schedule. Schedules are also
compared on their own, lr by lr, against ``torch.optim.lr_scheduler``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

import torch.nn.functional as F  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402
from conftest import examples  # noqa: E402
from zeronn import optim  # noqa: E402

# float64: 25+ steps of ulp-level differences in the gradients, carried along by the
# optimizers' state, stay far below 1e-10.
F64_TOL = 1e-10
# float32: the same steps from float32 gradients (each ~1e-6 relative off torch's):
# Adam-like updates divide by sqrt(v) and so pass gradient noise on at full size.
F32_TOL = 1e-4

SIZES = [5, 16, 12, 3]
HIDDEN = ["tanh", "gelu"]  # smooth: no kink for rounding to flip during training
STEPS = 30
N = 40

# (zeronn optimizer, torch optimizer, keyword arguments both take under the same names)
CONFIGS: list[tuple[type[optim.Optimizer], Any, dict[str, Any]]] = [
    (optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    (optim.SGD, torch.optim.SGD, {"lr": 0.1, "weight_decay": 0.01}),
    (optim.SGD, torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.8, "dampening": 0.2, "weight_decay": 0.05}),
    (optim.AdaGrad, torch.optim.Adagrad, {"lr": 0.05}),
    (optim.AdaGrad, torch.optim.Adagrad,
     {"lr": 0.05, "weight_decay": 0.01, "initial_accumulator_value": 0.1}),
    (optim.RMSProp, torch.optim.RMSprop, {"lr": 0.005}),
    (optim.RMSProp, torch.optim.RMSprop, {"lr": 0.002, "momentum": 0.9}),
    (optim.RMSProp, torch.optim.RMSprop,
     {"lr": 0.002, "momentum": 0.5, "centered": True, "weight_decay": 0.01}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.01}),
    (optim.Adam, torch.optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "amsgrad": True}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 0.01}),
    (optim.AdamW, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-6}),
]


def _config_id(config: tuple[type[optim.Optimizer], Any, dict[str, Any]]) -> str:
    cls, _, kwargs = config
    return cls.__name__ + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def problem(dtype: str, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Initial weights [W1, b1, ...] (biases not zero), X (N, 5) and y (N, 3)."""
    rng = np.random.default_rng(seed)
    params = []
    for fi, fo in zip(SIZES[:-1], SIZES[1:]):
        params += [rng.standard_normal((fi, fo)) / np.sqrt(fi), rng.standard_normal((1, fo)) * 0.1]
    X = rng.standard_normal((N, SIZES[0]))
    y = np.sin(X[:, :3] * 2.0) + 0.1 * rng.standard_normal((N, 3))
    return [p.astype(dtype) for p in params], X.astype(dtype), y.astype(dtype)


def torch_forward(ps: list[Any], X: Any) -> Any:
    h = X
    for i in range(0, len(ps), 2):
        h = h @ ps[i] + ps[i + 1]
        if i + 2 < len(ps):
            act = HIDDEN[i // 2]
            h = torch.tanh(h) if act == "tanh" else F.gelu(h, approximate="tanh")
    return h


class TorchTrainer:
    """The network in torch with a ``torch.optim`` optimizer (and optional scheduler)."""

    def __init__(self, params: list[np.ndarray], cls: Any, kwargs: dict[str, Any]) -> None:
        self.ps = [torch.tensor(p, requires_grad=True) for p in params]
        self.opt = cls(self.ps, **kwargs)

    def step(self, X: np.ndarray, y: np.ndarray) -> float:
        """One update on the batch (X, y); returns the loss before it."""
        self.opt.zero_grad()
        loss = F.mse_loss(torch_forward(self.ps, torch.tensor(X)), torch.tensor(y))
        loss.backward()
        self.opt.step()
        return loss.item()

    def params(self) -> list[np.ndarray]:
        return [p.detach().numpy().copy() for p in self.ps]


@pytest.mark.parametrize("dtype, tol", [("float64", F64_TOL), ("float32", F32_TOL)],
                         ids=["float64", "float32"])
@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_optimizer_trajectory_by_hand(parity: Any, config: Any, dtype: str, tol: float) -> None:
    # zeronn: loss_and_gradients, then opt.step(net.params, grads) on the live arrays.
    cls, torch_cls, kwargs = config
    params, X, y = problem(dtype)
    net = zn.MLP(SIZES, HIDDEN, init=params, dtype=dtype)
    opt = cls(**kwargs)
    ref = TorchTrainer(params, torch_cls, kwargs)
    moved = 0.0
    for t in range(1, STEPS + 1):
        _, grads = net.loss_and_gradients(X, y, "mse")
        opt.step(net.params, grads)
        ref.step(X, y)
        for i, (p, tp) in enumerate(zip(net.params, ref.params())):
            parity.check(f"{dtype} optimizers", p, tp, tol,
                         f"{_config_id(config)} step {t} param {i}")
    for p, p0 in zip(net.params, params):
        moved = max(moved, float(np.max(np.abs(p - p0))))
    assert moved > 1e-3  # the trajectory went somewhere: the comparison is not vacuous


@pytest.mark.parametrize("config", CONFIGS, ids=[_config_id(c) for c in CONFIGS])
def test_optimizer_trajectory_in_fit(parity: Any, config: Any) -> None:
    # zeronn's fit: 4 mini-batches of 10 rows in order (no shuffling) for 8 epochs.
    cls, torch_cls, kwargs = config
    params, X, y = problem("float64", seed=1)
    net = zn.MLP(SIZES, HIDDEN, init=params)
    hist = net.fit(X, y, loss="mse", optimizer=cls(**kwargs), epochs=8, batch_size=10,
                   shuffle=False)
    ref = TorchTrainer(params, torch_cls, kwargs)
    losses = []
    for _ in range(8):
        losses.append(np.mean([ref.step(X[s:s + 10], y[s:s + 10]) for s in range(0, N, 10)]))
    parity.check("float64 optimizers", np.array(hist["loss"]), np.array(losses), F64_TOL,
                 f"{_config_id(config)} fit epoch losses")
    for i, (p, tp) in enumerate(zip(net.params, ref.params())):
        parity.check("float64 optimizers", p, tp, F64_TOL,
                     f"{_config_id(config)} fit, param {i} after 32 steps")


# -- learning-rate schedules ----------------------------------------------------------
def torch_lrs(make: Any, base_lr: float, epochs: int, metrics: list[float] | None = None
              ) -> list[float]:
    """The lr torch uses in each epoch: read before the epoch's scheduler.step()."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make(opt)
    lrs = []
    for e in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradient: a no-op, but keeps torch's call order
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[e])
    return lrs


def zeronn_lrs(schedule: optim.Schedule, base_lr: float, epochs: int,
               metrics: list[float] | None = None) -> list[float]:
    """The lr zeronn's fit uses in each epoch: ``lr(epoch, base)``, then ``observe``."""
    lrs = []
    for e in range(epochs):
        lrs.append(schedule.lr(e, base_lr))
        if metrics is not None:
            schedule.observe(metrics[e])
    return lrs


base_lrs = st.floats(1e-4, 1.0)


@settings(max_examples=examples(40), deadline=None)
@given(base=base_lrs, step_size=st.integers(1, 12), gamma=st.floats(0.05, 0.99))
def test_step_lr(parity: Any, base: float, step_size: int, gamma: float) -> None:
    ours = zeronn_lrs(optim.StepLR(step_size, gamma), base, 100)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), base, 100)
    parity.check("schedules", np.array(ours), np.array(theirs), F64_TOL,
                 f"StepLR({step_size}, {gamma}) from {base}")


@settings(max_examples=examples(40), deadline=None)
@given(base=base_lrs, gamma=st.floats(0.8, 0.999))
def test_exponential_lr(parity: Any, base: float, gamma: float) -> None:
    ours = zeronn_lrs(optim.ExponentialLR(gamma), base, 100)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma), base, 100)
    parity.check("schedules", np.array(ours), np.array(theirs), F64_TOL,
                 f"ExponentialLR({gamma}) from {base}")


@settings(max_examples=examples(40), deadline=None)
@given(base=base_lrs, t_max=st.integers(1, 40), eta_frac=st.sampled_from([0.0, 0.01, 0.3]))
def test_cosine_annealing_lr(parity: Any, base: float, t_max: int, eta_frac: float) -> None:
    # 100 epochs: past T_max too, where both go back up along the cosine.
    eta_min = base * eta_frac
    ours = zeronn_lrs(optim.CosineAnnealingLR(t_max, eta_min), base, 100)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, t_max, eta_min),
                       base, 100)
    parity.check("schedules", np.array(ours), np.array(theirs), F64_TOL,
                 f"CosineAnnealingLR({t_max}, {eta_min}) from {base}")


@st.composite
def plateaus(draw: st.DrawFn) -> list[float]:
    """A loss curve with improvements, stalls and near-ties around the threshold."""
    n = draw(st.integers(5, 80))
    steps = draw(st.lists(st.sampled_from([-0.1, -1e-3, -1e-5, 0.0, 0.0, 1e-3, 0.05]),
                          min_size=n, max_size=n))
    return list(np.exp(np.cumsum(steps)))


@settings(max_examples=examples(80), deadline=None)
@given(base=base_lrs, metrics=plateaus(), factor=st.sampled_from([0.1, 0.5, 0.9]),
       patience=st.integers(0, 5), threshold=st.sampled_from([0.0, 1e-4, 1e-2]),
       cooldown=st.integers(0, 3), min_lr=st.sampled_from([0.0, 1e-6, 1e-3]))
def test_reduce_lr_on_plateau(parity: Any, base: float, metrics: list[float], factor: float,
                              patience: int, threshold: float, cooldown: int,
                              min_lr: float) -> None:
    kwargs = {"factor": factor, "patience": patience, "threshold": threshold,
              "cooldown": cooldown, "min_lr": min_lr}
    ours = zeronn_lrs(optim.ReduceLROnPlateau(**kwargs), base, len(metrics), metrics)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs),
                       base, len(metrics), metrics)
    parity.check("schedules", np.array(ours), np.array(theirs), F64_TOL,
                 f"ReduceLROnPlateau({kwargs}) from {base}")


SCHEDULES = [
    (lambda: optim.StepLR(5, 0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, 5, 0.5)),
    (lambda: optim.ExponentialLR(0.9), lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)),
    (lambda: optim.CosineAnnealingLR(12, 0.001),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 12, 0.001)),
    (lambda: optim.ReduceLROnPlateau(factor=0.5, patience=1, threshold=0.05),
     lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=1,
                                                          threshold=0.05)),
]


@pytest.mark.parametrize("make, torch_make", SCHEDULES,
                         ids=["StepLR", "ExponentialLR", "CosineAnnealingLR",
                              "ReduceLROnPlateau"])
def test_schedules_in_fit(parity: Any, make: Any, torch_make: Any) -> None:
    # Full batch, so one step per epoch: fit sets lr(epoch) before the step and observes
    # the epoch's loss (before the update) after it; torch steps its scheduler after the
    # optimizer, with the same loss for ReduceLROnPlateau.
    epochs = 25
    params, X, y = problem("float64", seed=2)
    net = zn.MLP(SIZES, HIDDEN, init=params)
    schedule = make()
    hist = net.fit(X, y, loss="mse", optimizer=optim.SGD(lr=0.2, momentum=0.9), epochs=epochs,
                   batch_size=None, shuffle=False, lr_schedule=schedule)
    ref = TorchTrainer(params, torch.optim.SGD, {"lr": 0.2, "momentum": 0.9})
    sched = torch_make(ref.opt)
    lrs, losses = [], []
    for _ in range(epochs):
        lrs.append(ref.opt.param_groups[0]["lr"])
        losses.append(ref.step(X, y))
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            sched.step(losses[-1])
        else:
            sched.step()
    name = type(schedule).__name__
    assert len(set(lrs)) > 1, "the schedule never changed the lr: the test would be vacuous"
    parity.check("schedules", np.array(hist["lr"]), np.array(lrs), F64_TOL, f"{name} in fit")
    parity.check("float64 optimizers", np.array(hist["loss"]), np.array(losses), F64_TOL,
                 f"SGD + {name} fit losses")
    for i, (p, tp) in enumerate(zip(net.params, ref.params())):
        parity.check("float64 optimizers", p, tp, F64_TOL, f"SGD + {name} fit, param {i}")
    assert math.isfinite(hist["loss"][-1])


def test_reduce_lr_on_plateau_skips_reductions_below_eps(parity: Any) -> None:
    # torch skips a reduction smaller than eps = 1e-8: from 1e-6 by 0.1 per stalled epoch
    # the lr stops at 1e-8 (1e-8 - 1e-9 < eps) instead of going on to 1e-9, 1e-10, ...
    metrics = [1.0] * 10
    ours = zeronn_lrs(optim.ReduceLROnPlateau(patience=0), 1e-6, 10, metrics)
    theirs = torch_lrs(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0),
                       1e-6, 10, metrics)
    assert min(theirs) == pytest.approx(1e-8)
    parity.check("schedules", np.array(ours), np.array(theirs), F64_TOL, "eps = 1e-8 floor")
