"""The demo rows: a fully binary MLP trained by DFA and by DRTP on the bundled digits."""

from __future__ import annotations

import pytest
from bnn_shared.demo import discover


@pytest.mark.slow
def test_demo_rows_train_offline():
    rows = discover()["binary_feedback"].load()(quiet=True)  # as `hatch run demo` does
    assert [r.model.split()[0] for r in rows] == ["DFA", "DRTP"]
    assert rows[0].value > 0.9 and rows[1].value > 0.85  # 97.2 % and 95.3 % when measured
    assert all(r.size_kib < r.float32_kib / 10 for r in rows)
