"""Data handling, run paths and the hyperparameter file."""

from __future__ import annotations

import torch
from bnn_shared.data import dataset_info
from eqprop_binary.settings import Settings
from eqprop_binary.tools import (
    augment_cifar,
    is_cifar10,
    load_data,
    results_row,
    run_directory,
    save_hyperparameters,
)


def test_digits_load_as_images_in_unit_range():
    x_train, y_train, x_test, y_test = load_data(Settings(dataset="digits"))
    assert x_train.shape[1:] == (1, 8, 8) and x_test.shape[1:] == (1, 8, 8)
    assert float(x_train.min()) >= 0 and float(x_train.max()) <= 1
    assert len(x_train) == len(y_train) and set(y_test.tolist()) == set(range(10))


def test_cifar10_is_normalised_with_the_reference_statistics():
    # the reference's transforms.Normalize constants, now the dataset's own statistics
    info = dataset_info("cifar10")
    assert info.mean == (0.4914, 0.4822, 0.4465)
    assert info.std == (0.247, 0.243, 0.261)
    assert is_cifar10("cifar10") and is_cifar10("CIFAR-10") and is_cifar10("cifar_10")
    assert not is_cifar10("mnist") and not is_cifar10("digits")


def test_cifar_augmentation_flips_and_crops_with_edge_padding():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    out = augment_cifar(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for sample, image in zip(out, x, strict=True):
        # every crop is a window of the edge-padded (possibly flipped) image
        found = False
        for source in (image, image.flip(2)):
            padded = torch.nn.functional.pad(source[None], (4, 4, 4, 4), mode="replicate")[0]
            for dy in range(9):
                for dx in range(9):
                    if torch.equal(padded[:, dy : dy + 32, dx : dx + 32], sample):
                        found = True
        assert found
    again = augment_cifar(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # reproducible from the generator (for --resume)


def test_run_directory_follows_the_reference_layout(tmp_path):
    cfg = Settings(archi="fc", dataset="mnist", layersList=[784, 10])
    first = run_directory(tmp_path, cfg)
    assert first.parent.parent == tmp_path / "DATA-0-fc-mnist" and first.name == "S-1"
    first.mkdir(parents=True)
    assert run_directory(tmp_path, cfg).name == "S-2"
    (first / "checkpoint.pt").write_bytes(b"")
    assert run_directory(tmp_path, cfg, resume=True) == first
    assert run_directory(first, cfg, resume=True) == first


def test_hyperparameter_file_lists_the_settings_of_the_architecture(tmp_path):
    cfg = Settings(archi="fc", binary_settings="bin_W_N", layersList=[784, 10])
    fc = save_hyperparameters(cfg, tmp_path)
    text = fc.read_text()
    assert text.startswith("Binary synapses and binary activations")
    assert "gamma_neur: 0.5" in text and "gradThreshold:" in text and "convList" not in text
    conv = save_hyperparameters(Settings(archi="conv"), tmp_path).read_text()
    assert "convList: [64, 32, 1]" in conv and "gradThreshold" not in conv
    assert "gamma_neur" not in conv


def test_results_rows_give_the_reference_columns_in_the_reference_order():
    names = ["fc_0", "conv_0"]
    row = {"epoch": 3, "seconds": 2.5, "test/loss": 0.2, "train/loss": 0.1}
    row |= {"train/error": 9.0, "test/error": 8.0, "train/error_single": 7.0}
    row |= {"test/error_single": 6.0}
    for key, value in (("log_flips", -3.0), ("threshold", 1e-8), ("gamma", 1e-5), ("alpha", 0.1)):
        row |= {f"{key}/{name}": value for name in names}
    result = results_row(row, names)
    assert list(result) == [
        "Epoch", "Ave_Train_Error", "Ave_Test_Error", "Single_Train_Error", "Single_Test_Error",
        "Train_Loss", "Test_Loss", "Nb_Change_Weights_fc_0", "Nb_Change_Weights_conv_0",
        "Threshold_fc_0", "Threshold_conv_0", "Gamma_fc_0", "Gamma_conv_0", "Alpha_fc_0",
        "Alpha_conv_0", "Seconds",
    ]  # fmt: skip
    assert result["Epoch"] == 3 and result["Ave_Test_Error"] == 8.0
    assert result["Nb_Change_Weights_conv_0"] == -3.0 and result["Seconds"] == 2.5
    # a row logged under the reference's names (a run resumed from before the renaming)
    assert results_row({"epoch": 3, **result}, names) == result
