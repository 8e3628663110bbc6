"""ACT model, loss and policy: parameter counts and behaviour from reference/act.md §1 and §7."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

from act_hydra.backbone import (
    ALLOW_DOWNLOAD_ENV,
    BackboneWeightsError,
    build_backbone,
    imagenet_weights,
    weights_cache_path,
)
from act_hydra.config import ModelConfig
from act_hydra.model import (
    ACT,
    ACTPolicy,
    DecoderLayer,
    EncoderLayer,
    act_loss,
    count_trainable_parameters,
    sine_position_embedding_2d,
    sinusoid_table_1d,
)

SMALL = ModelConfig(
    chunk_size=5,
    dim_model=32,
    n_heads=4,
    dim_feedforward=64,
    n_encoder_layers=2,
    n_decoder_layers=3,
    n_vae_encoder_layers=2,
    latent_dim=8,
    pretrained_backbone=False,
)
S_DIM, A_DIM = 4, 3


def small_inputs(batch=2, n_cam=2, height=64, width=64, cfg=SMALL, seed=0):
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(batch, S_DIM, generator=g)
    images = torch.randn(batch, n_cam, 3, height, width, generator=g)
    actions = torch.randn(batch, cfg.chunk_size, A_DIM, generator=g)
    is_pad = torch.zeros(batch, cfg.chunk_size, dtype=torch.bool)
    is_pad[0, -2:] = True
    return state, images, actions, is_pad


@pytest.fixture
def small_model():
    torch.manual_seed(0)
    return ACT(SMALL, S_DIM, A_DIM)


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, 83_922_574),  # the paper's 7 decoder layers, all of them used
        ({"n_decoder_layers": 1}, 51_613_582),  # LeRobot's default ACT
        ({"n_decoder_layers": 1, "use_vae": False}, 34_232_142),
    ],
)
def test_parameter_count_matches_reference(overrides, expected):
    cfg = replace(ModelConfig(pretrained_backbone=False), **overrides)
    assert count_trainable_parameters(ACT(cfg, 14, 14)) == expected


def test_backbone_has_frozen_bn_and_no_bn_parameters():
    backbone, channels = build_backbone("resnet18", pretrained=False)
    assert channels == 512
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())
    frozen = [n for n, m in backbone.named_modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 20  # every BN of ResNet18 (17 in blocks/stem + 3 downsample)
    params = dict(backbone.named_parameters())
    assert not any(name.startswith(tuple(frozen)) for name in params)
    assert count_trainable_parameters(backbone) == 11_166_912  # convs up to layer4 only
    assert "fc.weight" not in params  # avgpool/fc dropped


def test_backbone_parameters_are_named_backbone(small_model):
    names = [n for n, _ in small_model.named_parameters() if n.startswith("backbone.")]
    assert sum(p.numel() for n, p in small_model.named_parameters() if n in names) == 11_166_912


# --------------------------------------------------------------------------- forward
def test_training_forward_shapes_two_cameras(small_model):
    state, images, actions, is_pad = small_inputs()
    actions_hat, mu, logvar = small_model(state, images, actions, is_pad)
    assert actions_hat.shape == (2, SMALL.chunk_size, A_DIM)
    assert mu.shape == logvar.shape == (2, SMALL.latent_dim)


def test_inference_is_deterministic_with_z_zero(small_model):
    state, images, _, _ = small_inputs()
    small_model.eval()
    out1, mu, logvar = small_model(state, images)
    out2, _, _ = small_model(state, images)
    assert mu is None and logvar is None
    assert torch.equal(out1, out2)


@pytest.mark.parametrize(("n_cam", "height", "width"), [(1, 64, 96), (3, 32, 32), (1, 480, 640)])
def test_any_camera_count_and_image_size(small_model, n_cam, height, width):
    seen = {}
    small_model.encoder.register_forward_pre_hook(lambda m, args: seen.update(n=args[0].shape[0]))
    state, images, _, _ = small_inputs(batch=1, n_cam=n_cam, height=height, width=width)
    with torch.no_grad():
        actions_hat, _, _ = small_model(state, images)
    assert actions_hat.shape == (1, SMALL.chunk_size, A_DIM)
    # [latent, state] + h*w tokens per camera; 480x640 -> 15x20 = 300 (paper Sec. IV-C)
    assert seen["n"] == 2 + n_cam * math.ceil(height / 32) * math.ceil(width / 32)


@pytest.mark.slow
def test_full_size_training_forward_shapes():
    model = ACT(ModelConfig(pretrained_backbone=False), 14, 14)
    state, images = torch.randn(2, 14), torch.randn(2, 1, 3, 480, 640)
    actions, is_pad = torch.randn(2, 100, 14), torch.zeros(2, 100, dtype=torch.bool)
    actions_hat, mu, logvar = model(state, images, actions, is_pad)
    assert actions_hat.shape == (2, 100, 14)
    assert mu.shape == logvar.shape == (2, 32)


def test_every_decoder_layer_gets_gradient(small_model):
    """The original's `[0]` bug left decoder layers 2..n with exactly zero gradient."""
    state, images, actions, is_pad = small_inputs()
    actions_hat, mu, logvar = small_model(state, images, actions, is_pad)
    loss, _ = act_loss(actions_hat, actions, is_pad, mu, logvar, kl_weight=10.0)
    loss.backward()
    for i, layer in enumerate(small_model.decoder.layers):
        grad = sum(p.grad.abs().sum() for p in layer.parameters())
        assert grad > 0, f"decoder layer {i} got no gradient"
    missing = [n for n, p in small_model.named_parameters() if p.grad is None]
    assert not missing, f"parameters outside the graph: {missing}"


def test_padding_mask_hides_padded_actions_from_vae(small_model):
    small_model.eval()  # no dropout; the VAE encoder still runs because actions are given
    state, images, actions, is_pad = small_inputs()
    _, mu, _ = small_model(state, images, actions, is_pad)
    changed = actions.clone()
    changed[is_pad] = 100.0
    _, mu_padded_changed, _ = small_model(state, images, changed, is_pad)
    torch.testing.assert_close(mu_padded_changed, mu, rtol=0, atol=1e-6)
    changed[0, 0] = 100.0  # a valid step does reach mu: the test can see a change
    _, mu_valid_changed, _ = small_model(state, images, changed, is_pad)
    assert not torch.allclose(mu_valid_changed[0], mu[0], atol=1e-3)


def test_no_vae_and_pre_norm_variants():
    torch.manual_seed(0)
    state, images, actions, is_pad = small_inputs()
    no_vae = ACT(replace(SMALL, use_vae=False), S_DIM, A_DIM)
    out, mu, logvar = no_vae(state, images, actions, is_pad)
    assert out.shape == (2, SMALL.chunk_size, A_DIM) and mu is None and logvar is None
    assert not any(n.startswith("vae_encoder") for n, _ in no_vae.named_parameters())

    pre_norm = ACT(replace(SMALL, pre_norm=True), S_DIM, A_DIM)
    assert isinstance(pre_norm.encoder.norm, nn.LayerNorm)
    out, mu, logvar = pre_norm(state, images, actions, is_pad)
    act_loss(out, actions, is_pad, mu, logvar, 10.0)[0].backward()
    assert all(torch.isfinite(p.grad).all() for p in pre_norm.parameters() if p.grad is not None)


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("pre_norm", [False, True])
def test_layers_match_pytorch_transformer_layers_without_positions(pre_norm):
    """With zero positions, the DETR layers are PyTorch's own (post- or pre-norm)."""
    torch.manual_seed(0)
    cfg = replace(SMALL, pre_norm=pre_norm, dropout=0.0)
    d, ff, heads = cfg.dim_model, cfg.dim_feedforward, cfg.n_heads
    x, memory = torch.randn(7, 2, d), torch.randn(9, 2, d)

    ours_enc = EncoderLayer(cfg).eval()
    ref_enc = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, norm_first=pre_norm).eval()
    ref_enc.load_state_dict(ours_enc.state_dict())
    torch.testing.assert_close(ours_enc(x, torch.zeros(1, 1, d)), ref_enc(x))

    ours_dec = DecoderLayer(cfg).eval()
    ref_dec = nn.TransformerDecoderLayer(d, heads, ff, dropout=0.0, norm_first=pre_norm).eval()
    ref_dec.load_state_dict(
        {k.replace("cross_attn", "multihead_attn"): v for k, v in ours_dec.state_dict().items()}
    )
    zeros = torch.zeros(1, 1, d)
    torch.testing.assert_close(ours_dec(x, memory, zeros, zeros), ref_dec(x, memory))


def test_sine_embedding_2d_matches_detr():
    """Reference: DETR's PositionEmbeddingSine(normalize=True) as used by act:detr/models."""
    h, w, d = 3, 5, 32
    n, eps, scale = d // 2, 1e-6, 2 * math.pi
    not_mask = torch.ones(1, h, w)
    y_embed = not_mask.cumsum(1)
    x_embed = not_mask.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(n, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / n)
    pos_x, pos_y = x_embed[..., None] / dim_t, y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    ref = torch.cat((pos_y, pos_x), dim=3)[0].reshape(h * w, d)
    torch.testing.assert_close(sine_position_embedding_2d(h, w, d), ref)


def test_sinusoid_table_1d_matches_original():
    n, d = 7, 16
    angle = np.array([[p / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for p in range(n)])
    angle[:, 0::2], angle[:, 1::2] = np.sin(angle[:, 0::2]), np.cos(angle[:, 1::2])
    torch.testing.assert_close(sinusoid_table_1d(n, d), torch.FloatTensor(angle))


# --------------------------------------------------------------------------- loss
def test_act_loss_hand_computed():
    actions = torch.tensor([[[1.0, -2.0], [3.0, 4.0]], [[0.0, 0.5], [10.0, 10.0]]])
    actions_hat = torch.zeros_like(actions, requires_grad=True)
    is_pad = torch.tensor([[False, True], [False, True]])
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.zeros(2, 2)
    loss, logs = act_loss(actions_hat, actions, is_pad, mu, logvar, kl_weight=10.0)
    # |1| + |-2| + |0| + |0.5| over all 2*2*2 = 8 entries, padded ones included
    torch.testing.assert_close(logs["l1"], torch.tensor(3.5 / 8))
    # KL per sample: -0.5 * (1 + 0 - 1 - 1) = 0.5 and 0; batch mean 0.25
    torch.testing.assert_close(logs["kl"], torch.tensor(0.25))
    torch.testing.assert_close(loss, torch.tensor(3.5 / 8 + 10.0 * 0.25))
    assert loss.requires_grad
    for value in logs.values():
        assert value.dim() == 0 and not value.requires_grad

    _, logs = act_loss(actions_hat, actions, is_pad, torch.zeros(2, 2), logvar, 10.0)
    assert logs["kl"] == 0 and logs["loss"] == logs["l1"]
    _, logs = act_loss(actions_hat, actions, is_pad, None, None, 10.0)
    assert logs["kl"] == 0 and logs["loss"] == logs["l1"]


# --------------------------------------------------------------------------- policy
def make_policy(seed=0):
    rng = np.random.default_rng(seed)
    stats = {
        "state_mean": rng.normal(size=S_DIM),
        "state_std": rng.uniform(0.5, 2, size=S_DIM),
        "action_mean": rng.normal(size=A_DIM) + 50.0,
        "action_std": rng.uniform(0.5, 2, size=A_DIM),
    }
    torch.manual_seed(seed)
    return ACTPolicy(SMALL, S_DIM, A_DIM, stats), stats


def raw_batch(batch=2):
    state, _, actions, is_pad = small_inputs(batch=batch)
    images = torch.randint(0, 256, (batch, 2, 3, 64, 64), dtype=torch.uint8)
    return {
        "observation.state": state,
        "observation.images": images,
        "action": actions,
        "action_is_pad": is_pad,
    }


def test_policy_loss_and_stats_travel_with_state_dict():
    policy, stats = make_policy()
    loss, logs = policy(raw_batch(), kl_weight=10.0)
    assert loss.dim() == 0 and loss.requires_grad and set(logs) == {"l1", "kl", "loss"}
    assert count_trainable_parameters(policy) == count_trainable_parameters(policy.model)

    state_dict = policy.state_dict()
    assert all(key in state_dict for key in stats)
    other, _ = make_policy(seed=1)
    other.load_state_dict(state_dict)
    for key, value in other.norm_stats().items():
        np.testing.assert_allclose(value, stats[key].astype(np.float32))
        assert isinstance(value, np.ndarray)


def test_policy_normalizes_inputs_and_unnormalizes_chunk(monkeypatch):
    policy, stats = make_policy()
    batch = raw_batch()
    seen = {}

    def fake_model(state, images, actions=None, action_is_pad=None):
        seen.update(state=state, images=images, actions=actions, training=policy.model.training)
        return torch.zeros(state.shape[0], SMALL.chunk_size, A_DIM), None, None

    monkeypatch.setattr(policy.model, "forward", fake_model)
    policy.train()
    chunk = policy.predict_chunk(batch["observation.state"], batch["observation.images"])
    # z = 0 inference, no dropout, and the previous mode is restored
    assert seen["actions"] is None and seen["training"] is False and policy.training
    expected_state = (batch["observation.state"] - torch.tensor(stats["state_mean"]).float()) / (
        torch.tensor(stats["state_std"]).float()
    )
    torch.testing.assert_close(seen["state"], expected_state)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    expected_images = (batch["observation.images"].float() / 255 - mean) / std
    torch.testing.assert_close(seen["images"], expected_images)
    # a normalized 0 is the action mean in raw units
    expected_chunk = torch.tensor(stats["action_mean"]).float().expand(2, SMALL.chunk_size, -1)
    torch.testing.assert_close(chunk, expected_chunk)

    with pytest.raises(TypeError, match="uint8"):
        policy.predict_chunk(batch["observation.state"], expected_images)


def test_policy_optim_groups_split_backbone():
    policy, _ = make_policy()
    rest, backbone = policy.optim_param_groups(lr_backbone=1e-5)
    assert backbone["lr"] == 1e-5
    assert sum(p.numel() for p in backbone["params"]) == 11_166_912
    assert len(rest["params"]) + len(backbone["params"]) == len(list(policy.parameters()))


# --------------------------------------------------------------------------- pretrained weights
@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """Empty torch hub, downloads disabled and made to fail loudly if ever attempted."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)

    def no_download(url, *args, **kwargs):
        raise OSError(f"network disabled in tests: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path


def test_missing_backbone_weights_error_names_key_path_and_fix(offline_hub):
    expected_path = offline_hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert weights_cache_path(imagenet_weights("resnet18")) == expected_path
    with pytest.raises(BackboneWeightsError) as info:
        ACT(replace(SMALL, pretrained_backbone=True), S_DIM, A_DIM)
    message = str(info.value)
    assert info.value.exit_code == 2  # bad input
    assert "model.pretrained_backbone=true" in message
    assert str(expected_path) in message
    assert "model.pretrained_backbone=false" in message
    assert "TORCH_HOME" in message and f"{ALLOW_DOWNLOAD_ENV}=1" in message


def test_failed_download_is_reported_as_backbone_weights_error(offline_hub, monkeypatch):
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "1")
    with pytest.raises(BackboneWeightsError, match="network disabled in tests"):
        build_backbone("resnet18", pretrained=True)


def test_cached_backbone_weights_are_loaded(offline_hub):
    """A file in the cache is loaded without any download (a random ResNet18 stands in)."""
    path = weights_cache_path(imagenet_weights("resnet18"))
    path.parent.mkdir(parents=True)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(reference, path)
    backbone, _ = build_backbone("resnet18", pretrained=True)
    loaded = backbone.state_dict()
    for key in ("conv1.weight", "layer4.1.bn2.running_var"):
        torch.testing.assert_close(loaded[key], reference[key])
