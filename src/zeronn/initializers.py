"""Weight initializers: ``init(rng, fan_in, fan_out, dtype) -> W`` of shape (fan_in, fan_out).

Biases always start at zero, as in the seed. ``standard_normal`` is the seed's own
``np.random.randn`` (drawn here from the network's ``np.random.Generator``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from zeronn._registry import Registry

__all__ = ["INITIALIZERS", "get_initializer"]

Initializer = Callable[[np.random.Generator, int, int, np.dtype], NDArray]


def standard_normal(
    rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype
) -> NDArray:
    """N(0, 1), the seed's ``np.random.randn(fan_in, fan_out)``."""
    return rng.standard_normal((fan_in, fan_out)).astype(dtype, copy=False)


def he_normal(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> NDArray:
    """N(0, 2 / fan_in): keeps ReLU activations' variance steady through depth."""
    std = math.sqrt(2.0 / fan_in)
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype, copy=False)


def he_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> NDArray:
    """U(-l, l), l = sqrt(6 / fan_in)."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype, copy=False)


def glorot_normal(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> NDArray:
    """N(0, 2 / (fan_in + fan_out)): suited to tanh and sigmoid."""
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal((fan_in, fan_out)) * std).astype(dtype, copy=False)


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> NDArray:
    """U(-l, l), l = sqrt(6 / (fan_in + fan_out))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype, copy=False)


def gpt_normal(rng: np.random.Generator, fan_in: int, fan_out: int, dtype: np.dtype) -> NDArray:
    """N(0, 0.02^2): GPT-2's (and nanoGPT's) weights and embeddings, whatever the size."""
    return (rng.standard_normal((fan_in, fan_out)) * 0.02).astype(dtype, copy=False)


INITIALIZERS: Registry[Initializer] = Registry("initializer", {
    f.__name__: f for f in (standard_normal, he_normal, he_uniform, glorot_normal, glorot_uniform,
                            gpt_normal)
}, aliases={"xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
            "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform"})


def get_initializer(init: str | Initializer) -> Initializer:
    """An initializer function from its name (or a callable with the same signature)."""
    if callable(init):
        return init
    return INITIALIZERS.lookup(init)
