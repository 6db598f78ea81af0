"""Losses, each value beside its gradient, looked up by name from one table.

Regression losses (``mse``, ``mae``, ``huber``) are means over *all elements* of
(n_samples, n_outputs). Cross-entropies are means over *samples* (summed over outputs).

``value_and_grad(a, y, grad, work) -> float`` writes ``dL/da`` into ``grad``.

The categorical cross-entropy also takes class indices (N,) for its targets
(``sparse``, torch's ``cross_entropy`` with integer targets): the mean over the targets
that are not ``IGNORE_INDEX`` (-100, torch's default ``ignore_index``: padding).
Sequence outputs (n, T, K) reach every loss as n*T rows: the mean over every step.
The cross-entropies are only defined on their output activation, and there they use
the fused step ``dL/dz = (p - y) / N`` straight from the logits ``z`` (as scikit-learn's
``delta = y_pred - y``; valid for sigmoid + binary cross-entropy and softmax +
categorical cross-entropy with one-hot rows, and computed as ``(p * sum(y) - y) / N``
so it stays exact for soft targets). Their values are computed from the logits with
``logaddexp``/log-sum-exp, so logits of +-1000 stay finite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from zeronn._registry import Registry

__all__ = ["IGNORE_INDEX", "LOSSES", "Loss", "get_loss", "register_loss"]

#: A class index that marks a target to skip (torch's default ``ignore_index``).
IGNORE_INDEX = -100

ValueAndGrad = Callable[[NDArray, NDArray, NDArray, NDArray, "NDArray | None"], float]
FusedValueAndGrad = Callable[[NDArray, NDArray, NDArray, NDArray, "NDArray | None"], float]


@dataclass(frozen=True)
class Loss:
    """A named loss.

    ``value_and_grad(a, y, grad, work, w)``: loss of outputs ``a`` against ``y`` (both
    (N, K)); writes ``dL/da`` into ``grad``. For cross-entropies ``output_activation``
    names the only output activation they accept, and ``fused(z, p, y, grad, w)`` returns
    the loss from logits ``z`` and writes ``dL/dz`` into ``grad``. ``w`` is None or sample
    weights (N, 1) scaled to sum to N, making every mean a weighted mean.
    ``sparse(z, p, ids, grad, w)``: the same with class indices ``ids`` (N,) as targets.
    """

    name: str
    value_and_grad: ValueAndGrad | None
    output_activation: str | None = None
    fused: FusedValueAndGrad | None = None
    sparse: FusedValueAndGrad | None = None

    def __call__(self, y_pred: NDArray, y: NDArray) -> float:
        """The loss value of outputs ``y_pred`` against targets ``y`` (both (N, K))."""
        y_pred = np.asarray(y_pred, dtype=float)
        y = np.asarray(y, dtype=float).reshape(y_pred.shape)
        if self.fused is not None:
            return _ce_from_probabilities(self.name, y_pred, y)
        assert self.value_and_grad is not None
        return self.value_and_grad(y_pred, y, np.empty_like(y_pred), np.empty_like(y_pred), None)

    def sparse_step(self) -> FusedValueAndGrad:
        """``sparse``, or the user's ``ValueError`` for a loss that takes no class indices."""
        if self.sparse is None:
            raise ValueError(f"loss {self.name!r} takes one-hot or float targets, not class "
                             f"indices: use 'categorical_crossentropy'")
        return self.sparse

    def __repr__(self) -> str:
        return f"Loss({self.name!r})"


# 平均二乗誤差 (MSE): mean((a - y)^2); gradient 2 (a - y) / size. The seed's backward uses
# the summed error a - y, which is this gradient times size / 2 (hence lr 0.001 there is
# lr 0.05 here for its 100 samples).
def _mse(a: NDArray, y: NDArray, grad: NDArray, work: NDArray, w: NDArray | None) -> float:
    np.subtract(a, y, out=grad)
    if w is None:
        flat = grad.reshape(-1)
        value = float(np.dot(flat, flat)) / grad.size
    else:
        np.multiply(grad, w, out=work)
        value = float(np.vdot(work, grad)) / grad.size
        np.copyto(grad, work)
    grad *= 2.0 / grad.size
    return value


def _mae(a: NDArray, y: NDArray, grad: NDArray, work: NDArray, w: NDArray | None) -> float:
    np.subtract(a, y, out=grad)
    np.abs(grad, out=work)
    if w is not None:
        work *= w
    value = float(work.sum()) / grad.size
    np.sign(grad, out=grad)  # 0 at a == y, as PyTorch's l1_loss
    if w is not None:
        grad *= w
    grad *= 1.0 / grad.size
    return value


HUBER_DELTA = 1.0


def _huber(a: NDArray, y: NDArray, grad: NDArray, work: NDArray, w: NDArray | None) -> float:
    # With q = min(|d|, delta): loss = q (|d| - q / 2), which is d^2 / 2 inside and
    # delta (|d| - delta / 2) outside; the gradient is clip(d, -delta, delta).
    np.subtract(a, y, out=grad)
    np.abs(grad, out=work)
    q = np.minimum(work, HUBER_DELTA)
    work -= 0.5 * q
    work *= q
    if w is not None:
        work *= w
    value = float(work.sum()) / grad.size
    np.clip(grad, -HUBER_DELTA, HUBER_DELTA, out=grad)
    if w is not None:
        grad *= w
    grad *= 1.0 / grad.size
    return value


def _bce_fused(z: NDArray, p: NDArray, y: NDArray, grad: NDArray, w: NDArray | None) -> float:
    # -[y log p + (1 - y) log(1 - p)] = (1 - y) z + log(1 + e^-z), summed over outputs.
    # Element by element, as torch's binary_cross_entropy_with_logits: the difference of
    # the sums of log(1 + e^z) and y z would cancel a confident right answer's tiny loss
    # away (z = 30, y = 1: 30.0000000000001 - 30).
    n = z.shape[0]
    np.negative(z, out=grad)
    np.logaddexp(0, grad, out=grad)
    grad += (1.0 - y) * z
    if w is not None:
        grad *= w
    value = float(grad.sum()) / n
    np.subtract(p, y, out=grad)
    if w is not None:
        grad *= w
    grad *= 1.0 / n
    return value


def _cce_fused(z: NDArray, p: NDArray, y: NDArray, grad: NDArray, w: NDArray | None) -> float:
    # -sum_k y_k log softmax(z)_k = sum_k y_k (logsumexp(z - m) - (z_k - m)), m = max z.
    # Kept relative to m (as torch's log_softmax): adding m back and subtracting z_k would
    # cancel a confident right answer's log(1 + e^-gap) away.
    n = z.shape[0]
    m = z.max(axis=1, keepdims=True)
    np.subtract(z, m, out=grad)
    ysum = y.sum(axis=1, keepdims=True)
    y_shifted = (y * grad).sum(axis=1, keepdims=True) if w is not None else None
    y_dot_shifted = float(np.vdot(y, grad)) if w is None else 0.0
    np.exp(grad, out=grad)
    lse = np.log(grad.sum(axis=1, keepdims=True))
    if w is None:
        value = (float(np.vdot(ysum, lse)) - y_dot_shifted) / n
    else:
        per_sample = ysum * lse - y_shifted
        value = float(np.vdot(w, per_sample)) / n
    np.multiply(p, ysum, out=grad)
    grad -= y
    if w is not None:
        grad *= w
    grad *= 1.0 / n
    return value


def _cce_sparse(z: NDArray, p: NDArray, ids: NDArray, grad: NDArray,
                w: NDArray | None) -> float:
    # With class indices: -log softmax(z)[id] = logsumexp(z - m) - (z_id - m), and
    # dL/dz = (p - onehot(id)) / count, averaged over the targets that count (not
    # IGNORE_INDEX), as torch's cross_entropy(reduction="mean"). All ignored: 0 and no
    # gradient (torch gives NaN).
    keep = ids != IGNORE_INDEX
    rows = np.arange(ids.shape[0])
    safe = np.where(keep, ids, 0)
    m = z.max(axis=1, keepdims=True)
    np.subtract(z, m, out=grad)
    picked = grad[rows, safe]
    np.exp(grad, out=grad)
    per_row = np.log(grad.sum(axis=1)) - picked
    weight = keep.astype(z.dtype) if w is None else keep * w[:, 0]
    count = float(weight.sum())
    np.copyto(grad, p)
    grad[rows, safe] -= 1
    if count <= 0:
        grad.fill(0)
        return 0.0
    grad *= (weight / count)[:, None]
    return float(np.dot(weight, per_row)) / count


def _ce_from_probabilities(name: str, p: NDArray, y: NDArray) -> float:
    """Cross-entropy from probabilities (evaluation only); logs clipped to stay finite."""
    eps = np.finfo(p.dtype).eps
    pc = np.clip(p, eps, 1 - eps)
    if name == "binary_crossentropy":
        return float(-(y * np.log(pc) + (1 - y) * np.log1p(-pc)).sum() / p.shape[0])
    return float(-(y * np.log(pc)).sum() / p.shape[0])


LOSSES: Registry[Loss] = Registry("loss", {
    loss.name: loss
    for loss in (
        Loss("mse", _mse),
        Loss("mae", _mae),
        Loss("huber", _huber),
        Loss("binary_crossentropy", None, "sigmoid", _bce_fused),
        Loss("categorical_crossentropy", None, "softmax", _cce_fused, _cce_sparse),
    )
}, aliases={
    "squared_error": "mse",
    "mean_squared_error": "mse",
    "absolute_error": "mae",
    "mean_absolute_error": "mae",
    "bce": "binary_crossentropy",
    "log_loss": "binary_crossentropy",
    "cce": "categorical_crossentropy",
    "crossentropy": "categorical_crossentropy",
    "cross_entropy": "categorical_crossentropy",
})


def get_loss(loss: str | Loss) -> Loss:
    """A :class:`Loss` from its name (or the object itself)."""
    if isinstance(loss, Loss):
        return loss
    return LOSSES.lookup(loss)


def register_loss(
    name: str,
    value: Callable[[NDArray, NDArray], float],
    gradient: Callable[[NDArray, NDArray], NDArray],
) -> Loss:
    """Registers a user loss ``value(a, y) -> float`` with ``gradient(a, y) -> dL/da``.

    Both get outputs ``a`` and targets ``y`` of shape (n_samples, n_outputs).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"loss name must be a non-empty string, got {name!r}")

    def value_and_grad(a: NDArray, y: NDArray, grad: NDArray, work: NDArray,
                       w: NDArray | None) -> float:
        if w is not None:
            raise ValueError(f"loss {name!r} is a user loss: sample weights are not supported")
        grad[...] = gradient(a, y)
        return float(value(a, y))

    loss = Loss(name, value_and_grad)
    return LOSSES.register(name, loss)
