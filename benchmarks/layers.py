"""Per-layer time of one LeNet training step (forward and backward), in one process.

    OPENBLAS_NUM_THREADS=1 python benchmarks/layers.py [--old /tmp/zeronn-old/src] [--rounds 200]

Builds ``benchmarks/run.py``'s lenet network (batch 64 of 1x28x28, float32) as: this tree
with its compiled kernels (``fast``, when numba is installed), this tree on NumPy alone
(``numpy``: the kernels switched off), and optionally another checkout (``old``, imported as
``zeronn_old`` as ``versus.py`` does). They take turns step by step; each layer's forward
and backward are timed in process CPU time and the minimum over rounds is printed (on a
shared machine the minimum is the least disturbed figure). Then the im2col GEMMs alone,
the products ``run.py``'s GEMM bound counts for the two convolutions.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

import zeronn
from versus import lenet, load_old


def gemm_minima(rounds: int) -> list[str]:
    """The convolutions' im2col products in the bound's layout, minima in ms."""
    out = []
    for fn, k, m, first in ((6, 25, 64 * 28 * 28, True), (16, 150, 64 * 10 * 10, False)):
        W = np.ones((fn, k), np.float32)
        colT = np.full((k, m), 0.5, np.float32)
        outT, dW, dcolT = np.empty((fn, m), np.float32), np.empty_like(W), np.empty_like(colT)
        products = ((W, colT, outT), (outT, colT.T, dW), (W.T, outT, dcolT))
        ts: list[list[float]] = [[], [], []]
        for _ in range(rounds):
            for j, (a, b, c) in enumerate(products):
                t = time.process_time()
                np.dot(a, b, out=c)
                ts[j].append(time.process_time() - t)
        fwd, dw, dcol = (min(t) * 1e3 for t in ts)
        total = fwd + dw + (0.0 if first else dcol)
        out.append(f"conv F={fn} K={k} M={m}: out.T {fwd:.3f}  dW {dw:.3f}  dcol.T {dcol:.3f}"
                   f"{' (first layer: not counted)' if first else ''}  counted {total:.3f} ms")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", type=Path, help="another checkout's src folder")
    p.add_argument("--rounds", type=int, default=200)
    args = p.parse_args()
    nets: dict[str, Any] = {}
    if args.old is not None:
        nets["old"] = lenet(load_old(args.old), "float32")
    os.environ["ZERONN_NO_FAST"] = "1"  # read when a layer is built: this net has no kernels
    nets["numpy"] = lenet(zeronn, "float32")
    del os.environ["ZERONN_NO_FAST"]
    nets["fast"] = lenet(zeronn, "float32")
    x = np.random.default_rng(0).standard_normal((64, 1, 28, 28)).astype("float32")
    times: dict[str, dict[tuple[int, str], list[float]]] = {k: {} for k in nets}
    for _ in range(args.rounds):
        for name, net in nets.items():
            layers, t = net.layers, times[name]
            a = x
            for i, layer in enumerate(layers):
                c = time.process_time()
                a = layer.forward(a, True)
                t.setdefault((i, "f"), []).append(time.process_time() - c)
            d = np.full(a.shape, 0.01, np.float32)
            for i in range(len(layers) - 1, -1, -1):
                c = time.process_time()
                d = layers[i].backward(d, i > 0)
                t.setdefault((i, "b"), []).append(time.process_time() - c)
    layers = nets["fast"].layers
    print(f"minima over {args.rounds} rounds, ms (process CPU time)")
    print(f"{'layer':14s} " + " ".join(f"{k + ' fwd':>11s} {k + ' bwd':>11s}" for k in nets))
    total = dict.fromkeys(nets, 0.0)
    for i, layer in enumerate(layers):
        cells = []
        for k in nets:
            f, b = min(times[k][(i, "f")]) * 1e3, min(times[k][(i, "b")]) * 1e3
            total[k] += f + b
            cells.append(f"{f:11.3f} {b:11.3f}")
        name = type(layer).__name__ + ("*" if getattr(layer, "direct", False) else "")
        print(f"{i}:{name:12s} " + " ".join(cells))
    print("sum " + "  ".join(f"{k} {v:.3f}" for k, v in total.items()))
    if any(getattr(layer, "direct", False) for layer in layers):
        print("* fast: the direct route (no col matrix; see zeronn.layers.conv)")
    for line in gemm_minima(args.rounds):
        print(line)


if __name__ == "__main__":
    main()
