"""Attention and transformer layers of the hybrid model, one paper each."""

from __future__ import annotations

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al., CVPR 2018): global pool, two-layer MLP, sigmoid channel gates."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        gates = torch.sigmoid(self.fc2(torch.relu(self.fc1(s))))  # (B, C, 1, 1)
        return x * gates


class SpatialAttention(nn.Module):
    """Spatial attention of CBAM (Woo et al., ECCV 2018): a 7x7 conv over channel-wise max and mean."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return x * torch.sigmoid(self.conv(pooled))  # gates (B, 1, H, W)


class SpatialChannelAttention(nn.Sequential):
    """Channel gates first, then spatial gates, as the hybrid design orders them."""

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7):
        super().__init__(SqueezeExcite(channels, reduction), SpatialAttention(kernel_size))


class TransformerBlock(nn.Module):
    """One pre-norm encoder block (Vaswani et al. 2017; pre-norm as in ViT) over a feature map.

    The map (B, C, H, W) becomes N = H*W tokens projected to `dim`, plus a learned
    position embedding; the block returns the tokens (B, N, dim).
    """

    def __init__(
        self,
        in_channels: int,
        tokens: int,
        dim: int = 512,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.proj = nn.Linear(in_channels, dim)
        self.position = nn.Parameter(torch.zeros(1, tokens, dim))
        nn.init.trunc_normal_(self.position, std=0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.proj(x.flatten(2).transpose(1, 2)) + self.position  # (B, N, D); N fixed at construction
        q = self.norm1(t)
        t = t + self.drop(self.attn(q, q, q, need_weights=False)[0])
        return t + self.drop(self.mlp(self.norm2(t)))  # (B, N, D)
