"""Ingest benchmark: the full FER2013 archive, then a cached re-run of the ingest step.

    python tests/benchmarks/bench_ingest.py [--data PATH] [--out results/ingest.json]

Targets (issue 2): ingest at most 20 s wall and 1 GiB peak memory on 2 cores;
a cached re-run of the ingest step at most 2 s (measured as the hashing step
plus the cached ingest step of a second `fer_data_check` run). The ZenML part
runs in its own temporary ZenML/MLflow home, so it leaves no runs in yours.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"ingest_seconds": 20.0, "ingest_peak_rss_mib": 1024.0, "cached_ingest_step_seconds": 2.0}

_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from ferkit.data import read_fer2013
from ferkit.data.manifest import build_manifest
t1 = time.perf_counter()
data = read_fer2013(sys.argv[1], progress=False)
t2 = time.perf_counter()
manifest = build_manifest(data)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "read_s": t2 - t1, "manifest_s": t3 - t2, "images": len(data),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_read(data_path: Path) -> dict:
    """Decode the archive in a fresh process, so peak memory is ingestion's own."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _CHILD, str(data_path)], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    child = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "images": child["images"],
        "ingest_seconds": round(child["read_s"] + child["manifest_s"], 3),
        "read_seconds": round(child["read_s"], 3),
        "manifest_seconds": round(child["manifest_s"], 3),
        "process_wall_seconds": round(wall, 3),
        "ingest_peak_rss_mib": round(child["peak_rss_mib"], 1),
    }


def bench_cached_step(data_path: Path) -> dict:
    """Run `fer_data_check` twice; the second run's ingest must come from the cache."""
    from zenml.client import Client

    from ferkit.registry.stack import setup_local_stack
    from pipelines.fer_data_check import fer_data_check

    setup_local_stack(os.environ["ZENML_REPOSITORY_PATH"])
    timings = []
    for _ in range(2):
        start = time.perf_counter()
        fer_data_check(data_path=str(data_path))
        timings.append(time.perf_counter() - start)
    run = Client().get_pipeline("fer_data_check").runs[0]
    ingest, fingerprint = run.steps["ingest_fer2013"], run.steps["fingerprint_source"]

    def seconds(step) -> float:
        return (step.end_time - step.start_time).total_seconds()

    return {
        "first_pipeline_seconds": round(timings[0], 3),
        "cached_pipeline_seconds": round(timings[1], 3),
        "cached_ingest_status": ingest.status.value,
        "cached_ingest_step_seconds": round(seconds(fingerprint) + seconds(ingest), 3),
        "fingerprint_step_seconds": round(seconds(fingerprint), 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("FER2013_PATH"), help="archive (default $FER2013_PATH)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/ingest.json"))
    args = parser.parse_args()
    if not args.data or not Path(args.data).exists():
        print(f"bench_ingest: FER2013 not found at {args.data!r}; set FER2013_PATH or --data", file=sys.stderr)
        return 2
    data_path = Path(args.data).resolve()

    home = tempfile.mkdtemp(prefix="ferkit-bench-")
    os.environ.update(
        ZENML_CONFIG_PATH=f"{home}/config",
        ZENML_REPOSITORY_PATH=f"{home}/repo",
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_LOGGING_VERBOSITY="WARN",
        FERKIT_NO_PROGRESS="1",
    )
    Path(f"{home}/repo").mkdir(parents=True)
    sys.path.insert(0, str(ROOT))
    from tests.benchmarks.report import write_report

    results = {**bench_read(data_path), **bench_cached_step(data_path)}
    checks = {name: results[name] <= limit for name, limit in TARGETS.items()}
    checks["cached_ingest_is_cached"] = results["cached_ingest_status"] == "cached"
    return write_report("ingest", args.out, TARGETS, results, checks, data=str(data_path))


if __name__ == "__main__":
    sys.exit(main())
