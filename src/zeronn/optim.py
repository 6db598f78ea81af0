"""Optimizers with ``torch.optim``'s update rules and defaults (schedules: ``zeronn.schedules``).

One base class owns ``step(params, grads)`` (in place, keeping its own state per
parameter position); each optimizer writes one short ``_update``, which puts the
update into the gradient's buffer without touching the parameters (so the training loop
can check an update before applying it). The formulas are
PyTorch's (``torch.optim`` docs, non-foreach single-tensor path), so trajectories can be
compared to it number for number. ``grads`` are never modified by ``step``; the training
loop, which owns its gradient buffer, lets the optimizer reuse it as scratch space
(``scratch_grads=True``) so an update allocates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._registry import Registry
from zeronn._validation import non_negative_number, positive_number

# The schedules live in zeronn.schedules; re-exported so ``zn.optim.StepLR`` keeps working.
from zeronn.schedules import (
    SCHEDULES,
    Constant,
    CosineAnnealingLR,
    ExponentialLR,
    ReduceLROnPlateau,
    Schedule,
    StepLR,
    WarmupCosine,
    get_schedule,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Constant",
    "CosineAnnealingLR",
    "ExponentialLR",
    "Optimizer",
    "RMSProp",
    "ReduceLROnPlateau",
    "Schedule",
    "StepLR",
    "WarmupCosine",
    "get_optimizer",
    "get_schedule",
]

State = dict[str, NDArray]

#: What weight decay applies to: every parameter (torch's one parameter group), or only
#: the weights ("weights": matrices and embeddings, not biases nor normalization gains,
#: as nanoGPT's AdamW groups them).
DECAY_CHOICES = ("all", "weights")

# Elements per chunk of the chunked updates (flat buffers over twice this size): the
# slices of the four arrays stay in the L2 cache across the elementwise passes. Measured
# best among 8k..128k for 80k to 1.6M float32/float64 parameters.
_CHUNK = 65536


class Optimizer:
    """Base class: ``step(params, grads)`` updates ``params`` in place.

    ``lr`` is the current learning rate (schedules change it); ``initial_lr`` the one
    given. ``t`` counts steps taken. ``state`` holds one dict of arrays per parameter.

    A subclass writes ``_update(p, g, s, scratch)``: given one piece of a parameter
    ``p``, its gradient ``g`` and the matching pieces of its state arrays ``s``, it updates
    the state and leaves the update ``delta`` in ``g`` (``p + delta`` is the new value),
    without touching ``p``; ``scratch`` is a work array of ``p``'s shape. The base class
    cuts large contiguous buffers into cache-sized pieces and applies the updates.
    """

    name = "optimizer"
    _state_keys: tuple[str, ...] = ()

    def __init__(self, lr: float, weight_decay: float = 0.0, decay: str = "all") -> None:
        self.lr = positive_number("lr", lr)
        self.initial_lr = self.lr
        self.weight_decay = non_negative_number("weight_decay", weight_decay)
        if decay not in DECAY_CHOICES:
            raise ValueError(f"decay must be one of {', '.join(map(repr, DECAY_CHOICES))}, "
                             f"got {decay!r}")
        self.decay = decay
        #: With ``decay="weights"``: one array per parameter (1 where weight decay applies,
        #: 0 elsewhere), set by the training loop from the network (``Network.decay_mask``).
        self.decay_mask: list[NDArray] | None = None
        self.t = 0
        self.state: list[State] = []
        self._scratch: NDArray | None = None  # work space of one piece, made on first use

    def hyperparameters(self) -> dict[str, Any]:
        """The constructor arguments, to rebuild an equal optimizer."""
        hp: dict[str, Any] = {"lr": self.initial_lr, "weight_decay": self.weight_decay}
        if self.decay != "all":  # files of optimizers without the choice stay the same
            hp["decay"] = self.decay
        return hp

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def reset(self) -> None:
        """Forgets the state (moments, step count) and restores ``initial_lr``."""
        self.t, self.state, self.lr = 0, [], self.initial_lr

    def step(self, params: Sequence[NDArray], grads: Sequence[NDArray],
             scratch_grads: bool = False) -> None:
        """One update of every parameter in place. ``scratch_grads``: grads may be overwritten."""
        self.prepare(params, grads)
        if not scratch_grads:  # the caller's grads stay as they are: update from copies
            copies = []
            for g, s in zip(grads, self.state):
                if "scratch" not in s:
                    s["scratch"] = np.empty_like(g)
                np.copyto(s["scratch"], g)
                copies.append(s["scratch"])
            grads = copies
        self.step_prepared(params, grads)

    def prepare(self, params: Sequence[NDArray], grads: Sequence[NDArray]) -> None:
        """Creates the state for ``params`` (or checks that it fits them); ``step`` calls it.

        The training loop calls it once, then :meth:`updates_prepared` for every batch.
        """
        if len(params) != len(grads):
            raise ValueError(f"got {len(params)} params but {len(grads)} grads")
        if not self.state:
            self.state = [self._init_state(p) for p in params]
        elif len(self.state) != len(params) or any(
            s and next(iter(s.values())).shape != p.shape for s, p in zip(self.state, params)
        ):
            raise ValueError(f"{type(self).__name__} holds state for other parameters: use a "
                             "new optimizer (or .reset()) for a different network")

    def step_prepared(self, params: Sequence[NDArray], grads: Sequence[NDArray]) -> None:
        """``step(params, grads, scratch_grads=True)`` after :meth:`prepare` checked the state."""
        self.updates_prepared(params, grads)
        for p, g in zip(params, grads):
            p += g

    def updates_prepared(self, params: Sequence[NDArray], grads: Sequence[NDArray]) -> float:
        """Advances the state one step and leaves each parameter's update in its gradient
        buffer (``params`` untouched); returns the squared norm of all the updates.

        The hot loop's step, after :meth:`prepare`: no checks, no allocation after the
        first call (``grads`` are overwritten). The training loop applies the updates
        (``p += g``) only once it knows the result is finite.
        """
        self.t += 1
        self._begin_step()
        total = 0.0
        masks = self.decay_mask if self.decay != "all" and self.weight_decay else None
        for i, (p, g, s) in enumerate(zip(params, grads, self.state)):
            n = p.size
            if masks is not None:  # rides along with the state's pieces (not saved)
                s = {**s, "decay_mask": masks[i].reshape(p.shape)}
            if not (p.flags.c_contiguous and g.flags.c_contiguous):  # rare: no flat views
                self._update(p, g, s, np.empty_like(p))
                total += float(np.vdot(g, g))
                continue
            # Large buffers piece by piece: each piece's arrays stay in the cache across
            # the update's passes and the norm, instead of being read from memory each time.
            size = n if n <= 2 * _CHUNK else _CHUNK
            scratch = self._scratch
            if scratch is None or scratch.size < size or scratch.dtype != p.dtype:
                scratch = self._scratch = np.empty(size, p.dtype)
            if size == n:  # one piece (most networks): no views to make
                self._update(p, g, s, scratch[:n].reshape(p.shape))
                total += float(np.vdot(g, g))
                continue
            pf, gf = p.reshape(-1), g.reshape(-1)
            sf = {k: a.reshape(-1) for k, a in s.items()}
            for lo in range(0, n, size):
                hi = min(lo + size, n)
                gc = gf[lo:hi]
                self._update(pf[lo:hi], gc, {k: a[lo:hi] for k, a in sf.items()},
                                scratch[:hi - lo])
                total += float(np.dot(gc, gc))
        return total

    def _begin_step(self) -> None:
        """Per-step constants (after ``t`` advanced), computed once for all the pieces."""

    def init_state(self, p: NDArray) -> State:
        """The state a parameter shaped like ``p`` starts with (what the first step creates;
        model files check a saved state's keys against it)."""
        return self._init_state(p)

    def _init_state(self, p: NDArray) -> State:
        return {k: np.zeros_like(p) for k in self._state_keys}

    def _decay(self, p: NDArray, g: NDArray, scratch: NDArray, s: State) -> None:
        # L2 penalty folded into the gradient (torch: grad = grad.add(param, alpha=wd)).
        if self.weight_decay:
            np.multiply(p, self.weight_decay, out=scratch)
            _mask(scratch, s)
            g += scratch

    def prepare_decay(self, mask: Callable[[], NDArray]) -> None:
        """Sets ``decay_mask`` to ``[mask()]`` for a flat parameter buffer (the training
        loop's) when this optimizer decays only the weights (the mask is made only then)."""
        if self.decay != "all":
            self.decay_mask = [mask()]

    def _update(self, p: NDArray, g: NDArray, s: State, scratch: NDArray) -> None:
        raise NotImplementedError

    # -- persistence -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters, step count, current lr and state arrays (``scratch`` excluded)."""
        return {
            "name": self.name,
            "hyperparameters": self.hyperparameters(),
            "t": self.t,
            "lr": self.lr,
            "state": [{k: v for k, v in s.items() if k != "scratch"} for s in self.state],
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Restores what :meth:`state_dict` returned (arrays are copied)."""
        self.t = int(d["t"])
        self.lr = float(d["lr"])
        self.state = [{k: np.array(v) for k, v in s.items()} for s in d["state"]]


def _mask(update: NDArray, s: State) -> None:
    """Zeroes the decay term where ``decay="weights"`` leaves parameters alone."""
    mask = s.get("decay_mask")
    if mask is not None:
        update *= mask


class SGD(Optimizer):
    """Stochastic gradient descent, torch.optim.SGD: momentum buffer ``b = m b + (1 - dampening) g``
    (``b = g`` on the first step); ``nesterov`` steps along ``g + m b``."""

    name = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0, decay: str = "all") -> None:
        super().__init__(lr, weight_decay, decay)
        self.momentum = non_negative_number("momentum", momentum)
        self.dampening = non_negative_number("dampening", dampening)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError("nesterov=True needs momentum > 0 and dampening = 0")

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "momentum": self.momentum,
                "nesterov": self.nesterov, "dampening": self.dampening}

    def _init_state(self, p: NDArray) -> State:
        return {"momentum_buffer": np.zeros_like(p)} if self.momentum else {}

    def _update(self, p: NDArray, g: NDArray, s: State, scratch: NDArray) -> None:
        self._decay(p, g, scratch, s)
        if self.momentum:
            buf = s["momentum_buffer"]
            if self.t == 1:
                np.copyto(buf, g)
            else:
                buf *= self.momentum
                if self.dampening:
                    np.multiply(g, 1.0 - self.dampening, out=scratch)
                    buf += scratch
                else:
                    buf += g
            if self.nesterov:
                np.multiply(buf, self.momentum, out=scratch)
                g += scratch
            else:
                np.copyto(g, buf)
        g *= -self.lr


class AdaGrad(Optimizer):
    """torch.optim.Adagrad: ``sum += g^2``; ``p -= lr g / (sqrt(sum) + eps)``."""

    name = "adagrad"
    _state_keys = ("sum",)

    def __init__(self, lr: float = 0.01, eps: float = 1e-10, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, decay: str = "all") -> None:
        super().__init__(lr, weight_decay, decay)
        self.eps = positive_number("eps", eps)
        self.initial_accumulator_value = non_negative_number(
            "initial_accumulator_value", initial_accumulator_value)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "eps": self.eps,
                "initial_accumulator_value": self.initial_accumulator_value}

    def _init_state(self, p: NDArray) -> State:
        return {"sum": np.full_like(p, self.initial_accumulator_value)}

    def _update(self, p: NDArray, g: NDArray, s: State, scratch: NDArray) -> None:
        self._decay(p, g, scratch, s)
        acc = s["sum"]
        np.multiply(g, g, out=scratch)
        acc += scratch
        np.sqrt(acc, out=scratch)
        scratch += self.eps
        g /= scratch
        g *= -self.lr


class RMSProp(Optimizer):
    """torch.optim.RMSprop: ``v = alpha v + (1 - alpha) g^2``; ``p -= lr g / (sqrt(v) + eps)``,
    through a momentum buffer ``b = m b + g / (sqrt(v) + eps)`` when momentum > 0."""

    name = "rmsprop"

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0, centered: bool = False,
                 decay: str = "all") -> None:
        super().__init__(lr, weight_decay, decay)
        self.alpha = non_negative_number("alpha", alpha)
        self.eps = positive_number("eps", eps)
        self.momentum = non_negative_number("momentum", momentum)
        self.centered = bool(centered)

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "alpha": self.alpha, "eps": self.eps,
                "momentum": self.momentum, "centered": self.centered}

    def _init_state(self, p: NDArray) -> State:
        s = {"square_avg": np.zeros_like(p)}
        if self.momentum:
            s["momentum_buffer"] = np.zeros_like(p)
        if self.centered:
            s["grad_avg"] = np.zeros_like(p)
        return s

    def _update(self, p: NDArray, g: NDArray, s: State, scratch: NDArray) -> None:
        self._decay(p, g, scratch, s)
        v = s["square_avg"]
        v *= self.alpha
        np.multiply(g, g, out=scratch)
        scratch *= 1.0 - self.alpha
        v += scratch
        if self.centered:
            ga = s["grad_avg"]
            ga *= self.alpha
            np.multiply(g, 1.0 - self.alpha, out=scratch)
            ga += scratch
            np.multiply(ga, ga, out=scratch)
            np.subtract(v, scratch, out=scratch)
            np.sqrt(scratch, out=scratch)
        else:
            np.sqrt(v, out=scratch)
        scratch += self.eps
        g /= scratch
        if self.momentum:
            buf = s["momentum_buffer"]
            buf *= self.momentum
            buf += g
            np.multiply(buf, -self.lr, out=g)
        else:
            g *= -self.lr


class Adam(Optimizer):
    """torch.optim.Adam: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``;
    ``p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``. ``weight_decay`` is an
    L2 term added to the gradient (see :class:`AdamW` for the decoupled form)."""

    name = "adam"
    _state_keys = ("exp_avg", "exp_avg_sq")
    _decoupled = False

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False,
                 decay: str = "all") -> None:
        super().__init__(lr, weight_decay, decay)
        b1, b2 = betas
        for name, b in (("betas[0]", b1), ("betas[1]", b2)):
            if not (isinstance(b, (int, float)) and 0.0 <= b < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {b!r}")
        self.betas = (float(b1), float(b2))
        self.eps = positive_number("eps", eps)
        self.amsgrad = bool(amsgrad)
        self._coefs: tuple[float, ...] = ()

    def hyperparameters(self) -> dict[str, Any]:
        return {**super().hyperparameters(), "betas": list(self.betas), "eps": self.eps,
                "amsgrad": self.amsgrad}

    def _init_state(self, p: NDArray) -> State:
        s = super()._init_state(p)
        if self.amsgrad:
            s["max_exp_avg_sq"] = np.zeros_like(p)
        return s

    def _begin_step(self) -> None:
        b1, b2 = self.betas
        # torch: denom = sqrt(v) / bc2 + eps; p -= lr / bias1 * m / denom. Multiplying through
        # by bc2 saves a pass: p -= (lr / bias1 * bc2) * m / (sqrt(v) + eps * bc2).
        bc2 = math.sqrt(1.0 - b2 ** self.t)
        self._coefs = (b1, 1.0 - b1, b2, (1.0 - b2) / (1.0 - b1) ** 2, self.eps * bc2,
                       -self.lr / (1.0 - b1 ** self.t) * bc2)

    def _update(self, p: NDArray, g: NDArray, s: State, scratch: NDArray) -> None:
        if not self._decoupled:
            self._decay(p, g, scratch, s)
        _adam_pass(g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), *self._coefs)
        if self._decoupled and self.weight_decay:
            # torch multiplies p by (1 - lr wd) before adding the Adam step: the same update
            # written as one increment, -lr wd p + step (equal up to rounding).
            np.multiply(p, -self.lr * self.weight_decay, out=scratch)
            _mask(scratch, s)
            g += scratch


def _adam_pass(g: NDArray, m: NDArray, v: NDArray, vmax: NDArray | None,
               b1: float, c1: float, b2: float, c2: float, eps: float, step: float) -> None:
    """One Adam step of the moments in place, the update left in ``g``; allocates nothing.

    ``c1 = 1 - b1``, ``c2 = (1 - b2) / c1**2`` (applied to ``(c1 g)**2``), ``eps`` and
    ``step`` already scaled by the bias correction (see :meth:`Adam._begin_step`).
    """
    m *= b1
    g *= c1
    m += g  # m = b1 m + (1 - b1) g
    np.multiply(g, g, out=g)
    g *= c2
    v *= b2
    v += g  # v = b2 v + (1 - b2) g^2
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    np.sqrt(v, out=g)
    g += eps
    np.divide(m, g, out=g)
    g *= step


class AdamW(Adam):
    """torch.optim.AdamW: Adam with decoupled weight decay ``p *= 1 - lr * wd`` (default 0.01).

    ``decay="weights"`` decays only the weight matrices and embeddings, not biases nor
    normalization gains (nanoGPT's two parameter groups); ``"all"`` (torch's default, one
    group) decays every parameter. Every optimizer takes ``decay``.
    """

    name = "adamw"
    _decoupled = True

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False,
                 decay: str = "all") -> None:
        super().__init__(lr, betas, eps, weight_decay, amsgrad, decay)


OPTIMIZERS: Registry[type[Optimizer]] = Registry("optimizer", {
    c.name: c for c in (SGD, AdaGrad, RMSProp, Adam, AdamW)
})


def get_optimizer(optimizer: str | Optimizer, **kwargs: Any) -> Optimizer:
    """An optimizer instance from a name (with ``kwargs``) or the instance itself."""
    if isinstance(optimizer, Optimizer):
        return optimizer
    return OPTIMIZERS.lookup(optimizer)(**kwargs)
