"""Shared fixtures: the seed's data and network, small random problems; the benchmarks' loader."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import settings

from zeronn.classic import NN, seed_data


@pytest.fixture
def seed_problem() -> tuple[np.ndarray, np.ndarray, NN]:
    """The seed's X (100, 2), y (100, 1) and its untrained NN(2, 5, 1), as the notebook has them."""
    X, y = seed_data()
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    return X, y, nn


# The seed notebook's printed output (shared/seed): the contract of zeronn.classic, the
# demo and the tutorial notebook.
SEED_LINES = [
    "Epoch 0, Loss: 10.1670", "Epoch 100, Loss: 0.0126", "Epoch 200, Loss: 0.0112",
    "Epoch 300, Loss: 0.0105", "Epoch 400, Loss: 0.0101", "Epoch 500, Loss: 0.0098",
    "Epoch 600, Loss: 0.0096", "Epoch 700, Loss: 0.0094", "Epoch 800, Loss: 0.0093",
    "Epoch 900, Loss: 0.0092",
]


@pytest.fixture
def seed_lines() -> list[str]:
    """The seed's ten ``Epoch k, Loss: ...`` lines, exactly as the notebook printed them."""
    return list(SEED_LINES)


def _central_differences(f: Callable[[np.ndarray], float], x: np.ndarray,
                         h: float = 1e-6) -> np.ndarray:
    """The gradient of scalar ``f`` at ``x`` by central differences, element by element."""
    numeric = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        numeric[idx] = (f(xp) - f(xm)) / (2 * h)
    return numeric


def param_loss(layer: Any, name: str, loss: Callable[[], float]) -> Callable[[np.ndarray], float]:
    """``f(p)``: ``loss()`` with the layer's parameter ``name`` set to ``p`` (restored
    after): a parameter's loss, for ``central_differences``."""
    def f(p: np.ndarray) -> float:
        saved = getattr(layer, name).copy()
        setattr(layer, name, p)
        try:
            return loss()
        finally:
            setattr(layer, name, saved)
    return f


@pytest.fixture(scope="session")
def central_differences() -> Callable[..., np.ndarray]:
    """``central_differences(f, x, h=1e-6)``: the numerical gradient of a scalar function."""
    return _central_differences


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# One knob for a deeper search of every property test: ZERONN_HYPOTHESIS_EXAMPLES=N gives
# each N examples (a test that takes a share of its suite's count gets that share of N).
# Unset, a suite's own variable (ZERONN_PARITY_EXAMPLES, ...) still sets that suite alone.
HYPOTHESIS_EXAMPLES = "ZERONN_HYPOTHESIS_EXAMPLES"


def examples(default: int, suite: str | None = None) -> int:
    """``max_examples`` for a property test: ZERONN_HYPOTHESIS_EXAMPLES, else the variable
    ``suite`` names, else ``default``."""
    value = os.environ.get(HYPOTHESIS_EXAMPLES) or (os.environ.get(suite) if suite else None)
    return int(value) if value else default


# CI runs derandomized so a green run stays green; locally hypothesis explores freely.
# Tests without their own count take hypothesis's default of 100, or the knob's N.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          max_examples=examples(100))
settings.register_profile("dev", deadline=None, max_examples=examples(100))
settings.load_profile("ci" if os.environ.get("CI") else "dev")


BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str) -> Any:
    """The module ``benchmarks/<name>.py`` (imported once), for the benchmarks' tests."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
