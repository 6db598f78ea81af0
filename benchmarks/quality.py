"""Test-set quality of zeronn.sklearn's MLPs against scikit-learn's, with the same budget.

Not a unit test: ``python benchmarks/quality.py`` (a minute or two). For each of
scikit-learn's bundled datasets, 5 train/test splits (test_size 0.25, random_state
0..4), a ``StandardScaler`` pipeline and one hidden layer of 64 units; classifiers get
max_iter 500, the regressor early_stopping, max_iter 2000 and learning_rate_init 0.01.
Both estimators get the split's random_state. Prints each dataset's mean test score
(accuracy, or R2 for diabetes) for both, the difference, and zeronn's fit time as a
ratio of scikit-learn's. The target: zeronn >= scikit-learn - 0.01 on every dataset.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn import datasets
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier as SkClassifier
from sklearn.neural_network import MLPRegressor as SkRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from zeronn.sklearn import MLPClassifier, MLPRegressor

DATASETS: dict[str, tuple[Callable[..., Any], str]] = {
    "diabetes": (datasets.load_diabetes, "regression"),
    "digits": (datasets.load_digits, "classification"),
    "breast_cancer": (datasets.load_breast_cancer, "classification"),
    "wine": (datasets.load_wine, "classification"),
    "iris": (datasets.load_iris, "classification"),
}
SPLITS = range(5)
TOLERANCE = 0.01


def make_models(task: str, seed: int) -> dict[str, Any]:
    """Both libraries' estimators with the same parameters."""
    if task == "regression":
        kw: dict[str, Any] = dict(hidden_layer_sizes=(64,), early_stopping=True,
                                  max_iter=2000, learning_rate_init=0.01, random_state=seed)
        return {"zeronn": MLPRegressor(**kw), "sklearn": SkRegressor(**kw)}
    kw = dict(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
    return {"zeronn": MLPClassifier(**kw), "sklearn": SkClassifier(**kw)}


def evaluate(name: str) -> dict[str, Any]:
    """Mean test score and total fit time per library over the splits."""
    loader, task = DATASETS[name]
    X, y = loader(return_X_y=True)
    scores: dict[str, list[float]] = {"zeronn": [], "sklearn": []}
    times = {"zeronn": 0.0, "sklearn": 0.0}
    for seed in SPLITS:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
        for lib, est in make_models(task, seed).items():
            pipe = make_pipeline(StandardScaler(), est)
            t0 = time.perf_counter()
            pipe.fit(Xtr, ytr)
            times[lib] += time.perf_counter() - t0
            scores[lib].append(float(pipe.score(Xte, yte)))
    return {"task": task, "zeronn": float(np.mean(scores["zeronn"])),
            "sklearn": float(np.mean(scores["sklearn"])),
            "time_ratio": times["zeronn"] / times["sklearn"], "scores": scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=list(DATASETS),
                        help="subset of: " + ", ".join(DATASETS))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"{'dataset':<14} {'metric':<9} {'zeronn':>8} {'sklearn':>8} {'diff':>8} "
          f"{'fit time':>9}  target")
    ok_all = True
    for name in args.datasets:
        r = evaluate(name)
        diff = r["zeronn"] - r["sklearn"]
        ok = diff >= -TOLERANCE
        ok_all &= ok
        metric = "R2" if r["task"] == "regression" else "accuracy"
        print(f"{name:<14} {metric:<9} {r['zeronn']:8.3f} {r['sklearn']:8.3f} {diff:+8.3f} "
              f"{r['time_ratio']:8.2f}x  {'ok' if ok else 'MISSED'}", flush=True)
    print("fit time: zeronn's total over the splits / scikit-learn's (lower is faster)")
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
