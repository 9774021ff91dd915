"""The ``dwn`` row of ``hatch run demo`` trains offline on digits to at least 95 %."""

from __future__ import annotations

import pytest
from dwn.demo import demo


@pytest.mark.slow
def test_demo_row_reaches_95_percent_on_digits():
    row = demo(quiet=True)
    assert row.package == "dwn" and row.dataset == "digits"
    assert row.value >= 0.95
    assert 0 < row.size_kib < row.float32_kib / 10
