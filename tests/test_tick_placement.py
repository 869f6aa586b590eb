"""Axis ticks and labels for exact, hand-worked cases (tui/ticks.py): which step is chosen, where the
axis starts and ends, and what each label says. The property tests in test_charts.py check that ticks
are round and on whole rows; these pin the choices the rules make, worked out by hand from them."""
import math

import pytest

from neuraterm.tui.ticks import decade_label, format_ticks, linear_axis, log_axis, ticks_inside


@pytest.mark.parametrize("exponent,label", [(-5, "1e-5"), (-4, "0.0001"), (-1, "0.1"), (0, "1"), (1, "10"),
                                            (4, "10000"), (5, "1e5"), (12, "1e12")])
def test_a_decade_is_written_out_from_1e_minus_4_to_1e4(exponent, label):
    assert decade_label(exponent) == label


@pytest.mark.parametrize("ticks,step,m,e,labels", [
    ([0.0, 10.0, 20.0], 10.0, 1, 1, ["0", "10", "20"]),
    ([0.0, 0.25, 0.5], 0.25, 2.5, -1, ["0", "0.25", "0.50"]),  # 2.5 x 10^-1 needs one decimal more
    ([0.0, 2.5, 5.0], 2.5, 2.5, 0, ["0", "2.5", "5.0"]),
    ([-1e-17, 0.1], 0.1, 1, -1, ["0", "0.1"]),  # a hair from zero is zero
    ([0.0, 1e-5, 2e-5], 1e-5, 1, -5, ["0", "0.00001", "0.00002"]),  # five decimals: still fixed
    ([1e-6, 2e-6, 3e-6], 1e-6, 1, -6, ["1e-06", "2e-06", "3e-06"]),  # six: scientific
    ([1e-5, 1.1e-5, 1.2e-5], 1e-7, 1, -7, ["1.00e-05", "1.10e-05", "1.20e-05"]),  # digits down to the step
    ([2.5e-7, 5e-7], 2.5e-7, 2.5, -7, ["2.5e-07", "5.0e-07"]),
])
def test_labels_have_the_decimals_the_step_needs(ticks, step, m, e, labels):
    assert format_ticks(ticks, step, m, e) == labels


@pytest.mark.parametrize("vmin,vmax,most,step,ticks", [
    # 0.1 and 0.2 leave 5 and 2 multiples in [0.3, 0.7]; 0.25 the first to leave one: 0.5
    (0.3, 0.7, 1, (0.25, 2.5, -1), [0.5]),
    # steps from 10/12: 1, 2 and 2.5 leave 11, 6 and 5 multiples in [0, 10]; 5 leaves 3
    (0.0, 10.0, 3, (5.0, 5, 0), [0.0, 5.0, 10.0]),
])
def test_ticks_inside_takes_the_finest_step_with_few_enough_multiples(vmin, vmax, most, step, ticks):
    found_step, found = ticks_inside(vmin, vmax, most)
    assert found_step[1:] == step[1:] and found_step[0] == pytest.approx(step[0])
    assert found == pytest.approx(ticks)


def axis_is(axis, lo, hi, ticks, labels):
    assert (axis.lo, axis.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert axis.ticks == pytest.approx(ticks)
    assert axis.labels == labels


def test_a_linear_axis_of_eleven_rows_over_0_to_1_ticks_every_0_2():
    # a step of 0.1 puts a tick on every row, 11 of them: too many; 0.2 puts 6 ticks 2 rows apart
    axis_is(linear_axis(0.0, 1.0, 11), 0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])


def test_a_constant_gets_a_window_of_a_nice_step_around_it():
    # 5: a pad of 0.5 (the first nice step >= 10% of 5): 4.5..5.5; 0.1 and 0.2 give 11 ticks,
    # 0.25 puts 6 ticks 2 rows apart from 4.5, to 5.75
    axis_is(linear_axis(5.0, 5.0, 11), 4.5, 5.75, [4.5, 4.75, 5.0, 5.25, 5.5, 5.75],
            ["4.50", "4.75", "5.00", "5.25", "5.50", "5.75"])
    # 0: the window is 0..1 (never below zero for values that are not)
    axis_is(linear_axis(0.0, 0.0, 11), 0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            ["0", "0.2", "0.4", "0.6", "0.8", "1.0"])


def test_two_rows_across_zero_fall_back_to_the_nice_values_inside():
    # on 2 rows no step puts -1 and 1 on whole rows (every lo is a step below -1): past 10x the
    # values' size the search stops, and the one nice value inside is 0
    axis_is(linear_axis(-1.0, 1.0, 2), -1.0, 1.0, [0.0], ["0"])


def test_an_axis_of_fewer_than_two_cells_has_no_ticks():
    axis_is(linear_axis(0.0, 1.0, 1), 0.0, 1.0, [], [])
    axis_is(log_axis(1.0, 100.0, 1), 0.0, 2.0, [], [])


@pytest.mark.parametrize("vmin,vmax,cells,exponents,labels", [
    (1.0, 1e3, 4, [0, 1, 2, 3], ["1", "10", "100", "1000"]),  # a decade a row
    # a decade a step would be 7 ticks, one more than six: two decades
    (1.0, 1e6, 13, [0, 2, 4, 6], ["1", "100", "10000", "1e6"]),
    # 1, 2, 3 decades: too many ticks or under two rows apart; 5 fits
    (1.0, 1e25, 11, [0, 5, 10, 15, 20, 25], ["1", "1e5", "1e10", "1e15", "1e20", "1e25"]),
    (1.0, 1e250, 11, [0, 50, 100, 150, 200, 250], ["1", "1e50", "1e100", "1e150", "1e200", "1e250"]),
])
def test_a_log_axis_ticks_whole_decades_from_its_steps(vmin, vmax, cells, exponents, labels):
    axis = log_axis(vmin, vmax, cells)
    assert axis.ticks == pytest.approx(exponents)
    assert axis.lo == pytest.approx(exponents[0]) and axis.hi == pytest.approx(exponents[-1])
    assert axis.labels == labels


def test_a_log_axis_under_a_decade_labels_round_values_at_their_logarithms():
    # 2..5: decades do not fit; the values 2, 3, 4, 5 (a step of 1: 0.5 leaves 7 inside, over five)
    axis = log_axis(2.0, 5.0, 11)
    assert (axis.lo, axis.hi) == (pytest.approx(math.log10(2)), pytest.approx(math.log10(5)))
    assert axis.ticks == pytest.approx([math.log10(v) for v in (2, 3, 4, 5)])
    assert axis.labels == ["2", "3", "4", "5"]
    # a constant 3: from half to twice it, 1.5..6, labelled 2 to 6
    axis = log_axis(3.0, 3.0, 11)
    assert (axis.lo, axis.hi) == (pytest.approx(math.log10(1.5)), pytest.approx(math.log10(6)))
    assert axis.labels == ["2", "3", "4", "5", "6"]


def test_an_axis_starts_on_the_step_at_or_below_its_lowest_value():
    # 0.3 / 0.1 is 2.9999999999999996 in floats: the axis still starts at 0.3, not 0.2; 0.05 would
    # tick every row (11 > 6 ticks), 0.1 ticks every second row from 0.3 to 0.8
    axis_is(linear_axis(0.3, 0.7, 11), 0.3, 0.8, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
            ["0.3", "0.4", "0.5", "0.6", "0.7", "0.8"])


def test_from_five_rows_on_ticks_are_at_least_two_rows_apart():
    # a step of 1 over 0..5 on 6 rows would label every row: 2 is the first with a row between
    axis_is(linear_axis(0.0, 5.0, 6), 0.0, 5.0, [0.0, 2.0, 4.0], ["0", "2", "4"])


def test_a_top_just_past_a_tick_is_not_forgiven_beyond_eps():
    # the top is 2.4e-10 above 2.0, more than EPS forgives (1e-9 of the 0.12 range): the steps 0.25,
    # 0.5, 1 and 2, whose last tick would be 2.0, are refused; 2.5 from 0 is the first to cover it
    axis_is(linear_axis(1.88, 2.00000000024, 2), 0.0, 2.5, [0.0, 2.5], ["0", "2.5"])


def test_the_ceiling_drops_the_labels_above_it():
    # 50 is the first step >= 82.6 / 3; on 4 rows it ticks 0, 50, 100 and 150, and an accuracy
    # axis stops labelling at 100
    axis_is(linear_axis(8.7, 91.3, 4), 0.0, 150.0, [0.0, 50.0, 100.0, 150.0], ["0", "50", "100", "150"])
    axis_is(linear_axis(8.7, 91.3, 4, ceiling=100), 0.0, 150.0, [0.0, 50.0, 100.0], ["0", "50", "100"])


def test_labels_of_negative_ticks_and_of_a_step_of_five_in_scientific_notation():
    assert format_ticks([-0.5, 0.0, 0.5], 0.5, 5, -1) == ["-0.5", "0", "0.5"]
    assert format_ticks([5e-7, 1e-6], 5e-7, 5, -7) == ["5.0e-07", "1.0e-06"]


def test_a_log_axis_of_three_rows_under_a_decade_takes_one_round_value():
    # 2..4 on 3 rows: a decade a step leaves one tick; one nice value inside (2.5: 0.5, 1 and 2
    # leave 5, 3 and 2 of them)
    axis = log_axis(2.0, 4.0, 3)
    assert (axis.lo, axis.hi) == (pytest.approx(math.log10(2)), pytest.approx(math.log10(4)))
    assert axis.ticks == pytest.approx([math.log10(2.5)]) and axis.labels == ["2.5"]


def test_a_tick_a_hair_from_zero_is_labelled_zero_at_any_step():
    # within a millionth of the step of zero: zero, also on a step of 1e-8 (scientific labels)
    assert format_ticks([-1e-23, 1e-8, 2e-8], 1e-8, 1, -8) == ["0e+00", "1e-08", "2e-08"]


def test_thirty_decades_on_seven_rows_tick_every_ten():
    # 1, 2, 3 and 5 decades a step leave ticks under two rows apart; 10 puts 4 ticks 2 rows apart
    axis = log_axis(1.0, 1e30, 7)
    assert axis.ticks == pytest.approx([0, 10, 20, 30]) and axis.labels == ["1", "1e10", "1e20", "1e30"]


def test_nine_decades_on_seven_rows_tick_every_three():
    # 1 and 2 decades a step leave ticks under two rows apart; 3 puts 4 ticks 2 rows apart
    axis = log_axis(1.0, 1e9, 7)
    assert axis.ticks == pytest.approx([0, 3, 6, 9]) and axis.labels == ["1", "1000", "1e6", "1e9"]


def test_five_rows_are_already_too_few_for_a_tick_on_every_row():
    # 0..4 on 5 rows: a step of 1 labels every row; 2 is the first with a row between
    axis_is(linear_axis(0.0, 4.0, 5), 0.0, 4.0, [0.0, 2.0, 4.0], ["0", "2", "4"])


def test_at_most_six_ticks_by_default():
    # 0..6 on 13 rows: a step of 1 gives 7 ticks two rows apart, one too many; 2 gives 4
    axis_is(linear_axis(0.0, 6.0, 13), 0.0, 6.0, [0.0, 2.0, 4.0, 6.0], ["0", "2", "4", "6"])


def test_the_top_of_the_range_is_a_tick_when_a_multiple_sits_there():
    # 0.7 / 0.1 is 6.999999999999999 in floats: 0.7 is still a multiple inside [0.3, 0.7]; 0.02, 0.025
    # and 0.05 leave 21, 17 and 9 of them, 0.1 five
    step, ticks = ticks_inside(0.3, 0.7, 5)
    assert step[1:] == (1, -1) and ticks == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])
