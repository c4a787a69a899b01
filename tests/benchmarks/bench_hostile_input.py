"""Hostile-input benchmark: peak memory and wall time of `ferkit info | validate | predict` on files
that are cheap to write and expensive to read naively.

    .venv/bin/python tests/benchmarks/bench_hostile_input.py [--out tests/benchmarks/results/hostile_input.json]
        [--max-files N] [--keep DIR]

Cases, generated in a temporary folder (about 0.8 GB of disk, mostly the CSV; 2 minutes on 2 cores):

    baseline              a zip of 399 normal faces (the Kaggle layout); a 48x48 face PNG for predict
    zip_bomb_member       the same faces plus one member of 1 GiB of zeros (deflated to about 1 MB)
    huge_png_13000        the faces plus a real 13,000 x 13,000 PNG (full pixel data, 164 KB); the PNG alone
    bomb_png_20000x10000  the faces plus a real 20,000 x 10,000 PNG (full pixel data); the PNG alone
    many_members          a zip of FERKIT_MAX_FILES + 1 tiny members (default 300,001)
    csv_long_line         a CSV header, then one 500 MB line
    csv_open_quote        a CSV header, a row whose quote never closes, then 100 MB of short lines of commas
    video_frame_bomb      an MJPG video (about 1 MB) of two 10,000 x 8,000 frames (80 Mpx each)
    progressive_jpeg      a 20,000 x 20,000 grey progressive JPEG (about 1.5 MB): 8 times over the pixel limit, inside
                          the 64 times a baseline JPEG may be and still be decoded reduced

and the worst *legal* inputs, just under the limits (FERKIT_MAX_IMAGE_PIXELS 50,000,000, FERKIT_MAX_FILE_MB 64),
which must be read (exit 0, the file not reported unreadable) within the same 1 GiB:

    png16_7071            a 7,071 x 7,071 16-bit grayscale PNG (49,999,041 pixels) in the faces zip; alone
    rgba_7000_rotated     a 7,000 x 7,000 RGBA PNG with an eXIf chunk (orientation 6) in the faces zip; alone
    jpeg_48mp             an 8,000 x 6,000 RGB JPEG photo, alone (predict with and without face detection)
    thin_strip            a 1 x 3,300 PNG (a strip that shrinks to less than a pixel for the face detector)

The PNGs are written row block by row block (numpy rows, PNG Sub filter, zlib level 1, one IDAT chunk per
block): a gradient with a few bits of cycled noise, so they compress to tens of MB, not to almost nothing;
the generator refuses to write one over FERKIT_MAX_FILE_MB. Their rows carry `legal_worst_case: true`.

Each command runs as its own process (`.venv/bin/ferkit ...`, with FERKIT_HOME and ZENML_CONFIG_PATH in
a temporary folder and FERKIT_NO_PROGRESS=1); its peak RSS is exact, from `os.wait4` (ru_maxrss). A row
passes when the peak stays under 1 GiB, the exit code is the expected one, nothing prints a traceback
and the output names the hostile file with the reason (a legal file: is not named as unreadable, and
`predict` names it with its faces or "no face found"). `predict` uses a small untrained hybrid
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
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

PEAK_RSS_TARGET_MIB = 1024.0
FACES_PER_CLASS = 19  # x 7 classes x 3 splits = 399 faces
DEFAULT_MAX_FILES = 300_000
CSV_LINE_BYTES = 500 * (1 << 20)
CSV_OPEN_QUOTE_BYTES = 100 * (1 << 20)
GIB = 1 << 30
OUT = ROOT / "tests/benchmarks/results/hostile_input.json"
# Either ferkit's own bound or Pillow's (twice Image.MAX_IMAGE_PIXELS, raised in Image.open) refuses a huge image.
TOO_BIG = r"over the limit|too large to decode safely"
# What a legal file must never be called, in a line that names it.
UNREAD = r"cannot read|cannot decode|over the limit|too large|not an image|unreadable"
MAX_FILE_BYTES = 64 * (1 << 20)  # ferkit's default FERKIT_MAX_FILE_MB


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
    if case.get("legal"):  # a worst legal input: read, never named as unreadable
        name = case["legal"]
        naming = [line for line in both if name in line]
        refused = [line for line in naming if re.search(UNREAD, line)]
        if command.startswith("predict"):
            said = next((line for line in naming if "->" in line or "no face found" in line), "")
            read = bool(said) and not refused
        else:
            said = next((line for line in _lines(result["stdout"]) if "converted to 48x48" in line), "")
            said = said or (stderr or _lines(result["stdout"]) or [""])[-1]
            read = not refused
        row["said"] = (refused[0] if refused else said).strip()
        row["read_legal_file"] = read
        checks.append(read)
    elif case.get("names"):
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


def write_open_quote_csv(path: Path, size: int) -> Path:
    """The FER2013 header, then a row whose quoted field never closes: `size` bytes of 2 KB lines of
    commas, every line short, all of them one CSV record."""
    line = b'a"' + b"," * 2000 + b'"b\n'
    with open(path, "wb") as file:
        file.write(b'emotion,pixels,Usage\n0,"')
        for _ in range(size // len(line)):
            file.write(line)
    return path


def write_frame_bomb(path: Path, width: int, height: int, frames: int) -> Path:
    """An MJPG video of `frames` flat grey frames of width x height: JPEG frames of one colour
    compress to almost nothing, each decodes to width x height x 3 bytes."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (width, height))
    frame = np.full((height, width, 3), 128, np.uint8)
    for _ in range(frames):
        writer.write(frame)
    writer.release()
    return path


def write_progressive_jpeg(path: Path, side: int) -> Path:
    """A side x side grey progressive JPEG of a gentle gradient: small on disk; decoding it holds
    every coefficient (2 bytes a pixel) whatever the output size."""
    import numpy as np
    from PIL import Image

    row = (np.arange(side) * 255 // side).astype(np.uint8)
    Image.fromarray(np.broadcast_to(row, (side, side)).copy()).save(path, quality=60, progressive=True)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def exif_orientation(value: int) -> bytes:
    """A minimal big-endian TIFF block (what a PNG eXIf chunk holds): one IFD, tag 0x0112 = `value`."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, value, 0)  # SHORT, count 1, value left-justified
    return b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)


def write_png(path: Path, width: int, height: int, depth: int, color: int, bpp: int, rows, exif: bytes = b"") -> int:
    """A PNG streamed to `path`: `rows(y0, n)` gives rows y0..y0+n as (n, width * bpp) uint8 (stored byte
    order), written with the Sub filter, zlib level 1, one IDAT chunk per block of rows; its size in bytes.
    Refuses (ValueError) to write one over MAX_FILE_BYTES: these cases must stay legal."""
    import numpy as np

    packer, block = zlib.compressobj(1), 64
    with open(path, "wb") as file:
        file.write(
            b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
        )
        if exif:
            file.write(_chunk(b"eXIf", exif))  # before the pixel data, as the PNG spec asks
        for y0 in range(0, height, block):
            px = rows(y0, min(block, height - y0))
            filtered = np.empty((px.shape[0], px.shape[1] + 1), np.uint8)
            filtered[:, 0] = 1  # Sub: each byte minus the one bpp bytes to its left
            filtered[:, 1 : bpp + 1] = px[:, :bpp]
            np.subtract(px[:, bpp:], px[:, :-bpp], out=filtered[:, bpp + 1 :])
            data = packer.compress(filtered.tobytes())
            if data:
                file.write(_chunk(b"IDAT", data))
        file.write(_chunk(b"IDAT", packer.flush()) + _chunk(b"IEND", b""))
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path.name} is {size:,} bytes, over FERKIT_MAX_FILE_MB: not a legal input")
    return size


def write_png16(path: Path, side: int) -> int:
    """A side x side 16-bit grayscale PNG: diagonal gradient plus 5 bits of noise (61 noise rows, cycled)."""
    import numpy as np

    noise = np.random.default_rng(16).integers(0, 32, (61, side))
    x = np.arange(side)[None, :]

    def rows(y0: int, n: int):
        y = np.arange(y0, y0 + n)[:, None]
        values = (x * 6 + y * 5 + noise[y[:, 0] % 61]) % 65536
        return values.astype(">u2").view(np.uint8).reshape(n, side * 2)

    return write_png(path, side, side, 16, 0, 2, rows)


def write_rgba_rotated(path: Path, side: int) -> int:
    """A side x side RGBA PNG (8-bit) with EXIF orientation 6: RGB gradients with 1 bit of noise in R and G,
    alpha ramping from 96 to 255 across, so laying it on white does real work."""
    import numpy as np

    noise = np.random.default_rng(6).integers(0, 2, (61, side, 2)).astype(np.uint8)
    x = np.arange(side)[None, :]

    def rows(y0: int, n: int):
        y = np.arange(y0, y0 + n)[:, None]
        px = np.empty((n, side, 4), np.uint8)
        px[..., 0] = x * 254 // side
        px[..., 1] = y * 254 // side
        px[..., 2] = ((x + y) // 40) % 256
        px[..., 3] = 96 + x * 159 // side
        px[..., :2] += noise[y[:, 0] % 61]
        return px.reshape(n, side * 4)

    return write_png(path, side, side, 8, 6, 4, rows, exif=exif_orientation(6))


def write_jpeg_photo(path: Path, width: int, height: int) -> int:
    """A width x height RGB JPEG (quality 92): a small scene of gradients and faces resized up, with grain
    so it is photo-sized. The generator's memory does not matter (its own process)."""
    import numpy as np
    from PIL import Image

    from tests.factories import face

    small_w, small_h = width // 10, height // 10
    yy, xx = np.mgrid[0:small_h, 0:small_w]
    scene = np.stack([xx * 255 // small_w, yy * 255 // small_h, (xx + yy) % 256], -1).astype(np.uint8)
    for i in range(12):  # faces scattered over the scene, 96 px each (960 px at full size)
        tile = np.asarray(Image.fromarray(face(100 + i)).resize((96, 96)))
        top, left = (i // 4) * (small_h // 3) + 20, (i % 4) * (small_w // 4) + 20
        scene[top : top + 96, left : left + 96] = tile[..., None]
    photo = np.asarray(Image.fromarray(scene).resize((width, height), Image.Resampling.BICUBIC)).copy()
    grain = np.random.default_rng(48).integers(-14, 15, (height // 4, width // 4, 3), dtype=np.int16)
    for top in range(0, height, grain.shape[0]):
        for left in range(0, width, grain.shape[1]):
            part = photo[top : top + grain.shape[0], left : left + grain.shape[1]]
            part[...] = np.clip(part + grain[: part.shape[0], : part.shape[1]], 0, 255)
    Image.fromarray(photo).save(path, quality=92)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path.name} is {size:,} bytes, over FERKIT_MAX_FILE_MB: not a legal input")
    return size


def zip_with_file(path: Path, faces: dict[str, bytes], member: str, file: Path) -> Path:
    """The faces zip plus `file` as `member`, stored (its uncompressed size is the file's size)."""
    from tests.factories import write_zip

    write_zip(path, faces)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as zf:
        zf.write(file, member)
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
    open_csv = timed("csv_open_quote", write_open_quote_csv, folder / "open_quote.csv", CSV_OPEN_QUOTE_BYTES)
    frame_bomb = timed("video_frame_bomb", write_frame_bomb, folder / "frame_bomb.avi", 10_000, 8_000, 2)
    progressive = folder / "progressive_20000.jpg"
    timed("progressive_jpeg", write_progressive_jpeg, progressive, 20_000)
    strip = folder / "thin_strip.png"
    Image.new("L", (1, 3300), 128).save(strip)

    # The worst legal inputs: just under the pixel bound, each file under the byte bound.
    png16 = folder / "png16_7071.png"
    timed("png16_7071", write_png16, png16, 7071)
    png16_member = "train/neutral/Training_png16_7071.png"
    png16_zip = timed("png16_7071_zip", zip_with_file, folder / "png16_7071.zip", faces, png16_member, png16)
    rgba = folder / "rgba_7000_rotated.png"
    timed("rgba_7000_rotated", write_rgba_rotated, rgba, 7000)
    rgba_member = "train/surprise/Training_rgba_7000_rotated.png"
    rgba_zip = timed("rgba_7000_rotated_zip", zip_with_file, folder / "rgba_7000_rotated.zip", faces, rgba_member, rgba)
    jpeg48 = folder / "jpeg_48mp.jpg"
    timed("jpeg_48mp", write_jpeg_photo, jpeg48, 8000, 6000)

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
        {"name": "csv_open_quote", "path": open_csv, "exit_codes": {"info": (3,)}, "hostile": True,
         "names": "open_quote.csv", "reason": "a quote never closed",
         "about": f"CSV header, then a quote never closed and {CSV_OPEN_QUOTE_BYTES / (1 << 20):g} MiB of 2 KB lines"},
        {"name": "video_frame_bomb", "path": frame_bomb, "exit_codes": {"predict": (1,)}, "hostile": True,
         "names": "frame_bomb.avi", "reason": "over the limit",
         "about": "an MJPG video of two 10,000 x 8,000 grey frames (80 Mpx each)"},
        {"name": "progressive_jpeg", "path": progressive, "exit_codes": predict_codes, "hostile": True,
         "names": "progressive_20000.jpg", "reason": "progressive JPEG is never decoded reduced",
         "about": "a 20,000 x 20,000 grey progressive JPEG (400 Mpx)"},
    ]  # fmt: skip
    mb = lambda path: f"{sizes[path.name] / (1 << 20):.1f} MiB"  # noqa: E731
    legal_zip = {"info": (0,), "validate": (0, 1)}
    legal_predict = {"predict --no-detect": (0,), "predict": (0,)}
    legal = [
        {"name": "png16_7071", "path": png16_zip, "exit_codes": legal_zip, "legal": png16_member,
         "about": f"the {len(faces)} faces plus a 7,071 x 7,071 16-bit grayscale PNG ({mb(png16)}), stored"},
        {"name": "png16_7071", "path": png16, "exit_codes": legal_predict, "legal": png16.name,
         "about": f"the 7,071 x 7,071 16-bit grayscale PNG alone ({mb(png16)})"},
        {"name": "rgba_7000_rotated", "path": rgba, "exit_codes": legal_predict, "legal": rgba.name,
         "about": f"a 7,000 x 7,000 RGBA PNG, EXIF orientation 6, alone ({mb(rgba)})"},
        {"name": "rgba_7000_rotated", "path": rgba_zip, "exit_codes": {"info": (0,)}, "legal": rgba_member,
         "about": f"the {len(faces)} faces plus the 7,000 x 7,000 RGBA PNG ({mb(rgba)}), stored"},
        {"name": "jpeg_48mp", "path": jpeg48, "exit_codes": {"predict": (0,), "predict --no-detect": (0,)},
         "legal": jpeg48.name, "about": f"an 8,000 x 6,000 RGB JPEG photo, quality 92 ({mb(jpeg48)})"},
        {"name": "thin_strip", "path": strip, "exit_codes": {"predict": (0,)}, "legal": strip.name,
         "about": "a 1 x 3,300 grey PNG: no face, and narrower than a pixel once shrunk for the face detector"},
    ]  # fmt: skip
    for case in legal:
        case.update(hostile=False, legal_worst_case=True)
    cases += legal
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
                           legal_worst_case=case.get("legal_worst_case", False), about=case["about"])  # fmt: skip
                rows.append(row)
                print(f"{row['case']:22s} {command:20s} exit {row['exit_code']}  {row['peak_rss_mib']:7.1f} MiB  "
                      f"{row['wall_seconds']:6.2f} s  {'ok ' if row['passed'] else 'FAIL'}  {row['said'][:110]}",
                      file=sys.stderr, flush=True)  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    floor = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    baseline = {row["command"]: row for row in rows if row["case"] == "baseline"}
    for row in rows:
        base = baseline.get(row["command"])
        row["peak_rss_ratio_to_baseline"] = round(row["peak_rss_mib"] / base["peak_rss_mib"], 2) if base else None
        row["wall_ratio_to_baseline"] = round(row["wall_seconds"] / base["wall_seconds"], 2) if base else None
    hostile = [row for row in rows if row["hostile"]]
    legal = [row for row in rows if row["legal_worst_case"]]
    checks = {f"{row['case']} / {row['command']}": row["passed"] for row in rows}
    results = {
        "passed": all(checks.values()),
        "max_hostile_peak_rss_mib": max(row["peak_rss_mib"] for row in hostile),
        "max_hostile_peak_rss_ratio_to_baseline": max(
            row["peak_rss_ratio_to_baseline"] for row in hostile if row["peak_rss_ratio_to_baseline"]
        ),
        "max_legal_worst_case_peak_rss_mib": max(row["peak_rss_mib"] for row in legal),
        "max_legal_worst_case_peak_rss_ratio_to_baseline": max(
            row["peak_rss_ratio_to_baseline"] for row in legal if row["peak_rss_ratio_to_baseline"]
        ),
        "rows": rows,
    }
    return write_report(
        "hostile_input",
        args.out,
        {
            "peak_rss_mib_below": PEAK_RSS_TARGET_MIB,
            "no_traceback": True,
            "names_file_and_reason": True,
            "legal_worst_case_read": True,
        },
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
