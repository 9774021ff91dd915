"""eqprop_binary.plot on synthetic results.csv files: PNGs written, columns read, clear errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from bnn_shared.cli import run_cli
from bnn_shared.errors import BnnError
from eqprop_binary import plot

ERRORS = ["Ave_Train_Error", "Ave_Test_Error", "Single_Train_Error", "Single_Test_Error"]
FC_LAYERS = ["0", "1"]
CONV_LAYERS = ["fc_0", "conv_0", "conv_1"]


def write_run(run_dir: Path, layers: list[str], epochs: int = 3, offset: float = 0.0) -> Path:
    """A results.csv in the layout of eqprop_binary.main, plus an unknown column."""
    header = ["Epoch", *ERRORS, "Train_Loss", "Test_Loss"]
    for prefix in ("Nb_Change_Weights", "Threshold", "Gamma", "Alpha"):
        header += [f"{prefix}_{name}" for name in layers]
    header += ["Seconds", "Note"]
    run_dir.mkdir(parents=True)
    with (run_dir / "results.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for epoch in range(1, epochs + 1):
            errors = [30.0 / epoch + offset + k for k in range(4)]
            per_layer = [-5.0 - epoch - k for k in range(len(layers))] + [1e-7, 0.5, 1.0] * len(
                layers
            )
            writer.writerow([epoch, *errors, 0.5 / epoch, 0.6 / epoch, *per_layer, 2.5, "x"])
    return run_dir


def assert_png(path: Path) -> None:
    assert path.is_file()
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_read_results_values(tmp_path):
    res = plot.read_results(write_run(tmp_path / "S-1", FC_LAYERS))
    assert res["Epoch"] == [1.0, 2.0, 3.0]
    assert res["Ave_Train_Error"] == [30.0, 15.0, 10.0]
    assert res["Single_Test_Error"] == [33.0, 18.0, 13.0]
    assert res["Nb_Change_Weights_1"] == [-7.0, -8.0, -9.0]
    assert res["Threshold_0"] == [1e-7] * 3
    assert "Note" not in res  # unknown columns are ignored


def test_plot_run_fc_and_conv(tmp_path):
    for name, layers in (("fc", FC_LAYERS), ("conv", CONV_LAYERS)):
        run = write_run(tmp_path / name, layers)
        written = plot.plot_run(run)
        assert [p.name for p in written] == ["errors.png", "losses.png", "flips.png"]
        for path in written:
            assert path.parent == run
            assert_png(path)


def test_find_runs_recurses_in_natural_order(tmp_path):
    day = tmp_path / "DATA-0-fc-mnist" / "2024-05-01"
    for k in (10, 2):
        write_run(day / f"S-{k}", FC_LAYERS)
    assert plot.find_runs([tmp_path]) == [day / "S-2", day / "S-10"]
    assert plot.find_runs([day / "S-2", day / "S-2" / "results.csv"]) == [day / "S-2"]


def test_plot_summary(tmp_path):
    runs = [write_run(tmp_path / "S-1", FC_LAYERS), write_run(tmp_path / "S-2", FC_LAYERS, 2, 2)]
    path = plot.plot_summary(runs, tmp_path / "out")
    assert path == tmp_path / "out" / "summary_errors.png"
    assert_png(path)


def test_main_prints_written_paths_and_table(tmp_path, capsys):
    day = tmp_path / "DATA-0-fc-mnist" / "2024-05-01"
    write_run(day / "S-1", FC_LAYERS)
    write_run(day / "S-2", FC_LAYERS, offset=1.0)
    empty = day / "S-3"
    empty.mkdir()
    (empty / "results.csv").write_text(",".join(["Epoch", *ERRORS, "Train_Loss", "Test_Loss"]))

    assert plot.main([str(day)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    printed = [Path(line) for line in lines if line.endswith(".png")]
    assert len(printed) == 7  # 3 per run + the summary
    assert day / "summary_errors.png" in printed
    for path in printed:
        assert_png(path)
    assert "S-3" in err and "no rows" in err
    assert any(str(day / "S-2") in line and "12.00" in line for line in lines)  # last = best


def test_main_out_dir(tmp_path, capsys):
    runs = [str(write_run(tmp_path / f"S-{k}", CONV_LAYERS)) for k in (1, 2)]
    assert plot.main([*runs, "--out", str(tmp_path / "figs")]) == 0
    assert str(tmp_path / "figs" / "summary_errors.png") in capsys.readouterr().out.splitlines()


def test_single_run_writes_no_summary(tmp_path, capsys):
    run = write_run(tmp_path / "S-1", FC_LAYERS)
    assert plot.main([str(run)]) == 0
    assert "summary" not in capsys.readouterr().out
    assert not (tmp_path / "summary_errors.png").exists()


def test_missing_path(tmp_path, capsys):
    with pytest.raises(BnnError, match="does not exist"):
        plot.find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(BnnError, match="no results.csv found"):
        plot.find_runs([tmp_path / "empty"])
    assert run_cli(plot.main, [str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_missing_column(tmp_path):
    run = tmp_path / "S-1"
    run.mkdir()
    (run / "results.csv").write_text("Epoch,Ave_Train_Error\n1,10\n")
    with pytest.raises(BnnError, match="lacks the column.*Ave_Test_Error"):
        plot.read_results(run)


def test_no_rows_anywhere(tmp_path):
    run = tmp_path / "S-1"
    run.mkdir()
    (run / "results.csv").write_text(",".join(["Epoch", *ERRORS, "Train_Loss", "Test_Loss"]))
    with pytest.raises(BnnError, match="nothing to plot"):
        plot.main([str(run)])


def test_a_results_file_that_is_not_csv_is_one_clear_error(tmp_path):
    from bnn_shared.testing import assert_bad_input
    from eqprop_binary.plot import main

    (tmp_path / "results.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00binary")
    assert_bad_input(main, [str(tmp_path)], tmp_path, "is not a CSV file")
