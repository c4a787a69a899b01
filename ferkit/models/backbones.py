"""Backbones of the hybrid model: four from torchvision, Xception from timm, two built for native 48 px faces.

Each builder returns the convolutional trunk only (no pooling, no classifier) as a
`Backbone`, with its library's module names kept, so that a phase can name
`backbone.layer4.2` exactly as torchvision's ResNet50 calls it (`backbone.block12`
for timm's Xception).

Weights are `none`, `imagenet` (torchvision's weight enums or timm's pretrained
config, read from the torch hub cache or downloaded there) or a path to a state
dict of the full library model (a torch file or `.safetensors`).
"""

from __future__ import annotations

import os
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ferkit.models.checkpoint import CheckpointError
from ferkit.models.registry import Registry


class WeightsError(RuntimeError):
    """Requested backbone weights cannot be found or loaded."""


@dataclass
class Backbone:
    features: nn.Module  # (B, 3, S, S) -> (B, channels, H, W)
    channels: int  # channels of the output map


BACKBONES: Registry[Backbone] = Registry("backbone")
register_backbone = BACKBONES.register
available_backbones = BACKBONES.names


def build_backbone(name: str, weights: str = "none", **options) -> Backbone:
    """The named trunk with `weights`: "none", "imagenet" or a path to a state dict."""
    return BACKBONES.build(name, weights, **options)


# --- weights -------------------------------------------------------------------------------------


def _imagenet_url(name: str) -> tuple[str, str]:
    """(URL, description) of the default ImageNet weights of `name`: torchvision's enum, else timm's config."""
    if name in TIMM_MODELS:
        import timm

        config = timm.models.get_pretrained_cfg(TIMM_MODELS[name])
        return config.url, f"timm {TIMM_MODELS[name]}.{config.tag}"
    import torchvision

    enum = torchvision.models.get_model_weights(name).DEFAULT
    return enum.url, str(enum)


def _imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The default ImageNet weights for `name`, from the torch hub cache or downloaded into it."""
    url, described = _imagenet_url(name)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if cached.is_file():
        return _state_dict_from_path(str(cached))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)
    try:
        return torch.hub.load_state_dict_from_url(url, progress=False, check_hash=name not in TIMM_MODELS)
    except Exception as error:  # offline: URLError, timeouts, proxies refusing
        raise WeightsError(
            f"imagenet weights for {name} ({described}) are not in the torch hub cache at {cached} and could not "
            f"be downloaded from {url} ({type(error).__name__}: {error}). On a machine with internet, download "
            f"that URL and copy the file to {cached} (or set TORCH_HOME), or set `weights:` to its path."
        ) from error
    finally:
        socket.setdefaulttimeout(previous)


def _state_dict_from_path(path: str) -> dict[str, torch.Tensor]:
    file = Path(path)
    if not file.is_file():
        raise WeightsError(f"backbone weights file {file} does not exist (weights: none | imagenet | <path>)")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            payload = load_file(file)
        else:
            payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{file}: not a loadable state dict ({type(error).__name__}: {error})") from error
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise WeightsError(f"{file}: expected a state dict of tensors, found {type(payload).__name__}")
    return {k.removeprefix("module."): v for k, v in payload.items()}


def load_weights(model: nn.Module, name: str, weights: str) -> None:
    """Load `weights` into the full torchvision-style `model`, strictly, naming any key mismatch."""
    if weights == "none":
        return
    state = _imagenet_state_dict(name) if weights == "imagenet" else _state_dict_from_path(weights)
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"weights {weights!r} do not match backbone {name}: {len(result.missing_keys)} missing keys "
            f"{result.missing_keys[:8]}, {len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:8]}"
        )


# --- torchvision trunks --------------------------------------------------------------------------


def _torchvision_model(name: str, weights: str) -> nn.Module:
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    load_weights(model, name, weights)
    return model


def _resnet(name: str, weights: str) -> Backbone:
    m = _torchvision_model(name, weights)
    parts = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    features = nn.Sequential(OrderedDict((part, getattr(m, part)) for part in parts))
    return Backbone(features, m.fc.in_features)


def _features_trunk(name: str, weights: str) -> Backbone:
    m = _torchvision_model(name, weights)
    channels = [mod for mod in m.features.modules() if isinstance(mod, nn.Conv2d)][-1].out_channels
    return Backbone(nn.Sequential(OrderedDict(features=m.features)), channels)


@register_backbone("resnet50")
def resnet50(weights: str = "none") -> Backbone:
    return _resnet("resnet50", weights)


@register_backbone("resnet18")
def resnet18(weights: str = "none") -> Backbone:
    return _resnet("resnet18", weights)


@register_backbone("efficientnet_b3")
def efficientnet_b3(weights: str = "none") -> Backbone:
    return _features_trunk("efficientnet_b3", weights)


@register_backbone("mobilenet_v3_small")
def mobilenet_v3_small(weights: str = "none") -> Backbone:
    return _features_trunk("mobilenet_v3_small", weights)


# --- timm trunks ---------------------------------------------------------------------------------

# ferkit name -> timm model name. timm's `legacy_xception` is Chollet's Xception (2017), the
# network Keras ships as `Xception` and the published comparison uses.
TIMM_MODELS = {"xception": "legacy_xception"}
XCEPTION_PARTS = (
    ("conv1", "bn1", "act1", "conv2", "bn2", "act2")
    + tuple(f"block{i}" for i in range(1, 13))
    + ("conv3", "bn3", "act3", "conv4", "bn4", "act4")
)


@register_backbone("xception")
def xception(weights: str = "none") -> Backbone:
    """Entry flow, eight middle-flow blocks and the exit flow's separable convs (2048 channels);
    32x downsampling, so 72-96 px inputs give a 3x3 map."""
    import timm

    m = timm.create_model(TIMM_MODELS["xception"], pretrained=False)
    load_weights(m, "xception", weights)
    features = nn.Sequential(OrderedDict((part, getattr(m, part)) for part in XCEPTION_PARTS))
    return Backbone(features, m.num_features)


# --- a compact trunk for native 48 px faces ------------------------------------------------------


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block (He et al. 2016), with a 1x1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def fer_resnet_features(stem: int, widths: tuple[int, ...], blocks: tuple[int, ...]) -> nn.Sequential:
    """A one-conv stem at full resolution, then one residual stage per width, each halving the map.

    48 px in, three stages: 48 -> 24 -> 12 -> 6, so the transformer sees 36 tokens.
    """
    layers: list[tuple[str, nn.Module]] = [
        ("stem", nn.Sequential(conv3x3(3, stem), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)))
    ]
    in_channels = stem
    for i, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        stage = [BasicBlock(in_channels, width, stride=2)] + [BasicBlock(width, width) for _ in range(count - 1)]
        layers.append((f"layer{i + 1}", nn.Sequential(*stage)))
        in_channels = width
    return nn.Sequential(OrderedDict(layers))


@register_backbone("fer_resnet")
def fer_resnet(
    weights: str = "none", stem: int = 32, widths: tuple[int, ...] = (64, 128, 256), blocks: tuple[int, ...] = (1, 1, 1)
) -> Backbone:
    if weights == "imagenet":
        raise WeightsError("fer_resnet is built for 48 px faces and has no imagenet weights; use none or a path")
    features = fer_resnet_features(stem, tuple(widths), tuple(blocks))
    if weights != "none":
        load_weights(features, "fer_resnet", weights)
    return Backbone(features, widths[-1])


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(in_channels, out_channels), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@register_backbone("fer_vgg")
def fer_vgg(weights: str = "none", widths: tuple[int, ...] = (32, 64, 128, 256)) -> Backbone:
    """VGG-style blocks of two 3x3 conv-BN-ReLU layers, max-pooling between blocks (not after the last):
    48 -> 24 -> 12 -> 6 with four blocks, so the transformer sees 36 tokens. The plain CNN's trunk,
    the fastest per image of ferkit's trunks on CPU."""
    if weights == "imagenet":
        raise WeightsError("fer_vgg is built for 48 px faces and has no imagenet weights; use none or a path")
    layers: list[tuple[str, nn.Module]] = []
    in_channels = 3
    for i, width in enumerate(widths):
        if i > 0:
            layers.append((f"pool{i}", nn.MaxPool2d(2)))
        layers.append((f"block{i + 1}", nn.Sequential(conv_bn_relu(in_channels, width), conv_bn_relu(width, width))))
        in_channels = width
    features = nn.Sequential(OrderedDict(layers))
    if weights != "none":
        load_weights(features, "fer_vgg", weights)
    return Backbone(features, widths[-1])


# --- the published schedule's Keras layer indices ------------------------------------------------

RESNET50_BLOCKS = (3, 4, 6, 3)  # bottleneck blocks per stage (conv2_x .. conv5_x)


def keras_resnet50_layers() -> list[tuple[str, str | None]]:
    """`tf.keras.applications.ResNet50(include_top=False).layers` in order, with the torchvision
    module that holds each layer's weights (None for layers without weights: pads, ReLUs, adds).

    The published schedule unfreezes Keras layer index ranges (160-175, 140-160, 100-140);
    this table turns them into torchvision names.
    """
    layers: list[tuple[str, str | None]] = [
        ("input_1", None),
        ("conv1_pad", None),
        ("conv1_conv", "conv1"),
        ("conv1_bn", "bn1"),
        ("conv1_relu", None),
        ("pool1_pad", None),
        ("pool1_pool", None),
    ]
    for stage, blocks in enumerate(RESNET50_BLOCKS):
        for block in range(blocks):
            k, t = f"conv{stage + 2}_block{block + 1}", f"layer{stage + 1}.{block}"
            layers += [
                (f"{k}_1_conv", f"{t}.conv1"),
                (f"{k}_1_bn", f"{t}.bn1"),
                (f"{k}_1_relu", None),
                (f"{k}_2_conv", f"{t}.conv2"),
                (f"{k}_2_bn", f"{t}.bn2"),
                (f"{k}_2_relu", None),
            ]
            if block == 0:  # Keras builds the projection shortcut between the second and third conv
                layers += [
                    (f"{k}_0_conv", f"{t}.downsample.0"),
                    (f"{k}_3_conv", f"{t}.conv3"),
                    (f"{k}_0_bn", f"{t}.downsample.1"),
                    (f"{k}_3_bn", f"{t}.bn3"),
                ]
            else:
                layers += [(f"{k}_3_conv", f"{t}.conv3"), (f"{k}_3_bn", f"{t}.bn3")]
            layers += [(f"{k}_add", None), (f"{k}_out", None)]
    return layers


def keras_resnet50_range(start: int, stop: int, prefix: str = "backbone") -> list[str]:
    """torchvision module names holding the weights of Keras ResNet50 layers[start:stop].

    A block whose weighted layers all fall in the range is named once (`backbone.layer4.2`).
    """
    layers = keras_resnet50_layers()
    if not 0 <= start < stop <= len(layers):
        raise ValueError(f"Keras ResNet50 has layers 0-{len(layers)}; got {start}-{stop}")
    chosen = [t for _, t in layers[start:stop] if t is not None]
    names: list[str] = []
    for module in chosen:
        block = ".".join(module.split(".")[:2])  # layer4.2.conv1 -> layer4.2; the stem's conv1 stays
        whole = [t for _, t in layers if t is not None and t.startswith(block + ".")]
        name = block if whole and all(t in chosen for t in whole) else module
        if name not in names:
            names.append(name)
    return [f"{prefix}.{n}" for n in names]
