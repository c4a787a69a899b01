"""`ferkit compare`: one derived fer_training config per backbone."""

from __future__ import annotations

import pytest
import torch
import yaml

from ferkit.cli import main
from ferkit.comparison import comparison_configs
from ferkit.models import build_model
from ferkit.training import TrainConfig


class TestComparisonConfigs:
    def test_every_backbone_of_the_shipped_spec_builds_and_lines_up(self):
        configs = comparison_configs("configs/compare_backbones.yaml")
        assert set(configs) == {
            "fer_vgg",
            "fer_resnet",
            "resnet18",
            "mobilenet_v3_small",
            "efficientnet_b3",
            "resnet50",
        }
        for name, config in configs.items():
            train = TrainConfig(**config["steps"]["train_model"]["parameters"]["config"])
            assert train.architecture_kwargs["backbone"] == name
            assert all(p.epochs <= 10 for p in train.resolved_phases())
            assert config["settings"]["experiment_tracker"]["experiment_name"] == "fer_backbones"
            assert config["settings"]["experiment_tracker"]["tags"]["backbone"] == name
            assert config["steps"]["register_model"]["parameters"]["registered_model_name"] == "fer_emotion_backbones"
            model = build_model(train.architecture, **{**train.architecture_kwargs, "dim": 32}).eval()
            with torch.no_grad():
                assert model(torch.rand(1, 1, 48, 48)).shape == (1, 7)
        assert (
            "backbone_options"
            in configs["fer_vgg"]["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]
        )
        assert (
            "backbone_options"
            not in configs["resnet18"]["steps"]["train_model"]["parameters"]["config"]["architecture_kwargs"]
        )

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

    def test_dry_run_prints_each_config_and_runs_nothing(self, capsys):
        assert main(["compare", "configs/compare_backbones.yaml", "--only", "resnet18", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "== resnet18" in out and "backbone: resnet18" in out and "fer_resnet" not in out
