"""The sequence layers against ``torch.nn``: Embedding, RNN (tanh, relu), LSTM, GRU.

Hypothesis draws ``zn.Sequential`` stacks of one to three recurrent layers (all but the
last with ``return_sequences=True``, the last either way; units 1-8, with or without
biases), optionally behind an Embedding, over sequences of 1 to 30 steps, stateful or
not. The same stack is built from ``nn.Embedding``/``nn.RNN``/``nn.LSTM``/``nn.GRU``
(``batch_first=True``) with zeronn's parameters copied as they are (the layouts and
gate orders are torch's). Compared, to a relative ``F64_TOL`` (float64) or ``F32_TOL``
(float32), metric ``conftest.relative_error``:

- a training forward pass and the backward pass from a random dL/d(output): the
  output, dL/dX (not for ids) and every parameter's gradient (a weight gradient sums
  n·T terms, so its floor is the mean size of one, as in the other parity files);
- stateful stacks: a second batch, with torch given the first batch's final states
  detached (truncated BPTT), the same three things again;
- ``net.predict`` (a zero initial state, stateful or not) against torch in eval mode.

In float32 the ReLU RNN is left out, as in the other parity files: rounding may put a
pre-activation on the other side of the kink in one framework only.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is the oracle of the parity tests: pip install -e '.[parity]'")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import zeronn as zn  # noqa: E402
from conftest import examples  # noqa: E402

from .test_torch_gradients import F32_TOL, F64_TOL  # noqa: E402

# Examples per case (raise with ZERONN_PARITY_EXAMPLES, as the other parity files).
EXAMPLES = max(1, examples(30, "ZERONN_PARITY_EXAMPLES") // 4)

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")
DTYPES = [("float64", F64_TOL), ("float32", F32_TOL)]


def _layer(kind: str, units: int, **kw: Any) -> zn.Layer:
    if kind.startswith("rnn"):
        return zn.RNN(units, activation=kind[4:], **kw)
    return zn.LSTM(units, **kw) if kind == "lstm" else zn.GRU(units, **kw)


@st.composite
def stacks(draw: st.DrawFn, lead: str, dtype: str) -> dict[str, Any]:
    """A Sequential of recurrent layers (the first of kind ``lead``), maybe behind an
    Embedding, with its inputs: two batches X1, X2 and upstream gradients G1, G2."""
    kinds = KINDS if dtype == "float64" else tuple(k for k in KINDS if k != "rnn_relu")
    depth = draw(st.integers(1, 3), label="recurrent layers")
    stateful = draw(st.booleans(), label="stateful")
    T = draw(st.integers(1, 30), label="T")
    n = draw(st.integers(1, 6), label="batch")
    layers: list[zn.Layer] = []
    embed = draw(st.booleans(), label="embedding")
    if embed:
        vocab = draw(st.integers(1, 12), label="vocab")
        layers.append(zn.Embedding(vocab, draw(st.integers(1, 6), label="dim")))
        input_shape: tuple[int, ...] = (T,)
    else:
        input_shape = (T, draw(st.integers(1, 5), label="features"))
    for i in range(depth):
        kind = lead if i == 0 else draw(st.sampled_from(kinds))
        last = i == depth - 1
        layers.append(_layer(kind, draw(st.integers(1, 8), label="units"),
                             return_sequences=not last or draw(st.booleans()),
                             stateful=stateful, use_bias=draw(st.booleans())))
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    net = zn.Sequential(layers, input_shape=input_shape, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    if embed:
        X1, X2 = (rng.integers(0, vocab, (n, T)) for _ in range(2))
    else:
        X1, X2 = (rng.standard_normal((n, *input_shape)).astype(dtype) for _ in range(2))
    G1, G2 = (rng.standard_normal((n, *net.output_shape)).astype(dtype) for _ in range(2))
    return {"net": net, "X": (X1, X2), "G": (G1, G2), "embed": embed}


class TorchStack:
    """The modules of ``net`` in torch, parameters copied; carries the recurrent layers'
    final states (detached) from call to call when the layers are stateful."""

    def __init__(self, net: zn.Network) -> None:
        self.net = net
        dtype = getattr(torch, net.dtype.name)
        self.modules: list[Any] = []
        for layer in net.layers:
            with torch.no_grad():
                if isinstance(layer, zn.Embedding):
                    m = torch.nn.Embedding(layer.vocab_size, layer.dim, dtype=dtype)
                    m.weight.copy_(torch.tensor(layer.W))
                else:
                    cls = {zn.RNN: torch.nn.RNN, zn.LSTM: torch.nn.LSTM,
                           zn.GRU: torch.nn.GRU}[type(layer)]
                    kw = {"nonlinearity": layer.activation_name} if isinstance(
                        layer, zn.RNN) else {}
                    m = cls(layer.input_shape[1], layer.units, bias=layer.use_bias,
                            batch_first=True, dtype=dtype, **kw)
                    for name, p in zip(layer.param_names, layer.params):
                        getattr(m, name + "_l0").copy_(torch.tensor(p))
            self.modules.append(m)
        self.states: list[Any] = [None] * len(self.modules)

    def parameters(self) -> list[Any]:
        """In zeronn's order (``net.params``)."""
        return [m.weight if isinstance(layer, zn.Embedding) else getattr(m, name + "_l0")
                for layer, m in zip(self.net.layers, self.modules)
                for name in layer.param_names]

    def grads(self) -> list[np.ndarray]:
        return [p.grad.numpy() for p in self.parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def __call__(self, X: Any, carry: bool) -> Any:
        h = X
        for i, (layer, m) in enumerate(zip(self.net.layers, self.modules)):
            if isinstance(layer, zn.Embedding):
                h = m(h)
                continue
            h, state = m(h, self.states[i]) if carry else m(h)
            if carry and layer.stateful:
                self.states[i] = (tuple(s.detach() for s in state) if isinstance(state, tuple)
                                  else state.detach())
            if not layer.return_sequences:
                h = h[:, -1]
        return h


def _zeronn_pass(net: zn.Network, X: np.ndarray, G: np.ndarray,
                 embed: bool) -> tuple[np.ndarray, np.ndarray | None, list[np.ndarray]]:
    """A training forward pass and backward from G: (output, dX or None, gradients)."""
    out = net.forward(X, training=True)
    if not embed:
        dX: np.ndarray | None = net.backward(G)
    else:  # ids have no gradient: the first layer's backward writes dW only
        d: Any = G.copy()
        for i in range(len(net.layers) - 1, -1, -1):
            d = net.layers[i].backward(d, need_dx=i > 0)
        dX = None
    return out, dX, [g.copy() for g in net.grads]


def _check_pass(parity: Any, group: str, net: zn.Network, stack: TorchStack, X: np.ndarray,
                G: np.ndarray, embed: bool, tol: float, arch: str) -> None:
    out, dX, grads = _zeronn_pass(net, X, G, embed)
    assert out.dtype == net.dtype and all(g.dtype == net.dtype for g in grads)
    stack.zero_grad()
    Xt = torch.tensor(X) if embed else torch.tensor(X, requires_grad=True)
    tout = stack(Xt, carry=True)
    tout.backward(torch.tensor(G))
    parity.check(f"{group} forward", out, tout.detach().numpy(), tol, arch)
    if dX is not None:
        parity.check(f"{group} backward", dX, Xt.grad.numpy(), tol, f"dX of {arch}")
    labels = [f"{name}{i + 1}" for i, layer in enumerate(net.layers)
              for name in layer.param_names]
    for label, g, tg, floor in zip(labels, grads, stack.grads(), floors(net, X), strict=True):
        parity.check(f"{group} backward", g, tg, tol, f"d{label} of {arch}", floor=floor)


def floors(net: zn.Network, X: np.ndarray) -> list[float]:
    """Per gradient (aligned with ``net.params``), the mean size of one of its summands
    (``conftest.relative_error``): a weight gradient is a sum over the n·T steps of
    ``dA[t].T·x[t]`` (``h[t-1]`` for weight_hh), a bias gradient of ``dA[t]``; the sizes
    come from the last backward pass's dL/dA. Embedding (first, ``X`` its ids): a row is
    the sum over its id's tokens of the next layer's ``dA[t]·weight_ih`` (with a small
    vocabulary, many tokens that may cancel)."""
    out: list[float] = []
    for i, layer in enumerate(net.layers):
        if isinstance(layer, zn.Embedding):
            nxt = net.layers[i + 1]
            da = np.abs(nxt._buf.da.astype(np.float64))  # (T, n, G·H)
            rows = np.zeros((layer.vocab_size, da.shape[-1]))
            np.add.at(rows, X.T.reshape(-1), da.reshape(-1, da.shape[-1]))
            size = rows @ np.abs(nxt.weight_ih.astype(np.float64))
            out.append(float(size.max()) / X.size)
            continue
        w = layer._buf
        T, n = w.xs.shape[:2]
        da_in = np.abs(w.da.reshape(T * n, -1).astype(np.float64))
        da_hid = np.abs(getattr(w, "da_hid", w.da).reshape(T * n, -1).astype(np.float64))
        x = np.abs(w.xs.reshape(T * n, -1).astype(np.float64))
        h = np.abs(w.hs[:T].reshape(T * n, -1).astype(np.float64))
        sizes = [(da_in.T @ x).max(), (da_hid.T @ h).max(), da_in.sum(0).max(),
                 da_hid.sum(0).max()]
        out += [float(s) / (T * n) for s in sizes[:len(layer.param_names)]]
    return out


CASES = [pytest.param(dtype, tol, lead, id=f"{dtype}-{lead}") for dtype, tol in DTYPES
         for lead in KINDS if not (dtype == "float32" and lead == "rnn_relu")]


@pytest.mark.parametrize("dtype, tol, lead", CASES)
def test_random_recurrent_stacks_match_torch(parity: Any, dtype: str, tol: float,
                                             lead: str) -> None:
    @settings(max_examples=EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(prob=stacks(lead, dtype))
    def run(prob: dict[str, Any]) -> None:
        net: zn.Network = prob["net"]
        (X1, X2), (G1, G2), embed = prob["X"], prob["G"], prob["embed"]
        arch = f"{net!r} X{X1.shape}"
        stack = TorchStack(net)
        group = f"recurrent {dtype}"
        _check_pass(parity, group, net, stack, X1, G1, embed, tol, arch)
        if any(getattr(layer, "stateful", False) for layer in net.layers):
            # The second batch starts from the first's final states; no gradient crosses.
            _check_pass(parity, f"{group} stateful", net, stack, X2, G2, embed, tol,
                        f"second batch of {arch}")
        with torch.no_grad():
            teval = stack(torch.tensor(X2), carry=False)
        parity.check(f"{group} eval", net.predict(X2), teval.numpy(), tol, arch)

    run()


@pytest.mark.parametrize("dtype, tol", DTYPES)
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_few_epochs_of_training_equal_torchs(parity: Any, dtype: str, tol: float,
                                               optimizer: str) -> None:
    """A char model (Embedding -> LSTM -> GRU -> Dense softmax) trained by ``fit`` for 3
    epochs (batches in order, clip_grad_norm=0.5, SGD with momentum or Adam) and by a
    torch loop over the same batches (cross_entropy on the logits, clip_grad_norm_,
    torch.optim): the same epoch losses and the same weights after."""
    vocab, T, n, bs = 7, 9, 12, 4
    net = zn.Sequential([zn.Embedding(vocab, 5), zn.LSTM(6, return_sequences=True),
                         zn.GRU(5, return_sequences=True),
                         zn.Dense(vocab, activation="softmax")],
                        input_shape=(T,), dtype=dtype, seed=3)
    rng = np.random.default_rng(4)
    X, Y = rng.integers(0, vocab, (n, T)), rng.integers(0, vocab, (n, T))
    # The torch modules of the layers before the Dense head, their weights copied.
    stack = TorchStack(SimpleNamespace(layers=net.layers[:-1], dtype=net.dtype))
    head = net.layers[3]
    linear = torch.nn.Linear(5, vocab, dtype=getattr(torch, dtype))
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(head.W.T))
        linear.bias.copy_(torch.tensor(head.b.reshape(-1)))
    params = [*stack.parameters(), linear.weight, linear.bias]
    if optimizer == "sgd":
        ours: zn.optim.Optimizer = zn.optim.SGD(0.5, momentum=0.9)
        theirs = torch.optim.SGD(params, lr=0.5, momentum=0.9)
    else:
        ours, theirs = zn.optim.Adam(0.05), torch.optim.Adam(params, lr=0.05)
    hist = net.fit(X, Y, loss="categorical_crossentropy", optimizer=ours, epochs=3,
                   batch_size=bs, shuffle=False, clip_grad_norm=0.5, engine="numpy")
    assert max(hist["grad_norm"]) > 0.5  # the clipping acts
    for epoch in range(3):
        total = 0.0
        for s in range(0, n, bs):
            logits = linear(stack(torch.tensor(X[s:s + bs]), carry=False))
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                     torch.tensor(Y[s:s + bs]).reshape(-1))
            theirs.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 0.5)
            theirs.step()
            total += loss.item() * bs
        parity.check(f"recurrent {dtype} fit", hist["loss"][epoch], total / n, tol,
                     f"epoch {epoch + 1} loss, {optimizer}")
    for ours_p, their_p in zip(net.params, [*stack.parameters(), linear.weight.T,
                                            linear.bias.reshape(1, -1)]):
        parity.check(f"recurrent {dtype} fit", ours_p, their_p.detach().numpy(), tol,
                     f"weights after 3 epochs, {optimizer}")

