"""make_task's validation size follows scikit-learn's train_test_split:
a float is a fraction in (0, 1), an integer is a count of rows."""

import numpy as np
import pytest

from fastnn.data import make_task, validation_count


@pytest.mark.parametrize("val_size,count", [
    (0.1, 900), (0.5, 4500), (np.float32(0.25), 2250),  # fractions of the 9,000 rows
    (1, 1), (100, 100), (np.int64(7), 7),  # counts
    (0, 0), (0.0, 0),  # no validation at all
])
def test_a_float_is_a_fraction_and_an_integer_a_count(val_size, count):
    assert validation_count(val_size, 9000) == count


def test_a_small_fraction_still_holds_out_a_row():
    assert validation_count(0.001, 200) == 1


@pytest.mark.parametrize("val_size,message", [
    (1.0, r"validation size 1\.0 is a fraction, and a fraction must lie in \(0, 1\); "
          r"for a count of rows give an integer \(1\)"),
    (2.0, r"validation size 2\.0 is a fraction, and a fraction must lie in \(0, 1\); "
          r"for a count of rows give an integer \(2\)"),
    (np.float64(1.0), r"validation size 1\.0 is a fraction"),
    (1.5, r"validation size 1\.5 is a fraction, and a fraction must lie in \(0, 1\)$"),
    (-0.1, r"validation size -0\.1 must be a fraction in \(0, 1\) or a count >= 0"),
    (-3, r"validation size -3 must be a fraction in \(0, 1\) or a count >= 0"),
    (float("nan"), r"validation size nan must be a fraction in \(0, 1\) or a count >= 0"),
    (True, r"validation size True must be a fraction in \(0, 1\) or a count >= 0"),
    ("0.1", r"validation size '0\.1' must be a fraction in \(0, 1\) or a count >= 0"),
    (9000, r"validation size 9000 leaves no training data \(9000 rows in the task\)"),
    (0.99999, r"validation size 0\.99999 \(9000 rows\) leaves no training data \(9000 rows in the "
              r"task\)"),
])
def test_sizes_that_are_neither_are_refused_with_the_rule(val_size, message):
    with pytest.raises(ValueError, match=message):
        validation_count(val_size, 9000)


def test_one_point_zero_is_refused_by_make_task_instead_of_holding_out_one_row(sample_data):
    with pytest.raises(ValueError, match=r"validation size 1\.0 is a fraction"):
        make_task(sample_data, val_size=1.0)
    assert len(make_task(sample_data, val_size=1).x_val) == 1
