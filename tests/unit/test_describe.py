"""Tests of ua_helpers.report.describe: the notebooks' descriptive tables."""
from __future__ import annotations

import numpy as np
import pytest

from ua_helpers.report import describe


def test_metric_summary_is_one_mean_and_sd_column_per_metric():
    values = np.zeros((2, 3, 4))
    values[1, 2] = [1.0, 3.0, 1.0, 3.0]  # mean 2, population sd 1
    values[0, 0] = [0.001, 0.003, 0.001, 0.003]  # a small scale keeps its digits
    table = describe.metric_summary(values, [0, 4], ["a", "b", "c"])
    assert list(table.columns) == ["a", "b", "c"] and list(table.index) == [0, 4]
    assert table.loc[4, "c"] == "2 ± 1" and table.loc[0, "a"] == "0.002 ± 0.001"
    with pytest.raises(ValueError, match="do not match"):
        describe.metric_summary(values, [0], ["a", "b", "c"])
