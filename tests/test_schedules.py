"""Learning-rate schedules against their formulas by hand: the defaults a preset leaves out, the cosine
warm-up, the floors, and ReduceLROnPlateau's rule step by step (the PyTorch parity tests cover the
shapes; these cover what a preset file can reach that they do not)."""
import math

import pytest

from neuraterm.core.errors import NeuratermError
from neuraterm.core.optim import schedules
from neuraterm.core.optim.schedules import ReduceLROnPlateau


def lrs(schedule, epochs):
    return [schedule(e) for e in range(epochs)]


def test_schedule_defaults_a_preset_may_leave_out():
    assert lrs(schedules.build("exponential", 0.1, 10), 3) == pytest.approx([0.1, 0.095, 0.1 * 0.95 ** 2])
    assert lrs(schedules.build("step", 0.1, 30), 21)[9:12] == pytest.approx([0.1, 0.01, 0.01])
    assert schedules.build("step", 0.1, 30)(20) == pytest.approx(0.001)
    assert lrs(schedules.build("linear", 0.1, 10), 11)[::5] == pytest.approx([0.1, 0.05, 0.0])
    assert schedules.build("constant", 0.3, 10)(7) == schedules.build("plateau", 0.3, 10)(7) == 0.3


def test_schedule_options_by_hand():
    linear = schedules.build("linear", 0.1, 10, decay_epochs=4, lr_min=0.02)
    assert lrs(linear, 6) == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.02, 0.02])
    assert lrs(schedules.build("exponential", 0.2, 5, gamma=0.5), 3) == pytest.approx([0.2, 0.1, 0.05])
    assert lrs(schedules.build("step", 1.0, 9, step_size=2, gamma=0.5), 5) == pytest.approx([1, 1, 0.5, 0.5, 0.25])


def test_cosine_schedule_warms_up_then_follows_half_a_cosine_to_its_floor():
    cosine = schedules.build("cosine", 0.1, 10, warmup=2, lr_min=0.01)
    assert cosine(0) == pytest.approx(0.1 / 3) and cosine(1) == pytest.approx(0.2 / 3)
    assert cosine(2) == pytest.approx(0.1)
    assert cosine(6) == pytest.approx(0.01 + 0.5 * 0.09 * (1 + math.cos(math.pi * 4 / 8)))
    assert cosine(10) == pytest.approx(0.01) and cosine(25) == pytest.approx(0.01)  # stays at the floor
    plain = schedules.build("cosine", 0.1, 4)
    assert lrs(plain, 5) == pytest.approx([0.1, 0.05 * (1 + math.cos(math.pi / 4)), 0.05,
                                           0.05 * (1 + math.cos(3 * math.pi / 4)), 0.0])
    assert schedules.build("cosine", 0.1, 1, warmup=3)(3) == pytest.approx(0.1)  # no room left: lr0, never a crash


def test_an_unknown_schedule_names_the_known_ones():
    with pytest.raises(NeuratermError, match="unknown schedule 'cosin'; expected one of constant, plateau, linear"):
        schedules.build("cosin", 0.1, 10)


def test_plateau_schedule_step_by_step_by_hand():
    """min mode, patience 2, halving down to 0.02; an improvement under 1e-4 relative is no improvement."""
    plateau = ReduceLROnPlateau(0.1, factor=0.5, patience=2, min_lr=0.02)
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.89995, 0.5] + [0.6] * 9
    expected = [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02]
    got = [plateau.step(v) for v in values]
    assert got == pytest.approx(expected), got
    assert plateau.best == 0.5 and plateau.bad_epochs == 0


def test_plateau_schedule_in_max_mode_and_its_state_resumes_it():
    plateau = ReduceLROnPlateau(0.1, factor=0.5, patience=0, mode="max")
    assert plateau.step(0.5) == 0.1
    assert plateau.step(0.50004) == pytest.approx(0.05)  # not 1e-4 better: a bad epoch, patience 0
    assert plateau.step(0.6) == pytest.approx(0.05) and plateau.best == 0.6
    state = plateau.state()
    assert state == {"lr": pytest.approx(0.05), "factor": 0.5, "patience": 0, "min_lr": 0.0, "threshold": 1e-4,
                     "mode": "max", "best": 0.6, "bad_epochs": 0}
    again = ReduceLROnPlateau(**state)
    assert [again.step(v) for v in (0.55, 0.7)] == [plateau.step(v) for v in (0.55, 0.7)] == pytest.approx([0.025, 0.025])


def test_plateau_defaults_are_pytorchs_factor_and_patience():
    """ReduceLROnPlateau(lr) alone: factor 0.1 after 10 epochs without improvement (PyTorch's defaults)."""
    plateau = ReduceLROnPlateau(1.0)
    got = [plateau.step(v) for v in [1.0] + [1.0] * 11]
    assert got[:11] == [1.0] * 11  # the best, then 10 bad epochs: patience is not yet exceeded
    assert got[11] == pytest.approx(0.1)


def test_plateau_does_not_lower_the_lr_by_less_than_1e_8():
    """PyTorch's eps: a reduction smaller than 1e-8 is not made (the LR is at its useful floor)."""
    plateau = ReduceLROnPlateau(1.5e-8, factor=0.5, patience=0)
    assert plateau.step(1.0) == 1.5e-8
    assert plateau.step(1.0) == 1.5e-8  # would be 7.5e-9: 7.5e-9 less, under 1e-8
    assert plateau.bad_epochs == 0  # the bad-epoch count starts over all the same
    bigger = ReduceLROnPlateau(3e-8, factor=0.5, patience=0)
    assert [bigger.step(1.0), bigger.step(1.0)] == [3e-8, 1.5e-8]  # 1.5e-8 less: made


def test_an_improvement_of_exactly_the_threshold_is_not_one():
    """PyTorch's rule is strict: better than best x (1 - 1e-4) in min mode, x (1 + 1e-4) in max mode."""
    low = ReduceLROnPlateau(0.1, factor=0.5, patience=0, mode="".join(["m", "in"]))  # a parsed string, not the literal
    assert low.step(2.0) == 0.1
    assert low.step(2.0 * (1 - 1e-4)) == pytest.approx(0.05) and low.best == 2.0
    assert low.step(1.9) == pytest.approx(0.05) and low.best == 1.9
    high = ReduceLROnPlateau(0.1, factor=0.5, patience=0, mode="max")
    assert high.step(2.0) == 0.1
    assert high.step(2.0 * (1 + 1e-4)) == pytest.approx(0.05) and high.best == 2.0


def test_a_reduction_of_exactly_1e_8_is_not_made():
    plateau = ReduceLROnPlateau(2e-8, factor=0.5, patience=0)
    assert [plateau.step(1.0), plateau.step(1.0)] == [2e-8, 2e-8]  # 2e-8 - 1e-8 is not more than 1e-8


def test_cosine_reaches_its_floor_one_epoch_after_a_warm_up_that_leaves_one_epoch():
    cosine = schedules.build("cosine", 0.1, 3, warmup=2, lr_min=0.01)
    assert [cosine(e) for e in range(5)] == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.01, 0.01])


def test_linear_decay_stays_at_zero_after_its_epochs():
    linear = schedules.build("linear", 0.1, 10)
    assert [linear(e) for e in (10, 15, 40)] == [0.0, 0.0, 0.0]  # never a negative LR
