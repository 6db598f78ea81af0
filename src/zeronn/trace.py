"""Every intermediate of one forward and backward pass, under the seed's names.

``trace(net, X, y)`` recomputes one training pass of :meth:`Network.loss_and_gradients`
step by step with plain NumPy, layer by layer, in the order the engine computes it, and
hands back copies of everything: pre-activations, activations, the loss, the errors that
flow backwards and the parameter gradients. It uses the same activation and loss functions
as the engine; for Dense, Conv2D, pooling, Flatten, Activation, Dropout, BatchNorm and
LayerNorm layers on (n, features) rows it also takes the engine's order of operations, so
its gradients equal the engine's bit for bit (the NumPy engine's: a Conv2D that takes the
compiled direct route of ``zeronn.layers.conv``, and LayerNorm's compiled kernels, sum in
another order). The sequence layers
(Embedding, RNN, LSTM, GRU, MultiHeadAttention, ...) it writes as the books do, a loop
over time and one formula per line, not as the engine's fused, time-major buffers: the
sums run in another order, and the gradients agree to ~1e-15 of each array's largest
value in float64 (the tests hold them to 1e-12). It never touches the network (no weights,
gradients, running statistics, carried recurrent state, random generator or work buffers
change).

Names. With one hidden layer (the seed's 2-layer network, layers ``1`` and ``2``)::

    z1  = X·W1 + b1                        (n, hidden)    隠れ層の線形結合
    a1  = f1(z1)                           (n, hidden)    ReLU 活性化
    z2  = a1·W2 + b2                       (n, outputs)   出力層の線形結合
    a2  = f2(z2)                           (n, outputs)   the prediction y_pred
    loss                                   float          the chosen (mean) loss
    error_output = dL/dz2                  (n, outputs)   出力層の誤差
    dW2 = a1.T·error_output                (hidden, outputs)
    db2 = sum(error_output, axis=0)        (1, outputs)
    error_hidden = (error_output·W2.T) * f1'(z1)   (n, hidden)   隠れ層の誤差
    dW1 = X.T·error_hidden                 (inputs, hidden)
    db1 = sum(error_hidden, axis=0)        (1, hidden)

Any other stack of Dense layers (``L`` of them) uses ``z{i}``, ``a{i}`` for ``i = 1..L``,
then ``loss``, then from the output backwards ``delta{i}`` (= dL/dz{i}), ``dW{i}``,
``db{i}`` for ``i = L..1``, with ``a0 = X``. For the 2-layer network ``error_output`` is
``delta2`` and ``error_hidden`` is ``delta1``.

Other layers. ``i`` is always the layer's position in ``net.layers`` (from 1), and each
name says what kind of value it is, as in deep-learning-from-scratch's ``common/layers.py``
(``forward(x)`` keeps what ``backward(dout)`` needs and ``backward`` returns ``dx``)::

    Dense(k, f)      z{i} = x·W{i} + b{i}, a{i} = f(z{i}); back: delta{i}, dW{i}, db{i}
    Activation(f)    a{i} = f(x);                           back: dx{i} = dout * f'(x)
    Dropout(rate)    mask{i} = (u >= rate) / (1 - rate), u ~ U[0, 1);  dropout{i} = x * mask{i}
                                                            back: dx{i} = dout * mask{i}
    BatchNorm()      mean{i}, var{i} (over the batch, biased), xhat{i} = (x - mean{i}) /
                     sqrt(var{i} + eps), bn{i} = gamma{i} * xhat{i} + beta{i}
                     back: dgamma{i} = sum(dout * xhat{i}), dbeta{i} = sum(dout),
                     dxhat{i} = dout * gamma{i},
                     dx{i} = (dxhat{i} - mean(dxhat{i}) - xhat{i} * mean(dxhat{i} * xhat{i}))
                             / sqrt(var{i} + eps)
    LayerNorm()      the same with mean{i}, var{i} over each row's features (a sequence's:
                     each step's, see below): ln{i}
    Conv2D(k, f)     col{i} = im2col(x) (N*OH*OW, C*KH*KW), z{i} = col{i}·W{i}.reshape(k, -1).T
                     + b{i} as (N, k, OH, OW), a{i} = f(z{i})
                     back: delta{i} = dout * f'(z{i}), dW{i} = (col{i}.T·delta{i}) as
                     (k, C, KH, KW), db{i} = sum(delta{i}) (k,),
                     dcol{i} = delta{i}·W{i}.reshape(k, -1), dx{i} = col2im(dcol{i})
    MaxPool2D(p)     pool{i} = max of each window, arg{i} = where (first on ties)
                     back: dx{i} = dout routed to each window's arg{i}
    AvgPool2D(p)     pool{i} = mean of each window;         back: dx{i} = dout / (PH*PW) spread
    Flatten()        flat{i} = x.reshape(n, -1);            back: dx{i} = dout.reshape(x.shape)

(in Conv2D's formulas ``delta{i}`` is taken in the GEMM's layout (N*OH*OW, k); the trace
stores it, as ``z{i}``, in (N, k, OH, OW)).

Sequences. A sequence batch is (n, T, features). Dense, Activation and Dropout act on its
last axis, the n·T steps as the rows of the formulas above (``dW{i} = x.T·delta{i}`` sums
over every step, ``db{i}`` over axes (0, 1)); LayerNorm normalizes each step over its own
D features (``mean{i}``, ``var{i}`` (n, T, 1)) with gamma, beta (D,) summed over (0, 1).
The layers that only sequences have (H hidden units, G gate blocks, ``[:, t]`` step t,
``h[t-1]`` the previous step's state, h[-1] = c[-1] = 0)::

    Embedding(V, E)  emb{i} = W{i}[ids]  (n, T, E): the row of each token id
                     back: dW{i}[ids[b, t]] += dout[b, t]  (repeated ids add up; no dx:
                     ids have no gradient)
    PositionalEmbedding(L)  pos{i} = x + W{i}[:T];  back: dW{i}[:T] = sum(dout, axis=0),
                     dW{i}[T:] = 0, dx{i} = dout
    RNN(H, f)        z{i} = x[:, t]·weight_ih.T + bias_ih + h[t-1]·weight_hh.T + bias_hh,
                     h{i} = f(z{i})                            (n, T, H) each
    LSTM(H)          A = (the same sum, (n, 4H)); i{i}, f{i}, o{i} = sigmoid(A's i, f, o
                     blocks), g{i} = tanh(A's g block), c{i} = f{i} * c[t-1] + g{i} * i{i},
                     h{i} = o{i} * tanh(c{i})                  (torch's gate order i, f, g, o)
    GRU(H)           r{i}, z{i} = sigmoid(x[:, t]·weight_ih.T + bias_ih + h[t-1]·weight_hh.T
                     + bias_hh, r and z blocks), hn{i} = (h[t-1]·weight_hh.T + bias_hh)'s n
                     block, n{i} = tanh((x[:, t]·weight_ih.T + bias_ih)'s n block + r{i} *
                     hn{i}), h{i} = (1 - z{i}) * n{i} + z{i} * h[t-1]
                     Without return_sequences the output is hlast{i} = h{i}[:, -1] (n, H).
                     A stateful layer starts from the state it carries (``layer.state_h``,
                     LSTM's ``state_c``: where the network's next training pass starts; zeros
                     when it has none or the batch size differs), shown as hinit{i}, cinit{i}.
      back (BPTT, t = T-1 .. 0): dh{i} = dL/dh[t] (n, T, H): dout[:, t] (only at the last
                     step without return_sequences) + what step t + 1 hands back;
                     RNN   dz{i} = dh{i} * f'(z{i}) (tanh: 1 - h{i}², relu: z{i} > 0)
                     LSTM  dc{i} = dc[t+1] * f[t+1] + dh{i} * o{i} * (1 - tanh(c{i})²),
                           di{i} = dc{i} * g{i} * i{i}(1 - i{i}), df{i} = dc{i} * c[t-1] *
                           f{i}(1 - f{i}), dg{i} = dc{i} * i{i} * (1 - g{i}²),
                           do{i} = dh{i} * tanh(c{i}) * o{i}(1 - o{i})
                     GRU   dn{i} = dh{i} * (1 - z{i}) * (1 - n{i}²), dz{i} = dh{i} * (h[t-1] -
                           n{i}) * z{i}(1 - z{i}), dr{i} = dn{i} * hn{i} * r{i}(1 - r{i}),
                           dhn{i} = dn{i} * r{i}
                     with dA the gate errors side by side in the weights' order (RNN: dz;
                     LSTM: [di, df, dg, do]; GRU: [dr, dz, dn] on the input side and
                     [dr, dz, dhn] on the hidden side): dh[t-1] = dA_hidden[t]·weight_hh
                     (GRU: + dh[t] * z[t]), dweight_ih{i} = sum_t dA[t].T·x[:, t],
                     dweight_hh{i} = sum_t dA_hidden[t].T·h[t-1], dbias_ih{i} = sum(dA),
                     dbias_hh{i} = sum(dA_hidden), dx{i} = dA·weight_ih
    MultiHeadAttention(h)   heads of hd = C / h features; q{i}, k{i}, v{i} (n, h, T, hd)
                     = x·W_qkv + b_qkv's three C-column blocks, each split into h heads;
                     scores{i} = q{i}·k{i}^T / sqrt(hd) (n, h, T, T), -inf above the
                     diagonal when causal; att{i} = softmax(scores{i}) (rows sum to 1);
                     with dropout: att_mask{i} as Dropout's mask, att_drop{i} = att{i} *
                     att_mask{i}; y{i} = att{i}·v{i} (att_drop{i}·v{i}) with the heads merged
                     back to (n, T, C); mha{i} = y{i}·W_out + b_out (n, T, C)
                     back: dW_out{i} = y{i}.T·dout, db_out{i} = sum(dout), dy{i} =
                     dout·W_out.T; in heads: datt{i} = dy{i}·v{i}^T (* att_mask{i}),
                     dv{i} = att{i}^T·dy{i} (att_drop{i}), dscores{i} = att{i} * (datt{i} -
                     sum(datt{i} * att{i}, axis=-1)), dq{i} = dscores{i}·k{i} / sqrt(hd),
                     dk{i} = dscores{i}^T·q{i} / sqrt(hd); dqkv = [dq, dk, dv] merged to
                     (n·T, 3C): dW_qkv{i} = x.T·dqkv, db_qkv{i} = sum(dqkv),
                     dx{i} = dqkv·W_qkv.T

Composites. A Composite's or Residual's sublayers are traced under the layer's number and
their own place in it, counted from 1 as the network's layers are: the second sublayer
of layer 3 is ``3.2`` (``z3.2``, ``a3.2``, ``dW3.2``; a Composite inside it gives
``3.2.1``, ...). (The engine names that sublayer's parameters ``"1.W"``, counting from 0:
``Trace.grad_names`` lists the trace's name of every entry of ``net.grads``, in order.)
A Composite's output is its last sublayer's; a Residual adds ``res{i} = x + (its last
sublayer's output)``, and back ``dx{i} = dout + (the first sublayer's dx)``: the skip's
gradient and the stack's. Inside a stack the names follow the rules above, the stack's
first sublayer handing its dx to the sum (so it is named there).

``x`` is the layer's input (``X``, or the previous layer's output name) and ``dout`` the
gradient of the loss with respect to the layer's output. ``dx{i}`` is dL/dx, what layer
``i``'s backward returns and hands on to layer ``i - 1`` (so the first layer has none: the
engine does not compute dL/dX). Between two Dense layers it is not listed on its own: it is
the ``(delta{i}·W{i}.T)`` inside ``delta{i-1}``, as in the seed. Where the output layer
has no activation (a network ending in BatchNorm, say), ``dout{L}`` is dL/d(output). An
Activation layer at the output gives ``dx{L}``, dL/d(its input), directly from the loss.
``Trace.formulas`` holds the formula of every entry.

The pass is a training pass: Dropout draws its masks, BatchNorm uses the batch's statistics
(its running statistics are left as they are). The masks come from ``seed``: an int, a
``np.random.Generator`` (advanced), or ``None`` for a copy of the network's own generator,
so the masks are the ones the network's next training pass would draw.

Loss on sequences. An output (n, T, K) reaches the loss as its n·T steps, each a row
(the engine's ``batch_loss``): a mean over every step, with ``2/(N·T·K)`` for ``mse``
and ``/ (N·T)`` for the fused cross-entropies. For a softmax output, ``y`` may be class
indices (n, T) with ``-100`` (``IGNORE_INDEX``) marking steps to skip (padding): then
``delta{L} = (a{L} - onehot(y)) / M`` with M the number of steps that count, and 0 on
the skipped steps (torch's ``cross_entropy``). A sample weight weighs each of its steps.

The 2/N relationship. ``error_output`` is the gradient of the *mean* loss with respect
to the output layer's pre-activation ``z``. The seed's ``error_output = y_pred - y`` is
the gradient of the *summed* squared error divided by 2, so for ``mse`` with the identity
output (the seed's) this one is ``2 / (N·K) * (y_pred - y)`` (N samples, K outputs; the
seed's K = 1 gives 2/N), and every ``dW``, ``db`` here is 2/N times the seed's. For the
fused cross-entropies (sigmoid + binary_crossentropy, softmax + categorical_crossentropy)
it is ``(p - y) / N``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import check_sample_weight, normalized_weights
from zeronn.activations import get_activation
from zeronn.layers import (
    Activation,
    AvgPool2D,
    BatchNorm,
    Composite,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    Layer,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    PositionalEmbedding,
    Residual,
    TiedDense,
)
from zeronn.layers.conv import add_windows, col2im, im2col, windows
from zeronn.layers.recurrent import RNN, Recurrent
from zeronn.losses import IGNORE_INDEX, Loss
from zeronn.models import MLP
from zeronn.network import Network

__all__ = ["Trace", "trace"]

# The seed's names for the backward pass of a 2-layer network, by generic name.
SEED_NAMES = {"delta2": "error_output", "delta1": "error_hidden"}
_SIGMOID = get_activation("sigmoid")


class Trace(dict[str, Any]):
    """An ordered ``{name: array}`` of one pass (``"loss"`` is a float); see :mod:`zeronn.trace`.

    ``formulas[name]`` says how each entry was computed; ``str(trace)`` prints the table
    of names, shapes and formulas in the order of computation. ``model`` names the network
    (``"MLP([2, 5, 1])"``, or the network's ``repr``). ``grad_names`` lists the names of
    the parameter gradients in ``net.grads`` order (``[t[k] for k in t.grad_names]`` is
    ``net.loss_and_gradients(...)[1]``, recomputed).
    """

    def __init__(self, loss: str, model: str) -> None:
        super().__init__()
        self.loss_name = loss
        self.model = model
        self.formulas: dict[str, str] = {}
        #: the names of the parameter gradients, aligned with ``net.grads``
        self.grad_names: list[str] = []
        # A TiedDense's weight gradient (dim, vocab), for the Embedding whose W it shares.
        self._tied: list[tuple[str, NDArray]] = []

    def _add(self, name: str, value: Any, formula: str) -> None:
        self[name] = value
        self.formulas[name] = formula

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v:.6g}" if k == "loss" else f"{k}{tuple(np.shape(v))}" for k, v in self.items())
        return f"Trace({self.loss_name!r}, {self.model}: {items})"

    def __str__(self) -> str:
        width = max((len(k) for k in self), default=4)
        shapes = {k: f"{v:.6g}" if k == "loss" else str(tuple(np.shape(v)))
                  for k, v in self.items()}
        sw = max([12, *map(len, shapes.values())])  # (n, h, T, T) is wider than most
        lines = [f"trace of {self.loss_name} on {self.model}"]
        for k, shape in shapes.items():
            lines.append(f"  {k:<{width}}  {shape:<{sw}}  {self.formulas.get(k, '')}")
        return "\n".join(lines)


@dataclass
class _Step:
    """What one layer's forward pass keeps for its backward pass (the trace's own arrays)."""

    layer: Layer
    i: str  # position in net.layers, from 1 ("3"); a sublayer's is its path ("3.2")
    x: NDArray  # the input (n, *input_shape)
    x_name: str
    out: NDArray | None = None
    out_name: str = ""
    z: NDArray | None = None  # Dense: the pre-activation
    mask: NDArray | None = None  # Dropout
    xhat: NDArray | None = None  # BatchNorm, LayerNorm
    inv_std: NDArray | None = None
    axes: tuple[int, ...] = ()  # the axes the statistics average over
    col: NDArray | None = None  # Conv2D: im2col of the input
    arg: NDArray | None = None  # MaxPool2D: each window's arg-max
    keep: dict[str, NDArray] = field(default_factory=dict)  # recurrent, attention: caches
    subs: list[_Step] = field(default_factory=list)  # Composite, Residual: the sublayers'

    @property
    def logits(self) -> NDArray:
        """The input of the layer's final activation: z for Dense, x for Activation."""
        return self.z if self.z is not None else self.x


def _as_network(net: Any) -> Network:
    if isinstance(net, Network):
        return net
    if all(hasattr(net, k) for k in ("W1", "b1", "W2", "b2", "forward", "backward")):
        return MLP.from_classic(net)  # the seed's NN: same weights, same arithmetic
    raise ValueError(f"trace needs a zeronn network (zeronn.MLP, zeronn.Sequential) or a "
                     f"zeronn.classic.NN, got {type(net).__name__}: build one with "
                     f"zeronn.MLP([...])")


def _mask_generators(net: Network, seed: Any) -> Callable[[Layer], np.random.Generator]:
    """The generator each Dropout layer draws its mask from, leaving the network's alone."""
    if isinstance(seed, np.random.Generator):
        return lambda layer: seed
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, a np.random.Generator or "
                             f"None, got {seed!r}")
        gen = np.random.default_rng(seed)
        return lambda layer: gen
    copies: dict[int, np.random.Generator] = {}

    def copy_of(layer: Layer) -> np.random.Generator:
        # A copy of the layer's own generator: the masks of the network's next training
        # pass, and the network's stream is not advanced. Layers sharing one generator
        # share one copy, so they draw one after the other as in the engine.
        src = layer.rng if layer.rng is not None else net.rng
        if id(src) not in copies:
            copies[id(src)] = copy.deepcopy(src)
        return copies[id(src)]

    return copy_of


def _axes_text(axes: tuple[int, ...]) -> str:
    return f"axis={axes[0]}" if len(axes) == 1 else f"axis={axes}"


def _forward(out: Trace, s: _Step, rng_for: Callable[[Layer], np.random.Generator],
             last: bool) -> None:
    """Layer ``s.i``'s forward pass: the row-wise layers mirror the engine operation by
    operation, the sequence layers are written as the books write them (see the module
    docstring)."""
    layer, i, x, xn = s.layer, s.i, s.x, s.x_name
    pred = "  = y_pred" if last else ""
    if isinstance(layer, Dense):
        # 線形結合 z = x·W + b, then 活性化 a = f(z); a sequence's steps are the rows.
        z = np.dot(x.reshape(-1, x.shape[-1]), layer.W)
        if layer.use_bias:
            z += layer.b
        z = z.reshape(*x.shape[:-1], layer.units)
        a = layer.activation.forward(z, np.empty_like(z))
        s.z, s.out, s.out_name = z, a, f"a{i}"
        out._add(f"z{i}", z.copy(), f"{xn}·W{i} + b{i}" if layer.use_bias else f"{xn}·W{i}")
        out._add(s.out_name, a.copy(), f"{layer.activation.name}(z{i}){pred}")
    elif isinstance(layer, Conv2D):
        # im2col, then one GEMM (computed as its transpose, as the engine does).
        (ph, pw), fn = layer.padding, layer.filters
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        col = im2col(xp, layer.kernel_size, layer.stride)
        zt = np.dot(layer.W.reshape(fn, -1), col.T)
        if layer.use_bias:
            zt += layer.b[:, None]
        z = np.ascontiguousarray(zt.reshape(fn, x.shape[0], *layer.output_shape[1:])
                                 .transpose(1, 0, 2, 3))
        a = layer.activation.forward(z, np.empty_like(z))
        s.col, s.z, s.out, s.out_name = col, z, a, f"a{i}"
        out._add(f"col{i}", np.array(col), f"im2col({xn}, kernel={layer.kernel_size}, "
                 f"stride={layer.stride}, padding={layer.padding})")
        out._add(f"z{i}", z.copy(), f"col{i}·W{i}.reshape({fn}, -1).T"
                 + (f" + b{i}" if layer.use_bias else "") + ", as (N, FN, OH, OW)")
        out._add(s.out_name, a.copy(), f"{layer.activation.name}(z{i}){pred}")
    elif isinstance(layer, MaxPool2D):
        ph, pw = layer.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
        view = windows(xp, layer.pool_size, layer.stride)
        flat = view.reshape(*view.shape[:4], -1)
        s.arg = np.argmax(flat, axis=-1)  # the first maximum on ties
        s.out, s.out_name = np.max(flat, axis=-1), f"pool{i}"
        out._add(f"arg{i}", s.arg.copy(), f"argmax of each {layer.pool_size} window of {xn}")
        out._add(s.out_name, s.out.copy(), f"max of each {layer.pool_size} window of {xn}"
                 f"{pred}")
    elif isinstance(layer, AvgPool2D):
        ph, pw = layer.padding
        xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        view = windows(xp, layer.pool_size, layer.stride)
        total = view[..., 0, 0].copy()
        for k in range(1, layer.size):  # window values added in order, as the engine
            total += view[..., k // layer.pool_size[1], k % layer.pool_size[1]]
        s.out, s.out_name = total / layer.size, f"pool{i}"
        out._add(s.out_name, s.out.copy(), f"mean of each {layer.pool_size} window of {xn} "
                 f"(padding zeros count){pred}")
    elif isinstance(layer, Flatten):
        s.out, s.out_name = x.reshape(x.shape[0], -1).copy(), f"flat{i}"
        out._add(s.out_name, s.out.copy(), f"{xn}.reshape(n, -1){pred}")
    elif isinstance(layer, Activation):
        s.out, s.out_name = layer.activation.forward(x, np.empty_like(x)), f"a{i}"
        out._add(s.out_name, s.out.copy(), f"{layer.activation.name}({xn}){pred}")
    elif isinstance(layer, Dropout):
        rate = layer.rate
        mask = np.empty(x.shape, x.dtype)
        if rate > 0:  # the engine draws nothing at rate 0: neither does the trace
            rng_for(layer).random(dtype=mask.dtype, out=mask)
            np.multiply(mask >= rate, 1.0 / (1.0 - rate), out=mask)
            how = f"(u >= {rate:g}) / (1 - {rate:g}), u ~ U[0, 1)"
        else:
            mask.fill(1)
            how = "1  (rate 0: nothing dropped)"
        s.mask, s.out, s.out_name = mask, x * mask, f"dropout{i}"
        out._add(f"mask{i}", mask.copy(), how)
        out._add(s.out_name, s.out.copy(), f"{xn} * mask{i}{pred}")
    elif isinstance(layer, (BatchNorm, LayerNorm)):
        if isinstance(layer, BatchNorm):
            # Per feature (channel) over the batch (and the spatial axes).
            axes: tuple[int, ...] = (0,) if x.ndim == 2 else (0, 2, 3)
            bshape: tuple[int, ...] = (1, x.shape[1]) + (1,) * (x.ndim - 2)
            if x.size // x.shape[1] < 2:
                raise ValueError(
                    f"BatchNorm needs more than 1 value per feature when training, got a "
                    f"batch of shape {x.shape}: trace at least 2 rows")
            s.out_name, var_how = f"bn{i}", "  (biased)"
        elif len(layer.input_shape) == 2:  # a sequence (n, T, D): each step over its D
            axes, bshape = (2,), (1, 1, x.shape[2])
            s.out_name, var_how = f"ln{i}", ""
        else:
            axes = tuple(range(1, x.ndim))  # each sample over its own features
            bshape = (1, *x.shape[1:])
            s.out_name, var_how = f"ln{i}", ""
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = np.mean(np.square(xc), axis=axes, keepdims=True)
        inv_std = 1.0 / np.sqrt(var + layer.eps)
        xhat = xc * inv_std
        y = xhat * layer.gamma.reshape(bshape)
        y += layer.beta.reshape(bshape)
        s.axes, s.xhat, s.inv_std, s.out = axes, xhat, inv_std, y
        ax = _axes_text(axes)
        out._add(f"mean{i}", mean, f"mean({xn}, {ax})")
        out._add(f"var{i}", var, f"mean(({xn} - mean{i})², {ax}){var_how}")
        out._add(f"xhat{i}", xhat.copy(), f"({xn} - mean{i}) / sqrt(var{i} + {layer.eps:g})")
        out._add(s.out_name, y.copy(), f"gamma{i} * xhat{i} + beta{i}{pred}")
    elif isinstance(layer, Embedding):
        s.out, s.out_name = layer.W[x], f"emb{i}"
        out._add(s.out_name, s.out.copy(), f"W{i}[{xn}]  (row of each token id){pred}")
    elif isinstance(layer, PositionalEmbedding):
        s.out, s.out_name = x + layer.W[:x.shape[1]], f"pos{i}"
        out._add(s.out_name, s.out.copy(), f"{xn} + W{i}[:{x.shape[1]}]{pred}")
    elif isinstance(layer, Recurrent):
        _recurrent_forward(out, s, layer, pred)
    elif isinstance(layer, MultiHeadAttention):
        _attention_forward(out, s, layer, rng_for, pred)
    elif isinstance(layer, Composite):
        # The sublayers under the layer's path, from 1: layer 3's second is "3.2".
        sub_x, sub_name = x, xn
        residual = isinstance(layer, Residual)
        for j, sub in enumerate(layer.layers, start=1):
            c = _Step(sub, f"{i}.{j}", sub_x, sub_name)
            _forward(out, c, rng_for, last and not residual and j == len(layer.layers))
            assert c.out is not None
            s.subs.append(c)
            sub_x, sub_name = c.out, c.out_name
        if residual:  # the skip: x + layers(x)
            s.out, s.out_name = x + sub_x, f"res{i}"
            out._add(s.out_name, s.out.copy(), f"{xn} + {sub_name}{pred}")
        else:
            s.out, s.out_name = sub_x, sub_name
    else:
        raise ValueError(f"trace does not know {layer.kind!r} layers ({layer!r}): it names "
                         "Dense, Conv2D, MaxPool2D, AvgPool2D, Flatten, Activation, Dropout, "
                         "BatchNorm, LayerNorm, Embedding, PositionalEmbedding, RNN, LSTM, "
                         "GRU, MultiHeadAttention, Composite and Residual layers")


def _sigmoid(a: NDArray) -> NDArray:
    return _SIGMOID.forward(a, np.empty_like(a))  # the engine's stable sigmoid


def _rnn_f(layer: Recurrent) -> str:
    """An RNN's nonlinearity ("tanh" or "relu")."""
    return layer.activation_name if isinstance(layer, RNN) else "tanh"


def _initial_state(layer: Recurrent, name: str, n: int) -> NDArray | None:
    """A stateful layer's carried state (its next training pass starts there), or None."""
    state = layer.state_h if name == "h" else layer.state_c  # type: ignore[attr-defined]
    if not layer.stateful or state is None or state.shape[0] != n:
        return None
    return np.array(state, copy=True)


def _recurrent_forward(out: Trace, s: _Step, layer: Recurrent, pred: str) -> None:
    """RNN, LSTM, GRU: a loop over the steps, every gate and state kept (n, T, H)."""
    i, x, xn = s.i, s.x, s.x_name
    n, T, _ = x.shape
    H, dt = layer.units, x.dtype
    Wx, Wh = layer.weight_ih.T, layer.weight_hh.T  # the book's Wx (D, G·H), Wh (H, G·H)
    zero = np.zeros(layer.gates * H, dt)
    b_ih = layer.bias_ih if layer.use_bias else zero
    b_hh = layer.bias_hh if layer.use_bias else zero
    h0 = _initial_state(layer, "h", n)
    if h0 is not None:
        out._add(f"hinit{i}", h0.copy(), "the state carried from the last training pass")
    h_prev = np.zeros((n, H), dt) if h0 is None else h0
    s.keep["h0"] = h_prev
    hs = np.empty((n, T, H), dt)
    kind = layer.kind
    names = {"rnn": ("z",), "lstm": ("i", "f", "g", "o", "c"), "gru": ("r", "z", "hn", "n")}
    keep = {k: np.empty((n, T, H), dt) for k in names[kind]}
    if kind == "lstm":
        c0 = _initial_state(layer, "c", n)
        if c0 is not None:
            out._add(f"cinit{i}", c0.copy(), "the cell state carried from the last training "
                     "pass")
        c_prev = np.zeros((n, H), dt) if c0 is None else c0
        s.keep["c0"] = c_prev
    for t in range(T):
        xt = x[:, t]
        if kind == "rnn":
            z = np.dot(xt, Wx) + b_ih + (np.dot(h_prev, Wh) + b_hh)
            keep["z"][:, t] = z
            h = np.tanh(z) if _rnn_f(layer) == "tanh" else np.maximum(z, 0)
        elif kind == "lstm":
            A = np.dot(xt, Wx) + b_ih + (np.dot(h_prev, Wh) + b_hh)  # (n, 4H): i, f, g, o
            ig, fg = _sigmoid(A[:, :H]), _sigmoid(A[:, H:2 * H])
            gg, og = np.tanh(A[:, 2 * H:3 * H]), _sigmoid(A[:, 3 * H:])
            c = fg * c_prev + gg * ig
            h = og * np.tanh(c)
            for k, v in zip("ifgoc", (ig, fg, gg, og, c)):
                keep[k][:, t] = v
            c_prev = c
        else:
            ax = np.dot(xt, Wx) + b_ih  # (n, 3H): r, z, n
            ah = np.dot(h_prev, Wh) + b_hh
            r = _sigmoid(ax[:, :H] + ah[:, :H])
            zg = _sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
            hn = ah[:, 2 * H:]
            ng = np.tanh(ax[:, 2 * H:] + r * hn)
            h = (1 - zg) * ng + zg * h_prev
            for k, v in zip(("r", "z", "hn", "n"), (r, zg, hn, ng)):
                keep[k][:, t] = v
        hs[:, t] = h
        h_prev = h
    s.keep.update(keep)
    s.keep["h"] = hs
    t_ = "[:, t]"
    prev = "h[t-1]" + ("" if h0 is None else f" (h[-1] = hinit{i})")
    if kind == "rnn":
        formulas = {"z": f"{xn}{t_}·weight_ih{i}.T + bias_ih{i} + {prev}·weight_hh{i}.T + "
                         f"bias_hh{i}",
                    "h": f"{_rnn_f(layer)}(z{i})"}
    elif kind == "lstm":
        A = f"A = {xn}{t_}·weight_ih{i}.T + bias_ih{i} + {prev}·weight_hh{i}.T + bias_hh{i}"
        formulas = {"i": f"sigmoid(A[:, :H]), {A}", "f": "sigmoid(A[:, H:2H])",
                    "g": "tanh(A[:, 2H:3H])", "o": "sigmoid(A[:, 3H:])",
                    "c": f"f{i} * c[t-1] + g{i} * i{i}" + ("" if h0 is None else
                                                            f" (c[-1] = cinit{i})"),
                    "h": f"o{i} * tanh(c{i})"}
    else:
        formulas = {"r": f"sigmoid(({xn}{t_}·weight_ih{i}.T + bias_ih{i} + {prev}·"
                         f"weight_hh{i}.T + bias_hh{i})[:, :H])",
                    "z": "sigmoid(the same[:, H:2H])",
                    "hn": f"({prev}·weight_hh{i}.T + bias_hh{i})[:, 2H:]",
                    "n": f"tanh(({xn}{t_}·weight_ih{i}.T + bias_ih{i})[:, 2H:] + r{i} * hn{i})",
                    "h": f"(1 - z{i}) * n{i} + z{i} * h[t-1]"}
    for k, how in formulas.items():
        tail = pred if k == "h" and layer.return_sequences else ""
        out._add(f"{k}{i}", s.keep[k].copy(), how + tail)
    if layer.return_sequences:
        s.out, s.out_name = hs, f"h{i}"
    else:
        s.out, s.out_name = hs[:, -1].copy(), f"hlast{i}"
        out._add(s.out_name, s.out.copy(), f"h{i}[:, -1]  (the last step's h){pred}")


def _attention_forward(out: Trace, s: _Step, layer: MultiHeadAttention,
                       rng_for: Callable[[Layer], np.random.Generator], pred: str) -> None:
    """Self-attention, head by head in batched products: q, k, v, scores, att, y, output."""
    i, x, xn = s.i, s.x, s.x_name
    n, T, C = x.shape
    h = layer.num_heads
    hd = C // h
    scale = x.dtype.type(1.0 / np.sqrt(hd))

    def heads(a: NDArray) -> NDArray:  # (n, T, C) -> (n, h, T, hd)
        return a.reshape(n, T, h, hd).transpose(0, 2, 1, 3)

    qkv = np.dot(x.reshape(n * T, C), layer.W_qkv)
    if layer.use_bias:
        qkv += layer.b_qkv
    qkv = qkv.reshape(n, T, 3 * C)
    q, k, v = (np.ascontiguousarray(heads(qkv[..., j * C:(j + 1) * C])) for j in range(3))
    scores = np.matmul(q, k.swapaxes(-1, -2)) * scale
    if layer.causal:  # step t sees steps s <= t only
        scores[..., np.triu(np.ones((T, T), np.bool_), k=1)] = -np.inf
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))
    att = e / e.sum(axis=-1, keepdims=True)
    a = att
    rate = layer.dropout
    b_qkv = f" + b_qkv{i}" if layer.use_bias else ""
    for name, val in (("q", q), ("k", k), ("v", v)):
        j = "qkv".index(name)
        out._add(f"{name}{i}", val.copy(), f"({xn}·W_qkv{i}{b_qkv})[..., {j}C:{j + 1}C] "
                 f"in {h} heads of {hd}")
    out._add(f"scores{i}", scores.copy(), f"q{i}·k{i}^T / sqrt({hd})"
             + ("  (-inf above the diagonal: causal)" if layer.causal else ""))
    out._add(f"att{i}", att.copy(), f"softmax(scores{i}) over the last axis")
    if rate > 0:  # as Dropout's mask, drawn when the engine draws it
        mask = np.empty(att.shape, att.dtype)
        rng_for(layer).random(dtype=mask.dtype, out=mask)
        mask = (mask >= rate) * x.dtype.type(1.0 / (1.0 - rate))
        a = att * mask
        s.keep["mask"] = mask
        out._add(f"att_mask{i}", mask.copy(), f"(u >= {rate:g}) / (1 - {rate:g}), u ~ U[0, 1)")
        out._add(f"att_drop{i}", a.copy(), f"att{i} * att_mask{i}")
    y = np.matmul(a, v).transpose(0, 2, 1, 3).reshape(n, T, C)  # heads side by side
    o = np.dot(y.reshape(n * T, C), layer.W_out)
    if layer.use_bias:
        o += layer.b_out
    o = o.reshape(n, T, C)
    a_name = f"att_drop{i}" if rate > 0 else f"att{i}"
    out._add(f"y{i}", y.copy(), f"{a_name}·v{i}, heads merged to (n, T, {C})")
    s.out, s.out_name = o, f"mha{i}"
    out._add(s.out_name, o.copy(), f"y{i}·W_out{i}" + (f" + b_out{i}" if layer.use_bias
                                                      else "") + pred)
    s.keep.update(q=q, k=k, v=v, att=att, a=a, y=y)


def _rows_loss(top: _Step, loss_obj: Loss, y: NDArray, w: NDArray | None, delta: NDArray,
               work: NDArray, at: str, a_name: str) -> tuple[float, str]:
    """The loss of a sequence output (n, T, K) over its n·T steps as rows, or of class
    indices (n, T) (``IGNORE_INDEX`` skipped); writes the gradient into ``delta``."""
    y_pred, act = top.out, top.layer.activation
    assert y_pred is not None
    k = y_pred.shape[-1]
    steps = y_pred.size // (y_pred.shape[0] * k)
    z, p = top.logits.reshape(-1, k), y_pred.reshape(-1, k)
    d = delta.reshape(-1, k)  # a view: delta is filled through it
    wr = w if w is None else np.repeat(w, steps, axis=0)  # a sample's weight on each step
    if y.dtype.kind != "f":  # class indices: softmax + categorical cross-entropy
        if loss_obj.sparse is None:
            raise ValueError(f"loss {loss_obj.name!r} takes one-hot or float targets, not "
                             f"class indices: use 'categorical_crossentropy'")
        ids = y.reshape(-1)
        m = int(np.count_nonzero(ids != IGNORE_INDEX))
        value = loss_obj.sparse(z, p, ids, d, wr)
        return value, (f"dL/d{at} = ({a_name} - onehot(y)) / M, M = {m} steps with y != "
                       f"{IGNORE_INDEX} (fused; the ignored steps' rows 0)")
    if loss_obj.fused is not None:
        value = loss_obj.fused(z, p, y.reshape(-1, k), d, wr)
        return value, f"dL/d{at} = ({a_name} - y) / (N·T)  (fused, the steps as rows)"
    assert loss_obj.value_and_grad is not None
    value = loss_obj.value_and_grad(p, y.reshape(-1, k), d, work.reshape(-1, k), wr)
    if act is not None:
        act.backward(delta, top.logits, y_pred, work)
    if loss_obj.name == "mse" and (act is None or act.name == "identity"):
        return value, f"dL/d{at} = 2/(N·T·K)·({a_name} - y)"
    if act is None:
        return value, f"dL/d{a_name}  (the steps as rows)"
    return value, f"dL/d{at} = dL/d{a_name} * {act.name}'({at})  (the steps as rows)"


def _loss_step(out: Trace, top: _Step, loss_obj: Loss, y: NDArray,
               w: NDArray | None, label: Callable[[str], str]) -> NDArray:
    """The loss and its gradient at the output; returns that gradient (named in ``out``).

    A Dense output gives delta{L} = dL/dz{L}, an Activation output dx{L} = dL/d(its input)
    (both before the final activation, as the fused cross-entropies need), any other
    output dout{L} = dL/d(output).
    """
    L, y_pred, act = top.i, top.out, top.layer.activation
    assert y_pred is not None
    delta = np.empty(y_pred.shape, y_pred.dtype)  # C order: a sequence's rows are views
    work = np.empty(y_pred.shape, y_pred.dtype)
    a_name = top.out_name
    if isinstance(top.layer, (Dense, Conv2D)):
        name, at = label(L), f"z{L}"
    elif isinstance(top.layer, Activation):
        name, at = f"dx{L}", top.x_name
    else:
        name, at = f"dout{L}", a_name
    if y_pred.ndim > 2 or y.ndim != y_pred.ndim:
        # A sequence (n, T, K): its n·T steps are the loss's rows, as in the engine.
        value, how = _rows_loss(top, loss_obj, y, w, delta, work, at, a_name)
    elif loss_obj.fused is not None:
        # Fused sigmoid/softmax + cross-entropy step, straight from the logits.
        value = loss_obj.fused(top.logits, y_pred, y, delta, w)
        how = f"dL/d{at} = ({a_name} - y) / N  (fused)"
    else:
        assert loss_obj.value_and_grad is not None
        value = loss_obj.value_and_grad(y_pred, y, delta, work, w)
        if act is not None:
            act.backward(delta, top.logits, y_pred, work)
        if loss_obj.name == "mse" and (act is None or act.name == "identity"):
            how = f"dL/d{at} = 2/(N·K)·({a_name} - y)"
        elif act is None:
            how = f"dL/d{a_name}"
        else:
            how = f"dL/d{at} = dL/d{a_name} * {act.name}'({at})"
    out._add("loss", float(value), f"{loss_obj.name}({a_name}, y)")
    out._add(name, delta.copy(), how)
    return delta


def _backward(out: Trace, s: _Step, g: NDArray, g_name: str, is_top: bool,
              below: Layer | None, label: Callable[[str], str]) -> tuple[NDArray, str]:
    """Layer ``s.i``'s backward pass: its gradients, and dL/d(its input) with that name.

    ``g`` is dL/d(the layer's output) named ``g_name`` (for the output layer: the loss
    step's gradient, already through the final activation).
    """
    layer, i = s.layer, s.i
    assert s.out is not None
    if isinstance(layer, Dense):
        delta = g
        if not is_top:  # 誤差 delta = dL/da * f'(z)
            layer.activation.backward(delta, s.z, s.out, np.empty_like(delta))
            out._add(label(i), delta.copy(), f"{g_name} * {layer.activation.name}'(z{i})")
        # A sequence's steps are rows: (n, T, k) is taken as (n·T, k).
        rows, drows = s.x.reshape(-1, s.x.shape[-1]), delta.reshape(-1, delta.shape[-1])
        seq = " (the n·T steps as rows)" if s.x.ndim == 3 else ""
        dW = np.dot(rows.T, drows)
        tied = " (the Embedding's W.T: added to its dW)" if isinstance(layer, TiedDense) else ""
        out._add(f"dW{i}", dW, f"{s.x_name}.T·{label(i)}{seq}{tied}")
        if tied:
            out._tied.append((f"dW{i}", dW))
        if layer.use_bias:
            out._add(f"db{i}", np.sum(drows, axis=0, keepdims=True),
                     f"sum({label(i)}, axis={(0, 1) if seq else 0})")
        if below is None:
            return delta, ""
        d = np.dot(drows, layer.W.T).reshape(s.x.shape)
        if isinstance(below, Dense):  # folded into delta{i-1}, as in the seed
            return d, f"({label(i)}·W{i}.T)"
        out._add(f"dx{i}", d.copy(), f"{label(i)}·W{i}.T")
        return d, f"dx{i}"
    if isinstance(layer, Conv2D):
        return _conv_backward(out, s, layer, g, g_name, is_top, below, label)
    if isinstance(layer, Embedding):
        # The book's scatter: row k of dW gets the gradient of every step whose id is k.
        dW = np.zeros_like(layer.W)
        np.add.at(dW, s.x, g)
        formula = f"dW{i}[{s.x_name}[b, t]] += {g_name}[b, t]  (zeros elsewhere)"
        for name, head in out._tied:  # weight tying: the output layer's gradient joins
            dW += head.T
            formula += f", + {name}.T"
        out._add(f"dW{i}", dW, formula)
        return g, ""  # token ids have no gradient
    if isinstance(layer, PositionalEmbedding):
        T = s.x.shape[1]
        dW = np.zeros_like(layer.W)
        dW[:T] = g.sum(axis=0)
        out._add(f"dW{i}", dW, f"sum({g_name}, axis=0) in rows [:{T}], zeros below")
        if below is None:
            return g, ""
        out._add(f"dx{i}", g.copy(), f"{g_name}  (the sum passes it on)")
        return g, f"dx{i}"
    if isinstance(layer, Recurrent):
        return _recurrent_backward(out, s, layer, g, g_name, below)
    if isinstance(layer, MultiHeadAttention):
        return _attention_backward(out, s, layer, g, g_name, below)
    if isinstance(layer, Composite):
        return _composite_backward(out, s, layer, g, g_name, below, label)
    if isinstance(layer, (MaxPool2D, AvgPool2D, Flatten)):
        if below is None:
            return g, ""
        if isinstance(layer, Flatten):
            d, how = g.reshape(s.x.shape), f"{g_name}.reshape{s.x.shape[1:]}"
        elif isinstance(layer, MaxPool2D):
            assert s.arg is not None
            k = layer.size
            dcol = (np.arange(k) == s.arg[..., None]) * g[..., None]  # dout at each arg-max
            d = add_windows(dcol.reshape(*g.shape, *layer.pool_size), np.empty_like(s.x),
                            layer.stride, layer.padding)
            how = f"{g_name} to each window's arg{i}, windows added back (col2im)"
        else:
            share = np.broadcast_to((g / layer.size)[..., None, None],
                                    (*g.shape, *layer.pool_size))
            d = add_windows(share, np.empty_like(s.x), layer.stride, layer.padding)
            how = f"{g_name} / {layer.size} to every pixel of its window (col2im)"
        out._add(f"dx{i}", d.copy(), how)
        return d, f"dx{i}"
    if isinstance(layer, Activation):
        if not is_top and below is not None:
            layer.activation.backward(g, s.x, s.out, np.empty_like(g))
            out._add(f"dx{i}", g.copy(), f"{g_name} * {layer.activation.name}'({s.x_name})")
        return g, f"dx{i}"
    if isinstance(layer, Dropout):
        assert s.mask is not None
        d = g * s.mask
        if below is not None:
            out._add(f"dx{i}", d.copy(), f"{g_name} * mask{i}")
        return d, f"dx{i}"
    assert isinstance(layer, (BatchNorm, LayerNorm))
    assert s.xhat is not None and s.inv_std is not None
    xhat, axes = s.xhat, s.axes
    # BatchNorm's parameters are per feature (sum over every averaged axis); LayerNorm's
    # have the input's shape (sum over the batch only), or a sequence's step's (D,) (sum
    # over the batch and the steps).
    per_step = isinstance(layer, LayerNorm) and axes == (2,)
    p_axes = axes if isinstance(layer, BatchNorm) else (0, 1) if per_step else (0,)
    shape = layer.param_shapes()[0]
    ax = _axes_text(p_axes)
    out._add(f"dgamma{i}", (g * xhat).sum(axis=p_axes).reshape(shape),
             f"sum({g_name} * xhat{i}, {ax})")
    out._add(f"dbeta{i}", g.sum(axis=p_axes).reshape(shape), f"sum({g_name}, {ax})")
    if below is None:
        return g, ""
    if isinstance(layer, BatchNorm):
        gshape: tuple[int, ...] = (1, xhat.shape[1]) + (1,) * (xhat.ndim - 2)
    else:
        gshape = (1, 1, xhat.shape[2]) if per_step else (1, *xhat.shape[1:])
    dxhat = g * layer.gamma.reshape(gshape)
    out._add(f"dxhat{i}", dxhat.copy(), f"{g_name} * gamma{i}")
    mean_dxh_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
    mean_dxh = dxhat.mean(axis=axes, keepdims=True)
    dx = dxhat - mean_dxh
    dx -= xhat * mean_dxh_xhat
    dx *= s.inv_std
    ax = _axes_text(axes)
    out._add(f"dx{i}", dx.copy(), f"(dxhat{i} - mean(dxhat{i}, {ax}) - xhat{i} * "
             f"mean(dxhat{i} * xhat{i}, {ax})) / sqrt(var{i} + {layer.eps:g})")
    return dx, f"dx{i}"


def _recurrent_backward(out: Trace, s: _Step, layer: Recurrent, g: NDArray, g_name: str,
                        below: Layer | None) -> tuple[NDArray, str]:
    """Backpropagation through time, the steps in reverse, written out per gate."""
    i, x, K = s.i, s.x, s.keep
    n, T, D = x.shape
    H, kind, dt = layer.units, layer.kind, x.dtype
    Wh = layer.weight_hh  # (G·H, H): dh[t-1] = dA[t]·weight_hh
    hs = K["h"]
    h_prev_all = np.concatenate([K["h0"][:, None], hs[:, :-1]], axis=1)  # h[t-1] (n, T, H)
    if layer.return_sequences:
        dout = g
    else:  # only the last step's h is an output
        dout = np.zeros((n, T, H), dt)
        dout[:, -1] = g
    names = {"rnn": ("z",), "lstm": ("i", "f", "g", "o", "c"), "gru": ("r", "z", "n", "hn")}
    grads = {k: np.empty((n, T, H), dt) for k in names[kind]}
    dh_all = np.empty((n, T, H), dt)
    dh_next = np.zeros((n, H), dt)
    dc_next = np.zeros((n, H), dt)
    for t in range(T - 1, -1, -1):
        dh = dout[:, t] + dh_next  # from the output at t and from step t + 1
        dh_all[:, t] = dh
        if kind == "rnn":
            h = hs[:, t]
            dz = dh * (1 - h * h) if _rnn_f(layer) == "tanh" else dh * (K["z"][:, t] > 0)
            grads["z"][:, t] = dz
            dh_next = np.dot(dz, Wh)
        elif kind == "lstm":
            ig, fg, gg, og, c = (K[k][:, t] for k in "ifgoc")
            c_prev = K["c0"] if t == 0 else K["c"][:, t - 1]
            tc = np.tanh(c)
            dc = dc_next + dh * og * (1 - tc * tc)  # dL/dc[t]: through h[t] and c[t+1]
            dA = np.concatenate([dc * gg * ig * (1 - ig), dc * c_prev * fg * (1 - fg),
                                 dc * ig * (1 - gg * gg), dh * tc * og * (1 - og)], axis=1)
            grads["c"][:, t] = dc
            for j, k in enumerate("ifgo"):
                grads[k][:, t] = dA[:, j * H:(j + 1) * H]
            dc_next = dc * fg
            dh_next = np.dot(dA, Wh)
        else:
            r, zg, ng, hn = (K[k][:, t] for k in ("r", "z", "n", "hn"))
            dn = dh * (1 - zg) * (1 - ng * ng)
            dz = dh * (h_prev_all[:, t] - ng) * zg * (1 - zg)
            dr = dn * hn * r * (1 - r)
            for k, v in (("r", dr), ("z", dz), ("n", dn), ("hn", dn * r)):
                grads[k][:, t] = v
            dA_hid = np.concatenate([dr, dz, dn * r], axis=1)
            dh_next = dh * zg + np.dot(dA_hid, Wh)
    if kind == "rnn":
        f_ = f"(1 - h{i}²)" if _rnn_f(layer) == "tanh" else f"(z{i} > 0)"
        formulas = {"z": f"dh{i} * {f_}"}
        d_in = d_hid = grads["z"]
        blk = hid = f"dz{i}"
    elif kind == "lstm":
        formulas = {"c": f"dc[t+1] * f[t+1] + dh{i} * o{i} * (1 - tanh(c{i})²)",
                    "i": f"dc{i} * g{i} * i{i}(1 - i{i})",
                    "f": f"dc{i} * c[t-1] * f{i}(1 - f{i})",
                    "g": f"dc{i} * i{i} * (1 - g{i}²)",
                    "o": f"dh{i} * tanh(c{i}) * o{i}(1 - o{i})"}
        d_in = d_hid = np.concatenate([grads[k] for k in "ifgo"], axis=2)
        blk = hid = f"[di{i}, df{i}, dg{i}, do{i}]"
    else:
        formulas = {"n": f"dh{i} * (1 - z{i}) * (1 - n{i}²)",
                    "z": f"dh{i} * (h[t-1] - n{i}) * z{i}(1 - z{i})",
                    "r": f"dn{i} * hn{i} * r{i}(1 - r{i})",
                    "hn": f"dn{i} * r{i}"}
        d_in = np.concatenate([grads[k] for k in ("r", "z", "n")], axis=2)
        d_hid = np.concatenate([grads[k] for k in ("r", "z", "hn")], axis=2)
        blk, hid = f"[dr{i}, dz{i}, dn{i}]", f"[dr{i}, dz{i}, dhn{i}]"
    carry = f" + dh[t+1] * z{i}[t+1]" if kind == "gru" else ""
    step = f"{g_name}[:, t]" if layer.return_sequences else f"({g_name} at the last step)"
    out._add(f"dh{i}", dh_all, f"{step} + {hid}[t+1]·weight_hh{i}{carry}")
    for k, how in formulas.items():
        out._add(f"d{k}{i}", grads[k].copy(), how)
    gh = layer.gates * H
    rows_in, rows_hid = d_in.reshape(n * T, gh), d_hid.reshape(n * T, gh)
    out._add(f"dweight_ih{i}", np.dot(rows_in.T, x.reshape(n * T, D)),
             f"sum over steps of {blk}.T·{s.x_name}[:, t]")
    out._add(f"dweight_hh{i}", np.dot(rows_hid.T, h_prev_all.reshape(n * T, H)),
             f"sum over steps of {hid}.T·h[t-1]")
    if layer.use_bias:
        out._add(f"dbias_ih{i}", rows_in.sum(axis=0), f"sum({blk}, axis=(0, 1))")
        out._add(f"dbias_hh{i}", rows_hid.sum(axis=0), f"sum({hid}, axis=(0, 1))")
    if below is None:
        return g, ""
    dx = np.dot(rows_in, layer.weight_ih).reshape(n, T, D)
    out._add(f"dx{i}", dx.copy(), f"{blk}·weight_ih{i}")
    return dx, f"dx{i}"


def _attention_backward(out: Trace, s: _Step, layer: MultiHeadAttention, g: NDArray,
                        g_name: str, below: Layer | None) -> tuple[NDArray, str]:
    """Self-attention's backward pass, every product of the forward pass in reverse."""
    i, x, K = s.i, s.x, s.keep
    n, T, C = x.shape
    h = layer.num_heads
    hd = C // h
    scale = x.dtype.type(1.0 / np.sqrt(hd))
    rows = g.reshape(n * T, C)
    out._add(f"dW_out{i}", np.dot(K["y"].reshape(n * T, C).T, rows), f"y{i}.T·{g_name}")
    if layer.use_bias:
        out._add(f"db_out{i}", rows.sum(axis=0, keepdims=True), f"sum({g_name}, axis=(0, 1))")
    dy = np.dot(rows, layer.W_out.T).reshape(n, T, C)
    out._add(f"dy{i}", dy.copy(), f"{g_name}·W_out{i}.T")
    dyh = dy.reshape(n, T, h, hd).transpose(0, 2, 1, 3)  # in heads (n, h, T, hd)
    a_name = "att_drop" if "mask" in K else "att"
    dv = np.matmul(K["a"].swapaxes(-1, -2), dyh)
    datt = np.matmul(dyh, K["v"].swapaxes(-1, -2))
    if "mask" in K:
        datt *= K["mask"]
    out._add(f"datt{i}", datt.copy(), f"dy{i}·v{i}^T (in heads)"
             + (f" * att_mask{i}" if "mask" in K else ""))
    out._add(f"dv{i}", dv.copy(), f"{a_name}{i}^T·dy{i} (in heads)")
    att = K["att"]
    dscores = att * (datt - (datt * att).sum(axis=-1, keepdims=True))
    out._add(f"dscores{i}", dscores.copy(), f"att{i} * (datt{i} - sum(datt{i} * att{i}, "
             f"axis=-1))  (softmax's Jacobian)")
    dq = np.matmul(dscores, K["k"]) * scale
    dk = np.matmul(dscores.swapaxes(-1, -2), K["q"]) * scale
    out._add(f"dq{i}", dq.copy(), f"dscores{i}·k{i} / sqrt({hd})")
    out._add(f"dk{i}", dk.copy(), f"dscores{i}^T·q{i} / sqrt({hd})")
    # The heads back side by side, q's, k's and v's columns as in W_qkv.
    dqkv = np.concatenate([d.transpose(0, 2, 1, 3).reshape(n * T, C) for d in (dq, dk, dv)],
                          axis=1)
    out._add(f"dW_qkv{i}", np.dot(x.reshape(n * T, C).T, dqkv),
             f"{s.x_name}.T·[dq{i}, dk{i}, dv{i}] (heads merged)")
    if layer.use_bias:
        out._add(f"db_qkv{i}", dqkv.sum(axis=0, keepdims=True),
                 f"sum([dq{i}, dk{i}, dv{i}], axis=(0, 1))")
    if below is None:
        return g, ""
    dx = np.dot(dqkv, layer.W_qkv.T).reshape(n, T, C)
    out._add(f"dx{i}", dx.copy(), f"[dq{i}, dk{i}, dv{i}]·W_qkv{i}.T")
    return dx, f"dx{i}"


def _composite_backward(out: Trace, s: _Step, layer: Composite, g: NDArray, g_name: str,
                        below: Layer | None, label: Callable[[str], str]
                        ) -> tuple[NDArray, str]:
    """The sublayers' backward passes in reverse; a Residual adds the skip's gradient."""
    residual = isinstance(layer, Residual)
    # The stack's first sublayer hands its dx on: to the layer below a Composite, to the
    # sum of a Residual (so it is always named there); none at the network's first layer.
    first_below = None if below is None else layer if residual else below
    d, d_name = (g.copy() if residual else g), g_name  # the stack may write into it
    for j in range(len(s.subs) - 1, -1, -1):
        sub_below = s.subs[j - 1].layer if j > 0 else first_below
        d, d_name = _backward(out, s.subs[j], d, d_name, False, sub_below, label)
    if below is None or not residual:
        return d, d_name
    dx = g + d
    out._add(f"dx{s.i}", dx.copy(), f"{g_name} + {d_name}  (the skip's and the stack's)")
    return dx, f"dx{s.i}"


def _conv_backward(out: Trace, s: _Step, layer: Conv2D, g: NDArray, g_name: str,
                   is_top: bool, below: Layer | None, label: Callable[[str], str]
                   ) -> tuple[NDArray, str]:
    """Conv2D's backward pass through the GEMM's layout and col2im, as the engine's."""
    i, fn, n = s.i, layer.filters, g.shape[0]
    assert s.col is not None and s.out is not None
    delta = g
    if not is_top:
        layer.activation.backward(delta, s.z, s.out, np.empty_like(delta))
        out._add(label(i), delta.copy(), f"{g_name} * {layer.activation.name}'(z{i})")
    dT = np.ascontiguousarray(delta.reshape(n, fn, -1).transpose(1, 0, 2)).reshape(fn, -1)
    W2 = layer.W.reshape(fn, -1)
    out._add(f"dW{i}", np.dot(dT, s.col).reshape(layer.W.shape),
             f"(col{i}.T·{label(i)}) as {layer.W.shape}")
    if layer.use_bias:
        out._add(f"db{i}", np.add.reduce(dT, axis=1), f"sum({label(i)}) per filter")
    if below is None:
        return delta, ""
    # As the engine: dcol.T = col_W · dout.T with dout's columns in (oh, ow, n) order, then
    # dcol's rows put back in the book's (n, oh, ow) order.
    dT2 = np.ascontiguousarray(delta.transpose(1, 2, 3, 0)).reshape(fn, -1)
    ckk = W2.shape[1]
    dcol = np.dot(W2.T, dT2).reshape(ckk, -1, n).transpose(2, 1, 0).reshape(-1, ckk)
    out._add(f"dcol{i}", np.array(dcol), f"{label(i)}·W{i}.reshape({fn}, -1)")
    dx = col2im(dcol, s.x.shape, layer.kernel_size, layer.stride, layer.padding)
    out._add(f"dx{i}", dx.copy(), f"col2im(dcol{i})")
    return dx, f"dx{i}"


def trace(net: Network, X: Any, y: Any, loss: str | Loss = "mse",
          sample_weight: Any = None, seed: int | np.random.Generator | None = None) -> Trace:
    """One training-mode forward and backward pass of ``net`` on (X, y), every intermediate kept.

    Parameters
    ----------
    net : a :class:`zeronn.Sequential` or :class:`zeronn.MLP` (a :class:`zeronn.classic.NN`
        is converted with :meth:`MLP.from_classic`). It is not modified: weights,
        gradients, BatchNorm's running statistics, a stateful recurrent layer's carried
        state and its random generator stay as they were.
    X : (n_samples, *input_shape), or token ids (n_samples, T) for a network that starts
        with an Embedding; y : (n_samples, n_outputs), or (n_samples,) for one output;
        (n_samples, T, n_outputs) for a sequence output, or for a softmax output class
        indices (n_samples, T) (-100: a step to skip), as :meth:`Network.check_data` takes.
    loss : loss name or :class:`Loss`, as in :meth:`Network.loss_and_gradients`.
    sample_weight : optional (n_samples,), as in :meth:`Network.loss_and_gradients`.
    seed : Dropout's (and attention dropout's) masks: an int, a ``np.random.Generator``
        (advanced), or ``None`` for a copy of the network's own generator (the masks its
        next training pass draws).

    Returns
    -------
    A :class:`Trace` (an ordered dict of fresh arrays in the network's dtype, plus the
    ``"loss"`` float), named as the module docstring says. For a 2-layer MLP the keys are
    ``z1, a1, z2, a2, loss, error_output, dW2, db2, error_hidden, dW1, db1``; for other
    MLPs ``z{i}, a{i}`` for each layer, ``loss``, then ``delta{i}, dW{i}, db{i}`` from the
    last layer to the first. ``a{L}`` (``a2`` for two layers) is the prediction
    ``y_pred``. ``error_output`` (or ``delta{L}``) is dL/dz at the output for the *mean*
    loss: for ``mse`` with identity output it is ``2 / (N·K) * (y_pred - y)``, i.e. 2/N
    times the seed's ``y_pred - y`` for its single output; for the fused cross-entropies
    it is ``(p - y) / N``. The parameter gradients equal those of
    ``net.loss_and_gradients(X, y, loss, training=True)`` drawing the same Dropout masks.
    """
    net = _as_network(net)
    loss_obj = net.check_loss(loss)
    Xc, yc = net.check_data(X, y)
    assert yc is not None
    sw = check_sample_weight(sample_weight, Xc.shape[0], net.dtype)
    w = None if sw is None else normalized_weights(sw)
    rng_for = _mask_generators(net, seed)
    layers = net.layers
    n_layers = len(layers)
    seed_names = n_layers == 2 and all(isinstance(layer, Dense) for layer in layers)
    model = f"MLP({net.layer_sizes})" if isinstance(net, MLP) else repr(net)
    out = Trace(loss_obj.name, model)

    def label(i: str) -> str:
        name = f"delta{i}"
        return SEED_NAMES.get(name, name) if seed_names else name

    # 順伝播 (forward), layer by layer, with a0 = X.
    steps: list[_Step] = []
    x, x_name = Xc, "X"
    for i, layer in enumerate(layers, start=1):
        s = _Step(layer, str(i), x, x_name)
        _forward(out, s, rng_for, i == n_layers)
        assert s.out is not None
        steps.append(s)
        x, x_name = s.out, s.out_name

    # 損失関数 and 出力層の誤差, then 逆伝播 (backward) from the output to the first layer.
    g = _loss_step(out, steps[-1], loss_obj, yc, w, label)
    g_name = next(reversed(out))  # the name _loss_step gave the gradient
    for k in range(n_layers - 1, -1, -1):
        below = layers[k - 1] if k > 0 else None
        g, g_name = _backward(out, steps[k], g, g_name, k == n_layers - 1, below, label)
    out.grad_names = [name for i, layer in enumerate(layers, start=1)
                      for name in _grad_names(layer, str(i))]
    return out


def _grad_names(layer: Layer, i: str) -> list[str]:
    """The trace's names of a layer's parameter gradients, in ``layer.grads`` order."""
    if isinstance(layer, Composite):
        return [name for j, sub in enumerate(layer.layers, start=1)
                for name in _grad_names(sub, f"{i}.{j}")]
    return [f"d{p}{i}" for p in layer.param_names]
