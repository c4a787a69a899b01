"""Where and how quietly work runs: the device, the seeds, the progress bars.

torch loads only in the functions that need it: `ferkit info` asks whether to show progress
and should not pay 600 MB and seconds of start-up for the answer.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

PROGRESS_ENV = "FERKIT_NO_PROGRESS"  # "1" silences the progress bars (tests, CI logs, cron)


def progress_disabled() -> bool:
    return os.environ.get(PROGRESS_ENV) == "1"


def resolve_device(name: str) -> torch.device:
    """ "auto": CUDA when available, else the CPU; any other name as torch spells it."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo flags of native bf16 arithmetic


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, as on macOS)."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo with its family and model numbers (virtual machines
    often show a generic name), else what the platform says."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if not key.strip():
            break  # the first processor's block ends at a blank line
        fields.setdefault(key.strip(), value.strip())
    if "model name" in fields:
        return f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"
    import platform

    return platform.processor() or platform.machine()


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs at hardware speed on `device`: a CUDA GPU of compute capability 8 or
    later (A100, H100, RTX 30xx and on), or a CPU with
    AVX512-BF16 or AMX. Elsewhere bf16 autocast is emulated: 9x slower than fp32 for the cpu
    model on a 2-core AVX2 CPU (docs/results.md)."""
    import torch

    if device.type == "cuda":  # Ampere (8.0) and later; torch's own check counts emulation too
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and bool(cpu_flags() & CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """ "auto": bf16 where the device runs it natively, else fp32; "fp32" and "bf16" as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    device = resolve_device(device) if isinstance(device, str) else device
    return "bf16" if native_bf16(device) else "fp32"


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator seeded the same."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
