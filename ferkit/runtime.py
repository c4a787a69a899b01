"""Where and how quietly work runs: the device, the seeds, the progress bars.

torch loads only in the functions that need it: `ferkit info` asks whether to show progress
and should not pay 600 MB and seconds of start-up for the answer.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
CPU_AMX_FLAGS = frozenset({"amx_bf16"})  # bf16 matrix tiles: where bf16 training pays on an Intel CPU
BF16_VECTOR_VENDORS = frozenset({"AuthenticAMD"})  # AVX512-BF16 pays without AMX (Zen 4: 1.64x fp32)


def cpu_field(name: str) -> str:
    """A field of the first processor in /proc/cpuinfo ("" where there is none, as on macOS)."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return ""


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    return frozenset(cpu_field("flags").split())


def cpu_vendor() -> str:
    """The CPU's vendor id from /proc/cpuinfo ("GenuineIntel", "AuthenticAMD"; "" where there is none)."""
    return cpu_field("vendor_id")


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


def bf16_pays(device: torch.device) -> bool:
    """Whether bf16 autocast trains faster than fp32 on `device`: a CUDA GPU of compute
    capability 8 or later (A100, H100, RTX 30xx and on), a CPU with AMX, or an AMD CPU with
    AVX512-BF16 (Zen 4 and later).

    Measured on 2 cores for the cpu model (docs/results.md): with AMX, bf16 ran 2.65x fp32; on
    an AMD EPYC (Zen 4) with AVX512-BF16, 1.64x; on an Intel Xeon with AVX512-BF16 but no AMX,
    0.71x (the conversions cost more than the faster dot products save); on AVX2 alone bf16 is
    emulated, 9x slower.
    """
    import torch

    if device.type == "cuda":  # Ampere (8.0) and later; torch's own check counts emulation too
        return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8
    if device.type != "cpu":
        return False
    flags = cpu_flags()
    return bool(flags & CPU_AMX_FLAGS) or ("avx512_bf16" in flags and cpu_vendor() in BF16_VECTOR_VENDORS)


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """ "auto": bf16 where it trains faster than fp32 (`bf16_pays`), else fp32; "fp32" and
    "bf16" as they are."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    device = resolve_device(device) if isinstance(device, str) else device
    return "bf16" if bf16_pays(device) else "fp32"


KEEP_FREED_MEMORY_ENV = "FERKIT_KEEP_FREED_MEMORY"  # "0" leaves glibc's allocator as it is


def keep_freed_memory() -> bool:
    """Have glibc's allocator keep freed memory for reuse instead of handing it back to the kernel.

    glibc serves each block over 32 MB with a fresh mmap and unmaps it on free; one training
    step of the cpu model at batch 128 allocates and frees about 290 MB of such blocks, and the
    kernel zero-fills every page again on first touch: 73,000 page faults a step, about a sixth
    of the step time on 2 cores (docs/results.md). With mmap off, heap trimming off and one
    arena for every thread (a thread's own arena maps and unmaps its heaps, so `ferkit serve`,
    which predicts in a worker thread, would fault as before), freed blocks are reused; the
    process then holds its peak memory until it ends. Returns whether the setting applied:
    glibc only, and not when $FERKIT_KEEP_FREED_MEMORY is "0".
    """
    import ctypes
    import platform

    if os.environ.get(KEEP_FREED_MEMORY_ENV) == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    settings = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
    applied = all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    global _KEPT_IN
    _KEPT_IN = libc if applied else None
    return applied


M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # mallopt parameters, from glibc's malloc.h
DEFAULT_MMAP_MAX = 65536  # glibc's
_KEPT_IN = None  # the C library keep_freed_memory set, once it has


class _Returning:
    """How many callers are inside `freed_memory_returned`, under a lock."""

    count, lock = 0, threading.Lock()


@contextmanager
def freed_memory_returned() -> Iterator[None]:
    """Inside, blocks of 128 KB and more are mapped on their own and handed back to the kernel when
    freed, as glibc does unless `keep_freed_memory` applied: for a large one-off read (a
    50-megapixel photo and its conversion), whose buffers kept in the heap would otherwise stay
    held beside the model's (a 7,071 px PNG through `ferkit predict`: 1,027 MB peak kept, 765
    returned). Reentrant and safe across threads; nothing where freed memory is not kept."""
    libc = _KEPT_IN
    if libc is None:
        yield
        return
    with _Returning.lock:
        if _Returning.count == 0:
            libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        _Returning.count += 1
    try:
        yield
    finally:
        with _Returning.lock:
            _Returning.count -= 1
            if _Returning.count == 0:
                libc.mallopt(M_MMAP_MAX, 0)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; returns a torch generator seeded the same."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
