"""Class-id labels: the one check the Distiller and the exporter share."""

import numpy as np
import pytest

from kd_keras.class_ids import check_class_names
from kd_keras.class_ids import label_problem
from kd_keras.class_ids import out_of_range
from kd_keras.errors import UsageError


@pytest.mark.parametrize("labels, num_classes", [
    ([0, 1, 2, -1], 3),
    (np.array([[0], [2], [-1]]), 3),      # one column is one label per example
    (np.array([1.0, 0.0, -1.0]), 2),      # whole floats are ids
    (np.array([True, False]), 2),         # so are booleans
    (np.array([7, 0]), None),             # no class count: only >= -1
    (np.array([], "int64"), 3),
])
def test_class_ids_pass(labels, num_classes):
    assert label_problem(labels, num_classes) is None


@pytest.mark.parametrize("labels, num_classes, message", [
    ([0, 3, 5], 3, "label 3 (example 1) is out of range: labels must be -1 "
                   "(unlabeled) or in [0, 2]"),
    ([0, -2], None, "label -2 (example 1) is out of range: labels must be -1 "
                    "(unlabeled) or >= 0"),
    (np.array([[1], [-3]]), 2, "label -3 (example 1) is out of range: labels must be -1 "
                               "(unlabeled) or in [0, 1]"),
    ([1.0, 2.0, 2.5], 3, "label 2.5 (example 2) is not a whole number: labels are "
                         "integer class ids (-1 = unlabeled)"),
    ([0.0, np.nan], 3, "label nan (example 1) is not a whole number: labels are "
                       "integer class ids (-1 = unlabeled)"),
    ([np.inf], None, "label inf (example 0) is not a whole number: labels are "
                     "integer class ids (-1 = unlabeled)"),
    (np.eye(3)[[0, 2]], 3, "labels of shape (2, 3) look one-hot: give integer class ids, "
                           "one per example (np.argmax(y, axis=1); -1 = unlabeled)"),
    (np.array(["pos", "neg"]), 2, "labels must be integer class ids, got <U3 values such "
                                  "as ['pos', 'neg']"),
])
def test_each_problem_names_the_first_bad_label(labels, num_classes, message):
    assert label_problem(labels, num_classes) == message


def test_a_two_column_array_of_other_width_is_read_row_by_row():
    # Not one-hot for 3 classes: each value is checked as a label.
    assert label_problem(np.array([[0, 1], [2, 5]]), 3).startswith("label 5 (example 3)")


def test_out_of_range_names_the_bound():
    assert out_of_range(9, 4, example=2) == (
        "label 9 (example 2) is out of range: labels must be -1 (unlabeled) or in [0, 3]")


@pytest.mark.parametrize("name", ["very\tgood", "a\u2028b", "x\x00", "bad\x85", "\t"])
def test_a_class_name_predict_could_not_print_on_its_line_is_refused(name):
    # Names go one a line into labels.txt and into predict's tab-separated
    # columns: a tab, a control character or any line separator breaks them.
    with pytest.raises(UsageError, match=r"^labels: class 1's name .* is empty or holds a "
                                         "line break or a control character"):
        check_class_names(["ok", name], 2)


def test_names_with_other_unicode_pass():
    assert check_class_names(["très bien", "悪い", "🙂 ok"], 3) == ["très bien", "悪い", "🙂 ok"]
