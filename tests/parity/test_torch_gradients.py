"""zeronn's forward pass, losses and gradients against PyTorch autograd.

For random architectures drawn by hypothesis (1 to 5 layers, widths 1 to 64, batches of
1 to 64, one random hidden activation per layer), zeronn's ``MLP`` and the same network
written by hand in ``torch.nn.functional`` get the same weights and data; outputs, loss
values and every parameter gradient must agree to a relative ``F64_TOL`` in float64 and
``F32_TOL`` in float32 (metric: ``conftest.relative_error``). Then edge values: logits of
+-1000, saturated sigmoid/tanh, and the exact kinks (ReLU's derivative at 0 is 0).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

import torch.nn.functional as F  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402

# float64: both frameworks round differently (BLAS summation order, fused kernels) but
# only at the ~1e-16 level; 1e-10 leaves room for depth 5 and width 64, nothing more.
F64_TOL = 1e-10
# float32: eps is 1.2e-7; a product of 5 layers of 64-term sums, with saturating
# activations, grows the ulp-level differences to ~1e-5 at worst: 1e-4 (~840 eps).
F32_TOL = 1e-4

HIDDEN = ("identity", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softplus",
          "softmax")
KINKED = ("relu", "leaky_relu")  # derivative jumps at 0: float32 rounding may flip a side

TORCH_ACT: dict[str, Callable[[Any], Any]] = {
    "identity": lambda z: z,
    "relu": F.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
    "elu": lambda z: F.elu(z, alpha=1.0),
    "gelu": lambda z: F.gelu(z, approximate="tanh"),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softplus": lambda z: F.softplus(z, beta=1.0, threshold=20.0),
    "softmax": lambda z: F.softmax(z, dim=1),
}

# (loss, output activation): every pair zeronn supports.
# Examples per (dtype, loss) case; raise it for a deeper search, e.g. ZERONN_PARITY_EXAMPLES=500.
EXAMPLES = int(os.environ.get("ZERONN_PARITY_EXAMPLES", "30"))

PAIRS = [("mse", "identity"), ("mae", "identity"), ("huber", "identity"),
         ("binary_crossentropy", "sigmoid"), ("categorical_crossentropy", "softmax")]


def torch_loss(name: str, out: Any, logits: Any, y: Any) -> Any:
    """The torch counterpart of zeronn's loss ``name``. Regression: means over all
    elements; cross-entropies: sums over outputs, means over samples (sum / N)."""
    n = y.shape[0]
    if name == "mse":
        return F.mse_loss(out, y)
    if name == "mae":
        return F.l1_loss(out, y)
    if name == "huber":
        return F.huber_loss(out, y, delta=1.0)
    if name == "binary_crossentropy":
        return F.binary_cross_entropy_with_logits(logits, y, reduction="sum") / n
    if name == "categorical_crossentropy":
        return F.cross_entropy(logits, y, reduction="sum") / n  # y: class probabilities
    raise AssertionError(name)


def torch_run(params: list[np.ndarray], hidden: list[str], output: str, X: np.ndarray,
              y: np.ndarray, loss: str) -> dict[str, Any]:
    """The network by hand in torch.

    Returns ``out``, ``loss``, ``grads`` (aligned with params), ``zs`` (hidden
    pre-activations) and ``floors``: per gradient, the mean size of one of the N terms
    it sums (``conftest.relative_error``)."""
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    h = torch.tensor(X)
    inputs, zs = [], []
    for i in range(0, len(ps), 2):
        inputs.append(h)
        z = h @ ps[i] + ps[i + 1]  # W (fan_in, fan_out), b (1, fan_out), as zeronn's
        z.retain_grad()
        zs.append(z)
        h = TORCH_ACT[hidden[i // 2]](z) if i + 2 < len(ps) else z
    logits = zs[-1]
    out = TORCH_ACT[output](logits)
    value = torch_loss(loss, out, logits, torch.tensor(y))
    value.backward()
    n = X.shape[0]
    floors = []
    for x, z in zip(inputs, zs):
        dz = z.grad.abs()
        floors.append(float((x.detach().abs().T @ dz).max()) / n)
        floors.append(float(dz.sum(dim=0).max()) / n)
    return {"out": out.detach().numpy(), "loss": value.item(),
            "grads": [p.grad.numpy() for p in ps], "floors": floors,
            "zs": [z.detach().numpy() for z in zs[:-1]]}


@st.composite
def problems(draw: st.DrawFn, loss: str, output: str) -> dict[str, Any]:
    """A random network (weights included), batch and targets for one loss/output pair."""
    depth = draw(st.integers(1, 5), label="layers")
    sizes = draw(st.lists(st.integers(1, 64), min_size=depth + 1, max_size=depth + 1),
                 label="sizes")
    hidden = draw(st.lists(st.sampled_from(HIDDEN), min_size=depth - 1, max_size=depth - 1),
                  label="hidden")
    n = draw(st.integers(1, 64), label="batch")
    w_scale = draw(st.sampled_from([0.5, 1.0, 2.0]), label="weight scale")
    zero_bias = draw(st.booleans(), label="zero biases")  # zeronn's own init: b = 0
    soft = draw(st.booleans(), label="soft targets")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    params = []
    for fi, fo in zip(sizes[:-1], sizes[1:]):
        params.append(rng.standard_normal((fi, fo)) * (w_scale / np.sqrt(fi)))
        params.append(np.zeros((1, fo)) if zero_bias else rng.standard_normal((1, fo)) * 0.5)
    X = rng.standard_normal((n, sizes[0]))
    k = sizes[-1]
    if loss == "binary_crossentropy":
        y = rng.uniform(size=(n, k)) if soft else rng.integers(0, 2, (n, k)).astype(float)
    elif loss == "categorical_crossentropy":
        y = rng.dirichlet(np.ones(k), n) if soft else np.eye(k)[rng.integers(0, k, n)]
    else:
        y = rng.standard_normal((n, k)) * 2.0  # huber: both sides of delta = 1
    return {"sizes": sizes, "hidden": hidden, "params": params, "X": X, "y": y}


def _relu_sides_agree(net_params: list[np.ndarray], prob: dict[str, Any], output: str,
                      dtype: str, zs: list[np.ndarray]) -> bool:
    """False if float32 rounding put a ReLU-family input on different sides of 0 in the two
    frameworks (the derivative jumps there, so the gradients legitimately differ).

    zeronn's side of each hidden layer comes from a truncated copy of the network; only
    disagreements where torch's |z| is within 1e-3 of the layer's scale count as rounding,
    so a wrong ReLU still fails."""
    X = prob["X"]
    for i, act in enumerate(prob["hidden"]):
        if act not in KINKED:
            continue
        sub = zn.MLP(prob["sizes"][:i + 2], prob["hidden"][:i], output_activation=act,
                     init=net_params[:2 * i + 2], dtype=dtype)
        ours = sub.predict(X) > 0
        theirs = zs[i] > 0
        differ = ours != theirs
        if differ.any():
            scale = np.max(np.abs(zs[i]))
            if np.max(np.abs(zs[i][differ])) <= 1e-3 * scale:
                return False
    return True


def _check_network(parity: Any, prob: dict[str, Any], loss: str, output: str,
                   dtype: str, tol: float) -> None:
    params = [p.astype(dtype) for p in prob["params"]]
    X, y = prob["X"].astype(dtype), prob["y"].astype(dtype)
    net = zn.MLP(prob["sizes"], prob["hidden"], output_activation=output, init=params,
                 dtype=dtype)
    ref = torch_run(params, prob["hidden"], output, X, y, loss)
    if dtype == "float32":
        assume(_relu_sides_agree(params, prob, output, dtype, ref["zs"]))
        if loss == "mae":  # sign(a - y) jumps at a == y
            assume(np.array_equal(net.predict(X) > y, ref["out"] > y))
    value, grads = net.loss_and_gradients(X, y, loss)
    out = net.predict(X)
    assert out.dtype == np.dtype(dtype) and all(g.dtype == np.dtype(dtype) for g in grads)
    arch = f"{prob['sizes']} {prob['hidden']}->{output} n={X.shape[0]} {loss}"
    parity.check(f"{dtype} forward", out, ref["out"], tol, arch)
    parity.check(f"{dtype} forward", net.forward(X), ref["out"], tol, arch)
    parity.check(f"{dtype} loss", np.float64(value), np.float64(ref["loss"]), tol, arch)
    assert len(grads) == len(ref["grads"])
    for i, (g, tg, floor) in enumerate(zip(grads, ref["grads"], ref["floors"])):
        name = f"{'Wb'[i % 2]}{i // 2 + 1}"
        parity.check(f"{dtype} gradients", g, tg, tol, f"{name} of {arch}", floor=floor)


def _pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[1]}+{pair[0]}"


@pytest.mark.parametrize("loss, output", PAIRS, ids=[_pair_id(p) for p in PAIRS])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_random_networks_match_torch(parity: Any, dtype: str, loss: str, output: str) -> None:
    tol = F64_TOL if dtype == "float64" else F32_TOL

    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prob=problems(loss, output))
    def run(prob: dict[str, Any]) -> None:
        _check_network(parity, prob, loss, output, dtype, tol)

    run()


def test_every_hidden_activation_has_a_torch_counterpart() -> None:
    # The hypothesis draws above cover exactly zeronn's built-in activations.
    assert set(HIDDEN) == set(TORCH_ACT)
    assert all(name in zn.ACTIVATIONS for name in HIDDEN)
