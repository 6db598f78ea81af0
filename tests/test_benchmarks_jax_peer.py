"""benchmarks/jax_peer.py computes the same training as zeronn's NumPy path.

The bench times JAX's epoch as a peer: it must do the same work, so its per-epoch losses
from zeronn's initial weights must equal ``History["loss"]`` of ``fit`` on the NumPy
path. Skipped without JAX (``make bench`` installs it).
"""

from __future__ import annotations

import numpy as np
import pytest

import zeronn as zn
from conftest import load_benchmark

pytest.importorskip("jax")

jax_peer = load_benchmark("jax_peer")


@pytest.mark.parametrize(("dtype", "optimizer", "batch", "rtol"), [
    ("float64", "sgd", 16, 1e-12),
    ("float32", "adam", 16, 1e-5),
    ("float64", "adam", None, 1e-12),  # full batch, as the seed
])
def test_epoch_losses_equal_zeronn_numpy_path(dtype, optimizer, batch, rtol):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((50, 3)).astype(dtype)  # 50 = 3 batches of 16 and one of 2
    y = rng.standard_normal((50, 2)).astype(dtype)
    net = zn.MLP([3, 6, 5, 2], dtype=dtype, seed=0)
    params = [p.copy() for p in net.params]
    lr = 0.05 if optimizer == "sgd" else 1e-2
    opt = zn.optim.SGD(lr=lr) if optimizer == "sgd" else zn.optim.Adam(lr=lr)
    hist = net.fit(X, y, loss="mse", optimizer=opt, epochs=3, batch_size=batch,
                   shuffle=False, verbose=0)
    got = jax_peer.epoch_losses(params, X, y, batch, optimizer, lr, 3)
    np.testing.assert_allclose(got, hist["loss"], rtol=rtol)


def test_runner_continues_training_across_calls():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((40, 3))
    y = rng.standard_normal((40, 1))
    net = zn.MLP([3, 4, 1], seed=0)
    run = jax_peer.runner(net.params, X, y, 16, "sgd", 0.05)
    run(2)  # after the epoch run when it was built: 3 epochs in all
    ref = jax_peer.epoch_losses(net.params, X, y, 16, "sgd", 0.05, 4)
    _, loss = run.epoch(run.state, X, y)  # the 4th epoch from where the runner stands
    np.testing.assert_allclose(float(loss), ref[3], rtol=1e-12)


def test_unknown_optimizer_is_refused():
    with pytest.raises(ValueError, match="'sgd' or 'adam'"):
        jax_peer.make_epoch(10, 5, "rmsprop", 0.1)
