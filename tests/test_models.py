"""Sequential and MLP: what users hold (repr, copy, fit's signature, MLP as Dense layers)."""

from __future__ import annotations

import inspect
import pydoc

import numpy as np
import pytest

import zeronn as zn
from zeronn import training


def test_sequential_repr_rebuilds_the_network():
    net = zn.Sequential([zn.Dense(4, "relu", init="glorot_uniform"), zn.BatchNorm(momentum=None),
                         zn.Dropout(0.2), zn.Dense(3, use_bias=False), zn.LayerNorm(),
                         zn.Activation("softmax")], input_dim=5, dtype="float32", seed=0)
    text = repr(net)
    assert text == ("Sequential([Dense(4, activation='relu', init='glorot_uniform'), "
                    "BatchNorm(momentum=None, eps=1e-05), Dropout(0.2), "
                    "Dense(3, use_bias=False), LayerNorm(eps=1e-05), Activation('softmax')], "
                    "input_dim=5, dtype='float32')")
    again = eval(text, {"Sequential": zn.Sequential, "Dense": zn.Dense,
                        "BatchNorm": zn.BatchNorm, "Dropout": zn.Dropout,
                        "LayerNorm": zn.LayerNorm, "Activation": zn.Activation})
    assert repr(again) == text and again.n_params == net.n_params
    image = zn.Sequential([zn.BatchNorm()], input_shape=(2, 3, 3))
    assert repr(image) == ("Sequential([BatchNorm(momentum=0.1, eps=1e-05)], "
                           "input_shape=(2, 3, 3), dtype='float64')")
    assert image.output_shape == (2, 3, 3) and image.n_outputs == 18


def test_copy_keeps_the_class():
    seq = zn.Sequential([zn.Dense(2)], input_dim=3, seed=0)
    mlp = zn.MLP([3, 4, 2], activation="tanh", seed=0)
    assert type(seq.copy()) is zn.Sequential and type(seq.copy("float32")) is zn.Sequential
    twin = mlp.copy("float32")
    assert type(twin) is zn.MLP and twin.layer_sizes == [3, 4, 2]
    assert twin.activations == ["tanh"] and twin.dtype == np.float32
    assert repr(twin) == repr(mlp).replace("float64", "float32")


def test_fit_shows_its_real_parameters():
    """help(zn.MLP.fit) must list the parameters, not **kwargs, and match training.fit's."""
    sig = inspect.signature(zn.MLP.fit)
    kinds = {p.kind for p in sig.parameters.values()}
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    assert inspect.Parameter.VAR_POSITIONAL not in kinds
    ours = list(sig.parameters.values())[1:]  # without self
    theirs = list(inspect.signature(training.fit).parameters.values())[1:]  # without net
    assert [(p.name, p.default) for p in ours] == [(p.name, p.default) for p in theirs]
    assert zn.Sequential.fit is zn.MLP.fit
    text = pydoc.render_doc(zn.MLP.fit, renderer=pydoc.plaintext)
    for part in ("batch_size: 'int | None' = 32", "epochs: 'int' = 100", "seed:",
                 "validation_split", "early_stopping", "Returns this fit's"):
        assert part in text, part
    assert "**kwargs" not in text


def test_mlp_is_a_sequential_of_dense_layers():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 2))
    mlp = zn.MLP([3, 5, 4, 2], activation=["relu", "tanh"], seed=3)
    seq = zn.Sequential([zn.Dense(5, "relu"), zn.Dense(4, "tanh"), zn.Dense(2)], input_dim=3,
                        seed=3)
    assert isinstance(mlp, zn.Sequential) and isinstance(mlp, zn.Network)
    assert [type(layer) for layer in mlp.layers] == [zn.Dense] * 3
    np.testing.assert_array_equal(mlp.flat_params, seq.flat_params)  # the same initialisation
    hm = mlp.fit(X, y, epochs=3, batch_size=4, seed=1)
    hs = seq.fit(X, y, epochs=3, batch_size=4, seed=1)
    assert hm["loss"] == hs["loss"]
    np.testing.assert_array_equal(mlp.predict(X), seq.predict(X))


def test_fit_returns_this_fits_history_and_keeps_all():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal((12, 1))
    net = zn.Sequential([zn.Dense(4, "relu"), zn.BatchNorm(), zn.Dense(1)], input_dim=3, seed=0)
    first = net.fit(X, y, epochs=2, batch_size=6)
    second = net.fit(X, y, epochs=3, batch_size=6)
    assert isinstance(first, zn.History) and (first.epochs, second.epochs) == (2, 3)
    assert net.history is not None and net.history.epochs == 5
    assert net.history["loss"] == first["loss"] + second["loss"]
    assert int(net.layers[1].num_batches_tracked) == 10


def test_from_classic_keeps_the_seeds_weights(seed_problem):
    X, _, nn = seed_problem
    net = zn.MLP.from_classic(nn)
    assert net.layer_sizes == [2, 5, 1] and net.activations == ["relu"]
    for p, q in zip(net.params, [nn.W1, nn.b1, nn.W2, nn.b2]):
        np.testing.assert_array_equal(p, q)
    np.testing.assert_allclose(net.predict(X), nn.forward(X), rtol=1e-14)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"layer_sizes": "123"}, "layer_sizes needs at least"),
    ({"layer_sizes": [3, 4, 1], "init": [np.ones((3, 4))] * 3}, r"expected 4 arrays"),
])
def test_mlp_construction_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zn.MLP(**kwargs)
