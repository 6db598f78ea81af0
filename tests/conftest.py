"""Shared fixtures: the seed's data and network, small random problems."""

from __future__ import annotations

import numpy as np
import pytest

from zeronn.classic import NN, seed_data


@pytest.fixture
def seed_problem() -> tuple[np.ndarray, np.ndarray, NN]:
    """The seed's X (100, 2), y (100, 1) and its untrained NN(2, 5, 1), as the notebook has them."""
    X, y = seed_data()
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    return X, y, nn


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
