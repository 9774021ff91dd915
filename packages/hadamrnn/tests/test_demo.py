"""The ``hadamrnn`` rows of the demo."""

from __future__ import annotations

import pytest
from bnn_shared.demo import discover
from hadamrnn.demo import demo, model_sizes


def test_demo_is_registered():
    assert "hadamrnn" in discover()


def test_model_sizes_come_from_the_summary():
    # HadamRNN n = 64: 64 sign bits, 4-bit U (64) and V (640), float biases (64 + 10)
    size, float32 = model_sizes("hadamrnn")
    assert size == (64 + 4 * (64 + 640) + 32 * (64 + 10)) / 8
    assert float32 == 4 * (64 + 64 + 640 + 64 + 10)
    ornn_size, ornn_float32 = model_sizes("ornn")
    assert ornn_size == ornn_float32 > float32


@pytest.mark.slow
def test_demo_trains_both_models():
    rows = demo(quiet=True)
    assert [r.model.split()[0] for r in rows] == ["HadamRNN", "ORNN"]
    for row in rows:
        assert row.dataset == "sdigits" and row.metric == "test_acc" and row.value > 0.85
    assert rows[0].size_kib < rows[1].size_kib / 10
