"""A quick check of the compiled path's speed targets (the full table is ``make bench``).

Process CPU time (the machine may be shared), minimum of interleaved rounds, the kernel
compiled (or loaded) before timing, one BLAS thread for both engines:

- small (2000 x 8 -> 32 -> 1, batch 32, SGD): an epoch against the GEMM bound (the
  step's matrix products alone in NumPy), float64 and float32;
- the seed's problem (100 x 2 -> 5 -> 1, full batch, 1000 epochs) against the seed's
  own loop (zeronn.classic);
- tabular (5000 x 20 -> 64 -> 64 -> 1, batch 64, Adam) against the NumPy path.

    OPENBLAS_NUM_THREADS=1 python benchmarks/engine_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import zeronn as zn
from zeronn import engine
from zeronn.classic import NN, seed_data


def cpu_min(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, fn in fns.items():  # interleaved: a busy spell hits every entry alike
            t = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - t)
    return best


def gemm_bound(X: np.ndarray, Ws: list[np.ndarray], bs: int) -> Callable[[], None]:
    def epoch() -> None:
        for s in range(0, X.shape[0], bs):
            a = X[s:s + bs]
            acts = [a]
            for W in Ws:
                a = a @ W
                acts.append(a)
            d = a
            for i in range(len(Ws) - 1, -1, -1):
                acts[i].T @ d
                if i:
                    d = d @ Ws[i].T
    return epoch


def _fitter(net: zn.MLP, X: np.ndarray, y: np.ndarray, engine_name: str, opt: type,
            lr: float, epochs: int, bs: int) -> Callable[[], object]:
    return lambda: net.fit(X, y, optimizer=opt(lr), epochs=epochs, batch_size=bs,
                           engine=engine_name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for dtype in ("float64", "float32"):
        engine.ensure_ready(np.dtype(dtype))
        X = rng.standard_normal((2000, 8)).astype(dtype)
        y = np.tanh(X[:, :1]).astype(dtype)
        Ws = [rng.standard_normal((8, 32)).astype(dtype),
              rng.standard_normal((32, 1)).astype(dtype)]
        epochs = 20
        t = cpu_min({"gemm": gemm_bound(X, Ws, 32),
                     **{e: _fitter(zn.MLP([8, 32, 1], dtype=dtype, seed=0), X, y, e,
                                   zn.optim.SGD, 0.01, epochs, 32)
                        for e in ("numpy", "compiled")}}, args.rounds)
        g, n, c = t["gemm"], t["numpy"] / epochs, t["compiled"] / epochs
        print(f"small {dtype}: GEMM bound {g * 1e3:.3f} ms/epoch; NumPy path "
              f"{n * 1e3:.3f} ms ({n / g:.2f}x); compiled {c * 1e3:.3f} ms ({c / g:.2f}x); "
              f"~{3 * 2 * 288 * 2000 / c / 1e9:.2f} GFLOP/s (3x the forward pass's 288 "
              f"multiply-adds a row)")
    Xs, ys = seed_data()

    def classic() -> None:
        nn = NN(2, 5, 1)
        for _ in range(1000):
            nn.backward(Xs, ys, nn.forward(Xs), 0.001)

    net = zn.MLP([2, 5, 1], seed=0)
    t = cpu_min({"seed": classic, "compiled": lambda: net.fit(
        Xs, ys, optimizer=zn.optim.SGD(0.05), epochs=1000, batch_size=None, shuffle=False,
        engine="compiled")}, args.rounds)
    print(f"seed problem, 1000 epochs: the seed's loop {t['seed'] * 1e3:.1f} ms; compiled "
          f"{t['compiled'] * 1e3:.2f} ms ({t['compiled'] / t['seed']:.3f}x)")
    X = rng.standard_normal((5000, 20))
    y = np.tanh(X[:, :1])
    t = cpu_min({e: _fitter(zn.MLP([20, 64, 64, 1], seed=0), X, y, e, zn.optim.Adam, 1e-3,
                            2, 64) for e in ("numpy", "compiled")}, max(2, args.rounds // 2))
    print(f"tabular: NumPy path {t['numpy'] / 2 * 1e3:.1f} ms/epoch; compiled "
          f"{t['compiled'] / 2 * 1e3:.1f} ms ({t['compiled'] / t['numpy']:.2f}x)")


if __name__ == "__main__":
    main()
