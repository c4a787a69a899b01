"""The JSON every benchmark writes: what, when, on which machine, targets, results, verdicts."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

# The instruction sets that decide how fast the models run on a CPU: native bf16 (AMX, AVX512-BF16),
# int8 dot products (VNNI) and the vector width. Figures from different kinds are not comparable.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")


def machine() -> dict:
    """The machine a figure was measured on: cores, CPU model and its speed-relevant instruction sets."""
    from ferkit.runtime import cpu_flags, cpu_model

    flags = cpu_flags()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu_model(),
        "isa": [f for f in SPEED_FLAGS if f in flags],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_kind(measured_on: dict) -> str:
    """A machine's kind as far as training is concerned: its CPU model and speed-relevant instruction
    sets (an AMX Xeon and an AVX512-BF16 EPYC train different bf16 models from one seed)."""
    return f"{measured_on.get('cpu', 'a CPU not recorded')} [{' '.join(measured_on.get('isa', []))}]"


def shown_path(path: str | Path) -> str:
    """`path` relative to the repository when it lies inside it (as a config is named), else absolute."""
    resolved = Path(path).resolve()
    root = Path(__file__).resolve().parents[2]
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)


def write_report(benchmark: str, out: str | Path, targets: dict, results: dict, checks: dict, **context) -> int:
    """Write and print the report; the exit code is 0 only when every check passed."""
    report = {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **context,
        "machine": machine(),
        "targets": targets,
        "results": results,
        "meets_targets": checks,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(checks.values()) else 1
