"""Learning-rate schedules: torch.optim.lr_scheduler's closed forms and plateau rule."""

from __future__ import annotations

import math

import pytest

from zeronn import optim, schedules
from zeronn.schedules import WarmupCosine, get_schedule


@pytest.mark.parametrize(("factory", "match"), [
    (lambda: schedules.StepLR(step_size=0), "step_size must be a positive integer"),
    (lambda: schedules.ReduceLROnPlateau(factor=2), "factor must be < 1"),
    (lambda: schedules.get_schedule("warmup"), "unknown learning-rate schedule 'warmup'"),
])
def test_bad_hyperparameters(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_repr():
    assert repr(schedules.StepLR(3, 0.5)) == "StepLR(step_size=3, gamma=0.5)"


def test_lookup_is_case_insensitive_and_lists_the_known_names():
    assert isinstance(schedules.get_schedule("Step"), schedules.StepLR)
    with pytest.raises(ValueError, match=r"known: constant, cosine, exponential, plateau, step"):
        schedules.get_schedule(3)


def test_optim_re_exports_the_schedules():
    for name in schedules.__all__:
        assert getattr(optim, name) is getattr(schedules, name)
        assert name in optim.__all__


def test_schedules_closed_forms():
    assert [schedules.StepLR(2, 0.1).lr(e, 1.0) for e in range(5)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01])
    assert schedules.ExponentialLR(0.5).lr(3, 2.0) == 0.25
    cos = schedules.CosineAnnealingLR(T_max=10, eta_min=0.1)
    assert cos.lr(0, 1.0) == 1.0 and cos.lr(10, 1.0) == pytest.approx(0.1)
    assert cos.lr(5, 1.0) == pytest.approx(0.55)
    assert schedules.Constant().lr(7, 0.3) == 0.3
    assert isinstance(schedules.get_schedule(None), schedules.Constant)
    assert isinstance(schedules.get_schedule("cosine"), schedules.CosineAnnealingLR)


def test_plateau_follows_torch_semantics():
    s = schedules.ReduceLROnPlateau(factor=0.5, patience=2, min_lr=0.2)
    lrs = []
    for e, metric in enumerate([1.0, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]):
        lrs.append(s.lr(e, 1.0))
        s.observe(metric)
    # best 0.5 at epoch 1; 3 bad epochs (> patience 2) -> halve; again 3 later; floor 0.2
    assert lrs == pytest.approx([1, 1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])
    s.observe(0.6)
    s.observe(0.6)
    s.observe(0.6)
    assert s.lr(11, 1.0) == 0.2


def test_warmup_cosine_is_nanogpts_get_lr():
    """nanoGPT's train.py get_lr(it) with learning_rate 1e-3, warmup_iters 100,
    lr_decay_iters 2000, min_lr 1e-4, written out again here."""
    def get_lr(it):
        if it < 100:
            return 1e-3 * (it + 1) / (100 + 1)
        if it > 2000:
            return 1e-4
        decay_ratio = (it - 100) / (2000 - 100)
        coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
        return 1e-4 + coeff * (1e-3 - 1e-4)
    sched = WarmupCosine(100, 2000, min_lr=1e-4)
    for it in (0, 1, 50, 99, 100, 101, 1000, 1999, 2000, 2001, 5000):
        assert sched.lr(it, 1e-3) == pytest.approx(get_lr(it), rel=1e-15)
    assert get_schedule("warmup_cosine").lr(0, 1.0) == pytest.approx(1 / 101)
    with pytest.raises(ValueError, match="must be larger than warmup"):
        WarmupCosine(100, 100)
