"""Quality-gate benchmark: `ferkit validate PATH --json` on the full FER2013 archive.

    python tests/benchmarks/bench_validate.py [--data PATH] [--out results/validate.json]

Target (issue 4): at most 30 s wall on 2 cores, cold start included (a fresh
process: imports, decoding, manifest, great-expectations). Also records what
the gate finds, the figures README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("FER2013_PATH"), help="archive (default $FER2013_PATH)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/validate.json"))
    args = parser.parse_args()
    if not args.data or not Path(args.data).exists():
        print(f"bench_validate: FER2013 not found at {args.data!r}; set FER2013_PATH or --data", file=sys.stderr)
        return 2

    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "ferkit.cli", "validate", args.data, "--json"], capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if out.returncode not in (0, 1):
        print(out.stderr, file=sys.stderr)
        return out.returncode
    found = json.loads(out.stdout)
    results = {
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    sys.path.insert(0, str(ROOT))
    from tests.benchmarks.report import write_report

    return write_report(
        "validate",
        args.out,
        {"wall_seconds": TARGET_SECONDS},
        results,
        {"wall_seconds": wall <= TARGET_SECONDS},
        data=str(Path(args.data).resolve()),
        findings={k: v for k, v in found.items() if k not in ("checks", "source")},
        failed_checks=[c["name"] for c in found["checks"] if not c["passed"]],
    )


if __name__ == "__main__":
    sys.exit(main())
