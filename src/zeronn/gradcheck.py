"""Numerical gradients by central differences, and a report against backpropagation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.losses import Loss
from zeronn.network import Network

__all__ = ["GradCheckReport", "ParamCheck", "check_gradients"]


@dataclass(frozen=True)
class ParamCheck:
    """One parameter's comparison: ``max_abs_error`` and ``max_relative_error``.

    The relative error is ``max|analytic - numeric| / max(max|analytic|, max|numeric|,
    1e-3 * G, 1e-3 * |L|)`` over the parameter's elements, where ``G`` is the largest
    gradient element of the whole network and ``L`` the loss (0 when all is exactly 0).
    The differences carry rounding noise of about ``3e-16 |L| / eps`` (3e-11 |L| at the
    default eps); taking the error relative to the parameter's largest gradient (not
    element by element), with those floors, keeps that noise from posing as an error
    where a gradient is ~0 (a dead unit, a balanced residual, a flat region), while a
    wrong formula still shows up at full size.
    """

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_relative_error: float


@dataclass(frozen=True)
class GradCheckReport:
    """The per-parameter checks of :func:`check_gradients`."""

    loss: float
    params: list[ParamCheck] = field(default_factory=list)

    @property
    def max_relative_error(self) -> float:
        """The worst relative error over all parameters."""
        return max((p.max_relative_error for p in self.params), default=0.0)

    def passed(self, tol: float = 1e-6) -> bool:
        """True when every parameter's relative error is below ``tol``."""
        return self.max_relative_error < tol

    def __str__(self) -> str:
        w = max([6, *(len(p.name) for p in self.params)])  # "W1", "gamma12", ...
        lines = [f"{'param':<{w}} {'shape':<12} {'max abs err':>12} {'max rel err':>12}"]
        for p in self.params:
            lines.append(f"{p.name:<{w}} {p.shape!s:<12} {p.max_abs_error:>12.3e} "
                         f"{p.max_relative_error:>12.3e}")
        lines.append(f"worst relative error: {self.max_relative_error:.3e}")
        return "\n".join(lines)


def check_gradients(net: Network, X: Any, y: Any, loss: str | Loss = "mse",
                    eps: float = 1e-5, training: bool = True) -> GradCheckReport:
    """Compares backpropagation's gradients with central differences, in float64.

    X (n, *input_shape), y (n, n_outputs). Works on a float64 copy of ``net`` (any
    :class:`~zeronn.network.Network`; the network itself, its parameters, states, random
    generator and last dropout masks, is left as it was), perturbing each parameter
    element by ``+-eps`` and ``+-eps/2``: with ``D(h) = (L(p + h) - L(p - h)) / (2 h)``,
    the numeric gradient is Richardson's ``(4 D(eps/2) - D(eps)) / 3``, whose truncation
    error is O(eps^4) instead of central differences' O(eps^2).

    ``training`` (default True) evaluates the loss as a training step does: Dropout drops
    and BatchNorm normalizes with the batch's statistics. Every evaluation, the analytic
    one included, then starts from the same state: the random layers draw from a fresh
    generator seeded alike (the same dropout masks each time), and the running statistics
    are put back (each training-mode pass updates them). ``training=False`` checks the
    evaluation-mode loss (no dropout, BatchNorm's running statistics).
    """
    net64 = copy.deepcopy(net)  # copy_network would release the original's buffers (masks)
    if net64.dtype != np.float64:
        net64 = net64.copy_network(dtype="float64")
    loss_obj = net64.check_loss(loss)
    Xc, yc = net64.check_data(X, y)
    assert yc is not None
    states = [{k: v.copy() for k, v in st.items()} for st in net64.states()]

    def evaluate() -> float:
        for layer, st in zip(net64.layers, states):
            layer.set_state(st)
        net64.set_rng(np.random.default_rng(0))  # any seed: the same one every time
        return net64.loss_grad(Xc, yc, loss_obj, training=training)

    value = evaluate()
    analytic = [g.copy() for g in net64.grads]
    names = [f"{name}{i + 1}" for i, layer in enumerate(net64.layers)
             for name in layer.param_names]
    numerics = []
    for p in net64.params:
        numeric = np.empty_like(p)
        flat, nflat = p.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            # Richardson's extrapolation cancels the h^2 term of the truncation error,
            # which is what a steep spot (normalizing nearly equal values) makes large.
            nflat[k] = (4 * _central(evaluate, flat, k, eps / 2)
                        - _central(evaluate, flat, k, eps)) / 3
        numerics.append(numeric)
    biggest = max((float(np.max(np.abs(g))) for g in analytic + numerics), default=0.0)
    checks = []
    for name, a, numeric in zip(names, analytic, numerics):
        err = float(np.max(np.abs(a - numeric)))
        scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(numeric))),
                    1e-3 * biggest, 1e-3 * abs(value))
        checks.append(ParamCheck(name, a.shape, err, err / scale if scale > 0 else 0.0))
    return GradCheckReport(value, checks)


def _central(evaluate: Callable[[], float], flat: NDArray, k: int, h: float) -> float:
    """``(L(p + h) - L(p - h)) / (2 h)`` for element ``k`` of ``flat`` (put back after)."""
    orig = flat[k]
    flat[k] = orig + h
    up = evaluate()
    flat[k] = orig - h
    down = evaluate()
    flat[k] = orig
    return (up - down) / (2 * h)
