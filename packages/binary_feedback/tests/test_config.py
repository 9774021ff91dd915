"""The schemas of both studies, and how flags, YAML files and --set fill them."""

from __future__ import annotations

import shlex

import pytest
import yaml
from binary_feedback import DATASETS, RULES, StudyAConfig, StudyBConfig
from binary_feedback.train import STUDY_B_FLAGS, main, parse, resolve
from bnn_shared.cli import run_cli
from bnn_shared.data.registry import DATASETS as CORE_DATASETS
from bnn_shared.errors import ConfigError


class TestSchemas:
    def test_each_study_has_its_own_defaults(self):
        a, b = StudyAConfig(), StudyBConfig()
        # study A: its code's command-line defaults (spec A.1), not the paper's settings
        assert (a.study, a.epochs, a.lr, a.method) == ("A", 5, 1e-3, "GD")
        assert (a.init, a.weight_clipping, a.verbose, a.sn) == (0.1, None, 0, False)
        assert (b.study, b.epochs, b.lr, b.method) == ("B", 80, 1e-3, "bp")
        assert a.hidden == [700, 500] and a.batch_size == 128 and b.bs == 10

    def test_hidden_sizes_from_a_comma_separated_string(self):
        assert StudyAConfig(hidden="256, 128").hidden == [256, 128]
        assert StudyAConfig(hidden=64).hidden == [64]
        with pytest.raises(ValueError, match="--hidden '7a0'"):
            StudyAConfig(hidden="7a0")

    def test_assignment_is_validated(self):
        config = StudyBConfig()
        with pytest.raises(ValueError, match="greater than 0"):
            config.lr = 0.0
        with pytest.raises(ValueError, match="unknown model 'ResNet'"):
            config.model = "ResNet"

    @pytest.mark.parametrize("name", [*DATASETS.names(), *DATASETS.aliases()])
    def test_every_dataset_name_and_alias_is_stored_canonical(self, name):
        canonical = DATASETS.get(name)
        assert StudyAConfig(dataset=name).dataset == canonical == CORE_DATASETS.canonical(name)

    @pytest.mark.parametrize("name", ["FashionMNIST", "fmnist", "CIFAR10", "cifar-10", "MNIST"])
    def test_the_papers_dataset_spellings(self, name):
        assert StudyBConfig(dataset=name).dataset in {"fashion_mnist", "cifar10", "mnist"}

    @pytest.mark.parametrize("name", [*RULES.names(), *RULES.aliases(), "GD", "DRTP"])
    def test_every_method_name_is_accepted_as_typed(self, name):
        assert StudyBConfig(method=name).method == name


class TestCommandLine:
    @pytest.mark.parametrize(
        "argv, key",
        [
            ("--epochs 0", "epochs"),
            ("--lr=-1e-3", "lr"),
            ("-b 0", "batch_size"),
            ("--hidden 32,0", "hidden[1]"),
            ("--model MLP --bs 0", "bs"),
            ("--model MLP --image-size 0", "image_size"),
            ("--model MLP --train-fraction 1", "train_fraction"),
        ],
    )
    def test_non_positive_sizes_are_one_line_errors_naming_the_key(self, capsys, argv, key):
        assert run_cli(main, shlex.split(f"--dataset digits {argv}")) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and f"key {key!r}" in err and err.count("\n") == 1

    def test_set_overrides_flags_and_files(self, tmp_path):
        path = tmp_path / "run.yaml"
        path.write_text("lr: 0.1\nhidden: [64, 32]\n")
        config = resolve(["--config", str(path), "--lr", "0.2", "--set", "lr=0.3", "epochs=4"])
        assert (config.lr, config.epochs, config.hidden) == (0.3, 4, [64, 32])
        with pytest.raises(ConfigError, match="unknown key 'lrr'"):
            resolve(["--set", "lrr=1"])

    @pytest.mark.parametrize(
        "argv, message",
        [
            ("--study A --bs 10", "--bs belongs to study B"),
            ("--model MLP --hidden 32 -b 4", "--batch-size, --hidden belong to study A"),
        ],
    )
    def test_a_flag_of_the_other_study_is_an_error(self, argv, message):
        with pytest.raises(ConfigError, match=message):
            resolve(shlex.split(argv))

    def test_every_study_b_flag_selects_study_b(self):
        assert len(STUDY_B_FLAGS) == len(set(STUDY_B_FLAGS))
        for flag in ("--model", "--bs", "--mnist", "--biprop", "--reconstruction", "--tags"):
            assert flag in STUDY_B_FLAGS
        assert not {"--hidden", "--bn", "--method", "--epochs"} & set(STUDY_B_FLAGS)
        assert resolve(["--hsic-mode", "plausible"]).study == "B"
        assert resolve(["--set", "epochs=2"]).study == "A"

    @pytest.mark.parametrize("method", ["hsic", "pepita", "sigprop", "ls", "spsa", "spsag"])
    def test_a_method_of_study_b_only_selects_study_b(self, method):
        assert resolve(["--method", method]).study == "B"

    @pytest.mark.parametrize("method", ["gd", "BP", "dfa", "DRTP"])
    def test_the_methods_of_both_studies_keep_study_a(self, method):
        assert resolve(["--method", method]).study == "A"

    def test_study_a_refuses_a_study_b_method(self):
        with pytest.raises(ConfigError, match="study A trains with GD"):
            resolve(["--study", "A", "--method", "hsic"])

    def test_a_config_file_may_name_the_study_model_and_run_settings(self, tmp_path):
        path = tmp_path / "b.yaml"
        path.write_text("model: SmallCNN\nbinary-act: true\nout_dir: somewhere\ndevice: cpu\n")
        config, settings = parse(["--config", str(path)])
        assert (config.study, config.model, config.binary_act) == ("B", "SmallCNN", True)
        assert (str(settings.out_dir), settings.device) == ("somewhere", "cpu")
        config, settings = parse(["--config", str(path), "--out-dir", "there"])
        assert str(settings.out_dir) == "there"

    def test_a_runs_config_yaml_reproduces_its_config(self, tmp_path):
        argv = "--dataset digits --hidden 16 -b 64 --epochs 1 --seed 3 --device cpu --quiet"
        assert main(shlex.split(f"{argv} --out-dir {tmp_path}")) == 0
        stored = yaml.safe_load((tmp_path / "config.yaml").read_text())
        assert stored["run"]["device"] == "cpu" and stored["hidden"] == [16]
        again = resolve(["--config", str(tmp_path / "config.yaml")])
        assert again == resolve(shlex.split(argv))

    def test_wandb_and_no_wandb_contradict(self):
        with pytest.raises(ConfigError, match="contradict"):
            parse(["--model", "MLP", "--no-wandb", "--wandb"])
