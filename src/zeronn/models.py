"""What users hold: ``Sequential`` (any stack of layers) and ``MLP`` (a stack of Dense layers).

Both are a :class:`~zeronn.network.Network` plus ``fit``, the one hop from the model to the
training loop (``zeronn.training`` sits above the network, so the network never imports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from numpy.typing import DTypeLike, NDArray

from zeronn._validation import positive_number
from zeronn.activations import Activation as ActivationFunction
from zeronn.activations import get_activation
from zeronn.history import Callback, EarlyStopping, History
from zeronn.initializers import Initializer, get_initializer
from zeronn.layers import (
    Dense,
    Dropout,
    Embedding,
    Layer,
    LayerNorm,
    MultiHeadAttention,
    PositionalEmbedding,
    Residual,
    TiedDense,
)
from zeronn.losses import Loss
from zeronn.network import Network
from zeronn.optim import Optimizer, Schedule
from zeronn.training import fit as train

__all__ = ["MLP", "Sequential", "gpt"]


class Sequential(Network):
    """A network of layers applied in order, trained with :meth:`fit`.

    ``Sequential([Dense(64, activation="relu"), Dropout(0.2), Dense(1)], input_dim=8)``.
    See :class:`~zeronn.network.Network` for the arguments, ``forward``/``backward`` and
    ``predict``; ``summary()`` prints the layers with their output shapes and sizes.
    """

    def fit(
        self,
        X: Any,
        y: Any,
        loss: str | Loss = "mse",
        optimizer: str | Optimizer | None = None,
        epochs: int = 100,
        batch_size: int | None = 32,
        shuffle: bool = True,
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        early_stopping: bool | int | EarlyStopping | None = None,
        callbacks: Sequence[Callback] = (),
        lr_schedule: str | Schedule | None = None,
        verbose: int = 0,
        seed: int | None = None,
        sample_weight: Any = None,
        engine: str = "auto",
        clip_grad_norm: float | None = None,
    ) -> History:
        """Trains in place on X (n_samples, *input_shape) and y (n_samples, n_outputs).

        ``loss``: a name or Loss fitting the output (``"mse"``, ``"mae"``, ``"huber"`` for
        regression; ``"binary_crossentropy"`` with a sigmoid output,
        ``"categorical_crossentropy"`` with softmax). ``optimizer``: a name, an
        :class:`~zeronn.optim.Optimizer`, or ``None`` to continue the last fit's (Adam(1e-3)
        the first time). ``batch_size=None``: full batch. ``validation_split`` holds out the
        last rows; ``validation_data=(X_val, y_val)``. ``early_stopping``: True, a patience
        or an :class:`EarlyStopping`. ``callbacks``: ``cb(epoch, history)``, truthy stops.
        ``lr_schedule``: name or Schedule. ``verbose``: 0, 1 (progress bar), 2 (a line per
        epoch). ``seed``: the generator of shuffling and dropout (default: the network's
        own, so fits continue one stream). ``sample_weight`` (n_samples,). ``engine``:
        ``"auto"``, ``"numpy"`` or ``"compiled"`` (the extra ``fast``): which path trains.
        ``clip_grad_norm``: the largest global gradient norm of a step (torch's
        ``clip_grad_norm_``). Sequences: y per step (n, T, k) or class indices (n, T).
        Returns this fit's :class:`History`; see :func:`zeronn.training.fit` for details.
        """
        return train(self, X, y, loss=loss, optimizer=optimizer, epochs=epochs,
                            batch_size=batch_size, shuffle=shuffle,
                            validation_split=validation_split,
                            validation_data=validation_data, early_stopping=early_stopping,
                            callbacks=callbacks, lr_schedule=lr_schedule, verbose=verbose,
                            seed=seed, sample_weight=sample_weight, engine=engine,
                            clip_grad_norm=clip_grad_norm)

    def copy(self, dtype: DTypeLike | None = None) -> Sequential:
        """An independent copy (optionally converted to ``dtype``) without work buffers,
        optimizer or history."""
        new = self.copy_network(dtype)
        assert isinstance(new, Sequential)
        return new

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        size = (f"input_dim={self.input_shape[0]}" if len(self.input_shape) == 1
                else f"input_shape={self.input_shape}")
        return f"{type(self).__name__}([{inner}], {size}, dtype={self.dtype.name!r})"


class MLP(Sequential):
    """A fully connected network ``layer_sizes[0] -> ... -> layer_sizes[-1]``.

    Parameters
    ----------
    layer_sizes : [n_features, hidden..., n_outputs], at least two entries.
    activation : hidden activation name or object, or one per hidden layer.
    output_activation : ``"identity"`` for regression (the seed's), ``"sigmoid"`` or
        ``"softmax"`` for classification with the matching cross-entropy.
    init : initializer name, a callable ``(rng, fan_in, fan_out, dtype) -> W``, or the
        explicit arrays ``[W1, b1, W2, b2, ...]``.
    dtype : ``"float64"`` (default) or ``"float32"``; kept end to end.
    seed : seeds the network's own ``np.random.Generator`` (initialisation, and the
        shuffling of ``fit`` calls that pass no seed of their own).

    The same as ``Sequential([Dense(h1, activation), ..., Dense(n_outputs,
    output_activation)], input_dim=n_features)``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | ActivationFunction | Sequence[str | ActivationFunction] = "relu",
        output_activation: str | ActivationFunction = "identity",
        init: str | Initializer | Sequence[NDArray] = "he_normal",
        dtype: DTypeLike = "float64",
        seed: int | None = None,
    ) -> None:
        sizes = list(layer_sizes) if not isinstance(layer_sizes, (str, bytes)) else []
        if len(sizes) < 2:
            raise ValueError(
                f"layer_sizes needs at least [n_inputs, n_outputs], got {layer_sizes!r}")
        self.layer_sizes = [positive_number("each layer size", s, integer=True) for s in sizes]
        n_hidden = len(sizes) - 2
        if isinstance(activation, (str, ActivationFunction)):
            hidden = [get_activation(activation)] * n_hidden
        else:
            hidden = [get_activation(a) for a in activation]
            if len(hidden) != n_hidden:
                raise ValueError(f"activation lists {len(hidden)} entries but the network has "
                                 f"{n_hidden} hidden layers: give one per hidden layer")
        explicit = not (isinstance(init, str) or callable(init))
        fn: str | Initializer = "he_normal" if explicit else init  # type: ignore[assignment]
        if not explicit:
            get_initializer(fn)  # an unknown name fails before anything is built
        acts = [*hidden, get_activation(output_activation)]
        layers: list[Layer] = [Dense(units, act, init=fn)
                               for units, act in zip(self.layer_sizes[1:], acts)]
        super().__init__(layers, input_dim=self.layer_sizes[0], dtype=dtype, seed=seed,
                         initialize=not explicit)
        self.init = init if isinstance(init, str) else getattr(init, "__name__", "explicit")
        if explicit:
            self.set_params(init)  # type: ignore[arg-type]

    @property
    def activations(self) -> list[str]:
        """Hidden activation names, one per hidden layer."""
        return [layer.activation.name for layer in self.layers[:-1]]  # type: ignore[union-attr]

    def set_params(self, params: Sequence[NDArray]) -> None:
        """Copies ``[W1, b1, W2, b2, ...]`` into the network (shapes must match)."""
        params = list(params)
        if len(params) != 2 * len(self.layers):
            raise ValueError(f"expected {2 * len(self.layers)} arrays [W1, b1, ...], "
                             f"got {len(params)}")
        super().set_params(params)

    def copy(self, dtype: DTypeLike | None = None) -> MLP:
        """An independent copy (optionally converted to ``dtype``) without work buffers."""
        new = self.copy_network(dtype)
        assert isinstance(new, MLP)
        return new

    def __repr__(self) -> str:
        acts = self.activations
        act = acts[0] if acts and all(a == acts[0] for a in acts) else acts
        return (f"MLP({self.layer_sizes}, activation={act!r}, "
                f"output_activation={self.output_activation!r}, dtype={self.dtype.name!r})")

    # -- seed compatibility ----------------------------------------------------------
    @classmethod
    def from_classic(cls, nn: Any) -> MLP:
        """The engine's equivalent of a :class:`zeronn.classic.NN`, with its current weights."""
        i, h = nn.W1.shape
        o = nn.W2.shape[1]
        return cls([i, h, o], "relu", "identity", init=[nn.W1, nn.b1, nn.W2, nn.b2])


def gpt(vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4, n_embd: int = 128,
        dropout: float = 0.0, bias: bool = False, tie_weights: bool = True,
        dtype: DTypeLike = "float32", seed: int | None = None) -> Sequential:
    """A character-level GPT, nanoGPT's ``model.py`` as a Sequential of zeronn layers.

    ids (n, T <= block_size) -> next-token probabilities (n, T, vocab_size)::

        Embedding(vocab, C), PositionalEmbedding(block_size)  (wte, wpe)  [Dropout]
        n_layer x [ Residual([LayerNorm(), MultiHeadAttention(n_head, causal=True), [Dropout]]),
                    Residual([LayerNorm(), Dense(4C, gelu), Dense(C), [Dropout]]) ]
        LayerNorm(), TiedDense(vocab, softmax)                (ln_f, lm_head)

    As nanoGPT: weights and embeddings N(0, 0.02^2), the blocks' output projections
    scaled by (2 n_layer)^-1/2, no biases in the projections with ``bias=False`` (nanoGPT's
    default; LayerNorm keeps its beta), ``dropout`` after the embeddings, inside the
    attention and after each block's projection, and lm_head tied to wte
    (``tie_weights=False``: a Dense of its own). One difference: GELU is the tanh form
    (zeronn's ``gelu``; nanoGPT's ``nn.GELU()`` uses erf). Train it with
    ``loss="categorical_crossentropy"`` on class indices (n, T)
    (:class:`~zeronn.training.Trainer` for nanoGPT's loop).
    """
    for name, value in (("vocab_size", vocab_size), ("block_size", block_size),
                        ("n_layer", n_layer), ("n_head", n_head), ("n_embd", n_embd)):
        positive_number(name, value, integer=True)
    scale = (2 * n_layer) ** -0.5

    def dropped(layers: list[Layer]) -> list[Layer]:
        return [*layers, Dropout(dropout)] if dropout else layers

    layers: list[Layer] = dropped([Embedding(vocab_size, n_embd, init="gpt_normal"),
                                   PositionalEmbedding(block_size)])
    projections: list[Dense] = []
    for _ in range(n_layer):
        attention = MultiHeadAttention(n_head, causal=True, dropout=dropout, use_bias=bias,
                                       proj_scale=scale)
        fc, proj = (Dense(4 * n_embd, activation="gelu", init="gpt_normal", use_bias=bias),
                    Dense(n_embd, init="gpt_normal", use_bias=bias))
        projections.append(proj)
        layers += [Residual(dropped([LayerNorm(), attention])),
                   Residual(dropped([LayerNorm(), fc, proj]))]
    head = (TiedDense(vocab_size, activation="softmax") if tie_weights
            else Dense(vocab_size, activation="softmax", init="gpt_normal", use_bias=False))
    layers += [LayerNorm(), head]
    net = Sequential(layers, input_shape=(block_size,), dtype=dtype, seed=seed)
    for proj in projections:  # nanoGPT: c_proj.weight ~ N(0, (0.02 / sqrt(2 n_layer))^2)
        proj.W = proj.W * proj.W.dtype.type(scale)
    return net
