"""Convolutional networks against ``torch.nn.functional``: forward, loss, every gradient.

Hypothesis draws ``zn.Sequential`` convnets on NCHW batches: one or two blocks of Conv2D
(1 to 8 filters; kernels 1 to 5, stride 1 to 3, padding 0 to 2, square or not; with or
without bias; any built-in activation), an optional BatchNorm over the channels and an
optional Activation after it, an optional MaxPool2D or AvgPool2D (pool 1 to 3, stride 1
to 3 or the pool's own, so windows overlap or skip; padding up to half the pool, as torch
allows); then Flatten, an optional hidden Dense and the output layer of each output/loss
pair zeronn accepts. Inputs have 1 to 8 channels and odd and even heights and widths of
3 to 11. The same network runs in torch as ``F.conv2d``, ``F.max_pool2d``,
``F.avg_pool2d`` (``count_include_pad=True``, both frameworks' default),
``torch.flatten``, a matrix product and ``nn.BatchNorm2d``, on copies of zeronn's
parameters. Compared, to a relative ``F64_TOL`` (float64) or ``F32_TOL`` (float32),
metric ``conftest.relative_error``:

- one training step: the forward output, ``net.backward`` (dL/dX and every gradient for
  a given dL/d(output)), the loss and every gradient of ``loss_and_gradients``,
  BatchNorm's running statistics, and ``net.predict`` against torch in evaluation mode;
- several steps of ``net.fit`` with SGD (momentum) against ``torch.optim.SGD``;
- max pooling on exact ties (integer-valued images, integer kernels): the gradient goes
  to the first arg-max in each window, as torch's, and every number matches exactly.

Gradient floors (``conftest.relative_error``) as in ``test_torch_layers``: the sum a
gradient is made of, with every subtraction turned into an addition, divided by the
batch size N. A convolution is linear in both its input and its kernel, so the sizes go
through it as through a Dense layer: ``|x| (*) m`` for dW (the weight gradient of the
convolution of |x| with the size m of dL/dz), ``sum m`` over (n, h, w) for db, and the
transposed convolution of m with ``|W|`` for the size of dL/dx; pooling routes sizes as
it routes gradients. An identity output is measured against the size of the terms the
last Dense layer sums (one sample's one output can cancel to about 0), and running
statistics against the size of the values they average (a channel that only ever sees
padding is constant: its variance is 0, rounding noise in each framework).

float32 runs leave out the ReLU family (rounding can move an input to the other side of
the kink in one framework only, as in the dense suites), and reject examples in which a
max-pooling window's two largest inputs are within rounding of each other (the arg-max,
and with it the whole gradient, may then differ legitimately), or in which a BatchNorm
normalizes a nearly constant channel (``x - mean`` cancels, magnifying the inputs'
rounding past the tolerance: ``bn_condition``); exact ties stay in: both frameworks
compute them exactly and must pick the same, first, entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402

from .test_torch_gradients import F32_TOL, F64_TOL, PAIRS, TORCH_ACT, torch_loss  # noqa: E402

# The examples per case (ZERONN_PARITY_EXAMPLES), activations and dtypes of the layer suite.
from .test_torch_layers import (  # noqa: E402
    BN_CONDITION,
    DTYPES,
    EXAMPLES,
    FIT_EXAMPLES,
    HIDDEN,
    SMOOTH,
    act_size,
    bn_condition,
    check_running_stats,
    loss_floor,
    loss_size,
    param_labels,
    randomized,
)

# float32: two pooled inputs closer than this (relative to the pooled map's largest entry)
# may swap order between the frameworks' roundings.
NEAR_TIE = 1e-5


def _pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[1]}+{pair[0]}"


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window sliding over ``size`` (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1


Pair = tuple[int, int]


def _out_shape(shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """(OH, OW) of a window sliding over the (C, H, W) map ``shape``."""
    return (_out_size(shape[1], kernel[0], stride[0], padding[0]),
            _out_size(shape[2], kernel[1], stride[1], padding[1]))


def _pair(draw: st.DrawFn, lo: int, hi_h: int, hi_w: int) -> Pair:
    """A (height, width) pair, square two times in three (when the ranges allow it)."""
    if hi_h == hi_w and draw(st.integers(0, 2)) > 0:
        v = draw(st.integers(lo, hi_h))
        return (v, v)
    return (draw(st.integers(lo, hi_h)), draw(st.integers(lo, hi_w)))


def _arg(pair: Pair) -> int | Pair:
    """An int when square (the usual way to write it), else the pair."""
    return pair[0] if pair[0] == pair[1] else pair


# -- the convnets --------------------------------------------------------------------------
@st.composite
def convnets(draw: st.DrawFn, loss: str, output: str, dtype: str, n_min: int = 1,
             n_max: int = 5, pools: tuple[str, ...] = ("max", "avg")) -> dict[str, Any]:
    """A random convnet with random parameters and running statistics, a batch X (n, C, H,
    W) and targets y fitting ``loss``. ``spec`` lists what each layer is, for torch."""
    hidden = HIDDEN if dtype == "float64" else SMOOTH
    c, h, w = (draw(st.integers(1, 8), label="channels"), draw(st.integers(3, 11), label="H"),
               draw(st.integers(3, 11), label="W"))
    layers: list[zn.Layer] = []
    spec: list[dict[str, Any]] = []
    shape = (c, h, w)
    min_rows = n_min  # BatchNorm needs two values per channel in training
    for _ in range(draw(st.integers(1, 2), label="blocks")):
        padding = _pair(draw, 0, 2, 2)
        kernel = _pair(draw, 1, min(5, shape[1] + 2 * padding[0]),
                       min(5, shape[2] + 2 * padding[1]))
        stride = _pair(draw, 1, 3, 3)
        filters = draw(st.integers(1, 8))
        act = draw(st.sampled_from(hidden))
        use_bias = draw(st.booleans())
        layers.append(zn.Conv2D(filters, _arg(kernel), stride=_arg(stride),
                                padding=_arg(padding), activation=act, use_bias=use_bias))
        shape = (filters, *_out_shape(shape, kernel, stride, padding))
        spec.append({"kind": "conv", "b": use_bias, "stride": stride, "padding": padding,
                     "act": act})
        if draw(st.booleans(), label="batchnorm"):
            layers.append(zn.BatchNorm(momentum=draw(st.sampled_from([0.1, 0.5, None])),
                                       eps=draw(st.sampled_from([1e-5, 1e-3]))))
            spec.append({"kind": "batchnorm"})
            min_rows = max(min_rows, 2 if shape[1] * shape[2] == 1 else 1)
            if draw(st.booleans(), label="activation after it"):
                act = draw(st.sampled_from(hidden))
                layers.append(zn.Activation(act))
                spec.append({"kind": "activation", "act": act})
        pool = draw(st.sampled_from(("none", *pools)), label="pooling")
        if pool != "none":
            size = _pair(draw, 1, 3, 3)
            # torch: padding at most half the pool; the window must fit the padded map
            pad = _pair(draw, 0, size[0] // 2, size[1] // 2)
            size = (min(size[0], shape[1] + 2 * pad[0]), min(size[1], shape[2] + 2 * pad[1]))
            pad = (min(pad[0], size[0] // 2), min(pad[1], size[1] // 2))
            stride_ = (None if draw(st.booleans(), label="default pool stride")
                       else _pair(draw, 1, 3, 3))
            cls = zn.MaxPool2D if pool == "max" else zn.AvgPool2D
            layers.append(cls(_arg(size), stride=None if stride_ is None else _arg(stride_),
                              padding=_arg(pad)))
            s = size if stride_ is None else stride_
            shape = (shape[0], *_out_shape(shape, size, s, pad))
            spec.append({"kind": pool, "size": size, "stride": s, "padding": pad})
    layers.append(zn.Flatten())
    spec.append({"kind": "flatten"})
    if draw(st.booleans(), label="hidden dense"):
        act = draw(st.sampled_from(hidden))
        layers.append(zn.Dense(draw(st.integers(1, 8)), act))
        spec.append({"kind": "dense", "W": True, "b": True, "act": act})
    k = draw(st.integers(1, 4), label="outputs")
    if draw(st.booleans(), label="separate output activation"):
        layers += [zn.Dense(k), zn.Activation(output)]
        spec += [{"kind": "dense", "W": True, "b": True, "act": "identity"},
                 {"kind": "activation", "act": output}]
    else:
        layers.append(zn.Dense(k, output))
        spec.append({"kind": "dense", "W": True, "b": True, "act": output})
    n = draw(st.integers(min_rows, max(min_rows, n_max)), label="batch")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    net = randomized(zn.Sequential(layers, input_shape=(c, h, w), dtype=dtype, seed=0), rng)
    X = rng.standard_normal((n, c, h, w)) * 2.0 + rng.normal(0, 1, (1, c, 1, 1))
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, (n, k)).astype(float) if draw(st.booleans()) else \
            rng.uniform(size=(n, k))
    elif loss == "categorical_crossentropy":
        y = np.eye(k)[rng.integers(0, k, n)] if draw(st.booleans()) else \
            rng.dirichlet(np.ones(k), n)
    else:
        y = rng.standard_normal((n, k)) * 2.0
    return {"net": net, "spec": spec, "X": X.astype(dtype), "y": y.astype(dtype),
            "seed": int(rng.integers(2**32))}


# -- the same network in torch -------------------------------------------------------------
class TorchConvNet:
    """``net`` in torch: conv and dense parameters as leaf tensors in zeronn's own shapes
    (so their gradients compare as they are), BatchNorm as ``nn.BatchNorm2d`` /
    ``nn.BatchNorm1d`` with zeronn's parameters and running statistics copied.

    ``__call__(X, training)`` runs the layers in order and records each layer's input
    and the pre-activations of the last activation (the logits)."""

    def __init__(self, net: zn.Network, spec: list[dict[str, Any]]) -> None:
        self.net, self.spec = net, spec
        dtype = getattr(torch, net.dtype.name)
        self.tensors: list[dict[str, Any]] = []
        for layer, sp in zip(net.layers, spec):
            t: dict[str, Any] = {}
            if sp["kind"] in ("conv", "dense"):
                for name, p in zip(layer.param_names, layer.params):
                    t[name] = torch.tensor(p.copy(), requires_grad=True)
            elif sp["kind"] == "batchnorm":
                bn = (torch.nn.BatchNorm2d if len(layer.input_shape) == 3
                      else torch.nn.BatchNorm1d)
                m = bn(layer.input_shape[0], eps=layer.eps, momentum=layer.momentum,
                       dtype=dtype)
                with torch.no_grad():
                    m.weight.copy_(torch.tensor(layer.gamma))
                    m.bias.copy_(torch.tensor(layer.beta))
                    m.running_mean.copy_(torch.tensor(layer.running_mean))
                    m.running_var.copy_(torch.tensor(layer.running_var))
                    m.num_batches_tracked.copy_(torch.tensor(layer.num_batches_tracked))
                t = {"module": m, "gamma": m.weight, "beta": m.bias}
            self.tensors.append(t)
        self.inputs: list[np.ndarray] = []
        self.pool_inputs: list[np.ndarray] = []

    def parameters(self) -> list[Any]:
        """In zeronn's order (``net.params``)."""
        return [t[name] for layer, t in zip(self.net.layers, self.tensors)
                for name in layer.param_names]

    def grads(self) -> list[np.ndarray]:
        return [p.grad.numpy() for p in self.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def __call__(self, X: Any, training: bool) -> tuple[Any, Any]:
        """(outputs, logits): logits are the input of the last activation."""
        h, logits = X, None
        self.inputs, self.pool_inputs = [], []
        for sp, t in zip(self.spec, self.tensors):
            self.inputs.append(h.detach().numpy())
            kind = sp["kind"]
            if kind == "conv":
                logits = F.conv2d(h, t["W"], t.get("b"), stride=sp["stride"],
                                  padding=sp["padding"])
                h = TORCH_ACT[sp["act"]](logits)
            elif kind == "dense":
                logits = h @ t["W"] + t["b"]  # W (fan_in, units), b (1, units): zeronn's
                h = TORCH_ACT[sp["act"]](logits)
            elif kind == "activation":
                logits, h = h, TORCH_ACT[sp["act"]](h)
            elif kind == "batchnorm":
                t["module"].train(training)
                h = t["module"](h)
            elif kind == "max":
                self.pool_inputs.append(h.detach().numpy())
                h = F.max_pool2d(h, sp["size"], sp["stride"], sp["padding"])
            elif kind == "avg":
                h = F.avg_pool2d(h, sp["size"], sp["stride"], sp["padding"],
                                 count_include_pad=True)
            else:
                h = torch.flatten(h, 1)
        return h, logits

    def state(self) -> list[dict[str, np.ndarray]]:
        return [{"running_mean": t["module"].running_mean.numpy(),
                 "running_var": t["module"].running_var.numpy(),
                 "num_batches_tracked": t["module"].num_batches_tracked.numpy()}
                if "module" in t else {} for t in self.tensors]


def near_tie(x: np.ndarray, size: Pair, stride: Pair, padding: Pair) -> bool:
    """True if some max-pooling window's two largest entries differ, but by less than
    ``NEAR_TIE`` of the map's largest entry (exact ties are not near ties)."""
    pads = [padding[1], padding[1], padding[0], padding[0]]
    t = F.pad(torch.tensor(x, dtype=torch.float64), pads, value=-np.inf)
    win = t.unfold(2, size[0], stride[0]).unfold(3, size[1], stride[1]).flatten(-2)
    if win.shape[-1] < 2:
        return False
    top2 = torch.topk(win, 2, dim=-1).values
    gap = (top2[..., 0] - top2[..., 1]).numpy()
    scale = float(np.max(np.abs(x)))
    return bool(np.any((gap > 0) & (gap <= NEAR_TIE * scale)))


def input_sizes(stack: TorchConvNet) -> list[np.ndarray]:
    """The size rounding works at in each layer's input of the last torch pass, at least
    its value: the forward pass with every subtraction made an addition (``|x|·|W| + |b|``,
    ``act_size`` for an activation, BatchNorm's ``(|x| + |mean|)·inv_std``; pooling passes
    the sizes of the entries it picks or averages). A float32 gelu deep in its negative
    tail computes 0.5·z·(1 + t) with 1 + t pure rounding: the value is 0 or a few 1e-8,
    its size 0.5·|z|·(1 + |t|)."""
    sizes: list[np.ndarray] = []
    size = np.abs(stack.inputs[0].astype(np.float64))
    for layer, sp, x in zip(stack.net.layers, stack.spec, stack.inputs):
        sizes.append(size)
        x = x.astype(np.float64)
        kind = sp["kind"]
        if kind in ("conv", "dense", "activation"):
            ps = [p.astype(np.float64) for p in layer.params]
            if kind == "conv":
                args = {"stride": sp["stride"], "padding": sp["padding"]}
                z = F.conv2d(torch.tensor(x), torch.tensor(ps[0]),
                             torch.tensor(ps[1]) if sp["b"] else None, **args).numpy()
                zsize = F.conv2d(torch.tensor(size), torch.tensor(np.abs(ps[0])),
                                 torch.tensor(np.abs(ps[1])) if sp["b"] else None,
                                 **args).numpy()
            elif kind == "dense":
                z, zsize = x @ ps[0] + ps[1], size @ np.abs(ps[0]) + np.abs(ps[1])
            else:
                z, zsize = x, size
            a = TORCH_ACT[sp["act"]](torch.tensor(z)).numpy()
            size = np.maximum(np.abs(a), act_size(sp["act"], z, a, zsize))
        elif kind == "max":  # the size of the entry each window picks
            _, where = F.max_pool2d(torch.tensor(x), sp["size"], sp["stride"], sp["padding"],
                                    return_indices=True)
            picked = torch.tensor(size).flatten(2).gather(2, where.flatten(2))
            size = picked.reshape(where.shape).numpy()
        elif kind == "avg":
            size = F.avg_pool2d(torch.tensor(size), sp["size"], sp["stride"],
                                sp["padding"], count_include_pad=True).numpy()
        elif kind == "flatten":
            size = size.reshape(size.shape[0], -1)
        else:  # BatchNorm in training
            axes = (0,) if x.ndim == 2 else (0, 2, 3)
            shape = (1, -1) + (1,) * (x.ndim - 2)
            mean = x.mean(axis=axes, keepdims=True)
            inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True)
                                  + layer.eps)
            size = ((size + np.abs(mean)) * inv_std
                    * np.abs(layer.gamma.astype(np.float64)).reshape(shape)
                    + np.abs(layer.beta.astype(np.float64)).reshape(shape))
    return sizes


def floors(stack: TorchConvNet, m: np.ndarray, skip_last_activation: bool
           ) -> tuple[list[float], float]:
    """Per gradient (aligned with ``net.params``) the floor of the module doc, and dL/dX's
    (not a batch sum: not divided by N). ``m``: the size of dL/d(output) (or of dL/dz
    before the last activation with ``skip_last_activation``); a weight's inputs by
    ``input_sizes``. All in float64."""
    net = stack.net
    n = m.shape[0]
    out: list[list[float]] = []
    skip = skip_last_activation
    f64 = torch.float64
    for layer, sp, x, x_size in zip(reversed(net.layers), reversed(stack.spec),
                                    reversed(stack.inputs), reversed(input_sizes(stack))):
        x = x.astype(np.float64)
        kind = sp["kind"]
        mine: list[float] = []
        if kind in ("conv", "dense", "activation"):
            ps = [p.astype(np.float64) for p in layer.params]
            if kind == "conv":
                z = F.conv2d(torch.tensor(x), torch.tensor(ps[0]),
                             torch.tensor(ps[1]) if sp["b"] else None,
                             stride=sp["stride"], padding=sp["padding"]).numpy()
            elif kind == "dense":
                z = x @ ps[0] + ps[1]
            else:
                z = x
            if not skip:
                a = TORCH_ACT[sp["act"]](torch.tensor(z)).numpy()
                m = act_size(sp["act"], z, a, m)
            skip = False
            if kind == "conv":
                tm = torch.tensor(m, dtype=f64)
                mine.append(float(torch.nn.grad.conv2d_weight(
                    torch.tensor(x_size), ps[0].shape, tm, stride=sp["stride"],
                    padding=sp["padding"]).max()) / n)
                if sp["b"]:
                    mine.append(float(m.sum(axis=(0, 2, 3)).max()) / n)
                m = torch.nn.grad.conv2d_input(x.shape, torch.tensor(np.abs(ps[0])), tm,
                                               stride=sp["stride"],
                                               padding=sp["padding"]).numpy()
            elif kind == "dense":
                mine.append(float((x_size.T @ m).max()) / n)
                mine.append(float(m.sum(axis=0).max()) / n)
                m = m @ np.abs(ps[0]).T
        elif kind in ("max", "avg"):  # sizes routed as the gradients are
            tx = torch.tensor(x, requires_grad=True)
            pooled = (F.max_pool2d(tx, sp["size"], sp["stride"], sp["padding"])
                      if kind == "max" else
                      F.avg_pool2d(tx, sp["size"], sp["stride"], sp["padding"],
                                   count_include_pad=True))
            pooled.backward(torch.tensor(m))
            m = tx.grad.numpy()
        elif kind == "flatten":
            m = m.reshape(x.shape)
        else:  # BatchNorm in training: batch statistics over (n, h, w) per channel
            axes = (0,) if x.ndim == 2 else (0, 2, 3)
            gamma = np.abs(layer.gamma.astype(np.float64)).reshape(
                (1, -1) + (1,) * (x.ndim - 2))
            mean = x.mean(axis=axes, keepdims=True)
            inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axes, keepdims=True)
                                  + layer.eps)
            xhat = (np.abs(x) + np.abs(mean)) * inv_std  # the size of (x - mean) * inv_std
            mine += [float((m * xhat).sum(axis=axes).max()) / n,
                     float(m.sum(axis=axes).max()) / n]
            dxh = m * gamma
            m = (dxh + dxh.mean(axis=axes, keepdims=True)
                 + xhat * (dxh * xhat).mean(axis=axes, keepdims=True)) * inv_std
        out.append(mine)
    return [f for mine in reversed(out) for f in mine], float(m.max())


def output_activation(spec: list[dict[str, Any]]) -> str:
    return str(spec[-1]["act"])


def output_floor(stack: TorchConvNet, activation: str) -> float:
    """The floor of an identity output: the size of the terms the last Dense layer sums,
    ``max(|h| |W| + |b|)`` over the last torch pass. An output can cancel to far below
    them (one sample, one output: a single number near 0), and its rounding is that of
    the terms. Probabilities (sigmoid, softmax) are compared as they are."""
    if activation != "identity":
        return 0.0
    i = max(j for j, sp in enumerate(stack.spec) if sp["kind"] == "dense")
    W, b = (p.astype(np.float64) for p in stack.net.layers[i].params)
    h = np.abs(stack.inputs[i].astype(np.float64))
    return float((h @ np.abs(W) + np.abs(b)).max())


def _no_near_ties(stack: TorchConvNet) -> bool:
    pools = [sp for sp in stack.spec if sp["kind"] == "max"]
    return not any(near_tie(x, sp["size"], sp["stride"], sp["padding"])
                   for x, sp in zip(stack.pool_inputs, pools))


# -- one training step ---------------------------------------------------------------------
def _check_step(parity: Any, prob: dict[str, Any], loss: str, dtype: str, tol: float) -> None:
    net: zn.Network = prob["net"]
    X, y = prob["X"], prob["y"]
    arch = f"{net!r} X{X.shape} {loss}"
    stack = TorchConvNet(net, prob["spec"])
    rng = np.random.default_rng(prob["seed"])
    G = rng.standard_normal((X.shape[0], *net.output_shape)).astype(dtype)

    # zeronn: a training forward pass and backward from G; then a training step.
    out = net.forward(X, training=True).copy()
    dX = net.backward(G.copy()).copy()
    backward_grads = [g.copy() for g in net.grads]
    value, grads = net.loss_and_gradients(X, y, loss, training=True)
    assert out.dtype == np.dtype(dtype) and dX.dtype == np.dtype(dtype)
    assert all(g.dtype == np.dtype(dtype) for g in grads)
    assert dX.shape == X.shape

    # torch: the same two passes.
    Xt = torch.tensor(X, requires_grad=True)
    tout, _ = stack(Xt, training=True)
    if dtype == "float32":
        assume(_no_near_ties(stack))
        assume(bn_condition(stack.net.layers, stack.inputs) <= BN_CONDITION)
        if loss == "mae":  # sign(a - y) jumps at a == y
            assume(np.array_equal(out > y, tout.detach().numpy() > y))
    tout.backward(torch.tensor(G))
    assert Xt.grad is not None
    b_floors, dx_floor = floors(stack, np.abs(G.astype(np.float64)), False)
    out_floor = output_floor(stack, output_activation(prob["spec"]))
    parity.check(f"conv {dtype} forward", out, tout.detach().numpy(), tol, arch,
                 floor=out_floor)
    parity.check(f"conv {dtype} backward", dX, Xt.grad.numpy(), tol, f"dX of {arch}",
                 floor=dx_floor)
    names = param_labels(net)
    tgrads = stack.grads()
    assert len(backward_grads) == len(tgrads) == len(names) == len(b_floors)
    for name, g, tg, floor in zip(names, backward_grads, tgrads, b_floors):
        parity.check(f"conv {dtype} backward", g, tg, tol, f"{name} of {arch}", floor=floor)
    stack.zero_grad()
    tout, tlogits = stack(torch.tensor(X), training=True)
    tvalue = torch_loss(loss, tout, tlogits, torch.tensor(y))
    tvalue.backward()
    parity.check(f"conv {dtype} loss", np.float64(value), np.float64(tvalue.item()), tol, arch,
                 floor=loss_floor(loss, tout.detach().numpy(), y))
    fused = loss.endswith("crossentropy")
    l_floors, _ = floors(stack, loss_size(loss, tout.detach().numpy(), y), fused)
    for name, g, tg, floor in zip(names, grads, stack.grads(), l_floors):
        parity.check(f"conv {dtype} gradients", g, tg, tol, f"{name} of {arch}", floor=floor)
    # Two training passes each: the running statistics moved twice.
    check_running_stats(parity, f"conv {dtype} running stats", net, stack, tol, arch)
    with torch.no_grad():
        teval, _ = stack(torch.tensor(X), training=False)
    parity.check(f"conv {dtype} eval", net.predict(X), teval.numpy(), tol, arch,
                 floor=output_floor(stack, output_activation(prob["spec"])))


@pytest.mark.parametrize("loss, output", PAIRS, ids=[_pair_id(p) for p in PAIRS])
@pytest.mark.parametrize("dtype, tol", DTYPES, ids=["float64", "float32"])
def test_random_convnets_match_torch(parity: Any, dtype: str, tol: float, loss: str,
                                     output: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(prob=convnets(loss, output, dtype))
    def run(prob: dict[str, Any]) -> None:
        _check_step(parity, prob, loss, dtype, tol)

    run()


# -- several steps of fit ------------------------------------------------------------------
# float32 trains with average pooling only: a max-pooling window whose two largest inputs
# are close may be passed in opposite orders by the two frameworks' rounding at some
# step, after which they train different weights (the step check above rejects such
# examples; across steps there is no single point to reject them at).
FIT_CASES = [pytest.param("float64", F64_TOL, ("max", "avg"), id="float64"),
             pytest.param("float32", F32_TOL, ("avg",), id="float32")]


def dead_head(loss: str, output: str, dtype: str) -> dict[str, Any]:
    """A ``convnets`` problem whose Dense head sees only zeros (hypothesis found it): the
    second convolution's stride lands on the padding alone, whatever the weights."""
    layers: list[zn.Layer] = [
        zn.Conv2D(1, 1, stride=3, use_bias=False),
        zn.Conv2D(1, 1, stride=2, padding=(0, 1), use_bias=False),
        zn.Flatten(), zn.Dense(2 if loss == "categorical_crossentropy" else 1, output)]
    spec = [{"kind": "conv", "b": False, "stride": (3, 3), "padding": (0, 0), "act": "identity"},
            {"kind": "conv", "b": False, "stride": (2, 2), "padding": (0, 1), "act": "identity"},
            {"kind": "flatten"}, {"kind": "dense", "W": True, "b": True, "act": output}]
    net = zn.Sequential(layers, input_shape=(1, 3, 3), dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 1, 3, 3))
    y = np.eye(2)[rng.integers(0, 2, 6)] if loss == "categorical_crossentropy" else \
        rng.standard_normal((6, 1))
    return {"net": net, "spec": spec, "X": X.astype(dtype), "y": y.astype(dtype), "seed": 0}


def steep_convolutions(loss: str, output: str, dtype: str) -> dict[str, Any]:
    """A ``convnets`` problem that diverges (hypothesis found one like it): four weights in a
    chain whose product is the whole model, and inputs of twice the usual size. The step
    size's bound looks at the Dense head's curvature alone; the first convolution's is
    larger, and by the third epoch the loss is inf in both frameworks."""
    layers: list[zn.Layer] = [
        zn.Conv2D(1, 4, use_bias=False), zn.MaxPool2D(1), zn.Conv2D(1, 1, use_bias=False),
        zn.Flatten(), zn.Dense(2 if loss == "categorical_crossentropy" else 1, output)]
    spec = [{"kind": "conv", "b": False, "stride": (1, 1), "padding": (0, 0), "act": "identity"},
            {"kind": "max", "size": (1, 1), "stride": (1, 1), "padding": (0, 0)},
            {"kind": "conv", "b": False, "stride": (1, 1), "padding": (0, 0), "act": "identity"},
            {"kind": "flatten"}, {"kind": "dense", "W": True, "b": True, "act": output}]
    net = zn.Sequential(layers, input_shape=(2, 4, 4), dtype=dtype, seed=13)
    rng = np.random.default_rng(13)
    X = 2 * rng.standard_normal((6, 2, 4, 4))
    y = np.eye(2)[rng.integers(0, 2, 6)] if loss == "categorical_crossentropy" else \
        rng.standard_normal((6, 1))
    return {"net": net, "spec": spec, "X": X.astype(dtype), "y": y.astype(dtype), "seed": 13}


@pytest.mark.parametrize("loss, output", [PAIRS[0], PAIRS[4]],
                         ids=[_pair_id(p) for p in (PAIRS[0], PAIRS[4])])
@pytest.mark.parametrize("dtype, tol, pools", FIT_CASES)
def test_fit_matches_torch_optim(parity: Any, dtype: str, tol: float, pools: tuple[str, ...],
                                 loss: str, output: str) -> None:
    # SGD with momentum, batches of 3 to 5 rows in order, 3 epochs: BatchNorm's running
    # statistics move once per batch.
    @settings(max_examples=FIT_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(prob=convnets(loss, output, dtype, n_min=6, n_max=10, pools=pools),
           bs=st.integers(3, 5))
    @example(prob=dead_head(loss, output, dtype), bs=3)
    @example(prob=steep_convolutions(loss, output, dtype), bs=3)
    def run(prob: dict[str, Any], bs: int) -> None:
        net: zn.Sequential = prob["net"]
        X, y = prob["X"], prob["y"]
        n = X.shape[0]
        # A batch of 1 row leaves BatchNorm on a 1x1 map nothing to normalize; over 2 its
        # output is +-gamma + beta whatever the input (the gradient through it is noise).
        assume(n % bs not in (1, 2))
        stack = TorchConvNet(net, prob["spec"])
        arch = f"{net!r} X{X.shape} bs={bs} {loss}"
        epochs = 3
        # The Dense head sees every flattened pixel (up to 1800): a step size that stays
        # stable for it (mse's curvature is about 2 mean|h|^2 over the flattened rows h;
        # with momentum 0.9 steps diverge past lr = 3.8 / curvature).
        with torch.no_grad():
            stack(torch.tensor(X), training=False)
        flat = stack.inputs[[sp["kind"] for sp in prob["spec"]].index("flatten") + 1]
        size = float(np.mean(np.sum(np.square(flat.astype(np.float64)), 1)))
        # An all-zero head input (padding only) gives its weights no curvature at all:
        # the bias alone learns, and 0.05 is stable for it.
        lr = min(0.05, 0.2 / size) if size > 0 else 0.05
        topt = torch.optim.SGD(stack.parameters(), lr=lr, momentum=0.9)
        condition = 0.0
        for _ in range(epochs):
            for s in range(0, n, bs):
                topt.zero_grad()
                tout, tlogits = stack(torch.tensor(X[s:s + bs]), training=True)
                condition = max(condition, bn_condition(stack.net.layers, stack.inputs))
                torch_loss(loss, tout, tlogits, torch.tensor(y[s:s + bs])).backward()
                topt.step()
        if dtype == "float32":
            assume(condition <= BN_CONDITION)
        with torch.no_grad():  # a run that diverged (weights or outputs past 1e6) compares
            teval, _ = stack(torch.tensor(X), training=False)  # overflow, not arithmetic
        assume(all(float(p.detach().abs().max()) < 1e6 for p in stack.parameters())
               and float(teval.abs().max()) < 1e6)
        # zeronn trains second: on a run that diverges (the bound on lr above looks at the
        # head alone, and the convolutions' own curvature can be larger) its fit stops with
        # a ValueError, rightly, where torch's loop runs on to inf and is rejected above.
        net.fit(X, y, loss=loss, optimizer=zn.optim.SGD(lr=lr, momentum=0.9),
                epochs=epochs, batch_size=bs, shuffle=False)
        group = f"conv {dtype} fit"
        with torch.no_grad():
            theirs = [p.numpy() for p in stack.parameters()]
            for name, p, expected in zip(param_labels(net), net.params, theirs):
                parity.check(group, p, expected, tol, f"{name} of {arch}")
            check_running_stats(parity, group, net, stack, tol, arch)
        parity.check(group, net.predict(X), teval.numpy(), tol, f"predict of {arch}",
                     floor=output_floor(stack, output_activation(prob["spec"])))

    run()


# -- max pooling on exact ties -------------------------------------------------------------
POOLS = [(size, stride, pad) for size in (2, 3) for stride in (1, 2, 3)
         for pad in range(size // 2 + 1)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size, stride, pad", POOLS,
                         ids=[f"pool{p[0]}-stride{p[1]}-pad{p[2]}" for p in POOLS])
def test_max_pool_ties_go_to_the_first_arg_max(parity: Any, dtype: str, size: int,
                                               stride: int, pad: int) -> None:
    # Images of the integers -2..1 on odd and even sizes: nearly every window holds a tie
    # (overlapping windows share them), some are all negative (the padding, -inf in
    # torch, must never win). Every value and every sum is an exact small integer, so
    # the gradients must be equal, entry by entry, not just close.
    rng = np.random.default_rng(size * 100 + stride * 10 + pad)
    X = rng.integers(-2, 2, (3, 2, 7, 6)).astype(dtype)
    X[0, 0] = -1.0  # a whole map of one value: the tie goes to each window's first entry
    net = zn.Sequential([zn.MaxPool2D(size, stride=stride, padding=pad), zn.Flatten()],
                        input_shape=(2, 7, 6), dtype=dtype)
    out = net.forward(X, training=True).copy()
    G = rng.integers(1, 4, out.shape).astype(dtype)  # distinct routes give distinct sums
    dX = net.backward(G)
    Xt = torch.tensor(X, requires_grad=True)
    tout = torch.flatten(F.max_pool2d(Xt, size, stride, pad), 1)
    tout.backward(torch.tensor(G))
    assert Xt.grad is not None
    what = f"MaxPool2D({size}, stride={stride}, padding={pad}) {dtype}"
    parity.check("conv ties (exact)", out, tout.detach().numpy(), 0.0, f"output of {what}")
    parity.check("conv ties (exact)", dX, Xt.grad.numpy(), 0.0, f"dX of {what}")
    # The rule itself, independently of torch: each window's gradient lands on the first
    # (row-major) position of its maximum.
    expected = np.zeros_like(X, dtype=np.float64)
    padded = np.pad(X.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)),
                    constant_values=-np.inf)
    oh, ow = _out_size(7, size, stride, pad), _out_size(6, size, stride, pad)
    g = G.reshape(3, 2, oh, ow)
    for i in range(oh):
        for j in range(ow):
            win = padded[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            flat = win.reshape(3, 2, -1).argmax(axis=-1)  # numpy: the first maximum
            r, c = i * stride + flat // size - pad, j * stride + flat % size - pad
            for a in range(3):
                for b in range(2):
                    expected[a, b, r[a, b], c[a, b]] += g[a, b, i, j]
    np.testing.assert_array_equal(dX, expected.astype(dtype))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_integer_convnet_matches_torch_exactly(parity: Any, dtype: str, pool: str) -> None:
    # Integer images, kernels in {-1, 0, 1}, biases 0, overlapping pooling: the convolution
    # outputs are small integers with many exact ties inside each window (ReLU's zeros
    # among them), so max pooling must route to torch's first arg-max, and every output
    # and gradient (dX, dW, db of both layers) is an exact integer sum in both frameworks
    # (average pooling divides by 4: exact in binary too).
    rng = np.random.default_rng(7)
    n, c, h, w = 4, 2, 9, 8
    net = zn.Sequential(
        [zn.Conv2D(3, 3, stride=1, padding=1, activation="relu"),
         (zn.MaxPool2D if pool == "max" else zn.AvgPool2D)(2, stride=1), zn.Flatten(),
         zn.Dense(2)], input_shape=(c, h, w), dtype=dtype)
    W1 = rng.integers(-1, 2, (3, c, 3, 3)).astype(float)
    W2 = rng.integers(-1, 2, net.params[2].shape).astype(float)
    net.set_params([W1, np.zeros(3), W2, np.zeros(net.params[3].shape)])
    X = rng.integers(0, 3, (n, c, h, w)).astype(dtype)
    G = rng.integers(-2, 3, (n, 2)).astype(dtype)
    out = net.forward(X, training=True).copy()
    dX = net.backward(G)
    ps = [torch.tensor(p.copy(), requires_grad=True) for p in net.params]
    Xt = torch.tensor(X, requires_grad=True)
    hidden = F.relu(F.conv2d(Xt, ps[0], ps[1], stride=1, padding=1))
    pooled = (F.max_pool2d(hidden, 2, 1) if pool == "max" else
              F.avg_pool2d(hidden, 2, 1, count_include_pad=True))
    tout = torch.flatten(pooled, 1) @ ps[2] + ps[3]
    tout.backward(torch.tensor(G))
    assert Xt.grad is not None
    what = f"integer convnet, {pool} pooling, {dtype}"
    parity.check("conv ties (exact)", out, tout.detach().numpy(), 0.0, f"output of {what}")
    parity.check("conv ties (exact)", dX, Xt.grad.numpy(), 0.0, f"dX of {what}")
    for name, g, p in zip(("W1", "b1", "W3", "b3"), net.grads, ps):
        parity.check("conv ties (exact)", g, p.grad.numpy(), 0.0, f"{name} of {what}")
    assert np.count_nonzero(hidden.detach().numpy() == 0) > 0  # ReLU's zeros are there
