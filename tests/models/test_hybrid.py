"""The hybrid model: every backbone and switch, the adapter, weights loading, the Keras layer table."""

from __future__ import annotations

import logging
import os
import urllib.error

import pytest
import torch
from torch import nn

from ferkit.data import EMOTIONS
from ferkit.models import CheckpointError, build_model
from ferkit.models.backbones import (
    WeightsError,
    available_backbones,
    build_backbone,
    keras_resnet50_layers,
    keras_resnet50_range,
)
from ferkit.models.hybrid import CLASS_GROUPS, ChannelAdapter, GroupBranches
from ferkit.models.layers import SpatialAttention, SqueezeExcite, TransformerBlock
from tests.factories import TINY_HYBRID

TINY = TINY_HYBRID
# The torchvision backbones at a small input size keep the test quick; 224 is covered for resnet50.
SIZES = {
    "resnet50": 64,
    "resnet18": 64,
    "efficientnet_b3": 64,
    "mobilenet_v3_small": 64,
    "fer_resnet": 48,
    "fer_vgg": 48,
    "xception": 64,
}


def forward(model: nn.Module, batch: int = 2) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(torch.rand(batch, 1, 48, 48))


class TestForward:
    @pytest.mark.parametrize("backbone", available_backbones())
    def test_every_backbone_gives_seven_logits(self, backbone):
        model = build_model("hybrid", backbone=backbone, input_size=SIZES[backbone], dim=64, hidden=32)
        logits = forward(model)
        assert logits.shape == (2, len(EMOTIONS)) and torch.isfinite(logits).all()
        assert model.forward_features(torch.rand(2, 1, 48, 48)).shape == (2, 64)

    @pytest.mark.parametrize(
        "switch",
        [
            {},
            {"attention": False},
            {"transformer": False},
            {"branches": False},
            {"attention": False, "transformer": False, "branches": False},
        ],
    )
    def test_every_switch_combination(self, switch):
        model = build_model("hybrid", **TINY, **switch)
        assert forward(model, 3).shape == (3, len(EMOTIONS))
        assert isinstance(model.attention, nn.Identity) == (switch.get("attention") is False)
        assert (model.transformer is None) == (switch.get("transformer") is False)
        assert isinstance(model.head, GroupBranches) == switch.get("branches", True)

    def test_switching_parts_off_removes_their_parameters(self):
        full = sum(p.numel() for p in build_model("hybrid", **TINY).parameters())
        bare = build_model("hybrid", **TINY, attention=False, transformer=False)
        assert sum(p.numel() for p in bare.parameters()) < full

    def test_paper_resnet50_at_224_sees_a_7x7_map(self):
        model = build_model("hybrid", backbone="resnet50", input_size=224)
        assert model.transformer.position.shape == (1, 49, 512)
        assert model.transformer.attn.num_heads == 8
        assert forward(model, 1).shape == (1, len(EMOTIONS))


class TestParts:
    def test_adapter_starts_as_grayscale_replication(self):
        x = torch.rand(2, 1, 48, 48)
        out = ChannelAdapter()(x)
        assert out.shape == (2, 3, 48, 48)
        for channel in range(3):
            torch.testing.assert_close(out[:, channel : channel + 1], x)

    def test_adapter_is_learnable(self):
        assert all(p.requires_grad for p in ChannelAdapter().parameters())

    def test_squeeze_excite_gates_channels_only(self):
        layer = SqueezeExcite(32)
        x = torch.rand(2, 32, 6, 6)
        ratio = layer(x) / x  # one gate per channel, constant over space, in (0, 1)
        torch.testing.assert_close(ratio, ratio[..., :1, :1].expand_as(ratio))
        assert (ratio > 0).all() and (ratio < 1).all()

    def test_spatial_attention_gates_positions_only(self):
        layer = SpatialAttention()
        x = torch.rand(2, 16, 6, 6)
        ratio = layer(x) / x  # one gate per position, shared by all channels
        torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))

    def test_transformer_keeps_token_count_and_projects(self):
        block = TransformerBlock(in_channels=64, tokens=36, dim=32, heads=8)
        assert block(torch.rand(2, 64, 6, 6)).shape == (2, 36, 32)
        with pytest.raises(ValueError, match="built for 36 tokens and got a 7x7 map"):
            block(torch.rand(2, 64, 7, 7))  # without its grid the position embedding fixes N

    def test_transformer_with_its_grid_takes_smaller_maps(self):
        block = TransformerBlock(in_channels=64, tokens=36, dim=32, heads=8, grid=(6, 6)).eval()
        assert block(torch.rand(2, 64, 4, 4)).shape == (2, 16, 32)
        torch.testing.assert_close(block._resized_position((6, 6)), block.position)  # the native grid is kept
        resized = block._resized_position((3, 3)).reshape(3, 3, 32)
        grid = block.position.reshape(6, 6, 32)
        # Each new cell lies over a 2x2 block of the learned grid: its value stays within their range.
        assert (resized[0, 0] <= grid[:2, :2].amax(dim=(0, 1)) + 0.05).all()
        with pytest.raises(ValueError, match="grid \\(5, 5\\) has 25 cells for 36 tokens"):
            TransformerBlock(in_channels=64, tokens=36, dim=32, grid=(5, 5))

    def test_hybrid_takes_progressive_resizing_faces(self):
        model = build_model("hybrid", **TINY).eval()
        with torch.no_grad():
            assert model(torch.rand(2, 1, 32, 32)).shape == (2, len(EMOTIONS))
        upscaled = build_model("hybrid", **{**TINY, "input_size": 64}).eval()
        seen = []
        upscaled.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[-1]))
        with torch.no_grad():
            upscaled(torch.rand(1, 1, 48, 48)), upscaled(torch.rand(1, 1, 36, 36))
        assert seen == [64, 48]  # smaller faces reach the trunk scaled by the same factor

    def test_a_forward_pass_logs_no_fx_tracing_warning(self):
        # Asking torch whether FX traces with the deprecated question logs a warning into every
        # training log; the model asks the symbolic-tracing one (int8 quantization: below).
        from torch.fx import _symbolic_trace

        _symbolic_trace.is_fx_tracing_warning.cache_clear()  # torch logs it once a process
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append
        logger = logging.getLogger(_symbolic_trace.__name__)
        logger.addHandler(handler)
        try:
            # input_size 64 takes the hybrid's resize, the transformer block its position check.
            forward(build_model("hybrid", **{**TINY, "input_size": 64}))
        finally:
            logger.removeHandler(handler)
        assert [r.getMessage() for r in records] == []

    def test_branches_write_logits_in_canonical_order(self):
        branches = GroupBranches(dim=4, hidden=4).eval()
        x = torch.rand(3, 4)
        with torch.no_grad():
            out = branches(x)
            for group, branch in zip(CLASS_GROUPS, branches.branches):
                group_logits = branch(x)
                for j, emotion in enumerate(group):
                    torch.testing.assert_close(out[:, EMOTIONS.index(emotion)], group_logits[:, j])

    def test_groups_must_cover_each_emotion_once(self):
        with pytest.raises(ValueError, match="cover each emotion once"):
            GroupBranches(4, 4, groups=(("happy", "sad"),))

    def test_classifier_l2_is_the_squared_weights(self):
        model = build_model("hybrid", **TINY, classifier_l2=1e-4)
        weights = [m.weight for m in model.head.modules() if isinstance(m, nn.Linear)]
        expected = 1e-4 * sum(float(w.detach().pow(2).sum()) for w in weights)
        assert float(model.regularization()) == pytest.approx(expected)


class TestWeights:
    def test_a_state_dict_path_loads_exactly(self, tmp_path):
        import torchvision

        source = torchvision.models.resnet18()
        torch.save(source.state_dict(), tmp_path / "r18.pt")
        trunk = build_backbone("resnet18", str(tmp_path / "r18.pt"))
        torch.testing.assert_close(trunk.features.layer4[1].conv2.weight, source.layer4[1].conv2.weight)

    def test_a_wrong_key_set_names_missing_and_unexpected_keys(self, tmp_path):
        import torchvision

        state = torchvision.models.resnet18().state_dict()
        del state["layer1.0.conv1.weight"]
        state["extra.weight"] = torch.zeros(1)
        torch.save(state, tmp_path / "bad.pt")
        with pytest.raises(
            CheckpointError,
            match=r"1 missing keys \['layer1.0.conv1.weight'\].*"
            r"1 unexpected keys \['extra.weight'\]",
        ):
            build_backbone("resnet18", str(tmp_path / "bad.pt"))

    def test_a_missing_path_is_named(self, tmp_path):
        with pytest.raises(WeightsError, match="nowhere.pt does not exist"):
            build_backbone("resnet18", str(tmp_path / "nowhere.pt"))

    def test_a_file_that_is_not_a_state_dict_is_refused(self, tmp_path):
        (tmp_path / "junk.pt").write_bytes(b"not a torch file")
        with pytest.raises(WeightsError, match="junk.pt: not a loadable state dict"):
            build_backbone("resnet18", str(tmp_path / "junk.pt"))

    def test_imagenet_reads_torchvision_cache(self, tmp_path, monkeypatch):
        import torchvision

        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        enum = torchvision.models.get_model_weights("resnet18").DEFAULT
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        source = torchvision.models.resnet18()
        torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / os.path.basename(enum.url))
        trunk = build_backbone("resnet18", "imagenet")
        torch.testing.assert_close(trunk.features.conv1.weight, source.conv1.weight)

    def test_imagenet_offline_names_the_file_and_the_fix(self, tmp_path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))

        def offline(*args, **kwargs):
            raise urllib.error.URLError("no route to host")

        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
        expected = os.path.join(str(tmp_path), "hub", "checkpoints", "resnet50-11ad3fa6.pth")
        with pytest.raises(WeightsError, match=rf"(?s){expected}.*download.*weights:"):
            build_backbone("resnet50", "imagenet")

    def test_xception_imagenet_reads_timms_file_from_the_hub_cache(self, tmp_path, monkeypatch):
        import timm

        monkeypatch.setenv("TORCH_HOME", str(tmp_path))
        url = timm.models.get_pretrained_cfg("legacy_xception").url
        (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
        source = timm.create_model("legacy_xception")
        torch.save(source.state_dict(), tmp_path / "hub" / "checkpoints" / os.path.basename(url))
        trunk = build_backbone("xception", "imagenet")
        torch.testing.assert_close(trunk.features.conv1.weight, source.conv1.weight)
        torch.testing.assert_close(trunk.features.block12.skip.weight, source.block12.skip.weight)

    def test_xception_loads_a_safetensors_path(self, tmp_path):
        import timm
        from safetensors.torch import save_file

        source = timm.create_model("legacy_xception")
        save_file(source.state_dict(), tmp_path / "xception.safetensors")
        trunk = build_backbone("xception", str(tmp_path / "xception.safetensors"))
        torch.testing.assert_close(trunk.features.conv4.pointwise.weight, source.conv4.pointwise.weight)

    def test_xception_offline_names_the_file_it_looked_for(self, tmp_path, monkeypatch):
        monkeypatch.setenv("TORCH_HOME", str(tmp_path))

        def offline(*args, **kwargs):
            raise urllib.error.URLError("no route to host")

        monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
        expected = os.path.join(str(tmp_path), "hub", "checkpoints", "xception-")
        with pytest.raises(WeightsError, match=rf"(?s)timm legacy_xception.*{expected}[0-9a-f]+\.pth.*weights:"):
            build_backbone("xception", "imagenet")

    def test_xception_is_chollets_network_with_a_3x3_map_of_96px_faces(self):
        trunk = build_backbone("xception")
        assert trunk.channels == 2048
        assert sum(p.numel() for p in trunk.features.parameters()) == pytest.approx(20.8e6, rel=0.01)
        with torch.no_grad():
            assert trunk.features.eval()(torch.rand(1, 3, 96, 96)).shape == (1, 2048, 3, 3)
        model = build_model("hybrid", backbone="xception", input_size=48, dim=32, hidden=16).eval()
        with torch.no_grad():
            assert model(torch.rand(2, 1, 48, 48)).shape == (2, 7)

    @pytest.mark.parametrize("name", ["fer_resnet", "fer_vgg"])
    def test_the_compact_backbones_have_no_imagenet_weights(self, name):
        with pytest.raises(WeightsError, match="no imagenet weights"):
            build_backbone(name, "imagenet")

    def test_a_compact_backbone_loads_its_own_state_dict(self, tmp_path):
        source = build_backbone("fer_vgg", widths=(8, 8, 16, 16))
        torch.save(source.features.state_dict(), tmp_path / "vgg.pt")
        loaded = build_backbone("fer_vgg", str(tmp_path / "vgg.pt"), widths=(8, 8, 16, 16))
        torch.testing.assert_close(loaded.features.block4[1][0].weight, source.features.block4[1][0].weight)

    def test_compact_backbones_keep_a_6x6_map_of_48px_faces(self):
        for name in ("fer_resnet", "fer_vgg"):
            trunk = build_backbone(name)
            with torch.no_grad():
                assert trunk.features.eval()(torch.rand(1, 3, 48, 48)).shape[-2:] == (6, 6)

    def test_unknown_backbone_lists_the_available_ones(self):
        with pytest.raises(ValueError, match="unknown backbone 'vgg99'.*resnet50"):
            build_backbone("vgg99")


class TestKerasTable:
    def test_keras_resnet50_has_175_layers_with_the_known_names(self):
        layers = keras_resnet50_layers()
        assert len(layers) == 175
        assert layers[2] == ("conv1_conv", "conv1")
        assert layers[-1] == ("conv5_block3_out", None)
        assert layers[140] == ("conv4_block6_3_bn", "layer3.5.bn3")
        assert layers[160] == ("conv5_block2_2_relu", None)

    def test_every_torchvision_resnet50_module_with_weights_appears_once(self):
        import torchvision

        model = torchvision.models.resnet50()
        expected = {n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))}
        mapped = [t for _, t in keras_resnet50_layers() if t is not None]
        assert len(mapped) == len(set(mapped)) and set(mapped) == expected

    def test_whole_blocks_are_named_once(self):
        assert keras_resnet50_range(160, 175) == [
            "backbone.layer4.1.conv3",
            "backbone.layer4.1.bn3",
            "backbone.layer4.2",
        ]

    def test_paper_config_phases_follow_the_table(self):
        import yaml

        from ferkit.training import TrainConfig

        raw = yaml.safe_load(open("configs/paper.yaml"))["steps"]["train_model"]["parameters"]["config"]
        phases = TrainConfig(**raw).resolved_phases()
        head = ["adapter", "attention", "transformer", "norm", "head"]
        assert [p.epochs for p in phases] == [30, 15, 15, 20, 20]
        assert [p.lr for p in phases] == [1e-5, 1e-5, 5e-6, 1e-6, 1e-7]
        assert phases[0].trainable == head
        for phase, start in zip(phases[1:4], (160, 140, 100)):
            assert phase.trainable == head + keras_resnet50_range(start, 175)
        assert phases[4].trainable == head[1:]


class TestDeployment:
    def test_a_trained_model_rebuilds_offline_without_its_initial_weights(self, tmp_path, monkeypatch):
        from ferkit.models import TrainedModel

        monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: imagenet would need a download
        monkeypatch.setattr(
            torch.hub,
            "load_state_dict_from_url",
            lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("offline")),
        )
        kwargs = {"backbone": "resnet18", "weights": "imagenet", "input_size": 64, "dim": 32, "hidden": 16}
        net = build_model("hybrid", **{**kwargs, "weights": "none"})
        trained = TrainedModel("hybrid", kwargs, net.state_dict())
        x = torch.rand(2, 1, 48, 48)
        with torch.no_grad():
            torch.testing.assert_close(trained.build()(x), net.eval()(x))

    def test_int8_quantization_traces_the_hybrid_model(self):
        import numpy as np

        from ferkit.models.quantize import quantize_int8

        torch.manual_seed(0)
        model = build_model("hybrid", **TINY).eval()
        images = np.random.default_rng(0).integers(0, 255, size=(64, 48, 48), dtype=np.uint8)
        quantized = quantize_int8(model, images)
        x = torch.from_numpy(images[:16]).unsqueeze(1).float() / 255
        with torch.no_grad():
            reference, approx = model(x).softmax(1), quantized(x).softmax(1)
        assert (reference - approx).abs().max() < 0.1
        assert any("quantized" in type(m).__module__ for m in quantized.modules())
