"""`kd_keras.number_checks`: one meaning of "a number" for every option."""

import numpy as np
import pytest

from kd_keras.data.augment import augment_texts
from kd_keras.errors import UsageError
from kd_keras.number_checks import is_finite
from kd_keras.number_checks import is_int
from kd_keras.number_checks import is_real


@pytest.mark.parametrize("value, int_, real, finite", [
    (3, True, True, True),
    (np.int64(3), True, True, True),
    (np.uint8(3), True, True, True),
    (3.0, False, True, True),
    (np.float32(0.5), False, True, True),
    (True, False, False, False),
    (np.bool_(True), False, False, False),
    ("3", False, False, False),
    (None, False, False, False),
    (float("nan"), False, True, False),
    (-float("inf"), False, True, False),
    (10**400, True, True, False),
    (complex(1, 0), False, False, False),
])
def test_what_counts_as_a_number(value, int_, real, finite):
    assert (is_int(value), is_real(value), is_finite(value)) == (int_, real, finite)


def test_a_bool_is_not_a_rate_and_numpy_numbers_are():
    # `numbers.Real` counts False as 0: the augmenter took it as a rate.
    with pytest.raises(UsageError, match="word_dropout: must be a number in"):
        augment_texts(["a good film"], copies=1, word_dropout=False)
    with pytest.raises(UsageError, match="copies: must be an integer >= 0"):
        augment_texts(["a good film"], copies=True)
    assert len(augment_texts(["a good film"], copies=np.int64(2),
                             word_dropout=np.float32(0.1))) == 2
