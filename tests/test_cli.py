"""`ferkit info` on generated data, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.factories import image_tree, write_zip


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ferkit.cli", *args], capture_output=True, text=True, env=env)


def test_info_json_counts(tmp_path):
    path = write_zip(tmp_path / "d.zip", image_tree(2))
    result = run_cli("info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["splits"] == {"train": 14, "val": 14, "test": 14}
    assert summary["classes"]["train"]["disgust"] == 2


def test_info_table(tmp_path):
    result = run_cli("info", str(write_zip(tmp_path / "d.zip", image_tree(1))))
    assert result.returncode == 0 and "21 images" in result.stdout and "train" in result.stdout


def test_missing_data_is_one_clear_line(tmp_path):
    result = run_cli("info", str(tmp_path / "absent.zip"))
    assert result.returncode == 3  # input not found
    assert "Traceback" not in result.stderr
    assert "absent.zip" in result.stderr and "msambare/fer2013" in result.stderr


def test_evaluate_headline_tta_from_the_command_line(tmp_path):
    import torch

    from ferkit.cli.model import TTA_MODES as CLI_TTA_MODES
    from ferkit.models import TrainedModel, build_model
    from ferkit.models.predict import TTA_MODES

    assert CLI_TTA_MODES is TTA_MODES  # one definition, which the CLI reads without torch
    torch.manual_seed(0)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    checkpoint = tmp_path / "model.pt"
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe={"tta_flip": True}).save(checkpoint)
    data = write_zip(tmp_path / "d.zip", image_tree(2))
    result = run_cli(
        "evaluate",
        "--model",
        str(checkpoint),
        "--data",
        str(data),
        "--tta",
        "multi_view",
        "--bootstrap",
        "10",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["accuracy"] == metrics["tta.multi_view.accuracy"]
    bad = run_cli("evaluate", "--model", str(checkpoint), "--data", str(data), "--tta", "twenty_crop")
    assert bad.returncode == 2 and "invalid choice: 'twenty_crop'" in bad.stderr
    none = run_cli("evaluate", "--model", str(checkpoint), "--data", str(data), "--bootstrap", "0")
    assert none.returncode == 2 and "--bootstrap must be at least 1 resample, got 0" in none.stderr
    assert "Traceback" not in none.stderr


def test_evaluate_scores_at_the_recipes_precision_unless_asked(tmp_path):
    import torch

    from ferkit.models import TrainedModel, build_model

    torch.manual_seed(0)
    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    checkpoint = tmp_path / "model.pt"
    recipe = {"tta_flip": True, "precision": "bf16"}  # trained in bf16: scored so by default
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict(), recipe=recipe).save(checkpoint)
    data = write_zip(tmp_path / "d.zip", image_tree(2))
    scored = {}
    for precision in (None, "bf16", "fp32"):
        asked = ["--precision", precision] if precision else []
        result = run_cli(
            "evaluate", "--model", str(checkpoint), "--data", str(data), "--bootstrap", "10", "--json", *asked
        )
        assert result.returncode == 0, result.stderr
        scored[precision] = json.loads(result.stdout)
    assert scored[None]["data"] == str(data)  # the data read, also when it comes from $FER2013_PATH
    assert scored[None]["precision"] == scored["bf16"]["precision"] == "bf16"
    assert scored[None]["metrics"] == scored["bf16"]["metrics"]
    assert scored["fp32"]["precision"] == "fp32"
    assert scored["fp32"]["metrics"]["log_loss"] != scored["bf16"]["metrics"]["log_loss"]  # bf16 rounds
    import os

    from_env = run_cli(
        "evaluate",
        "--model",
        str(checkpoint),
        "--bootstrap",
        "10",
        "--json",
        env={**os.environ, "FER2013_PATH": str(data)},
    )
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["data"] == str(data)
    shown = run_cli(
        "evaluate", "--model", str(checkpoint), "--data", str(data), "--bootstrap", "10", "--precision", "fp32"
    )
    assert shown.returncode == 0 and "TTA flip, fp32)" in shown.stdout
    bad = run_cli("evaluate", "--model", str(checkpoint), "--data", str(data), "--precision", "fp16")
    assert bad.returncode == 2 and "invalid choice: 'fp16'" in bad.stderr and "Traceback" not in bad.stderr


def test_fresh_config_turns_caching_off_and_clears_the_resume_states(tmp_path):
    import os
    from pathlib import Path

    import yaml
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration

    from ferkit.training import TrainConfig

    resume = tmp_path / "resume"
    resume.mkdir()
    out, cpu = tmp_path / "fresh" / "cpu.yaml", Path(__file__).parents[1] / "configs" / "cpu.yaml"
    mine = TrainConfig(**yaml.safe_load(cpu.read_text())["steps"]["train_model"]["parameters"]["config"])
    (resume / f"train-{mine.fingerprint()}-0123abcd.pt").write_bytes(b"state")
    (resume / f"train-{mine.fingerprint()}-4567ef01.pt").write_bytes(b"state, other data")
    (resume / "train-0000000000000000-0123abcd.pt").write_bytes(b"another config's training")
    (resume / "notes.txt").write_text("kept")
    result = run_cli("fresh-config", str(cpu), "-o", str(out), env={**os.environ, "FERKIT_RESUME_DIR": str(resume)})
    assert result.returncode == 0, result.stderr
    assert "2 resume file(s) removed" in result.stdout
    assert sorted(p.name for p in resume.iterdir()) == ["notes.txt", "train-0000000000000000-0123abcd.pt"]
    fresh, original = yaml.safe_load(out.read_text()), yaml.safe_load(cpu.read_text())
    assert fresh.pop("enable_cache") is False and fresh == original
    assert PipelineRunConfiguration(**{**fresh, "enable_cache": False}).enable_cache is False  # ZenML reads it

    (tmp_path / "broken.yaml").write_text("steps: [unclosed")
    bad = run_cli("fresh-config", str(tmp_path / "broken.yaml"), "-o", str(tmp_path / "x.yaml"))
    assert bad.returncode == 2 and "broken.yaml" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x.yaml").exists()
