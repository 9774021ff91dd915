"""bnn_shared.testing: the relative difference of the agreement tests and the golden-run check."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.testing import (
    RECORD_GOLDEN_ENV,
    assert_rejected,
    check_golden,
    invalid_configs,
    metric_rows,
    relative_difference,
    schema_fields,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field


def test_relative_difference_is_the_frobenius_ratio():
    b = torch.tensor([[3.0, 0.0], [0.0, 4.0]])  # |b| = 5
    a = b + torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert relative_difference(a, b) == pytest.approx(0.2)
    assert relative_difference(b, b) == 0.0
    assert relative_difference(torch.ones(2), torch.zeros(2)) == pytest.approx(2**0.5 * 1e30)


class TestGolden:
    ROWS = [{"epoch": 0, "train_loss": 0.5, "acc": 0.25}, {"test_acc": 0.75}]

    def _record(self, tmp_path, monkeypatch):
        path = tmp_path / "g.json"
        monkeypatch.setenv(RECORD_GOLDEN_ENV, "1")
        check_golden(self.ROWS, path)
        monkeypatch.delenv(RECORD_GOLDEN_ENV)
        return path

    def test_records_then_accepts_the_same_rows(self, tmp_path, monkeypatch):
        path = self._record(tmp_path, monkeypatch)
        check_golden([dict(row) for row in self.ROWS], path)

    def test_renamed_metrics_and_shifted_epochs(self, tmp_path, monkeypatch):
        path = self._record(tmp_path, monkeypatch)
        rows = [{"epoch": 1, "train/loss": 0.5, "acc": 0.25, "new": 3}, {"test_acc": 0.75}]
        check_golden(rows, path, rename={"train_loss": "train/loss"}, epoch_offset=1)

    @pytest.mark.parametrize(
        "rows",
        [
            [{"epoch": 0, "train_loss": 0.5 + 1e-12, "acc": 0.25}, {"test_acc": 0.75}],
            [{"epoch": 0, "acc": 0.25}, {"test_acc": 0.75}],
            [{"epoch": 0, "train_loss": 0.5, "acc": 0.25}],
        ],
    )
    def test_any_difference_fails(self, tmp_path, monkeypatch, rows):
        path = self._record(tmp_path, monkeypatch)
        with pytest.raises(AssertionError):
            check_golden(rows, path)

    def test_tolerance(self, tmp_path, monkeypatch):
        path = self._record(tmp_path, monkeypatch)
        rows = [{"epoch": 0, "train_loss": 0.5 + 1e-8, "acc": 0.25}, {"test_acc": 0.75}]
        check_golden(rows, path, tolerance=1e-6)

    def test_metric_rows_drop_timing_and_add_final(self, tmp_path):
        (tmp_path / "metrics.csv").write_text("epoch,loss,seconds,time epoch\n1,0.5,2.0,3.0\n")
        (tmp_path / "final.csv").write_text("test_acc,Seconds\n0.9,1.0\n")
        assert metric_rows(tmp_path) == [{"epoch": 1, "loss": 0.5}, {"test_acc": 0.9}]


class TestInvalidConfigs:
    from bnn_shared.config import ConfigModel as _Base

    class Inner(_Base):
        lr: float = Field(1e-3, gt=0)
        name: str = "adam"

    class Schema(_Base):
        epochs: int = Field(3, ge=0)
        batch_size: int = Field(32, ge=1)
        hidden: list[int] = [4]
        flag: bool = True
        optim: TestInvalidConfigs.Inner = Field(default_factory=lambda: TestInvalidConfigs.Inner())

    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_every_invalid_config_is_one_line_naming_its_key(self, data):
        config, key = data.draw(invalid_configs(self.Schema))
        assert_rejected(self.Schema, config, key)

    def test_fields_are_flattened(self):
        assert sorted(schema_fields(self.Schema)) == [
            "batch_size", "epochs", "flag", "hidden", "optim.lr", "optim.name",
        ]  # fmt: skip
