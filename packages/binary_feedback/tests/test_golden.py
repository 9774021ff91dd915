"""Golden runs of ``python -m binary_feedback.train``: short seeded digits runs on one
thread, one per study, training method and model, whose metrics must stay the same through
refactors of the training loop (recorded with ``BNN_RECORD_GOLDEN=1``; see
:func:`bnn_shared.testing.check_golden`)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from binary_feedback.train import main
from bnn_shared.cli import run_cli
from bnn_shared.testing import check_golden, metric_rows, single_thread

GOLDEN = Path(__file__).parent / "golden"
COMMON = "--dataset digits --seed 4 --device cpu --quiet --epochs 2"
# study A: the recorded runs clipped at 1 (the default then; the study code clips only when
# asked), so the argv says it
STUDY_A = "--bn --binarize --hidden 32,16 --init 1e-3 --lr 1e-4 -b 32 --weight-clipping 1"
STUDY_B = "--binary-act --binary-weights --lr 1e-3 --bs 64"
CASES = {
    "a_gd_tanh": f"{STUDY_A} --method GD --hidden-act tanh",
    "a_dfa_signsat": f"{STUDY_A} --method DFA --hidden-act signsat",
    "a_drtp_signsat_monitor": f"{STUDY_A} --method DRTP --hidden-act signsat --monitor",
    "a_dfa_no_bn_float": "--hidden 32,16 --lr 1e-3 -b 32 --method DFA --init 0.1 "
    "--weight-clipping 1",
    "b_mlp_bp": f"{STUDY_B} --model MLP --method bp --test-set",
    "b_mlp_dfa": f"{STUDY_B} --model MLP --method dfa",
    "b_mlp_drtp": f"{STUDY_B} --model MLP --method drtp --test-set",
    "b_smallcnn_hsic": f"{STUDY_B} --model SmallCNN --method hsic --test-set",
    "b_smallcnn_sigprop": f"{STUDY_B} --model SmallCNN --method sigprop --test-set",
    "b_smallcnn_dfa_augment": f"{STUDY_B} --model SmallCNN --method dfa --augment --test-set",
    "b_mobilenetv2_dfa": f"{STUDY_B} --model MobileNetV2 --method dfa --image-size 16 --epochs 1",
    "b_vgg16_drtp": f"{STUDY_B} --model vgg16 --method drtp --image-size 32 --epochs 1 "
    "--train-fraction 0.2",
    "b_mlpmixer_bp": f"{STUDY_B} --model MLPMixer --method bp --image-size 16 --epochs 1",
}
#: metric names since the recording (old -> new)
RENAME: dict[str, str] = {
    "best test/accuracy": "test/best_accuracy",
    "best validation/accuracy": "val/best_accuracy",
    "validation/loss": "val/loss",
    "validation/accuracy": "val/accuracy",
    "validation/f1": "val/f1",
    "validation/precision": "val/precision",
    "layer_0 saturation": "monitor/layer_0_saturation",
    "layer_0 nHSIC XZ": "monitor/layer_0_nhsic_xz",
    "layer_0 nHSIC ZY": "monitor/layer_0_nhsic_zy",
    "layer_1 saturation": "monitor/layer_1_saturation",
    "layer_1 nHSIC XZ": "monitor/layer_1_nhsic_xz",
    "layer_1 nHSIC ZY": "monitor/layer_1_nhsic_zy",
    "layer_2 saturation": "monitor/layer_2_saturation",
    "layer_2 nHSIC XZ": "monitor/layer_2_nhsic_xz",
    "layer_2 nHSIC ZY": "monitor/layer_2_nhsic_zy",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_run(case, tmp_path):
    argv = shlex.split(f"{COMMON} {CASES[case]} --out-dir {tmp_path}")
    with single_thread():
        assert run_cli(main, argv) == 0
    check_golden(metric_rows(tmp_path), GOLDEN / f"{case}.json", rename=RENAME)
