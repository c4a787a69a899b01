"""Emotions in video files and camera streams: frames read with OpenCV, faces found per sampled
frame, followed across frames by an IoU tracker, and each track's probabilities smoothed over
its last few sampled frames.

One row per sampled frame and face: frame index, time in seconds, track id, box, label,
confidence, `uncertain` and the seven probabilities (the smoothed ones). With an annotation
path, every frame is written to a video with the faces boxed (a frame between samples shows the
boxes of the last sample).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferkit.data.errors import DataError
from ferkit.data.images import ReadLimits
from ferkit.inference.faces import FacePredictor, to_face_array
from ferkit.inference.photos import Box, detect_in

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
# Frames are searched for faces on a copy at most this long (faces of at least 24 px in a 640 px
# frame), with a coarser step between sizes than photos: about 4x faster, so a 640x480 stream
# keeps up on 2 cores.
DETECT_SIDE, DETECT_STEP = 320, 1.15
# Codecs by output suffix: what OpenCV's bundled FFmpeg writes without extra libraries.
_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}


class VideoError(DataError):
    """A video file or camera cannot be opened or read; the message names it."""


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: Box
    last_seen: int  # index of the last sampled frame that matched it
    probs: deque = field(default_factory=deque)


class IouTracker:
    """Greedy IoU matching of each sampled frame's boxes to the live tracks.

    A box joins the track it overlaps most (IoU at least `min_iou`), best pairs first; an
    unmatched box starts a new track; a track unseen for `max_missed` samples ends. `smooth`
    averages a track's last `window` probability vectors.
    """

    def __init__(self, min_iou: float = 0.3, max_missed: int = 5, window: int = 5):
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.min_iou, self.max_missed, self.window = min_iou, max_missed, window
        self.tracks: dict[int, _Track] = {}
        self._next_id = 1
        self._sample = 0

    def update(self, boxes: list[Box]) -> list[int]:
        """The track id of each box of the next sampled frame, in `boxes` order."""
        self._sample += 1
        pairs = sorted(
            ((iou(box, track.box), i, track.id) for i, box in enumerate(boxes) for track in self.tracks.values()),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        taken: set[int] = set()
        for overlap, i, track_id in pairs:
            if overlap < self.min_iou:
                break
            if ids[i] is None and track_id not in taken:
                ids[i] = track_id
                taken.add(track_id)
        for i, box in enumerate(boxes):
            if ids[i] is None:
                ids[i] = self._next_id
                self.tracks[self._next_id] = _Track(self._next_id, box, self._sample, deque(maxlen=self.window))
                self._next_id += 1
            track = self.tracks[ids[i]]
            track.box, track.last_seen = box, self._sample
        for track_id in [t.id for t in self.tracks.values() if self._sample - t.last_seen >= self.max_missed]:
            del self.tracks[track_id]
        return [int(i) for i in ids]

    def smooth(self, track_id: int, probs: np.ndarray) -> np.ndarray:
        """The mean of the track's last `window` probability vectors, `probs` included."""
        history = self.tracks[track_id].probs
        history.append(np.asarray(probs, dtype=np.float64))
        return np.mean(history, axis=0)


@dataclass
class VideoInfo:
    source: str
    fps: float
    frames: int | None  # from the container's header; None for a camera
    width: int
    height: int


def open_capture(source: str | Path | int):
    """An OpenCV capture of a video file or a camera index; `VideoError` when it cannot be read."""
    import cv2

    if isinstance(source, int):
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our message names the camera
        try:
            capture = cv2.VideoCapture(source)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            raise VideoError(f"cannot open camera {source}: no such device, or it is in use")
        return capture
    path = Path(source)
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if capture.isOpened():  # the size its header declares, before a frame is decoded
        try:
            check_frame_size(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                             str(path))  # fmt: skip
        except VideoError:
            capture.release()
            raise
    ok, _ = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise VideoError(f"{path}: not a video OpenCV can read (no decodable frame)")
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    return capture


def check_frame_size(width: int, height: int, source: str, limit: int | None = None) -> None:
    """`VideoError` for frames over the still-image bound (`limit`, default `FERKIT_MAX_IMAGE_PIXELS`'s):
    a few kilobytes of compressed video can declare frames that decode to gigabytes each."""
    limit = ReadLimits.from_env().max_image_pixels if limit is None else limit
    if width * height > limit:
        raise VideoError(
            f"{source}: frames of {width}x{height} ({width * height:,} pixels) are over the limit of {limit:,} "
            f"pixels a frame (FERKIT_MAX_IMAGE_PIXELS)"
        )


def video_info(capture, source: str | Path | int) -> VideoInfo:
    import cv2

    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return VideoInfo(
        source=f"camera {source}" if isinstance(source, int) else str(source),
        fps=fps if fps > 0 else 25.0,  # a camera that does not say: time stamps at 25 frames/s
        frames=count if count > 0 and not isinstance(source, int) else None,
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )


def sampled_frames(
    capture,
    every: int,
    decode_all: bool,
    max_frames: int | None = None,
    camera: int | None = None,
    source: str = "video",
) -> Iterator[tuple]:
    """(index, BGR frame or None, sampled) for each frame; frames between samples are only grabbed
    (not decoded) unless `decode_all`, which annotation needs. A file ends at its last frame; a
    camera that stops delivering frames is a `VideoError`, and so is a frame over the pixel bound."""
    index, limit = 0, ReadLimits.from_env().max_image_pixels
    while max_frames is None or index < max_frames:
        sampled = index % every == 0
        if sampled or decode_all:
            ok, frame = capture.read()
        else:
            ok, frame = capture.grab(), None
        if not ok:
            if camera is not None:
                raise VideoError(f"camera {camera} stopped delivering frames after {index} (unplugged or in use?)")
            return
        if frame is not None:  # a frame may be larger than the header said: no second one of that size
            check_frame_size(frame.shape[1], frame.shape[0], source, limit)
        yield index, frame, sampled
        index += 1


def predict_stream(
    source: str | Path | int,
    predictor: FacePredictor,
    every: int = 1,
    window: int = 5,
    annotate_to: str | Path | None = None,
    max_frames: int | None = None,
    on_frame: Callable[[int, VideoInfo], None] | None = None,
) -> Iterator[dict]:
    """Rows (one per sampled frame and face) for a video file or camera index, as they come.

    `on_frame(index, info)` is called after each frame (progress bars). With `annotate_to`, the
    annotated frames are written there as a video at the source's frame rate, sized by its first
    frame. A video file's annotation appears whole or not at all; a camera's keeps what was seen
    when the reader stops (Ctrl-C). A file's `time` is its frame's place in the video; a
    camera's is seconds since the first frame, by the clock.
    """
    import cv2

    from ferkit.inference.annotate import draw_faces

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    camera = source if isinstance(source, int) else None
    capture = open_capture(source)
    info = video_info(capture, source)
    tracker = IouTracker(window=window)
    partial = None
    if annotate_to is not None:
        partial = Path(annotate_to).with_name(f".{Path(annotate_to).stem}.partial{Path(annotate_to).suffix}")
        _check_suffix(Path(annotate_to))
    writer, drawn, keep, start = None, [], False, time.monotonic()
    try:
        frames = sampled_frames(capture, every, partial is not None, max_frames, camera, info.source)
        for index, frame, sampled in frames:
            if sampled:
                seconds = time.monotonic() - start if camera is not None else index / info.fps
                drawn = _predict_frame(frame, index, seconds, predictor, tracker)
                yield from drawn
            if partial is not None:
                writer = writer or _writer(partial, info.fps, frame.shape[1], frame.shape[0])
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                writer.write(cv2.cvtColor(draw_faces(rgb, drawn, chart=False), cv2.COLOR_RGB2BGR))
            if on_frame is not None:
                on_frame(index, info)
        keep = True
    except (GeneratorExit, KeyboardInterrupt):
        keep = camera is not None  # a camera's Ctrl-C ends a whole video; a file's leaves half of one
        raise
    finally:
        capture.release()
        if writer is not None:
            writer.release()
        if partial is not None:
            # Only a whole video reaches the name asked for; a failure leaves nothing behind.
            if keep and writer is not None:
                partial.replace(annotate_to)
            else:
                partial.unlink(missing_ok=True)


def _predict_frame(frame: np.ndarray, index: int, seconds: float, predictor: FacePredictor, tracker: IouTracker):
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    boxes = detect_in(gray, side=DETECT_SIDE, scale_factor=DETECT_STEP)
    ids = tracker.update(boxes)
    if not boxes:
        return []
    crops = np.stack([to_face_array(gray[y : y + h, x : x + w]) for x, y, w, h in boxes])
    rows = []
    for box, track_id, probs in zip(boxes, ids, predictor.predict_proba(crops)):
        described = predictor.describe(tracker.smooth(track_id, probs))
        rows.append({"frame": index, "time": round(seconds, 3), "track": track_id, "box": list(box), **described})
    return rows


def _check_suffix(path: Path) -> None:
    if path.suffix.lower() not in _FOURCC:
        raise VideoError(f"{path.name}: an annotated video must end in one of {sorted(_FOURCC)}")


def _writer(path: Path, fps: float, width: int, height: int):
    import cv2

    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = _FOURCC[path.suffix.lower()]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise VideoError(f"{path}: OpenCV cannot write {fourcc} video here")
    return writer
