"""Flatten: torch.flatten's (C, H, W) order, backward as the inverse reshape, shapes."""

from __future__ import annotations

import numpy as np
import pytest

import zeronn as zn
from zeronn.layers import Flatten


def test_flatten_keeps_torchs_channel_height_width_order():
    """Value (c, h, w) lands at c*H*W + h*W + w, as torch.flatten(x, 1)."""
    layer = Flatten()
    zn.Sequential([layer], input_shape=(2, 3, 4), seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3, 4))
    out = layer.forward(x, training=True)
    assert out.shape == (5, 24) and layer.output_shape == (24,)
    for c, h, w in [(0, 0, 0), (1, 2, 3), (0, 1, 2), (1, 0, 3)]:
        assert out[3, c * 12 + h * 4 + w] == x[3, c, h, w]
    assert np.array_equal(layer.infer(x), out)


def test_backward_is_the_inverse_reshape():
    layer = Flatten()
    zn.Sequential([layer], input_shape=(3, 2, 2), seed=0)
    layer.forward(np.zeros((4, 3, 2, 2)), training=True)
    d = np.arange(48.0).reshape(4, 12)
    dx = layer.backward(d)
    assert dx.shape == (4, 3, 2, 2) and np.array_equal(dx.reshape(4, -1), d)
    assert layer.backward(d, need_dx=False) is None


def test_flatten_of_flat_inputs_and_float32():
    net = zn.Sequential([Flatten(), zn.Dense(2)], input_dim=5, dtype="float32", seed=0)
    assert net.layers[0].output_shape == (5,)
    assert net.predict(np.ones((3, 5), np.float32)).dtype == np.float32


def test_flatten_allocates_nothing_for_contiguous_input():
    layer = Flatten()
    zn.Sequential([layer], input_shape=(2, 3, 3), seed=0)
    x = np.ones((4, 2, 3, 3))
    assert np.shares_memory(layer.forward(x), x)


def test_config_repr_summary_and_errors():
    assert Flatten().config() == {} and repr(Flatten()) == "Flatten()"
    net = zn.Sequential([zn.Conv2D(2, 2), Flatten(), zn.Dense(1)], input_shape=(1, 3, 3),
                        seed=0)
    lines: list[str] = []
    net.summary(print_fn=lines.append)
    assert any("Flatten()" in line and "(n, 8)" in line for line in lines)
    with pytest.raises(ValueError, match="no forward pass"):
        _ = Flatten().output
    with pytest.raises(TypeError):
        Flatten(1)  # type: ignore[call-arg]
