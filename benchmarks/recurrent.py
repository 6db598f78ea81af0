"""One LSTM layer's training step (forward and backward) against PyTorch eager.

    python benchmarks/recurrent.py [--threads 1] [--rounds 30] [--reps 5]

The shapes of a character-level model on the tiny Shakespeare text: n=64 sequences of
T=100 steps, D=65 features (the one-hot width of its 65 characters), H=128 units,
float32. zeronn's ``LSTM(H, return_sequences=True)`` against ``torch.nn.LSTM`` with
``batch_first=True`` and the same weights (copied; the layouts are the same). Each
round times ``reps`` steps of each in turn (interleaved, so a busy neighbour slows both
alike); the median of the rounds' ratios is printed with their range. BLAS and torch get
the same number of threads (set before NumPy is imported). ``--forward`` times the
forward pass alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import blas_description, interleaved  # beside this file


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--features", type=int, default=65)
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--forward", action="store_true", help="time the forward pass alone")
    args = p.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    import zeronn as zn

    torch.set_num_threads(args.threads)
    n, t, d, h = args.n, args.steps, args.features, args.units
    net = zn.Sequential([zn.LSTM(h, return_sequences=True)], input_shape=(t, d),
                        dtype="float32", seed=0)
    layer = net.layers[0]
    lstm = torch.nn.LSTM(d, h, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, name + "_l0").copy_(torch.from_numpy(getattr(layer, name).copy()))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, t, d)).astype(np.float32)
    g = rng.standard_normal((n, t, h)).astype(np.float32)
    gbuf = np.empty_like(g)
    xt = torch.tensor(x, requires_grad=True)
    gt = torch.tensor(g)
    with torch.no_grad():
        gap = float(np.abs(lstm(xt)[0].numpy() - layer.forward(x, training=True)).max())

    def zeronn_step() -> None:
        layer.forward(x, training=True)
        if not args.forward:
            np.copyto(gbuf, g)  # backward may overwrite its input
            layer.backward(gbuf)

    def torch_step() -> None:
        if args.forward:
            with torch.no_grad():
                lstm(xt)
            return
        xt.grad = None
        for prm in lstm.parameters():
            prm.grad = None
        lstm(xt)[0].backward(gt)

    steps = {"zeronn": zeronn_step, "torch": torch_step}
    # A warm-up first: buffers, thread pools.
    times = interleaved(steps, args.rounds, args.reps, warm_up=2)
    blas = blas_description()
    what = "forward" if args.forward else "forward+backward"
    print(f"LSTM {what}: n={n} T={t} D={d} H={h} float32, {args.threads} thread(s), "
          f"{args.rounds} rounds of {args.reps} steps; numpy {np.__version__} ({blas}), "
          f"torch {torch.__version__}, python {sys.version.split()[0]}; "
          f"max |h - h_torch| {gap:.2g}")
    for name, ts in times.items():
        print(f"  {name:<7} median {statistics.median(ts) * 1e3:8.3f} ms/step "
              f"(min {min(ts) * 1e3:.3f})")
    ratios = [a / b for a, b in zip(times["zeronn"], times["torch"])]
    print(f"  zeronn / torch: median {statistics.median(ratios):.2f} "
          f"(range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
