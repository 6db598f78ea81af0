"""The ``zeronn`` command: train, predict, evaluate, export and inspect models on CSV files.

Every user mistake (a bad file, an unknown column, an invalid option, a file that is not a
model) exits with code 2 and one ``zeronn: error: ...`` line on stderr, never a traceback,
and leaves no output file behind: outputs are written to a temporary file in the target's
folder and moved into place only when complete.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.util
import math
import os
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeAlias

import numpy as np

from zeronn._atomic import atomic_path
from zeronn._validation import fraction, non_negative_number, positive_number

__all__ = ["main"]

PREDICT_CHUNK_ROWS = 100_000  # rows `predict` reads at a time
MAX_ERROR_CHARS = 600  # one error line, at most this long (a huge column list is cut)


class CLIError(Exception):
    """A user mistake: printed as ``zeronn: error: <message>``, exit code 2."""


# -- demo -----------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    """The seed's run printed exactly, then the same data through the general engine."""
    from zeronn import optim
    from zeronn.classic import NN, seed_data
    from zeronn.classic import mse_loss as seed_mse
    from zeronn.models import MLP

    t0 = time.perf_counter()
    X, y = seed_data()
    nn = NN(input_size=2, hidden_size=5, output_size=1)
    net = MLP.from_classic(nn)  # the same initial weights, before the seed trains them
    for epoch in range(1000):
        y_pred = nn.forward(X)
        loss = seed_mse(y, y_pred)
        nn.backward(X, y, y_pred, 0.001)
        if epoch % 100 == 0:
            print(f"Epoch {epoch}, Loss: {loss:.4f}")
    # mean-MSE's gradient is 2/N times the seed's summed error: lr 0.001 * 100 / 2 = 0.05.
    hist = net.fit(X, y, loss="mse", optimizer=optim.SGD(lr=0.05), epochs=1000,
                   batch_size=None, shuffle=False)
    print()
    print(f"The general engine, same start, MLP([2, 5, 1]) + SGD(lr=0.05), full batch: "
          f"final loss {hist['loss'][-1]:.4f} (seed: {loss:.4f})")
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [2.0, -1.0]])
    pred = net.predict(pts)[:, 0]
    print(f"{'x1':>6} {'x2':>6} {'2*x1-3*x2+1':>12} {'network':>10}")
    for (x1, x2), p in zip(pts, pred):
        print(f"{x1:6.1f} {x2:6.1f} {2 * x1 - 3 * x2 + 1:12.4f} {p:10.4f}")
    print(f"({time.perf_counter() - t0:.2f} s)")
    return 0


# -- files ----------------------------------------------------------------------------
def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise CLIError("reading CSV files needs pandas: pip install 'zeronn[data]'") from None
    return pd


def _open_table(args: argparse.Namespace) -> Any:
    """The data file of a command, with the dialect options it was given."""
    _pandas()
    from zeronn.tabular.io import open_table

    return open_table(args.data, sep=args.sep, decimal=args.decimal, encoding=args.encoding)


def _check_output_path(path: str, what: str, inputs: Sequence[str] = ()) -> None:
    """Fails before any work if ``path`` cannot be written (no folder, a folder, read-only)
    or would overwrite one of the command's ``inputs``."""
    folder = os.path.dirname(os.path.abspath(path))
    for source in inputs:
        if os.path.exists(source) and os.path.exists(path) and os.path.samefile(source, path):
            raise CLIError(f"the {what} {path} is also an input of this command: writing it "
                           "would destroy the input; choose another name")
    if os.path.isdir(path):
        raise CLIError(f"the {what} {path} is a folder: give a file name")
    if not os.path.isdir(folder):
        raise CLIError(f"cannot write the {what} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CLIError(f"cannot write the {what} {path}: the folder {folder} is not writable")


def _load_model(path: str) -> Any:
    """Any zeronn model file (MLP, estimator, CLI model)."""
    try:
        from zeronn.persistence import load
    except ImportError:
        raise CLIError("model files are not available in this installation "
                       "(zeronn.persistence is missing)") from None
    # The command's own kind of model file is registered by importing its module, so
    # reading it never depends on the installed package metadata (entry points), which
    # an editable install does not refresh.
    import zeronn.tabular  # noqa: F401
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path} is a folder, not a model file")
    try:
        return load(path)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None


def _load_tabular(path: str) -> Any:
    """A model trained by ``zeronn train`` (feature names, scaling and labels included)."""
    from zeronn.tabular import TabularModel

    model = _load_model(path)
    if not isinstance(model, TabularModel):
        raise CLIError(f"{path} holds a zeronn {type(model).__name__}, not a model trained with "
                       "`zeronn train`: it has no column names to match a CSV against")
    if not model.fitted:
        raise CLIError(f"{path} holds a model that was never trained")
    return model


def _network_of(model: Any) -> Any:
    """The network inside any loadable object (or the object itself)."""
    from zeronn.network import Network

    if isinstance(model, Network):
        return model
    # The public attribute holding it: TabularModel.net, the estimators' fitted net_.
    for attr in ("net", "net_"):
        net = getattr(model, attr, None)
        if isinstance(net, Network):
            return net
    return None


# -- option types (argparse calls these; their errors become one clean line) ----------------
def _number(convert: Callable[[str], Any], check: Callable[[str, Any], Any], unreadable: str,
            out_of_range: str) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, then ``check(name, value)``, one of the
    ``zeronn._validation`` checks; each failure says what was expected (``unreadable`` when
    the text is not a number, else ``out_of_range``)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {unreadable}, got {text!r}") from None
        try:
            check("value", value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {out_of_range}, got {text!r}") from None
        return value

    return parse


_positive_int = _number(int, functools.partial(positive_number, integer=True),
                        "a positive integer", "a positive integer")
_non_negative_int = _number(int, non_negative_number, "an integer >= 0", "an integer >= 0")
_positive_float = _number(float, positive_number, "a positive number",
                          "a positive finite number")
_fraction = _number(float, fraction, "a number in [0, 1)", "a number in [0, 1)")
_non_negative_float = _number(float, non_negative_number, "a number >= 0",
                              "a finite number >= 0")


def _hidden(text: str) -> list[int]:
    """``64,64`` -> [64, 64]; ``""`` or ``none`` -> [] (a linear model)."""
    if text.strip().lower() in ("", "none"):
        return []
    try:
        sizes = [positive_number("layer size", int(t), integer=True) for t in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes:
        raise argparse.ArgumentTypeError(
            f"expected layer sizes as positive integers separated by commas (e.g. 64,64), "
            f"or 'none', got {text!r}")
    return sizes


def _batch_size(text: str) -> int | None:
    if text.strip().lower() == "full":
        return None
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'full', got {text!r}") from None


def _patience(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer (epochs) or 'auto', got {text!r}") from None


def _registry_name(lookup: Callable[[str], Any]) -> Callable[[str], str]:
    """An option type accepting the names a registry knows (its error lists them)."""
    def parse(text: str) -> str:
        try:
            lookup(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return parse


def _column_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected column names separated by commas (e.g. x1,x2), got {text!r}")
    return names


def _dialect_options(p: argparse.ArgumentParser) -> None:
    """--sep, --decimal, --encoding: how a data file is written, when sniffing is wrong."""
    g = p.add_argument_group("file format (CSV dialect; .gz .bz2 .zip .xz and .parquet are "
                             "read by their extension)")
    g.add_argument("--sep", metavar="CHAR", help="column separator: ',', ';', 'tab', '|' or "
                   "another character (default: sniffed among those four)")
    g.add_argument("--decimal", choices=(".", ","), help="decimal mark (default: '.', or ',' "
                   "when the separator is ';' and the numbers are written 1,5)")
    g.add_argument("--encoding", metavar="NAME", help="text encoding, e.g. cp1252, latin-1, "
                   "shift_jis (default: utf-8)")


def _layer_text(layer: Any) -> str:
    """What `info` shows of a layer: its activation, or its kind with its setting."""
    if layer.kind == "dropout":
        return f"dropout {layer.rate:g}"
    if layer.kind in ("dense", "activation") and layer.activation is not None:
        return str(layer.activation.name)
    return str(layer.kind)


# -- train ----------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from zeronn.tabular import TabularModel

    _check_output_path(args.output, "model file", [args.data])
    if args.plot:
        _check_output_path(args.plot, "plot", [args.data, args.output])
        if os.path.abspath(args.plot) == os.path.abspath(args.output):
            raise CLIError(f"--plot and -o both name {args.output}: give the plot its own file")
        _plot_backend(args.plot)
    try:
        model = TabularModel(hidden=args.hidden, activation=args.activation, loss=args.loss,
                             optimizer=args.optimizer, lr=args.lr, epochs=args.epochs,
                             batch_size=args.batch_size,
                             validation_split=args.validation_split,
                             early_stopping=args.early_stopping,
                             standardize=args.standardize, task=args.task, seed=args.seed,
                             dropout=args.dropout, batch_norm=args.batch_norm,
                             weight_decay=args.weight_decay,
                             max_categories=args.max_categories,
                             class_weight=args.class_weight)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    table = _open_table(args)
    targets = [t for group in args.target for t in group]
    # Only the columns the model needs are read (a big file's others never take memory);
    # an unknown name reads them all, so the model's error can list every column.
    needed = None if args.features is None else list(dict.fromkeys([*targets, *args.features]))
    if needed is not None and not set(needed) <= set(table.columns):
        needed = None
    df = table.read(needed)
    if args.quiet:
        verbose = 0
    elif args.verbose:
        verbose = 2
    else:
        verbose = 1 if sys.stderr.isatty() else 0
    t0 = time.perf_counter()
    # Progress is not the result: the per-epoch lines go to stderr with the bar, so stdout
    # carries only the summary.
    with warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always")
        hist = model.fit(df, targets, features=args.features, verbose=verbose,
                         exclude=[c for group in args.exclude or () for c in group])
    seconds = time.perf_counter() - t0
    if model.fitted:  # how the file was read, kept with the model (shown by `info`)
        model.training["data_dialect"] = table.dialect.to_dict()
    if not args.plot:
        del df  # nothing below needs the data: give its memory back before saving
    # Ctrl-C stops fit at the end of a batch (it warns; the warning is this summary's job).
    interrupted = bool(hist.interrupted)
    for message in dict.fromkeys(str(w.message) for w in caught):  # each once, in order
        if not interrupted or "interrupted" not in message:
            print(f"zeronn: warning: {_one_line(message)}", file=sys.stderr)
    if interrupted and hist.epochs == 0:
        print("zeronn: interrupted before the first epoch ended; nothing saved",
              file=sys.stderr)
        return 130

    from zeronn.persistence import save

    if args.plot:
        with atomic_path(args.plot, os.path.splitext(args.plot)[1]) as tmp_plot:
            _plot(tmp_plot, args.plot, model, hist, df)
            save(model, args.output)
    else:
        save(model, args.output)

    task = model.fitted_task
    what = (f"{task} of {', '.join(model.target_names)}"
            + (f" ({len(model.classes)} classes)" if task == "classification" else "")
            + f" from {len(model.feature_names)} feature(s)")
    stop = ""
    if hist.stopped_early:
        stop = ", stopped early"
    elif interrupted:
        stop = ", interrupted (what was learned is saved)"
    plot = f", plot {args.plot}" if args.plot else ""
    print(f"trained {what}: {hist.epochs} epochs in {seconds:.2f} s{stop}, "
          f"{_kept_text(model.training)}; saved {args.output}{plot}")
    return 130 if interrupted else 0  # 130: the shell's code for Ctrl-C, so `&&` chains stop


def _kept_text(training: dict[str, Any]) -> str:
    """``kept epoch 37: loss 0.12, val_loss 0.15``: the epoch whose weights the model holds
    (and, for a classifier chosen by it, its validation accuracy)."""
    kept = training.get("kept_epoch") or training.get("epochs_run")
    loss = training.get("kept_loss", training.get("final_loss"))
    val = training.get("kept_val_loss", training.get("final_val_loss"))
    accuracy = training.get("kept_val_accuracy")
    parts = [f"loss {loss:.6g}"] if isinstance(loss, (int, float)) else []
    if isinstance(val, (int, float)):
        parts.append(f"val_loss {val:.6g}")
    if isinstance(accuracy, (int, float)):
        parts.append(f"val_accuracy {accuracy:.4f}")
    return f"kept epoch {kept}: " + ", ".join(parts)


def _plot_backend(path: str) -> None:
    """Fails early (before training) without matplotlib or for a format it cannot write."""
    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("--plot needs matplotlib: pip install 'zeronn[plot]'")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    if ext and ext not in formats:
        raise CLIError(f"--plot {path}: matplotlib cannot write .{ext} files; use one of "
                       f"{', '.join('.' + f for f in sorted(formats))}")


def _plot(tmp: str, path: str, model: Any, hist: Any, df: Any) -> None:
    """Loss curves, and for 1 or 2 features the learned function or decision regions."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no window, no display needed
    import matplotlib.pyplot as plt

    from zeronn.plotting import plot_fit, plot_history

    n_features = len(model.feature_names)
    # The fit is drawn over raw numeric columns only (no one-hot, date or missing columns).
    draw_fit = n_features in (1, 2) and model.preprocessor.output_names == model.feature_names
    width = 12.8 if draw_fit else 6.4
    fig, axes = plt.subplots(1, 2 if draw_fit else 1, figsize=(width, 4.8), squeeze=False,
                             layout="constrained")
    plot_history(hist, ax=axes[0, 0])
    if draw_fit:
        # The raw network (scaling folded in) draws in the data's own units.
        X = model.encode(df)
        y = model.encode_targets(df)
        plot_fit(model.raw_network(), X, y, ax=axes[0, 1])
        a = axes[0, 1]
        a.set_xlabel(model.feature_names[0])
        if n_features == 2:
            a.set_ylabel(model.feature_names[1])
        elif model.fitted_task == "regression":
            a.set_ylabel(model.target_names[0])
        _relabel(fig, model.target_names[0], model.classes)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    try:
        fig.savefig(tmp, format=fmt, dpi=100)
    except ValueError as exc:  # an extension matplotlib cannot write
        raise CLIError(f"cannot write the plot {path}: {exc}") from None
    finally:
        plt.close(fig)


def _relabel(fig: Any, target: str, classes: Sequence[Any]) -> None:
    """plot_fit knows no column names ("class 0", "P(y=1)", "prediction"): use the data's."""
    def relabel(text: str) -> str:
        if text == "prediction":
            return f"predicted {target}"
        if text.startswith("P(y") and text.endswith("=1)") and len(classes) == 2:
            return f"P({target} = {classes[1]})"
        m = re.fullmatch(r"(.*)class (\d+)(.*)", text)
        if m and int(m.group(2)) < len(classes):
            return f"{m.group(1)}{classes[int(m.group(2))]}{m.group(3)}"
        return text

    for ax in fig.axes:
        ax.set_ylabel(relabel(ax.get_ylabel()))
        legend = ax.get_legend()
        if legend is not None:
            for t in legend.get_texts():
                t.set_text(relabel(t.get_text()))


# -- predict / evaluate ---------------------------------------------------------------
@contextlib.contextmanager
def _warnings_to_stderr() -> Any:
    """The library's remarks (unseen categories, dropped rows) as ``zeronn: warning:`` lines,
    each once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for message in dict.fromkeys(str(w.message) for w in caught):
        print(f"zeronn: warning: {_one_line(message)}", file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    if args.output:
        _check_output_path(args.output, "output file", [args.data, args.model])
    model = _load_tabular(args.model)
    table = _open_table(args)
    ids = list(dict.fromkeys(c for group in args.id or () for c in group))
    unknown = [c for c in ids if c not in table.columns]
    if unknown:
        raise CLIError(f"--id {', '.join(unknown)}: {args.data} has no such column; it has: "
                       f"{', '.join(repr(c) for c in table.columns[:20])}")
    outputs = list(model.target_names)
    if model.fitted_task == "classification" and args.proba:
        outputs += [f"proba_{c}" for c in model.classes]
    clash = [c for c in ids if c in outputs]
    if clash:
        raise CLIError(f"--id {', '.join(clash)}: the output already has a column of that "
                       "name (a prediction); copy another column, or rename it in the file")
    # Only the model's columns and the copied ones are read, a chunk of rows at a time:
    # memory does not grow with the file. A missing feature reads every column, so the
    # model's error lists them all.
    needed: list[str] | None = list(dict.fromkeys([*model.feature_names, *ids]))
    if not set(model.feature_names) <= set(table.columns):
        needed = None
    chunks = table.chunks(args.chunk_rows, needed, str_columns=ids)
    with _warnings_to_stderr():
        if args.output:
            with atomic_path(args.output) as tmp, open(tmp, "w", newline="",
                                                       encoding="utf-8") as f:
                rows = _predict_chunks(model, chunks, ids, args.proba, f)
            print(f"predicted {rows} rows of {args.data}: wrote {args.output}")
        else:
            _predict_chunks(model, chunks, ids, args.proba, sys.stdout)
    return 0


def _predict_chunks(model: Any, chunks: Any, ids: Sequence[str], proba: bool,
                    out: Any) -> int:
    """Writes the predictions of each chunk (a DataFrame) to ``out`` as CSV, the ``ids``
    columns first, as written in the input; returns the number of rows."""
    pd = _pandas()
    rows = 0
    # The remarks (unseen categories, unreadable dates) of all chunks: one line each.
    with model.remarks_summed():
        for df in chunks:
            frame = pd.DataFrame({c: df[c].to_numpy() for c in ids})
            if model.fitted_task == "regression":
                pred = model.predict(df)
                for j, name in enumerate(model.target_names):
                    frame[name] = pred[:, j]
            elif proba:
                frame[model.target_names[0]], p = model.predict_with_proba(df)
                for j, c in enumerate(model.classes):
                    frame[f"proba_{c}"] = p[:, j]
            else:
                frame[model.target_names[0]] = model.predict(df)
            frame.to_csv(out, index=False, header=rows == 0)
            rows += len(frame)
    return rows


def _evaluate(args: argparse.Namespace) -> int:
    model = _load_tabular(args.model)
    targets = [t for group in args.target for t in group] if args.target else None
    names = targets or model.target_names
    # Class labels are compared as written when the model learned text labels.
    df = _open_table(args).read(str_columns=names if model.label_kind == "str" else ())
    with _warnings_to_stderr():
        scores = model.evaluate(df, targets)
    n = scores["n"]
    if scores["task"] == "regression":
        print(f"regression on {n} rows of {args.data}")
        width = max(6, *(len(t) for t in scores["targets"]))
        print(f"{'target':<{width}} {'MSE':>12} {'MAE':>12} {'R2':>10}")
        for t, mse, mae, r2 in zip(scores["targets"], scores["mse"], scores["mae"],
                                   scores["r2"]):
            print(f"{t:<{width}} {mse:12.6g} {mae:12.6g} {r2:10.4f}")
        return 0
    correct = int(np.trace(scores["confusion_matrix"]))
    print(f"classification on {n} rows of {args.data}")
    print(f"accuracy: {scores['accuracy']:.4f} ({correct}/{n})")
    print(f"log loss: {scores['log_loss']:.4f}")
    print("confusion matrix (rows: true label, columns: predicted label):")
    labels = [str(c) for c in scores["labels"]]
    cm = scores["confusion_matrix"]
    w = max(5, *(len(s) for s in labels), len(str(int(cm.max()))))
    print(" " * w + "".join(f" {s:>{w}}" for s in labels))
    for s, row in zip(labels, cm):
        print(f"{s:>{w}}" + "".join(f" {int(v):>{w}}" for v in row))
    return 0


# -- export / info / gradcheck ----------------------------------------------------------
def _export(args: argparse.Namespace) -> int:
    _check_output_path(args.output, "ONNX file", [args.model])
    model = _load_model(args.model)
    try:
        from zeronn.onnx_export import export_onnx
        from zeronn.tabular import TabularModel
        from zeronn.tabular.onnx_inputs import describe_inputs
    except ImportError as exc:
        missing = getattr(exc, "name", "") or ""
        if missing.startswith("zeronn"):
            raise CLIError("ONNX export is not available in this installation "
                           "(zeronn.onnx_export is missing)") from None
        raise CLIError("ONNX export needs onnx: pip install 'zeronn[onnx]'") from None
    try:
        with atomic_path(args.output, ".onnx") as tmp:
            export_onnx(model, tmp, opset=args.opset)
    except ImportError:
        raise CLIError("ONNX export needs onnx: pip install 'zeronn[onnx]'") from None
    print(f"exported {args.model} to {args.output} (opset {args.opset})")
    if isinstance(model, TabularModel):  # one input per column: say what each takes
        inputs = describe_inputs(model.preprocessor)
        print(f"inputs ({len(inputs)}): " + ", ".join(inputs))
    return 0


def _info(args: argparse.Namespace) -> int:
    from zeronn.tabular import TabularModel

    model = _load_model(args.model)
    net = _network_of(model)
    print(f"model file: {args.model}")
    if isinstance(model, TabularModel) and model.fitted:
        task = model.fitted_task
        print(f"kind: zeronn train model, {task}")
        kinds = model.preprocessor.kinds()
        print(f"features ({len(model.feature_names)}): "
              + ", ".join(f"{f} ({kinds.get(f, 'numeric')})" for f in model.feature_names))
        if model.preprocessor.excluded:
            print("left out: " + ", ".join(e["name"] for e in model.preprocessor.excluded))
        print(f"target{'s' if len(model.target_names) > 1 else ''}: "
              f"{', '.join(model.target_names)}")
        if task == "classification":
            print(f"classes ({len(model.classes)}, {model.label_kind}): "
                  f"{', '.join(map(str, model.classes))}")
        print("scaling: " + ("inputs" + (" and targets" if task == "regression" else "")
                             + " standardized (mean/std of the training data)"
                             if model.standardize else "none"))
        dialect = model.training.get("data_dialect")
        if isinstance(dialect, dict):
            from zeronn.tabular.io import Dialect

            try:
                print(f"read as: {Dialect.from_dict(dialect).describe()}")
            except (TypeError, ValueError):
                pass  # a hand-edited file: the dialect is only informative
    else:
        print(f"kind: {type(model).__name__}")
    if net is None:
        print("network: none (never trained)")
        return 0
    print(f"network: {net!r}")
    print(f"parameters: {net.n_params}")
    print(f"{'layer':<6} {'in':>6} {'out':>6} {'activation':<12} {'params':>8}")
    for i, layer in enumerate(net.layers):
        what = _layer_text(layer)
        print(f"{i + 1:<6} {math.prod(layer.input_shape):>6} {math.prod(layer.output_shape):>6} "
              f"{what:<12} {layer.n_params:>8}")
    hist = net.history
    if net.optimizer is not None:
        print(f"optimizer: {net.optimizer!r}, {net.optimizer.t} steps")
    training = getattr(model, "training", None)
    if isinstance(training, dict) and training.get("kept_epoch"):
        line = (f"training: {training.get('epochs_run')} epochs, "
                f"{_kept_text(training)}")
        if training.get("stopped_early"):
            line += ", stopped early"
        if training.get("early_minimum"):
            line += " (the validation loss was lowest in the first tenth of the run)"
        print(line)
    elif hist is not None and hist.epochs:
        line = f"training: {hist.epochs} epochs, final loss {hist['loss'][-1]:.6g}"
        if hist.get("val_loss"):
            line += f", val_loss {hist['val_loss'][-1]:.6g}"
        if hist.get("time"):
            line += f", {sum(hist['time']):.2f} s"
        if hist.stopped_early:
            line += f", stopped early (best epoch {hist.best_epoch})"
        print(line)
    if isinstance(training, dict) and training.get("n_samples"):
        print(f"trained on {training['n_samples']} rows "
              f"({training.get('n_validation', 0)} held out for validation), "
              f"loss {training.get('loss_name')}")
    return 0


def _gradcheck(args: argparse.Namespace) -> int:
    from zeronn.gradcheck import check_gradients
    from zeronn.losses import get_loss
    from zeronn.models import MLP
    from zeronn.tasks import BINARY, MULTICLASS, REGRESSION, one_hot

    loss = get_loss(args.loss)
    sizes = args.sizes
    if len(sizes) < 2:
        raise CLIError(f"--sizes needs at least an input and an output size, got {sizes}")
    out_act = loss.output_activation or REGRESSION.output_activation
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.samples, sizes[0]))
    # Targets the loss accepts: one-hot rows for softmax, 0/1 for sigmoid outputs.
    if out_act == MULTICLASS.output_activation:
        y = one_hot(rng.integers(0, sizes[-1], args.samples), sizes[-1])
    elif out_act == BINARY.output_activation:
        y = rng.integers(0, 2, (args.samples, sizes[-1])).astype(float)
    else:
        y = rng.standard_normal((args.samples, sizes[-1]))
    net = MLP(sizes, args.activation, out_act, init="glorot_normal", seed=args.seed)
    report = check_gradients(net, X, y, loss=loss)
    print(f"gradient check: {net!r}, loss {loss.name}, {args.samples} random samples")
    print(report)
    ok = report.passed(args.tol)
    print(f"{'passed' if ok else 'FAILED'}: worst relative error "
          f"{report.max_relative_error:.3e} (tolerance {args.tol:g})")
    return 0 if ok else 1


def _playground(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise CLIError('the playground needs the extra: pip install "zeronn[playground]"') \
            from None
    from zeronn.playground import serve

    try:
        serve(args.port, open_browser=not args.no_browser)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how the playground is meant to stop
    print("zeronn playground: stopped", file=sys.stderr)
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"--port must be a whole number from 0 to 65535, "
                                         f"got {text!r}")
    return int(text)


# -- the parser -----------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``zeronn: error: ...``, exit code 2, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# What ``add_subparsers`` returns: each ``_add_<command>`` adds its parser to it.
_Subcommands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def build_parser() -> argparse.ArgumentParser:
    """The ``zeronn`` argument parser with every subcommand."""
    parser = _Parser(prog="zeronn", description="Neural networks from zero, in NumPy.",
                     formatter_class=_help_formatter,
                     epilog="examples:\n  zeronn demo\n"
                            "  zeronn train data.csv --target y -o model.zeronn\n"
                            "  zeronn COMMAND --help")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(sub)
    _add_train(sub)
    _add_predict(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_info(sub)
    _add_gradcheck(sub)
    _add_playground(sub)
    return parser


def _command(sub: _Subcommands, name: str, func: Callable[[argparse.Namespace], int],
             help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """One subcommand's parser: its help line, wrapped description and examples."""
    # Raw formatting keeps the examples' lines; the prose paragraphs are wrapped here.
    text = "\n\n".join(textwrap.fill(par, 79) for par in description.split("\n\n"))
    p = sub.add_parser(name, help=help, description=text,
                       epilog="example" + ("s" if "\n" in examples else "") + ":\n  "
                       + examples.replace("\n", "\n  "),
                       formatter_class=_help_formatter)
    p.set_defaults(func=func)
    return p


def _add_demo(sub: _Subcommands) -> None:
    """``zeronn demo``: no arguments."""
    _command(sub, "demo", _demo, "the seed lesson's run, then the same with the engine",
             "Prints the seed notebook's ten loss lines exactly, then trains the same data "
             "with the general engine.", "zeronn demo")


def _add_train(sub: _Subcommands) -> None:
    """``zeronn train``: its columns, network, run and outputs, in the order its help lists."""
    t = _command(
        sub, "train", _train, "train a model on a CSV file",
        "Trains an MLP on the columns of a CSV file and saves it (with the column names, "
        "the encoding of each column, the scaling and the class labels) to one model "
        "file.\n\nThe task is regression when every target column is numeric, except that "
        "whole numbers with at most 20 distinct values are classes (--task regression "
        "overrides it); text and true/false targets are classification; labels are kept "
        "and predicted back. Inputs (and regression targets) are standardized unless "
        "--no-standardize; the scaling is stored in the model. The rows are shuffled once "
        "(--seed) before --validation-split holds some out; early stopping keeps the epoch "
        "of the best validation accuracy (classification) or loss (regression). Data rows "
        "are numbered from 1 below the header in error messages.",
        "zeronn train houses.csv --target price --hidden 64,64 --epochs 300 -o price.zeronn"
        "\nzeronn train iris.csv --target species --early-stopping 20 --plot iris.png "
        "-o iris.zeronn")
    _add_train_columns(t)
    _add_train_network(t)
    _add_train_schedule(t)
    _add_train_output(t)


def _add_train_columns(t: argparse.ArgumentParser) -> None:
    """train's data file, its columns and the task they pose."""
    t.add_argument("data", metavar="DATA.csv", help="the training data, with a header line")
    _dialect_options(t)
    t.add_argument("--target", action="append", type=_column_list, required=True,
                   metavar="COL", help="target column (repeat, or comma-separate, for several "
                   "regression targets)")
    t.add_argument("--features", type=_column_list, metavar="A,B,...",
                   help="input columns, all used (default: every column but the targets, "
                   "less ID-like and free-text columns)")
    t.add_argument("--exclude", type=_column_list, action="append", metavar="A,B,...",
                   help="columns to leave out (repeat, or comma-separate)")
    t.add_argument("--task", choices=("auto", "regression", "classification"), default="auto",
                   help="default: auto (classification for text or boolean targets, and for "
                   "whole numbers with at most 20 distinct values)")
    t.add_argument("--max-categories", type=_positive_int, default=50, metavar="N",
                   help="one-hot columns per text column at most; rarer values share an "
                   "'other' column (default: 50)")
    t.add_argument("--class-weight", choices=("balanced",), default=None,
                   help="balanced: weigh rows against class imbalance (classification)")


def _add_train_network(t: argparse.ArgumentParser) -> None:
    """train's network: its shape, loss and optimizer, and what holds it back from overfitting."""
    from zeronn.activations import get_activation
    from zeronn.losses import get_loss
    from zeronn.optim import get_optimizer

    t.add_argument("--weight-decay", type=_non_negative_float, default=1e-4, metavar="L2",
                   help="L2 penalty on the weights (default: 1e-4)")
    t.add_argument("--hidden", type=_hidden, default=[64, 64], metavar="64,64",
                   help="hidden layer sizes, comma-separated; 'none' for a linear model "
                   "(default: 64,64)")
    t.add_argument("--activation", type=_registry_name(get_activation), default="relu",
                   metavar="NAME", help="hidden activation: relu, leaky_relu, elu, gelu, "
                   "tanh, sigmoid, softplus, identity (default: relu)")
    t.add_argument("--loss", type=_registry_name(get_loss), metavar="NAME",
                   help="regression loss: mse, mae or huber (default: mse; classification "
                   "always uses cross-entropy)")
    t.add_argument("--optimizer", type=_registry_name(get_optimizer), default="adam",
                   metavar="NAME", help="sgd, adagrad, rmsprop, adam, adamw (default: adam)")
    t.add_argument("--dropout", type=_fraction, default=0.2, metavar="RATE",
                   help="drop this share of each hidden layer's outputs while training, "
                   "against overfitting; 0 for none (default: 0.2)")
    t.add_argument("--batch-norm", action="store_true",
                   help="batch normalization between each hidden layer and its activation "
                   "(needs batches of at least 2 rows)")


def _add_train_schedule(t: argparse.ArgumentParser) -> None:
    """train's run: step size, budget, batches, held-out rows and stopping, scaling, seed."""
    t.add_argument("--lr", type=_positive_float, default=1e-3,
                   help="learning rate (default: 1e-3)")
    t.add_argument("--epochs", type=_positive_int, default=500,
                   help="most epochs (default: 500; early stopping usually ends sooner)")
    t.add_argument("--batch-size", type=_batch_size, default=32, metavar="N",
                   help="rows per step, or 'full' (default: 32)")
    t.add_argument("--validation-split", type=_fraction, default=0.15, metavar="FRACTION",
                   help="share of rows held out for val_loss and early stopping, 0 for none "
                   "(default: 0.15)")
    t.add_argument("--early-stopping", type=_patience, default="auto", metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better validation score and "
                   "keep the best epoch's weights; the score is the accuracy for "
                   "classification (the lower val_loss breaking ties), val_loss for "
                   "regression (default: auto, 50 epochs or, on small tables, enough epochs "
                   "for 1000 optimizer steps)")
    t.add_argument("--no-standardize", dest="standardize", action="store_false",
                   help="feed the raw column values to the network")
    t.add_argument("--seed", type=_non_negative_int, default=0,
                   help="random seed for initialisation, split and shuffling (default: 0)")


def _add_train_output(t: argparse.ArgumentParser) -> None:
    """train's outputs (the model file, a plot) and how much it prints."""
    t.add_argument("--plot", metavar="FILE.png", help="also draw the loss curves (and, for "
                   "1 or 2 features, the learned function or decision regions)")
    t.add_argument("-o", "--output", required=True, metavar="MODEL",
                   help="the model file to write")
    talk = t.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true",
                      help="print only the summary line")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="one line per epoch (loss, val_loss, lr, grad_norm, dead ReLUs)")


def _add_predict(sub: _Subcommands) -> None:
    """``zeronn predict``: a model, a data file, where the predictions go."""
    p = _command(sub, "predict", _predict, "predict with a model on a CSV file",
                 "Predicts for every row of a CSV file. Columns are matched by name (extra "
                 "columns are ignored) and the model's scaling is applied. Writes a CSV: one "
                 "column per target (class labels for a classifier).",
                 "zeronn predict price.zeronn new_houses.csv -o predictions.csv")
    p.add_argument("model", metavar="MODEL", help="a model file from `zeronn train`")
    p.add_argument("data", metavar="DATA.csv", help="rows to predict, with the model's features")
    p.add_argument("-o", "--output", metavar="OUT.csv", help="write here (default: stdout)")
    p.add_argument("--proba", action="store_true",
                   help="classifiers: add one probability column per class")
    p.add_argument("--id", action="append", type=_column_list, metavar="COL",
                   help="copy this column of the input into the output, before the "
                   "predictions (repeat, or comma-separate, for several)")
    p.add_argument("--chunk-rows", type=_positive_int, default=PREDICT_CHUNK_ROWS,
                   metavar="N", help="rows read and predicted at a time: memory does not "
                   f"grow with the file (default: {PREDICT_CHUNK_ROWS})")
    _dialect_options(p)


def _add_evaluate(sub: _Subcommands) -> None:
    """``zeronn evaluate``: a model, a labelled data file, its target columns."""
    e = _command(sub, "evaluate", _evaluate, "score a model on a labelled CSV file",
                 "Compares the model's predictions with the true targets. Regression: MSE, "
                 "MAE and R2 per target; classification: accuracy, log loss and the "
                 "confusion matrix.",
                 "zeronn evaluate iris.zeronn iris_test.csv --target species")
    e.add_argument("model", metavar="MODEL", help="a model file from `zeronn train`")
    e.add_argument("data", metavar="DATA.csv", help="rows with the features and true targets")
    e.add_argument("--target", action="append", type=_column_list, metavar="COL",
                   help="the true target column(s) (default: the names the model was "
                   "trained on)")
    _dialect_options(e)


def _add_export(sub: _Subcommands) -> None:
    """``zeronn export``: a model, the ONNX file to write, its opset."""
    x = _command(sub, "export", _export, "export a model to ONNX",
                 "Writes the model as an ONNX graph with a dynamic batch size. A model from "
                 "`zeronn train` takes one input per feature column, named after it: float "
                 "for numbers and booleans (1/0), string for categories, double days since "
                 "1970-01-01 for dates; NaN or '' where a value is missing.",
                 "zeronn export price.zeronn price.onnx")
    x.add_argument("model", metavar="MODEL", help="a zeronn model file")
    x.add_argument("output", metavar="OUT.onnx", help="the ONNX file to write")
    x.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset (default: 17)")


def _add_info(sub: _Subcommands) -> None:
    """``zeronn info``: a model file."""
    i = _command(sub, "info", _info, "describe a model file",
                 "Shows the architecture, the parameter count, the columns and the training "
                 "summary of a model file.", "zeronn info price.zeronn")
    i.add_argument("model", metavar="MODEL", help="a zeronn model file")


def _add_gradcheck(sub: _Subcommands) -> None:
    """``zeronn gradcheck``: the random network to check and the tolerance."""
    from zeronn.activations import get_activation
    from zeronn.losses import get_loss

    g = _command(sub, "gradcheck", _gradcheck, "check the engine's gradients numerically",
                 "Builds a random network and compares backpropagation's gradients with "
                 "central differences; prints each parameter's error and the worst relative "
                 "error. Exit code 1 if it is above the tolerance.",
                 "zeronn gradcheck --sizes 4,8,3 --activation gelu --loss "
                 "categorical_crossentropy")
    g.add_argument("--sizes", type=_hidden, default=[3, 5, 4, 2], metavar="3,5,4,2",
                   help="layer sizes, input to output (default: 3,5,4,2)")
    g.add_argument("--activation", type=_registry_name(get_activation), default="tanh",
                   metavar="NAME", help="hidden activation (default: tanh, smooth; ReLU's "
                   "kink can trip central differences)")
    g.add_argument("--loss", type=_registry_name(get_loss), default="mse", metavar="NAME",
                   help="default: mse; a cross-entropy picks its output activation")
    g.add_argument("--samples", type=_positive_int, default=8, help="default: 8")
    g.add_argument("--seed", type=_non_negative_int, default=0, help="default: 0")
    g.add_argument("--tol", type=_positive_float, default=1e-6,
                   help="largest acceptable relative error (default: 1e-6)")


def _add_playground(sub: _Subcommands) -> None:
    """``zeronn playground``: the port and whether to open a browser."""
    pg = _command(sub, "playground", _playground, "watch a network learn in the browser",
                  "Serves the playground, a web page whose engine is zeronn, on 127.0.0.1 "
                  "only, prints its URL and opens the browser. Pick a dataset (or upload a "
                  "CSV), shape the network, press play, step through backpropagation, and "
                  "export the model. Ctrl-C stops it. Needs the extra: pip install "
                  "\"zeronn[playground]\".",
                  "zeronn playground\nzeronn playground --port 8000 --no-browser")
    pg.add_argument("--port", type=_port, default=0,
                    help="the port on 127.0.0.1 (default: 0, a free one)")
    pg.add_argument("--no-browser", action="store_true",
                    help="only print the URL, do not open a browser")


def _one_line(message: str) -> str:
    """Errors fit one stderr line: newlines folded, very long messages cut."""
    text = " ".join(message.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def _fail(message: str, code: int = 2) -> int:
    print(f"zeronn: error: {_one_line(message)}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the ``zeronn`` command; returns the exit code (2 for a user mistake)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args))
    except CLIError as exc:
        return _fail(str(exc))
    except ValueError as exc:
        # The library's ValueErrors name the problem and the fix: they are user mistakes.
        return _fail(str(exc))
    except MemoryError:
        return _fail("out of memory: use a smaller network, batch or data file")
    except KeyboardInterrupt:
        print("zeronn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `zeronn predict ... | head`: the reader left; not an error worth a message.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}")
    except Exception as exc:
        if os.environ.get("ZERONN_DEBUG"):
            raise
        return _fail(f"internal error ({type(exc).__name__}: {exc}); please report it, and "
                     "set ZERONN_DEBUG=1 to see the traceback", code=1)


if __name__ == "__main__":
    sys.exit(main())
