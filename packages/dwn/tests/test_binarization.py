"""Thermometer encoders: thresholds against their formulas, strict comparisons, shapes, ties."""

from __future__ import annotations

import pytest
import torch
from bnn_shared.errors import BnnError, ConfigError, ShapeError
from dwn.binarization import ENCODERS as REGISTRY
from dwn.binarization import DistributiveThermometer, GaussianThermometer, Thermometer

#: every registered encoder: a new one is tested by registering it
ENCODERS = [cls for _, cls in REGISTRY.items()]


def ramp(n: int = 100) -> torch.Tensor:
    """The values 0..n-1 as one feature, shape (n, 1)."""
    return torch.arange(n, dtype=torch.float32).unsqueeze(1)


class TestThresholds:
    def test_uniform_formula(self):
        x = torch.tensor([[0.0, -2.0], [10.0, 2.0], [4.0, 0.5]])
        enc = Thermometer(num_bits=4).fit(x)
        t = torch.arange(1, 5, dtype=torch.float32)
        expected = torch.stack([0 + t * 10 / 5, -2 + t * 4 / 5])
        torch.testing.assert_close(enc.thresholds, expected)

    def test_uniform_global(self):
        x = torch.tensor([[0.0, -2.0], [10.0, 2.0]])
        enc = Thermometer(num_bits=3, feature_wise=False).fit(x)
        torch.testing.assert_close(enc.thresholds, torch.tensor([1.0, 4.0, 7.0]))

    def test_gaussian_three_bits(self):
        x = torch.randn(500, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
        enc = GaussianThermometer(num_bits=3).fit(x)
        mean, std = x.mean(0), x.std(0, unbiased=True)
        z = torch.tensor([-0.6744897501960817, 0.0, 0.6744897501960817])
        expected = mean[:, None] + std[:, None] * z
        torch.testing.assert_close(enc.thresholds, expected)

    def test_gaussian_matches_normal_icdf(self):
        x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        enc = GaussianThermometer(num_bits=7, feature_wise=False).fit(x)
        p = torch.arange(1, 8, dtype=torch.float64) / 8
        icdf = torch.distributions.Normal(0.0, 1.0).icdf(p)
        torch.testing.assert_close(enc.thresholds, x.mean() + x.std() * icdf)

    def test_distributive_quantiles(self):
        enc = DistributiveThermometer(num_bits=3).fit(ramp())
        assert enc.thresholds.tolist() == [[25.0, 50.0, 75.0]]
        assert enc.binarize(torch.tensor([[75.0]])).tolist() == [[[1.0, 1.0, 0.0]]]

    @pytest.mark.parametrize("n, bits", [(7, 2), (10, 3), (33, 5), (1, 4)])
    def test_distributive_index_is_floor(self, n, bits):
        x = torch.randperm(n).float().unsqueeze(1) * 2  # values 0, 2, ..., sorted gives 2*index
        enc = DistributiveThermometer(num_bits=bits).fit(x)
        expected = [[2.0 * (n * t // (bits + 1)) for t in range(1, bits + 1)]]
        assert enc.thresholds.tolist() == expected

    def test_distributive_global_flattens_all_values(self):
        x = torch.arange(100.0).reshape(25, 4)  # every value once, spread over features
        enc = DistributiveThermometer(num_bits=3, feature_wise=False).fit(x)
        assert enc.thresholds.tolist() == [25.0, 50.0, 75.0]

    def test_distributive_keeps_integer_dtype(self):
        enc = DistributiveThermometer(num_bits=3).fit(torch.arange(100).unsqueeze(1))
        assert enc.thresholds.dtype == torch.int64

    @pytest.mark.parametrize("cls", ENCODERS)
    def test_ascending(self, cls):
        x = torch.rand(64, 5, generator=torch.Generator().manual_seed(2))
        thr = cls(num_bits=6).fit(x).thresholds
        assert (thr[..., 1:] >= thr[..., :-1]).all()

    @pytest.mark.parametrize("cls", ENCODERS)
    def test_accepts_lists(self, cls):
        enc = cls(num_bits=2).fit([[0.0], [1.0], [2.0], [3.0]])
        assert enc.binarize([[1.5]]).shape == (1, 1, 2)


class TestBinarize:
    @pytest.mark.parametrize("cls", ENCODERS)
    def test_strict_at_thresholds(self, cls):
        x = torch.rand(40, 3, generator=torch.Generator().manual_seed(3))
        enc = cls(num_bits=4).fit(x)
        thr = enc.thresholds  # (3, 4)
        for t in range(4):
            bits = enc.binarize(thr[:, t].unsqueeze(0))[0]  # each feature exactly at thr_t
            assert torch.equal(bits, (thr[:, t, None] > thr).float())
            assert (bits[:, t] == 0).all()

    def test_unary_code(self):
        enc = Thermometer(num_bits=3).fit(ramp(5))  # thresholds 1, 2, 3
        bits = enc.binarize(torch.tensor([[0.5], [1.0], [1.5], [2.5], [3.5]]))[:, 0]
        assert bits.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]

    @pytest.mark.parametrize("cls", ENCODERS)
    @pytest.mark.parametrize("feature_wise", [True, False])
    def test_image_shapes(self, cls, feature_wise):
        x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(4))
        enc = cls(num_bits=3, feature_wise=feature_wise).fit(x)
        expected = (1, 28, 28, 3) if feature_wise else (3,)
        assert enc.thresholds.shape == expected
        out = enc.binarize(x[:5])
        assert out.shape == (5, 1, 28, 28, 3)
        assert out.dtype == torch.float32
        assert set(out.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(enc(x[:5]), out)

    def test_feature_major_flatten(self):
        x = torch.tensor([[0.0, 10.0], [4.0, 20.0]])
        enc = Thermometer(num_bits=3).fit(x)  # thresholds (1, 2, 3) and (12.5, 15, 17.5)
        flat = enc.binarize(torch.tensor([[2.5, 16.0]])).flatten(1)
        assert flat.tolist() == [[1, 1, 0, 1, 1, 0]]

    def test_global_thresholds_apply_to_every_feature(self):
        enc = Thermometer(num_bits=1, feature_wise=False).fit(torch.tensor([[0.0, 2.0]]))
        assert enc.binarize(torch.tensor([[1.5, 0.5, 3.0]])).tolist() == [[[1], [0], [1]]]

    def test_ties_duplicate_thresholds(self):
        # 80 % zeros, like MNIST background pixels: all three thresholds are 0 and the bits
        # repeat the single bit "x > 0" (kept as in the reference).
        x = torch.cat([torch.zeros(80), torch.linspace(0.1, 1.0, 20)]).unsqueeze(1)
        enc = DistributiveThermometer(num_bits=3).fit(x)
        assert enc.thresholds.tolist() == [[0.0, 0.0, 0.0]]
        bits = enc.binarize(torch.tensor([[0.0], [0.5]]))[:, 0]
        assert bits.tolist() == [[0, 0, 0], [1, 1, 1]]

    def test_constant_feature(self):
        enc = Thermometer(num_bits=2).fit(torch.full((5, 1), 3.0))
        assert enc.thresholds.tolist() == [[3.0, 3.0]]
        assert enc.binarize(torch.tensor([[3.0], [3.1]]))[:, 0].tolist() == [[0, 0], [1, 1]]


class TestModule:
    @pytest.mark.parametrize("cls", ENCODERS)
    def test_state_dict_round_trip(self, cls):
        x = torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(5))
        fitted = cls(num_bits=3).fit(x)
        fresh = cls(num_bits=3)
        fresh.load_state_dict(fitted.state_dict())
        assert torch.equal(fresh.thresholds, fitted.thresholds)
        assert torch.equal(fresh.binarize(x), fitted.binarize(x))

    def test_unfitted_state_dict_is_empty(self):
        assert dict(Thermometer(2).state_dict()) == {}

    def test_refit_replaces_shape(self):
        enc = Thermometer(num_bits=2).fit(torch.rand(4, 3))
        enc.fit(torch.rand(4, 5, 2))
        assert enc.thresholds.shape == (5, 2, 2)

    def test_attributes_for_export(self):
        enc = DistributiveThermometer(num_bits=5, feature_wise=False)
        assert (enc.num_bits, enc.feature_wise, enc.thresholds) == (5, False, None)
        assert enc.fit(ramp()) is enc

    def test_float64_module_conversion(self):
        enc = Thermometer(num_bits=2).fit(ramp()).double()
        assert enc.thresholds.dtype == torch.float64


class TestErrors:
    @pytest.mark.parametrize("cls", ENCODERS)
    def test_binarize_before_fit(self, cls):
        with pytest.raises(BnnError, match=r"fit\(x\) first"):
            cls(num_bits=2).binarize(torch.zeros(1, 1))

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True])
    def test_bad_num_bits(self, bad):
        with pytest.raises(ConfigError, match="num_bits"):
            Thermometer(num_bits=bad)

    def test_bad_feature_wise(self):
        with pytest.raises(ConfigError, match="feature_wise"):
            GaussianThermometer(2, feature_wise=1)

    def test_wrong_feature_shape(self):
        enc = Thermometer(2).fit(torch.rand(4, 3))
        with pytest.raises(ShapeError, match=r"\(3,\)"):
            enc.binarize(torch.rand(4, 5))

    def test_empty_data(self):
        with pytest.raises(ShapeError):
            Thermometer(2).fit(torch.zeros(0, 3))

    def test_gaussian_needs_two_samples(self):
        with pytest.raises(ShapeError, match="at least 2"):
            GaussianThermometer(2).fit(torch.zeros(1, 3))


class TestRegistry:
    def test_names_of_the_paper(self):
        assert REGISTRY.names() == ["distributive", "gaussian", "thermometer"]
        assert REGISTRY.get("Distributive") is DistributiveThermometer
        assert REGISTRY.get("gaussian") is GaussianThermometer
        assert REGISTRY.get("thermometer") is Thermometer

    @pytest.mark.parametrize("name", REGISTRY.names())
    def test_registered_encoder_is_a_thermometer(self, name):
        encoder = REGISTRY.get(name)(2).fit(ramp(10))
        assert isinstance(encoder, Thermometer) and encoder.thresholds.shape == (1, 2)

    def test_unknown_name_lists_the_choices(self):
        with pytest.raises(ConfigError, match=r"unknown encoder 'thermo' \(--encoder\); choose"):
            REGISTRY.get("thermo")
