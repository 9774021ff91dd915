"""Golden runs of ``python -m dwn.train``: short seeded digits runs on one thread whose
metrics must stay the same through refactors of the training loop (recorded with
``BNN_RECORD_GOLDEN=1``; see :func:`bnn_shared.testing.check_golden`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bnn_shared.cli import run_cli
from bnn_shared.testing import check_golden, metric_rows, single_thread
from dwn.train import main

GOLDEN = Path(__file__).parent / "golden"
BASE = "--dataset digits --n 4 --batch-size 64 --epochs 2 --seed 3 --quiet --device cpu"
CASES = {
    "learnable_distributive": "--layers 120 --mapping learnable --encoder distributive",
    "random_thermometer": "--layers 80 60 --mapping random --encoder thermometer --bits 2",
    "arange_gaussian_paper_efd": "--layers 100 --mapping arange --encoder gaussian --efd paper",
    "cpp_backend": "--layers 60 40 --mapping learnable random --backend cpp",
}
#: metric names since the recording (old -> new)
RENAME = {
    "train_loss": "train/loss",
    "train_acc": "train/accuracy",
    "test_loss": "test/loss",
    "test_acc": "test/accuracy",
    "export_agreement": "export/agreement",
    "compiled_test_acc": "export/test_accuracy",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_run(case, tmp_path):
    argv = [*BASE.split(), *CASES[case].split(), "--out-dir", str(tmp_path)]
    with single_thread():
        assert run_cli(main, argv) == 0
    check_golden(metric_rows(tmp_path), GOLDEN / f"{case}.json", rename=RENAME)
