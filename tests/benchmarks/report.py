"""The JSON every benchmark writes: what, when, on which machine, targets, results, verdicts."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path


def write_report(benchmark: str, out: str | Path, targets: dict, results: dict, checks: dict, **context) -> int:
    """Write and print the report; the exit code is 0 only when every check passed."""
    report = {
        "benchmark": benchmark,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **context,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "targets": targets,
        "results": results,
        "meets_targets": checks,
    }
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if all(checks.values()) else 1
