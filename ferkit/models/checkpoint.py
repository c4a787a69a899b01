"""A trained model that knows how it was built and how to feed it.

Like torchvision's `WeightsEnum`, the checkpoint carries its metadata: the
architecture and its arguments, the label order, the input size and the
preprocessing, plus the recipe and history that made it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.files import atomic_write
from ferkit.models.registry import build_model
from ferkit.runtime import keep_freed_memory

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file does not match the model it is loaded into."""


@dataclass
class TrainedModel:
    architecture: str  # registry name, e.g. "plain_cnn"
    architecture_kwargs: dict  # keyword arguments of the builder
    state_dict: dict[str, torch.Tensor]
    emotions: tuple[str, ...] = EMOTIONS  # label order of the logits
    input_size: int = IMAGE_SIZE  # square grayscale input, pixels scaled to [0, 1]
    recipe: dict = field(default_factory=dict)  # resolved training config
    history: list[dict] = field(default_factory=list)  # per-epoch metrics
    # Temperature scaling fitted on val: {"temperature", "tta", "fitted_on", "images", "log_loss_before",
    # "log_loss_after"}; empty (temperature 1) for a model that was never calibrated.
    calibration: dict = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """Divides the log-probabilities before the softmax: > 1 softens over-confident outputs.
        1 (no change) when there is none or it is not a positive finite number."""
        value = self.calibration.get("temperature", 1.0)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) and value > 0 else 1.0

    def temperature_for(self, tta: str) -> float:
        """The temperature for predictions with TTA mode `tta`: the carried one when it was fitted
        with that mode, else 1 (a temperature fitted on other views would miscalibrate)."""
        return self.temperature if self.calibration.get("tta", tta) == tta else 1.0

    def build(self) -> nn.Module:
        """The architecture with these weights, in eval mode, its convolutions in channels_last.

        Also keeps freed memory in the process for reuse (`keep_freed_memory`): a batch of 256
        faces otherwise faults in ~570 MB of fresh pages and predicts at 0.6x the speed in fp32.
        """
        keep_freed_memory()
        kwargs = dict(self.architecture_kwargs)
        if "weights" in kwargs:
            kwargs["weights"] = "none"  # the saved state dict holds every weight; never fetch the initial ones
        model = build_model(self.architecture, **kwargs)
        load_state_dict_strict(model, self.state_dict, source=f"checkpoint of {self.architecture}")
        # NHWC, as it trained; as fast as NCHW on CPU once freed memory is kept, with the same
        # answers (docs/results.md, Inference; probabilities differ by about 1e-7).
        return model.to(memory_format=torch.channels_last).eval()

    def weights_sha256(self) -> str:
        """What the network computes, hashed: architecture, its arguments, label order, input size and
        every tensor's name, dtype, shape and bytes. Recipe, history (timings) and the calibration
        fitted on val are left out, so the same weights trained twice hash the same."""
        digest = hashlib.sha256(
            json.dumps(
                [self.architecture, self.architecture_kwargs, list(self.emotions), self.input_size],
                sort_keys=True,
                default=str,
            ).encode()
        )
        for name in sorted(self.state_dict):
            tensor = self.state_dict[name].detach().cpu().contiguous()
            digest.update(f"|{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(self._payload(), buffer)
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        """Written beside `path` and renamed: a reader never sees half a checkpoint."""
        atomic_write(path, lambda file: torch.save(self._payload(), file))

    @classmethod
    def load(cls, path_or_buffer) -> TrainedModel:
        try:
            payload = torch.load(path_or_buffer, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, UnicodeDecodeError) as exc:
            # Cut short, random bytes, text, a zip of another layout: torch says it in its own words.
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(
                f"{path_or_buffer}: not a readable ferkit checkpoint (a file cut short, or not a checkpoint): {reason}"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{path_or_buffer}: not a ferkit checkpoint (format {FORMAT_VERSION})")
        return cls(
            architecture=payload["architecture"],
            architecture_kwargs=payload["architecture_kwargs"],
            state_dict=payload["state_dict"],
            emotions=tuple(payload["emotions"]),
            input_size=payload["input_size"],
            recipe=payload["recipe"],
            history=payload["history"],
            calibration=payload.get("calibration", {}),  # absent in checkpoints saved before calibration
        )

    def _payload(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "architecture": self.architecture,
            "architecture_kwargs": self.architecture_kwargs,
            "state_dict": self.state_dict,
            "emotions": list(self.emotions),
            "input_size": self.input_size,
            "recipe": self.recipe,
            "history": self.history,
            "calibration": self.calibration,
        }


def load_state_dict_strict(model: nn.Module, state_dict: dict, source: str) -> None:
    """Load weights, failing with the missing and unexpected key names."""
    result = model.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source} does not match the model: missing keys {result.missing_keys[:10]}, "
            f"unexpected keys {result.unexpected_keys[:10]}"
        )
