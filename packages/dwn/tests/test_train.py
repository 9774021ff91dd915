"""``python -m dwn.train``: config handling, a short digits run, resume and clear errors."""

from __future__ import annotations

import csv

import pytest
from bnn_shared.errors import ConfigError, DatasetNotFoundError
from dwn.config import TrainConfig
from dwn.train import build_model, main, parse_args, train
from dwn.utils import GroupSum

BASE = [
    "--dataset",
    "digits",
    "--layers",
    "200",
    "--mapping",
    "learnable",
    "--n",
    "4",
    "--batch-size",
    "64",
    "--backend",
    "torch",
    "--quiet",
]
SMALL = [*BASE, "--epochs", "3"]


def read_metrics(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_defaults_are_the_reference_mnist_example():
    cfg = TrainConfig()
    assert (cfg.encoder, cfg.bits, cfg.layers, cfg.n) == ("distributive", 3, [2000, 1000], 6)
    assert cfg.mapping == ["learnable", "random"] and cfg.tau == pytest.approx(1 / 0.3)
    assert (cfg.lr, cfg.step_size, cfg.gamma, cfg.epochs, cfg.batch_size) == (1e-2, 14, 0.1, 30, 32)


def test_config_file_and_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: digits\nlayers: [30, 20]\nmapping: [random]\n")
    args = parse_args(["--config", str(path), "--lr", "0.5"])
    from bnn_shared.config import config_from_arguments

    cfg = config_from_arguments(TrainConfig, args, path=args.config)
    assert cfg.layers == [30, 20] and cfg.mapping == ["random", "random"] and cfg.lr == 0.5
    model = build_model(cfg, 192, 10)
    assert [type(m).__name__ for m in model] == ["LUTLayer", "LUTLayer", "GroupSum"]
    assert isinstance(model[-1], GroupSum) and model[1].input_size == 30


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("dataset: digits\nlayer: [10]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key .layer.*did you mean .layers."):
        main(["--config", str(path)])


def test_bad_value_is_a_clear_error():
    with pytest.raises(ConfigError, match="mapping"):
        main(["--mapping", "learnable", "random", "random", "--layers", "10"])


def test_missing_mnist_files_give_the_core_message(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="--download"):
        main(["--data-dir", str(tmp_path), "--epochs", "1", "--quiet"])


def test_jsc_offline_without_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="jsc"):
        main(["--dataset", "jsc", "--data-dir", str(tmp_path), "--quiet"])


def test_short_digits_run_exports_and_resumes_to_the_same_metrics(tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main([*SMALL, "--out-dir", str(full)]) == 0
    rows = read_metrics(full / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert float(rows[-1]["test/accuracy"]) > 0.5
    assert (full / "model.dwn").exists() and (full / "checkpoint.pt").exists()
    # an interrupted run (2 epochs), resumed to 3, ends with the same metrics
    main([*BASE, "--epochs", "2", "--out-dir", str(part), "--export", "false"])
    main([*SMALL, "--out-dir", str(part), "--resume"])
    resumed = read_metrics(part / "metrics.csv")
    keys = ["epoch", "train/loss", "train/accuracy", "test/loss", "test/accuracy", "lr"]
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in rows]


def test_train_reports_export_agreement(tmp_path):
    cfg = TrainConfig(
        dataset="digits", layers=[100], mapping=["random"], n=3, epochs=1, backend="torch"
    )
    final = train(cfg, out_dir=tmp_path, device="cpu", quiet=True)
    assert final["export/agreement"] == 1.0
    assert final["export/test_accuracy"] == pytest.approx(final["test/accuracy"])
