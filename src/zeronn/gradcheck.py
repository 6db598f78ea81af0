"""Numerical gradients by central differences, and a report against backpropagation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from zeronn.losses import Loss
from zeronn.models import MLP

__all__ = ["GradCheckReport", "ParamCheck", "check_gradients"]


@dataclass(frozen=True)
class ParamCheck:
    """One parameter's comparison: ``max_abs_error`` and ``max_relative_error``.

    The relative error is ``max|analytic - numeric| / max(max|analytic|, max|numeric|,
    1e-3 * G, 1e-3 * |L|)`` over the parameter's elements, where ``G`` is the largest
    gradient element of the whole network and ``L`` the loss (0 when all is exactly 0).
    Central differences carry rounding noise of about ``1e-16 |L| / eps`` (1e-10 |L| at
    the default eps); taking the error relative to the parameter's largest gradient (not
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
        lines = [f"{'param':<6} {'shape':<12} {'max abs err':>12} {'max rel err':>12}"]
        for p in self.params:
            lines.append(f"{p.name:<6} {p.shape!s:<12} {p.max_abs_error:>12.3e} "
                         f"{p.max_relative_error:>12.3e}")
        lines.append(f"worst relative error: {self.max_relative_error:.3e}")
        return "\n".join(lines)


def check_gradients(net: MLP, X: Any, y: Any, loss: str | Loss = "mse",
                    eps: float = 1e-6) -> GradCheckReport:
    """Compares backpropagation's gradients with central differences, in float64.

    Works on a float64 copy of ``net`` (the network itself is untouched), perturbing each
    parameter element by ``+-eps``: ``(L(p + eps) - L(p - eps)) / (2 eps)``.
    """
    net64 = net.copy(dtype="float64")
    loss_obj = net64.check_loss(loss)
    Xc, yc = net64.check_data(X, y)
    assert yc is not None
    value = net64.loss_grad(Xc, yc, loss_obj)
    analytic = [g.copy() for g in net64.grads]
    names = [f"{kind}{i + 1}" for i in range(len(net64.layers)) for kind in ("W", "b")]
    numerics = []
    for p in net64.params:
        numeric = np.empty_like(p)
        flat, nflat = p.reshape(-1), numeric.reshape(-1)
        for k in range(flat.size):
            orig = flat[k]
            flat[k] = orig + eps
            up = net64.loss_grad(Xc, yc, loss_obj)
            flat[k] = orig - eps
            down = net64.loss_grad(Xc, yc, loss_obj)
            flat[k] = orig
            nflat[k] = (up - down) / (2 * eps)
        numerics.append(numeric)
    biggest = max(float(np.max(np.abs(g))) for g in analytic + numerics)
    checks = []
    for name, a, numeric in zip(names, analytic, numerics):
        err = float(np.max(np.abs(a - numeric)))
        scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(numeric))),
                    1e-3 * biggest, 1e-3 * abs(value))
        checks.append(ParamCheck(name, a.shape, err, err / scale if scale > 0 else 0.0))
    return GradCheckReport(value, checks)
