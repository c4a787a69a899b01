"""Pictures with the faces marked: each face boxed in its emotion's colour, the label and
confidence above the box, and (on still images) a small bar chart of the seven probabilities
beside it. `predict --annotate` writes these for images and video frames."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ferkit.data.labels import EMOTIONS
from ferkit.files import atomic_write

# One colour per emotion (RGB), in EMOTIONS order; an uncertain face is drawn in grey.
COLOURS = {
    "angry": (220, 50, 47),
    "disgust": (133, 153, 0),
    "fear": (108, 113, 196),
    "happy": (250, 190, 20),
    "neutral": (147, 161, 161),
    "sad": (38, 139, 210),
    "surprise": (211, 54, 130),
}
UNCERTAIN = (190, 190, 190)


def face_caption(face: dict) -> str:
    """'happy 0.83', or 'uncertain (sad 0.31)' below the confidence threshold."""
    text = f"{face['label']} {face['confidence']:.2f}"
    return f"uncertain ({text})" if face.get("uncertain") else text


def draw_faces(rgb: np.ndarray, faces: list[dict], chart: bool = True) -> np.ndarray:
    """A copy of the (H, W, 3) uint8 image with each face's box, caption and, with `chart`, its
    probability bars. A face is a prediction row: `box` [x, y, w, h], `label`, `confidence`,
    `uncertain`, `probabilities`."""
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(image)
    scale = max(1.0, max(image.size) / 640)
    font = ImageFont.load_default(size=round(13 * scale))
    line = max(2, round(2 * scale))
    for face in faces:
        x, y, w, h = (int(v) for v in face["box"])
        colour = UNCERTAIN if face.get("uncertain") else COLOURS.get(face["label"], (255, 255, 255))
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=colour, width=line)
        caption = face_caption(face)
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        tx, ty = x, y - (bottom - top) - 2 * line if y - (bottom - top) - 2 * line >= 0 else y + h + line
        draw.rectangle((tx, ty, tx + right - left + 2 * line, ty + bottom - top + 2 * line), fill=colour)
        draw.text((tx + line - left, ty + line - top), caption, fill=(0, 0, 0), font=font)
        if chart and face.get("probabilities"):
            _bars(draw, image.size, (x, y, w, h), face["probabilities"], font, scale)
    return np.asarray(image)


def _bars(draw: ImageDraw.ImageDraw, size: tuple[int, int], box, probabilities: dict, font, scale: float) -> None:
    """Seven labelled bars beside the box: right of it where there is room, else left, else inside."""
    x, y, w, h = box
    row = round(14 * scale)
    label_width = round(58 * scale)
    bar_width = round(70 * scale)
    width, height = label_width + bar_width + round(4 * scale), row * len(EMOTIONS)
    left = x + w + 4 if x + w + 4 + width <= size[0] else max(0, x - 4 - width)
    top = min(max(0, y), max(0, size[1] - height))
    draw.rectangle((left, top, left + width, top + height), fill=(20, 20, 20))
    for i, emotion in enumerate(EMOTIONS):
        p = float(probabilities.get(emotion, 0.0))
        row_top = top + i * row
        draw.text((left + 2, row_top), emotion, fill=(230, 230, 230), font=font)
        bar_left = left + label_width
        draw.rectangle(
            (bar_left, row_top + 2, bar_left + max(1, round(bar_width * p)), row_top + row - 2), fill=COLOURS[emotion]
        )


def save_annotated(rgb: np.ndarray, faces: list[dict], out: str | Path) -> Path:
    """The annotated image written to `out` (format from its suffix) in one piece."""
    out = Path(out)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(out.suffix.lower(), "PNG")
    buffer = io.BytesIO()
    Image.fromarray(draw_faces(rgb, faces)).save(buffer, format=fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda file: file.write(buffer.getvalue()))
    return out
