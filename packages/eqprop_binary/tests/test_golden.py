"""Golden runs of ``python -m eqprop_binary.main``: short seeded digits runs on one thread,
one per architecture, binary setting and training method, whose metrics must stay the same
through refactors of the training loop (recorded with ``BNN_RECORD_GOLDEN=1``; see
:func:`bnn_shared.testing.check_golden`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from bnn_shared.cli import run_cli
from bnn_shared.testing import check_golden, metric_rows, single_thread
from eqprop_binary.main import main

GOLDEN = Path(__file__).parent / "golden"
COMMON = "--device cpu --dataset digits --seed 2 --epochs 2 --batchSize 64 --quiet"
FC = (
    "--archi fc --layersList 64 32 10 --T 8 --Kmax 4 --gamma 1e-3 1e-2 "
    "--gradThreshold 5e-6 5e-6 --lrBias 0.025 0.05"
)
FC_N = (
    "--archi fc --binary_settings bin_W_N --activationFun heaviside --gamma_neur 0.5 "
    "--layersList 64 48 40 --expand_output 4 --T 8 --Kmax 4 --beta 2 --gamma 2e-4 2e-4 "
    "--gradThreshold 2e-6 2e-6 --lrBias 1e-4 1e-4"
)
CONV = (
    "--archi conv --binary_settings bin_W --layersList 10 --convList 4 2 1 --padding 1 "
    "--kernelSize 3 --Fpool 2 --T 6 --Kmax 3 --classi_gamma 1e-3 --conv_gamma 1e-3 1e-3 "
    "--classi_threshold 1e-6 --conv_threshold 1e-6 1e-6 --lrBias 0.025 0.05 0.1"
)
CONV_N = (
    "--archi conv --binary_settings bin_W_N --activationFun heaviside --gamma_neur 0.5 "
    "--layersList 40 --expand_output 4 --convList 4 2 1 --padding 1 --kernelSize 3 --Fpool 2 "
    "--T 6 --Kmax 3 --beta 1 --classi_gamma 1e-4 --conv_gamma 1e-4 1e-4 "
    "--classi_threshold 1e-6 --conv_threshold 1e-6 1e-6 --lrBias 1e-4 1e-4 1e-4"
)
CASES = {
    "fc_bin_W_ep": f"{FC} --binary_settings bin_W --optim ep",
    "fc_bin_W_ep_learn_alpha": f"{FC} --optim ep --learnAlpha 1 --lrAlpha 1e-4 1e-4",
    "fc_bin_W_bptt": f"{FC} --binary_settings bin_W --optim bptt",
    "fc_bin_W_N_ep": f"{FC_N} --optim ep",
    "fc_bin_W_N_ep_free_nudge": f"{FC_N} --optim ep --nudge free --random_beta 0",
    "conv_bin_W_ep": f"{CONV} --optim ep",
    "conv_bin_W_bptt": f"{CONV} --optim bptt",
    "conv_bin_W_N_ep": f"{CONV_N} --optim ep",
}
#: metric names since the recording (old -> new): the runner's ``<split>/<metric>`` scheme
RENAME: dict[str, str] = {
    "Ave_Train_Error": "train/error",
    "Ave_Test_Error": "test/error",
    "Single_Train_Error": "train/error_single",
    "Single_Test_Error": "test/error_single",
    "Train_Loss": "train/loss",
    "Test_Loss": "test/loss",
    **{
        f"{old}_{layer}": f"{new}/{layer}"
        for old, new in (
            ("Nb_Change_Weights", "log_flips"),
            ("Threshold", "threshold"),
            ("Gamma", "gamma"),
            ("Alpha", "alpha"),
        )
        for layer in ("0", "1", "fc_0", "conv_0", "conv_1")
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_run(case, tmp_path):
    argv = shlex.split(f"{COMMON} {CASES[case]} --out-dir {tmp_path}")
    with single_thread():
        assert run_cli(main, argv) == 0
    (run_dir,) = tmp_path.glob("DATA-0-*/*/S-1")
    check_golden(metric_rows(run_dir), GOLDEN / f"{case}.json", rename=RENAME)
