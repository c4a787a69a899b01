"""Hostile-input benchmark: peak memory and wall time of `ferkit info | validate | predict` on files
that are cheap to write and expensive to read naively.

    .venv/bin/python tests/benchmarks/bench_hostile_input.py [--out tests/benchmarks/results/hostile_input.json]
        [--max-files N] [--keep DIR]

Cases, generated in a temporary folder (about 0.6 GB of disk, mostly the CSV; 1.5 minutes on 2 cores):

    baseline              a zip of 399 normal faces (the Kaggle layout); a 48x48 face PNG for predict
    zip_bomb_member       the same faces plus one member of 1 GiB of zeros (deflated to about 1 MB)
    huge_png_13000        the faces plus a real 13,000 x 13,000 PNG (full pixel data, 164 KB); the PNG alone
    bomb_png_20000x10000  the faces plus a real 20,000 x 10,000 PNG (full pixel data); the PNG alone
    many_members          a zip of FERKIT_MAX_FILES + 1 tiny members (default 300,001)
    csv_long_line         a CSV header, then one 500 MB line

Each command runs as its own process (`.venv/bin/ferkit ...`, with FERKIT_HOME and ZENML_CONFIG_PATH in
a temporary folder and FERKIT_NO_PROGRESS=1); its peak RSS is exact, from `os.wait4` (ru_maxrss). A row
passes when the peak stays under 1 GiB, the exit code is the expected one, nothing prints a traceback
and the output names the hostile file with the reason. `predict` uses a small untrained hybrid
(tests/factories.py TINY_HYBRID): the reading, not the model, is measured. `--max-files` lowers
FERKIT_MAX_FILES for the many_members case only (fewer members to write); the JSON records it.

The measuring process imports only the standard library and writes the files from a child
(`--generate`): Linux starts a subprocess with vfork, and exec records the parent's peak RSS in
the child's ru_maxrss, so a parent that had imported torch would put its own peak under every
figure. That floor (the parent's peak) is recorded as `measurement_floor_mib`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PEAK_RSS_TARGET_MIB = 1024.0
FACES_PER_CLASS = 19  # x 7 classes x 3 splits = 399 faces
DEFAULT_MAX_FILES = 300_000
CSV_LINE_BYTES = 500 * (1 << 20)
GIB = 1 << 30
OUT = ROOT / "tests/benchmarks/results/hostile_input.json"
# Either ferkit's own bound or Pillow's (twice Image.MAX_IMAGE_PIXELS, raised in Image.open) refuses a huge image.
TOO_BIG = r"over the limit|too large to decode safely"


# --- measuring one command -------------------------------------------------------------------


def run_measured(argv: list[str], env: dict[str, str], workdir: Path) -> dict:
    """Run `argv`; its exit code, exact peak RSS (MiB), wall seconds, stdout and stderr."""
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=workdir)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; tell Popen
    return {
        "exit_code": proc.returncode,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "wall_seconds": round(wall, 2),
        "stdout": out_path.read_text(errors="replace"),
        "stderr": err_path.read_text(errors="replace"),
    }


def _lines(text: str) -> list[str]:
    """Output lines, progress-bar redraws (carriage returns) split off and blank lines dropped."""
    return [line.rstrip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def _progress(line: str) -> bool:
    return bool(re.match(r"^\s*ingest\b.*(it|img|row)(/s|\])", line))


def judge(case: dict, command: str, result: dict) -> dict:
    """The row of the report: figures, what the output said, and whether it passed."""
    both = _lines(result["stdout"]) + _lines(result["stderr"])
    stderr = [line for line in _lines(result["stderr"]) if not _progress(line)]
    traceback = "Traceback" in result["stdout"] or "Traceback" in result["stderr"]
    row = {
        "case": case["name"],
        "command": command,
        "exit_code": result["exit_code"],
        "expected_exit_codes": case["exit_codes"][command],
        "peak_rss_mib": result["peak_rss_mib"],
        "wall_seconds": result["wall_seconds"],
        "stderr_first_line": stderr[0] if stderr else "",
        "traceback": traceback,
    }
    checks = [result["exit_code"] in case["exit_codes"][command], not traceback]
    if case.get("names"):
        said = next((line for line in both if case["names"] in line and re.search(case["reason"], line)), "")
        row["said"] = said.strip()
        row["names_file_and_reason"] = bool(said)
        checks.append(bool(said))
    else:  # the baseline: what the command printed last
        row["said"] = (stderr or _lines(result["stdout"]) or [""])[-1].strip()
    row["under_peak_rss_target"] = result["peak_rss_mib"] < PEAK_RSS_TARGET_MIB
    checks.append(row["under_peak_rss_target"])
    row["passed"] = all(checks)
    if not row["passed"]:
        row["stdout_tail"] = result["stdout"][-2000:]
        row["stderr_tail"] = result["stderr"][-2000:]
    return row


# --- the hostile files -----------------------------------------------------------------------


def write_many_members(path: Path, count: int) -> Path:
    """A zip of `count` one-byte members (stored), in the Kaggle layout."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(count):
            zf.writestr(f"train/happy/{i}.jpg", b"x")
    return path


def write_long_line_csv(path: Path, size: int) -> Path:
    """The FER2013 header, then one line of `size` bytes ("0,1 1 1 ...,Training"), written in pieces."""
    block = b"1 " * (1 << 19)  # 1 MiB
    with open(path, "wb") as file:
        file.write(b"emotion,pixels,Usage\n0,")
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            file.write(piece)
            written += len(piece)
        file.write(b",Training\n")
    return path


def write_checkpoint(path: Path) -> dict:
    import torch

    from ferkit.models import TrainedModel, build_model
    from tests.factories import TINY_HYBRID

    torch.manual_seed(0)
    net = build_model("hybrid", **TINY_HYBRID)
    TrainedModel("hybrid", dict(TINY_HYBRID), net.state_dict()).save(path)
    return {"architecture": "hybrid", "kwargs": TINY_HYBRID, "weights": "untrained (seed 0)",
            "parameters": sum(p.numel() for p in net.parameters())}  # fmt: skip


def build_cases(folder: Path, max_files: int) -> tuple[list[dict], dict]:
    """Write every file; the cases (what to run on what, what the output must name) and generation seconds."""
    from PIL import Image

    from tests.factories import blank_png, face, image_tree, write_zip, write_zip_with_large_member

    timings: dict[str, float] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        timings[name] = round(time.perf_counter() - start, 2)
        return value

    faces = timed("faces", image_tree, FACES_PER_CLASS)
    baseline_zip = timed("baseline_zip", write_zip, folder / "baseline.zip", faces)
    crop = folder / "face.png"
    Image.fromarray(face(1)).save(crop)

    bomb_member = "train/happy/Training_zeros_1GiB.png"
    bomb_zip = timed(
        "zip_bomb_member", write_zip_with_large_member, folder / "zip_bomb_member.zip", faces, bomb_member, GIB
    )

    huge_png = timed("huge_png_13000", blank_png, 13_000, 13_000)
    (folder / "huge_13000.png").write_bytes(huge_png)
    huge_member = "train/sad/Training_huge_13000.png"
    huge_zip = write_zip(folder / "huge_png_13000.zip", {**faces, huge_member: huge_png})

    bomb_png = timed("bomb_png_20000x10000", blank_png, 20_000, 10_000)
    (folder / "bomb_20000x10000.png").write_bytes(bomb_png)
    bomb_png_member = "train/fear/Training_bomb_20000x10000.png"
    bomb_png_zip = write_zip(folder / "bomb_png_20000x10000.zip", {**faces, bomb_png_member: bomb_png})

    many_zip = timed("many_members", write_many_members, folder / "many_members.zip", max_files + 1)
    long_csv = timed("csv_long_line", write_long_line_csv, folder / "long_line.csv", CSV_LINE_BYTES)

    zip_codes = {"info": (0,), "validate": (0, 1)}  # the gate may stop 399 faces; it must not crash
    predict_codes = {"predict": (1,), "predict --no-detect": (1,)}
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
    cases = [
        {"name": "baseline", "path": baseline_zip, "exit_codes": zip_codes, "hostile": False,
         "about": f"zip of {len(faces)} normal 48x48 JPEG faces"},
        {"name": "baseline", "path": crop, "exit_codes": {"predict": (0,), "predict --no-detect": (0,)},
         "hostile": False, "about": "one 48x48 face PNG"},
        {"name": "zip_bomb_member", "path": bomb_zip, "exit_codes": zip_codes, "hostile": True,
         "names": bomb_member, "reason": "over the limit",
         "about": f"the {len(faces)} faces plus '{bomb_member}': 1 GiB of zeros, deflated"},
        {"name": "huge_png_13000", "path": huge_zip, "exit_codes": zip_codes, "hostile": True,
         "names": huge_member, "reason": "over the limit",
         "about": f"the {len(faces)} faces plus a 13,000 x 13,000 PNG with full pixel data"},
        {"name": "huge_png_13000", "path": folder / "huge_13000.png", "exit_codes": predict_codes, "hostile": True,
         "names": "huge_13000.png", "reason": "over the limit", "about": "the 13,000 x 13,000 PNG alone"},
        {"name": "bomb_png_20000x10000", "path": bomb_png_zip, "exit_codes": zip_codes, "hostile": True,
         "names": bomb_png_member, "reason": TOO_BIG,
         "about": f"the {len(faces)} faces plus a 20,000 x 10,000 PNG with full pixel data"},
        {"name": "bomb_png_20000x10000", "path": folder / "bomb_20000x10000.png", "exit_codes": predict_codes,
         "hostile": True, "names": "bomb_20000x10000.png", "reason": TOO_BIG,
         "about": "the 20,000 x 10,000 PNG alone"},
        {"name": "many_members", "path": many_zip, "exit_codes": {"info": (3,)}, "hostile": True,
         "names": "many_members.zip", "reason": "over the limit", "env": {"FERKIT_MAX_FILES": str(max_files)},
         "about": f"zip of {max_files + 1:,} one-byte members, FERKIT_MAX_FILES={max_files:,}"},
        {"name": "csv_long_line", "path": long_csv, "exit_codes": {"info": (3,)}, "hostile": True,
         "names": "long_line.csv", "reason": "longer than",
         "about": f"CSV header then one line of {CSV_LINE_BYTES / (1 << 20):g} MiB"},
    ]  # fmt: skip
    for case in cases:
        case["file_bytes"] = sizes[case["path"].name]
        case["path"] = str(case["path"])
    return cases, timings


def generate(folder: Path, scratch: Path, max_files: int) -> None:
    """The child's part: every file, the checkpoint, and `cases.json` for the measuring parent."""
    from ferkit.data.images import ReadLimits

    model = write_checkpoint(scratch / "tiny_hybrid.pt")
    cases, timings = build_cases(folder, max_files)
    context = {"model": model, "generation_seconds": timings, "limits": ReadLimits().describe()}
    (scratch / "cases.json").write_text(json.dumps({"cases": cases, **context}, indent=2))


# --- the run ---------------------------------------------------------------------------------


def ferkit_argv(command: str, path: Path, checkpoint: Path) -> list[str]:
    ferkit = str(Path(sys.executable).parent / "ferkit")
    if command.startswith("predict"):
        return [ferkit, "predict", str(path), "--model", str(checkpoint), *command.split()[1:]]
    return [ferkit, command, str(path)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--max-files", type=int, default=DEFAULT_MAX_FILES, help="FERKIT_MAX_FILES, many_members only")
    parser.add_argument("--keep", help="write the files here and keep them (default: a temporary folder)")
    parser.add_argument("--generate", nargs=2, metavar=("FOLDER", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate[0]), Path(args.generate[1]), args.max_files)
        return 0

    from tests.benchmarks.report import write_report  # the standard library only

    scratch = Path(tempfile.mkdtemp(prefix="ferkit_hostile_"))
    folder = Path(args.keep) if args.keep else scratch / "files"
    folder.mkdir(parents=True, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FERKIT_MAX_")}
    base_env.update(FERKIT_HOME=str(scratch / "home"), ZENML_CONFIG_PATH=str(scratch / "home/zenml"),
                    FERKIT_NO_PROGRESS="1", ZENML_ANALYTICS_OPT_IN="false")  # fmt: skip
    try:
        print("writing the hostile files ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, __file__, "--generate", str(folder), str(scratch), "--max-files", str(args.max_files)],
            check=True,
            env=base_env,
        )
        plan = json.loads((scratch / "cases.json").read_text())
        checkpoint = scratch / "tiny_hybrid.pt"
        rows = []
        for case in plan["cases"]:
            case["path"] = Path(case["path"])
            for command in case["exit_codes"]:
                env = {**base_env, **case.get("env", {})}
                result = run_measured(ferkit_argv(command, case["path"], checkpoint), env, scratch)
                row = judge(case, command, result)
                row.update(file=case["path"].name, file_bytes=case["file_bytes"], hostile=case["hostile"],
                           about=case["about"])  # fmt: skip
                rows.append(row)
                print(f"{row['case']:22s} {command:20s} exit {row['exit_code']}  {row['peak_rss_mib']:7.1f} MiB  "
                      f"{row['wall_seconds']:6.2f} s  {'ok ' if row['passed'] else 'FAIL'}  {row['said'][:110]}",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    floor = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    baseline = {row["command"]: row for row in rows if not row["hostile"]}
    for row in rows:
        base = baseline.get(row["command"])
        row["peak_rss_ratio_to_baseline"] = round(row["peak_rss_mib"] / base["peak_rss_mib"], 2) if base else None
        row["wall_ratio_to_baseline"] = round(row["wall_seconds"] / base["wall_seconds"], 2) if base else None
    hostile = [row for row in rows if row["hostile"]]
    checks = {f"{row['case']} / {row['command']}": row["passed"] for row in rows}
    results = {
        "passed": all(checks.values()),
        "max_hostile_peak_rss_mib": max(row["peak_rss_mib"] for row in hostile),
        "max_hostile_peak_rss_ratio_to_baseline": max(
            row["peak_rss_ratio_to_baseline"] for row in hostile if row["peak_rss_ratio_to_baseline"]
        ),
        "rows": rows,
    }
    return write_report(
        "hostile_input",
        args.out,
        {"peak_rss_mib_below": PEAK_RSS_TARGET_MIB, "no_traceback": True, "names_file_and_reason": True},
        results,
        checks,
        model=plan["model"],
        limits={"defaults": plan["limits"], "many_members_FERKIT_MAX_FILES": args.max_files},
        generation_seconds=plan["generation_seconds"],
        measured_with="os.wait4 ru_maxrss of each `ferkit` process (exact peak RSS, KiB / 1024)",
        measurement_floor_mib=floor,
    )


if __name__ == "__main__":
    sys.exit(main())
