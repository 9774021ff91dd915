"""``scripts/hadamrnn_copy_tf32.py``: TF32 rounding, the TF32 recurrence and a tiny run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from bnn_shared.testing import relative_difference
from hadamrnn import ENGINES, current_arithmetic, training

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "hadamrnn" / "copy.yaml"


def test_rounding_keeps_ten_mantissa_bits(load_script):
    tf32 = load_script("hadamrnn_copy_tf32")
    ulp = 2.0**-10
    x = torch.tensor([1.0, 1 + ulp, 1 + ulp / 2, 1 + 3 * ulp / 2, 1 + ulp / 2 + 2**-20, -1.5])
    assert tf32.to_tf32(x).tolist() == [1.0, 1 + ulp, 1.0, 1 + 2 * ulp, 1 + ulp, -1.5]
    assert tf32.to_tf32(x, "truncate").tolist() == [1.0, 1 + ulp, 1.0, 1 + ulp, 1.0, -1.5]
    # every entry of a normalised 128 x 128 Hadamard matrix shrinks by the same factor
    w = torch.tensor(1 / math.sqrt(128))
    assert (tf32.to_tf32(w) / w).item() == pytest.approx(1 - 1.068e-4, abs=1e-7)
    with pytest.raises(ValueError, match="nearest or truncate"):
        tf32.to_tf32(x, "up")


def test_recurrence_equals_the_loop_of_tf32_matmuls(load_script):
    tf32 = load_script("hadamrnn_copy_tf32")
    torch.manual_seed(0)
    z = torch.randn(3, 25, 16, requires_grad=True)
    w = torch.linalg.qr(torch.randn(16, 16))[0].requires_grad_(True)
    b = torch.randn(16, requires_grad=True)
    weights = torch.randn(3, 25, 16)

    def gradients(states):
        (states * weights).sum().backward()
        grads = [p.grad.clone() for p in (z, w, b)]
        for p in (z, w, b):
            p.grad = None
        return states.detach(), grads

    fast, fast_grads = gradients(tf32._TF32Recurrence.apply(z, w, b, "nearest"))
    h, states = torch.zeros(3, 16), []
    for t in range(25):  # the reference's F.linear(h, W, b) + z_t, one TF32 matmul per step
        h = (b + tf32._TF32Matmul.apply(h, w.t(), "nearest")) + z[:, t]
        states.append(h)
    loop, loop_grads = gradients(torch.stack(states, 1))
    assert relative_difference(fast, loop) <= 1e-6  # addmm's summation order
    for got, want in zip(fast_grads, loop_grads, strict=True):
        assert relative_difference(got, want) <= 1e-6
    exact = torch.zeros(3, 16)
    for t in range(25):
        exact = exact @ w.detach().t() + b.detach() + z.detach()[:, t]
    assert 0 < relative_difference(loop[:, -1], exact) < 1e-2  # rounded, slightly


def test_tiny_run_trains_and_restores_the_float32_matmuls(tmp_path, load_script, monkeypatch):
    tf32 = load_script("hadamrnn_copy_tf32")
    linear, sequential = F.linear, ENGINES.get("sequential")
    seen, train_epoch = [], training.train_epoch

    def recording(*args, **kwargs):  # the hook is on while the run trains
        seen.append(current_arithmetic())
        return train_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "train_epoch", recording)
    sizes = ["DATASET.SEQ_LENGTH=30", "DATASET.TRAIN=256", "DATASET.VAL=32", "DATASET.TEST=32"]
    argv = ["--", "--config", str(CONFIG), "--out-dir", str(tmp_path), "--quiet"]
    for item in [*sizes, "TRAIN.N_EPOCHS=1", "MODEL.ENGINE=parallel"]:
        argv += ["--set", item]
    assert tf32.main(argv) == 0
    assert "engine: sequential" in (tmp_path / "config.yaml").read_text()  # forced
    assert (tmp_path / "final.csv").exists()
    assert F.linear is linear and ENGINES.get("sequential") is sequential
    assert len(seen) == 1 and seen[0] is not None and current_arithmetic() is None
