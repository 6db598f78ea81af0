"""JAX as a benchmark peer: the same MLP's whole training epoch compiled as one ``lax.scan``.

The model of ``benchmarks/run.py``: Dense layers with ReLU between them, an identity
output, the mean squared error over all elements, plain SGD or Adam (torch's update rule,
as ``zeronn.optim.Adam``). One epoch, without shuffling, is the ``lax.scan`` of the
training step over the full batches, then one more step for a last short batch (a scan
needs batches of one shape), all inside one ``jax.jit``; its loss is the batch losses'
mean weighted by batch size, as ``zeronn.History["loss"]``. Timed warm: the first call
compiles, the timed calls do not. float64 needs ``jax_enable_x64``, which
:func:`import_jax` turns on (float32 arrays stay float32).

:func:`epoch_losses` starts from a zeronn network's own weights, so its losses can be
checked against ``net.fit``'s on the NumPy path.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BETAS = (0.9, 0.999)
EPS = 1e-8


# XLA's CPU backend runs a dot on its Eigen thread pool by default; on a small network's
# 8- to 64-wide products the hand-offs cost more than they share (measured on 2 cores:
# small float64, 1.0 ms an epoch with the pool, 0.45 ms without). One thread is JAX at its
# best here, the peer to beat; single_threaded(False) before the first import keeps the pool.
SINGLE_THREADED = [True]
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def single_threaded(on: bool) -> None:
    """Whether XLA runs single-threaded; only before JAX is first imported."""
    if "jax" in sys.modules and on != SINGLE_THREADED[0]:
        raise RuntimeError("XLA's threads are set when JAX is first imported")
    SINGLE_THREADED[0] = on


def import_jax() -> Any:
    """The ``jax`` module with 64-bit floats enabled (ImportError when it is absent)."""
    if "jax" not in sys.modules and SINGLE_THREADED[0]:
        flags = os.environ.get("XLA_FLAGS", "")
        if "multi_thread_eigen" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} {_XLA_ONE_THREAD}".strip()
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def available() -> bool:
    try:
        import_jax()
    except ImportError:
        return False
    return True


def version() -> str:
    jax = import_jax()
    return f"JAX {jax.__version__} ({jax.default_backend()})"


@functools.cache
def make_epoch(n: int, batch: int | None, optimizer: str, lr: float) -> Callable[..., Any]:
    """``epoch(state, X, y) -> (state, loss)``, jitted; ``state`` from :func:`init_state`.

    ``n`` rows, ``batch`` rows per step (None: full batch), ``optimizer`` "sgd" or "adam".
    One function per setting, so the loss check and the timed runner share its compilation
    (XLA takes seconds to compile the scan).
    """
    jax = import_jax()
    jnp = jax.numpy
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    bs = n if batch is None else min(batch, n)
    full, tail = divmod(n, bs)

    def loss_fn(params: list[Any], xb: Any, yb: Any) -> Any:
        a = xb
        layers = len(params) // 2
        for i in range(layers):
            a = a @ params[2 * i] + params[2 * i + 1]
            if i < layers - 1:
                # jax.nn.relu: derivative 0 at 0, as zeronn's (jnp.maximum's is 0.5 there,
                # which a row of dead units with zero biases reaches exactly).
                a = jax.nn.relu(a)
        return jnp.mean((a - yb) ** 2)

    value_and_grad = jax.value_and_grad(loss_fn)

    def sgd_step(state: Any, xb: Any, yb: Any) -> tuple[Any, Any]:
        loss, grads = value_and_grad(state, xb, yb)
        return [p - lr * g for p, g in zip(state, grads)], loss

    def adam_step(state: Any, xb: Any, yb: Any) -> tuple[Any, Any]:
        params, ms, vs, t = state
        loss, grads = value_and_grad(params, xb, yb)
        t = t + 1
        b1, b2 = BETAS
        dt = params[0].dtype  # powers in the weights' dtype: no silent upcast of float32
        bias1 = 1 - jnp.asarray(b1, dt) ** t.astype(dt)
        bc2 = jnp.sqrt(1 - jnp.asarray(b2, dt) ** t.astype(dt))
        ms = [b1 * m + (1 - b1) * g for m, g in zip(ms, grads)]
        vs = [b2 * v + (1 - b2) * g * g for v, g in zip(vs, grads)]
        params = [p - (lr / bias1) * m / (jnp.sqrt(v) / bc2 + EPS)
                  for p, m, v in zip(params, ms, vs)]
        return (params, ms, vs, t), loss

    step = sgd_step if optimizer == "sgd" else adam_step

    def epoch(state: Any, X: Any, y: Any) -> tuple[Any, Any]:
        head_x = X[:full * bs].reshape(full, bs, X.shape[1])
        head_y = y[:full * bs].reshape(full, bs, y.shape[1])
        state, losses = jax.lax.scan(lambda s, b: step(s, b[0], b[1]), state,
                                     (head_x, head_y))
        total = jnp.sum(losses) * bs
        if tail:
            state, last = step(state, X[full * bs:], y[full * bs:])
            total = total + last * tail
        return state, total / n

    return jax.jit(epoch)


def init_state(params: Sequence[np.ndarray], optimizer: str) -> Any:
    """The optimizer's state from the weights ``[W1, b1, W2, b2, ...]`` (copied)."""
    jax = import_jax()
    jnp = jax.numpy
    ps = [jnp.asarray(np.array(p)) for p in params]
    if optimizer == "sgd":
        return ps
    return (ps, [jnp.zeros_like(p) for p in ps], [jnp.zeros_like(p) for p in ps],
            jnp.asarray(0, jnp.int32))


class Runner:
    """``run(k)`` trains ``k`` epochs from ``params`` (continuing across calls) and waits
    for the result; the epoch is compiled (one first epoch run) when it is built."""

    def __init__(self, params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray,
                 batch: int | None, optimizer: str, lr: float) -> None:
        jax = import_jax()
        self.epoch = make_epoch(X.shape[0], batch, optimizer, lr)
        self.X, self.y = jax.device_put(X), jax.device_put(y)
        self.state, loss = self.epoch(init_state(params, optimizer), self.X, self.y)
        loss.block_until_ready()

    def __call__(self, k: int) -> None:
        state = self.state
        for _ in range(k):
            state, loss = self.epoch(state, self.X, self.y)
        loss.block_until_ready()
        self.state = state


def runner(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray, batch: int | None,
           optimizer: str, lr: float) -> Runner:
    return Runner(params, X, y, batch, optimizer, lr)


def epoch_losses(params: Sequence[np.ndarray], X: np.ndarray, y: np.ndarray,
                 batch: int | None, optimizer: str, lr: float, epochs: int) -> list[float]:
    """Each epoch's training loss from ``params``, for a check against zeronn's History."""
    epoch = make_epoch(X.shape[0], batch, optimizer, lr)
    state = init_state(params, optimizer)
    out = []
    for _ in range(epochs):
        state, loss = epoch(state, X, y)
        out.append(float(loss))
    return out
