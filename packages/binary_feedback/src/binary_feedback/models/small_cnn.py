"""A small CNN that trains on a CPU: 8x8 digits, 28x28 MNIST / Fashion-MNIST, 32x32 CIFAR.

Not a model of either study: it gives the extension's methods (HSIC bottleneck, SigpropTL,
DFA, DRTP) a convolutional network small enough for MNIST on two CPU cores. Layout, with the
full-precision layers of study B's convention (first conv ``features.0``, head
``classifier.4``)::

    features   = conv3x3-BN-ReLU-maxpool2, conv3x3-BN-ReLU-maxpool2
    pool       = AdaptiveAvgPool2d(pool_size)   (any input of at least 4x4 pixels)
    classifier = Flatten, Linear, BatchNorm1d, ReLU, Linear
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["SmallCNN"]


def _conv_block(n_in: int, n_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(n_in, n_out, 3, padding=1, bias=False),  # the BN's beta is the bias
        nn.BatchNorm2d(n_out),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]


class SmallCNN(nn.Module):
    """Two conv blocks, adaptive average pooling, one hidden Linear and a linear head.

    Args:
        num_classes: output size.
        in_channels: input channels (1 for digits/MNIST, 3 for CIFAR). Default 1.
        width: channels of the first block; the second has twice as many. Default 32.
        hidden: width of the hidden Linear. Default 128.
        pool_size: side of the pooled feature map (smaller maps are repeated up to it, e.g.
            the 2x2 map of 8x8 digits). Default 4.
    """

    #: No skip path: feedback rules may detach every layer's input (same gradients).
    feedback_chain = True

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 1,
        *,
        width: int = 32,
        hidden: int = 128,
        pool_size: int = 4,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_block(in_channels, width), *_conv_block(width, 2 * width)
        )
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2 * width * pool_size**2, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))
