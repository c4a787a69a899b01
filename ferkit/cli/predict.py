"""ferkit predict: the emotions of the faces in photos, video files or a camera.

Images print one line per face (JSON or CSV on request); videos and the camera give one row per
sampled frame and face, with the track that face belongs to. `--annotate OUT` writes each input
with its faces marked.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ferkit.cli.errors import NOT_FOUND, CommandError

DEFAULT_MODEL = "models:/fer_emotion@champion"
CSV_FIELDS = ("file", "frame", "time", "track", "x", "y", "w", "h", "label", "confidence", "uncertain")


def add_command(sub: argparse._SubParsersAction) -> None:
    pd_ = sub.add_parser(
        "predict",
        help="find faces in images, videos or a camera and predict their emotions",
        description="Images (jpg, png, ...), videos (mp4, avi, mov, webm, mkv) or folders of either; "
        "or --camera N. Probabilities are calibrated with the temperature the model carries.",
    )
    pd_.add_argument("paths", nargs="*", help="image or video files, or folders of them")
    pd_.add_argument("--camera", type=int, metavar="N", help="read camera N (0: the first) until Ctrl-C")
    pd_.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint file, models:/ URI or exported .onnx file")
    pd_.add_argument("--no-detect", action="store_true", help="treat each image as one pre-cropped face")
    out = pd_.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (JSON lines for --camera)")
    out.add_argument("--csv", action="store_true", help="print CSV: one row per face (and frame)")
    pd_.add_argument("--annotate", metavar="OUT_DIR", help="write each input with its faces marked into OUT_DIR")
    pd_.add_argument("--raw", action="store_true", help="the network's own probabilities, not calibrated")
    pd_.add_argument(
        "--min-confidence",
        type=float,
        default=None,
        help="a face whose top probability is under this is reported uncertain (default 0.4)",
    )
    pd_.add_argument("--every", type=int, default=1, metavar="N", help="videos: predict every N-th frame")
    pd_.add_argument("--window", type=int, default=5, help="videos: average a face over its last N samples")
    pd_.add_argument("--max-frames", type=int, default=None, help="videos and camera: stop after N frames")
    pd_.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    """Exit 0 when every input was read (faces found or not), 1 when some could not be."""
    from ferkit.inference.photos import image_files
    from ferkit.inference.video import VIDEO_SUFFIXES

    if not args.paths and args.camera is None:
        raise CommandError("give image or video paths, or --camera N")
    if args.every < 1 or args.window < 1:
        raise CommandError("--every and --window must be at least 1")
    threshold = check_threshold(args.min_confidence)
    predictor = load_predictor(args.model, raw=args.raw, min_confidence=threshold)
    names = _OutputNames(Path(args.annotate)) if args.annotate else None
    writer = _Output(args)
    if args.camera is not None:
        return _camera(args, predictor, names, writer)
    failed = seen = 0
    for path in image_files(args.paths, extra_suffixes=VIDEO_SUFFIXES):
        if _is_video(path):
            entry = _video(path, args, predictor, names, writer)
        else:
            entry = _image(path, args, predictor, names)
        failed += bool(entry.get("error", "").startswith("cannot read"))
        seen += 1
        writer.entry(entry)
    if not seen:  # an empty folder (or one of other files): silence would look like success
        raise CommandError(f"no image or video files in {', '.join(args.paths)}", NOT_FOUND)
    writer.close()
    return 1 if failed else 0


class _OutputNames:
    """`<stem>.annotated<ext>` in the output folder, `<stem>_2.annotated<ext>` (and on) when two
    inputs share a stem (`a/x.jpg` and `b/x.jpg`, `x.jpg` and `x.png`): none overwrites another."""

    def __init__(self, folder: Path):
        self.folder, self.used = folder, set()

    def next(self, path: Path, ext: str) -> Path:
        name, n = f"{path.stem}.annotated{ext}", 1
        while name in self.used:
            n += 1
            name = f"{path.stem}_{n}.annotated{ext}"
        self.used.add(name)
        return self.folder / name


def check_threshold(value: float | None) -> float:
    """--min-confidence, or the default: a usage error outside 0-1."""
    from ferkit.inference.faces import MIN_CONFIDENCE

    threshold = MIN_CONFIDENCE if value is None else value
    if not 0 <= threshold <= 1:
        raise CommandError(f"--min-confidence must be between 0 and 1, got {threshold}")
    return threshold


def load_predictor(model: str, raw: bool = False, min_confidence: float | None = None):
    """A predictor for a checkpoint file, a models:/ URI or an exported .onnx file."""
    from ferkit.inference.faces import MIN_CONFIDENCE

    threshold = MIN_CONFIDENCE if min_confidence is None else min_confidence
    if model.lower().endswith(".onnx"):
        from ferkit.inference.onnx_model import OnnxPredictor

        if not Path(model).is_file():
            raise CommandError(f"model '{model}': no such ONNX file", NOT_FOUND)
        return OnnxPredictor(path=model, raw=raw, min_confidence=threshold)
    from ferkit.inference.predictor import Predictor
    from ferkit.registry.store import load_trained_model

    return Predictor(load_trained_model(model), raw=raw, min_confidence=threshold)


def _is_video(path: Path) -> bool:
    from ferkit.inference.video import is_video

    return is_video(path)


def _image(path: Path, args: argparse.Namespace, predictor, names: _OutputNames | None) -> dict:
    from ferkit.inference.annotate import save_annotated
    from ferkit.inference.photos import display_copy, faces_in_file

    found = faces_in_file(path, detect=not args.no_detect)
    entry: dict = {"file": str(path), "faces": []}
    if found.error:
        entry["error"] = found.error
    for box, prediction in zip(found.boxes, predictor.predict(found.crops) if found.crops else []):
        entry["faces"].append({"box": list(box), **prediction})
    if names is not None and not found.error.startswith("cannot read"):
        rgb = display_copy(path, found.size)
        scale = rgb.shape[1] / found.size[0]
        faces = [{**f, "box": [round(v * scale) for v in f["box"]]} for f in entry["faces"]]
        entry["annotated"] = str(save_annotated(rgb, faces, names.next(path, ".png")))
    return entry


def _video(path: Path, args: argparse.Namespace, predictor, names: _OutputNames | None, writer: _Output) -> dict:
    """Rows go to the output as they come (CSV, and the text summary's counts); JSON holds them."""
    from tqdm.auto import tqdm

    from ferkit.inference.video import VideoError, predict_stream
    from ferkit.runtime import progress_disabled

    entry: dict = {"file": str(path), "rows": [], "tracks": {}, "predictions": 0}
    out = names.next(path, ".mp4") if names is not None else None
    bar = tqdm(desc=path.name, unit="frame", leave=False, disable=progress_disabled())
    seen = [0]

    def on_frame(index: int, info) -> None:
        if bar.total is None and info.frames:
            bar.total = info.frames
        bar.update(1)
        seen[0] = index + 1

    try:
        for row in predict_stream(path, predictor, args.every, args.window, out, args.max_frames, on_frame=on_frame):
            writer.video_row(entry, row)
    except VideoError as exc:
        entry["error"] = f"cannot read video: {exc}"
    finally:
        bar.close()
    entry["frames"] = seen[0]
    if out is not None and "error" not in entry:
        entry["annotated"] = str(out)
    if "error" not in entry and not entry["predictions"]:
        entry["error"] = "no face found"
    return entry


def _camera(args: argparse.Namespace, predictor, names: _OutputNames | None, writer: _Output) -> int:
    """Rows as they come, until Ctrl-C or --max-frames; the annotated video keeps what was seen."""
    from ferkit.inference.video import VideoError, predict_stream

    out = names.next(Path(f"camera{args.camera}"), ".mp4") if names is not None else None
    try:
        for row in predict_stream(args.camera, predictor, args.every, args.window, out, args.max_frames):
            writer.stream_row(f"camera {args.camera}", row)
    except VideoError as exc:
        raise CommandError(str(exc), NOT_FOUND) from None
    except KeyboardInterrupt:
        pass
    return 0


class _Output:
    """Text, JSON or CSV on stdout. Files are printed as they finish (text, CSV) or at the end (JSON)."""

    def __init__(self, args: argparse.Namespace):
        from ferkit.data.labels import EMOTIONS

        self.format = "json" if args.json else "csv" if args.csv else "text"
        self.entries: list[dict] = []
        self.emotions = EMOTIONS
        self.csv = csv.writer(sys.stdout) if self.format == "csv" else None
        if self.csv is not None:
            self.csv.writerow([*CSV_FIELDS, *EMOTIONS, "error"])

    def video_row(self, entry: dict, row: dict) -> None:
        """One row of a video: printed now (CSV), counted for the summary (text), kept (JSON)."""
        entry["predictions"] += 1
        if self.format == "json":
            entry["rows"].append(row)
        elif self.format == "csv":
            self._csv_row(entry["file"], row)
        else:
            track = entry["tracks"].setdefault(row["track"], {"first": row["time"], "labels": {}})
            track["last"] = row["time"]
            track["labels"][row["label"]] = track["labels"].get(row["label"], 0) + 1

    def entry(self, entry: dict) -> None:
        if "tracks" in entry:  # a video: its rows went out as they came; JSON keeps only them
            summary = entry.pop("tracks"), entry.pop("predictions")
            if self.format != "json":
                entry.pop("rows")
        if self.format == "json":
            self.entries.append(entry)
        elif self.format == "csv":
            for row in entry.get("faces", []):
                self._csv_row(entry["file"], row)
            if entry.get("error"):
                self.csv.writerow([entry["file"], *[""] * (len(CSV_FIELDS) - 1 + len(self.emotions)), entry["error"]])
        else:
            self._text(entry, *(summary if "frames" in entry else ({}, 0)))

    def stream_row(self, source: str, row: dict) -> None:
        if self.format == "json":
            print(json.dumps({"source": source, **row}), flush=True)
        elif self.format == "csv":
            self._csv_row(source, row)
            sys.stdout.flush()
        else:
            print(f"{source}: {_row_text(row)}", flush=True)

    def close(self) -> None:
        if self.format == "json":
            print(json.dumps(self.entries, indent=2))

    def _csv_row(self, source: str, row: dict) -> None:
        x, y, w, h = row["box"]
        self.csv.writerow(
            [source, row.get("frame", ""), row.get("time", ""), row.get("track", ""), x, y, w, h, row["label"],
             f"{row['confidence']:.4f}", row["uncertain"], *(f"{row['probabilities'][e]:.4f}" for e in self.emotions),
             ""]
        )  # fmt: skip

    def _text(self, entry: dict, tracks: dict, predictions: int) -> None:
        name = entry["file"]
        if entry.get("error") and not entry.get("faces") and not predictions:
            print(f"{name}: {entry['error']}")
        for face in entry.get("faces", []):
            print(f"{name}: box {tuple(face['box'])} -> {_caption(face)}")
        if predictions:
            print(f"{name}: {entry['frames']} frames, {predictions} face predictions")
            for track, seen in tracks.items():
                common = max(seen["labels"], key=seen["labels"].get)
                print(
                    f"  track {track}: {seen['first']:.2f}-{seen['last']:.2f} s, mostly {common} "
                    f"({seen['labels'][common]} of {sum(seen['labels'].values())} samples)"
                )
        if entry.get("annotated"):
            print(f"  annotated: {entry['annotated']}")


def _caption(face: dict) -> str:
    from ferkit.inference.annotate import face_caption

    return face_caption(face)


def _row_text(row: dict) -> str:
    return f"frame {row['frame']} ({row['time']:.2f} s) track {row['track']} box {tuple(row['box'])} -> {_caption(row)}"
