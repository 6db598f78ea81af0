"""Learning-rate schedules: torch.optim.lr_scheduler's closed forms and plateau rule."""

from __future__ import annotations

import pytest

from zeronn import optim, schedules


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
