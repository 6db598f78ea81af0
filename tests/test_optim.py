"""Each optimizer's steps recomputed by hand (torch.optim's formulas) on a small case."""

from __future__ import annotations

import math

import numpy as np
import pytest

import zeronn as zn
from zeronn import optim

P0 = np.array([[0.5, -1.0], [2.0, 0.25]])
GRADS = [np.array([[0.1, -0.2], [0.3, 0.05]]) * (k + 1) * (-1) ** k for k in range(4)]


def _run(opt: optim.Optimizer) -> np.ndarray:
    p = P0.copy()
    for g in GRADS:
        gc = g.copy()
        opt.step([p], [gc])
        np.testing.assert_array_equal(gc, g)  # step never changes the caller's grads
    return p


def _by_hand_sgd(lr, momentum=0.0, nesterov=False, wd=0.0, dampening=0.0):
    p, buf = P0.copy(), None
    for g in GRADS:
        d = g + wd * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


@pytest.mark.parametrize("kw", [
    {}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"weight_decay": 0.1},
    {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.01},
])
def test_sgd(kw):
    hand = _by_hand_sgd(0.1, kw.get("momentum", 0.0), kw.get("nesterov", False),
                        kw.get("weight_decay", 0.0), kw.get("dampening", 0.0))
    np.testing.assert_allclose(_run(optim.SGD(lr=0.1, **kw)), hand, rtol=1e-14)


def test_adagrad():
    p, acc = P0.copy(), np.zeros_like(P0)
    for g in GRADS:
        acc = acc + g * g
        p = p - 0.05 * g / (np.sqrt(acc) + 1e-10)
    np.testing.assert_allclose(_run(optim.AdaGrad(lr=0.05)), p, rtol=1e-14)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("centered", [False, True])
def test_rmsprop(momentum, centered):
    p, v, buf, ga = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), np.zeros_like(P0)
    for g in GRADS:
        v = 0.99 * v + 0.01 * g * g
        avg = v
        if centered:
            ga = 0.99 * ga + 0.01 * g
            avg = v - ga * ga
        denom = np.sqrt(avg) + 1e-8
        if momentum:
            buf = momentum * buf + g / denom
            p = p - 0.01 * buf
        else:
            p = p - 0.01 * g / denom
    got = _run(optim.RMSProp(lr=0.01, momentum=momentum, centered=centered))
    np.testing.assert_allclose(got, p, rtol=1e-13)


@pytest.mark.parametrize(("cls", "wd"), [(optim.Adam, 0.0), (optim.Adam, 0.1),
                                         (optim.AdamW, 0.01), (optim.AdamW, 0.3)])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_and_adamw(cls, wd, amsgrad):
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p, m, v, vmax = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), np.zeros_like(P0)
    for t, g in enumerate(GRADS, start=1):
        if cls is optim.AdamW:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vv = vmax if amsgrad else v
        denom = np.sqrt(vv) / math.sqrt(1 - b2 ** t) + eps
        p = p - lr / (1 - b1 ** t) * m / denom
    got = _run(cls(lr=lr, weight_decay=wd, amsgrad=amsgrad))
    np.testing.assert_allclose(got, p, rtol=1e-13)


def test_torch_defaults():
    assert optim.SGD().lr == 0.01
    a = optim.Adam()
    assert (a.lr, a.betas, a.eps, a.weight_decay) == (1e-3, (0.9, 0.999), 1e-8, 0.0)
    assert optim.AdamW().weight_decay == 0.01
    r = optim.RMSProp()
    assert (r.lr, r.alpha, r.eps, r.momentum) == (0.01, 0.99, 1e-8, 0.0)
    g = optim.AdaGrad()
    assert (g.lr, g.eps) == (0.01, 1e-10)


def test_scratch_grads_gives_the_same_update():
    for cls in (optim.SGD, optim.AdaGrad, optim.RMSProp, optim.Adam, optim.AdamW):
        a, b = cls(lr=0.01), cls(lr=0.01)
        pa, pb = P0.copy(), P0.copy()
        for g in GRADS:
            a.step([pa], [g.copy()])
            b.step([pb], [g.copy()], scratch_grads=True)
        np.testing.assert_array_equal(pa, pb)


def test_state_dict_round_trip_continues_identically():
    a = optim.Adam(lr=0.01)
    pa = P0.copy()
    for g in GRADS[:2]:
        a.step([pa], [g])
    b = optim.Adam(**{k: (tuple(v) if k == "betas" else v)
                      for k, v in a.hyperparameters().items()})
    b.load_state_dict(a.state_dict())
    pb = pa.copy()
    for g in GRADS[2:]:
        a.step([pa], [g])
        b.step([pb], [g])
    np.testing.assert_array_equal(pa, pb)
    assert a.state_dict()["t"] == 4


def test_state_for_other_parameters_is_refused():
    opt = optim.SGD(lr=0.1, momentum=0.9)
    opt.step([P0.copy()], [GRADS[0]])
    with pytest.raises(ValueError, match="holds state for other parameters"):
        opt.step([np.zeros(3)], [np.zeros(3)])
    opt.reset()
    opt.step([np.zeros(3)], [np.zeros(3)])
    with pytest.raises(ValueError, match="got 1 params but 2 grads"):
        opt.step([np.zeros(3)], [np.zeros(3), np.zeros(3)])


@pytest.mark.parametrize(("factory", "match"), [
    (lambda: optim.SGD(lr=-1), "lr must be a positive finite number"),
    (lambda: optim.SGD(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: optim.SGD(lr=0.1, momentum=-0.5), "momentum must be a finite number >= 0"),
    (lambda: optim.Adam(betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\)"),
    (lambda: optim.Adam(eps=0), "eps must be a positive finite number"),
    (lambda: optim.AdamW(weight_decay=float("nan")), "weight_decay must be a finite number"),
    (lambda: optim.get_optimizer("lbfgs"), r"unknown optimizer 'lbfgs'; known: adagrad, adam"),
])
def test_bad_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_registry_and_repr():
    assert set(optim.OPTIMIZERS) == {"sgd", "adagrad", "rmsprop", "adam", "adamw"}
    assert isinstance(optim.get_optimizer("Adam", lr=0.1), optim.Adam)
    assert repr(optim.SGD(lr=0.5)) == ("SGD(lr=0.5, weight_decay=0.0, momentum=0.0, "
                                       "nesterov=False, dampening=0.0)")


@pytest.mark.parametrize("cls", [
    optim.SGD, optim.Adam, optim.AdamW, optim.AdaGrad,
    lambda lr: optim.SGD(lr=lr, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda lr: optim.RMSProp(lr=lr, momentum=0.5, centered=True, weight_decay=0.1),
], ids=["sgd", "adam", "adamw", "adagrad", "sgd-nesterov-wd", "rmsprop-centered-wd"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_chunked_update_of_a_flat_buffer_equals_the_whole_array_update(cls, dtype):
    """Past 2 * _CHUNK elements the buffer is updated chunk by chunk (for the cache); every
    element sees the same arithmetic, so the result is bitwise the same as in one piece
    (a non-contiguous view is updated in one piece)."""
    rng = np.random.default_rng(0)
    n = 2 * optim._CHUNK + 1234
    p0 = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(3)]
    flat, nd = cls(lr=0.01), cls(lr=0.01)
    pa = p0.copy()
    pb = np.empty((n, 2), dtype)[:, 0]  # strided: no flat view, the whole-array path
    pb[:] = p0
    for g in grads:
        flat.step([pa], [g.copy()], scratch_grads=True)
        gb = np.empty((n, 2), dtype)[:, 0]
        gb[:] = g
        nd.step([pb], [gb], scratch_grads=True)
    np.testing.assert_array_equal(pa, pb)
    assert pa.dtype == dtype and not np.array_equal(pa, p0)


@pytest.mark.parametrize("opt", [
    optim.SGD(lr=0.1, momentum=0.9), optim.AdaGrad(initial_accumulator_value=0.5),
    optim.RMSProp(momentum=0.5, centered=True), optim.Adam(amsgrad=True), optim.AdamW(),
], ids=lambda o: type(o).__name__)
def test_init_state_is_the_state_the_first_step_creates(opt):
    p = np.zeros(3)
    fresh = opt.init_state(p)
    opt.step([p], [np.ones(3)])
    assert set(fresh) == set(opt.state_dict()["state"][0])
    assert all(a.shape == p.shape for a in fresh.values())


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam, optim.AdamW])
def test_decay_weights_leaves_biases_and_gains_alone(cls):
    """decay="weights": the update of a bias or a norm gain is the one without decay; a
    weight matrix's is the one with it (nanoGPT's two AdamW groups)."""
    net = zn.Sequential([zn.Dense(3), zn.LayerNorm(), zn.Dense(2)], input_dim=2, seed=0)
    names = [n for layer in net.layers for n in layer.param_names]
    assert [layer.decayed() for layer in net.layers] == [[True, False], [False, False],
                                                          [True, False]]
    masks = np.split(net.decay_mask(), np.cumsum([p.size for p in net.params])[:-1])
    grads = [np.full(p.shape, 0.1) for p in net.params]
    results = {}
    for decay, wd in (("weights", 0.5), ("all", 0.5), ("all", 0.0)):
        opt = cls(lr=0.1, weight_decay=wd, decay=decay)
        params = [p.copy() for p in net.params]
        opt.prepare(params, grads)
        opt.decay_mask = masks
        opt.step(params, grads)
        results[decay, wd] = params
    for name, masked, full, plain in zip(names, results["weights", 0.5],
                                         results["all", 0.5], results["all", 0.0]):
        # The same arithmetic as one of the two references: equal in one process.
        np.testing.assert_array_equal(masked, full if name == "W" else plain)
    assert not np.array_equal(results["all", 0.5][0], results["all", 0.0][0])
    assert cls(decay="weights").hyperparameters()["decay"] == "weights"
    assert "decay" not in cls().hyperparameters()  # files of before keep their form
    with pytest.raises(ValueError, match="decay must be one of 'all', 'weights'"):
        cls(decay="bias")
