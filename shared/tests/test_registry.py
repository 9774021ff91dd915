"""bnn_shared.registry: one lookup and one message for every name-to-implementation table."""

from __future__ import annotations

import pytest
from bnn_shared import quantizers
from bnn_shared.data import registry as data_registry
from bnn_shared.errors import BnnError, ConfigError
from bnn_shared.registry import Registry, normalize_name


@pytest.fixture
def models():
    registry = Registry("model", flag="--model")
    registry.register("LSTM", "lstm-builder")
    registry.register("hadamrnn", "hadamrnn-builder", aliases=("BinadamSSM", "block-hadamrnn"))

    @registry.register("ornn")
    def ornn():
        return "ornn-builder"

    return registry


class TestRegistry:
    def test_lookup_is_case_and_dash_insensitive_with_aliases(self, models):
        assert models.get("lstm") == models.get(" LSTM ") == "lstm-builder"
        assert models.get("binadamssm") == models.get("Block_HadamRNN") == "hadamrnn-builder"
        assert models.canonical("BLOCK-hadamrnn") == "hadamrnn"
        assert models.get("ornn")() == "ornn-builder"  # the decorator returns the function

    def test_names_aliases_items_and_membership(self, models):
        assert models.names() == list(models) == ["hadamrnn", "lstm", "ornn"]
        assert models.aliases() == {"binadamssm": "hadamrnn", "block_hadamrnn": "hadamrnn"}
        assert [name for name, _ in models.items()] == models.names() and len(models) == 3
        assert "BinadamSSM" in models and "gru" not in models and 3 not in models

    def test_unknown_name_is_one_config_error_line(self, models):
        with pytest.raises(ConfigError) as info:
            models.get("lstmm")
        message = str(info.value)
        assert message == (
            "unknown model 'lstmm' (--model); choose one of hadamrnn, lstm, ornn "
            "(did you mean 'lstm'?)"
        )

    def test_taken_names_and_aliases(self, models):
        with pytest.raises(BnnError, match="already registered"):
            models.register("lstm", "another")
        with pytest.raises(BnnError, match="already taken"):
            models.register("gru", "gru-builder", aliases=("binadamssm",))
        models.register("lstm", "lstm-builder")  # the same entry again is fine
        models.register("lstm", "new", replace=True)
        assert models.get("lstm") == "new"

    def test_copy_is_independent(self, models):
        other = models.copy()
        other.register("gru", "gru-builder")
        assert "gru" in other and "gru" not in models

    def test_normalize_name(self):
        assert normalize_name(" Fashion-MNIST ") == "fashion_mnist"


@pytest.mark.parametrize(
    ("registry", "name"),
    [(quantizers.QUANTIZERS, "ste_sing"), (data_registry.DATASETS, "mnistt")],
)
def test_core_tables_are_registries_with_the_common_message(registry, name):
    assert isinstance(registry, Registry)
    with pytest.raises(ConfigError, match=rf"unknown {registry.kind} '{name}'.*choose one of"):
        registry.get(name)
