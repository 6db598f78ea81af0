"""Dropout curing an overfit: a wide network on 150 rows of scikit-learn's diabetes data.

Run it: ``python examples/layers_dropout.py`` (needs scikit-learn for the bundled dataset;
a few seconds). ``--epochs 100`` makes a shorter run.

Two hidden layers of 128 units (18,000 weights) on 112 training rows learn the training
set by heart: the training loss falls to ~0 while the validation loss bottoms out after
about 15 epochs and then climbs. The same network with ``Dropout(0.5)`` after each hidden
layer trains to a higher loss but validates, and predicts the 292 unseen rows, far better;
``BatchNorm`` helps a little alone and most together with dropout. Everything is seeded, so
the table is the same on every run (up to the last digit on other BLAS builds).
"""

from __future__ import annotations

import argparse
import os

# The matrices here are tiny (at most 32 x 128): BLAS threads only wait on each other.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from sklearn.datasets import load_diabetes

import zeronn as zn

N_TRAIN = 150  # rows to fit on (the last quarter of them validates); the rest tests
WIDTH = 128
VARIANTS = ("plain", "Dropout(0.5)", "BatchNorm", "BatchNorm + Dropout(0.5)")


def build(variant: str) -> zn.Sequential:
    """Dense(128) -> [BatchNorm] -> ReLU -> [Dropout(0.5)], twice, then Dense(1)."""
    layers: list[zn.Layer] = []
    for _ in range(2):
        layers.append(zn.Dense(WIDTH))
        if "BatchNorm" in variant:
            layers.append(zn.BatchNorm())
        layers.append(zn.Activation("relu"))
        if "Dropout" in variant:
            layers.append(zn.Dropout(0.5))
    layers.append(zn.Dense(1))
    return zn.Sequential(layers, input_dim=10, seed=0)


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Diabetes (442 rows, 10 features) shuffled once, standardized on the training rows.

    Returns X_train (150, 10), y_train (150, 1), X_test (292, 10), y_test (292, 1).
    """
    X, y = load_diabetes(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order].reshape(-1, 1)
    mean, std = X[:N_TRAIN].mean(axis=0), X[:N_TRAIN].std(axis=0)
    y_mean, y_std = y[:N_TRAIN].mean(), y[:N_TRAIN].std()
    X, y = (X - mean) / std, (y - y_mean) / y_std
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def run(epochs: int = 200) -> dict[str, dict[str, float]]:
    """Trains each variant; returns its final train/validation loss, best validation loss
    (and its epoch) and test R²."""
    X, y, X_test, y_test = data()
    results = {}
    for variant in VARIANTS:
        net = build(variant)
        hist = net.fit(X, y, loss="mse", optimizer=zn.optim.Adam(lr=1e-3), epochs=epochs,
                       batch_size=32, validation_split=0.25, seed=0)
        val = np.asarray(hist["val_loss"])
        residual = np.sum((net.predict(X_test) - y_test) ** 2)
        results[variant] = {
            "loss": hist["loss"][-1], "val_loss": float(val[-1]),
            "best_val_loss": float(val.min()), "best_epoch": int(val.argmin()) + 1,
            "test_r2": float(1 - residual / np.sum((y_test - y_test.mean()) ** 2)),
        }
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200, help="epochs per run (200)")
    epochs = parser.parse_args(argv).epochs
    results = run(epochs)
    print(f"diabetes, {N_TRAIN} rows (validation_split=0.25), Dense({WIDTH}) x 2, "
          f"Adam(1e-3), batch 32, {epochs} epochs; losses are MSE of standardized y")
    print(f"{'network':<26}{'train loss':>11}{'val loss':>10}{'best val (epoch)':>18}"
          f"{'test R2':>9}")
    for variant, r in results.items():
        best = f"{r['best_val_loss']:.3f} ({r['best_epoch']})"
        print(f"{variant:<26}{r['loss']:>11.3f}{r['val_loss']:>10.3f}{best:>18}"
              f"{r['test_r2']:>9.3f}")


if __name__ == "__main__":
    main()
