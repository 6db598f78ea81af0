"""Training speed of zeronn beside the GEMM bound, JAX, scikit-learn and PyTorch (CPU).

For every workload, dtype and optimizer it times one epoch of training (median over
repeats) of:

- ``zeronn``: the NumPy path, ``net.fit(X, y, epochs=k, shuffle=False, verbose=0,
  engine="numpy")``, wall time / k (without ``engine`` when fit has no such argument);
- ``compiled`` and ``auto``: the same with ``engine="compiled"`` (the numba epoch) and
  ``engine="auto"`` (what fit chooses; the report says which engine ran); "not available"
  when fit has no ``engine`` argument or refuses the compiled path for the model;
- ``gemm``: the bound: the same matrix products of each training step (forward ``x·W``,
  ``dW = x.T·delta`` and ``dX = delta·W.T`` except for the first layer) in raw NumPy
  with preallocated ``out=`` arrays, and nothing else; for a convolution, the products
  of its im2col formulation (``col·W``, ``dW = dout.T·col``, ``dcol = dout·W``);
- ``jax``: the same MLP's whole epoch as one jitted ``jax.lax.scan`` over the batches
  (``benchmarks/jax_peer.py``), warm (compilation not timed); its losses are checked
  against the NumPy path's before timing, and so are the compiled path's;
- ``sklearn``: ``MLPRegressor`` with the same solver, batch size, learning rate and no
  shuffling (``alpha=0``, no momentum for SGD, never stopping early);
- ``torch``: a plain ``nn.Sequential`` + ``torch.optim`` loop over tensor slices (its
  convolutions are hand-written kernels, not im2col);
- ``classic`` (seed workload only): the seed's own loop, ``zeronn.classic.NN``.

All run with the same thread count (threadpoolctl for the BLAS/OpenMP pools,
``torch.set_num_threads``). Also measured: the FLOP rate each reaches on ``small`` (the
forward and backward GEMMs' flops, 2·m·n·k each) beside the machine's peak, one large
GEMM (2000x2000). Prints a table of ratios and writes ``docs/benchmarks.md`` with a
chart. ``python benchmarks/run.py --quick`` runs only the cells that have targets, with
fewer repeats and without the peers no target of the cell names (a minute or two).

The workload ``charlstm`` (in the default list; ``--workloads charlstm`` alone runs only
it) is ``benchmarks/charlstm.py``'s character-level language model on the tiny
Shakespeare text, Embedding -> LSTM -> Dense softmax, zeronn beside PyTorch from the same
weights on the same batches, its epochs timed in turns on the same threads: its time per
epoch ratio (target <= 1.0) and validation losses get their own section of the report
(``--quick``: a shorter run). Skipped with a note when the text is absent.

The workload ``gpt`` (in the default list too) is ``benchmarks/gpt.py``: one training
step of nanoGPT's CPU configuration (a 4-layer GPT of width 128, batches of 12 blocks of
64 characters, AdamW, clipping) in zeronn and in PyTorch eager with the same weights and
batches, in interleaved rounds on the same threads: its time per step ratio (target <=
1.0) gets its own section of the report.
"""

from __future__ import annotations

import argparse
import gc
import inspect
import itertools
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

import zeronn as zn
from zeronn.classic import NN, mse_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charlstm  # beside this file too
import gpt  # beside this file too
import jax_peer  # beside this file, also when run.py is imported from elsewhere
from timing import blas_description  # beside this file too

ROOT = Path(__file__).resolve().parent.parent
IMPLS = ("zeronn", "compiled", "auto", "gemm", "jax", "sklearn", "torch", "classic")
# The engines of ``fit`` (issue 16): None when this zeronn's fit has no ``engine`` argument.
HAS_ENGINE = "engine" in inspect.signature(zn.Sequential.fit).parameters


@dataclass(frozen=True)
class Conv:
    """One convolution block: Conv2D(filters, kernel, padding) + ReLU + MaxPool2D(pool)."""

    filters: int
    kernel: int
    padding: int
    pool: int


@dataclass(frozen=True)
class Workload:
    """A training problem: ``n`` rows, ``sizes`` [in, hidden..., out], ``batch`` (None: full).

    With ``image`` (C, H, W), the rows are images that go through the ``convs`` blocks, and
    ``sizes`` is the Dense head after the Flatten (``sizes[0]``: the flattened size).
    """

    name: str
    n: int
    sizes: tuple[int, ...]
    batch: int | None
    epochs_per_call: int  # epochs per timed call (long enough for a stable clock)
    repeats: int  # timed calls; the median is reported
    lr_sgd: float = 0.01
    image: tuple[int, int, int] | None = None
    convs: tuple[Conv, ...] = ()
    # Time engine="compiled" here by default. Off where its plain-loop products take
    # seconds to minutes an epoch against BLAS and "auto" keeps NumPy (--compiled-everywhere).
    time_compiled: bool = True

    def conv_shapes(self) -> list[tuple[int, int, int, int, int]]:
        """Per conv block: (in channels, conv output height, width, pooled height, width)."""
        assert self.image is not None
        c, h, w = self.image
        out = []
        for cv in self.convs:
            oh = h + 2 * cv.padding - cv.kernel + 1
            ow = w + 2 * cv.padding - cv.kernel + 1
            out.append((c, oh, ow, oh // cv.pool, ow // cv.pool))
            c, h, w = cv.filters, oh // cv.pool, ow // cv.pool
        assert c * h * w == self.sizes[0], "sizes[0] must be the flattened size"
        return out


WORKLOADS = {
    w.name: w
    for w in (
        # The seed lesson: 100x2 -> 5 -> 1, full batch, 1000 epochs (lr 0.05 is the seed's 0.001).
        Workload("seed", 100, (2, 5, 1), None, 1000, 9, lr_sgd=0.05),
        Workload("small", 2000, (8, 32, 1), 32, 20, 9),
        # A tabular-sized network: 5000 rows of 20 columns, two hidden layers of 64.
        Workload("tabular", 5000, (20, 64, 64, 1), 64, 5, 9),
        Workload("medium", 20000, (64, 256, 256, 1), 256, 2, 9, time_compiled=False),
        Workload("wide", 16384, (512, 1024, 1024, 1), 1024, 1, 5, time_compiled=False),
        # LeNet-5 with ReLU and max pooling, on 28x28 one-channel images (MNIST's size):
        # 1x28x28 -> conv 6@5x5 pad 2 -> pool -> conv 16@5x5 -> pool -> 400 -> 120 -> 84 -> 10.
        Workload("lenet", 4096, (400, 120, 84, 10), 64, 1, 7, image=(1, 28, 28),
                 convs=(Conv(6, 5, 2, 2), Conv(16, 5, 0, 2))),
    )
}


@dataclass(frozen=True)
class Target:
    """``impl`` / ``ref`` <= ``limit`` on one cell (dtype or optimizer None: every one)."""

    workload: str
    dtype: str | None
    optimizer: str | None
    ref: str
    limit: float
    impl: str = "zeronn"

    def matches(self, c: Cell) -> bool:
        return (c.workload.name == self.workload and self.dtype in (None, c.dtype)
                and self.optimizer in (None, c.optimizer))


# The NumPy path's targets (the speed issue). Its orientation figures are for SGD, so the
# GEMM-bound and scikit-learn targets are checked on SGD; PyTorch's on the optimizer each
# one names. Then the compiled path's (issue 16): on small, at most 0.35x the GEMM bound
# and 0.9x JAX's compiled epoch; the seed's problem at most 0.1x the seed's own loop; the
# tabular network (Adam) at most 0.5x the NumPy path; on medium and wide, what fit chooses
# by itself never slower than the NumPy path. "Never slower" is checked as <= 1.05: two
# runs of the same code differ by a few percent here, and the compiled path may simply
# not be chosen there, which makes the two sides the same code.
TARGETS = (
    Target("seed", "float64", "sgd", "classic", 1.0),
    Target("small", "float64", "sgd", "gemm", 2.0),
    Target("small", "float64", "sgd", "sklearn", 0.4),
    Target("small", "float64", "sgd", "torch", 0.12),
    Target("medium", "float32", "sgd", "gemm", 1.15),
    Target("medium", "float32", "sgd", "sklearn", 0.5),
    Target("medium", "float32", "sgd", "torch", 0.85),
    Target("medium", "float32", "adam", "torch", 0.7),
    Target("wide", "float32", "sgd", "gemm", 1.05),
    Target("wide", "float32", "sgd", "torch", 1.2),
    Target("lenet", "float32", "sgd", "gemm", 1.3),
    Target("lenet", "float32", "sgd", "torch", 2.5),
    Target("seed", "float64", "sgd", "classic", 0.1, impl="compiled"),
    Target("small", "float64", "sgd", "gemm", 0.35, impl="compiled"),
    Target("small", "float64", "sgd", "jax", 0.9, impl="compiled"),
    Target("small", "float32", "sgd", "gemm", 0.35, impl="compiled"),
    Target("small", "float32", "sgd", "jax", 0.9, impl="compiled"),
    Target("tabular", "float64", "adam", "zeronn", 0.5, impl="compiled"),
    Target("tabular", "float32", "adam", "zeronn", 0.5, impl="compiled"),
    Target("medium", None, None, "zeronn", 1.05, impl="auto"),
    Target("wide", None, None, "zeronn", 1.05, impl="auto"),
)


@dataclass
class Cell:
    """Seconds per epoch of each implementation on one (workload, dtype, optimizer)."""

    workload: Workload
    dtype: str
    optimizer: str
    rounds: dict[str, list[float]] = field(default_factory=dict)  # seconds per epoch, per round
    engines: dict[str, str] = field(default_factory=dict)  # the engine fit reported, per impl
    missing: dict[str, str] = field(default_factory=dict)  # why an impl did not run
    checks: dict[str, float] = field(default_factory=dict)  # max relative loss gap to numpy

    @property
    def seconds(self) -> dict[str, float]:
        """Median seconds per epoch of each implementation."""
        return {impl: statistics.median(ts) for impl, ts in self.rounds.items()}

    def ratios(self, impl: str, ref: str) -> list[float]:
        """``impl``'s time over ``ref``'s within each round (empty if one was not run)."""
        if impl not in self.rounds or ref not in self.rounds:
            return []
        return [a / b for a, b in zip(self.rounds[impl], self.rounds[ref])]

    def ratio(self, impl: str, ref: str) -> float | None:
        """The median of the per-round ratios.

        Paired by round: the two sides of each ratio ran seconds apart, so a slow spell of
        a shared machine (seen here to change every timing by 30%) divides out, where a
        ratio of two medians would keep whichever side it happened to hit.
        """
        rs = self.ratios(impl, ref)
        return statistics.median(rs) if rs else None

    def best_ratio(self, impl: str, ref: str) -> float | None:
        """``impl``'s fastest round over ``ref``'s: the least disturbed rounds of a busy
        machine (shown beside the median, which decides the targets)."""
        if impl not in self.rounds or ref not in self.rounds:
            return None
        return min(self.rounds[impl]) / min(self.rounds[ref])

    def spread(self, impl: str, ref: str) -> str:
        """The per-round ratios' range, "lo-hi", to show how much one run can move."""
        rs = self.ratios(impl, ref)
        return f"{min(rs):.3f}-{max(rs):.3f}" if rs else "-"


# -- data ------------------------------------------------------------------------------
def make_data(w: Workload, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Regression data: X standard normal, y a fixed linear map plus noise, both C-contiguous."""
    if w.name == "seed":
        X, y = zn.classic.seed_data()
        return X.astype(dtype), y.astype(dtype)
    rng = np.random.default_rng(0)
    shape = w.image if w.image is not None else (w.sizes[0],)
    X = rng.standard_normal((w.n, *shape)).astype(dtype)
    flat = X.reshape(w.n, -1)
    coef = rng.standard_normal((flat.shape[1], w.sizes[-1])) / np.sqrt(flat.shape[1])
    y = (flat @ coef.astype(dtype)
         + 0.1 * rng.standard_normal((w.n, w.sizes[-1]))).astype(dtype)
    return X, y


def lr_of(w: Workload, optimizer: str) -> float:
    return w.lr_sgd if optimizer == "sgd" else 1e-3


# -- timing ----------------------------------------------------------------------------
# The clock of time_rounds: wall time (what a user waits), or the process's CPU time
# (--clock cpu: on a machine others load, waiting for a core is left out; the BLAS's and
# XLA's other threads count, so a two-thread product counts twice its wall time).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}
CLOCK = ["wall"]


def time_rounds(runners: dict[str, Callable[[int], Any]], k: int,
                repeats: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Wall time of ``run(k)`` / k for every runner, in ``repeats`` rounds, and the engines
    the zeronn runners' fits reported in the timed rounds ("numpy/compiled" if both).

    The runners take turns within each round (after one warm-up call each), so a burst of
    load on a shared machine slows all of them alike instead of one.
    """
    times: dict[str, list[float]] = {name: [] for name in runners}
    seen: dict[str, set[str]] = {name: set() for name in runners}
    for run in runners.values():
        run(k)
    for _ in range(repeats):
        for name, run in runners.items():
            gc.collect()
            clock = CLOCKS[CLOCK[0]]
            t0 = clock()
            result = run(k)
            times[name].append((clock() - t0) / k)
            if isinstance(result, zn.History):
                seen[name].update(engine_of(result).split("/"))
    return times, {name: "/".join(sorted(e)) for name, e in seen.items() if e}


def engine_of(history: zn.History) -> str:
    """The engines a fit ran on, "numpy/compiled" when it switched between epochs:
    ``History.engines`` (per epoch) or ``History.engine``; "numpy" before there were any."""
    engines = set(getattr(history, "engines", None) or ())
    return "/".join(sorted(engines)) or str(getattr(history, "engine", None) or "numpy")


def batches(n: int, batch: int | None) -> list[tuple[int, int]]:
    bs = n if batch is None else min(batch, n)
    return [(s, min(s + bs, n)) for s in range(0, n, bs)]


# -- implementations: each returns run(k), which trains k epochs -------------------------
class Unavailable(Exception):
    """An implementation that cannot run this cell, and why (the report says so)."""


def build_net(w: Workload, dtype: str) -> zn.Sequential:
    """zeronn's network for the workload (seed 0: every runner starts from the same one)."""
    net: zn.Sequential
    if w.image is None:
        net = zn.MLP(list(w.sizes), activation="relu", dtype=dtype, seed=0)
    else:
        layers: list[zn.Layer] = []
        for cv in w.convs:
            layers += [zn.Conv2D(cv.filters, cv.kernel, padding=cv.padding, activation="relu"),
                       zn.MaxPool2D(cv.pool)]
        layers.append(zn.Flatten())
        layers += [zn.Dense(units, activation="relu") for units in w.sizes[1:-1]]
        layers.append(zn.Dense(w.sizes[-1]))
        net = zn.Sequential(layers, input_shape=w.image, dtype=dtype, seed=0)
    return net


def make_optimizer(w: Workload, optimizer: str) -> zn.optim.Optimizer:
    lr = lr_of(w, optimizer)
    return zn.optim.SGD(lr=lr) if optimizer == "sgd" else zn.optim.Adam(lr=lr)


def engine_kwargs(engine: str | None) -> dict[str, Any]:
    """``engine=...`` for fit; an Unavailable when this zeronn's fit has no engine argument.

    ``engine=None`` is the NumPy path: ``engine="numpy"``, or nothing before issue 16.
    """
    if engine is None:
        return {"engine": "numpy"} if HAS_ENGINE else {}
    if not HAS_ENGINE:
        raise Unavailable("not available: fit has no engine argument in this zeronn")
    return {"engine": engine}


def zeronn_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                  optimizer: str, engine: str | None = None) -> Callable[[int], Any]:
    """``run(k)``: k epochs of ``net.fit`` on the given engine (None: the NumPy path),
    returning the History. The compiled engine is tried once here: a fit that refuses it
    (no numba, a model it does not cover) makes the cell say "not available"."""
    net = build_net(w, dtype)
    opt = make_optimizer(w, optimizer)
    kw = engine_kwargs(engine)

    def run(k: int) -> zn.History:
        return net.fit(X, y, loss="mse", optimizer=opt, epochs=k, batch_size=w.batch,
                       shuffle=False, verbose=0, **kw)

    if engine == "compiled":
        t0 = time.perf_counter()
        try:
            hist = run(1)
        except (ValueError, ImportError, NotImplementedError) as e:
            raise Unavailable(f"not available: {e}") from e
        if engine_of(hist) != "compiled":
            raise Unavailable(f"not available: engine='compiled' ran {engine_of(hist)!r}")
        print(f"  {w.name} {dtype} {optimizer}: first compiled fit (1 epoch, compile or "
              f"cache load) {time.perf_counter() - t0:.2f} s", flush=True)
    return run


def compiled_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                    optimizer: str) -> Callable[[int], Any]:
    return zeronn_runner(w, X, y, dtype, optimizer, "compiled")


def auto_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                optimizer: str) -> Callable[[int], Any]:
    return zeronn_runner(w, X, y, dtype, optimizer, "auto")


def jax_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
               optimizer: str) -> Callable[[int], Any] | None:
    """The same MLP's epoch as one jitted lax.scan (jax_peer), from zeronn's initial weights.

    Not for a full batch (seed): its epoch is one step, so a Python call per epoch."""
    if w.image is not None or w.batch is None:
        return None
    if not jax_peer.available():
        raise Unavailable("not available: JAX is not installed (make bench installs it)")
    return jax_peer.runner(build_net(w, dtype).params, X, y, w.batch, optimizer,
                           lr_of(w, optimizer))


CHECK_EPOCHS = 2
CHECK_TOLERANCE = {"float64": 1e-10, "float32": 1e-4}


def check_losses(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str, optimizer: str,
                 impls: list[str]) -> dict[str, float]:
    """The largest relative gap between each epoch's loss of ``compiled`` / ``jax`` and the
    NumPy path's, over CHECK_EPOCHS epochs of the workload, from the same weights (a wrong
    peer would be timed doing different work)."""
    if w.image is not None:
        return {}

    def fit(engine: str | None) -> list[float]:
        net = build_net(w, dtype)
        hist = net.fit(X, y, loss="mse", optimizer=make_optimizer(w, optimizer),
                       epochs=CHECK_EPOCHS, batch_size=w.batch, shuffle=False, verbose=0,
                       **engine_kwargs(engine))
        return [float(v) for v in hist["loss"]]

    ref = fit(None)
    losses: dict[str, list[float]] = {}
    if "compiled" in impls and HAS_ENGINE:
        try:
            losses["compiled"] = fit("compiled")
        except (ValueError, ImportError, NotImplementedError):
            pass  # the runner says why
    if "jax" in impls and w.batch is not None and jax_peer.available():
        losses["jax"] = jax_peer.epoch_losses(build_net(w, dtype).params, X, y, w.batch,
                                              optimizer, lr_of(w, optimizer), CHECK_EPOCHS)
    return {impl: max(abs(a - b) / max(abs(b), np.finfo(dtype).tiny)
                      for a, b in zip(ls, ref)) for impl, ls in losses.items()}


def gemm_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                optimizer: str) -> Callable[[int], Any]:
    """Only the matrix products of each step, into preallocated arrays.

    A convolution block counts as the three products of its im2col formulation, in the
    layout ``zeronn.layers.conv`` uses (``col`` stored transposed, K = C·kh·kw by
    m·OH·OW): forward ``out.T = W (F, K) · col.T``, backward ``dW = dout.T · col`` and,
    except for the first layer, ``dcol.T = W.T · dout.T``; building ``col``, col2im, the
    pooling and the bias are left out (the work the bound does not count).
    """
    rng = np.random.default_rng(0)
    sizes = w.sizes
    Ws = [rng.standard_normal((a, b)).astype(dtype) for a, b in itertools.pairwise(sizes)]
    dWs = [np.empty_like(W) for W in Ws]
    spans = batches(X.shape[0], w.batch)
    bufs: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for s, e in spans:
        m = e - s
        if m not in bufs:
            acts = [np.empty((m, b), dtype) for b in sizes[1:]]
            dxs = [np.empty((m, a), dtype) for a in sizes[1:-1]]  # dX of layers 2..L
            for a in acts:
                a.fill(0.5)
            bufs[m] = (acts, dxs)
    L = len(Ws)
    # Per conv block: W and dW (F, K); per batch size: col.T (K, rows), out.T (F, rows)
    # (= dout.T), dcol.T (K, rows).
    conv_shapes = w.conv_shapes() if w.image is not None else []
    cWs = [rng.standard_normal((cv.filters, c * cv.kernel ** 2)).astype(dtype)
           for cv, (c, *_) in zip(w.convs, conv_shapes)]
    cdWs = [np.empty_like(cW) for cW in cWs]
    cbufs: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for s, e in spans:
        m = e - s
        if m not in cbufs and conv_shapes:
            cbufs[m] = []
            for cW, (_, oh, ow, _, _) in zip(cWs, conv_shapes):
                colT = np.full((cW.shape[1], m * oh * ow), 0.5, dtype)
                cbufs[m].append((colT, np.full((cW.shape[0], m * oh * ow), 0.5, dtype),
                                 np.empty_like(colT)))
    if w.image is not None:  # the head's first layer takes the conv blocks' output
        first = np.full((max(e - s for s, e in spans), sizes[0]), 0.5, dtype)
        dfirst = np.empty_like(first)

    def run(k: int) -> None:
        for _ in range(k):
            for s, e in spans:
                acts, dxs = bufs[e - s]
                x = X[s:e]
                if w.image is not None:
                    for cW, (colT, outT, _) in zip(cWs, cbufs[e - s]):
                        np.dot(cW, colT, out=outT)
                    x = first[:e - s]
                for i in range(L):  # forward: z_i = x_{i-1} W_i
                    np.dot(x, Ws[i], out=acts[i])
                    x = acts[i]
                delta = acts[-1]
                for i in range(L - 1, -1, -1):  # backward: dW_i, then dX_i except the first
                    xin = (X[s:e] if w.image is None else first[:e - s]) if i == 0 \
                        else acts[i - 1]
                    np.dot(xin.T, delta, out=dWs[i])
                    if i > 0:
                        np.dot(delta, Ws[i].T, out=dxs[i - 1])
                        delta = dxs[i - 1]
                if w.image is not None:  # the head's dX, then each block's dW and dcol
                    np.dot(delta, Ws[0].T, out=dfirst[:e - s])
                    for j in range(len(cWs) - 1, -1, -1):
                        colT, outT, dcolT = cbufs[e - s][j]
                        np.dot(outT, colT.T, out=cdWs[j])
                        if j > 0:
                            np.dot(cWs[j].T, outT, out=dcolT)

    return run


def sklearn_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                   optimizer: str) -> Callable[[int], Any]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    if w.image is not None:  # scikit-learn has no convolution
        return None
    lr = lr_of(w, optimizer)
    common: dict[str, Any] = dict(
        hidden_layer_sizes=w.sizes[1:-1], activation="relu", solver=optimizer, alpha=0.0,
        batch_size=w.batch if w.batch is not None else X.shape[0], learning_rate_init=lr,
        shuffle=False, tol=0.0, n_iter_no_change=np.inf, early_stopping=False,
        random_state=0)
    if optimizer == "sgd":
        common.update(momentum=0.0, nesterovs_momentum=False, learning_rate="constant")
    yy = y.ravel() if y.shape[1] == 1 else y

    def run(k: int) -> None:
        est = MLPRegressor(max_iter=k, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, yy)

    return run


def torch_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                 optimizer: str) -> Callable[[int], Any]:
    import torch

    tdtype = torch.float64 if dtype == "float64" else torch.float32
    torch.manual_seed(0)
    mods: list[Any] = []
    if w.image is not None:
        channels = w.image[0]
        for cv in w.convs:
            mods += [torch.nn.Conv2d(channels, cv.filters, cv.kernel, padding=cv.padding),
                     torch.nn.ReLU(), torch.nn.MaxPool2d(cv.pool)]
            channels = cv.filters
        mods.append(torch.nn.Flatten())
    for i, (a, b) in enumerate(itertools.pairwise(w.sizes)):
        mods.append(torch.nn.Linear(a, b))
        if i < len(w.sizes) - 2:
            mods.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*mods).to(tdtype)
    lr = lr_of(w, optimizer)
    opt = (torch.optim.SGD(model.parameters(), lr=lr) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=lr))
    loss_fn = torch.nn.MSELoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    spans = batches(X.shape[0], w.batch)

    def run(k: int) -> None:
        for _ in range(k):
            for s, e in spans:
                opt.zero_grad()
                loss = loss_fn(model(Xt[s:e]), yt[s:e])
                loss.backward()
                opt.step()

    return run


def classic_runner(w: Workload, X: np.ndarray, y: np.ndarray, dtype: str,
                   optimizer: str) -> Callable[[int], Any] | None:
    """The seed's own loop (full batch, SGD, float64 only)."""
    if optimizer != "sgd" or dtype != "float64" or w.batch is not None or w.image:
        return None
    if len(w.sizes) != 3:
        return None
    zn.classic.seed_data()  # leaves the global generator where the seed builds its NN
    nn = NN(w.sizes[0], w.sizes[1], w.sizes[2])

    def run(k: int) -> None:
        for _ in range(k):
            y_pred = nn.forward(X)
            mse_loss(y, y_pred)
            nn.backward(X, y, y_pred, 0.001)

    return run


RUNNERS: dict[str, Callable[..., Callable[[int], Any] | None]] = {
    "zeronn": zeronn_runner,
    "compiled": compiled_runner,
    "auto": auto_runner,
    "gemm": gemm_runner,
    "jax": jax_runner,
    "sklearn": sklearn_runner,
    "torch": torch_runner,
    "classic": classic_runner,
}


# -- the run -------------------------------------------------------------------------
def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fast_description() -> str:
    """Whether zeronn's compiled kernels (Conv2D, MaxPool2D, the LSTM's backward step) are
    in use, and numba's version: they change the lenet and charlstm rows."""
    from zeronn._fast import available

    if not available():
        return "off (NumPy only: numba absent or ZERONN_NO_FAST=1)"
    import numba

    return (f"on (numba {numba.__version__}: Conv2D (im2col/col2im, direct), MaxPool2D, "
            "the LSTM backward step)")


def run_cells(names: list[str], dtypes: list[str], optimizers: list[str], impls: list[str],
              repeat_scale: float, quick: bool, compiled_everywhere: bool = False,
              on_cell: Callable[[list[Cell]], None] | None = None) -> list[Cell]:
    """Times every (workload, dtype, optimizer) cell; ``quick``: only the cells a target
    names explicitly, and in them only zeronn's engines, the bound and the peers a target
    of the cell compares with."""
    cells = []
    for name in names:
        w = WORKLOADS[name]
        for dtype in dtypes:
            for optimizer in optimizers:
                cell = Cell(w, dtype, optimizer)
                cell_impls = list(impls)
                if quick:
                    named = [t for t in TARGETS if t.matches(cell)
                             and t.dtype is not None and t.optimizer is not None]
                    if not named:
                        continue
                    wanted = {"zeronn", "gemm", "compiled", "auto"}
                    wanted |= {t.impl for t in named} | {t.ref for t in named}
                    cell_impls = [i for i in impls if i in wanted]
                if "compiled" in cell_impls and not (w.time_compiled or compiled_everywhere):
                    cell_impls.remove("compiled")
                    cell.missing["compiled"] = ("not timed: its loops are slower than BLAS at "
                                                "this size (--compiled-everywhere times it)")
                X, y = make_data(w, dtype)
                cell.checks = check_losses(w, X, y, dtype, optimizer, cell_impls)
                repeats = max(1, round(w.repeats * repeat_scale))
                runners = {}
                for impl in cell_impls:
                    try:
                        runner = RUNNERS[impl](w, X, y, dtype, optimizer)
                    except Unavailable as e:
                        cell.missing[impl] = str(e)
                        continue
                    if runner is not None:
                        runners[impl] = runner
                cell.rounds, cell.engines = time_rounds(runners, w.epochs_per_call, repeats)
                del runners
                gc.collect()
                cells.append(cell)
                print(format_row(cell), flush=True)
                print(format_engine_row(cell), flush=True)
                if on_cell is not None:
                    on_cell(cells)
    return cells


def gemm_flops(w: Workload) -> float:
    """The GEMM flops of one epoch of an MLP workload: per layer of a x b and n rows, the
    forward product and dW (2·n·a·b each) and, except for the first layer, dX."""
    return float(sum(2 * w.n * a * b * (2 if i == 0 else 3)
                     for i, (a, b) in enumerate(itertools.pairwise(w.sizes))))


def peak_gflops(dtype: str, size: int = 2000, repeats: int = 5) -> float:
    """The best GFLOP/s of one size x size GEMM (2·size³ flops) on this BLAS, in ``dtype``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size)).astype(dtype)
    b = rng.standard_normal((size, size)).astype(dtype)
    out = np.empty_like(a)
    np.dot(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.dot(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size ** 3 / best / 1e9


def flop_rates(cells: list[Cell], peaks: dict[str, float]) -> list[tuple[Cell, dict[str, float]]]:
    """On ``small``: GFLOP/s each implementation reaches (the epoch's GEMM flops over its
    median epoch time), beside the dtype's peak."""
    out = []
    for c in cells:
        if c.workload.name != "small" or c.dtype not in peaks:
            continue
        flops = gemm_flops(c.workload)
        out.append((c, {impl: flops / t / 1e9 for impl, t in c.seconds.items()
                        if impl in ("gemm", "zeronn", "compiled", "jax", "torch")}))
    return out


COLUMNS = (("gemm", "zeronn/GEMM"), ("sklearn", "zeronn/sklearn"), ("torch", "zeronn/torch"),
           ("classic", "zeronn/seed loop"))
# The compiled path's columns: (impl, ref) ratios.
ENGINE_COLUMNS = (("compiled", "zeronn", "compiled/numpy"), ("auto", "zeronn", "auto/numpy"),
                  ("compiled", "gemm", "compiled/GEMM"), ("jax", "gemm", "JAX/GEMM"),
                  ("compiled", "jax", "compiled/JAX"), ("compiled", "classic", "compiled/seed"))


def header() -> str:
    return (f"{'workload':<8} {'dtype':<8} {'opt':<5} {'zeronn ms':>10} {'GEMM ms':>9} "
            + " ".join(f"{label:>15}" for _, label in COLUMNS)
            + f" {'sklearn/GEMM':>13} {'torch/GEMM':>11}\n"
            + f"{'':<23} {'compiled ms':>11} {'auto ran':>16} "
            + " ".join(f"{label:>14}" for *_, label in ENGINE_COLUMNS) + "  loss check")


def fmt(r: float | None) -> str:
    return "-" if r is None else f"{r:.3f}"


def format_row(c: Cell) -> str:
    ms = c.seconds.get("zeronn", float("nan")) * 1e3
    gm = c.seconds.get("gemm", float("nan")) * 1e3
    return (f"{c.workload.name:<8} {c.dtype:<8} {c.optimizer:<5} {ms:>10.3f} {gm:>9.3f} "
            + " ".join(f"{fmt(c.ratio('zeronn', ref)):>15}" for ref, _ in COLUMNS)
            + f" {fmt(c.ratio('sklearn', 'gemm')):>13} {fmt(c.ratio('torch', 'gemm')):>11}")


def compiled_ms(c: Cell) -> str:
    if "compiled" in c.seconds:
        return f"{c.seconds['compiled'] * 1e3:.3f}"
    return "n/a" if "compiled" in c.missing else "-"


def format_checks(c: Cell) -> str:
    """"compiled 2e-16 ok, jax 3e-16 ok": each peer's largest relative gap in epoch losses."""
    tol = CHECK_TOLERANCE[c.dtype]
    return ", ".join(f"{impl} {gap:.1e} {'ok' if gap <= tol else 'DIFFERS'}"
                     for impl, gap in c.checks.items()) or "-"


def format_engine_row(c: Cell) -> str:
    line = (f"{'':<23} {compiled_ms(c):>11} {c.engines.get('auto', '-'):>16} "
            + " ".join(f"{fmt(c.ratio(impl, ref)):>14}" for impl, ref, _ in ENGINE_COLUMNS)
            + f"  {format_checks(c)}")
    for impl, why in c.missing.items():
        line += f"\n{'':<23} {impl}: {why}"
    return line


def check_targets(
        cells: list[Cell]) -> list[tuple[Target, Cell, float | None, bool | None]]:
    out = []
    for t in TARGETS:
        for c in cells:
            if t.matches(c):
                r = c.ratio(t.impl, t.ref)
                out.append((t, c, r, None if r is None else r <= t.limit))
    return out


def target_status(t: Target, c: Cell, ok: bool | None) -> str:
    if ok is not None:
        return "met" if ok else "not met"
    return "not available" if t.impl in c.missing or t.ref in c.missing else "-"


LABELS = {"zeronn": "zeronn numpy", "gemm": "GEMM bound", "classic": "seed loop",
          "compiled": "zeronn compiled", "auto": "zeronn auto", "jax": "JAX"}


def write_chart(cells: list[Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{c.workload.name}\n{c.dtype[5:]}-bit {c.optimizer}" for c in cells]
    impls = [("zeronn", "zeronn (NumPy)"), ("compiled", "zeronn (compiled)"), ("jax", "JAX"),
             ("sklearn", "scikit-learn"), ("torch", "PyTorch")]
    x = np.arange(len(cells))
    width = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(cells) + 2), 4.5))
    for j, (impl, label) in enumerate(impls):
        vals = [c.ratio(impl, "gemm") or np.nan for c in cells]
        ax.bar(x + (j - (len(impls) - 1) / 2) * width, vals, width, label=label)
    ax.axhline(1.0, color="black", lw=0.8, ls="--", label="GEMM bound")
    ax.set_yscale("log")
    ax.set_ylabel("time per epoch / GEMM bound (log)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.legend(fontsize=8)
    ax.set_title("Training time per epoch as a multiple of its matrix products (lower is faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the character-level language model (benchmarks/charlstm.py) -------------------------
TEXT_MODEL = "charlstm"
# --quick: the same model, fewer characters and epochs (about a third of the time).
TEXT_MODEL_QUICK = {"epochs": 2, "chars": 100_000, "sample": 0}
TEXT_MODEL_ABOUT = [
    "`benchmarks/charlstm.py`: Embedding -> LSTM -> Dense softmax on the tiny",
    "Shakespeare text, PyTorch (`nn.LSTM`, its oneDNN kernel) from zeronn's initial",
    "weights on the same batches; each epoch is timed in turns of 1/8 epoch per",
    "library, the ratio is the median of the turns' ratios."]


def split_workloads(names: list[str]) -> tuple[list[str], bool]:
    """The MLP/convnet workloads among ``names``, and whether ``charlstm`` is one."""
    return [n for n in names if n != TEXT_MODEL], TEXT_MODEL in names


# -- nanoGPT's character-level GPT (benchmarks/gpt.py) ----------------------------------
GPT_MODEL = "gpt"
GPT_TARGET = 1.0  # zeronn's time per step / PyTorch eager's
GPT_ABOUT = [
    "`benchmarks/gpt.py`: one training step (forward, backward, clipping, AdamW)",
    "of nanoGPT's CPU configuration (4 layers, 4 heads, width 128, 12 blocks of",
    "64 characters), zeronn and PyTorch eager from the same weights on the same",
    "batches, in interleaved rounds; the ratio is the median of the rounds'."]


def take_gpt(names: list[str]) -> tuple[list[str], bool]:
    """``names`` without ``gpt``, and whether it was there."""
    return [n for n in names if n != GPT_MODEL], GPT_MODEL in names


def run_gpt(threads: int, quick: bool) -> list[str]:
    """The GPT step's interleaved timing on ``threads`` threads, as report lines."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return ["skipped: PyTorch is not installed (the parity extra)"]
    lines: list[str] = []
    res = gpt.run(rounds=6 if quick else 20, steps=3 if quick else 5, threads=threads,
                  printer=lines.append)
    ok = res["ratio"] <= GPT_TARGET
    return [*lines, f"target gpt float32 adamw: zeronn/torch {res['ratio']:.2f} <= "
                    f"{GPT_TARGET}: {'met' if ok else 'not met'} (rounds: "
                    f"{res['ratio_min']:.2f}-{res['ratio_max']:.2f})"]


def run_text_model(threads: int, quick: bool) -> list[str]:
    """charlstm's run on ``threads`` threads, as report lines (a note when it cannot run)."""
    if not charlstm.TEXT.exists():
        return [f"skipped: no text at {charlstm.TEXT} (the tiny Shakespeare corpus beside "
                "the repository; nothing is downloaded)"]
    cfg = charlstm.Config(**TEXT_MODEL_QUICK) if quick else charlstm.Config(sample=0)
    res = charlstm.run(cfg, charlstm.TEXT, threads, log=lambda line: print(line, flush=True))
    r = res["ratios"]
    return [*charlstm.report(res),
            f"target charlstm float32 adam: zeronn/torch {res['ratio']:.2f} <= "
            f"{charlstm.SPEED_TARGET}: {'met' if res['speed_ok'] else 'not met'} (turns: "
            f"{min(r):.2f}-{max(r):.2f})"]


def write_markdown(cells: list[Cell], path: Path, chart: Path, meta: dict[str, str],
                   command: str, peaks: dict[str, float],
                   text_model: list[str] | None = None,
                   gpt_lines: list[str] | None = None) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Training time per epoch of zeronn, on its NumPy path and its compiled path (the",
        "optional extra `fast`, numba), beside the **GEMM bound** (the matrix products",
        "of each training step, forward `x·W`, `dW = x.T·delta` and `dX = delta·W.T`, in raw",
        "NumPy into preallocated arrays, nothing else), JAX (the whole epoch jitted as one",
        "`lax.scan`, warm), scikit-learn's `MLPRegressor` and PyTorch on the CPU. ReLU",
        "hidden layers, MSE, no shuffling, the same thread count for all. Ratios below 1",
        "mean the first is faster. Generated by `benchmarks/run.py` (`make bench`). The",
        "implementations take turns within each round; each time is the median over",
        "rounds, and each ratio the median of the per-round ratios (the two sides of a",
        "ratio ran seconds apart, so a slow spell of a shared machine divides out). The",
        "targets table gives the range of the per-round ratios too, and the ratio of the",
        "two sides' fastest rounds (the least disturbed ones): timings on a shared machine",
        "move by 10-30% from one minute to the next, more when others run tests.",
        "",
        f"Command: `{command}`",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in meta.items()]
    lines += [
        "",
        "Workloads: **seed** 100x2 -> 5 -> 1, full batch (also timed against the seed's own",
        "loop, `zeronn.classic`); **small** 2000x8 -> 32 -> 1, batch 32; **tabular**",
        "5000x20 -> 64 -> 64 -> 1, batch 64; **medium** 20000x64 -> 256 -> 256 -> 1, batch",
        "256; **wide** 16384x512 -> 1024 -> 1024 -> 1, batch 1024; **lenet** 4096 random",
        "1x28x28 images, LeNet-5 with ReLU and max pooling (conv 6@5x5 pad 2, pool 2, conv",
        "16@5x5, pool 2, 400 -> 120 -> 84 -> 10), batch 64, whose GEMM bound counts the",
        "im2col products of the convolutions (`col·W`, `dW = dout.T·col`, `dcol = dout·W.T`)",
        "and not the building of `col`, col2im or the pooling. SGD (lr 0.01; 0.05 for seed,",
        "no momentum) and Adam (lr 1e-3).",
        "",
        f"![time per epoch over the GEMM bound]({chart.name})",
        "",
        "## Times and ratios: the NumPy path",
        "",
        "| workload | dtype | optimizer | zeronn ms/epoch | GEMM ms | zeronn/GEMM | "
        "zeronn/sklearn | zeronn/torch | zeronn/seed loop | sklearn/GEMM | torch/GEMM |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for c in cells:
        lines.append(
            f"| {c.workload.name} | {c.dtype} | {c.optimizer} | "
            f"{c.seconds.get('zeronn', float('nan')) * 1e3:.3f} | "
            f"{c.seconds.get('gemm', float('nan')) * 1e3:.3f} | "
            + " | ".join(fmt(c.ratio("zeronn", ref)) for ref, _ in COLUMNS) + " | "
            f"{fmt(c.ratio('sklearn', 'gemm'))} | {fmt(c.ratio('torch', 'gemm'))} |")
    lines += [
        "",
        "## Times and ratios: the compiled path and JAX",
        "",
        "`compiled`: `fit(..., engine=\"compiled\")`; `auto`: `engine=\"auto\"`, with the",
        "engine its fits reported (`History.engine`); \"n/a\": not available (the reason is",
        "printed by the run). Loss check: the largest relative gap between each epoch's loss",
        f"and the NumPy path's (the first {CHECK_EPOCHS} epochs from the same initial",
        "weights); \"ok\" within "
        f"{CHECK_TOLERANCE['float64']:g} (float64) or {CHECK_TOLERANCE['float32']:g} (float32).",
        "",
        "| workload | dtype | optimizer | numpy ms | compiled ms | auto ran | "
        + " | ".join(label for *_, label in ENGINE_COLUMNS) + " | loss check |",
        "|---|---|---|--:|--:|---|" + "--:|" * len(ENGINE_COLUMNS) + "---|",
    ]
    for c in cells:
        lines.append(
            f"| {c.workload.name} | {c.dtype} | {c.optimizer} | "
            f"{c.seconds.get('zeronn', float('nan')) * 1e3:.3f} | {compiled_ms(c)} | "
            f"{c.engines.get('auto', 'n/a' if 'auto' in c.missing else '-')} | "
            + " | ".join(fmt(c.ratio(impl, ref)) for impl, ref, _ in ENGINE_COLUMNS)
            + f" | {format_checks(c)} |")
    rates = flop_rates(cells, peaks)
    if rates:
        lines += ["", "## FLOP rate on small", "",
                  "The forward and backward GEMMs' flops of one epoch (2·m·n·k per product: "
                  f"{gemm_flops(WORKLOADS['small']) / 1e6:.1f} MFLOP) over each one's time per",
                  "epoch, beside the peak: the best of one 2000x2000 GEMM on the same BLAS "
                  "and threads.", "",
                  "| dtype | optimizer | peak GFLOP/s | "
                  + " | ".join(LABELS.get(i, i) for i in ("gemm", "zeronn", "compiled", "jax",
                                                           "torch")) + " |",
                  "|---|---|--:|--:|--:|--:|--:|--:|"]
        for c, r in rates:
            peak = peaks[c.dtype]
            lines.append(f"| {c.dtype} | {c.optimizer} | {peak:.1f} | " + " | ".join(
                f"{r[i]:.2f} ({100 * r[i] / peak:.1f}%)" if i in r else "-"
                for i in ("gemm", "zeronn", "compiled", "jax", "torch")) + " |")
    lines += ["", "## Targets", "",
              "| workload | dtype | optimizer | ratio | target | measured | rounds | of bests "
              "| met |",
              "|---|---|---|---|--:|--:|--:|--:|---|"]
    for t, c, r, ok in check_targets(cells):
        lines.append(f"| {t.workload} | {c.dtype} | {c.optimizer} | "
                     f"{LABELS.get(t.impl, t.impl)} / {LABELS.get(t.ref, t.ref)} | "
                     f"<= {t.limit} | {fmt(r)} | {c.spread(t.impl, t.ref)} | "
                     f"{fmt(c.best_ratio(t.impl, t.ref))} | {target_status(t, c, ok)} |")
    sections = (("Character-level LSTM against PyTorch", TEXT_MODEL_ABOUT, text_model),
                ("nanoGPT's character-level GPT against PyTorch", GPT_ABOUT, gpt_lines))
    for title, about, report in sections:  # the sequence models' runs, when they ran
        if report:
            lines += ["", f"## {title}", "", *about, "", *(f"- {line}" for line in report)]
    lines += ["", "The NumPy path's GEMM-bound and scikit-learn targets are checked with SGD",
              "(the optimizer their reference figures were measured with); the Adam rows",
              "above are for information. The compiled path's targets are issue 16's; on",
              "medium and wide \"never slower\" is checked as auto / numpy <= 1.05, since two",
              "runs of the same code differ by a few percent here.", ""]
    lines += NOTES
    path.write_text("\n".join(lines))


NOTES = """## Where the time goes

- A training step is the matrix products (the GEMM bound) plus elementwise NumPy passes:
  the bias add, ReLU and its mask, the bias gradients, the optimizer update, and the
  per-batch diagnostics fit records (per-layer gradient norms, dead-unit counts). Buffers
  are allocated once per batch size, every pass writes into them (`out=`), plain SGD's
  `-lr` is folded into the backward pass (its step is one addition), the other optimizers
  update the one flat parameter buffer in cache-sized pieces, and the dead-unit count of a
  ReLU layer is one BLAS column sum. `tests/test_training.py` checks that steady-state training
  allocates nothing per step.
- `python benchmarks/anatomy.py [--workload small|medium|wide]` splits one step (forward
  and backward, no optimizer) into the GEMMs alone, the textbook step in raw NumPy (the
  same products plus bias add, ReLU, MSE gradient, bias sums, ReLU's mask, all `out=`),
  and zeronn's own pass. Measured here, microseconds per step, 2 threads:
  small float64 4 / 13 / 15; medium float32 559 / 742 / 755; wide float32 27789 / 29494 /
  29557. The engine adds 1-2% to the raw step; the elementwise passes are the gap: the
  raw textbook step alone is 3.3x, 1.33x and 1.06x the bound, above the GEMM-bound
  targets (2.0x, 1.15x, 1.05x) before any optimizer step or diagnostic is counted.
- OpenBLAS runs the GEMMs on both threads; NumPy runs each elementwise pass on one, and
  a pass right after a two-thread GEMM is slower than alone (medium: +183 us of passes
  on 2 threads, +137 us on 1), since half of the GEMM's output sits in the other core's
  cache. PyTorch runs its elementwise kernels on all threads, and its GEMM is faster
  than OpenBLAS on wide shapes.
- On tiny networks (seed, small) every NumPy call costs about a microsecond whatever its
  size; a step is some twenty calls, of which five are the GEMMs, so call overhead sets
  the ratio to the bound. zeronn still beats the seed's own loop, scikit-learn and
  PyTorch there, whose per-step overhead is larger.
- Tried, measured, not kept: choosing the BLAS thread count per GEMM (one thread for the
  small ones: 782 against 780 us a medium step); two Python threads each training half
  the batch (a lock hand-off between threads costs 85-110 us on this machine, more than
  the passes they would share: ReLU on 256x256 takes 20 us); the bias folded into the
  GEMMs with a column of ones (2.5% faster on medium, 4% slower on wide, where the
  inner dimension becomes odd, and `zeronn.trace` would no longer equal the engine bit
  for bit). Kept: ReLU's backward mask as bools on large layers (23% faster at 1024x1024).
- **lenet** (the convnet): the GEMM bound counts only the im2col products; zeronn also
  builds `col` (im2col), adds `dcol` back (col2im), pools, and changes layouts between the
  GEMMs' (F, N*OH*OW) and NCHW. `python benchmarks/layers.py [--old other/src]` times each
  layer's forward and backward in one process. With the extra `fast` (numba),
  `zeronn._fast.conv` does im2col (padding read as zeros), col2im (straight into dx) and the
  layout changes (bias and ReLU fused) as single loop nests: a step about 12% shorter than
  NumPy alone; max pooling stays NumPy (a compiled arg-max, branching on the data, ran
  2-5x slower than the whole-array passes). What is left is memory traffic: `col` is 5 MB
  (conv1) and 3.8 MB (conv2) a batch, written by im2col and read by two GEMMs, and the
  GEMMs themselves are memory-bound at these shapes (K = 25 and 150).
- Memory: fit holds the parameters, their gradients and the optimizer state, plus about
  three batches' activations of work buffers: 2x the parameters with plain SGD, 3x with
  momentum, 4x with Adam (two moments). No spare copy of the weights: an update that would
  make them non-finite is refused before it is applied (checked only when a running bound
  on the weights' norm says it could happen). `tests/test_training.py` measures it.

## The compiled path and JAX: how they are measured

- `compiled` is `fit(..., engine="compiled")` timed exactly as the NumPy path: whole `fit`
  calls of k epochs (so its per-fit set-up and every epoch's History record count), the
  kernel compiled or loaded from numba's disk cache by one untimed fit first (the run
  prints how long that took). Its losses are checked against the NumPy path's in every
  cell before timing. On medium and wide it is not timed by default: its products are
  plain loops, far slower than BLAS at those sizes, and `auto` does not choose it there
  (`--compiled-everywhere` times it anyway).
- `auto` is what fit chooses by itself; the "auto ran" column is the engine its History
  reported in the timed calls. It keeps the NumPy path for a fit it estimates too short
  to repay a compilation, and for batches whose products are large (BLAS wins there):
  the bench's timed calls of k epochs on seed and small are such short fits, so `auto`
  runs NumPy in them, while a long fit of the same network would switch.
- JAX (`benchmarks/jax_peer.py`, CPU build): the step as `jax.value_and_grad` of the same
  MLP and MSE, SGD or Adam written out (torch's rule, as zeronn's), the epoch as one
  `lax.scan` over the full batches plus one step for a short last batch, jitted, with
  `jax_enable_x64` for float64; compilation happens before the timed calls. Its losses
  from zeronn's initial weights equal the NumPy path's (the loss check column;
  `tests/test_benchmarks_jax_peer.py` checks it too), so it is timed doing the same work.
  XLA runs on one thread (`--xla_cpu_multi_thread_eigen=false`): its thread pool's
  hand-offs more than doubled the small epoch here (1.0 ms against 0.45 ms, float64),
  and the compiled path is single-threaded too; `--xla-pool` keeps the pool.
- The FLOP rate counts only the GEMMs' flops (2·m·n·k per product: forward, dW, and dX
  except for the first layer), the same count for every implementation, so it is the
  inverse of the time per epoch in useful units; the peak is one 2000x2000 GEMM on the
  same BLAS and threads (numbers that small networks cannot approach: their products are
  8- to 32-wide).
""".splitlines()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join([*WORKLOADS, TEXT_MODEL, GPT_MODEL]),
                   help="comma-separated subset of "
                        + ",".join([*WORKLOADS, TEXT_MODEL, GPT_MODEL]))
    p.add_argument("--dtypes", default="float64,float32")
    p.add_argument("--optimizers", default="sgd,adam")
    p.add_argument("--impls", default=",".join(IMPLS))
    p.add_argument("--repeat-scale", type=float, default=1.0,
                   help="multiplies each workload's number of timed repeats")
    p.add_argument("--quick", action="store_true",
                   help="only the cells that have targets, with fewer repeats")
    p.add_argument("--compiled-everywhere", action="store_true",
                   help="also time engine='compiled' on medium and wide (minutes per epoch)")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                   help="wall time (default) or the process's CPU time (a loaded machine)")
    p.add_argument("--xla-pool", action="store_true",
                   help="let JAX use XLA's thread pool (default: one thread, its best on "
                        "small networks; see jax_peer)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="markdown report to write ('' for none); the chart goes beside it")
    args = p.parse_args(argv)
    names, text_model = split_workloads([s for s in args.workloads.split(",") if s])
    names, gpt_model = take_gpt(names)
    for s in names:
        if s not in WORKLOADS:
            p.error(f"unknown workload {s!r}: choose from "
                    f"{', '.join([*WORKLOADS, TEXT_MODEL, GPT_MODEL])}")
    impls = [s for s in args.impls.split(",") if s]
    for s in impls:
        if s not in IMPLS:
            p.error(f"unknown implementation {s!r}: choose from {', '.join(IMPLS)}")
    scale = args.repeat_scale * (0.6 if args.quick else 1.0)
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])

    import torch

    torch.set_num_threads(args.threads)
    dtypes = [s for s in args.dtypes.split(",") if s]
    CLOCK[0] = args.clock
    jax_peer.single_threaded(not args.xla_pool)
    with threadpool_limits(limits=args.threads):
        t0 = time.perf_counter()
        peaks = {dtype: peak_gflops(dtype) for dtype in dtypes}
        meta = {
            "CPU": f"{cpu_name()}, {os.cpu_count()} logical cores",
            "threads": str(args.threads),
            "clock": ("wall time" if args.clock == "wall" else
                      "process CPU time (all its threads), not wall time"),
            "NumPy BLAS": blas_description(),
            "peak GEMM (2000x2000)": ", ".join(f"{d} {g:.1f} GFLOP/s" for d, g in peaks.items()),
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
            "zeronn compiled kernels": fast_description(),
            "versions": (f"Python {platform.python_version()}, NumPy {np.__version__}, "
                         f"zeronn {zn.__version__} (engine argument: "
                         f"{'yes' if HAS_ENGINE else 'no'}), numba {package_version('numba')}, "
                         f"{jax_peer.version() if jax_peer.available() else 'JAX absent'} "
                         f"(XLA {'thread pool' if args.xla_pool else 'one thread'}), "
                         f"scikit-learn {__import__('sklearn').__version__}, "
                         f"PyTorch {torch.__version__} (threads {torch.get_num_threads()})"),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        for k, v in meta.items():
            print(f"{k}: {v}")
        print(header(), flush=True)
        out = Path(args.out) if args.out else None

        def partial_report(done: list[Cell]) -> None:  # a stopped run still leaves its rows
            if out is not None:
                out.parent.mkdir(parents=True, exist_ok=True)
                write_markdown(done, out, out.with_suffix(".png"), meta,
                               command + " (stopped early: partial)", peaks)

        cells = run_cells(names, dtypes, args.optimizers.split(","), impls, scale, args.quick,
                          args.compiled_everywhere, partial_report)
        text_lines = run_text_model(args.threads, args.quick) if text_model else None
        gpt_lines = run_gpt(args.threads, args.quick) if gpt_model else None
        print(f"total {time.perf_counter() - t0:.0f} s")
    print()
    for c, r in flop_rates(cells, peaks):
        print(f"FLOP rate small {c.dtype} {c.optimizer}: "
              + ", ".join(f"{LABELS.get(i, i)} {g:.2f}" for i, g in r.items())
              + f" GFLOP/s; peak {peaks[c.dtype]:.1f} GFLOP/s")
    for t, c, r, ok in check_targets(cells):
        print(f"target {t.workload} {c.dtype} {c.optimizer}: {t.impl}/{t.ref} {fmt(r)} "
              f"<= {t.limit}: {target_status(t, c, ok)} (rounds: {c.spread(t.impl, t.ref)}, "
              f"of bests {fmt(c.best_ratio(t.impl, t.ref))})")
    for line in [*(text_lines or []), *(gpt_lines or [])]:
        print(line)
    if out is not None:
        chart = out.with_suffix(".png")
        write_chart(cells, chart)
        write_markdown(cells, out, chart, meta, command, peaks, text_lines, gpt_lines)
        print(f"wrote {out} and {chart}")
    return 0


def package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


if __name__ == "__main__":
    sys.exit(main())
