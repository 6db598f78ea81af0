"""Batch and layer normalization (chapter 6 of the from-scratch books), as PyTorch defines them.

Both compute ``x_hat = (x - mean) / sqrt(var + eps)`` and output ``gamma * x_hat + beta``
(``gamma``, ``beta`` learnable, starting at 1 and 0). They differ in what they average:

- ``BatchNorm`` (``torch.nn.BatchNorm1d``/``2d``): over the batch (and the spatial axes of
  (n, C, H, W) inputs), per feature or channel. Training uses the batch's mean and
  *biased* variance and updates the running statistics
  ``running = (1 - momentum) * running + momentum * batch`` with the *unbiased* batch
  variance; evaluation uses the running statistics. They are state (saved in model
  files), not parameters.
- ``LayerNorm`` (``torch.nn.LayerNorm``): over each sample's features; the same in
  training and evaluation.

Backward, with ``m`` the number of values averaged and ``dxh = dout * gamma``::

    dgamma = sum(dout * x_hat)      dbeta = sum(dout)          (over the averaged axes' complement)
    dx     = (dxh - mean(dxh) - x_hat * mean(dxh * x_hat)) / sqrt(var + eps)

(in evaluation mode BatchNorm is affine, ``dx = dxh / sqrt(running_var + eps)``).

LayerNorm's training passes run as compiled row-by-row kernels (``zeronn._fast.norm``)
when numba is installed and not switched off (``ZERONN_NO_FAST=1``): the same formulas
in two passes instead of about seven, equal to the NumPy code here to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._fast import available as fast_available
from zeronn.layers.base import BufferCache, Layer, Param, Shape

__all__ = ["BatchNorm", "LayerNorm"]


def fast_kernels() -> Any:
    """zeronn._fast.norm's compiled LayerNorm kernels when numba is installed and not
    switched off (``ZERONN_NO_FAST=1``), else None: the NumPy code below."""
    if not fast_available():
        return None
    from zeronn._fast.norm import kernels

    return kernels()


def _eps(eps: Any) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return float(eps)


class _Norm(Layer):
    """What BatchNorm and LayerNorm share: gamma/beta, x_hat buffers, the affine backward."""

    param_names = ("gamma", "beta")
    no_decay = ("gamma", "beta")
    gamma = Param()
    beta = Param()
    _gamma: NDArray  # the live views (set by bind)
    _beta: NDArray
    dgamma: NDArray
    dbeta: NDArray

    def __init__(self, eps: float) -> None:
        self.eps = _eps(eps)
        self._cache: BufferCache[tuple[NDArray, NDArray]] | None = None
        self._xhat: NDArray | None = None
        self._out: NDArray | None = None
        self._inv_std: NDArray | None = None

    def param_shape(self) -> Shape:
        raise NotImplementedError

    def param_shapes(self) -> list[Shape]:
        return [self.param_shape(), self.param_shape()]

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> tuple[NDArray, NDArray]:
        return (np.empty((n, *self.input_shape), self.dtype),
                np.empty((n, *self.input_shape), self.dtype))

    def initialize(self, rng: np.random.Generator) -> None:
        self._gamma.fill(1)
        self._beta.fill(0)

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self._xhat = self._out = self._inv_std = None

    def _affine(self, xhat: NDArray, out: NDArray, bshape: Shape) -> NDArray:
        np.multiply(xhat, self._gamma.reshape(bshape), out=out)
        out += self._beta.reshape(bshape)
        return out

    def _param_grads(self, dout: NDArray, xhat: NDArray, axes: tuple[int, ...],
                     work: NDArray) -> None:
        np.multiply(dout, xhat, out=work)
        self.dgamma[...] = work.sum(axis=axes).reshape(self.dgamma.shape)
        self.dbeta[...] = dout.sum(axis=axes).reshape(self.dbeta.shape)

    @staticmethod
    def _normalized_backward(dxh: NDArray, xhat: NDArray, inv_std: NDArray,
                             axes: tuple[int, ...], work: NDArray) -> NDArray:
        """dx = (dxh - mean(dxh) - x_hat * mean(dxh * x_hat)) * inv_std, in ``dxh``'s place."""
        np.multiply(dxh, xhat, out=work)
        mean_dxh_xhat = work.mean(axis=axes, keepdims=True)
        mean_dxh = dxh.mean(axis=axes, keepdims=True)
        np.multiply(xhat, mean_dxh_xhat, out=work)
        dxh -= mean_dxh
        dxh -= work
        dxh *= inv_std
        return dxh


class BatchNorm(_Norm):
    """Batch normalization: (n, features) or (n, C, H, W) -> the same, per feature/channel.

    ``momentum``: the weight of each batch in the running statistics (``None``: their
    cumulative average, as torch). ``running_mean``, ``running_var`` (features,) and
    ``num_batches_tracked`` are state. A training batch of one value per feature raises
    ``ValueError`` (its variance is undefined), as torch does.
    """

    kind = "batchnorm"
    state_names = ("running_mean", "running_var", "num_batches_tracked")

    def __init__(self, momentum: float | None = 0.1, eps: float = 1e-5) -> None:
        super().__init__(eps)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(
                momentum, (int, float)) or not 0 <= momentum <= 1):
            raise ValueError(f"BatchNorm momentum must be a number in [0, 1] or None, "
                             f"got {momentum!r}")
        self.momentum = None if momentum is None else float(momentum)
        self._training = False

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"BatchNorm takes (n, features) or (n, C, H, W) inputs, got "
                             f"(n, {', '.join(map(str, input_shape))})")
        super().build(input_shape, dtype)
        c = self.input_shape[0]
        self._axes = (0,) if len(input_shape) == 1 else (0, 2, 3)
        self._bshape = (1, c) if len(input_shape) == 1 else (1, c, 1, 1)
        self.running_mean = np.zeros(c, self.dtype)
        self.running_var = np.ones(c, self.dtype)
        self.num_batches_tracked = np.zeros((), np.int64)
        return self.output_shape

    def param_shape(self) -> Shape:
        return (self.input_shape[0],)

    def initialize(self, rng: np.random.Generator) -> None:
        super().initialize(rng)
        self.running_mean.fill(0)
        self.running_var.fill(1)
        self.num_batches_tracked[...] = 0

    def config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "eps": self.eps}

    def set_state(self, state: dict[str, NDArray]) -> None:
        """Copies saved running statistics in, after checking them: a negative variance
        would make every prediction NaN, a negative count is no count of batches."""
        for name in ("running_var", "num_batches_tracked"):
            value = np.asarray(state[name])
            if value.dtype.kind in "biuf" and (value < 0).any():
                raise ValueError(f"BatchNorm state {name!r} holds negative values: running "
                                 "variances and batch counts are >= 0 (a damaged or edited "
                                 "model)")
        super().set_state(state)

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        xhat, out = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        axes, bshape = self._axes, self._bshape
        if training:
            m = x.size // self.input_shape[0]
            if m < 2:
                raise ValueError(
                    f"BatchNorm needs more than 1 value per feature when training, got a "
                    f"batch of shape {x.shape}: use batches of at least 2 rows (pick a "
                    f"batch_size that leaves no batch of 1 row)")
            mean = x.mean(axis=axes, keepdims=True)
            np.subtract(x, mean, out=xhat)
            var = np.mean(np.square(xhat), axis=axes, keepdims=True)  # biased
            self._update_running(mean.reshape(-1), var.reshape(-1), m)
        else:
            mean = self.running_mean.reshape(bshape)
            var = self.running_var.reshape(bshape)
            np.subtract(x, mean, out=xhat)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        self._xhat, self._inv_std, self._training = xhat, inv_std, training
        self._out = self._affine(xhat, out, bshape)
        return self._out

    def _update_running(self, mean: NDArray, var: NDArray, m: int) -> None:
        self.num_batches_tracked += 1
        f = (1.0 / float(self.num_batches_tracked) if self.momentum is None
             else self.momentum)
        # torch: running_var uses the unbiased variance of the batch (m / (m - 1)).
        self.running_mean *= 1 - f
        self.running_mean += f * mean
        self.running_var *= 1 - f
        self.running_var += f * var * (m / (m - 1))

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        xhat, inv_std = self._xhat, self._inv_std
        if xhat is None or inv_std is None or self._out is None:
            raise ValueError("backward() needs a forward() first")
        work = self._out  # the output is no longer needed: scratch
        self._param_grads(dout, xhat, self._axes, work)
        if not need_dx:
            return None
        dout *= self._gamma.reshape(self._bshape)
        if not self._training:  # running statistics are constants: an affine map
            dout *= inv_std
            return dout
        return self._normalized_backward(dout, xhat, inv_std, self._axes, work)

    def infer(self, x: NDArray) -> NDArray:
        bshape = self._bshape
        xhat = (x - self.running_mean.reshape(bshape)) / np.sqrt(
            self.running_var.reshape(bshape) + self.eps)
        return self._affine(xhat, xhat, bshape)

    def __repr__(self) -> str:
        return f"BatchNorm(momentum={self.momentum!r}, eps={self.eps!r})"


class LayerNorm(_Norm):
    """Layer normalization over each sample's features: (n, ...) -> the same.

    ``gamma``, ``beta`` have the input's shape without the batch axis (torch's
    ``LayerNorm(normalized_shape=input_shape)``), except for a sequence (n, T, D): each
    step is normalized over its own D features, with ``gamma``, ``beta`` of shape (D,)
    (torch's ``LayerNorm(D)``, as in a transformer).
    """

    kind = "layernorm"
    time_flexible = True

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__(eps)

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        self._sequence = len(self.input_shape) == 2
        if self._sequence:  # (n, T, D): per step, over D; gamma and beta shared by the steps
            self._axes: tuple[int, ...] = (2,)
            self._bshape: Shape = (1, 1, self.input_shape[1])
            self._batch_axes: tuple[int, ...] = (0, 1)
        else:
            self._axes = tuple(range(1, len(self.input_shape) + 1))
            self._bshape = (1, *self.input_shape)
            self._batch_axes = (0,)
        return self.output_shape

    def param_shape(self) -> Shape:
        return self.input_shape[-1:] if self._sequence else self.input_shape

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def _normalize(self, x: NDArray, xhat: NDArray) -> NDArray:
        axes = self._axes
        np.subtract(x, x.mean(axis=axes, keepdims=True), out=xhat)
        var = np.mean(np.square(xhat), axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        xhat *= inv_std
        return inv_std

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        xhat, out = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        fast = fast_kernels() if x.flags.c_contiguous else None
        if fast is not None:  # the normalized axes are the trailing ones: rows of x
            width = self._gamma.size
            inv_std = np.empty(x.size // width, self.dtype)
            fast.layernorm_forward(x.reshape(-1, width), self._gamma.reshape(-1),
                                   self._beta.reshape(-1), self.dtype.type(self.eps),
                                   xhat.reshape(-1, width), out.reshape(-1, width), inv_std)
            self._inv_std = inv_std.reshape(*x.shape[:x.ndim - len(self._axes)],
                                            *(1,) * len(self._axes))
            self._out = out
        else:
            self._inv_std = self._normalize(x, xhat)
            self._out = self._affine(xhat, out, self._bshape)
        self._xhat = xhat
        return self._out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        xhat, inv_std = self._xhat, self._inv_std
        if xhat is None or inv_std is None or self._out is None:
            raise ValueError("backward() needs a forward() first")
        fast = fast_kernels() if dout.flags.c_contiguous else None
        if fast is not None:
            width = self._gamma.size
            fast.layernorm_backward(dout.reshape(-1, width), xhat.reshape(-1, width),
                                    inv_std.reshape(-1), self._gamma.reshape(-1),
                                    self.dgamma.reshape(-1), self.dbeta.reshape(-1), need_dx)
            return dout if need_dx else None
        work = self._out
        self._param_grads(dout, xhat, self._batch_axes, work)
        if not need_dx:
            return None
        dout *= self._gamma.reshape(self._bshape)
        return self._normalized_backward(dout, xhat, inv_std, self._axes, work)

    def infer(self, x: NDArray) -> NDArray:
        xhat = np.empty_like(x)
        self._normalize(x, xhat)
        return self._affine(xhat, xhat, self._bshape)

    def __repr__(self) -> str:
        return f"LayerNorm(eps={self.eps!r})"
