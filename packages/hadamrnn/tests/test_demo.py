"""The ``hadamrnn`` rows of the demo."""

from __future__ import annotations

import pytest
from bnn_shared.demo import discover
from hadamrnn.demo import demo, model_bits


def test_demo_is_registered():
    assert "hadamrnn" in discover()


def test_model_bits():
    # pMNIST HadamRNN (spec 2.2 storage table): 2048 + 512 + 16384 + 20480 + 320 + 64 bits
    size, float32 = model_bits("hadamrnn", 512, 1, 10, 4)
    assert size == 2048 + 512 + 16384 + 20480 + 320 + 64
    assert model_bits("ornn", 512, 1, 10, 4) == (float32, float32)


@pytest.mark.slow
def test_demo_trains_both_models():
    rows = demo(quiet=True)
    assert [r.model.split()[0] for r in rows] == ["HadamRNN", "ORNN"]
    for row in rows:
        assert row.dataset == "sdigits" and row.metric == "test_acc" and row.value > 0.85
    assert rows[0].size_kib < rows[1].size_kib / 10
