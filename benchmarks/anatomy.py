"""Where one training step's time goes: the GEMMs alone, the same step in raw NumPy, zeronn.

For one workload of ``benchmarks/run.py`` (default: medium, float32) it times, per step
(one batch, forward and backward, no optimizer):

- ``gemm``: only the matrix products (the GEMM bound's step);
- ``raw``: the textbook step in raw NumPy with preallocated ``out=`` arrays: the same
  products plus the bias add, ReLU, the MSE gradient, the bias sums and ReLU's mask;
- ``zeronn``: ``MLP._loss_grad``, the engine's forward and backward pass.

Each is the minimum over rounds in which the three take turns, once per thread count.
``raw - gemm`` is the cost of the elementwise passes; ``zeronn - raw`` the engine's own.

    python benchmarks/anatomy.py [--workload medium] [--dtype float32] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

import zeronn as zn
from run import WORKLOADS  # type: ignore[import-not-found]


def steps(sizes: tuple[int, ...], bs: int, dtype: str) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((bs, sizes[0])).astype(dtype)
    Y = rng.standard_normal((bs, sizes[-1])).astype(dtype)
    net = zn.MLP(list(sizes), dtype=dtype, seed=0)
    loss = net.check_loss("mse")
    L = len(sizes) - 1
    Ws = [layer.W for layer in net.layers]
    bs_ = [layer.b for layer in net.layers]
    zs = [np.empty((bs, s), dtype) for s in sizes[1:]]
    works = [np.empty_like(z) for z in zs]
    dWs = [np.empty_like(W) for W in Ws]
    dbs = [np.empty(s, dtype) for s in sizes[1:]]
    dxs = [np.empty((bs, s), dtype) for s in sizes[:-1]]

    def gemm() -> None:
        a = X
        for i in range(L):
            np.dot(a, Ws[i], out=zs[i])
            a = zs[i]
        d = zs[-1]
        for i in range(L - 1, -1, -1):
            np.dot((X if i == 0 else zs[i - 1]).T, d, out=dWs[i])
            if i:
                np.dot(d, Ws[i].T, out=dxs[i])
                d = dxs[i]

    def raw() -> None:
        a = X
        for i in range(L):
            z = zs[i]
            np.dot(a, Ws[i], out=z)
            np.add(z, bs_[i], out=z)
            if i < L - 1:
                np.maximum(z, 0, out=z)
            a = z
        d = works[-1]
        np.subtract(a, Y, out=d)
        d *= 2.0 / d.size
        for i in range(L - 1, -1, -1):
            np.dot((X if i == 0 else zs[i - 1]).T, d, out=dWs[i])
            np.add.reduce(d, axis=0, out=dbs[i])
            if i:
                dx = dxs[i]
                np.dot(d, Ws[i].T, out=dx)
                np.greater(zs[i - 1], 0, out=works[i - 1])
                np.multiply(dx, works[i - 1], out=dx)
                d = dx

    def engine() -> None:
        net._loss_grad(X, Y, loss)

    return {"gemm": gemm, "raw": raw, "zeronn": engine}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="medium", choices=[w for w in WORKLOADS if w != "seed"])
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=25)
    args = p.parse_args()
    w = WORKLOADS[args.workload]
    assert w.batch is not None
    fs = steps(w.sizes, w.batch, args.dtype)
    reps = max(1, int(2e9 / (w.batch * sum(a * b for a, b in zip(w.sizes, w.sizes[1:])) * 6)))
    print(f"{w.name} {args.dtype}, batch {w.batch}: microseconds per step (min of "
          f"{args.rounds} rounds of {reps})")
    for threads in (int(t) for t in args.threads.split(",")):
        with threadpool_limits(threads):
            best = dict.fromkeys(fs, float("inf"))
            for f in fs.values():
                f()
            for _ in range(args.rounds):
                for name, f in fs.items():
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        f()
                    best[name] = min(best[name], (time.perf_counter() - t0) / reps * 1e6)
        g, r, z = best["gemm"], best["raw"], best["zeronn"]
        print(f"threads {threads}: gemm {g:.0f}  raw {r:.0f} (+{r - g:.0f} elementwise)  "
              f"zeronn {z:.0f} (+{z - r:.0f} engine)")


if __name__ == "__main__":
    main()
