"""Shared fixtures: the seed's data and network, small random problems."""

from __future__ import annotations

import os

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


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# CI runs derandomized so a green run stays green; locally hypothesis explores freely.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
