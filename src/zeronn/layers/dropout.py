"""Inverted dropout, exactly as ``torch.nn.Dropout``.

Training: each value is kept with probability ``1 - rate`` and kept values are scaled by
``1 / (1 - rate)``, so the expected output equals the input and evaluation needs no
rescaling; evaluation: the identity. The masks are drawn from the layer's ``rng``, which
the network sets to the fit's own generator, so a seeded fit is reproducible and a
resumed fit continues the same random stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.layers.base import BufferCache, Layer, Shape

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zeroes a share ``rate`` of its inputs while training: x (n, ...) -> x * mask.

    ``mask`` (n, ...): the last training pass's multipliers, 0 or ``1 / (1 - rate)``.
    """

    kind = "dropout"
    time_flexible = True

    def __init__(self, rate: float = 0.5) -> None:
        if (isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating))
                or not 0 <= rate < 1):
            raise ValueError(f"Dropout rate must be a number in [0, 1), got {rate!r} "
                             "(the share of inputs dropped while training)")
        self.rate = float(rate)
        self.mask: NDArray | None = None
        self._cache: BufferCache[tuple[NDArray, NDArray, NDArray]] | None = None
        self._out: NDArray | None = None
        self._training = False

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        self._cache = BufferCache(self._make_buffers)
        return self.output_shape

    def _make_buffers(self, n: int) -> tuple[NDArray, NDArray, NDArray]:
        shape = (n, *self.input_shape)
        return np.empty(shape, self.dtype), np.empty(shape, self.dtype), np.empty(shape, np.bool_)

    def config(self) -> dict[str, Any]:
        return {"rate": self.rate}

    def release(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        self.mask = self._out = None

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        self._training = training and self.rate > 0
        if not self._training:
            self._out = x
            return x
        if self.rng is None:
            raise ValueError("Dropout has no random generator: use it inside a network")
        mask, out, keep = self._cache.fetch(x.shape[0])  # type: ignore[union-attr]
        self.rng.random(dtype=mask.dtype, out=mask)  # uniform [0, 1), in the layer's dtype
        np.greater_equal(mask, self.rate, out=keep)  # kept with probability 1 - rate
        np.multiply(keep, 1.0 / (1.0 - self.rate), out=mask)
        np.multiply(x, mask, out=out)
        self.mask, self._out = mask, out
        return out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        if self._training:
            assert self.mask is not None
            np.multiply(dout, self.mask, out=dout)
        return dout

    def infer(self, x: NDArray) -> NDArray:
        return x

    def __repr__(self) -> str:
        return f"Dropout({self.rate!r})"
