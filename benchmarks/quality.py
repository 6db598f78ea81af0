"""Test-set quality of zeronn.sklearn's MLPs against scikit-learn's, with the same budget.

Not a unit test: ``python benchmarks/quality.py`` (a minute or two). For each of
scikit-learn's bundled datasets, 5 train/test splits (test_size 0.25, random_state
0..4), a ``StandardScaler`` pipeline and one hidden layer of 64 units; classifiers get
max_iter 500, the regressor early_stopping, max_iter 2000 and learning_rate_init 0.01.
Both estimators get the split's random_state. Prints each dataset's mean test score
(accuracy, or R2 for diabetes) for both, the difference, and zeronn's fit time as a
ratio of scikit-learn's. The target: zeronn >= scikit-learn - 0.01 on every dataset.

``digits_convnet`` (the images of ``digits`` as 1x8x8 pixels in [0, 1]): a small convnet
(conv 32@3x3 pad 1 + ReLU, max pool 2, conv 64@3x3 pad 1 + ReLU, max pool 2, Dense 10
softmax; float32, Adam 1e-3, batch 32, no augmentation) beside the dense MLP above, on 5
*stratified* splits (test_size 0.25, random_state 0..4; the seed of each fit too). The
target: a mean test accuracy of at least 0.985, above the MLP's, and the five fits in
under a minute.
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

import zeronn as zn
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
CONVNET_TARGET = 0.985
CONVNET_EPOCHS = 30
CONVNET_SECONDS = 60.0


def digits_convnet(seed: int) -> zn.Sequential:
    """The small convnet of the digits_convnet row: 1x8x8 -> 32x4x4 -> 64x2x2 -> 10."""
    return zn.Sequential([
        zn.Conv2D(32, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
        zn.Conv2D(64, 3, padding=1, activation="relu"), zn.MaxPool2D(2),
        zn.Flatten(), zn.Dense(10, activation="softmax"),
    ], input_shape=(1, 8, 8), dtype="float32", seed=seed)


def evaluate_convnet() -> dict[str, Any]:
    """Mean test accuracy and total fit time of the convnet and the dense MLP on the same
    stratified splits of the digits."""
    X, y = datasets.load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    scores: dict[str, list[float]] = {"convnet": [], "mlp": []}
    times = {"convnet": 0.0, "mlp": 0.0}
    cpu = 0.0  # the convnet's CPU seconds (all threads): a busy machine's wall time is not
    for seed in SPLITS:
        tr, te = train_test_split(np.arange(len(y)), test_size=0.25, random_state=seed,
                                  stratify=y)
        net = digits_convnet(seed)
        t0, c0 = time.perf_counter(), time.process_time()
        net.fit(images[tr], np.eye(10, dtype=np.float32)[y[tr]],
                loss="categorical_crossentropy", optimizer=zn.optim.Adam(1e-3),
                epochs=CONVNET_EPOCHS, batch_size=32, seed=seed)
        times["convnet"] += time.perf_counter() - t0
        cpu += time.process_time() - c0
        pred = net.predict(images[te]).argmax(axis=1)
        scores["convnet"].append(float(np.mean(pred == y[te])))
        pipe = make_pipeline(StandardScaler(), make_models("classification", seed)["zeronn"])
        t0 = time.perf_counter()
        pipe.fit(X[tr], y[tr])
        times["mlp"] += time.perf_counter() - t0
        scores["mlp"].append(float(pipe.score(X[te], y[te])))
    return {"convnet": float(np.mean(scores["convnet"])), "mlp": float(np.mean(scores["mlp"])),
            "times": times, "cpu": cpu, "scores": scores}


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
    parser.add_argument("datasets", nargs="*", default=[*DATASETS, "digits_convnet"],
                        help="subset of: " + ", ".join([*DATASETS, "digits_convnet"]))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"{'dataset':<14} {'metric':<9} {'zeronn':>8} {'sklearn':>8} {'diff':>8} "
          f"{'fit time':>9}  target")
    ok_all = True
    for name in args.datasets:
        if name == "digits_convnet":
            continue
        r = evaluate(name)
        diff = r["zeronn"] - r["sklearn"]
        ok = diff >= -TOLERANCE
        ok_all &= ok
        metric = "R2" if r["task"] == "regression" else "accuracy"
        print(f"{name:<14} {metric:<9} {r['zeronn']:8.3f} {r['sklearn']:8.3f} {diff:+8.3f} "
              f"{r['time_ratio']:8.2f}x  {'ok' if ok else 'MISSED'}", flush=True)
    print("fit time: zeronn's total over the splits / scikit-learn's (lower is faster)")
    if "digits_convnet" in args.datasets:
        c = evaluate_convnet()
        ok = (c["convnet"] >= CONVNET_TARGET and c["convnet"] > c["mlp"]
              and c["times"]["convnet"] < CONVNET_SECONDS)
        ok_all &= ok
        print(f"\ndigits as 1x8x8 images, stratified splits: mean test accuracy, total fit "
              f"time of the {len(SPLITS)} fits")
        print(f"{'model':<24} {'accuracy':>8} {'fit time':>9}  per split")
        for key, label in (("mlp", "dense MLP (64)"), ("convnet", "convnet (Conv2D x2)")):
            per = " ".join(f"{v:.4f}" for v in c["scores"][key])
            print(f"{label:<24} {c[key]:8.4f} {c['times'][key]:8.1f}s  {per}")
        print(f"convnet: {c['cpu']:.1f} CPU seconds in its {c['times']['convnet']:.1f} s")
        print(f"target: convnet >= {CONVNET_TARGET}, above the MLP, fits under "
              f"{CONVNET_SECONDS:.0f} s: {'ok' if ok else 'MISSED'}", flush=True)
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
