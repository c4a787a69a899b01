"""int8 static quantization (PyTorch FX, x86 backend) for fast batch prediction on CPU.

On the 2-core reference machine the cpu model runs about 8x faster as int8 and
loses about 0.4 points of test accuracy (tests/benchmarks/bench_inference.py).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ferkit.models.predict import to_input


def quantize_int8(model: nn.Module, calibration_images: np.ndarray, batch_size: int = 256) -> nn.Module:
    """A quantized copy of `model`, its activation ranges observed on uint8 (N, 48, 48) images."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    if len(calibration_images) == 0:
        raise ValueError("int8 quantization needs calibration images")
    torch.backends.quantized.engine = "x86"
    prepared = prepare_fx(
        copy.deepcopy(model).cpu().eval(),  # x86 int8 kernels: a model trained on CUDA is copied to the CPU
        get_default_qconfig_mapping("x86"),
        example_inputs=(to_input(calibration_images[:2]),),
    )
    with torch.inference_mode():
        for start in range(0, len(calibration_images), batch_size):
            prepared(to_input(calibration_images[start : start + batch_size]))
    return convert_fx(prepared)
