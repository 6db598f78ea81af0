"""zeronn's forward pass, losses and gradients against PyTorch autograd.

For random architectures drawn by hypothesis (1 to 5 layers, widths 1 to 64, batches of
1 to 64, one random hidden activation per layer), zeronn's ``MLP`` and the same network
written by hand in ``torch.nn.functional`` get the same weights and data; outputs, loss
values and every parameter gradient must agree to a relative ``F64_TOL`` in float64 and
``F32_TOL`` in float32 (metric: ``conftest.relative_error``). Then edge values: logits of
+-1000, saturated sigmoid/tanh, and the exact kinks (ReLU's derivative at 0 is 0).
"""

from __future__ import annotations

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
from conftest import examples  # noqa: E402

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
EXAMPLES = examples(30, "ZERONN_PARITY_EXAMPLES")

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
        if z is logits and loss.endswith("crossentropy"):
            # dz = (p - y) / N cancels where p ~ y (a confident right answer), and p holds
            # an ulp of rounding relative to 1: the summands' size before cancelling.
            dz = (out.detach().abs() + torch.tensor(np.abs(y))) / n
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
                   dtype: str, tol: float, group: str = "") -> list[np.ndarray]:
    """Compares forward, loss and gradients; records them under ``group`` (default: dtype
    and what is compared). Returns zeronn's gradients.

    Without ``group`` (the hypothesis tests), float32 examples whose rounding put a kink's
    input on different sides in the two frameworks are rejected with ``assume``."""
    params = [p.astype(dtype) for p in prob["params"]]
    X, y = prob["X"].astype(dtype), prob["y"].astype(dtype)
    net = zn.MLP(prob["sizes"], prob["hidden"], output_activation=output, init=params,
                 dtype=dtype)
    ref = torch_run(params, prob["hidden"], output, X, y, loss)
    if dtype == "float32" and not group:
        assume(_relu_sides_agree(params, prob, output, dtype, ref["zs"]))
        if loss == "mae":  # sign(a - y) jumps at a == y
            assume(np.array_equal(net.predict(X) > y, ref["out"] > y))
    value, grads = net.loss_and_gradients(X, y, loss)
    out = net.predict(X)
    assert out.dtype == np.dtype(dtype) and all(g.dtype == np.dtype(dtype) for g in grads)
    arch = f"{prob['sizes']} {prob['hidden']}->{output} n={X.shape[0]} {loss}"
    assert np.isfinite(value) and np.isfinite(out).all()
    parity.check(group or f"{dtype} forward", out, ref["out"], tol, arch)
    parity.check(group or f"{dtype} forward", net.forward(X), ref["out"], tol, arch)
    parity.check(group or f"{dtype} loss", np.float64(value), np.float64(ref["loss"]), tol,
                 arch)
    assert len(grads) == len(ref["grads"])
    for i, (g, tg, floor) in enumerate(zip(grads, ref["grads"], ref["floors"])):
        name = f"{'Wb'[i % 2]}{i // 2 + 1}"
        parity.check(group or f"{dtype} gradients", g, tg, tol, f"{name} of {arch}",
                     floor=floor)
    return grads


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


# -- edge values ------------------------------------------------------------------------
DTYPES_TOL = [("float64", F64_TOL), ("float32", F32_TOL)]


@pytest.mark.parametrize("dtype, tol", DTYPES_TOL, ids=["float64", "float32"])
@pytest.mark.parametrize("all_right", [False, True], ids=["mixed", "all-right"])
@pytest.mark.parametrize("scale", [1000.0, 40.0, 30.0, 10.0])
@pytest.mark.parametrize("loss, output", PAIRS[3:], ids=[_pair_id(p) for p in PAIRS[3:]])
def test_cross_entropies_at_extreme_logits(parity: Any, loss: str, output: str, scale: float,
                                           all_right: bool, dtype: str, tol: float) -> None:
    # Logits of +-scale straight into the output (W = I, b = 0 make z = X exactly); rows
    # confidently right, or half of them right and the rest random (so some confidently
    # wrong). A confident right answer has a loss near e^-scale: only a per-element
    # log-sigmoid / log-softmax (as torch computes it) keeps it; a difference of large
    # sums cancels it away.
    k, n = 3, 8
    rng = np.random.default_rng(int(scale))
    X = rng.choice([-scale, scale], (n, k))
    m = n if all_right else n // 2
    if not all_right:
        X[-1, 0] = 0.0  # and one logit at 0
    if loss == "categorical_crossentropy":
        X = rng.choice([-scale, 0.0], (n, k))
        X[np.arange(n), rng.integers(0, k, n)] = scale  # one clear winner in every row
        right = np.eye(k)[X.argmax(axis=1)]
        y = np.vstack([right[:m], np.eye(k)[rng.integers(0, k, n - m)]])
    else:
        right = (X > 0).astype(float)
        y = np.vstack([right[:m], rng.integers(0, 2, (n - m, k)).astype(float)])
    prob = {"sizes": [k, k], "hidden": [], "params": [np.eye(k), np.zeros((1, k))],
            "X": X, "y": y}
    _check_network(parity, prob, loss, output, dtype, tol, group=f"edge {dtype}")


def _saturated(act: str, seed: int) -> dict[str, Any]:
    """[k, k, 1] with W1 = I, b1 = 0: the hidden pre-activations are exactly X."""
    k, n = 6, 5
    rng = np.random.default_rng(seed)
    X = rng.choice([-50.0, 50.0, -20.0, 20.0, -1.0, 0.5], (n, k))
    return {"sizes": [k, k, 1], "hidden": [act],
            "params": [np.eye(k), np.zeros((1, k)), rng.standard_normal((k, 1)),
                       np.full((1, 1), 0.1)],
            "X": X, "y": rng.standard_normal((n, 1))}


@pytest.mark.parametrize("dtype, tol", DTYPES_TOL, ids=["float64", "float32"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "gelu", "elu"])
def test_saturated_hidden_units(parity: Any, act: str, dtype: str, tol: float) -> None:
    # Inputs of +-50 put sigmoid/tanh where the output rounds to 0 or +-1 (derivative 0
    # or ~1e-22); both frameworks take the derivative from the same output.
    _check_network(parity, _saturated(act, 1), "mse", "identity", dtype, tol,
                   group=f"edge {dtype}")


@pytest.mark.parametrize("dtype, tol", DTYPES_TOL, ids=["float64", "float32"])
@pytest.mark.parametrize("act", ["relu", "leaky_relu", "elu"])
def test_exact_kinks(parity: Any, act: str, dtype: str, tol: float) -> None:
    # Pre-activations exactly 0: ReLU's derivative there is 0 (the seed's relu_deriv and
    # torch's), leaky_relu's is the slope 0.01 (torch's), ELU's is 1 (continuous).
    prob = _saturated(act, 2)
    prob["X"][:, ::2] = 0.0
    prob["X"] = prob["X"][:1]  # one sample: dL/db1 is dL/dz1 itself, entry by entry
    prob["y"] = prob["y"][:1]
    grads = _check_network(parity, prob, "mse", "identity", dtype, tol, group=f"edge {dtype}")
    db1 = grads[1][0]
    dz_over_da = prob["params"][2][:, 0] * grads[3][0, 0]  # dL/da1 = W2 dL/dz2
    slope = {"relu": 0.0, "leaky_relu": 0.01, "elu": 1.0}[act]
    np.testing.assert_allclose(db1[::2], (slope * dz_over_da[::2]).astype(dtype), rtol=tol,
                               atol=0)
    if act == "relu":
        assert (db1[::2] == 0).all()


EDGE_POINTS = {
    "float64": [0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, 1.0, -1.0, 19.999999, 20.0,
                20.000001, 21.0, -20.0, 36.0, -36.0, 50.0, -50.0, 100.0, -100.0, 700.0, -700.0,
                1000.0, -1000.0],
    "float32": [0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 1.0, -1.0, 19.99, 20.0, 20.01, -20.0,
                50.0, -50.0],  # normal float32 results only (sigmoid(-100) is subnormal)
}


@pytest.mark.parametrize("dtype, tol", DTYPES_TOL, ids=["float64", "float32"])
@pytest.mark.parametrize("act", [a for a in HIDDEN if a != "softmax"])
def test_activation_values_and_derivatives_at_edge_points(parity: Any, act: str, dtype: str,
                                                          tol: float) -> None:
    # Entry by entry (no sums here, so each value must match on its own): f(z) and f'(z)
    # against torch's forward and autograd at kinks, thresholds and saturation. A
    # derivative taken from the output (sigmoid: a (1 - a), tanh: 1 - a^2) inherits the
    # output's last-bit rounding, which near saturation is large next to the derivative
    # itself (sigmoid'(20) = 2e-9 from a = 1 - 2e-9): it is measured against |f(z)| too.
    z = np.array(EDGE_POINTS[dtype], dtype=dtype).reshape(1, -1)
    fn = zn.ACTIVATIONS[act]
    tz = torch.tensor(z, requires_grad=True)
    ta = TORCH_ACT[act](tz)
    ta.sum().backward()
    assert tz.grad is not None
    ours_a, ours_d = fn(z), fn.derivative(z)
    for i, point in enumerate(z[0]):
        parity.check(f"edge {dtype}", ours_a[0, i], ta.detach().numpy()[0, i], tol,
                     f"{act}({point})")
        floor = abs(float(ta.detach().numpy()[0, i])) if act in ("sigmoid", "tanh") else 0.0
        parity.check(f"edge {dtype}", ours_d[0, i], tz.grad.numpy()[0, i], tol,
                     f"{act}'({point})", floor=floor)
