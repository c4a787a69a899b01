"""The hybrid emotion model of the published design.

    48x48 face -> bicubic resize -> learnable 1x1 conv 1->3 -> backbone
    -> squeeze-excitation + spatial attention -> transformer block over the map
    -> class-group branches -> 7 logits in `EMOTIONS` order

Attention, transformer and branches each switch off from config, so an
ablation is a config change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing

from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.models.backbones import build_backbone
from ferkit.models.layers import SpatialChannelAttention, TransformerBlock
from ferkit.models.registry import register_model

# The design's class groups: expressions with open, raised features vs. the negative ones.
CLASS_GROUPS: tuple[tuple[str, ...], ...] = (("happy", "surprise", "neutral"), ("angry", "disgust", "fear", "sad"))


class ChannelAdapter(nn.Conv2d):
    """A 1x1 conv from grayscale to three channels that starts as plain replication."""

    def __init__(self):
        super().__init__(1, 3, kernel_size=1)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)


class GroupBranches(nn.Module):
    """One dense branch per class group; each writes its classes' logits in canonical order."""

    def __init__(self, dim: int, hidden: int, groups: tuple[tuple[str, ...], ...] = CLASS_GROUPS, dropout: float = 0.3):
        super().__init__()
        covered = sorted(e for g in groups for e in g)
        if covered != sorted(EMOTIONS):
            raise ValueError(f"class groups must cover each emotion once, got {groups}")
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, len(g)))
            for g in groups
        )
        order = torch.tensor([EMOTIONS.index(e) for g in groups for e in g])
        self.register_buffer("order", order, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = torch.cat([branch(x) for branch in self.branches], dim=1)  # (B, 7) in group order
        return torch.empty_like(grouped).index_copy_(1, self.order, grouped)  # (B, 7) in EMOTIONS order


class HybridFER(nn.Module):
    """Input (B, 1, 48, 48) float in [0, 1]; output (B, 7) logits in `EMOTIONS` order."""

    def __init__(
        self,
        backbone: str = "resnet50",
        weights: str = "none",
        input_size: int = 224,
        attention: bool = True,
        transformer: bool = True,
        branches: bool = True,
        dim: int = 512,
        heads: int = 8,
        hidden: int = 256,
        dropout: float = 0.3,
        classifier_l2: float = 1e-4,
        backbone_options: dict | None = None,
        mlp_ratio: float = 4.0,
        mean: float = 0.5,
        std: float = 0.25,
    ):
        super().__init__()
        self.input_size = input_size
        self.classifier_l2 = classifier_l2
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))
        self.adapter = ChannelAdapter()
        trunk = build_backbone(backbone, weights, **(backbone_options or {}))
        self.backbone = trunk.features
        self.attention = SpatialChannelAttention(trunk.channels) if attention else nn.Identity()
        with torch.no_grad():
            was_training = self.backbone.training
            h, w = self.backbone.eval()(torch.zeros(1, 3, input_size, input_size)).shape[-2:]
            self.backbone.train(was_training)
        self.transformer = (
            TransformerBlock(trunk.channels, h * w, dim, heads, mlp_ratio, grid=(h, w)) if transformer else None
        )
        features = dim if transformer else trunk.channels
        self.norm = nn.LayerNorm(features)
        if branches:
            self.head = GroupBranches(features, hidden, dropout=dropout)
        else:
            self.head = nn.Sequential(
                nn.Linear(features, hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
                nn.Linear(hidden, len(EMOTIONS)),
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (B, D): pooled tokens before the class-group branches."""
        x = (x - self.mean) / self.std  # (B, 1, 48, 48)
        if self.input_size != IMAGE_SIZE:  # a static choice, so FX (int8 quantization) can trace the model
            # Smaller faces (progressive resizing) are scaled by the same factor.
            native = is_fx_symbolic_tracing() or x.shape[-1] == IMAGE_SIZE
            side = self.input_size if native else round(self.input_size * x.shape[-1] / IMAGE_SIZE)
            x = F.interpolate(x, size=(side, side), mode="bicubic", align_corners=False)
        x = self.attention(self.backbone(self.adapter(x)))  # (B, C, H, W)
        if self.transformer is not None:
            pooled = self.transformer(x).mean(dim=1)  # (B, N, D) -> (B, D)
        else:
            pooled = x.mean(dim=(2, 3))  # (B, C)
        return self.norm(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))  # (B, 7)

    def regularization(self) -> torch.Tensor:
        """L2 penalty on the classifier's weight matrices (the design's 1e-4 kernel regularizer)."""
        weights = [m.weight for m in self.head.modules() if isinstance(m, nn.Linear)]
        return self.classifier_l2 * sum(w.pow(2).sum() for w in weights)


@register_model("hybrid")
def hybrid(**kwargs) -> HybridFER:
    """The hybrid model; `kwargs` are HybridFER's (configs give them as `architecture_kwargs`)."""
    return HybridFER(**kwargs)
