"""Learning-rate schedules: the optimizer's lr as a function of the epoch.

Formulas follow ``torch.optim.lr_scheduler`` (closed forms, so a schedule can be asked
for any epoch); :class:`ReduceLROnPlateau` also watches the monitored loss. The training
loop calls ``lr(epoch, base_lr)`` before each epoch and ``observe(metric)`` after it.
"""

from __future__ import annotations

import math
from typing import Any

from zeronn._registry import Registry
from zeronn._validation import non_negative_number, positive_number

__all__ = [
    "SCHEDULES",
    "Constant",
    "CosineAnnealingLR",
    "ExponentialLR",
    "ReduceLROnPlateau",
    "Schedule",
    "StepLR",
    "WarmupCosine",
    "get_schedule",
]


class Schedule:
    """Sets the optimizer's lr per epoch: ``lr(epoch, base_lr)`` for epoch 0, 1, ...

    ``observe(metric)`` is called after each epoch with the monitored loss (only
    :class:`ReduceLROnPlateau` uses it). Formulas follow ``torch.optim.lr_scheduler``.
    """

    name = "schedule"

    def lr(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def observe(self, metric: float) -> None:
        return None

    def config(self) -> dict[str, Any]:
        """The constructor arguments."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class Constant(Schedule):
    """The learning rate stays ``base_lr``."""

    name = "constant"

    def lr(self, epoch: int, base_lr: float) -> float:
        return base_lr


class StepLR(Schedule):
    """``base_lr * gamma ** (epoch // step_size)`` (torch's StepLR)."""

    name = "step"

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        self.step_size = positive_number("step_size", step_size, integer=True)
        self.gamma = positive_number("gamma", gamma)

    def lr(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(Schedule):
    """``base_lr * gamma ** epoch`` (torch's ExponentialLR)."""

    name = "exponential"

    def __init__(self, gamma: float = 0.95) -> None:
        self.gamma = positive_number("gamma", gamma)

    def lr(self, epoch: int, base_lr: float) -> float:
        return base_lr * self.gamma ** epoch


class CosineAnnealingLR(Schedule):
    """``eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2`` (torch's closed form)."""

    name = "cosine"

    def __init__(self, T_max: int = 100, eta_min: float = 0.0) -> None:
        self.T_max = positive_number("T_max", T_max, integer=True)
        self.eta_min = non_negative_number("eta_min", eta_min)

    def lr(self, epoch: int, base_lr: float) -> float:
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * epoch / self.T_max)) / 2


class WarmupCosine(Schedule):
    """A linear warm-up, then a cosine decay to ``min_lr`` (nanoGPT's ``get_lr``), per step:

    ``base_lr (t + 1) / (warmup + 1)`` for ``t < warmup``; then
    ``min_lr + (base_lr - min_lr) (1 + cos(pi (t - warmup) / (total - warmup))) / 2`` up to
    ``t = total``; ``min_lr`` after. ``t`` counts epochs in ``fit`` and optimizer steps in
    :class:`~zeronn.training.Trainer` (nanoGPT's iterations).
    """

    name = "warmup_cosine"

    def __init__(self, warmup: int = 100, total: int = 2000, min_lr: float = 0.0) -> None:
        self.warmup = int(non_negative_number("warmup", warmup))
        self.total = positive_number("total", total, integer=True)
        if self.total <= self.warmup:
            raise ValueError(f"total ({total}) must be larger than warmup ({warmup}): the "
                             "decay runs from the end of the warm-up to total")
        self.min_lr = non_negative_number("min_lr", min_lr)

    def lr(self, epoch: int, base_lr: float) -> float:
        if epoch < self.warmup:
            return base_lr * (epoch + 1) / (self.warmup + 1)
        if epoch > self.total:
            return self.min_lr
        ratio = (epoch - self.warmup) / (self.total - self.warmup)
        return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (base_lr - self.min_lr)


class ReduceLROnPlateau(Schedule):
    """Multiplies the lr by ``factor`` once the monitored loss has not improved by a relative
    ``threshold`` for more than ``patience`` epochs (torch's ReduceLROnPlateau, mode "min").
    A reduction smaller than ``eps`` is skipped, as torch does."""

    name = "plateau"

    def __init__(self, factor: float = 0.1, patience: int = 10, threshold: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8) -> None:
        self.factor = positive_number("factor", factor)
        if self.factor >= 1.0:
            raise ValueError(f"factor must be < 1, got {factor!r}")
        self.patience = int(non_negative_number("patience", patience))
        self.threshold = non_negative_number("threshold", threshold)
        self.cooldown = int(non_negative_number("cooldown", cooldown))
        self.min_lr = non_negative_number("min_lr", min_lr)
        self.eps = non_negative_number("eps", eps)
        self._lr: float | None = None  # the last lr handed out, for the eps test
        self._best = math.inf
        self._bad = 0
        self._cooldown_left = 0
        self._scale = 1.0

    def lr(self, epoch: int, base_lr: float) -> float:
        if epoch == 0:
            self._best, self._bad, self._cooldown_left, self._scale = math.inf, 0, 0, 1.0
        self._lr = max(base_lr * self._scale, self.min_lr) if self._scale != 1.0 else base_lr
        return self._lr

    def observe(self, metric: float) -> None:
        if metric < self._best * (1.0 - self.threshold):
            self._best, self._bad = metric, 0
        else:
            self._bad += 1
        if self._cooldown_left > 0:
            self._cooldown_left -= 1
            self._bad = 0
        if self._bad > self.patience:
            old = self._lr
            if old is None or old - max(old * self.factor, self.min_lr) > self.eps:
                self._scale *= self.factor
            self._cooldown_left = self.cooldown
            self._bad = 0


SCHEDULES: Registry[type[Schedule]] = Registry("learning-rate schedule", {
    c.name: c for c in (Constant, StepLR, ExponentialLR, CosineAnnealingLR, WarmupCosine,
                        ReduceLROnPlateau)
})


def get_schedule(schedule: str | Schedule | None) -> Schedule:
    """A schedule from its name (defaults) or the instance; ``None`` is constant."""
    if schedule is None:
        return Constant()
    if isinstance(schedule, Schedule):
        return schedule
    return SCHEDULES.lookup(schedule)()
