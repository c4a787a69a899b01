"""`ferkit compare`: one derived fer_training config per backbone."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from PIL import Image

from ferkit.cli import main
from ferkit.comparison import comparison_configs, format_table, write_report
from ferkit.models import build_model
from ferkit.models.views import TTA_MODES
from ferkit.training import TrainConfig

ROWS = {
    "resnet50",
    "efficientnet_b3",
    "xception",
    "mobilenet_v3_small",
    "resnet18",
    "fer_vgg",
    "fer_resnet",
    "plain_cnn",
}


class TestComparisonConfigs:
    @pytest.mark.parametrize("spec", ["configs/compare_backbones.yaml", "configs/compare_backbones_gpu.yaml"])
    def test_every_row_of_the_shipped_specs_builds_and_lines_up(self, spec):
        configs = comparison_configs(spec)
        assert set(configs) == ROWS
        fingerprints = set()
        for name, config in configs.items():
            train = TrainConfig(**config["steps"]["train_model"]["parameters"]["config"])
            kwargs = train.architecture_kwargs
            assert (train.architecture, kwargs.get("backbone", name)) == (
                "hybrid" if name != "plain_cnn" else "plain_cnn",
                name,
            )
            assert all(p.epochs <= (2 if spec.endswith("backbones.yaml") else 30) for p in train.resolved_phases())
            assert train.validate_every == 1
            tracker = config["settings"]["experiment_tracker"]
            assert tracker["experiment_name"] == "fer_backbones" and tracker["tags"]["backbone"] == name
            fingerprints.add(tracker["tags"]["comparison.config"])
            assert config["steps"]["register_model"]["parameters"]["registered_model_name"] == "fer_emotion_backbones"
            evaluate = config["steps"]["evaluate_model"]["parameters"]
            assert evaluate["tta"] == "flip"
            # The CPU spec skips the slow many-view modes; the GPU spec reports every mode (docs/model.md).
            assert evaluate["tta_modes"] == (["none", "flip"] if spec.endswith("backbones.yaml") else list(TTA_MODES))
            if name == "plain_cnn":
                model = build_model(train.architecture, **kwargs).eval()
            else:
                assert kwargs["input_size"] == (48 if spec.endswith("backbones.yaml") else 224)
                model = build_model(train.architecture, **{**kwargs, "dim": 32, "input_size": 64}).eval()
            with torch.no_grad():
                assert model(torch.rand(1, 1, 48, 48)).shape == (1, 7)
        assert len(fingerprints) == len(configs)  # each row's runs are told apart by their config
        cpu = configs["fer_vgg"]["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]
        assert "backbone_options" in cpu
        other = configs["resnet18"]["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]
        assert "backbone_options" not in other

    def test_a_changed_spec_changes_the_rows_fingerprint(self, tmp_path):
        spec = yaml.safe_load(open("configs/compare_backbones.yaml"))
        (tmp_path / "a.yaml").write_text(yaml.safe_dump(spec))
        spec["epochs"] = 3
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(spec))
        tag = lambda path: comparison_configs(path)["xception"]["settings"]["experiment_tracker"]["tags"]  # noqa: E731
        assert tag(tmp_path / "a.yaml")["comparison.config"] != tag(tmp_path / "b.yaml")["comparison.config"]

    def test_unknown_spec_keys_and_bad_baselines_are_named(self, tmp_path):
        spec = yaml.safe_load(open("configs/compare_backbones.yaml"))
        (tmp_path / "typo.yaml").write_text(yaml.safe_dump({**spec, "epoch": 3}))
        with pytest.raises(ValueError, match=r"typo.yaml: unknown keys \['epoch'\]"):
            comparison_configs(tmp_path / "typo.yaml")
        (tmp_path / "base.yaml").write_text(yaml.safe_dump({**spec, "baselines": {"cnn": {"widths": [8]}}}))
        with pytest.raises(ValueError, match="baseline 'cnn' needs an `architecture`"):
            comparison_configs(tmp_path / "base.yaml")
        (tmp_path / "twice.yaml").write_text(
            yaml.safe_dump({**spec, "baselines": {"fer_vgg": {"architecture": "plain_cnn"}}})
        )
        with pytest.raises(ValueError, match="'fer_vgg' is both a backbone and a baseline"):
            comparison_configs(tmp_path / "twice.yaml")

    def test_a_spec_without_its_required_keys_is_named(self, tmp_path):
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump({"base": "configs/cpu.yaml", "backbones": {}}))
        with pytest.raises(ValueError, match=r"spec.yaml: missing \['experiment_name', 'registered_model_name'\]"):
            comparison_configs(tmp_path / "spec.yaml")

    def test_a_base_without_the_hybrid_model_is_refused(self, tmp_path):
        spec = {
            "base": "configs/smoke.yaml",
            "backbones": {"resnet18": {}},
            "experiment_name": "x",
            "registered_model_name": "y",
        }
        (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
        with pytest.raises(ValueError, match="smoke.yaml: the comparison swaps the hybrid model's backbone"):
            comparison_configs(tmp_path / "spec.yaml")

    def test_unknown_only_names_are_reported(self, capsys):
        assert main(["compare", "configs/compare_backbones.yaml", "--only", "vgg16", "--dry-run"]) == 2
        assert "['vgg16'] not in configs/compare_backbones.yaml" in capsys.readouterr().err

    def test_a_speed_sample_of_no_faces_is_refused_before_anything_runs(self, capsys):
        assert main(["compare", "configs/compare_backbones.yaml", "--speed-faces", "0"]) == 2
        assert "--speed-faces must be at least 1, got 0" in capsys.readouterr().err

    def test_dry_run_prints_each_config_and_runs_nothing(self, capsys):
        assert main(["compare", "configs/compare_backbones.yaml", "--only", "resnet18", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "== resnet18" in out and "backbone: resnet18" in out and "fer_resnet" not in out


class TestReport:
    ROWS = [
        {"row": "fer_vgg", "architecture": "hybrid", "parameters_m": 1.42, "accuracy": 0.61, "balanced_accuracy": 0.55,
         "macro_f1": 0.56, "log_loss": 1.02, "recall_fear": 0.31, "recall_disgust": 0.52, "val_macro_f1": 0.55,
         "train_images_per_second": 88.0, "train_minutes": 11.5, "inference_faces_per_second": 400.0},
        {"row": "plain_cnn", "architecture": "plain_cnn", "parameters_m": 1.2, "accuracy": 0.58,
         "balanced_accuracy": 0.5, "macro_f1": None, "log_loss": 1.1, "recall_fear": 0.2, "recall_disgust": 0.4,
         "val_macro_f1": 0.5, "train_images_per_second": 300.0, "train_minutes": 3.0,
         "inference_faces_per_second": 2000.0},
    ]  # fmt: skip

    def test_the_table_shows_percentages_and_dashes_for_missing_figures(self):
        text = format_table(self.ROWS).splitlines()
        assert text[0].split()[:3] == ["backbone", "params", "M"]
        assert text[1].split()[:5] == ["fer_vgg", "1.42", "61.00", "55.00", "56.00"]
        assert text[2].split()[:5] == ["plain_cnn", "1.20", "58.00", "50.00", "-"]
        markdown = format_table(self.ROWS, markdown=True).splitlines()
        assert markdown[1].startswith("|---|---:") and markdown[2].startswith("| fer_vgg | 1.42 | 61.00 |")

    def test_the_report_writes_the_table_its_json_and_the_chart(self, tmp_path):
        spec = yaml.safe_load(open("configs/compare_backbones.yaml"))
        paths = write_report(self.ROWS, spec, tmp_path / "out", {"date": "2026-11-30", "epochs": 2})
        assert "date: 2026-11-30, epochs: 2" in paths["md"].read_text()
        assert "published hybrid_resnet50: balanced accuracy 58.87" in paths["md"].read_text()
        saved = json.loads(paths["json"].read_text())
        assert [r["row"] for r in saved["rows"]] == ["fer_vgg", "plain_cnn"]
        assert saved["published"]["baseline_cnn"]["balanced_accuracy"] == 45.20
        assert Image.open(paths["png"]).size[0] >= 800

    def test_without_speeds_the_table_is_written_and_the_chart_left_out(self, tmp_path):
        rows = [{**self.ROWS[0], "inference_faces_per_second": None}]
        paths = write_report(rows, {}, tmp_path, {})
        assert set(paths) == {"md", "json"} and not (tmp_path / "comparison.png").exists()
        assert "no chart: no row has both" in paths["md"].read_text()
