"""ONNX export: ONNX Runtime gives PyTorch's probabilities on real faces, the metadata says how to
feed the graph, and `ferkit predict` runs the .onnx file."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from PIL import Image

from ferkit.data.labels import EMOTIONS
from ferkit.inference.onnx_model import OnnxModelError, OnnxPredictor, export_onnx
from ferkit.inference.predictor import Predictor
from ferkit.models import TrainedModel, build_model
from tests.factories import face

ROOT = Path(__file__).resolve().parents[2]


def cpu_model(temperature: float = 1.3) -> TrainedModel:
    """The hybrid model `configs/cpu.yaml` trains (seeded initial weights), with a temperature."""
    config = yaml.safe_load((ROOT / "configs/cpu.yaml").read_text())["steps"]["train_model"]["parameters"]["config"]
    torch.manual_seed(0)
    network = build_model("hybrid", **config["architecture_kwargs"])
    return TrainedModel(
        "hybrid",
        config["architecture_kwargs"],
        network.state_dict(),
        recipe={"tta_flip": True},
        calibration={"temperature": temperature},
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model = cpu_model()
    model.save(folder / "model.pt")
    export_onnx(model, folder / "model.onnx")
    return model, folder


@pytest.fixture(scope="module")
def real_faces():
    """1,000 PrivateTest faces of the real archive when there is one, else generated faces."""
    from ferkit.data import read_fer2013
    from tests.conftest import find_real_fer2013

    path = find_real_fer2013()
    if path is None:
        return np.stack([face(seed) for seed in range(200)])
    return read_fer2013(path, progress=False).split("test").images[:1000]


def test_onnx_runtime_matches_pytorch_on_real_faces(exported, real_faces):
    model, folder = exported
    torch_predictor, onnx_predictor = Predictor(model), OnnxPredictor(path=folder / "model.onnx")
    for raw in (False, True):
        expected = torch_predictor.predict_proba(real_faces, raw=raw)
        got = onnx_predictor.predict_proba(real_faces, raw=raw)
        assert np.abs(got - expected).max() < 1e-4
        assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.999


def test_the_metadata_says_how_to_feed_it(exported):
    model, folder = exported
    proto = onnx.load(folder / "model.onnx")
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["emotions"]) == list(EMOTIONS)
    assert "(N, 1, 48, 48)" in props["input"] and "divided by 255" in props["input"]
    assert props["tta"] == "flip" and float(props["temperature"]) == pytest.approx(1.3)
    assert props["weights_sha256"] == model.weights_sha256()
    assert [i.name for i in proto.graph.input] == ["faces"]
    assert [o.name for o in proto.graph.output] == ["probabilities", "raw_probabilities"]


def test_files_that_are_not_ferkit_exports_are_named(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxModelError, match="junk.onnx: not an ONNX model"):
        OnnxPredictor(path=tmp_path / "junk.onnx")
    identity = onnx.helper.make_model(
        onnx.helper.make_graph(
            [onnx.helper.make_node("Identity", ["x"], ["y"])],
            "g",
            [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
        ),
        opset_imports=[onnx.helper.make_opsetid("", 18)],
    )
    onnx.save(identity, tmp_path / "other.onnx")
    with pytest.raises(OnnxModelError, match="other.onnx: not a ferkit export"):
        OnnxPredictor(path=tmp_path / "other.onnx")


def lookalike(path: Path, emotions: str = json.dumps(list(EMOTIONS)), name: str = "faces",
              shape=("N", 1, 48, 48), out_shape=("N", 7)) -> Path:  # fmt: skip
    """A graph with ferkit's metadata and output names whose input or outputs are not an export's
    (each output is the mean of the input over its last axis), declared with these shapes."""
    helper = onnx.helper
    nodes = [helper.make_node("ReduceMean", [name], [out], axes=[-1], keepdims=0) for out in ("probabilities",
             "raw_probabilities")]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(shape))],
        [
            helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, out_shape)
            for o in ("probabilities", "raw_probabilities")
        ],  # fmt: skip
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"emotions": emotions})
    onnx.save(model, path)
    return path


def test_lookalike_graphs_are_named_with_what_is_wrong(tmp_path):
    """ferkit's metadata and output names on a graph that is no export: refused at load with the
    file's name and the part that is wrong, never a traceback from ONNX Runtime at the first face."""
    cases = {
        "not JSON": (dict(emotions="angry,disgust"), "its emotions metadata 'angry,disgust' is not a JSON list"),
        "a number": (dict(emotions="7"), "its emotions metadata '7' is not a JSON list"),
        "input name": (dict(name="x"), "its input is x ['N', 1, 48, 48], not faces [N, 1, 48, 48]"),
        "input size": (dict(shape=("N", 3, 224, 224)), "its input is faces ['N', 3, 224, 224]"),
        "output size": (dict(out_shape=("N", 1, 48)), "its output probabilities is ['N', 1, 48], not [N, 7]"),
    }
    for case, (kwargs, message) in cases.items():
        path = lookalike(tmp_path / f"{case.replace(' ', '_')}.onnx", **kwargs)
        with pytest.raises(OnnxModelError, match=re.escape(f"{path.name}: {message}")):
            OnnxPredictor(path=path)
    # Shapes ONNX Runtime cannot tell before running (a reshape to a computed shape) pass the load;
    # the first prediction names the file.
    helper = onnx.helper
    nodes = [helper.make_node("Shape", ["faces"], ["shape"]), helper.make_node("Slice", ["shape", "zero", "one"], ["n"]),
             helper.make_node("Concat", ["n", "rest"], ["flat"], axis=0),
             helper.make_node("Reshape", ["faces", "flat"], ["probabilities"]),
             helper.make_node("Identity", ["probabilities"], ["raw_probabilities"])]  # fmt: skip
    constants = [helper.make_tensor(name, onnx.TensorProto.INT64, [1], [value])
                 for name, value in (("zero", 0), ("one", 1), ("rest", -1))]  # fmt: skip
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("faces", onnx.TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in ("probabilities", "raw_probabilities")],
        initializer=constants,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"emotions": json.dumps(list(EMOTIONS))})
    onnx.save(model, tmp_path / "undeclared.onnx")
    undeclared = OnnxPredictor(path=tmp_path / "undeclared.onnx")
    with pytest.raises(OnnxModelError, match=re.escape("undeclared.onnx: gave [2, 2304] for 2 faces, not [2, 7]")):
        undeclared.probabilities(np.zeros((2, 48, 48), np.uint8), raw=False)


def ferkit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *args], capture_output=True, text=True)


def test_export_and_predict_from_the_command_line(tmp_path):
    torch.manual_seed(0)
    network = build_model("plain_cnn", widths=[4, 4, 8, 8])
    small = TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, network.state_dict(), recipe={"tta_flip": True},
                         calibration={"temperature": 1.3})  # fmt: skip
    small.save(tmp_path / "model.pt")
    Image.fromarray(face(3)).save(tmp_path / "crop.png")
    result = ferkit("export", "--model", str(tmp_path / "model.pt"), "--format", "onnx", "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'm.onnx'}") and "temperature 1.300" in result.stdout
    outputs = []
    for model_file in (tmp_path / "model.pt", tmp_path / "m.onnx"):
        run = ferkit("predict", str(tmp_path / "crop.png"), "--model", str(model_file), "--no-detect", "--json")
        assert run.returncode == 0, run.stderr
        outputs.append(json.loads(run.stdout)[0]["faces"][0])
    assert outputs[0]["label"] == outputs[1]["label"]
    np.testing.assert_allclose(
        list(outputs[0]["probabilities"].values()), list(outputs[1]["probabilities"].values()), atol=1e-4
    )
    missing = ferkit("predict", str(tmp_path / "crop.png"), "--model", str(tmp_path / "nope.onnx"))
    assert missing.returncode == 3 and "no such ONNX file" in missing.stderr and "Traceback" not in missing.stderr


def test_predicting_with_an_onnx_file_never_loads_torch(tmp_path):
    """The deployment path starts in well under a second: ONNX Runtime, numpy, Pillow, OpenCV."""
    torch.manual_seed(0)
    network = build_model("plain_cnn", widths=[4, 4, 8, 8])
    export_onnx(TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, network.state_dict()), tmp_path / "m.onnx")
    Image.fromarray(face(5)).save(tmp_path / "crop.png")
    code = (
        "import sys; from ferkit.cli import main; "
        f"rc = main(['predict', {str(tmp_path / 'crop.png')!r}, '--model', {str(tmp_path / 'm.onnx')!r}, '--no-detect']); "
        "sys.exit(97 if 'torch' in sys.modules else rc)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert "crop.png: box (0, 0, 48, 48) ->" in result.stdout


def test_an_int8_export_is_calibrated_on_the_data_and_predicts(tmp_path, fer_zip):
    torch.manual_seed(0)
    network = build_model("plain_cnn", widths=[4, 4, 8, 8])
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, network.state_dict()).save(tmp_path / "model.pt")
    out = tmp_path / "int8.onnx"
    result = ferkit("export", "--model", str(tmp_path / "model.pt"), "-o", str(out), "--int8", "--data", str(fer_zip))
    assert result.returncode == 0, result.stderr
    assert "int8" in result.stdout
    props = {p.key: p.value for p in onnx.load(out).metadata_props}
    assert props["quantized"].startswith("int8") and json.loads(props["emotions"]) == list(EMOTIONS)
    assert any(node.op_type == "QuantizeLinear" for node in onnx.load(out).graph.node)
    faces = np.stack([face(seed) for seed in range(32)])
    int8 = OnnxPredictor(path=out).predict_proba(faces)
    fp32 = Predictor(TrainedModel.load(tmp_path / "model.pt")).predict_proba(faces)
    assert int8.shape == fp32.shape and np.abs(int8 - fp32).max() < 0.05
    # Without data to calibrate on, nothing is written.
    missing = ferkit("export", "--model", str(tmp_path / "model.pt"), "-o", str(tmp_path / "no.onnx"), "--int8",
                     "--data", str(tmp_path / "nowhere.zip"))  # fmt: skip
    assert missing.returncode == 3 and "nowhere.zip" in missing.stderr and not (tmp_path / "no.onnx").exists()
