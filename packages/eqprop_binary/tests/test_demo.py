"""The demo row: fc bin_W trained by EP on the bundled digits, offline."""

from __future__ import annotations

import pytest
from bnn_shared.demo import discover


@pytest.mark.slow
def test_demo_trains_on_digits_to_a_useful_accuracy():
    demo = discover()["eqprop_binary"].load()  # the entry point `hatch run demo` uses
    result = demo(quiet=True)
    assert result.package == "eqprop_binary" and result.dataset == "digits"
    assert result.value > 0.90  # 95.3 % when measured
    assert result.size_kib < result.float32_kib / 20  # binary weights really are bits
