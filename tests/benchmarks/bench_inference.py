"""Inference benchmark of a trained model: batch throughput and accuracy per path, `ferkit predict`
cold start, and video frames per second.

    python tests/benchmarks/bench_inference.py --model models:/fer_emotion@champion [--data PATH]

Throughput is measured on the FER2013 test split (PrivateTest), without TTA, in batches of 512,
for each path a deployment can take: PyTorch fp32 (channels_last, as checkpoints build, and the
NCHW layout beside it), PyTorch int8 (FX static quantization, x86 backend), ONNX Runtime fp32
(`ferkit export`) and ONNX Runtime int8 (static QDQ quantization); both int8 paths are
calibrated on the same 4,096 training faces. Each path's accuracy is
beside its speed, so the cost of going faster is visible. Cold start: `ferkit predict` on one
photo, a checkpoint and the ONNX export. Video: `predict_stream` on a generated 640x480 clip
with one face (100 frames, every frame predicted, the recipe's views), PyTorch fp32 and ONNX
Runtime fp32 and int8. All in one run, so the ratios are comparable on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ferkit.inference.speed import BATCH, best_rate

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {
    "images_per_second": 3000.0,
    "max_accuracy_drop_points": 0.5,
    "predict_cold_start_seconds": 1.5,
    "video_frames_per_second": 25.0,
}


def torch_path(network: torch.nn.Module):
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(images).unsqueeze(1).float().div_(255)).softmax(1).numpy()

    return predict


def onnx_path(path: Path):
    from ferkit.inference.onnx_model import OnnxPredictor

    predictor = OnnxPredictor(path=path, raw=True)
    return lambda images: predictor.probabilities(images, raw=True)


def accuracy(predict, images: np.ndarray, labels: np.ndarray) -> float:
    probs = np.concatenate([predict(images[i : i + BATCH]) for i in range(0, len(images), BATCH)])
    return float((probs.argmax(1) == labels).mean())


def cold_start(model_arg: str, image: Path, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "ferkit"), "predict", str(image), "--model", model_arg],
            check=True,
            capture_output=True,
            cwd=ROOT,
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def video_fps(predictor, clip: Path) -> float:
    from ferkit.inference.video import predict_stream

    list(predict_stream(clip, predictor, max_frames=5))  # warm-up
    start = time.perf_counter()
    rows = list(predict_stream(clip, predictor))
    elapsed = time.perf_counter() - start
    assert rows, "no face found in the benchmark clip"
    return 100 / elapsed


def write_clip(path: Path) -> Path:
    """100 frames of 640x480 at 25 frames/s, one face (scikit-image's astronaut) drifting right."""
    import cv2
    from skimage import data as skdata

    head = skdata.astronaut()[30:230, 140:320]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
    for i in range(100):
        frame = np.full((480, 640, 3), 90, np.uint8)
        frame[140:340, 100 + 2 * i : 280 + 2 * i] = head
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="models:/fer_emotion@champion", help="checkpoint file or models:/ URI")
    parser.add_argument("--data", default=os.environ.get("FER2013_PATH"), help="archive (default $FER2013_PATH)")
    parser.add_argument("--out", default=str(ROOT / "tests/benchmarks/results/inference.json"))
    args = parser.parse_args()
    os.environ.setdefault("ZENML_CONFIG_PATH", str(ROOT / ".ferkit/zenml"))
    sys.path.insert(0, str(ROOT))

    from PIL import Image
    from skimage import data as skdata

    from ferkit.data import read_fer2013
    from ferkit.inference.onnx_model import OnnxPredictor, export_onnx, quantize_onnx
    from ferkit.inference.predictor import Predictor
    from ferkit.models.quantize import quantize_int8
    from ferkit.registry.store import load_trained_model
    from tests.benchmarks.report import write_report

    trained = load_trained_model(args.model)
    data = read_fer2013(args.data, progress=False)
    test, train = data.split("test"), data.split("train")
    calibration = train.images[np.random.default_rng(0).choice(len(train), 4096, replace=False)]
    work = Path(tempfile.mkdtemp(prefix="ferkit-bench-inference-"))
    with contextlib.redirect_stdout(io.StringIO()):
        export_onnx(trained, work / "plain.onnx", tta="none")  # no TTA, like the PyTorch rows
        export_onnx(trained, work / "model.onnx")  # the recipe's views: what `ferkit export` writes
    quantize_onnx(work / "plain.onnx", work / "int8.onnx", calibration)
    quantize_onnx(work / "model.onnx", work / "model_int8.onnx", calibration)

    fp32 = trained.build()  # channels_last, as every checkpoint builds
    paths = {
        "torch_fp32": torch_path(fp32),
        "torch_fp32_nchw": torch_path(trained.build().to(memory_format=torch.contiguous_format)),
        "torch_int8_fx": torch_path(quantize_int8(fp32, calibration)),
        "onnxruntime_fp32": onnx_path(work / "plain.onnx"),
        "onnxruntime_int8": onnx_path(work / "int8.onnx"),
    }
    results: dict = {"threads": torch.get_num_threads(), "test_images": len(test), "batch": BATCH}
    for name, predict in paths.items():
        results[name] = {
            "images_per_second": round(best_rate(predict, test.images), 1),
            "accuracy": round(accuracy(predict, test.images, test.labels), 4),
        }
    keep = [k for k in paths if (results["torch_fp32"]["accuracy"] - results[k]["accuracy"]) * 100 <= 0.5]
    fastest = max(keep, key=lambda k: results[k]["images_per_second"])
    results["fastest_within_half_a_point"] = fastest

    image = work / "astronaut.png"
    Image.fromarray(skdata.astronaut()).save(image)
    checkpoint = work / "model.pt"
    trained.save(checkpoint)
    results["predict_cold_start_seconds"] = {
        "checkpoint": round(cold_start(str(checkpoint), image), 2),
        "onnx": round(cold_start(str(work / "model.onnx"), image), 2),
    }
    clip = write_clip(work / "one_face.mp4")
    results["video_frames_per_second"] = {
        "torch_fp32": round(video_fps(Predictor(trained), clip), 1),
        "onnxruntime_fp32": round(video_fps(OnnxPredictor(path=work / "model.onnx"), clip), 1),
        "onnxruntime_int8": round(video_fps(OnnxPredictor(path=work / "model_int8.onnx"), clip), 1),
    }
    checks = {
        "images_per_second": results[fastest]["images_per_second"] >= TARGETS["images_per_second"],
        "predict_cold_start_seconds": min(results["predict_cold_start_seconds"].values())
        <= TARGETS["predict_cold_start_seconds"],
        "video_frames_per_second": max(results["video_frames_per_second"].values())
        >= TARGETS["video_frames_per_second"],
    }
    return write_report(
        "inference",
        args.out,
        TARGETS,
        results,
        checks,
        model=args.model,
        architecture=trained.architecture,
        torch=torch.__version__,
    )


if __name__ == "__main__":
    sys.exit(main())
