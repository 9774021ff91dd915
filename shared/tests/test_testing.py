"""bnn_shared.testing: the relative difference used by the packages' agreement tests."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.testing import relative_difference


def test_relative_difference_is_the_frobenius_ratio():
    b = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # |b| = 5
    a = b + torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert relative_difference(a, b) == pytest.approx(0.2)
    assert relative_difference(b, b) == 0.0
    assert relative_difference(torch.ones(2), torch.zeros(2)) == pytest.approx(2**0.5 * 1e30)
