"""Test-set quality of zeronn.sklearn's MLPs against scikit-learn's, with the same budget.

Not a unit test: ``python benchmarks/quality.py`` (a minute or two). For each of
scikit-learn's bundled datasets, 5 train/test splits (test_size 0.25, random_state
0..4), a ``StandardScaler`` pipeline and one hidden layer of 64 units; classifiers get
max_iter 500, the regressor early_stopping, max_iter 2000 and learning_rate_init 0.01.
Both estimators get the split's random_state. Prints each dataset's mean test score
(accuracy, or R2 for diabetes) for both, the difference, and zeronn's fit time as a
ratio of scikit-learn's. The target: zeronn >= scikit-learn - 0.01 on every dataset.

zeronn is fitted twice per split, before and after its compiled path (issue 16): with
every ``fit`` on the NumPy path (``engine="numpy"``: the score above, and the fit time
"numpy") and with fit choosing (``engine="auto"``: "auto", with the engines its fits
reported and whether its test score equals the NumPy fit's). The estimators pass nothing
for it: the script sets the default of ``Sequential.fit``'s ``engine`` for the duration
(with a zeronn whose fit has no ``engine``, only the NumPy column is shown).
``--compiled`` also times ``engine="compiled"``: what auto could reach where it keeps NumPy.

``digits_convnet`` (the images of ``digits`` as 1x8x8 pixels in [0, 1]): a small convnet
(conv 32@3x3 pad 1 + ReLU, max pool 2, conv 64@3x3 pad 1 + ReLU, max pool 2, Dense 10
softmax; float32, Adam 1e-3, batch 32, no augmentation) beside the dense MLP above, on 5
*stratified* splits (test_size 0.25, random_state 0..4; the seed of each fit too). The
target: a mean test accuracy of at least 0.985, above the MLP's, and the five fits in
under a minute.

``forecast``: ``benchmarks/forecasting.py`` on statsmodels' bundled ``elnino`` (monthly
sea temperatures; the last 24 months held out, 24 one-step-ahead forecasts): a zeronn
LSTM/GRU tuned on the 24 months before them, beside seasonal-naive and gradient boosting
on lagged values. The targets: zeronn below seasonal-naive, within 10% of the better
baseline (MAE and RMSE).

``tinyshakespeare_charlstm``: text instead of tables: ``benchmarks/charlstm.py``'s
character-level language model (Embedding 32 -> LSTM 128 -> Dense softmax, float32, T=64,
batch 32, Adam 3e-3, clip 1.0, 6 epochs over the first 200,000 training characters of
the tiny Shakespeare text) trained by zeronn and by PyTorch from the same weights on the
same batches. The score is the validation loss per character (mean cross-entropy in nats
over every window of the held-out 10%; lower is better), of both and their difference.
The targets: equal within ``charlstm.LOSS_TOLERANCE`` and zeronn's below
``CHARLSTM_TARGET`` (a unigram model of the text scores 3.3, a uniform guess ln 65 =
4.17). Skipped with a note when the text (``../shared/data/tinyshakespeare.txt`` beside
the repository) is absent; nothing is downloaded. Its speed is ``make bench``'s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charlstm  # beside this file
import forecasting  # beside this file, also when quality.py is imported from elsewhere

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
# Rows of their own, after the MLP table.
WORKLOADS = ["digits_convnet", "tinyshakespeare_charlstm", "forecast"]
HAS_ENGINE = "engine" in inspect.signature(zn.Sequential.fit).parameters
CHARLSTM_TARGET = 2.2

ENGINES = ["numpy", "auto"] if HAS_ENGINE else ["numpy"]


@contextlib.contextmanager
def default_engine(engine: str, seen: list[str]) -> Iterator[None]:
    """Every ``Sequential.fit`` in the block runs with ``engine`` unless given one, and
    appends the engine its History reports to ``seen`` (nothing changes without engines)."""
    if not HAS_ENGINE:
        yield
        return
    fit = zn.Sequential.fit

    @functools.wraps(fit)
    def patched(self: zn.Sequential, *args: Any, **kwargs: Any) -> zn.History:
        kwargs.setdefault("engine", engine)
        hist = fit(self, *args, **kwargs)
        seen.extend(getattr(hist, "engines", None) or [getattr(hist, "engine", None)
                                                         or "numpy"])
        return hist

    zn.Sequential.fit = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        zn.Sequential.fit = fit  # type: ignore[method-assign]


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


def evaluate(name: str, engines: list[str]) -> dict[str, Any]:
    """Mean test score and total fit time per library over the splits; zeronn's on each
    engine (the score is the NumPy path's), taking turns within each split."""
    loader, task = DATASETS[name]
    X, y = loader(return_X_y=True)
    scores: dict[str, list[float]] = {"zeronn": [], "sklearn": []}
    times = {"sklearn": 0.0, **dict.fromkeys(engines, 0.0)}
    seen: list[str] = []
    same = True  # auto's test score equals the NumPy path's on every split
    for seed in SPLITS:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
        for engine in engines:
            pipe = make_pipeline(StandardScaler(), make_models(task, seed)["zeronn"])
            with default_engine(engine, seen if engine == "auto" else []):
                t0 = time.perf_counter()
                pipe.fit(Xtr, ytr)
                times[engine] += time.perf_counter() - t0
            score = float(pipe.score(Xte, yte))
            if engine == "numpy":
                scores["zeronn"].append(score)
            elif engine == "auto":
                same &= abs(score - scores["zeronn"][-1]) <= 1e-6
        pipe = make_pipeline(StandardScaler(), make_models(task, seed)["sklearn"])
        t0 = time.perf_counter()
        pipe.fit(Xtr, ytr)
        times["sklearn"] += time.perf_counter() - t0
        scores["sklearn"].append(float(pipe.score(Xte, yte)))
    return {"task": task, "zeronn": float(np.mean(scores["zeronn"])),
            "sklearn": float(np.mean(scores["sklearn"])),
            "time_ratio": times["numpy"] / times["sklearn"], "times": times,
            "auto_ran": "/".join(sorted(set(seen))) or "-", "auto_same": same,
            "scores": scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=[*DATASETS, *WORKLOADS],
                        help="subset of: " + ", ".join([*DATASETS, *WORKLOADS]))
    parser.add_argument("--compiled", action="store_true",
                        help="also time zeronn's fits with engine='compiled' (what auto could "
                             "reach where it keeps NumPy)")
    args = parser.parse_args(argv)
    engines = ENGINES + (["compiled"] if args.compiled and HAS_ENGINE else [])
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    print(f"{'dataset':<14} {'metric':<9} {'zeronn':>8} {'sklearn':>8} {'diff':>8} "
          f"{'fit time':>9}  target  {'numpy s':>8} {'auto s':>8} {'auto/numpy':>10}  auto ran")
    ok_all = True
    for name in args.datasets:
        if name in WORKLOADS:
            continue
        r = evaluate(name, engines)
        diff = r["zeronn"] - r["sklearn"]
        ok = diff >= -TOLERANCE
        ok_all &= ok
        metric = "R2" if r["task"] == "regression" else "accuracy"
        t = r["times"]
        auto = (f"{t['auto']:8.2f} {t['auto'] / t['numpy']:9.2f}x  {r['auto_ran']}"
                + ("" if r["auto_same"] else " (test score differs from numpy's!)")
                if "auto" in t else f"{'-':>8} {'-':>10}  not available")
        if "compiled" in t:
            auto += f"; compiled {t['compiled']:.2f} s ({t['compiled'] / t['numpy']:.2f}x)"
        print(f"{name:<14} {metric:<9} {r['zeronn']:8.3f} {r['sklearn']:8.3f} {diff:+8.3f} "
              f"{r['time_ratio']:8.2f}x  {'ok' if ok else 'MISSED':<6}  {t['numpy']:8.2f} "
              f"{auto}", flush=True)
    print("fit time: zeronn's total over the splits (NumPy path) / scikit-learn's (lower is "
          "faster);\nnumpy s, auto s: zeronn's total seconds with engine='numpy' (before the "
          "compiled path) and engine='auto' (after)")
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
    if "tinyshakespeare_charlstm" in args.datasets:
        ok_all &= report_charlstm()
    if "forecast" in args.datasets:
        report = forecasting.run(forecasting.load_elnino())
        ok_all &= all(report.targets_met().values())
        print("\nforecasting (benchmarks/forecasting.py):")
        print(forecasting.format_report(report), flush=True)
    return 0 if ok_all else 1


def report_charlstm(cfg: charlstm.Config | None = None) -> bool:
    """Trains charlstm's model with both libraries and prints the validation losses;
    True when the targets are met or the text is absent (the note says so)."""
    print("\ntiny Shakespeare, character-level LSTM: validation loss per character (nats)")
    if not charlstm.TEXT.exists():
        print(f"skipped: no text at {charlstm.TEXT} (nothing is downloaded)")
        return True
    res = charlstm.run(cfg or charlstm.Config(sample=0), charlstm.TEXT, threads=1,
                       log=lambda line: None)
    va, vb = res["val_after"], res["val_before"]
    ok = res["loss_ok"] and va["zeronn"] < CHARLSTM_TARGET
    print(f"{'':<10} {'before':>8} {'after':>8}")
    for name in ("zeronn", "torch"):
        print(f"{name:<10} {vb[name]:8.4f} {va[name]:8.4f}")
    print(f"difference {res['val_diff']:+.1e} (tolerance {charlstm.LOSS_TOLERANCE}); "
          f"{charlstm.describe(res['config'], res['vocab'])}")
    print(f"target: equal within {charlstm.LOSS_TOLERANCE}, zeronn below {CHARLSTM_TARGET}: "
          f"{'ok' if ok else 'MISSED'}", flush=True)
    return ok


if __name__ == "__main__":
    sys.exit(main())
