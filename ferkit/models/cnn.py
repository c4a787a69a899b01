"""A plain VGG-style CNN for native 48x48 faces.

Four blocks of two 3x3 conv-BN-ReLU layers, each halving the map
(48 -> 24 -> 12 -> 6 -> 3), then global average pooling and a linear
classifier. The baseline the hybrid design has to beat.
"""

from __future__ import annotations

import torch
from torch import nn

from ferkit.data.labels import EMOTIONS
from ferkit.models.registry import register_model


def conv3x3_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class PlainCNN(nn.Module):
    """Input (B, 1, 48, 48) float in [0, 1]; output (B, num_classes) logits."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        num_classes: int = len(EMOTIONS),
        dropout: float = 0.3,
        mean: float = 0.5,
        std: float = 0.25,
    ):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        blocks, in_channels = [], 1
        for width in widths:
            blocks += [conv3x3_bn_relu(in_channels, width), conv3x3_bn_relu(width, width), nn.MaxPool2d(2)]
            in_channels = width
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_channels, num_classes)
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, C): pooled, before dropout and the classifier."""
        x = (x - self.mean) / self.std  # (B, 1, 48, 48)
        return self.head[1](self.head[0](self.features(x)))  # (B, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std  # (B, 1, 48, 48)
        return self.head(self.features(x))  # (B, K)


@register_model("plain_cnn")
def plain_cnn(*, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3) -> PlainCNN:
    return PlainCNN(widths=tuple(widths), dropout=dropout)
