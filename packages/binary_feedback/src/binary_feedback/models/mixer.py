"""MLP-Mixer as study B used it (the ``mlp-mixer-pytorch`` 0.1.1 layout), without einops.

A ``Sequential`` whose indices match the reference, so that study B's full-precision layers
are index 1 (patch embedding) and the last index (head)::

    0  Patchify                 (b, c, H, W) -> (b, N, p*p*c), N = (H/p)(W/p)
    1  Linear(p*p*c, dim)       patch embedding
    2 .. depth+1                Sequential(token mixing, channel mixing), each a PreNormResidual
    depth+2  LayerNorm(dim)
    depth+3  TokenMean          mean over the N tokens
    depth+4  Linear(dim, C)     head

Token mixing = ``Conv1d(N -> N*expansion, k=1) -> GELU -> Conv1d(-> N, k=1)`` over the token
axis; channel mixing = ``Linear(dim -> dim*token_expansion) -> GELU -> Linear(-> dim)``. (The
reference names the factors the other way round: ``expansion_factor`` = 4 widens the tokens,
``expansion_factor_token`` = 0.5 the channels.) With image 224, patch 16, dim 512, depth 12:
196 tokens, Conv1d(196 -> 784 -> 196), Linear(512 -> 256 -> 512), 7,279,098 parameters at
10 classes.

References: Tolstikhin et al., "MLP-Mixer", arXiv 2105.01601; Crulis, Serres, de Runz,
Venturini, arXiv 2408.04460.
"""

from __future__ import annotations

from collections.abc import Callable

from bnn_shared.errors import ShapeError
from torch import Tensor, nn

__all__ = ["MLPMixer", "Patchify", "PreNormResidual", "TokenMean", "remove_prenorm_skips"]


class Patchify(nn.Module):
    """Cut an image into non-overlapping p x p patches: ``b c (h p1) (w p2) -> b (h w) (p1 p2
    c)`` (einops notation); each patch is flattened pixel-major, channel-minor."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size

    def forward(self, x: Tensor) -> Tensor:
        b, c, height, width = x.shape
        p = self.patch_size
        x = x.reshape(b, c, height // p, p, width // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (height // p) * (width // p), p * p * c)

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}"


class PreNormResidual(nn.Module):
    """``fn(LayerNorm(x)) + x``, or ``fn(LayerNorm(x))`` once ``residual`` is False.

    ``local_block = True`` marks it as one local problem for the layer-local training rules
    (DRTP, HSIC), which hook such blocks as they hook torchvision's ``InvertedResidual``.

    Args:
        dim: feature size normalised by the LayerNorm (last axis).
        fn: the mixing MLP.
    """

    local_block = True

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.norm = nn.LayerNorm(dim)
        self.residual = True

    def forward(self, x: Tensor) -> Tensor:
        out = self.fn(self.norm(x))
        return out + x if self.residual else out

    def extra_repr(self) -> str:
        return f"residual={self.residual}"


class TokenMean(nn.Module):
    """Mean over the token axis: ``(b, n, c) -> (b, c)``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=1)


def _feed_forward(
    dim: int, expansion: float, dropout: float, dense: Callable[[int, int], nn.Module]
) -> nn.Sequential:
    inner = int(dim * expansion)
    return nn.Sequential(
        dense(dim, inner), nn.GELU(), nn.Dropout(dropout), dense(inner, dim), nn.Dropout(dropout)
    )


def _token_dense(n_in: int, n_out: int) -> nn.Conv1d:
    return nn.Conv1d(n_in, n_out, kernel_size=1)


class MLPMixer(nn.Sequential):
    """MLP-Mixer with pre-LayerNorm residual blocks, final LayerNorm, mean pooling, a head.

    Args:
        num_classes: output size.
        image_size: input height and width (an int for square images). Default 224.
        channels: input channels. Default 3.
        patch_size: patch side; must divide both image sides. Default 16.
        dim: channel width (``--mlp-mixer-dim``). Default 512.
        depth: number of mixer blocks (``--mlp-mixer-layers``). Default 12.
        expansion_factor: widening of the token-mixing MLP. Default 4.
        expansion_factor_token: widening of the channel-mixing MLP. Default 0.5.
        dropout: dropout after each dense layer of the MLPs. Default 0.

    Raises:
        ShapeError: the patch size does not divide the image size.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        image_size: int | tuple[int, int] = 224,
        channels: int = 3,
        patch_size: int = 16,
        dim: int = 512,
        depth: int = 12,
        expansion_factor: float = 4,
        expansion_factor_token: float = 0.5,
        dropout: float = 0.0,
    ) -> None:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if height % patch_size or width % patch_size:
            raise ShapeError(
                f"MLP-Mixer: patch size {patch_size} must divide the image size {height}x{width}"
            )
        num_patches = (height // patch_size) * (width // patch_size)

        def block() -> nn.Sequential:
            tokens = _feed_forward(num_patches, expansion_factor, dropout, _token_dense)
            features = _feed_forward(dim, expansion_factor_token, dropout, nn.Linear)
            return nn.Sequential(PreNormResidual(dim, tokens), PreNormResidual(dim, features))

        super().__init__(
            Patchify(patch_size),
            nn.Linear(patch_size**2 * channels, dim),
            *(block() for _ in range(depth)),
            nn.LayerNorm(dim),
            TokenMean(),
            nn.Linear(dim, num_classes),
        )


def remove_prenorm_skips(model: nn.Module) -> int:
    """Turn every residual :class:`PreNormResidual` into a plain PreNorm block (no ``+ x``):
    the "skip connections removed" ablation. Returns the number of skips removed."""
    blocks = [m for m in model.modules() if isinstance(m, PreNormResidual) and m.residual]
    for block in blocks:
        block.residual = False
    return len(blocks)
