"""check_gradients on every activation x loss pair, on random shapes drawn by hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import zeronn as zn
from zeronn.activations import ACTIVATIONS
from zeronn.gradcheck import GradCheckReport

HIDDEN = sorted(ACTIVATIONS)
PAIRS = [("mse", "identity"), ("mae", "identity"), ("huber", "identity"),
         ("binary_crossentropy", "sigmoid"), ("categorical_crossentropy", "softmax"),
         ("mse", "tanh"), ("mae", "softplus"), ("huber", "elu")]
# A regression loss on a sigmoid/softmax output is refused (tests/test_network.py).


def _targets(rng, loss, n, k):
    if loss == "binary_crossentropy":
        return rng.uniform(0, 1, (n, k))
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    return rng.standard_normal((n, k)) * 1.5


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize(("loss", "out"), PAIRS)
@settings(max_examples=6, deadline=None)
@given(sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       n=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_every_pair_passes(hidden, loss, out, sizes, n, seed):
    rng = np.random.default_rng(seed)
    net = zn.MLP(sizes, hidden, out, init="glorot_normal", seed=seed)
    # Random biases: with zero biases a dead layer feeds exact zeros forward, and the next
    # ReLU sits exactly on its kink, where no derivative exists to check.
    net.set_params([p if i % 2 == 0 else rng.normal(0, 0.5, p.shape)
                    for i, p in enumerate(net.params)])
    X = rng.standard_normal((n, sizes[0]))
    y = _targets(rng, loss, n, sizes[-1])
    report = zn.check_gradients(net, X, y, loss=loss)
    assert report.max_relative_error < 1e-6, str(report)


def test_report_contents_and_network_untouched():
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 4, 2], "tanh", dtype="float32", seed=0)
    before = [p.copy() for p in net.params]
    report = zn.check_gradients(net, rng.standard_normal((5, 3)), rng.standard_normal((5, 2)))
    assert isinstance(report, GradCheckReport)
    assert [p.name for p in report.params] == ["W1", "b1", "W2", "b2"]
    assert [p.shape for p in report.params] == [(3, 4), (1, 4), (4, 2), (1, 2)]
    assert report.passed(1e-6) and report.loss > 0
    assert "worst relative error" in str(report)
    for a, b in zip(net.params, before):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.float32


def test_detects_a_broken_gradient(monkeypatch):
    """A wrong backward pass must show up as a large relative error."""
    rng = np.random.default_rng(0)
    net = zn.MLP([3, 4, 1], "tanh", seed=0)
    X, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    from zeronn.layers import Dense

    original = Dense.backward_from_logits

    def broken(self, delta, need_dx=True):
        out = original(self, delta, need_dx)
        self.db *= 1.5
        return out

    monkeypatch.setattr(Dense, "backward_from_logits", broken)
    report = zn.check_gradients(net, X, y)
    assert report.max_relative_error > 0.1
    assert not report.passed()
