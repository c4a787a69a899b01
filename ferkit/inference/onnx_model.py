"""ONNX export of a trained model, and predictions with ONNX Runtime.

The exported graph is the whole prediction, not only the network: input `faces`, float32
(N, 1, 48, 48), grayscale face crops resized to 48x48 (bicubic) with pixels divided by 255;
outputs `probabilities` (calibrated with the model's temperature) and `raw_probabilities`,
both (N, 7) in the order of the `emotions` metadata, each the mean over the image and its
mirror when the recipe predicts with the mirror, as `Predictor` does. The metadata says so too,
so a deployment without ferkit knows how to feed it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import ferkit
from ferkit.data.errors import DataError
from ferkit.data.labels import EMOTIONS, IMAGE_SIZE
from ferkit.files import atomic_write
from ferkit.inference.faces import FacePredictor

OPSET = 18
INPUT_NAME, OUTPUT_NAMES = "faces", ("probabilities", "raw_probabilities")
PREPROCESSING = (
    "faces: float32 (N, 1, 48, 48); each face a grayscale crop resized to 48x48 (bicubic), pixels divided by 255. "
    "RGB is converted to gray as Pillow's 'L' mode does (ITU-R 601-2 luma)."
)


class OnnxModelError(DataError):
    """An .onnx file that is not a ferkit export; the message names the file and what is missing."""


def _exported_module():
    """The network with the recipe's views, softmax and temperature: what `Predictor` computes."""
    from torch import nn

    class Exported(nn.Module):
        def __init__(self, network: nn.Module, flip: bool, temperature: float):
            import torch

            super().__init__()
            self.network, self.flip = network, flip
            self.register_buffer("temperature", torch.tensor(float(temperature)))

        def forward(self, faces):
            raw = self.network(faces).softmax(dim=1)
            if self.flip:
                raw = (raw + self.network(faces.flip(-1)).softmax(dim=1)) / 2
            calibrated = (raw.clamp_min(1e-12).log() / self.temperature).softmax(dim=1)
            return calibrated, raw

    return Exported


def export_onnx(model, out: str | os.PathLike, tta: str | None = None) -> Path:
    """Write `model` (a `TrainedModel`) as an ONNX graph with its preprocessing, label order and calibration in the
    metadata; the file appears whole or not at all. `tta` is "flip" or "none" (default: the
    recipe's, as `Predictor` predicts)."""
    import onnx
    import torch

    if tta not in (None, "flip", "none"):
        raise ValueError(f"an ONNX export predicts with tta 'flip' or 'none', got {tta!r}")
    flip = bool(model.recipe.get("tta_flip")) if tta is None else tta == "flip"
    temperature = model.temperature_for("flip" if flip else "none")  # 1 for views it was not fitted on
    wrapper = _exported_module()(model.build().float(), flip, temperature).eval()
    example = torch.rand(2, 1, model.input_size, model.input_size)
    program = torch.onnx.export(
        wrapper,
        (example,),
        input_names=[INPUT_NAME],
        output_names=list(OUTPUT_NAMES),
        dynamic_shapes={"faces": {0: torch.export.Dim("batch")}},
        opset_version=OPSET,
        dynamo=True,
        verbose=False,
    )
    proto = program.model_proto
    metadata = {
        "producer": f"ferkit {ferkit.__version__}",
        "emotions": json.dumps(list(model.emotions)),
        "input": PREPROCESSING,
        "outputs": "probabilities: calibrated (temperature scaling fitted on val); raw_probabilities: the network's",
        "tta": "flip" if flip else "none",
        "temperature": repr(temperature),
        "architecture": model.architecture,
        "weights_sha256": model.weights_sha256(),
    }
    onnx.helper.set_model_props(proto, metadata)
    data = proto.SerializeToString()
    return atomic_write(out, lambda file: file.write(data))


@dataclass
class OnnxPredictor(FacePredictor):
    """`Predictor`'s interface over an exported .onnx file, run by ONNX Runtime on the CPU."""

    path: str | os.PathLike
    threads: int | None = None  # intra-op threads; None: ONNX Runtime's default (all cores)
    emotions: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        import onnxruntime as ort

        super().__post_init__()
        options = ort.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors for bad files
            raise OnnxModelError(f"{self.path}: not an ONNX model ONNX Runtime can load ({exc})") from None
        props = self.session.get_modelmeta().custom_metadata_map
        outputs = {o.name for o in self.session.get_outputs()}
        if "emotions" not in props or not set(OUTPUT_NAMES) <= outputs:
            raise OnnxModelError(f"{self.path}: not a ferkit export (no emotions metadata or probability outputs)")
        try:
            emotions = json.loads(props["emotions"])
        except json.JSONDecodeError:
            emotions = None
        if not isinstance(emotions, list) or not all(isinstance(e, str) for e in emotions):
            raise OnnxModelError(f"{self.path}: its emotions metadata {props['emotions'][:100]!r} is not a JSON list "
                                 "of names")  # fmt: skip
        self.emotions = tuple(emotions)
        if self.emotions != EMOTIONS:
            raise OnnxModelError(f"{self.path}: its label order {list(self.emotions)} is not ferkit's {list(EMOTIONS)}")
        self._check_shapes()
        self.metadata = dict(props)

    def _check_shapes(self) -> None:
        """The one input `faces` (N, 1, 48, 48) and outputs (N, 7), as the export writes them; a batch
        dimension may be named or fixed."""

        def fits(shape: list, wanted: tuple) -> bool:  # a dimension left symbolic fits any size
            return len(shape) == len(wanted) and all(not isinstance(d, int) or w is None or d == w
                                                     for d, w in zip(shape, wanted))  # fmt: skip

        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if [i.name for i in inputs] != [INPUT_NAME] or not fits(inputs[0].shape, (None, 1, IMAGE_SIZE, IMAGE_SIZE)):
            shown = ", ".join(f"{i.name} {list(i.shape)}" for i in inputs)
            raise OnnxModelError(
                f"{self.path}: its input is {shown}, not {INPUT_NAME} [N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}]"
            )
        for output in outputs:
            if output.name in OUTPUT_NAMES and not fits(output.shape, (None, len(EMOTIONS))):
                raise OnnxModelError(f"{self.path}: its output {output.name} is {list(output.shape)}, not [N, "
                                     f"{len(EMOTIONS)}]")  # fmt: skip

    def probabilities(self, batch: np.ndarray, raw: bool) -> np.ndarray:
        x = (batch.astype(np.float32) / 255.0)[:, None]  # (N, 1, 48, 48)
        calibrated, uncalibrated = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        out = uncalibrated if raw else calibrated
        if out.shape != (len(batch), len(EMOTIONS)):  # a graph whose shapes its file did not declare
            raise OnnxModelError(f"{self.path}: gave {list(out.shape)} for {len(batch)} faces, not [{len(batch)}, "
                                 f"{len(EMOTIONS)}]")  # fmt: skip
        return out


def quantize_onnx(source: str | os.PathLike, out: str | os.PathLike, calibration: np.ndarray) -> Path:
    """An int8 copy of an export (ONNX Runtime static quantization, QDQ, per-channel weights),
    its activation ranges calibrated on `calibration`: uint8 (N, 48, 48) training faces, about
    4,096. Written whole or not at all; the metadata is kept, with `quantized: int8` added."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self, faces: np.ndarray, batch: int = 256):
            self.batches = iter(
                {INPUT_NAME: (faces[i : i + batch].astype(np.float32) / 255.0)[:, None]}
                for i in range(0, len(faces), batch)
            )

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            Faces(np.asarray(calibration, dtype=np.uint8)),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MatMul", "Gemm"],  # the arithmetic; norms and softmax stay float
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        proto = onnx.load(quantized)
        props = {p.key: p.value for p in onnx.load(source).metadata_props}
        onnx.helper.set_model_props(proto, {**props, "quantized": "int8 (ONNX Runtime static, QDQ)"})
        data = proto.SerializeToString()
    return atomic_write(out, lambda file: file.write(data))
