"""Models: registry, shapes, forward + backward on small inputs, skips, parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from binary_feedback.commons.activations import SignSat, Tanh
from binary_feedback.commons.layers import BinaryLinear, StudyABatchNorm1d
from binary_feedback.models import (
    MLP,
    MODELS,
    FullyConnected,
    MLPMixer,
    PreNormResidual,
    SmallCNN,
    available_models,
    build_model,
    remove_skips,
)
from binary_feedback.models.mixer import Patchify
from bnn_shared import quantizers
from bnn_shared.errors import ConfigError, ShapeError
from torch import nn

SMALL_MIXER = {"patch_size": 8, "dim": 16, "depth": 2}
#: Small inputs per registered model (VGG-16 is only counted on the meta device, below).
SMALL = {
    "mlp": ((1, 8, 8), {"hidden": (16, 8)}),
    "fullyconnected": ((1, 8, 8), {"hidden": (16, 8), "bn": True}),
    "smallcnn": ((1, 8, 8), {"width": 4, "hidden": 8}),
    "mobilenetv2": ((3, 32, 32), {}),
    "vgg19": ((3, 32, 32), {}),
    "mlpmixer": ((3, 32, 32), SMALL_MIXER),
}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_backward(model: nn.Module, in_shape, num_classes: int = 10) -> torch.Tensor:
    x = torch.randn(2, *in_shape)
    out = model(x)
    assert out.shape == (2, num_classes)
    F.cross_entropy(out, torch.tensor([0, 1])).backward()
    return out


class TestRegistry:
    @pytest.mark.parametrize("name", sorted(SMALL))
    def test_forward_backward_and_layer_names(self, name):
        torch.manual_seed(0)
        in_shape, options = SMALL[name]
        model, fp_layers, output_layer = build_model(name, 10, in_shape, **options)
        forward_backward(model, in_shape)
        modules = dict(model.named_modules())
        assert output_layer == fp_layers[-1]
        assert modules[output_layer].out_features == 10
        assert isinstance(modules[fp_layers[0]], nn.Linear | nn.Conv2d)
        assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    def test_every_registered_model_is_tested(self):
        assert set(available_models()) == set(SMALL) | {"vgg16"}
        assert set(MODELS) | set(MODELS.aliases()) == set(available_models())

    def test_names_are_case_insensitive(self):
        assert isinstance(build_model("SmallCNN", 3, (1, 8, 8)).model, SmallCNN)
        assert isinstance(build_model("FULLYCONNECTED", 3, (4,)).model, FullyConnected)

    def test_unknown_name_and_option(self):
        with pytest.raises(ConfigError, match="unknown model 'resnet18' .*choose one of mlp"):
            build_model("resnet18", 10, (3, 32, 32))
        with pytest.raises(ConfigError, match="SmallCNN"):
            build_model("SmallCNN", 10, (1, 8, 8), depth=3)

    def test_image_models_need_image_shapes(self):
        with pytest.raises(ShapeError, match=r"\(C, H, W\)"):
            build_model("SmallCNN", 10, (64,))

    def test_grey_input_rebuilds_the_stem(self):
        model, fp_layers, _ = build_model("MobileNetV2", 10, (1, 32, 32))
        assert dict(model.named_modules())[fp_layers[0]].in_channels == 1
        forward_backward(model, (1, 32, 32))


class TestParameterCounts:
    @pytest.mark.parametrize(
        ("name", "count"),
        [
            ("MobileNetV2", 2_236_682),
            ("vgg16", 134_309_962),
            ("vgg19", 139_622_218),
            ("MLPMixer", 7_279_098),  # image 224, patch 16, dim 512, depth 12
        ],
    )
    def test_paper_models_at_224(self, name, count):
        with torch.device("meta"):  # shapes only: no memory, no init cost
            assert n_params(build_model(name, 10, (3, 224, 224)).model) == count

    def test_mixer_shapes_at_224(self):
        with torch.device("meta"):
            model = MLPMixer(10)
        token, channel = model[2][0].fn, model[2][1].fn
        assert (token[0].in_channels, token[0].out_channels, token[0].kernel_size) == (
            196,
            784,
            (1,),
        )
        assert (token[3].in_channels, token[3].out_channels) == (784, 196)
        assert (channel[0].in_features, channel[0].out_features) == (512, 256)
        assert (channel[3].in_features, channel[3].out_features) == (256, 512)
        assert isinstance(token[1], nn.GELU) and len(model) == 17

    def test_study_a_mlp(self):
        assert n_params(MLP(784, 10)) == 1_110_800
        assert n_params(MLP(784, 10, bn=True)) == 1_114_200


class TestStudyAMLP:
    def test_layout_and_binarisation(self):
        model = MLP(784, 10, hidden_act="signsat", bn=True, binarize=True)
        linears = [m for m in model.modules() if isinstance(m, BinaryLinear)]
        assert [m.kernel_quantizer is not None for m in linears] == [True] * 4 + [False]
        assert [type(m) for m in model.layers[1:5]] == [
            BinaryLinear,
            StudyABatchNorm1d,
            SignSat,
            BinaryLinear,
        ]
        assert isinstance(model.last_act, Tanh)
        assert all(m.bias is None for m in linears)

    def test_binarize_last(self):
        # spec A.1: the output layer's latent weights always get the identity STE, whatever
        # --weight-ste, and --binarize_last works without --binarize
        model = MLP(16, 3, (8,), binarize=True, binarize_last=True, weight_ste="sat")
        quantizer = model.output.kernel_quantizer
        assert type(quantizer) is quantizers.Sign and quantizer.zero == -1
        assert isinstance(model.layers[1].kernel_quantizer, quantizers.SteSign)
        alone = MLP(16, 3, (8,), binarize_last=True)
        assert type(alone.output.kernel_quantizer) is quantizers.Sign
        assert alone.layers[1].kernel_quantizer is None

    def test_tanh_output_and_float64(self):
        model = MLP(16, 3, (8, 8), bn=True, dtype=torch.float64)
        out = model(torch.randn(4, 16, dtype=torch.float64))
        assert out.dtype == torch.float64 and out.abs().max() <= 1

    def test_fully_connected_defaults(self):
        model = FullyConnected(784, 10, bn=True)
        assert [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm1d)] == [
            700,
            500,
            300,
            200,
        ]
        logits = []
        model.output.register_forward_hook(lambda module, args, out: logits.append(out))
        out = model(torch.randn(2, 1, 28, 28) * 100)
        assert torch.equal(out, logits[0])  # logits, no output tanh

    @pytest.mark.parametrize("size", [8, 28, 32])
    def test_small_cnn_on_digits_mnist_cifar(self, size):
        channels = 3 if size == 32 else 1
        forward_backward(SmallCNN(10, channels, width=4, hidden=8), (channels, size, size))


class TestMixer:
    def test_patchify_matches_patch_loop(self):
        x = torch.randn(2, 3, 8, 12)
        out = Patchify(4)(x)
        patches = [
            x[:, :, i : i + 4, j : j + 4].permute(0, 2, 3, 1).reshape(2, -1)
            for i in range(0, 8, 4)
            for j in range(0, 12, 4)
        ]
        assert torch.equal(out, torch.stack(patches, dim=1))

    def test_non_square_and_bad_patch(self):
        forward_backward(MLPMixer(10, image_size=(16, 32), **SMALL_MIXER), (3, 16, 32))
        with pytest.raises(ShapeError, match="patch size 16"):
            build_model("MLPMixer", 10, (1, 28, 28))

    def test_remove_skips(self):
        torch.manual_seed(0)
        model = MLPMixer(10, image_size=32, **SMALL_MIXER)
        x = torch.randn(2, 3, 32, 32)
        with_skips = model(x)
        assert remove_skips(model) == 4
        assert remove_skips(model) == 0
        block = model[2][0]
        h = torch.randn(2, 16, 16)
        torch.testing.assert_close(block(h), block.fn(block.norm(h)))
        assert not torch.allclose(model(x), with_skips)
        assert PreNormResidual.local_block is True


class TestMobileNetV2:
    def test_remove_skips(self):
        torch.manual_seed(0)
        model = build_model("MobileNetV2", 10, (3, 32, 32)).model.eval()
        block = model.features[3]  # 24 -> 24 channels, stride 1: a residual block
        h = torch.randn(2, 24, 8, 8)
        torch.testing.assert_close(block(h), h + block.conv(h))
        assert remove_skips(model) == 10
        assert not any(getattr(m, "use_res_connect", False) for m in model.modules())
        torch.testing.assert_close(block(h), block.conv(h))
        forward_backward(model.train(), (3, 32, 32))

    def test_vgg_has_no_skips(self):
        with torch.device("meta"):
            assert remove_skips(build_model("vgg16", 10, (3, 32, 32)).model) == 0
