"""Videos and annotated pictures: faces followed across generated clips, one row per frame and
face, annotated output written whole or not at all, and bad videos named."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ferkit.data.labels import EMOTIONS
from ferkit.inference.annotate import COLOURS, draw_faces
from ferkit.inference.predictor import Predictor
from ferkit.inference.video import IouTracker, VideoError, predict_stream
from ferkit.models import TrainedModel, build_model

FRAMES, FPS, SIZE = 24, 12.0, (640, 480)


def tiny_model() -> TrainedModel:
    torch.manual_seed(0)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    return TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe={"tta_flip": True})


def head() -> np.ndarray:
    """The astronaut's head from scikit-image's test images, a face OpenCV's cascade finds."""
    from skimage import data as skdata

    return skdata.astronaut()[30:230, 140:320]


def write_clip(path, frames: int = FRAMES) -> list[tuple[int, int]]:
    """Two faces crossing a 640x480 clip, one moving right and one (mirrored) moving left; returns
    their top-left corners in the first frame."""
    face = head()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    for i in range(frames):
        frame = np.full((SIZE[1], SIZE[0], 3), 90, np.uint8)
        frame[40:240, 20 + 4 * i : 200 + 4 * i] = face
        frame[260:460, 440 - 4 * i : 620 - 4 * i] = face[:, ::-1]
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return [(20, 40), (440, 260)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    write_clip(folder / "clip.mp4")
    tiny_model().save(folder / "model.pt")
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing else")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(folder / "blank.png")
    return folder


class TestTracker:
    def test_moving_boxes_keep_their_ids_and_a_newcomer_gets_a_new_one(self):
        tracker = IouTracker(window=3)
        assert tracker.update([(0, 0, 50, 50), (200, 200, 50, 50)]) == [1, 2]
        assert tracker.update([(205, 203, 50, 50), (5, 2, 50, 50)]) == [2, 1]  # order of boxes changed
        assert tracker.update([(8, 4, 50, 50), (400, 0, 50, 50)]) == [1, 3]

    def test_a_track_unseen_for_max_missed_samples_ends(self):
        tracker = IouTracker(max_missed=2)
        tracker.update([(0, 0, 50, 50)])
        tracker.update([])
        assert 1 in tracker.tracks
        tracker.update([])
        assert 1 not in tracker.tracks and tracker.update([(0, 0, 50, 50)]) == [2]

    def test_smoothing_averages_the_last_window(self):
        tracker = IouTracker(window=2)
        tracker.update([(0, 0, 10, 10)])
        np.testing.assert_allclose(tracker.smooth(1, np.array([1.0, 0.0])), [1.0, 0.0])
        np.testing.assert_allclose(tracker.smooth(1, np.array([0.0, 1.0])), [0.5, 0.5])
        np.testing.assert_allclose(tracker.smooth(1, np.array([0.0, 1.0])), [0.0, 1.0])  # the first fell out


class TestPredictStream:
    def test_two_faces_are_followed_across_the_clip(self, files):
        rows = list(predict_stream(files / "clip.mp4", Predictor(tiny_model()), every=2))
        assert {r["frame"] for r in rows} <= set(range(0, FRAMES, 2))
        assert len({r["frame"] for r in rows}) >= FRAMES // 2 - 2  # the cascade finds them in nearly every sample
        tracks: dict[int, list[dict]] = {}
        for row in rows:
            tracks.setdefault(row["track"], []).append(row)
            assert row["time"] == pytest.approx(row["frame"] / FPS, abs=1e-3)
            assert row["label"] in EMOTIONS and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        long = [t for t in tracks.values() if len(t) >= FRAMES // 2 - 2]
        assert len(long) == 2  # one track per face through the clip
        for track in long:  # each track moves one way: the right-mover's x grows, the left-mover's shrinks
            xs = [r["box"][0] for r in track]
            assert xs == sorted(xs) or xs == sorted(xs, reverse=True)

    def test_the_annotated_video_has_every_frame(self, files, tmp_path):
        out = tmp_path / "annotated.mp4"
        list(predict_stream(files / "clip.mp4", Predictor(tiny_model()), every=3, annotate_to=out))
        capture = cv2.VideoCapture(str(out))
        assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
        ok, frame = capture.read()
        capture.release()
        assert ok and frame.shape == (SIZE[1], SIZE[0], 3)
        assert [p.name for p in tmp_path.iterdir()] == ["annotated.mp4"]  # no partial file beside it

    @pytest.mark.parametrize("failure", [RuntimeError("out of memory"), KeyboardInterrupt()])
    def test_a_failure_or_ctrl_c_mid_video_leaves_no_annotated_file(self, files, tmp_path, monkeypatch, failure):
        predictor = Predictor(tiny_model())
        calls = {"n": 0}
        real = predictor.predict_proba

        def failing(faces, raw=None):
            calls["n"] += 1
            if calls["n"] == 3:
                raise failure
            return real(faces, raw)

        monkeypatch.setattr(predictor, "predict_proba", failing)
        with pytest.raises(type(failure)):
            list(predict_stream(files / "clip.mp4", predictor, annotate_to=tmp_path / "out.mp4"))
        assert list(tmp_path.iterdir()) == []

    def test_a_reader_that_stops_early_leaves_no_annotated_file_of_a_video(self, files, tmp_path):
        stream = predict_stream(files / "clip.mp4", Predictor(tiny_model()), annotate_to=tmp_path / "out.mp4")
        next(stream)
        stream.close()  # GeneratorExit inside: half a video file is not a video
        assert list(tmp_path.iterdir()) == []

    def test_unreadable_sources_are_named(self, files):
        with pytest.raises(VideoError, match="broken.mp4: not a video OpenCV can read"):
            list(predict_stream(files / "broken.mp4", Predictor(tiny_model())))
        with pytest.raises(VideoError, match="no such video file"):
            list(predict_stream(files / "missing.mp4", Predictor(tiny_model())))

    def test_frames_over_the_pixel_bound_are_refused_before_one_is_decoded(self, files, monkeypatch):
        """A few kilobytes of video can declare 80-megapixel frames (1.2 GB of memory for the first);
        the still images' bound holds for frames too."""
        monkeypatch.setenv("FERKIT_MAX_IMAGE_PIXELS", "300000")  # the clip: 640 x 480 = 307,200 a frame
        decoded, real = [], cv2.VideoCapture

        class Counting:  # a wrapper, not a subclass: a Python subclass of the C++ type crashed later tests
            def __init__(self, *args):
                self.capture = real(*args)

            def read(self):
                decoded.append(1)
                return self.capture.read()

            def __getattr__(self, name):
                return getattr(self.capture, name)

        monkeypatch.setattr(cv2, "VideoCapture", Counting)
        with pytest.raises(VideoError, match=r"clip.mp4: frames of 640x480 \(307,200 pixels\) are over the limit"):
            list(predict_stream(files / "clip.mp4", Predictor(tiny_model())))
        assert decoded == []
        monkeypatch.setenv("FERKIT_MAX_IMAGE_PIXELS", "307200")
        assert len({row["frame"] for row in predict_stream(files / "clip.mp4", Predictor(tiny_model()))}) > 1


class TestAnnotatedImages:
    def test_boxes_captions_and_bars_are_drawn_in_the_emotions_colour(self):
        image = np.full((300, 400, 3), 255, np.uint8)
        probabilities = dict.fromkeys(EMOTIONS, 0.0) | {"happy": 0.9, "sad": 0.1}
        faces = [{"box": [50, 80, 100, 100], "label": "happy", "confidence": 0.9, "uncertain": False,
                  "probabilities": probabilities}]  # fmt: skip
        drawn = draw_faces(image, faces)
        assert drawn.shape == image.shape and (image == 255).all()  # a copy; the input is untouched
        assert tuple(drawn[130, 50]) == COLOURS["happy"]  # the box's left edge
        assert (drawn[85:180, 160:300] != 255).any()  # the bars, right of the box (the caption sits above it)
        unsure = draw_faces(image, [{**faces[0], "uncertain": True}], chart=False)
        assert tuple(unsure[130, 50]) != COLOURS["happy"] and (unsure[85:180, 160:300] == 255).all()


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit.cli", "predict", *args], capture_output=True, text=True)


class TestCommandLine:
    def test_json_rows_per_frame_and_face(self, files):
        result = predict(str(files / "clip.mp4"), "--model", str(files / "model.pt"), "--json", "--every", "4")
        assert result.returncode == 0, result.stderr
        (entry,) = json.loads(result.stdout)
        assert entry["frames"] == FRAMES and entry["rows"]
        row = entry["rows"][0]
        assert set(row) == {"frame", "time", "track", "box", "label", "confidence", "uncertain", "probabilities"}
        assert all(r["frame"] % 4 == 0 for r in entry["rows"])

    def test_csv_and_annotations_for_a_folder_of_images_and_videos(self, files, tmp_path):
        from skimage import data as skdata

        folder = tmp_path / "in"
        folder.mkdir()
        (folder / "clip.mp4").write_bytes((files / "clip.mp4").read_bytes())
        Image.fromarray(skdata.astronaut()).save(folder / "astronaut.jpg")
        out = tmp_path / "annotated"
        args = [str(folder), "--model", str(files / "model.pt"), "--csv", "--every", "6", "--annotate", str(out)]
        result = predict(*args)
        assert result.returncode == 0, result.stderr
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
        assert list(rows[0])[:11] == ["file", "frame", "time", "track", "x", "y", "w", "h", "label", "confidence",
                                      "uncertain"]  # fmt: skip
        photo = [r for r in rows if r["file"].endswith("astronaut.jpg")]
        video = [r for r in rows if r["file"].endswith("clip.mp4")]
        assert len(photo) == 1 and photo[0]["frame"] == "" and len(video) >= 6
        assert sorted(p.name for p in out.iterdir()) == ["astronaut.annotated.png", "clip.annotated.mp4"]
        annotated = np.asarray(Image.open(out / "astronaut.annotated.png"))
        assert annotated.shape == (512, 512, 3)  # the photo's own size, in colour
        original = np.asarray(Image.open(folder / "astronaut.jpg"))
        x, y = int(photo[0]["x"]), int(photo[0]["y"])
        assert (annotated[y + 5, x] != original[y + 5, x]).any()  # the box's edge is drawn

    def test_bad_video_and_faceless_image_are_reported(self, files):
        result = predict(
            str(files / "broken.mp4"), str(files / "blank.png"), "--model", str(files / "model.pt"), "--json"
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        by_name = {e["file"].rsplit("/", 1)[1]: e for e in json.loads(result.stdout)}
        assert by_name["broken.mp4"]["error"].startswith("cannot read video:")
        assert by_name["blank.png"]["error"] == "no face found"

    def test_inputs_with_the_same_name_get_their_own_annotations(self, files, tmp_path):
        for folder in ("a", "b"):
            (tmp_path / folder).mkdir()
            Image.fromarray(head()).save(tmp_path / folder / "x.png")
        out = tmp_path / "out"
        result = predict(str(tmp_path / "a"), str(tmp_path / "b"), "--model", str(files / "model.pt"), "--annotate",
                         str(out))  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.iterdir()) == ["x.annotated.png", "x_2.annotated.png"]

    def test_text_output_summarises_each_track(self, files):
        result = predict(str(files / "clip.mp4"), "--model", str(files / "model.pt"), "--every", "3")
        assert result.returncode == 0, result.stderr
        assert f"clip.mp4: {FRAMES} frames, " in result.stdout
        assert result.stdout.count("  track ") >= 2 and "samples)" in result.stdout

    def test_a_missing_camera_is_one_line(self, files):
        result = predict("--camera", "57", "--model", str(files / "model.pt"))
        assert result.returncode == 3 and "cannot open camera 57" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
