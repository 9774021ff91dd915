"""Study B's VGG autoencoders (``--reconstruction``; spec A.4, not in the paper).

The layout of the reference (itself adapted from Horizon2333/imagenet-autoencoder), by stage::

    encoder  5 stages of 64, 128, 256, 512, 512 channels; n_s layers of
             Conv3x3(pad 1) -> BatchNorm2d -> ReLU, then MaxPool 2x2   (224 -> 7)
    decoder  the stage counts reversed; each stage: ConvTranspose2d(k 2, s 2, same channels),
             then n_s layers of BatchNorm2d -> ReLU -> Conv3x3(pad 1); stage outputs 512, 256,
             128, 64 and the image channels; a final Sigmoid

with n_s = [1,1,2,2,2] (vgg11), [2,2,2,2,2] (vgg13), [2,2,3,3,3] (vgg16), [2,2,4,4,4]
(vgg19): 20.89M, 21.26M, 31.89M and 42.51M parameters at 3 channels. The input side must be
a multiple of 32 (five 2x2 poolings): 224 reaches 7x7, 32 reaches 1x1.

Study B keeps the first encoder conv and the last decoder conv full precision (the
reference's ``config.yaml`` has entries for aevgg16/19 only, so vgg11/13 crashed; here all four
depths have them). ``ConvTranspose2d`` is not a ``Conv2d`` subclass, so it is never binarised
nor hooked by DFA, as in the reference.
"""

from __future__ import annotations

from collections.abc import Sequence

from bnn_shared.errors import ConfigError, ShapeError
from bnn_shared.registry import Registry
from torch import Tensor, nn

__all__ = [
    "AUTOENCODERS",
    "RECONSTRUCTION_METHODS",
    "VGGAutoencoder",
    "autoencoder_fp_layers",
    "check_reconstruction",
]

#: VGG depth name -> layers per stage (encoder order).
AUTOENCODERS: Registry[tuple[int, ...]] = Registry("autoencoder", flag="--model")
AUTOENCODERS.register("vgg11", (1, 1, 2, 2, 2))
AUTOENCODERS.register("vgg13", (2, 2, 2, 2, 2))
AUTOENCODERS.register("vgg16", (2, 2, 3, 3, 3))
AUTOENCODERS.register("vgg19", (2, 2, 4, 4, 4))

#: The training rules that run on an image target (the others build one-hot targets).
RECONSTRUCTION_METHODS = ("bp", "dfa")
_WIDTHS = (64, 128, 256, 512, 512)


def check_reconstruction(model: str, method: str, reconstruction: bool) -> None:
    """Raise ValueError unless the model and the method fit ``reconstruction``."""
    name = model.lower()
    if not reconstruction:
        if name in AUTOENCODERS and name not in ("vgg16", "vgg19"):
            raise ValueError(f"--model {model} is an autoencoder only: add --reconstruction")
        return
    if name not in AUTOENCODERS:
        raise ValueError(
            f"--reconstruction needs an autoencoder model (vgg11, vgg13, vgg16 or vgg19), "
            f"not {model!r}"
        )
    if method.lower() not in RECONSTRUCTION_METHODS:
        raise ValueError(
            f"--reconstruction trains with bp or dfa only, not {method!r} (the other methods "
            "need class labels)"
        )


def _encoder_layer(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(n_in, n_out, 3, padding=1), nn.BatchNorm2d(n_out), nn.ReLU(inplace=True)
    )


def _decoder_layer(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(n_in), nn.ReLU(inplace=True), nn.Conv2d(n_in, n_out, 3, padding=1)
    )


def _stage_sizes(n_in: int, hidden: int, n_out: int, layers: int) -> list[tuple[int, int]]:
    """(in, out) of a stage's layers: in -> hidden ... hidden -> out."""
    if layers == 1:
        return [(n_in, n_out)]
    return [(n_in, hidden)] + [(hidden, hidden)] * (layers - 2) + [(hidden, n_out)]


class VGGAutoencoder(nn.Module):
    """A VGG autoencoder of ``layers`` per stage (see the module), output in (0, 1).

    Args:
        layers: layers per encoder stage (5 numbers; the decoder reverses them).
        channels: image channels (input and output). Default 3.
        sigmoid: close the decoder with a Sigmoid (the reference). Default True.
    """

    def __init__(self, layers: Sequence[int], channels: int = 3, sigmoid: bool = True) -> None:
        super().__init__()
        if len(layers) != 5 or min(layers) < 1:
            raise ConfigError(f"a VGG autoencoder needs 5 stage sizes >= 1, got {list(layers)}")
        encoder: list[nn.Module] = []
        n_in = channels
        for width, count in zip(_WIDTHS, layers, strict=True):
            encoder += [_encoder_layer(a, b) for a, b in _stage_sizes(n_in, width, width, count)]
            encoder.append(nn.MaxPool2d(2, 2))
            n_in = width
        decoder: list[nn.Module] = []
        outputs = (512, 256, 128, 64, channels)
        for n_out, count in zip(outputs, tuple(layers)[::-1], strict=True):
            decoder.append(nn.ConvTranspose2d(n_in, n_in, 2, stride=2))
            decoder += [_decoder_layer(a, b) for a, b in _stage_sizes(n_in, n_in, n_out, count)]
            n_in = n_out
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        self.gate = nn.Sigmoid() if sigmoid else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ShapeError(
                f"the VGG autoencoder needs image sides that are multiples of 32, got "
                f"{tuple(x.shape[-2:])}; use --image-size 32, 64, ... or 224"
            )
        return self.gate(self.decoder(self.encoder(x)))


def autoencoder_fp_layers(model: VGGAutoencoder) -> list[str]:
    """The layers study B keeps full precision: the first encoder conv, the last decoder conv."""
    convs = [name for name, m in model.named_modules() if type(m) is nn.Conv2d]
    return [convs[0], convs[-1]]
