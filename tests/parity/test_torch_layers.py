"""Every kind of layer against ``torch.nn``: forward, loss, gradients, running statistics.

Hypothesis draws ``zn.Sequential`` stacks mixing Dense (with or without bias, any built-in
activation), Activation, BatchNorm, LayerNorm and Dropout, ending in each output/loss
pair zeronn accepts, and the same network is built from ``torch.nn`` modules with the
parameters (and running statistics) copied: ``nn.Linear`` (weight ``W.T``),
``nn.BatchNorm1d``, ``nn.LayerNorm``. Dropout with a rate above 0 gets the same mask in
both: zeronn draws it in training mode, torch multiplies by ``layer.mask`` instead of
calling ``nn.Dropout``. Compared, to a relative ``F64_TOL`` (float64) or ``F32_TOL``
(float32), metric ``conftest.relative_error``:

- one training step: the forward output, ``net.backward`` (dL/dX and every gradient for
  a given dL/d(output)), the loss and every gradient of ``loss_and_gradients``, the
  running statistics after both passes (``num_batches_tracked`` exactly), and
  ``net.predict`` against ``model.eval()``;
- several steps of ``net.fit`` (SGD, Adam) against the same steps with ``torch.optim``:
  parameters, running statistics and evaluation-mode outputs after training.

Gradient floors (``conftest.relative_error``) generalise the MLP suite's: a gradient is a
sum of terms whose own sizes come from dL/d(output) through every layer, and BatchNorm's
and LayerNorm's backward subtract means (a Dense bias before a BatchNorm has a gradient of
exactly 0, a batch of two a zero gradient through it). The floor is that sum with every
subtraction made an addition (``|x|^T |dz|``, ``|dxh| + mean|dxh| + ...``: the sizes
rounding works at), divided by N as there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

from hypothesis import HealthCheck, assume, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402
from conftest import examples  # noqa: E402

from .conftest import relative_error  # noqa: E402
from .test_torch_gradients import F32_TOL, F64_TOL, PAIRS, TORCH_ACT, torch_loss  # noqa: E402

# Examples per case (raise with ZERONN_PARITY_EXAMPLES, as the MLP suite).
EXAMPLES = max(1, examples(30, "ZERONN_PARITY_EXAMPLES") // 4)
FIT_EXAMPLES = max(1, EXAMPLES // 3)

HIDDEN = ("identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus")
SMOOTH = tuple(a for a in HIDDEN if a not in ("relu", "leaky_relu"))
KINDS = ("dense", "activation", "batchnorm", "layernorm", "dropout")
DTYPES = [("float64", F64_TOL), ("float32", F32_TOL)]


def _pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[1]}+{pair[0]}"


# -- the stacks ---------------------------------------------------------------------------
def randomized(net: zn.Sequential, rng: np.random.Generator) -> zn.Sequential:
    """``net`` with random parameters (biases and betas too) and BatchNorm statistics."""
    params = []
    for layer in net.layers:
        for name, p in zip(layer.param_names, layer.params):
            if name == "W":  # dense (fan_in, units) or conv (filters, C, kh, kw)
                fan_in = int(np.prod(p.shape[1:])) if p.ndim == 4 else p.shape[0]
                params.append(rng.standard_normal(p.shape) * (1.5 / np.sqrt(fan_in)))
            elif name == "gamma":
                params.append(rng.normal(1.0, 0.5, p.shape))
            else:
                params.append(rng.normal(0.0, 0.5, p.shape))
        if isinstance(layer, zn.BatchNorm):  # running statistics away from (0, 1)
            c = layer.running_mean.size
            layer.set_state({"running_mean": rng.normal(0, 0.5, c),
                             "running_var": rng.uniform(0.5, 2.0, c),
                             "num_batches_tracked": np.array(rng.integers(0, 5))})
    net.set_params(params)
    return net


@st.composite
def stacks(draw: st.DrawFn, loss: str, output: str, dtype: str,
           rates: tuple[float, ...] = (0.0, 0.2, 0.5, 0.8), n_min: int = 2,
           ln_min_width: int = 2) -> dict[str, Any]:
    """A Sequential mixing every layer kind with random parameters and running statistics,
    a batch X and targets y fitting ``loss``. LayerNorm only over ``ln_min_width`` values
    or more: over one its output is beta whatever the input (only rounding noise flows
    on); over two it is nearly a sign function, whose kink float32 training can cross in
    one framework and not the other."""
    # float32 may round a ReLU's input to the other side of 0 in one framework only.
    hidden = HIDDEN if dtype == "float64" else SMOOTH
    d = draw(st.integers(1, 8), label="input_dim")
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5), label="kinds")
    layers: list[zn.Layer] = []
    width = d
    for kind in kinds:
        if kind == "layernorm" and width < ln_min_width:
            continue
        if kind == "dense":
            width = draw(st.integers(1, 12))
            layers.append(zn.Dense(width,
                                   draw(st.sampled_from(hidden)),
                                   use_bias=draw(st.booleans())))
        elif kind == "activation":
            layers.append(zn.Activation(draw(st.sampled_from((*hidden, "softmax")))))
        elif kind == "batchnorm":
            layers.append(zn.BatchNorm(momentum=draw(st.sampled_from([0.1, 0.5, 1.0, None])),
                                       eps=draw(st.sampled_from([1e-5, 1e-3]))))
        elif kind == "layernorm":
            layers.append(zn.LayerNorm(eps=draw(st.sampled_from([1e-5, 1e-3]))))
        else:
            layers.append(zn.Dropout(draw(st.sampled_from(rates))))
    k = draw(st.integers(1, 4), label="outputs")
    if draw(st.booleans(), label="separate output activation"):
        layers += [zn.Dense(k), zn.Activation(output)]
    else:
        layers.append(zn.Dense(k, output))
    if output == "identity" and k > 1 and draw(st.booleans(), label="ends in a norm"):
        norms = [zn.LayerNorm, zn.BatchNorm] if k >= ln_min_width else [zn.BatchNorm]
        layers.append(draw(st.sampled_from(norms))())
    n = draw(st.integers(n_min, 24), label="batch")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    net = randomized(zn.Sequential(layers, input_dim=d, dtype=dtype, seed=0), rng)
    X = (rng.standard_normal((n, d)) * 2.0 + rng.normal(0, 1, d)).astype(dtype)
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, (n, k)).astype(float) if draw(st.booleans()) else \
            rng.uniform(size=(n, k))
    elif loss == "categorical_crossentropy":
        y = np.eye(k)[rng.integers(0, k, n)] if draw(st.booleans()) else \
            rng.dirichlet(np.ones(k), n)
    else:
        y = rng.standard_normal((n, k)) * 2.0
    return {"net": net, "X": X, "y": y.astype(dtype), "seed": int(rng.integers(2**32))}


# -- the same network in torch -------------------------------------------------------------
class TorchStack:
    """The modules of ``net`` in torch, parameters and running statistics copied.

    ``__call__(X, masks, training)`` runs them in order, multiplying by the given dropout
    masks (training) and recording each layer's input for the floors."""

    def __init__(self, net: zn.Network) -> None:
        self.net = net
        dtype = getattr(torch, net.dtype.name)
        self.modules: list[Any] = []
        for layer in net.layers:
            m: Any = None
            with torch.no_grad():
                if isinstance(layer, zn.Dense):
                    m = torch.nn.Linear(layer.fan_in, layer.units, bias=layer.use_bias,
                                        dtype=dtype)
                    m.weight.copy_(torch.tensor(layer.W.T))
                    if layer.use_bias:
                        m.bias.copy_(torch.tensor(layer.b[0]))
                elif isinstance(layer, zn.BatchNorm):
                    m = torch.nn.BatchNorm1d(layer.input_shape[0], eps=layer.eps,
                                             momentum=layer.momentum, dtype=dtype)
                    m.weight.copy_(torch.tensor(layer.gamma))
                    m.bias.copy_(torch.tensor(layer.beta))
                    m.running_mean.copy_(torch.tensor(layer.running_mean))
                    m.running_var.copy_(torch.tensor(layer.running_var))
                    m.num_batches_tracked.copy_(torch.tensor(layer.num_batches_tracked))
                elif isinstance(layer, zn.LayerNorm):
                    m = torch.nn.LayerNorm(layer.input_shape, eps=layer.eps, dtype=dtype)
                    m.weight.copy_(torch.tensor(layer.gamma))
                    m.bias.copy_(torch.tensor(layer.beta))
            self.modules.append(m)
        self.inputs: list[Any] = []

    def parameters(self) -> list[Any]:
        """In zeronn's order (``net.params``)."""
        return [getattr(m, "weight" if name in ("W", "gamma") else "bias")
                for layer, m in zip(self.net.layers, self.modules)
                for name in layer.param_names]

    def as_zeronn(self, tensors: list[Any]) -> list[np.ndarray]:
        """Tensors aligned with ``parameters()`` in zeronn's shapes (W (fan_in, units),
        b (1, units))."""
        names = [name for layer in self.net.layers for name in layer.param_names]
        out = []
        for name, t in zip(names, tensors):
            a = t.detach().numpy()
            out.append(a.T if name == "W" else a[None] if name == "b" else a)
        return out

    def grads(self) -> list[np.ndarray]:
        return self.as_zeronn([p.grad for p in self.parameters()])

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool) -> None:
        for m in self.modules:
            if m is not None:
                m.train(mode)

    def __call__(self, X: Any, masks: list[np.ndarray | None], training: bool) -> Any:
        """(outputs, logits): logits are the input of the last activation."""
        self.train(training)
        h, logits = X, None
        self.inputs = []
        for layer, m, mask in zip(self.net.layers, self.modules, masks):
            self.inputs.append(h.detach().numpy())
            if isinstance(layer, zn.Dense):
                logits = m(h)
                h = TORCH_ACT[layer.activation.name](logits)
            elif isinstance(layer, zn.Activation):
                logits, h = h, TORCH_ACT[layer.activation.name](h)
            elif isinstance(layer, zn.Dropout):
                h = h * torch.tensor(mask) if training and mask is not None else h
            else:
                h = m(h)
        return h, logits

    def state(self) -> list[dict[str, np.ndarray]]:
        return [{"running_mean": m.running_mean.numpy(), "running_var": m.running_var.numpy(),
                 "num_batches_tracked": m.num_batches_tracked.numpy()}
                if isinstance(m, torch.nn.BatchNorm1d) else {} for m in self.modules]


# float32: BatchNorm layers magnifying their inputs' rounding more than this are left out
# (``bn_condition``): 1e-7 rounding times 100 stays well inside F32_TOL.
BN_CONDITION = 100.0


def bn_condition(layers: list[zn.Layer], inputs: list[np.ndarray]) -> float:
    """How much the BatchNorm layers among ``layers`` magnify their ``inputs``' relative
    rounding (a torch stack's record of its last pass): the largest
    ``max|x| / sqrt(var + eps)`` over their channels. A channel that is nearly constant (a
    saturated activation, a map of padding, a LayerNorm over two values, which is ±1 in
    every row) has a variance far below its values' size; ``x - mean`` then cancels, and
    the inputs' last-bit differences between the frameworks come out this many times
    larger."""
    worst = 0.0
    for layer, x in zip(layers, inputs):
        if isinstance(layer, zn.BatchNorm):
            x = x.astype(np.float64)
            axes = (0,) if x.ndim == 2 else (0, 2, 3)
            ratio = np.abs(x).max(axis=axes) / np.sqrt(x.var(axis=axes) + layer.eps)
            worst = max(worst, float(ratio.max()))
    return worst


def act_size(name: str, z: np.ndarray, a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The size of the activation's backward: ``|f'(z)| * m``, with the subtraction in
    a derivative taken from the output (sigmoid: a - a^2, tanh: 1 - a^2) made an addition,
    and gelu's too: its 1 + t and 1 - t^2 cancel where z is negative, and its two terms
    cancel each other near z = -0.75 (where the derivative is 0)."""
    if name == "softmax":  # dz = a * (d - sum(a * d)), over the outputs of a 2-D batch
        return a * (m + np.sum(a * m, axis=1, keepdims=True))
    if name == "sigmoid":
        return (np.abs(a) + a * a) * m
    if name == "tanh":
        return (1 + a * a) * m
    if name == "gelu":  # 0.5 (1 + t) + 0.5 z (1 - t^2) c (1 + 3k z^2): both cancel
        c, k = zn.activations.GELU_C, zn.activations.GELU_K
        t = np.tanh(c * (z + k * z ** 3))
        slope = c * (1 + 3 * k * z * z)
        return (0.5 * (1 + np.abs(t)) + 0.5 * np.abs(z) * (1 + t * t) * slope) * m
    tz = torch.tensor(z, requires_grad=True)
    TORCH_ACT[name](tz).sum().backward()
    return np.abs(tz.grad.numpy()) * m


def input_sizes(stack: TorchStack, masks: list[np.ndarray | None]) -> list[np.ndarray]:
    """The size rounding works at in each layer's input of the last torch pass, at least
    its value: the forward pass with every subtraction made an addition (``|x|·|W| + |b|``,
    ``act_size`` for an activation, the normalizations' ``(|x| + |mean|)·inv_std``). A
    float32 gelu deep in its negative tail computes 0.5·z·(1 + t) with 1 + t pure
    rounding: the value is 0 or a few 1e-8, its size 0.5·|z|·(1 + |t|)."""
    sizes: list[np.ndarray] = []
    size = np.abs(stack.inputs[0].astype(np.float64))
    for layer, x, mask in zip(stack.net.layers, stack.inputs, masks):
        sizes.append(size)
        x = x.astype(np.float64)
        if isinstance(layer, (zn.Dense, zn.Activation)):
            if isinstance(layer, zn.Dense):
                W = layer.W.astype(np.float64)
                b = layer.b.astype(np.float64) if layer.use_bias else 0.0
                z, zsize = x @ W + b, size @ np.abs(W) + np.abs(b)
            else:
                z, zsize = x, size
            a = zn.ACTIVATIONS[layer.activation.name](z.copy())
            size = np.maximum(np.abs(a), act_size(layer.activation.name, z, a, zsize))
        elif isinstance(layer, zn.Dropout):
            size = size * mask if mask is not None else size
        else:  # BatchNorm (batch statistics: training) or LayerNorm
            axis = 0 if isinstance(layer, zn.BatchNorm) else 1
            mean = x.mean(axis=axis, keepdims=True)
            inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axis, keepdims=True) + layer.eps)
            size = ((size + np.abs(mean)) * inv_std * np.abs(layer.gamma.astype(np.float64))
                    + np.abs(layer.beta.astype(np.float64)))
    return sizes


def floors(stack: TorchStack, m: np.ndarray, skip_last_activation: bool,
           masks: list[np.ndarray | None]) -> tuple[list[float], float]:
    """Per gradient (aligned with ``net.params``), the floor of the module doc, and dL/dX's
    (not a batch sum: not divided by N). ``m``: the size of dL/d(output) (or of dL/dz
    before the last activation with ``skip_last_activation``)."""
    net = stack.net
    n = m.shape[0]
    out: list[list[float]] = []
    skip = skip_last_activation
    for layer, x, mask, x_size in zip(reversed(net.layers), reversed(stack.inputs),
                                      reversed(masks), reversed(input_sizes(stack, masks))):
        x = x.astype(np.float64)
        mine: list[float] = []
        if isinstance(layer, (zn.Dense, zn.Activation)):
            if isinstance(layer, zn.Dense):
                z = x @ layer.W.astype(np.float64) + (layer.b if layer.use_bias else 0.0)
            else:
                z = x
            if not skip:
                a = zn.ACTIVATIONS[layer.activation.name](z.copy())
                m = act_size(layer.activation.name, z, a, m)
            skip = False
            if isinstance(layer, zn.Dense):
                mine.append(float((x_size.T @ m).max()) / n)
                if layer.use_bias:
                    mine.append(float(m.sum(axis=0).max()) / n)
                m = m @ np.abs(layer.W.astype(np.float64)).T
        elif isinstance(layer, zn.Dropout):
            if mask is not None:
                m = m * mask
        else:  # BatchNorm (batch statistics: training) or LayerNorm
            axis = 0 if isinstance(layer, zn.BatchNorm) else 1
            mean = x.mean(axis=axis, keepdims=True)
            inv_std = 1 / np.sqrt(((x - mean) ** 2).mean(axis=axis, keepdims=True) + layer.eps)
            xhat = (np.abs(x) + np.abs(mean)) * inv_std  # the size of (x - mean) * inv_std
            mine += [float((m * xhat).sum(axis=0).max()) / n, float(m.sum(axis=0).max()) / n]
            dxh = m * np.abs(layer.gamma.astype(np.float64))
            m = (dxh + dxh.mean(axis=axis, keepdims=True)
                 + xhat * (dxh * xhat).mean(axis=axis, keepdims=True)) * inv_std
        out.append(mine)
    return [f for mine in reversed(out) for f in mine], float(m.max())


def loss_size(loss: str, out: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The size of dL/d(output), or of dL/dz at the logits for the cross-entropies."""
    n = out.shape[0]
    a, t = np.abs(out.astype(np.float64)), np.abs(y.astype(np.float64))
    if loss.endswith("crossentropy"):  # (p - y) / N
        return (a + t) / n
    size = out.size
    if loss == "mse":
        return 2 * (a + t) / size
    if loss == "mae":
        return np.ones_like(a) / size
    return np.minimum(a + t, 1.0) / size  # huber, delta = 1


def loss_floor(loss: str, out: np.ndarray, y: np.ndarray) -> float:
    """The size a regression loss's rounding works at: its first-order change for each
    output's own rounding, the sum of |dL/da|·|a| (a loss near 0 is a - y cancelling; the
    cross-entropies are sums of positive terms and need no floor)."""
    if loss.endswith("crossentropy"):
        return 0.0
    return float(np.sum(loss_size(loss, out, y) * np.abs(out.astype(np.float64))))


def param_labels(net: zn.Network) -> list[str]:
    return [f"{name}{i + 1}" for i, layer in enumerate(net.layers) for name in layer.param_names]


def check_running_stats(parity: Any, group: str, net: zn.Network, stack: Any, tol: float,
                        arch: str) -> None:
    """Running statistics against torch's (``stack``: this suite's or the convolution
    suite's, holding the inputs of its last pass). Floors: the size of the values
    averaged in that pass (mean |x| for the mean, mean x^2 for the variance). A mean can
    cancel to near 0, and a channel can be constant (a convolution whose windows there see
    only padding gives its bias): its batch variance is 0, and each framework's is
    rounding noise of that size."""
    for i, (ours, theirs) in enumerate(zip(net.states(), stack.state())):
        if not ours:
            continue
        x = stack.inputs[i].astype(np.float64)
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        parity.check(group, ours["running_mean"], theirs["running_mean"], tol,
                     f"running_mean{i + 1} of {arch}",
                     floor=float(np.abs(x).mean(axis=axes).max()))
        parity.check(group, ours["running_var"], theirs["running_var"], tol,
                     f"running_var{i + 1} of {arch}",
                     floor=float(np.square(x).mean(axis=axes).max()))
        assert int(ours["num_batches_tracked"]) == int(theirs["num_batches_tracked"]), arch


# -- one training step ---------------------------------------------------------------------
def _check_step(parity: Any, prob: dict[str, Any], loss: str, dtype: str, tol: float) -> None:
    net: zn.Network = prob["net"]
    X, y = prob["X"], prob["y"]
    arch = f"{net!r} n={X.shape[0]} {loss}"
    stack = TorchStack(net)
    rng = np.random.default_rng(prob["seed"])
    G = rng.standard_normal((X.shape[0], *net.output_shape)).astype(dtype)

    # zeronn: a training forward pass, backward from G; then a training step's gradients,
    # with the generator reset so it draws the same dropout masks.
    net.set_rng(np.random.default_rng(prob["seed"]))
    out = net.forward(X, training=True)
    masks = [layer.mask.copy() if isinstance(layer, zn.Dropout) and layer.mask is not None
             and layer.rate > 0 else None for layer in net.layers]
    for layer, mask in zip(net.layers, masks):
        if mask is not None:  # 0 or 1 / (1 - rate), in the network's dtype
            assert isinstance(layer, zn.Dropout) and mask.dtype == np.dtype(dtype)
            assert set(np.unique(mask)) <= {0, np.dtype(dtype).type(1 / (1 - layer.rate))}
    dX = net.backward(G)
    backward_grads = [g.copy() for g in net.grads]
    net.set_rng(np.random.default_rng(prob["seed"]))
    value, grads = net.loss_and_gradients(X, y, loss, training=True)
    for layer, mask in zip(net.layers, masks):
        if mask is not None:
            assert isinstance(layer, zn.Dropout)
            np.testing.assert_array_equal(layer.mask, mask)
    assert out.dtype == np.dtype(dtype) and all(g.dtype == np.dtype(dtype) for g in grads)

    # torch: the same two passes.
    Xt = torch.tensor(X, requires_grad=True)
    tout, _ = stack(Xt, masks, training=True)
    if dtype == "float32":
        assume(bn_condition(net.layers, stack.inputs) <= BN_CONDITION)
        if loss == "mae":  # sign(a - y) jumps at a == y
            assume(np.array_equal(out > y, tout.detach().numpy() > y))
    tout.backward(torch.tensor(G))
    assert Xt.grad is not None
    b_floors, dx_floor = floors(stack, np.abs(G.astype(np.float64)), False, masks)
    parity.check(f"layers {dtype} forward", out, tout.detach().numpy(), tol, arch)
    parity.check(f"layers {dtype} backward", dX, Xt.grad.numpy(), tol, f"dX of {arch}",
                 floor=dx_floor)
    names = param_labels(net)
    for name, g, tg, floor in zip(names, backward_grads, stack.grads(), b_floors):
        parity.check(f"layers {dtype} backward", g, tg, tol, f"{name} of {arch}", floor=floor)
    stack.zero_grad()
    tout, tlogits = stack(torch.tensor(X), masks, training=True)
    tvalue = torch_loss(loss, tout, tlogits, torch.tensor(y))
    tvalue.backward()
    parity.check(f"layers {dtype} loss", np.float64(value), np.float64(tvalue.item()), tol, arch,
                 floor=loss_floor(loss, tout.detach().numpy(), y))
    fused = loss.endswith("crossentropy")
    l_floors, _ = floors(stack, loss_size(loss, tout.detach().numpy(), y), fused, masks)
    tgrads = stack.grads()
    assert len(grads) == len(tgrads) == len(names)
    for name, g, tg, floor in zip(names, grads, tgrads, l_floors):
        parity.check(f"layers {dtype} gradients", g, tg, tol, f"{name} of {arch}",
                     floor=floor)
    # Two training passes each: the running statistics moved twice.
    check_running_stats(parity, f"layers {dtype} running stats", net, stack, tol, arch)
    with torch.no_grad():
        teval, _ = stack(torch.tensor(X), masks, training=False)
    parity.check(f"layers {dtype} eval", net.predict(X), teval.numpy(), tol, arch)


@pytest.mark.parametrize("loss, output", PAIRS, ids=[_pair_id(p) for p in PAIRS])
@pytest.mark.parametrize("dtype, tol", DTYPES, ids=["float64", "float32"])
def test_random_stacks_match_torch(parity: Any, dtype: str, tol: float, loss: str,
                                   output: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prob=stacks(loss, output, dtype))
    def run(prob: dict[str, Any]) -> None:
        _check_step(parity, prob, loss, dtype, tol)

    run()


# -- several steps of fit ------------------------------------------------------------------
# Adam with eps = 1e-3: a gradient that is 0 in exact arithmetic (a Dense bias before a
# BatchNorm, a BatchNorm's beta before another) comes out as rounding noise, different in
# each framework, which Adam's division by sqrt(v) + eps would blow up to full-size steps.
# In float32 that noise (~1e-7 of the gradient's terms) still moves such parameters by
# ~lr * 1e-4 per step in directions of its own, so Adam is compared in float64 only;
# SGD moves them by lr * noise.
SGD_ = (lambda: zn.optim.SGD(lr=0.05, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9))
ADAM = (lambda: zn.optim.Adam(lr=0.01, eps=1e-3),
        lambda ps: torch.optim.Adam(ps, lr=0.01, eps=1e-3))
FIT_CASES = [pytest.param("float64", F64_TOL, SGD_, id="float64-SGD"),
             pytest.param("float64", F64_TOL, ADAM, id="float64-Adam"),
             pytest.param("float32", F32_TOL, SGD_, id="float32-SGD")]


def scale_invariant(output: str, dtype: str) -> dict[str, Any]:
    """A ``stacks`` problem whose first BatchNorm's gamma and beta have gradients of 0 in
    exact arithmetic (hypothesis found one like it): a later BatchNorm undoes any scale
    and shift of the bias-free Dense chain between them. Each framework moves them by its
    own rounding noise: beta1, which starts at 0, ends O(1) apart relatively (SGD), and
    Adam makes the noise full steps (2.0 apart in gamma1)."""
    net = zn.Sequential(
        [zn.BatchNorm(momentum=0.1), zn.Dense(1, use_bias=False), zn.Dense(4, use_bias=False),
         zn.BatchNorm(momentum=0.1), zn.BatchNorm(momentum=0.1, eps=1e-3),
         zn.Dense(2 if output == "softmax" else 1, output)], input_dim=1, dtype=dtype, seed=0)
    rng = np.random.default_rng(0)
    X = 2 * rng.standard_normal((8, 1))
    y = np.eye(2)[rng.integers(0, 2, 8)] if output == "softmax" else 2 * rng.standard_normal((8, 1))
    return {"net": net, "X": X.astype(dtype), "y": y.astype(dtype), "seed": 0}


@pytest.mark.parametrize("loss, output", [PAIRS[2], PAIRS[4]],
                         ids=[_pair_id(p) for p in (PAIRS[2], PAIRS[4])])
@pytest.mark.parametrize("dtype, tol, opt", FIT_CASES)
def test_fit_matches_torch_optim(parity: Any, dtype: str, tol: float, loss: str, output: str,
                                 opt: Any) -> None:
    # Dropout only at rate 0 here (no masks to share across steps); batches of 3 to 6 rows
    # in order, 3 epochs: BatchNorm's running statistics move once per batch.
    make_ours, make_theirs = opt

    @settings(max_examples=FIT_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prob=stacks(loss, output, dtype, rates=(0.0,), n_min=8, ln_min_width=3),
           bs=st.integers(3, 6))
    @example(prob=scale_invariant(output, dtype), bs=4)
    def run(prob: dict[str, Any], bs: int) -> None:
        net: zn.Sequential = prob["net"]
        X, y = prob["X"], prob["y"]
        n = X.shape[0]
        # BatchNorm refuses a training batch of one row, and over two its output is
        # +-gamma + beta whatever the input: the gradient through it is rounding noise.
        assume(n % bs not in (1, 2))
        masks: list[np.ndarray | None] = [None] * len(net.layers)
        arch = f"{net!r} n={n} bs={bs} {loss}"
        epochs = 3

        def train(stack: TorchStack, X: np.ndarray, y: np.ndarray) -> float:
            """torch's run; returns the worst ``bn_condition`` it met."""
            topt = make_theirs(stack.parameters())
            condition = 0.0
            for _ in range(epochs):
                for s in range(0, n, bs):
                    topt.zero_grad()
                    tout, tlogits = stack(torch.tensor(X[s:s + bs]), masks, training=True)
                    condition = max(condition, bn_condition(net.layers, stack.inputs))
                    torch_loss(loss, tout, tlogits, torch.tensor(y[s:s + bs])).backward()
                    topt.step()
            return condition

        stack = TorchStack(net)
        condition = train(stack, X, y)
        if dtype == "float32":
            assume(condition <= BN_CONDITION)
        # A run whose result is rounding noise magnified cannot be compared to the
        # tolerance, so torch trains a twin in the other dtype on the same weights and
        # batches. float32: near the step size's stability limit, differences grow at each
        # step; its own float32 run must stay within a quarter of the tolerance from the
        # float64 one. float64: a gradient that is 0 in exact arithmetic (gamma and beta of
        # a BatchNorm whose scale and shift a later BatchNorm undoes) is each framework's
        # rounding noise, which moves a parameter near 0 by its own size and which Adam
        # scales to full steps; the float32 twin then lands O(1) away.
        twin = TorchStack(net)
        other = np.float64 if dtype == "float32" else np.float32
        for m in twin.modules:
            if m is not None:
                m.to(getattr(torch, np.dtype(other).name))
        train(twin, X.astype(other), y.astype(other))
        with torch.no_grad():
            teval = stack(torch.tensor(X), masks, training=False)[0].numpy()
            spread = [relative_error(a, b) for a, b in
                      zip(stack.as_zeronn(stack.parameters()),
                          twin.as_zeronn(twin.parameters()))]
            spread.append(relative_error(
                teval, twin(torch.tensor(X.astype(other)), masks, training=False)[0].numpy()))
        assume(max(spread, default=0.0) <= (tol / 4 if dtype == "float32" else 1e-2))
        net.fit(X, y, loss=loss, optimizer=make_ours(), epochs=epochs, batch_size=bs,
                shuffle=False)
        group = f"layers {dtype} fit"
        with torch.no_grad():
            theirs = stack.as_zeronn(stack.parameters())
            for name, p, expected in zip(param_labels(net), net.params, theirs):
                parity.check(group, p, expected, tol, f"{name} of {arch}")
            check_running_stats(parity, group, net, stack, tol, arch)
        parity.check(group, net.predict(X), teval, tol, f"predict of {arch}")

    run()
