"""Loss curves and fitted functions as matplotlib figures (``pip install zeronn[plot]``).

matplotlib is an optional extra, so it is imported only when a function here is called:
``import zeronn`` and ``import zeronn.plotting`` work without it, and a call without it
raises ``ImportError`` naming the install command.

Each function returns the :class:`matplotlib.figure.Figure` it drew on. Given ``ax=None``
it creates the figure with ``pyplot`` (so ``plt.show()`` shows it in a script, and a
notebook shows it once when the result is assigned: ``fig = plot_history(hist)``);
given ``ax``, it draws there and returns ``ax.figure``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from zeronn.network import Network

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_fit", "plot_history"]

INSTALL_HINT = "zeronn.plotting needs matplotlib: pip install zeronn[plot]"


def _pyplot() -> Any:
    """``matplotlib.pyplot``, or an ImportError that says how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return plt


def _axes(ax: Any, n: int, figsize: tuple[float, float], what: str) -> tuple[Figure, list[Axes]]:
    """``n`` axes: new ones in one figure when ``ax`` is None, else the given ones."""
    if ax is None:
        plt = _pyplot()
        fig, axs = plt.subplots(n, 1, figsize=figsize, sharex=True, squeeze=False,
                                layout="constrained")
        return fig, list(axs[:, 0])
    if isinstance(ax, np.ndarray):  # plt.subplots' grid of axes, any shape
        axs = list(ax.ravel())
    else:
        axs = list(ax) if isinstance(ax, Sequence) else [ax]
    if len(axs) != n:
        raise ValueError(f"{what} draws {n} panel(s) but got {len(axs)} axes: pass ax=None "
                         f"to get a new figure, or a list of {n} axes")
    return axs[0].figure, axs


# -- 学習曲線 (learning curves) ---------------------------------------------------------
def _history_of(history: Any) -> Mapping[str, Sequence[Any]]:
    if isinstance(history, Network):
        if history.history is None:
            raise ValueError("this network has not been trained yet: call net.fit(...) first, "
                             "or pass the History that fit returns")
        return history.history
    if not isinstance(history, Mapping) or not history.get("loss"):
        raise ValueError(f"plot_history needs the History returned by fit (a mapping with a "
                         f"non-empty 'loss' list), got {type(history).__name__}")
    return history


def plot_history(history: Any, ax: Any = None, *, log_scale: bool | None = None,
                 lr: bool = False, grad_norm: bool = False, title: str | None = None) -> Figure:
    """Training (and validation) loss per epoch; optionally the learning rate and gradient norm.

    Parameters
    ----------
    history : the :class:`zeronn.History` from ``fit`` (any mapping with a ``"loss"`` list),
        or a trained network (its ``net.history``, every fit so far).
    ax : None for a new figure, else one Axes per panel (one Axes for the loss alone).
    log_scale : loss axis in log scale; None picks it when every loss is > 0 and they
        span at least a factor of 10 (the seed's run goes from 10.2 to 0.009).
    lr : add a panel with the learning rate per epoch (``history["lr"]``).
    grad_norm : add a panel with the global gradient L2 norm per epoch, and each layer's
        (``history["grad_norm"]``, ``history["layer_grad_norms"]``), in log scale.

    Returns the Figure. Early stopping's best epoch, when recorded, is marked.
    """
    hist = _history_of(history)
    panels = ["loss"] + [k for k, on in (("lr", lr), ("grad_norm", grad_norm)) if on]
    for key in panels[1:]:
        if not hist.get(key):
            raise ValueError(f"the history has no {key!r} values to plot: it comes from "
                             f"zeronn's fit, which records it; or drop {key}=True")
    loss = np.asarray(hist["loss"], dtype=float)
    val = np.asarray(hist["val_loss"], dtype=float) if hist.get("val_loss") else None
    epochs = np.arange(1, loss.size + 1)
    fig, axs = _axes(ax, len(panels), (6.4, 3.6 + 1.8 * (len(panels) - 1)), "plot_history")

    a = axs[0]
    a.plot(epochs, loss, label="loss (train)", color="C0")
    if val is not None:
        a.plot(np.arange(1, val.size + 1), val, label="val_loss", color="C1", linestyle="--")
    values = loss if val is None else np.concatenate([loss, val])
    if log_scale is None:
        finite = values[np.isfinite(values)]
        log_scale = bool(finite.size and finite.min() > 0 and finite.max() >= 10 * finite.min())
    if log_scale:
        a.set_yscale("log")
    best = getattr(hist, "best_epoch", None)
    if best is not None:
        a.axvline(best, color="0.4", linestyle=":", label=f"best epoch {best}")
    a.set_ylabel("loss")
    a.set_title(title if title is not None else f"loss per epoch ({loss.size} epochs)")
    a.legend(loc="upper right")
    a.grid(True, alpha=0.3)

    for a, key in zip(axs[1:], panels[1:]):
        if key == "lr":
            a.plot(epochs, np.asarray(hist["lr"], dtype=float), color="C2")
            a.set_ylabel("learning rate")
        else:
            per_layer = hist.get("layer_grad_norms")
            if per_layer:
                norms = np.asarray(per_layer, dtype=float)  # (epochs, n_layers)
                for i in range(norms.shape[1]):
                    a.plot(epochs, norms[:, i], linewidth=0.8, alpha=0.7,
                           label=f"layer {i + 1}")
            a.plot(epochs, np.asarray(hist["grad_norm"], dtype=float), color="k",
                   linewidth=1.4, label="all")
            g = np.asarray(hist["grad_norm"], dtype=float)
            if (g > 0).all():
                a.set_yscale("log")
            a.set_ylabel("gradient L2 norm")
            a.legend(loc="upper right", fontsize="small")
        a.grid(True, alpha=0.3)
    axs[-1].set_xlabel("epoch")
    return fig


# -- 学習した関数 (the learned function) ---------------------------------------------------
def _span(x: NDArray) -> tuple[float, float]:
    lo, hi = float(x.min()), float(x.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def _classifier(net: Network, kind: str) -> bool:
    if kind not in ("auto", "regression", "classification"):
        raise ValueError(f"kind must be 'auto', 'regression' or 'classification', got {kind!r}")
    if kind == "auto":
        return net.output_activation in ("sigmoid", "softmax")
    return kind == "classification"


def plot_fit(net: Network, X: Any, y: Any = None, ax: Any = None, *, output: int = 0,
             kind: str = "auto", resolution: int | None = None,
             title: str | None = None) -> Figure:
    """The function ``net`` learned, drawn over the data (X, y).

    Parameters
    ----------
    net : a network (``zeronn.MLP``, ``zeronn.Sequential``) with 1 or 2 input features.
    X : (n_samples, n_features) inputs, which set the plotted range.
    y : optional targets, (n_samples, n_outputs) or (n_samples,), drawn as points.
    ax : None for a new figure, or the Axes to draw on.
    output : which output to draw on a 2-feature regression or sigmoid (multi-label) net.
    kind : ``"auto"`` (sigmoid/softmax outputs are classifiers), ``"regression"`` or
        ``"classification"``.
    resolution : grid points per axis (default 300 for 1 feature, 150 for 2).

    With 1 feature: the learned curve over the data (one per output; for a classifier the
    predicted probabilities). With 2 features: for regression a filled contour of the
    prediction with the data coloured on the same scale; for a sigmoid classifier
    P(class 1) with the 0.5 decision boundary; for softmax the decision regions, shaded
    by the probability of the predicted class. Anything else raises ``ValueError``.
    Returns the Figure.
    """
    if not isinstance(net, Network) or len(net.input_shape) != 1:
        raise ValueError(f"plot_fit needs a zeronn network (zeronn.MLP, zeronn.Sequential) "
                         f"on (n, features) inputs, got {type(net).__name__}")
    Xc, yc = net.check_data(X, y)
    n_features, n_outputs = net.input_shape[0], net.n_outputs
    if n_features not in (1, 2):
        raise ValueError(f"plot_fit draws networks with 1 or 2 input features, but this one "
                         f"has {n_features}: plot net.predict(X) against y yourself, or "
                         f"train a network on 1 or 2 chosen columns")
    if isinstance(output, bool) or not isinstance(output, (int, np.integer)) \
            or not 0 <= output < n_outputs:
        raise ValueError(f"output must be an integer in [0, {n_outputs - 1}] "
                         f"(the network has {n_outputs} outputs), got {output!r}")
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(
            resolution, (int, np.integer)) or resolution < 2):
        raise ValueError(f"resolution must be an integer >= 2, got {resolution!r}")
    clf = _classifier(net, kind)
    fig, (a,) = _axes(ax, 1, (6.4, 4.8) if n_features == 1 else (6.4, 5.4), "plot_fit")
    if n_features == 1:
        _fit_1d(net, a, Xc, yc, clf, resolution or 300)
    else:
        _fit_2d(net, fig, a, Xc, yc, clf, output, resolution or 150)
    if title is not None:
        a.set_title(title)
    return fig


def _fit_1d(net: Network, a: Axes, X: NDArray, y: NDArray | None, clf: bool, res: int) -> None:
    grid = np.linspace(*_span(X[:, 0]), res)
    pred = net.predict(grid.reshape(-1, 1))
    k = pred.shape[1]
    softmax = net.output_activation == "softmax"
    for j in range(k):
        name = (f"P(class {j})" if softmax else "P(y=1)" if clf and k == 1 else
                f"P(y{j}=1)" if clf else "network" if k == 1 else f"network, output {j}")
        a.plot(grid, pred[:, j], color=f"C{j}", linewidth=2, label=name)
        if y is not None and not softmax:
            a.scatter(X[:, 0], y[:, j], s=14, color=f"C{j}", alpha=0.5,
                      label="data" if k == 1 else f"data, output {j}")
    if y is not None and softmax:
        # Classes as a rug under the probability curves, in their curve's colour.
        labels = y.argmax(axis=1)
        for j in range(k):
            sel = labels == j
            if sel.any():
                a.scatter(X[sel, 0], np.full(sel.sum(), -0.06), marker="|", s=80,
                          color=f"C{j}")
        a.set_ylim(-0.12, 1.05)
    a.set_xlabel("x")
    a.set_ylabel("probability" if clf else "y")
    a.set_title("learned probabilities" if clf else "learned function")
    a.legend(loc="best", fontsize="small")
    a.grid(True, alpha=0.3)


def _fit_2d(net: Network, fig: Figure, a: Axes, X: NDArray, y: NDArray | None, clf: bool,
            output: int, res: int) -> None:
    (x0, x1), (y0, y1) = _span(X[:, 0]), _span(X[:, 1])
    g0, g1 = np.meshgrid(np.linspace(x0, x1, res), np.linspace(y0, y1, res))
    pred = net.predict(np.column_stack([g0.ravel(), g1.ravel()]))
    if clf and net.output_activation == "softmax":
        _regions(a, X, y, pred, (x0, x1, y0, y1), res)
    elif clf:
        p = pred[:, output].reshape(res, res)
        cs = a.contourf(g0, g1, p, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.8)
        a.contour(g0, g1, p, levels=[0.5], colors="k", linewidths=1.5)
        if y is not None:
            a.scatter(X[:, 0], X[:, 1], c=(y[:, output] >= 0.5).astype(float), cmap="RdBu_r",
                      vmin=-0.25, vmax=1.25, edgecolors="k", linewidths=0.6, s=24)
        fig.colorbar(cs, ax=a, label=f"P(y{'' if pred.shape[1] == 1 else output}=1)")
        a.set_title("learned probability; black line: decision boundary (0.5)")
    else:
        z = pred[:, output].reshape(res, res)
        lo, hi = float(z.min()), float(z.max())
        if y is not None:
            lo, hi = min(lo, float(y[:, output].min())), max(hi, float(y[:, output].max()))
        from matplotlib.ticker import MaxNLocator

        # Round level values (a readable colour bar) covering both the surface and the data.
        levels = MaxNLocator(nbins=20).tick_values(lo, hi) if hi > lo else 20
        cs = a.contourf(g0, g1, z, levels=levels, cmap="viridis")
        a.contour(g0, g1, z, levels=levels, colors="w", linewidths=0.3, alpha=0.5)
        if y is not None:
            a.scatter(X[:, 0], X[:, 1], c=y[:, output], cmap="viridis", vmin=lo, vmax=hi,
                      edgecolors="w", linewidths=0.6, s=24)
        out = "" if pred.shape[1] == 1 else f" (output {output})"
        fig.colorbar(cs, ax=a, label=f"prediction{out}")
        a.set_title("learned function; points: data, same colour scale")
    a.set_xlabel("x1")
    a.set_ylabel("x2")


def _regions(a: Axes, X: NDArray, y: NDArray | None, pred: NDArray,
             extent: tuple[float, float, float, float], res: int) -> None:
    """Softmax decision regions: each class's colour, paler where the network is unsure."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    k = pred.shape[1]
    colors = np.array([to_rgb(f"C{j % 10}") for j in range(k)])
    cls = pred.argmax(axis=1)
    # 1/k (a guess) -> white, 1 (certain) -> full colour.
    conf = (pred.max(axis=1) - 1 / k) / (1 - 1 / k)
    strength = 0.25 + 0.6 * conf[:, None]
    rgb = 1 - strength * (1 - colors[cls])
    a.imshow(rgb.reshape(res, res, 3), origin="lower", extent=extent, aspect="auto",
             interpolation="nearest")
    handles = [Patch(color=colors[j], label=f"class {j}") for j in range(k)]
    if y is not None:
        labels = y.argmax(axis=1)
        a.scatter(X[:, 0], X[:, 1], c=colors[labels], edgecolors="k", linewidths=0.6, s=24)
    a.legend(handles=handles, loc="upper right", fontsize="small")
    a.set_title("decision regions (paler: less sure)")
