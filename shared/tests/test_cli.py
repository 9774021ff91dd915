"""Tests of bnn_shared.cli: the shared flags and the error-to-exit-status wrapper."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bnn_shared.cli import add_common_arguments, run_cli, run_settings
from bnn_shared.errors import BnnError, ConfigError

ALL_FLAGS = [
    "data_dir",
    "download",
    "out_dir",
    "resume",
    "seed",
    "device",
    "wandb",
    "quiet",
    "overrides",
]


class TestCommonArguments:
    def test_defaults(self):
        args = add_common_arguments(argparse.ArgumentParser()).parse_args([])
        assert vars(args) == {
            "data_dir": None,
            "download": False,
            "out_dir": "runs",
            "resume": False,
            "wandb": False,
            "quiet": False,
            "seed": 0,
            "device": "auto",
            "overrides": [],
        }

    def test_values_and_custom_defaults(self):
        parser = add_common_arguments(argparse.ArgumentParser(), seed=7, out_dir="runs/x")
        args = parser.parse_args(["--data-dir", "d", "--download", "--resume", "--wandb"])
        assert (args.seed, args.out_dir, args.data_dir) == (7, "runs/x", "d")
        assert args.download and args.resume and args.wandb and not args.quiet
        args = parser.parse_args(["--seed", "3", "--device", "cuda:1", "--quiet"])
        assert (args.seed, args.device, args.quiet) == (3, "cuda:1", True)

    @pytest.mark.parametrize(
        ("groups", "absent"),
        [
            ({"data": False}, {"data_dir", "download"}),
            ({"tracking": False}, {"out_dir", "resume", "wandb", "quiet"}),
            ({"runtime": False}, {"seed", "device"}),
            ({"overrides": False}, {"overrides"}),
        ],
    )
    def test_groups_are_optional(self, groups, absent):
        args = add_common_arguments(argparse.ArgumentParser(), **groups).parse_args([])
        assert set(vars(args)) == set(ALL_FLAGS) - absent

    def test_set_collects_overrides_and_settings_come_from_the_flags(self):
        parser = add_common_arguments(argparse.ArgumentParser())
        args = parser.parse_args(["--set", "lr=1e-3", "a.b=2", "--out-dir", "o", "--set", "c=1"])
        assert args.overrides == ["lr=1e-3", "a.b=2", "c=1"]
        settings = run_settings(args, quiet=True)
        assert settings.out_dir == Path("o") and settings.quiet and settings.device == "auto"

    def test_flags_a_package_defines_are_left_alone(self):
        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=str, default="fixed")
        parser.add_argument("--device", type=int, default=-1)
        args = add_common_arguments(parser).parse_args([])
        assert (args.seed, args.device) == ("fixed", -1)
        assert args.out_dir == "runs"

    def test_help_lists_the_groups(self, capsys):
        parser = add_common_arguments(argparse.ArgumentParser(prog="train"))
        with pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        text = capsys.readouterr().out
        assert "run tracking:" in text and "--resume" in text and "--data-dir" in text


class TestRunCli:
    def test_returns_mains_status_and_passes_argv(self):
        seen = []

        def main(argv):
            seen.append(argv)
            return 3

        assert run_cli(main, ["--x"]) == 3
        assert seen == [["--x"]]

    @pytest.mark.parametrize("result", [None, "done", True])
    def test_non_int_result_is_success(self, result):
        assert run_cli(lambda argv: result) == 0

    def test_user_error_prints_one_line_without_traceback(self, capsys):
        def main(argv):
            raise ConfigError("unknown key 'lrr'")

        assert run_cli(main) == 2
        captured = capsys.readouterr()
        assert captured.err == "error: unknown key 'lrr'\n"
        assert captured.out == ""

    def test_custom_exit_code(self, capsys):
        class Special(BnnError):
            exit_code = 5

        def main(argv):
            raise Special("boom")

        assert run_cli(main) == 5

    def test_keyboard_interrupt_mentions_resume(self, capsys):
        def main(argv):
            raise KeyboardInterrupt

        assert run_cli(main) == 130
        err = capsys.readouterr().err
        assert "last checkpoint is kept" in err and "--resume" in err

    def test_other_errors_propagate(self):
        def main(argv):
            raise ValueError("a bug")

        with pytest.raises(ValueError, match="a bug"):
            run_cli(main)

    def test_entry_point_pattern(self):
        with pytest.raises(SystemExit) as info:
            raise SystemExit(run_cli(lambda argv: 0))
        assert info.value.code == 0


class TestOneLineErrors:
    def test_multi_line_user_errors_become_one_line(self, capsys):
        def main(argv):
            raise ConfigError("first\n  second   part\n\nthird")

        assert run_cli(main, []) == 2
        assert capsys.readouterr().err == "error: first | second part | third\n"

    def test_torch_runtime_errors_become_one_line(self, capsys):
        import torch

        def main(argv):
            torch.nn.Linear(4, 5)(torch.zeros(2, 3))  # a model that does not fit its data

        assert run_cli(main, []) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "shapes" in err

    def test_other_runtime_errors_keep_their_traceback(self):
        def main(argv):
            raise RuntimeError("a bug of ours")

        with pytest.raises(RuntimeError, match="a bug of ours"):
            run_cli(main, [])
