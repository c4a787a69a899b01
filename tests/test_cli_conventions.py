"""The command line follows conventions: help on every option with its default, `--version`, and one
line with a documented exit code for every user mistake (0 ok, 1 check failed, 2 usage, 3 not found)."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferkit.cli import build_parser
from tests.factories import image_tree, write_zip

ROOT = Path(__file__).resolve().parents[1]


def ferkit(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ferkit.cli", *args], capture_output=True, text=True, env=env, cwd=cwd or ROOT
    )


def one_clear_line(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], lines[0]


def tiny_checkpoint(folder: Path) -> Path:
    """A plain CNN with seeded random weights, saved as a ferkit checkpoint."""
    from ferkit.models import TrainedModel, build_model

    net = build_model("plain_cnn", widths=[4, 4, 8, 8])
    path = folder / "model.pt"
    TrainedModel("plain_cnn", {"widths": (4, 4, 8, 8)}, net.state_dict()).save(path)
    return path


def sub_commands(parser: argparse.ArgumentParser, prefix: str = ""):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix}{name}", sub
                yield from sub_commands(sub, f"{prefix}{name} ")


class TestHelp:
    def test_every_option_of_every_command_has_help(self):
        missing = [
            f"{name} {action.dest}"
            for name, sub in sub_commands(build_parser())
            for action in sub._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) and not action.help
        ]
        assert missing == []

    def test_help_shows_defaults_and_the_exit_codes(self):
        result = ferkit("evaluate", "--help")
        assert result.returncode == 0
        text = " ".join(result.stdout.split())
        assert "(default: 1000)" in text and "(default: test)" in text
        assert "exit codes: 0 ok, 1 a check failed, 2 usage error, 3 input not found or unreadable" in text
        assert "or output unwritable" in text

    def test_version(self):
        result = ferkit("--version")
        assert result.returncode == 0 and result.stdout.strip() == f"ferkit {importlib.metadata.version('ferkit')}"


class TestMistakes:
    def test_a_missing_policy_file(self, tmp_path):
        one_clear_line(
            ferkit("validate", "--policy", str(tmp_path / "missing.yaml")), 3, "missing.yaml", "does not exist"
        )

    def test_a_policy_with_an_unknown_field(self, tmp_path):
        policy = tmp_path / "policy.yaml"
        policy.write_text("fail_on: [schema]\nblank_std: 3\n")
        one_clear_line(ferkit("validate", "--policy", str(policy)), 2, "policy.yaml", "field 'blank_std'")

    def test_a_policy_with_a_wrong_type(self, tmp_path):
        policy = tmp_path / "policy.yaml"
        policy.write_text("proportion_tolerance: lots\n")
        one_clear_line(ferkit("validate", "--policy", str(policy)), 2, "policy.yaml", "field 'proportion_tolerance'")

    def test_a_policy_that_is_not_yaml(self, tmp_path):
        policy = tmp_path / "policy.yaml"
        policy.write_text("fail_on: [schema\n")
        one_clear_line(ferkit("validate", "--policy", str(policy)), 2, "policy.yaml:2", "not valid YAML")

    def test_a_policy_that_is_not_utf8(self, tmp_path):
        policy = tmp_path / "policy.yaml"
        policy.write_bytes(b"fail_on: [\xff\xfe]\n")
        one_clear_line(ferkit("validate", "--policy", str(policy)), 2, "policy.yaml", "not UTF-8", "0xff")

    def test_a_data_path_that_is_a_pipe_is_refused_without_blocking(self, tmp_path):
        for name in ("fer.csv", "fer.zip"):
            os.mkfifo(tmp_path / name)  # opening it to read would wait for a writer for good
            result = subprocess.run([sys.executable, "-m", "ferkit.cli", "info", str(tmp_path / name)],
                                    capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
            one_clear_line(result, 3, name, "neither a file nor a folder")

    def test_a_model_file_cut_short_or_not_a_checkpoint(self, tmp_path):
        import torch

        whole = tiny_checkpoint(tmp_path)
        face = tmp_path / "face.png"
        Image.fromarray(np.full((48, 48), 120, np.uint8)).save(face)
        bad = {"cut.pt": whole.read_bytes()[:3000], "noise.pt": bytes(range(256)) * 40, "text.pt": b"hello\n"}
        for name, content in bad.items():
            (tmp_path / name).write_bytes(content)
            result = ferkit("predict", str(face), "--no-detect", "--model", str(tmp_path / name))
            one_clear_line(result, 2, name, "not a readable ferkit checkpoint")
        assert torch.load(whole, weights_only=True)["architecture"] == "plain_cnn"  # the whole one loads

    def test_an_output_folder_that_is_a_file(self, tmp_path):
        model = tiny_checkpoint(tmp_path)
        face = tmp_path / "face.png"
        Image.fromarray(np.full((48, 48), 120, np.uint8)).save(face)
        taken = tmp_path / "taken"
        taken.write_text("a file, not a folder")
        result = ferkit("predict", str(face), "--no-detect", "--model", str(model), "--annotate", str(taken))
        one_clear_line(result, 3, "taken")
        assert taken.read_text() == "a file, not a folder"

    def test_predicting_an_empty_folder_says_so(self, tmp_path):
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.txt").write_text("no images here")
        result = ferkit("predict", str(tmp_path / "empty"), "--model", str(tiny_checkpoint(tmp_path)))
        one_clear_line(result, 3, "no image or video files in", "empty")

    def test_a_file_name_of_undecodable_bytes_prints_escaped(self, tmp_path):
        """Under a strict UTF-8 stdout (PYTHONIOENCODING=utf-8, an en_US.UTF-8 locale) printing such a
        name raised UnicodeEncodeError after the work was done."""
        model = tiny_checkpoint(tmp_path)
        folder = tmp_path / "faces"
        folder.mkdir()
        Image.fromarray(np.full((48, 48), 120, np.uint8)).save(folder / "good.png")
        with open(os.path.join(os.fsencode(folder), b"bad\xff.png"), "wb") as file:
            file.write(b"not an image")
        env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
        result = ferkit("predict", str(folder), "--no-detect", "--model", str(model), env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert "bad\\udcff.png: cannot read" in result.stdout and "good.png: box" in result.stdout

    def test_a_port_out_of_range_is_a_usage_error(self):
        for port in ("99999", "0", "-1"):
            result = ferkit("serve", "--model", "m.pt", "--port", port)
            assert result.returncode == 2 and "is not a port: 1 to 65535" in result.stderr, result.stderr

    def test_compare_a_missing_spec(self):
        one_clear_line(ferkit("compare", "nonexistent.yaml"), 3, "nonexistent.yaml", "does not exist")

    def test_compare_a_spec_without_its_keys(self, tmp_path):
        spec = tmp_path / "spec.yaml"
        spec.write_text("base: configs/cpu.yaml\n")
        one_clear_line(ferkit("compare", str(spec)), 2, "spec.yaml", "missing")

    def test_train_a_missing_config(self, tmp_path):
        one_clear_line(ferkit("train", "--config", "nope.yaml", "--out", str(tmp_path / "m.pt")), 3, "nope.yaml")

    def test_train_a_config_with_a_bad_field(self, tmp_path):
        config = tmp_path / "c.yaml"
        config.write_text("steps:\n  train_model:\n    parameters:\n      config: {epochs: 0, optimiser: sgd}\n")
        result = ferkit("train", "--config", str(config), "--out", str(tmp_path / "m.pt"))
        one_clear_line(result, 2, "c.yaml", "field 'epochs'", "(and 1 more)")

    def test_train_an_override_that_is_not_json(self, tmp_path):
        result = ferkit("train", "--config", "configs/smoke.yaml", "--out", "m.pt", "--override", "{epochs: 1}")
        one_clear_line(result, 2, "--override is not JSON")

    def test_missing_data(self, tmp_path):
        one_clear_line(ferkit("info", str(tmp_path / "absent.zip")), 3, "absent.zip")

    def test_an_unknown_option_is_a_usage_error(self):
        result = ferkit("info", "--colour")
        assert result.returncode == 2 and "unrecognized arguments: --colour" in result.stderr

    def test_a_malformed_cron_expression(self):
        one_clear_line(ferkit("schedule", "install", "--cron", "61 * * * *"), 2, "minute: 61 is outside 0-59")


class TestPredictFromAnywhere:
    def test_no_store_yet_says_to_train(self, tmp_path):
        """A fresh home (no `make train` yet), run from another folder: the message says what to do."""
        photo = write_zip(tmp_path / "d.zip", image_tree(1))  # any file; the model is resolved first
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLFLOW_", "FERKIT_"))}
        env["FERKIT_HOME"] = str(tmp_path / "fresh-home")
        result = ferkit("predict", str(photo), env=env, cwd=tmp_path)
        one_clear_line(result, 3, "make train")
        assert str(tmp_path / "fresh-home") in result.stderr

    def test_a_store_without_a_champion_says_to_train(self, tmp_path):
        import mlflow

        uri = f"sqlite:///{tmp_path}/mlflow.db"
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # creates an empty store
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        result = ferkit("predict", str(tmp_path / "face.png"), env=env, cwd=tmp_path)
        one_clear_line(result, 3, "has no champion yet", "make train")


@pytest.mark.parametrize("command", ["info", "validate", "evaluate", "predict", "schedule", "compare", "train"])
def test_each_command_answers_help(command):
    assert ferkit(command, "--help").returncode == 0
