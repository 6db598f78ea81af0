"""Flatten: from images to the features a dense layer takes.

x (n, C, H, W) -> (n, C*H*W), in the (C, H, W) order of ``torch.flatten(x, 1)`` (row-major:
the width varies fastest), so a model copied from PyTorch gets its dense weights in the
same order. Forward and backward are reshapes (views, no copy, when the array allows).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn.layers.base import Layer, Shape

__all__ = ["Flatten"]


class Flatten(Layer):
    """Flattens every axis but the batch: x (n, *shape) -> (n, prod(shape)), torch's order."""

    kind = "flatten"

    def __init__(self) -> None:
        self._out: NDArray | None = None

    def build(self, input_shape: Shape, dtype: np.dtype) -> Shape:
        super().build(input_shape, dtype)
        self.output_shape = (math.prod(self.input_shape),)
        return self.output_shape

    def config(self) -> dict[str, Any]:
        return {}

    def release(self) -> None:
        self._out = None

    def forward(self, x: NDArray, training: bool = False) -> NDArray:
        self._out = x.reshape(x.shape[0], self.output_shape[0])
        return self._out

    def backward(self, dout: NDArray, need_dx: bool = True) -> NDArray | None:
        """dL/dout (n, prod(shape)) -> dL/dx (n, *shape)."""
        return dout.reshape(dout.shape[0], *self.input_shape) if need_dx else None

    def infer(self, x: NDArray) -> NDArray:
        return x.reshape(x.shape[0], self.output_shape[0])

    def __repr__(self) -> str:
        return "Flatten()"
