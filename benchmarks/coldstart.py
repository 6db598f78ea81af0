"""No new waiting: the first fit in a fresh process, with numba's disk cache empty.

Each case runs in its own fresh subprocess with an empty ``NUMBA_CACHE_DIR`` (nothing
compiled, nothing cached) and times ``import zeronn`` and one ``fit`` on the small workload
(2000 x 8 -> 32 -> 1, batch 32, SGD): with ``engine="numpy"`` (the reference) and with
``engine="auto"`` (the default), for a run of about 1 s of NumPy work (the contract: auto
at most 1.2x numpy's time) and a long one (where auto compiles in a background thread,
trains on NumPy meanwhile and switches when the kernel is ready). Rounds alternate
between the engines; the minimum of each is reported (the machine may be shared).

    python benchmarks/coldstart.py [--rounds 3] [--epochs 250] [--long-epochs 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import zeronn as zn
t1 = time.perf_counter()
engine, epochs = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
X = rng.standard_normal((2000, 8))
y = np.tanh(X @ rng.standard_normal((8, 1)))
net = zn.MLP([8, 32, 1], seed=0)
t2 = time.perf_counter()
hist = net.fit(X, y, optimizer=zn.optim.SGD(lr=0.01), epochs=epochs, batch_size=32,
               engine=engine, seed=0)
t3 = time.perf_counter()
engines = hist.engines
first = engines.index("compiled") if "compiled" in engines else None
print(json.dumps({"import": t1 - t0, "fit": t3 - t2, "numba_imported": "numba" in sys.modules,
                  "first_compiled_epoch": first, "loss": hist["loss"][-1]}))
"""


def run(engine: str, epochs: int) -> dict[str, object]:
    # ignore_cleanup_errors: a compiling child of "auto" may still be writing its cache
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        src = Path(__file__).resolve().parents[1] / "src"
        env["PYTHONPATH"] = os.pathsep.join([str(src), env.get("PYTHONPATH", "")])
        out = subprocess.run([sys.executable, "-c", CHILD, engine, str(epochs)], env=env,
                             capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=250, help="about 1 s of NumPy work")
    parser.add_argument("--long-epochs", type=int, default=3000)
    args = parser.parse_args()
    for label, epochs in (("short", args.epochs), ("long", args.long_epochs)):
        best: dict[str, dict[str, object]] = {}
        for _ in range(args.rounds):
            for engine in ("numpy", "auto"):
                r = run(engine, epochs)
                if engine not in best or float(r["fit"]) < float(best[engine]["fit"]):  # type: ignore[arg-type]
                    best[engine] = r
        ratio = float(best["auto"]["fit"]) / float(best["numpy"]["fit"])  # type: ignore[arg-type]
        print(f"{label} ({epochs} epochs), cold cache, min of {args.rounds}: "
              f"import zeronn {float(best['numpy']['import']):.3f} s; "  # type: ignore[arg-type]
              f"fit numpy {float(best['numpy']['fit']):.3f} s, "  # type: ignore[arg-type]
              f"auto {float(best['auto']['fit']):.3f} s ({ratio:.2f}x); "  # type: ignore[arg-type]
              f"auto imported numba: {best['auto']['numba_imported']}, first compiled epoch: "
              f"{best['auto']['first_compiled_epoch']}")


if __name__ == "__main__":
    main()
