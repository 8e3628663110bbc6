"""act_hydra.export: the folder LeRobot's ACTPolicy.from_pretrained loads (names, config keys,
normalisation files, refusals). The numeric check against LeRobot itself is in
tests/test_lerobot_interop.py (slow, needs a LeRobot environment)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("safetensors")

from safetensors.torch import load_file  # noqa: E402

from act_hydra.config import ModelConfig  # noqa: E402
from act_hydra.errors import ConfigError  # noqa: E402
from act_hydra.lerobot_export import check_expressible, lerobot_state_dict  # noqa: E402
from act_hydra.model import ACTPolicy  # noqa: E402
from tests.helpers import run_cli, run_train  # noqa: E402

TINY = dict(dim_model=32, n_heads=2, dim_feedforward=64, n_encoder_layers=1, n_decoder_layers=1)
TINY |= dict(n_vae_encoder_layers=1, chunk_size=5, pretrained_backbone=False)

# LeRobot 0.4.4's ACT (1 layer each, state and action 3, chunk 5) names these tensors, besides
# the 100 of model.backbone.* (dumped from ACTPolicy(config).state_dict()).
LAYER = ["linear1", "linear2"]
ATTN = ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]


def _lerobot_names() -> set[str]:
    def layer(prefix, attns, norms):
        names = {f"{prefix}.{a}.{p}" for a in attns for p in ATTN}
        names |= {f"{prefix}.{n}.{p}" for n in LAYER + norms for p in ("weight", "bias")}
        return names

    names = layer("model.encoder.layers.0", ["self_attn"], ["norm1", "norm2"])
    names |= layer("model.vae_encoder.layers.0", ["self_attn"], ["norm1", "norm2"])
    names |= layer(
        "model.decoder.layers.0", ["self_attn", "multihead_attn"], ["norm1", "norm2", "norm3"]
    )
    for module in (
        "action_head", "decoder.norm", "encoder_img_feat_input_proj", "encoder_latent_input_proj",
        "encoder_robot_state_input_proj", "vae_encoder_action_input_proj",
        "vae_encoder_latent_output_proj", "vae_encoder_robot_state_input_proj",
    ):  # fmt: skip
        names |= {f"model.{module}.weight", f"model.{module}.bias"}
    names |= {
        "model.decoder_pos_embed.weight",
        "model.encoder_1d_feature_pos_embed.weight",
        "model.vae_encoder_cls_embed.weight",
        "model.vae_encoder_pos_enc",
    }
    return names


def tiny_policy(**overrides) -> ACTPolicy:
    cfg = ModelConfig(**{**TINY, **overrides})
    stats = {k: np.ones(3, np.float32) for k in ("state_mean", "state_std")}
    stats |= {k: np.ones(3, np.float32) for k in ("action_mean", "action_std")}
    return ACTPolicy(cfg, 3, 3, stats)


def test_every_tensor_gets_lerobots_name():
    tensors = lerobot_state_dict(tiny_policy())
    names = set(tensors)
    assert {n for n in names if not n.startswith("model.backbone.")} == _lerobot_names()
    assert len([n for n in names if n.startswith("model.backbone.")]) == 100
    assert tensors["model.vae_encoder_pos_enc"].shape == (1, 7, 32)
    assert tensors["model.encoder_img_feat_input_proj.weight"].shape == (32, 512, 1, 1)
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in tensors.values())


def test_refuses_settings_lerobot_cannot_express():
    model = {**ModelConfig().__dict__, "feedforward_activation": "swish", "token_dropout": 0.2}
    with pytest.raises(ConfigError) as err:
        check_expressible(model)
    message = str(err.value)
    assert "model.feedforward_activation=swish" in message and "relu, gelu, glu" in message
    assert "model.token_dropout=0.2" in message and "Fix:" in message
    check_expressible({**ModelConfig().__dict__, "pretrained_backbone": False, "name": "x"})


def test_export_cli_writes_what_lerobot_reads(tmp_path):
    assert run_train(tmp_path / "run").returncode == 0
    out = tmp_path / "export"
    result = run_cli("act_hydra.export", [f"checkpoint={tmp_path / 'run'}", f"out={out}"])
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    # Only keys every LeRobot 0.4.0-0.6.x release accepts (its parser refuses unknown ones).
    allowed = {
        "type", "n_obs_steps", "input_features", "output_features", "device", "use_amp",
        "push_to_hub", "repo_id", "private", "tags", "license", "pretrained_path", "chunk_size",
        "n_action_steps", "normalization_mapping", "vision_backbone",
        "pretrained_backbone_weights", "replace_final_stride_with_dilation", "pre_norm",
        "dim_model", "n_heads", "dim_feedforward", "feedforward_activation", "n_encoder_layers",
        "n_decoder_layers", "use_vae", "latent_dim", "n_vae_encoder_layers",
        "temporal_ensemble_coeff", "dropout", "kl_weight", "optimizer_lr",
        "optimizer_weight_decay", "optimizer_lr_backbone",
    }  # fmt: skip
    assert set(config) == allowed
    assert config["type"] == "act" and config["pretrained_backbone_weights"] is None
    assert config["input_features"]["observation.images.top"] == {
        "type": "VISUAL",
        "shape": [3, 32, 32],
    }
    assert config["chunk_size"] == config["n_action_steps"] == 5
    saved = torch.load(tmp_path / "run/checkpoints/best.pt", weights_only=True)
    pre = load_file(out / "policy_preprocessor_step_3_normalizer_processor.safetensors")
    post = load_file(out / "policy_postprocessor_step_0_unnormalizer_processor.safetensors")
    for key, ours in (("observation.state", "state"), ("action", "action")):
        for stat in ("mean", "std"):
            expected = torch.as_tensor(saved["norm_stats"][f"{ours}_{stat}"])
            torch.testing.assert_close(pre[f"{key}.{stat}"], expected.float())
    assert set(post) == {"action.mean", "action.std"}
    torch.testing.assert_close(
        pre["observation.images.top.std"].flatten(), torch.tensor([0.229, 0.224, 0.225])
    )
    steps = json.loads((out / "policy_preprocessor.json").read_text())["steps"]
    assert [s["registry_name"] for s in steps] == [
        "rename_observations_processor",
        "to_batch_processor",
        "device_processor",
        "normalizer_processor",
    ]
    weights = load_file(out / "model.safetensors")
    assert "model.decoder.layers.0.multihead_attn.in_proj_weight" in weights


def test_export_cli_bad_input(tmp_path):
    result = run_cli("act_hydra.export", [f"checkpoint={tmp_path}", f"out={tmp_path / 'x'}"])
    assert result.returncode == 2 and "checkpoint=" in result.stderr
    result = run_cli("act_hydra.export", ["checkpoint=x", "outt=y"])
    assert result.returncode == 2 and "outt" in result.stderr
