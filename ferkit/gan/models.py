"""A class-conditional GAN for 48x48 grayscale faces: plain `nn.Module`s.

Generator: the noise and a learned class embedding go through a linear layer to a
6x6 map, then three upsample-conv blocks (6 -> 12 -> 24 -> 48) with class-conditional
BatchNorm (Dumoulin et al. 2017), a sigmoid at the end: images in [0, 1], like the
training tensors. Discriminator: spectrally normalised convolutions (Miyato et al.
2018) down to 6x6, a summed feature vector, and a projection head (Miyato & Koyama
2018): score = w . h + embed(y) . h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ferkit.data.labels import IMAGE_SIZE

BASE = IMAGE_SIZE // 8  # 6: the generator's first map, the discriminator's last


class ConditionalBatchNorm(nn.Module):
    """BatchNorm without its own affine; the scale and shift come from the class."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class _UpBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, num_classes: int):
        super().__init__()
        self.norm = ConditionalBatchNorm(c_in, num_classes)
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.norm(x, y))
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Generator(nn.Module):
    """(z (B, z_dim), y (B,)) -> faces (B, 1, 48, 48) in [0, 1]."""

    def __init__(self, num_classes: int, z_dim: int = 64, width: int = 64):
        super().__init__()
        self.num_classes, self.z_dim = num_classes, z_dim
        self.embed = nn.Embedding(num_classes, z_dim)
        self.project = nn.Linear(2 * z_dim, 4 * width * BASE * BASE)
        self.blocks = nn.ModuleList(
            [
                _UpBlock(4 * width, 2 * width, num_classes),  # 6 -> 12
                _UpBlock(2 * width, width, num_classes),  # 12 -> 24
                _UpBlock(width, width, num_classes),  # 24 -> 48
            ]
        )
        self.out_norm = nn.BatchNorm2d(width)
        self.to_image = nn.Conv2d(width, 1, 3, padding=1)
        self.width = width

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([z, self.embed(y)], dim=1)).view(-1, 4 * self.width, BASE, BASE)
        for block in self.blocks:
            x = block(x, y)
        return torch.sigmoid(self.to_image(F.relu(self.out_norm(x))))


class Discriminator(nn.Module):
    """(faces (B, 1, 48, 48) in [0, 1], y (B,)) -> realness scores (B,)."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()

        def down(c_in: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(
                spectral_norm(nn.Conv2d(c_in, c_out, 3, padding=1)),
                nn.LeakyReLU(0.1),
                spectral_norm(nn.Conv2d(c_out, c_out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.1),
            )

        self.features = nn.Sequential(down(1, width), down(width, 2 * width), down(2 * width, 4 * width))  # 48 -> 6
        self.linear = spectral_norm(nn.Linear(4 * width, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, 4 * width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.features(x * 2 - 1).sum(dim=(2, 3))  # (B, 4w)
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)
