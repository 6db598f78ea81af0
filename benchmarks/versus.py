"""Before/after timing of the training loop: another checkout's zeronn against this one.

    git worktree add /tmp/zeronn-old <commit>
    OPENBLAS_NUM_THREADS=1 python benchmarks/versus.py /tmp/zeronn-old/src --rounds 60

Both versions run in this one process (the old package is copied under the name
``zeronn_old``), taking turns epoch by epoch, and are timed in CPU time: on a shared
machine the wall clock moves by 10-30% from one minute to the next, and taking turns
within a process cancels most of what is left. It prints, per workload, the best epoch
time of each and two ratios (new/old): of the bests, and the median of the per-round
ratios. MLPs with ReLU, MSE, no shuffling; the workloads of ``benchmarks/run.py``
(``--cases lenet:sgd:float32`` for the convnet).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

import zeronn

# sizes, rows, batch size (None: full batch), epochs per timed call
WORKLOADS = {
    "seed": ([2, 5, 1], 100, None, 200),
    "small": ([8, 32, 1], 2000, 32, 2),
    "medium": ([64, 256, 256, 1], 20000, 256, 1),
    # benchmarks/run.py's LeNet: 1x28x28 -> conv 6@5x5 pad 2 -> pool -> conv 16@5x5 -> pool
    # -> 400 -> 120 -> 84 -> 10 (sizes here: the Dense head)
    "lenet": ([400, 120, 84, 10], 4096, 64, 1),
}


def lenet(zn: Any, dtype: str) -> Any:
    layers = [zn.Conv2D(6, 5, padding=2, activation="relu"), zn.MaxPool2D(2),
              zn.Conv2D(16, 5, activation="relu"), zn.MaxPool2D(2), zn.Flatten(),
              zn.Dense(120, activation="relu"), zn.Dense(84, activation="relu"), zn.Dense(10)]
    return zn.Sequential(layers, input_shape=(1, 28, 28), dtype=dtype, seed=0)


def load_old(src: Path) -> ModuleType:
    """The package under ``src``/zeronn, imported as ``zeronn_old`` from a renamed copy."""
    tmp = Path(tempfile.mkdtemp(prefix="zeronn-versus-"))
    shutil.copytree(src / "zeronn", tmp / "zeronn_old")
    for path in (tmp / "zeronn_old").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"\bzeronn\.", "zeronn_old.", text)
        text = re.sub(r"\bfrom zeronn import\b", "from zeronn_old import", text)
        path.write_text(text, encoding="utf-8")
    sys.path.insert(0, str(tmp))
    import zeronn_old  # type: ignore[import-not-found]

    return zeronn_old


def epoch_runner(zn: Any, workload: str, optimizer: str,
                 dtype: str) -> tuple[Callable[[], None], int]:
    sizes, n, bs, epochs = WORKLOADS[workload]
    rng = np.random.default_rng(0)
    if workload == "lenet":
        X = rng.standard_normal((n, 1, 28, 28)).astype(dtype)
        net = lenet(zn, dtype)
    else:
        X = rng.standard_normal((n, sizes[0])).astype(dtype)
        net = zn.MLP(sizes, seed=0, dtype=dtype)
    y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    opt = zn.optim.SGD(lr=0.01) if optimizer == "sgd" else zn.optim.Adam(lr=1e-3)

    def run() -> None:
        net.fit(X, y, optimizer=opt, epochs=epochs, batch_size=bs, shuffle=False)

    run()  # buffers allocated, optimizer state created
    return run, epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old_src", type=Path, help="the other checkout's src folder")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--cases", default="seed:sgd:float64,small:sgd:float64,"
                   "small:adam:float32,medium:sgd:float32")
    args = p.parse_args()
    old = load_old(args.old_src)
    print(f"old: {old.__version__} from {args.old_src}; new: {zeronn.__version__}")
    for case in args.cases.split(","):
        workload, optimizer, dtype = case.split(":")
        run_old, epochs = epoch_runner(old, workload, optimizer, dtype)
        run_new, _ = epoch_runner(zeronn, workload, optimizer, dtype)
        t_old, t_new, ratios = [], [], []
        for _ in range(args.rounds):
            t = time.process_time()
            run_old()
            a = time.process_time() - t
            t = time.process_time()
            run_new()
            b = time.process_time() - t
            t_old.append(a / epochs)
            t_new.append(b / epochs)
            ratios.append(b / a)
        print(f"{workload:7s} {optimizer:5s} {dtype:8s} best old {min(t_old) * 1e3:9.3f} ms  "
              f"best new {min(t_new) * 1e3:9.3f} ms  new/old of bests "
              f"{min(t_new) / min(t_old):.3f}  median of rounds {float(np.median(ratios)):.3f}",
              flush=True)


if __name__ == "__main__":
    main()
