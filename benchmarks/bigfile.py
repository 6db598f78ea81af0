"""Peak memory of `zeronn train` and `zeronn predict` on a big numeric CSV.

Writes a ROWS x 20 numeric CSV (19 features and a target; 1,000,000 rows is about 192 MB)
to a folder (kept and reused between runs), trains one epoch on it, predicts it, and
prints each command's peak resident memory (``/usr/bin/time -v`` when present, else
the children's ``ru_maxrss``) beside the size of the file's numeric data (float64) and the
goal of 4x that for training. Predicting in chunks, its peak should not grow with ROWS.

    python benchmarks/bigfile.py                    # 1,000,000 rows
    python benchmarks/bigfile.py --rows 250000 --dir /tmp/zeronn-big

Measured on the 2-core development machine (peak RSS in MiB; python + numpy + pandas alone
take 107): 1,000,000 rows (190 MB, 153 MiB of float64 data): train 505 (goal < 610; 976
before the chunked reader and the in-place scaling; 513 before the typed columns, so
they cost nothing here), predict 204; 200,000 rows: predict 196, so predicting does not
grow with the rows. On a machine shared with other jobs, one BLAS thread
(``OPENBLAS_NUM_THREADS=1``) trains an epoch of 1,000,000 rows in about 10 s; two threads
contending with the other jobs took 138 s.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

N_COLUMNS = 20


def write_csv(path: str, rows: int, seed: int = 0) -> None:
    """19 standard-normal features and y = a linear function of them plus noise."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=N_COLUMNS - 1)
    header = ",".join([f"x{i}" for i in range(N_COLUMNS - 1)] + ["y"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 100_000):
            m = min(100_000, rows - start)
            X = rng.normal(size=(m, N_COLUMNS - 1))
            y = X @ w + 0.1 * rng.normal(size=m)
            np.savetxt(f, np.column_stack([X, y]), fmt="%.6f", delimiter=",")


def peak_mb(cmd: list[str]) -> tuple[float, float, str]:
    """(peak RSS in MB, seconds, the command's stdout) of one run of ``cmd``."""
    t0 = time.perf_counter()
    if shutil.which("time") and os.path.exists("/usr/bin/time"):
        r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if r.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
        assert m, r.stderr
        return int(m.group(1)) / 1024, seconds, r.stdout
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024, seconds, r.stdout  # a max over children: run alone


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", help="folder for the CSV and outputs (default: a new temp one)")
    args = ap.parse_args()
    folder = args.dir or tempfile.mkdtemp(prefix="zeronn-bigfile-")
    os.makedirs(folder, exist_ok=True)
    data = os.path.join(folder, f"big_{args.rows}.csv")
    if not os.path.exists(data):
        t0 = time.perf_counter()
        write_csv(data, args.rows)
        print(f"wrote {data} in {time.perf_counter() - t0:.1f} s")
    size = os.path.getsize(data) / 1e6
    numeric = args.rows * N_COLUMNS * 8 / 2**20
    zeronn = [sys.executable, "-m", "zeronn.cli"]
    model = os.path.join(folder, "big.zeronn")
    train_mb, train_s, out = peak_mb([*zeronn, "train", data, "--target", "y", "--epochs", "1",
                                      "--batch-size", "256", "-q", "-o", model])
    print(out.strip())
    pred_mb, pred_s, out = peak_mb([*zeronn, "predict", model, data, "-o",
                                    os.path.join(folder, "pred.csv")])
    print(out.strip())
    base_mb, _, _ = peak_mb([sys.executable, "-c", "import zeronn.cli, pandas, numpy"])
    print(f"\n{args.rows} x {N_COLUMNS} CSV, {size:.0f} MB on disk, numeric data {numeric:.0f} MB "
          f"(float64); python + numpy + pandas alone: {base_mb:.0f} MB")
    print("| command | peak RSS (MB) | goal | seconds |\n|---|---:|---:|---:|")
    print(f"| train, 1 epoch | {train_mb:.0f} | < {4 * numeric:.0f} | {train_s:.1f} |")
    print(f"| predict | {pred_mb:.0f} | flat in rows | {pred_s:.1f} |")


if __name__ == "__main__":
    main()
