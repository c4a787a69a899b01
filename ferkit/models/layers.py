"""Attention and transformer layers of the hybrid model, one paper each."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing


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
    position embedding; the block returns the tokens (B, N, dim). With `grid`, the (H, W) the
    embedding is learned on, a map of another size gets the embedding resized bicubically (as
    ViT fine-tuning at another resolution does): progressive resizing's smaller faces.
    """

    def __init__(
        self,
        in_channels: int,
        tokens: int,
        dim: int = 512,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        grid: tuple[int, int] | None = None,
    ):
        super().__init__()
        if grid is not None and grid[0] * grid[1] != tokens:
            raise ValueError(f"grid {grid} has {grid[0] * grid[1]} cells for {tokens} tokens")
        self.grid = tuple(grid) if grid is not None else None
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
        position = self.position  # (1, N, D)
        # FX (int8 quantization) traces at the native size, so its graph keeps the plain sum.
        if not is_fx_symbolic_tracing() and x.shape[-2] * x.shape[-1] != self.position.shape[1]:
            position = self._resized_position(tuple(x.shape[-2:]))
        t = self.proj(x.flatten(2).transpose(1, 2)) + position  # (B, H*W, D)
        q = self.norm1(t)
        t = t + self.drop(self.attn(q, q, q, need_weights=False)[0])
        return t + self.drop(self.mlp(self.norm2(t)))  # (B, N, D)

    def _resized_position(self, size: tuple[int, int]) -> torch.Tensor:
        """The position embedding laid over a map of `size` (H, W): (1, H*W, D)."""
        if self.grid is None:
            raise ValueError(
                f"the transformer block was built for {self.position.shape[1]} tokens and got a {size[0]}x{size[1]} "
                "map; give it the grid it was built on to take maps of other sizes"
            )
        grid = self.position.transpose(1, 2).reshape(1, -1, *self.grid)  # (1, D, h, w)
        resized = F.interpolate(grid, size=size, mode="bicubic", align_corners=False)  # (1, D, H, W)
        return resized.flatten(2).transpose(1, 2)
