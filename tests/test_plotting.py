"""zeronn.plotting: figures that show what was trained, and a clear error without matplotlib."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import zeronn as zn
from zeronn.training import History

matplotlib = pytest.importorskip("matplotlib", reason="plotting needs the plot extra")
matplotlib.use("Agg")  # no display in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from zeronn import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    plt.close("all")


def _history(n: int = 20, val: bool = True) -> History:
    h = History()
    for i in range(n):
        rec = {"loss": 10.0 / (i + 1), "lr": 0.1 * 0.9**i, "grad_norm": 5.0 / (i + 1),
               "layer_grad_norms": [3.0 / (i + 1), 4.0 / (i + 1)]}
        if val:
            rec["val_loss"] = 12.0 / (i + 1)
        h.append(**rec)
    return h


def _lines(ax) -> dict[str, np.ndarray]:
    return {line.get_label(): np.asarray(line.get_ydata()) for line in ax.get_lines()}


def test_plot_history_draws_loss_and_val_loss() -> None:
    h = _history()
    fig = plotting.plot_history(h)
    assert isinstance(fig, Figure)
    (ax,) = fig.axes
    lines = _lines(ax)
    np.testing.assert_allclose(lines["loss (train)"], h["loss"])
    np.testing.assert_allclose(lines["val_loss"], h["val_loss"])
    assert ax.get_yscale() == "log"  # spans a factor of 10
    assert ax.get_xlabel() == "epoch"


def test_plot_history_log_scale_is_automatic_and_overridable() -> None:
    flat = History()
    for v in (1.0, 0.9, 0.8):
        flat.append(loss=v)
    assert plotting.plot_history(flat).axes[0].get_yscale() == "linear"
    assert plotting.plot_history(flat, log_scale=True).axes[0].get_yscale() == "log"
    assert plotting.plot_history(_history(), log_scale=False).axes[0].get_yscale() == "linear"
    zero = History()
    for v in (1.0, 0.0):
        zero.append(loss=v)
    assert plotting.plot_history(zero).axes[0].get_yscale() == "linear"


def test_plot_history_optional_panels() -> None:
    h = _history()
    fig = plotting.plot_history(h, lr=True, grad_norm=True)
    loss_ax, lr_ax, gn_ax = fig.axes
    np.testing.assert_allclose(next(iter(_lines(lr_ax).values())), h["lr"])
    gn = _lines(gn_ax)
    np.testing.assert_allclose(gn["all"], h["grad_norm"])
    np.testing.assert_allclose(gn["layer 2"], [v[1] for v in h["layer_grad_norms"]])
    assert gn_ax.get_xlabel() == "epoch" and loss_ax.get_xlabel() == ""


def test_plot_history_on_given_axes_and_from_a_trained_network() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    net = zn.MLP([2, 4, 1], seed=0)
    net.fit(X, X.sum(axis=1), epochs=3, seed=0)
    net.fit(X, X.sum(axis=1), epochs=2, seed=0)
    fig, ax = plt.subplots()
    out = plotting.plot_history(net, ax=ax)
    assert out is fig
    assert len(_lines(ax)["loss (train)"]) == 5  # every fit so far
    fig2, axs = plt.subplots(2, 1)
    assert plotting.plot_history(net.history, ax=axs, grad_norm=True) is fig2
    fig3, grid = plt.subplots(1, 2, squeeze=False)  # a 2-D array of axes works too
    assert plotting.plot_history(net, ax=grid, lr=True) is fig3
    assert grid[0, 1].get_ylabel() == "learning rate"


def test_plot_history_marks_the_best_epoch() -> None:
    h = _history()
    h.best_epoch = 7
    ax = plotting.plot_history(h).axes[0]
    assert "best epoch 7" in _lines(ax)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((History(),), {}, "non-empty 'loss'"),
    (([1.0, 2.0],), {}, "History returned by fit"),
    ((zn.MLP([1, 1]),), {}, "not been trained"),
    ((dict(loss=[1.0, 0.5]),), {"lr": True}, "no 'lr'"),
])
def test_plot_history_bad_input(args, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        plotting.plot_history(*args, **kwargs)


def test_plot_history_wrong_number_of_axes() -> None:
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 panel"):
        plotting.plot_history(_history(), ax=ax, lr=True)


def test_plot_fit_1d_curve_is_the_networks_prediction() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(-2, 3, (30, 1))
    y = np.sin(x)
    net = zn.MLP([1, 8, 1], activation="tanh", seed=0)
    fig = plotting.plot_fit(net, x, y, resolution=50)
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    grid = np.asarray(line.get_xdata())
    assert grid.size == 50
    assert grid.min() < x.min() and grid.max() > x.max()  # covers the data, padded
    np.testing.assert_allclose(line.get_ydata(), net.predict(grid.reshape(-1, 1))[:, 0])
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), np.column_stack([x[:, 0], y[:, 0]]))


def test_plot_fit_1d_multi_output_and_softmax() -> None:
    x = np.linspace(-1, 1, 12).reshape(-1, 1)
    net = zn.MLP([1, 4, 2], seed=0)
    assert len(plotting.plot_fit(net, x, np.hstack([x, -x])).axes[0].get_lines()) == 2
    clf = zn.MLP([1, 4, 3], output_activation="softmax", seed=0)
    onehot = np.eye(3)[np.arange(12) % 3]
    ax = plotting.plot_fit(clf, x, onehot).axes[0]
    curves = [np.asarray(line.get_ydata()) for line in ax.get_lines()]
    np.testing.assert_allclose(np.sum(curves, axis=0), 1.0)  # probabilities
    assert ax.get_ylabel() == "probability"


def test_plot_fit_2d_regression_surface() -> None:
    rng = np.random.default_rng(2)
    X = rng.standard_normal((25, 2))
    y = X @ np.array([[2.0], [-3.0]]) + 1
    net = zn.MLP([2, 5, 1], seed=0)
    fig = plotting.plot_fit(net, X, y, resolution=20)
    ax, cbar = fig.axes
    assert cbar.get_ylabel() == "prediction"
    points = ax.collections[-1]
    np.testing.assert_allclose(points.get_offsets(), X)
    np.testing.assert_allclose(points.get_array(), y[:, 0])
    # The colour scale spans both the surface and the data.
    pred = net.predict(X)
    lo, hi = points.get_clim()
    assert lo <= min(y.min(), pred.min()) and hi >= max(y.max(), pred.max())


def test_plot_fit_2d_classifiers() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((30, 2))
    lab = (X[:, 0] > 0).astype(float)
    binary = zn.MLP([2, 4, 1], output_activation="sigmoid", seed=0)
    fig = plotting.plot_fit(binary, X, lab, resolution=20)
    assert "decision boundary" in fig.axes[0].get_title()
    assert fig.axes[1].get_ylabel() == "P(y=1)"
    softmax = zn.MLP([2, 4, 3], output_activation="softmax", seed=0)
    fig = plotting.plot_fit(softmax, X, np.eye(3)[rng.integers(0, 3, 30)], resolution=20)
    ax = fig.axes[0]
    (image,) = ax.get_images()
    rgb = image.get_array()
    assert rgb.shape == (20, 20, 3)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1", "class 2"]


def test_plot_fit_without_targets_and_on_given_axes() -> None:
    net = zn.MLP([2, 3, 1], seed=0)
    fig, ax = plt.subplots()
    assert plotting.plot_fit(net, np.ones((4, 2)) * [[1], [2], [3], [4]], ax=ax) is fig


def test_plot_fit_png_is_written(tmp_path) -> None:
    net = zn.MLP([1, 3, 1], seed=0)
    path = tmp_path / "fit.png"
    plotting.plot_fit(net, np.linspace(0, 1, 5).reshape(-1, 1), np.zeros(5)).savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("net", "X", "kwargs", "match"), [
    (zn.MLP([3, 2, 1]), np.ones((4, 3)), {}, "1 or 2 input features"),
    (zn.MLP([2, 2, 2]), np.ones((4, 2)), {"output": 2}, "output must be"),
    (zn.MLP([2, 2, 1]), np.ones((4, 2)), {"kind": "cluster"}, "kind must be"),
    (zn.MLP([2, 2, 1]), np.ones((4, 2)), {"resolution": 1}, "resolution"),
    (zn.MLP([2, 2, 1]), np.ones((4, 3)), {}, "features"),
    ("not a net", np.ones((4, 2)), {}, "zeronn.MLP"),
])
def test_plot_fit_bad_input(net, X, kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        plotting.plot_fit(net, X, **kwargs)


def test_missing_matplotlib_names_the_extra(monkeypatch) -> None:
    # A None entry in sys.modules makes `import matplotlib.pyplot` raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install zeronn\[plot\]"):
        plotting.plot_history(_history())


def test_import_zeronn_does_not_import_matplotlib() -> None:
    code = ("import sys, zeronn; assert 'matplotlib' not in sys.modules; "
            "assert 'zeronn.plotting' not in sys.modules; "
            "zeronn.plotting.plot_fit; assert 'matplotlib' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"
    assert zn.plotting is plotting
    with pytest.raises(AttributeError, match="no attribute 'plotter'"):
        _ = zn.plotter  # type: ignore[attr-defined]


def test_plot_fit_draws_a_sequential_with_dropout_and_batch_norm():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 2))
    y = (X[:, :1] > 0).astype(float)
    net = zn.Sequential([zn.Dense(8), zn.BatchNorm(), zn.Activation("relu"), zn.Dropout(0.2),
                         zn.Dense(1, activation="sigmoid")], input_dim=2, seed=0)
    net.fit(X, y, loss="binary_crossentropy", epochs=3, seed=0)
    fig = plotting.plot_fit(net, X, y)
    assert fig.axes
    fig2 = plotting.plot_history(net)
    assert fig2.axes
