"""A trained policy in the files LeRobot's ``ACTPolicy.from_pretrained(DIR)`` loads (0.4.x on).

The folder holds::

    config.json                         ACTConfig in LeRobot's vocabulary ("type": "act")
    model.safetensors                   the weights under LeRobot's parameter names
    policy_preprocessor.json            rename -> to_batch -> device -> normalizer steps
    policy_preprocessor_step_3_normalizer_processor.safetensors     mean/std per input
    policy_postprocessor.json           unnormalizer -> device steps
    policy_postprocessor_step_0_unnormalizer_processor.safetensors  action mean/std

``config.json`` carries only keys every LeRobot release from 0.4.0 to 0.6.x accepts (its
config parser refuses unknown keys; ``use_peft`` and ``pretrained_revision`` are left out and
take their defaults), and ``pretrained_backbone_weights: null`` so loading never downloads the
ImageNet ResNet: the exported weights replace it anyway. act_hydra.model follows LeRobot's
module layout, so the weights map one to one; only some names differ (``PARAM_NAMES``).
Images: this project normalises uint8/255 with ImageNet mean/std, which is LeRobot's MEAN_STD
normalisation of [0, 1] images with those statistics; state and action use the training set's
statistics (std clipped at 0.01, as trained).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from act_hydra import atomic
from act_hydra.config import ModelConfig
from act_hydra.errors import ConfigError
from act_hydra.model import IMAGENET_MEAN, IMAGENET_STD, ACTPolicy, sinusoid_table_1d

PREPROCESSOR = "policy_preprocessor"
POSTPROCESSOR = "policy_postprocessor"
NORMALIZER_FILE = f"{PREPROCESSOR}_step_3_normalizer_processor.safetensors"
UNNORMALIZER_FILE = f"{POSTPROCESSOR}_step_0_unnormalizer_processor.safetensors"
NORM_MAP = {"VISUAL": "MEAN_STD", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}

# Leading names in act_hydra.model.ACT -> LeRobot's ACT; everything else keeps its name.
PARAM_NAMES = {
    "vae_encoder_state_proj.": "vae_encoder_robot_state_input_proj.",
    "vae_encoder_action_proj.": "vae_encoder_action_input_proj.",
    "vae_encoder_latent_proj.": "vae_encoder_latent_output_proj.",
    "input_proj.": "encoder_img_feat_input_proj.",
    "state_proj.": "encoder_robot_state_input_proj.",
    "latent_proj.": "encoder_latent_input_proj.",
    "pos_1d.": "encoder_1d_feature_pos_embed.",
    "query_pos.": "decoder_pos_embed.",
}
_SAME = (
    "vae_encoder.",
    "vae_encoder_cls_embed.",
    "backbone.",
    "encoder.",
    "decoder.",
    "action_head.",
)

# ModelConfig key -> ACTConfig key, for the keys that have a counterpart.
MODEL_KEYS = {
    k: k
    for k in (
        "chunk_size",
        "dim_model",
        "n_heads",
        "dim_feedforward",
        "feedforward_activation",
        "n_encoder_layers",
        "n_decoder_layers",
        "n_vae_encoder_layers",
        "latent_dim",
        "use_vae",
        "dropout",
        "pre_norm",
        "vision_backbone",
    )
}
# Keys that change nothing in the exported network: a label, and where the ResNet's initial
# weights came from (the trained weights are exported either way).
IGNORED_KEYS = ("name", "pretrained_backbone")
LEROBOT_ACTIVATIONS = ("relu", "gelu", "glu")


def check_expressible(model: dict[str, Any]) -> None:
    """Refuse a model LeRobot's ACT cannot express, naming each setting at fault."""
    defaults = dataclasses.asdict(ModelConfig())
    problems = [
        f"model.{k}={model[k]} (LeRobot's ACT has no such setting; only the default "
        f"{defaults.get(k, 'of this project')} is exportable)"
        for k in model
        if k not in MODEL_KEYS and k not in IGNORED_KEYS and model[k] != defaults.get(k)
    ]
    if str(model.get("feedforward_activation")) not in LEROBOT_ACTIVATIONS:
        problems.append(
            f"model.feedforward_activation={model.get('feedforward_activation')} (LeRobot "
            f"supports {', '.join(LEROBOT_ACTIVATIONS)})"
        )
    if not str(model.get("vision_backbone", "")).startswith("resnet"):
        problems.append(f"model.vision_backbone={model.get('vision_backbone')} (LeRobot: resnet*)")
    if problems:
        raise ConfigError(
            "the checkpoint's model cannot be expressed as LeRobot's ACT: "
            + "; ".join(problems)
            + ". Rule: an export must compute the same actions in LeRobot. Fix: train with "
            "those settings at their defaults, or use this project's act-eval instead."
        )


def lerobot_state_dict(policy: ACTPolicy) -> dict[str, torch.Tensor]:
    """The network's tensors under LeRobot's names (``model.`` + its ACT module's names)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in policy.model.state_dict().items():
        new = next((v + name[len(k) :] for k, v in PARAM_NAMES.items() if name.startswith(k)), None)
        if new is None:
            if not name.startswith(_SAME):
                raise ValueError(f"no LeRobot name for parameter {name!r}: extend PARAM_NAMES")
            new = name.replace(".cross_attn.", ".multihead_attn.") if "decoder." in name else name
        out["model." + new] = tensor.detach().to("cpu", torch.float32).contiguous()
    if policy.model.use_vae:
        # LeRobot keeps the CVAE encoder's fixed positions as a saved buffer; ours is computed.
        table = sinusoid_table_1d(policy.model.chunk_size + 2, policy.model.action_head.in_features)
        out["model.vae_encoder_pos_enc"] = table[None].contiguous()
    return out


def features(
    camera_keys: list[str], image_hw: tuple[int, int], state_dim: int, action_dim: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input_features, output_features) in LeRobot's JSON form; images are CHW."""
    inputs: dict[str, Any] = {"observation.state": {"type": "STATE", "shape": [state_dim]}}
    for key in camera_keys:
        inputs[key] = {"type": "VISUAL", "shape": [3, *image_hw]}
    return inputs, {"action": {"type": "ACTION", "shape": [action_dim]}}


def lerobot_config(
    model: dict[str, Any],
    training: dict[str, Any],
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    device: str = "cpu",
) -> dict[str, Any]:
    """config.json: ``type`` first, then every key LeRobot 0.4.0-0.6.x all accept."""
    net = {lerobot_key: model[key] for key, lerobot_key in MODEL_KEYS.items()}
    net["feedforward_activation"] = str(net["feedforward_activation"])
    net["vision_backbone"] = str(net["vision_backbone"])
    return {
        "type": "act",
        "n_obs_steps": 1,
        "input_features": inputs,
        "output_features": outputs,
        "device": device,
        "use_amp": False,
        "push_to_hub": False,
        "repo_id": None,
        "private": None,
        "tags": None,
        "license": None,
        "pretrained_path": None,
        "n_action_steps": int(model["chunk_size"]),  # open-loop chunks, as act-eval runs them
        "normalization_mapping": dict(NORM_MAP),
        "pretrained_backbone_weights": None,
        "replace_final_stride_with_dilation": False,
        **net,
        "temporal_ensemble_coeff": None,
        "kl_weight": float(training["kl_weight"]),
        "optimizer_lr": float(training["lr"]),
        "optimizer_weight_decay": float(training["weight_decay"]),
        "optimizer_lr_backbone": float(training["lr_backbone"]),
    }


def _stats(policy: ACTPolicy, camera_keys: list[str], with_inputs: bool) -> dict[str, torch.Tensor]:
    s = {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in policy.norm_stats().items()}
    out = {"action.mean": s["action_mean"], "action.std": s["action_std"]}
    if with_inputs:
        out |= {"observation.state.mean": s["state_mean"], "observation.state.std": s["state_std"]}
        for key in camera_keys:
            out[f"{key}.mean"] = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
            out[f"{key}.std"] = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return {k: v.contiguous() for k, v in out.items()}


def processors(inputs: dict, outputs: dict, device: str = "cpu") -> tuple[dict, dict]:
    """(policy_preprocessor.json, policy_postprocessor.json) as LeRobot writes them for ACT."""
    normalizer = {"eps": 1e-08, "features": {**inputs, **outputs}, "norm_map": dict(NORM_MAP)}
    device_step = {
        "registry_name": "device_processor",
        "config": {"device": device, "float_dtype": None},
    }
    pre = {
        "name": PREPROCESSOR,
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            device_step,
            {
                "registry_name": "normalizer_processor",
                "config": normalizer,
                "state_file": NORMALIZER_FILE,
            },
        ],
    }
    unnormalizer = {**normalizer, "features": dict(outputs)}
    post = {
        "name": POSTPROCESSOR,
        "steps": [
            {
                "registry_name": "unnormalizer_processor",
                "config": unnormalizer,
                "state_file": UNNORMALIZER_FILE,
            },
            {
                "registry_name": "device_processor",
                "config": {"device": "cpu", "float_dtype": None},
            },
        ],
    }
    return pre, post


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    with atomic.atomic_file(path) as f:
        f.write(save(tensors))


def write_export(
    out: Path,
    policy: ACTPolicy,
    model: dict[str, Any],
    training: dict[str, Any],
    camera_keys: list[str],
    image_hw: tuple[int, int],
) -> list[Path]:
    """Write the folder (each file atomically); returns the files written."""
    check_expressible(model)
    stats = policy.norm_stats()
    inputs, outputs = features(
        camera_keys, image_hw, len(stats["state_mean"]), len(stats["action_mean"])
    )
    out.mkdir(parents=True, exist_ok=True)
    pre, post = processors(inputs, outputs)
    files = {
        "model.safetensors": lerobot_state_dict(policy),
        NORMALIZER_FILE: _stats(policy, camera_keys, with_inputs=True),
        UNNORMALIZER_FILE: _stats(policy, camera_keys, with_inputs=False),
    }
    for name, tensors in files.items():
        _write_safetensors(out / name, tensors)
    documents = {
        "config.json": lerobot_config(model, training, inputs, outputs),
        f"{PREPROCESSOR}.json": pre,
        f"{POSTPROCESSOR}.json": post,
    }
    for name, document in documents.items():
        atomic.write_text(out / name, json.dumps(document, indent=4) + "\n")
    return [out / name for name in (*documents, *files)]
