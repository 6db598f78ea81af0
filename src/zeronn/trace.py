"""Every intermediate of one forward and backward pass, under the seed's names.

``trace(net, X, y)`` recomputes one pass of :meth:`MLP.loss_and_gradients` step by step
with plain NumPy, in the order the seed's ``forward``/``backward`` write it, and hands
back copies of everything: pre-activations, activations, the loss, the errors that flow
backwards and the parameter gradients. It uses the same activation and loss functions
as the engine, in the same order, so its ``dW``/``db`` equal the engine's, and it never
touches the network (no weights, gradients or work buffers change).

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

Any other depth ``L`` (number of layers) uses ``z{i}``, ``a{i}`` for ``i = 1..L``, then
``loss``, then from the output backwards ``delta{i}`` (= dL/dz{i}), ``dW{i}``, ``db{i}``
for ``i = L..1``, with ``a0 = X``. For the 2-layer network ``error_output`` is
``delta2`` and ``error_hidden`` is ``delta1``.

The 2/N relationship. ``error_output`` is the gradient of the *mean* loss with respect
to the output layer's pre-activation ``z``. The seed's ``error_output = y_pred - y`` is
the gradient of the *summed* squared error divided by 2, so for ``mse`` with the identity
output (the seed's) this one is ``2 / (N·K) * (y_pred - y)`` (N samples, K outputs; the
seed's K = 1 gives 2/N), and every ``dW``, ``db`` here is 2/N times the seed's. For the
fused cross-entropies (sigmoid + binary_crossentropy, softmax + categorical_crossentropy)
it is ``(p - y) / N``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from zeronn._validation import check_sample_weight, normalized_weights
from zeronn.losses import Loss
from zeronn.models import MLP

__all__ = ["Trace", "trace"]

# The seed's names for the backward pass of a 2-layer network, by generic name.
SEED_NAMES = {"delta2": "error_output", "delta1": "error_hidden"}


class Trace(dict[str, Any]):
    """An ordered ``{name: array}`` of one pass (``"loss"`` is a float); see :mod:`zeronn.trace`.

    ``formulas[name]`` says how each entry was computed; ``str(trace)`` prints the table
    of names, shapes and formulas in the order of computation.
    """

    def __init__(self, loss: str, layer_sizes: list[int]) -> None:
        super().__init__()
        self.loss_name = loss
        self.layer_sizes = layer_sizes
        self.formulas: dict[str, str] = {}

    def _add(self, name: str, value: Any, formula: str) -> None:
        self[name] = value
        self.formulas[name] = formula

    def __repr__(self) -> str:
        items = ", ".join(
            f"{k}={v:.6g}" if k == "loss" else f"{k}{tuple(np.shape(v))}" for k, v in self.items())
        return f"Trace({self.loss_name!r}, {self.layer_sizes}: {items})"

    def __str__(self) -> str:
        width = max((len(k) for k in self), default=4)
        lines = [f"trace of {self.loss_name} on MLP({self.layer_sizes})"]
        for k, v in self.items():
            shape = f"{v:.6g}" if k == "loss" else str(tuple(np.shape(v)))
            lines.append(f"  {k:<{width}}  {shape:<12}  {self.formulas.get(k, '')}")
        return "\n".join(lines)


def _as_mlp(net: Any) -> MLP:
    if isinstance(net, MLP):
        return net
    if all(hasattr(net, k) for k in ("W1", "b1", "W2", "b2", "forward", "backward")):
        return MLP.from_classic(net)  # the seed's NN: same weights, same arithmetic
    raise ValueError(f"trace needs a zeronn.MLP (or a zeronn.classic.NN), got "
                     f"{type(net).__name__}: build one with zeronn.MLP([...])")


def trace(net: MLP, X: Any, y: Any, loss: str | Loss = "mse",
          sample_weight: Any = None) -> Trace:
    """One forward and backward pass of ``net`` on (X, y), every intermediate kept.

    Parameters
    ----------
    net : a :class:`zeronn.MLP` (a :class:`zeronn.classic.NN` is converted with
        :meth:`MLP.from_classic`). It is not modified.
    X : (n_samples, n_features); y : (n_samples, n_outputs), or (n_samples,) for one output.
    loss : loss name or :class:`Loss`, as in :meth:`MLP.loss_and_gradients`.
    sample_weight : optional (n_samples,), as in :meth:`MLP.loss_and_gradients`.

    Returns
    -------
    A :class:`Trace` (an ordered dict of fresh arrays in the network's dtype, plus the
    ``"loss"`` float). For a 2-layer network the keys are ``z1, a1, z2, a2, loss,
    error_output, dW2, db2, error_hidden, dW1, db1``; otherwise ``z{i}, a{i}`` for each
    layer, ``loss``, then ``delta{i}, dW{i}, db{i}`` from the last layer to the first.
    ``a{L}`` (``a2`` for two layers) is the prediction ``y_pred``. ``error_output`` (or
    ``delta{L}``) is dL/dz at the output for the *mean* loss: for ``mse`` with identity
    output it is ``2 / (N·K) * (y_pred - y)``, i.e. 2/N times the seed's ``y_pred - y``
    for its single output; for the fused cross-entropies it is ``(p - y) / N``. The
    ``dW``/``db`` equal ``net.loss_and_gradients(X, y, loss)``'s gradients.
    """
    net = _as_mlp(net)
    loss_obj = net.check_loss(loss)
    Xc, yc = net.check_data(X, y)
    assert yc is not None
    sw = check_sample_weight(sample_weight, Xc.shape[0], net.dtype)
    w = None if sw is None else normalized_weights(sw)
    layers = net.layers
    n_layers = len(layers)
    seed_names = n_layers == 2
    out = Trace(loss_obj.name, list(net.layer_sizes))

    # 順伝播 (forward): z{i} = a{i-1}·W{i} + b{i}, a{i} = f{i}(z{i}), with a0 = X.
    zs: list[NDArray] = []
    acts: list[NDArray] = [Xc]
    for i, layer in enumerate(layers, start=1):
        prev = "X" if i == 1 else f"a{i - 1}"
        z = np.dot(acts[-1], layer.W)
        z += layer.b
        a = layer.activation.forward(z, np.empty_like(z))
        zs.append(z)
        acts.append(a)
        out._add(f"z{i}", z.copy(), f"{prev}·W{i} + b{i}")
        out._add(f"a{i}", a.copy(), f"{layer.activation.name}(z{i})"
                 + ("  = y_pred" if i == n_layers else ""))

    # 損失関数 and 出力層の誤差: delta_L = dL/dz_L of the mean loss.
    y_pred, z_out, out_act = acts[-1], zs[-1], layers[-1].activation
    delta = np.empty_like(y_pred)
    work = np.empty_like(y_pred)
    if loss_obj.fused is not None:
        # Fused sigmoid/softmax + cross-entropy step, straight from the logits.
        value = loss_obj.fused(z_out, y_pred, yc, delta, w)
        how = f"dL/dz{n_layers} = (a{n_layers} - y) / N  (fused)"
    else:
        assert loss_obj.value_and_grad is not None
        value = loss_obj.value_and_grad(y_pred, yc, delta, work, w)
        out_act.backward(delta, z_out, y_pred, work)
        how = (f"dL/dz{n_layers} = 2/(N·K)·(a{n_layers} - y)" if loss_obj.name == "mse"
               and out_act.name == "identity" else
               f"dL/dz{n_layers} = dL/da{n_layers} * {out_act.name}'(z{n_layers})")
    out._add("loss", float(value), f"{loss_obj.name}(a{n_layers}, y)")

    # 逆伝播 (backward): dW{i} = a{i-1}.T·delta{i}, db{i} = sum(delta{i}),
    # delta{i-1} = (delta{i}·W{i}.T) * f{i-1}'(z{i-1}).
    def label(i: int) -> str:
        name = f"delta{i}"
        return SEED_NAMES.get(name, name) if seed_names else name

    for i in range(n_layers, 0, -1):
        layer = layers[i - 1]
        if i != n_layers:
            how = f"({label(i + 1)}·W{i + 1}.T) * {layer.activation.name}'(z{i})"
        out._add(label(i), delta.copy(), how)
        prev = "X" if i == 1 else f"a{i - 1}"
        dW = np.dot(acts[i - 1].T, delta)
        db = np.sum(delta, axis=0, keepdims=True)
        out._add(f"dW{i}", dW, f"{prev}.T·{label(i)}")
        out._add(f"db{i}", db, f"sum({label(i)}, axis=0)")
        if i > 1:
            below = layers[i - 2]
            delta = np.dot(delta, layer.W.T)
            below.activation.backward(delta, zs[i - 2], acts[i - 1], np.empty_like(delta))
    return out
