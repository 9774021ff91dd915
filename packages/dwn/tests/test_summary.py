"""The bit-aware summary of a shipped DWN (thermometer + 2 LUT layers + GroupSum): counts
against hand-computed values and a snapshot of the printed tables (regenerate it with
``BNN_UPDATE_SNAPSHOTS=1``)."""

from __future__ import annotations

import os
from pathlib import Path

from bnn_shared.summary import summary
from dwn.exporting import build

SNAPSHOTS = Path(__file__).parent / "snapshots"
#: 16 features x 2 bits = 32 input bits; LUT-4 layers of 24 (learnable) and 10 LUTs.
SMALL = {
    "encoder": "thermometer",
    "bits": 2,
    "feature_wise": True,
    "layers": [24, 10],
    "n": 4,
    "mapping": ["learnable", "random"],
    "lm_tau": 0.001,
    "tau": 2.0,
    "alpha": None,
    "beta": None,
    "efd": "code",
    "backend": "auto",
    "features": 16,
    "classes": 5,
}


def small_summary():
    return summary(build("DWN", SMALL), (16,), print_fn=None)


def test_bit_widths_and_memory():
    result = small_summary()
    # tables: (24 + 10) LUTs x 16 entries at 1 bit; wiring: 24*4 indices into 32 inputs
    # (5 bits, the learnable mapping's argmax) and 10*4 indices into 24 (5 bits); the
    # learnable mapping's latent 32 x 96 matrix is not shipped (not counted at all); the
    # thermometer's 16 x 2 float32 thresholds are
    assert result.params == {1: 34 * 16, 5: 96 + 40, 32: 32}
    assert result.memory_bytes == (34 * 16 + 5 * 136 + 32 * 32) / 8
    assert result.float32_bytes == 4 * (34 * 16 + 136 + 32)
    assert result.macs == {1: 24 + 10}  # one lookup per LUT and sample


def test_snapshot():
    text = str(small_summary())
    path = SNAPSHOTS / "summary_small_dwn.txt"
    if os.environ.get("BNN_UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert path.exists(), f"missing snapshot {path}; create it with BNN_UPDATE_SNAPSHOTS=1"
    assert text + "\n" == path.read_text(encoding="utf-8")
