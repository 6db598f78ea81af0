"""Which path trains a fit: the NumPy reference or the compiled epoch (``zeronn._fast``).

``fit(..., engine=...)``: ``"numpy"`` always runs the reference loop of
``zeronn.training``; ``"compiled"`` runs the compiled kernel of
:mod:`zeronn._fast.dense` and says why not (a ``ValueError``) when the fit is not covered
or numba is missing; ``"auto"`` (the default) picks the compiled path where it is faster,
without ever waiting for a compilation: see :func:`auto_choice`.

Covered: networks of ``Dense`` layers (each may be followed by one ``Activation`` layer
when its own activation is the identity) with the built-in activations, every built-in
loss, ``SGD`` (momentum, dampening, Nesterov, weight decay), ``Adam`` and ``AdamW``
(amsgrad too), float32 and float64. Everything else keeps the NumPy path.

This module reads the network and sets up the kernel's arrays (:class:`CompiledFit`);
the fit loop around it (schedules, validation, early stopping, callbacks, History) stays
in ``zeronn.training``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
import threading
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._fast import dense as kernels
from zeronn.activations import ACTIVATIONS
from zeronn.activations import Activation as ActivationFunction
from zeronn.layers import Activation, Dense
from zeronn.losses import LOSSES, Loss
from zeronn.network import Network
from zeronn.optim import SGD, Adam, AdamW, Optimizer

__all__ = ["ENGINES", "CompiledFit", "auto_choice", "check_engine", "coverage", "is_ready",
           "start_compiling"]

ENGINES = ("auto", "numpy", "compiled")

# The built-in activations and losses, by their functions: a user may register another
# function under a built-in name, and that one has no compiled twin (while a copied
# network's activations, copies of the built-in objects, keep the built-in functions).
_ACT_CODES = {(ACTIVATIONS[name].forward, ACTIVATIONS[name].backward): code
              for name, code in kernels.ACTIVATION_CODES.items()}
_LOSS_CODES = {(LOSSES[name].value_and_grad, LOSSES[name].fused): code
               for name, code in kernels.LOSS_CODES.items()}


def _act_code(act: ActivationFunction) -> int | None:
    return _ACT_CODES.get((act.forward, act.backward))


def _loss_code(loss: Loss) -> int | None:
    return _LOSS_CODES.get((loss.value_and_grad, loss.fused))


# "auto" picks the compiled path for batches whose matrix products stay below this many
# multiply-adds (per row of the batch, summed over the layers): there the NumPy path's
# cost is its ~20 library calls a step, not arithmetic. Above it BLAS's blocked products
# win. Measured when the kernel's products were all plain loops (one BLAS thread,
# process time): 5440 per row (20 -> 64 -> 64 -> 1) 0.67x the NumPy path's time, 11000
# (100 -> 100 -> 10) 0.74x, 19072 (20 -> 128 -> 128 -> 1) 0.93x, 70912 (20 -> 256 -> 256
# -> 1) 1.13x. Since its larger products call BLAS (5000 rows, batch 64, SGD, the same
# clock): 0.58x, 0.75x, 0.79x, 0.87x, and 0.86x at 82176 (64 -> 256 -> 256 -> 1); but the
# medium benchmark (that network, batch 256, two threads, wall time) took 1.19-1.29x on
# the compiled path. The bound stays until a rule covering batch size and threads is
# measured.
AUTO_MAX_MACS_PER_ROW = 12000
# "auto" starts compiling (in a background thread, training on NumPy meanwhile) only for
# a fit whose NumPy run is estimated to take at least this long: a shorter one could not
# repay the compilation (or loading it from the disk cache and importing numba).
AUTO_MIN_SECONDS = 2.0
# With the kernel ready, "auto" still leaves fits estimated shorter than this to NumPy:
# they would save a few milliseconds at most, and the reference path is the default.
AUTO_MIN_READY_SECONDS = 0.2
# The estimate: per batch, a fixed cost per layer (its library calls) plus the products.
_NUMPY_SECONDS_PER_LAYER_CALLS = 25e-6
_NUMPY_MACS_PER_SECOND = 2e9
_COMPILED_MACS_PER_SECOND = 3e9


def check_engine(engine: Any) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be 'auto', 'numpy' or 'compiled', got {engine!r}")
    return str(engine)


def _stages(net: Network) -> list[tuple[Dense, ActivationFunction]] | str:
    """The network as dense stages (layer, activation), or why it is not covered."""
    out: list[tuple[Dense, ActivationFunction]] = []
    for layer in net.layers:
        if type(layer) is Dense and len(layer.input_shape) == 1:
            out.append((layer, layer.activation))
        elif type(layer) is Activation and out and _act_code(out[-1][1]) == kernels.IDENTITY \
                and out[-1][1] is out[-1][0].activation:
            out[-1] = (out[-1][0], layer.activation)
        else:
            return (f"it has a {layer!r} layer (the compiled path covers Dense layers, each "
                    f"optionally followed by one Activation layer)")
    for _, act in out:
        if _act_code(act) is None:
            return f"activation {act.name!r} is not a built-in one"
    return out


_NUMBA_INSTALLED: list[bool] = []  # looked up once: find_spec costs a directory scan


def coverage(net: Network, loss: Loss, opt: Optimizer) -> str | None:
    """None when the compiled path can train this fit, else the reason it cannot."""
    if not _NUMBA_INSTALLED:
        _NUMBA_INSTALLED.append(importlib.util.find_spec("numba") is not None)
    if not _NUMBA_INSTALLED[0]:
        return "numba is not installed (pip install 'zeronn[fast]')"
    if os.environ.get("ZERONN_NO_FAST", "") not in ("", "0"):
        return "ZERONN_NO_FAST is set"
    if net.dtype not in (np.float32, np.float64):
        return f"dtype {net.dtype} is not float32 or float64"
    stages = _stages(net)
    if isinstance(stages, str):
        return stages
    if _loss_code(loss) is None:
        return f"loss {loss.name!r} is not a built-in one"
    if type(opt) not in (SGD, Adam, AdamW):
        return (f"optimizer {type(opt).__name__} is not covered (SGD, Adam and AdamW are)")
    if opt.decay != "all" and opt.weight_decay:
        return "weight decay of the weights only (decay='weights') is not compiled"
    return None


def epoch_seconds(net: Network, rows: int) -> float:
    """A rough time of one compiled epoch over ``rows`` rows (forward and backward)."""
    return 3.0 * macs_per_row(net) * rows / _COMPILED_MACS_PER_SECOND


def macs_per_row(net: Network) -> int:
    """Multiply-adds of one row's forward pass (the backward pass takes about twice)."""
    return sum(layer.fan_in * layer.units for layer in net.layers if isinstance(layer, Dense))


# -- compiling without waiting -----------------------------------------------------------
_READY: set[str] = set()  # dtypes whose kernel is compiled (or loaded) in this process
_LOCK = threading.Lock()
_THREADS: dict[str, threading.Thread] = {}


def is_ready(dtype: np.dtype) -> bool:
    return np.dtype(dtype).name in _READY


def _warm_up(dtype: np.dtype) -> None:
    """Compiles (or loads from the disk cache) the kernel for ``dtype`` with a tiny fit."""
    net = Network([Dense(2, "relu"), Dense(1)], input_dim=1, dtype=dtype, seed=0)
    X = np.zeros((2, 1), dtype)
    opt = SGD(1e-3)
    opt.prepare([net.flat_params], [net.flat_grads])
    fit = CompiledFit(net, LOSSES["mse"], opt, X, X[:, :1], None, 2)
    fit.run(np.array([1e-3]), 0, 1, np.arange(2, dtype=np.int64).reshape(1, 2), False)
    _READY.add(np.dtype(dtype).name)


def ensure_ready(dtype: np.dtype) -> None:
    """Compiles (or loads) the kernel for ``dtype`` now, waiting for it."""
    name = np.dtype(dtype).name
    with _LOCK:
        thread = _THREADS.get(name)
    if thread is not None:
        thread.join()
    if name not in _READY:
        _warm_up(np.dtype(dtype))


def start_compiling(dtype: np.dtype) -> None:
    """Prepares the kernel for ``dtype`` without making anyone wait (once per process).

    numba compiles holding the GIL, so a compiling thread would stall the NumPy epochs
    running meanwhile (measured: a 2000-epoch fit 2.3x slower, the kernel still not
    ready at its end). The compilation runs in a separate Python process instead, on the
    other core, writing numba's disk cache; a thread waits for it (without the GIL) and
    then loads the cached kernel (about half a second).
    """
    name = np.dtype(dtype).name
    with _LOCK:
        if name in _READY or name in _THREADS:
            return
        thread = threading.Thread(target=_compile_elsewhere, args=(np.dtype(dtype),),
                                  name=f"zeronn-compile-{name}", daemon=True)
        _THREADS[name] = thread
    thread.start()


def _compile_elsewhere(dtype: np.dtype) -> None:
    # At the lowest priority: the compilation takes only CPU time the training leaves.
    code = ("import os, numpy, zeronn.engine as e\n"
            "if hasattr(os, 'nice'): os.nice(19)\n"
            f"e.ensure_ready(numpy.dtype({dtype.name!r}))")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, check=False,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        if done.returncode == 0:
            _warm_up(dtype)  # now a load from the disk cache
    except Exception:
        pass


def auto_choice(net: Network, rows: int, batches: int, epochs: int) -> str:
    """What ``engine="auto"`` does for a covered fit: ``"compiled"`` (kernel ready),
    ``"later"`` (start compiling; NumPy until it is ready) or ``"numpy"``.

    ``"numpy"`` when the layers are wide enough for BLAS to win, or when the NumPy run is
    estimated too short to gain from the kernel (``AUTO_MIN_READY_SECONDS``) or to repay
    compiling it (``AUTO_MIN_SECONDS``; then numba is not even imported).
    """
    macs = macs_per_row(net)
    if macs > AUTO_MAX_MACS_PER_ROW:
        return "numpy"
    layers = sum(isinstance(layer, Dense) for layer in net.layers)
    # forward and backward: ~3x the forward pass's multiply-adds
    per_epoch = batches * layers * _NUMPY_SECONDS_PER_LAYER_CALLS \
        + 3.0 * macs * rows / _NUMPY_MACS_PER_SECOND
    estimate = epochs * per_epoch
    if is_ready(net.dtype):
        return "compiled" if estimate >= AUTO_MIN_READY_SECONDS else "numpy"
    return "later" if estimate >= AUTO_MIN_SECONDS else "numpy"


class CompiledFit:
    """The kernel's arrays for one fit, made once: network structure, optimizer state,
    data (C-contiguous, writable) and work buffers sized for the batch size."""

    def __init__(self, net: Network, loss: Loss, opt: Optimizer, X: NDArray, y: NDArray,
                 weights: NDArray | None, bs: int) -> None:
        stages = _stages(net)
        assert not isinstance(stages, str)
        dtype = net.dtype
        self.kernel = kernels.kernel()
        self.X = _kernel_array(X, dtype)
        self.y = _kernel_array(y, dtype)
        self.weighted = weights is not None
        self.sw = _kernel_array(weights.reshape(-1) if weights is not None
                                else np.zeros(1, dtype), dtype)
        self.bs = bs
        self.n_batches = -(-X.shape[0] // bs)
        sizes = [net.input_shape[0]] + [layer.units for layer, _ in stages]
        self.sizes = np.array(sizes, np.int64)
        self.acts = np.array([_act_code(act) for _, act in stages], np.int64)
        index = {id(layer): i for i, layer in enumerate(net.layers)}
        woffs, boffs = [], []
        for layer, _ in stages:
            start = net.slices[index[id(layer)]].start
            woffs.append(start)
            boffs.append(start + layer.fan_in * layer.units if layer.use_bias else -1)
        self.woffs = np.array(woffs, np.int64)
        self.boffs = np.array(boffs, np.int64)
        # The dead-unit diagnostic counts the hidden layers whose ReLU outputs exactly 0.
        relu = kernels.RELU
        self.dead = np.array([int(code == relu and i < len(stages) - 1)
                              for i, code in enumerate(self.acts)], np.int64)
        self.n_dead_units = int(sum(s for s, f in zip(sizes[1:], self.dead) if f))
        self.alive = np.zeros(max(self.n_dead_units, 1), np.int64)
        code = _loss_code(loss)
        assert code is not None
        self.loss_code = code
        self.opt = opt
        hp = np.zeros(kernels.HP_SIZE)
        if isinstance(opt, Adam):
            self.opt_code = kernels.OPT_ADAMW if isinstance(opt, AdamW) else kernels.OPT_ADAM
            hp[kernels.HP_B1], hp[kernels.HP_B2] = opt.betas
            hp[kernels.HP_EPS] = opt.eps
            hp[kernels.HP_AMSGRAD] = float(opt.amsgrad)
        else:
            assert isinstance(opt, SGD)
            self.opt_code = kernels.OPT_SGD
            hp[kernels.HP_MOMENTUM] = opt.momentum
            hp[kernels.HP_DAMPENING] = opt.dampening
            hp[kernels.HP_NESTEROV] = float(opt.nesterov)
        hp[kernels.HP_WD] = opt.weight_decay
        hp[kernels.HP_LIMIT] = 0.5 * math.sqrt(float(np.finfo(dtype).max))
        hp[kernels.HP_TMAX] = float(np.finfo(dtype).max)
        self.hp = hp
        self.p, self.g = net.flat_params, net.flat_grads
        self.L = len(stages)
        widest = max(sizes)
        self.xb = np.empty(bs * sizes[0], dtype)
        self.yb = np.empty(bs * sizes[-1], dtype)
        self.wn = np.empty(bs, dtype)
        self.Z = np.empty(bs * sum(sizes[1:]), dtype)
        self.A = np.empty_like(self.Z)
        self.D1 = np.empty(bs * widest, dtype)
        self.D2 = np.empty_like(self.D1)
        self.DT = np.empty_like(self.D1)
        self.cst = kernels.constants(dtype)
        self.status = np.zeros(5, np.int64)
        self._empty = np.zeros(1, dtype)

    def state_arrays(self) -> tuple[NDArray, NDArray, NDArray]:
        """The optimizer's flat state (made by ``opt.prepare`` before), in kernel order."""
        s = self.opt.state[0]
        keys: tuple[str, ...] = ("momentum_buffer",) if self.opt_code == kernels.OPT_SGD \
            else ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
        arrays = [s.get(k, self._empty) for k in keys]
        arrays += [self._empty] * (3 - len(arrays))
        return arrays[0], arrays[1], arrays[2]

    def run(self, lrs: NDArray, b_lo: int, b_hi: int, perms: NDArray, shuffled: bool,
            acc: NDArray | None = None, layer_sq: NDArray | None = None,
            ) -> tuple[NDArray, NDArray, NDArray]:
        """Runs ``len(lrs)`` epochs (their batches ``b_lo`` to ``b_hi``); returns the
        per-epoch accumulators (``acc``, ``layer_sq``, given again to continue an epoch)
        and the status (see :func:`zeronn._fast.dense.train_epochs`)."""
        ne = lrs.shape[0]
        if acc is None:
            acc = np.zeros((ne, 5))
        if layer_sq is None:
            layer_sq = np.zeros((ne, self.L))
        s1, s2, s3 = self.state_arrays()
        self.kernel(self.X, self.y, self.sw, self.weighted, perms, shuffled, ne, b_lo, b_hi,
                    self.bs, self.sizes, self.acts, self.woffs, self.boffs, self.dead,
                    self.loss_code, self.opt_code, self.hp, lrs, self.opt.t,
                    self.p, self.g, s1, s2, s3, self.xb, self.yb, self.wn, self.Z, self.A,
                    self.D1, self.D2, self.DT, self.cst, self.alive, acc, layer_sq,
                    self.status)
        return acc, layer_sq, self.status


def _kernel_array(a: NDArray, dtype: np.dtype) -> NDArray:
    """``a`` as the kernel's one array type: C-contiguous, writable, ``dtype``."""
    out = np.ascontiguousarray(a, dtype)
    return out if out.flags.writeable else out.copy()
