"""ACT (Action Chunking with Transformers, Zhao et al. 2023): model, loss and policy wrapper.

The architecture follows the original (tonyzhaozh/act, ``detr/models``) with LeRobot's module
layout. Differences from the original, all deliberate:

* The action head reads the output of the **last** decoder layer. The original takes ``[0]`` of
  the stacked intermediate outputs, so only decoder layer 1 is trained (act#10, lerobot#192).
* No ``is_pad_head``: the original computes it but never uses it in the loss.

Tensors inside the transformer are sequence-first, (S, B, D), as in DETR and LeRobot.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from act_hydra.backbone import build_backbone
from act_hydra.config import Activation, ModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NORM_STAT_KEYS = ("state_mean", "state_std", "action_mean", "action_std")
ACTIVATIONS = {Activation.relu: F.relu, Activation.gelu: F.gelu}


# --------------------------------------------------------------------------- positional encodings
def sinusoid_table_1d(num_positions: int, dim: int) -> Tensor:
    """Fixed (num_positions, dim) table: sin on even channels, cos on odd (act:detr_vae.py)."""
    position = np.arange(num_positions)[:, None]
    angle = position / np.power(10000, 2 * (np.arange(dim) // 2) / dim)
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(table).float()


def sine_position_embedding_2d(
    height: int, width: int, dim_model: int, device=None, temperature: float = 10000.0
) -> Tensor:
    """DETR's PositionEmbeddingSine with normalize=True: (height*width, dim_model), row-major.

    Rows and columns are numbered 1..H and 1..W, divided by the last one and scaled to 2π, so the
    encoding spans the same range whatever the image size. The first dim_model/2 channels encode
    y, the rest x; within each half, channels alternate sin/cos.
    """
    n = dim_model // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device) / (height + eps) * scale
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device) / (width + eps) * scale
    dim_t = temperature ** (2 * (torch.arange(n, device=device) // 2) / n)

    def encode(pos: Tensor) -> Tensor:  # (L,) -> (L, n), interleaved sin/cos
        pos = pos[:, None] / dim_t
        return torch.stack((pos[:, 0::2].sin(), pos[:, 1::2].cos()), dim=2).flatten(1)

    pos_y = encode(y)[:, None, :].expand(height, width, n)
    pos_x = encode(x)[None, :, :].expand(height, width, n)
    return torch.cat((pos_y, pos_x), dim=2).reshape(height * width, dim_model)


# --------------------------------------------------------------------------- transformer
class _Layer(nn.Module):
    """Shared residual wiring of the encoder and decoder layers (DETR style).

    Post-norm (the original): x = norm(x + dropout(f(x))). Pre-norm: x = x + dropout(f(norm(x))).
    Positions are added to attention queries and keys only, never to values, in every layer.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.activation = ACTIVATIONS[Activation(cfg.feedforward_activation)]
        self.linear1 = nn.Linear(cfg.dim_model, cfg.dim_feedforward)
        self.linear2 = nn.Linear(cfg.dim_feedforward, cfg.dim_model)
        self.dropout = nn.Dropout(cfg.dropout)  # inside the feedforward block

    def _residual(self, x: Tensor, sublayer, norm: nn.LayerNorm, dropout: nn.Dropout) -> Tensor:
        if self.pre_norm:
            return x + dropout(sublayer(norm(x)))
        return norm(x + dropout(sublayer(x)))

    def _feedforward(self, x: Tensor) -> Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))


def _attention(cfg: ModelConfig) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(cfg.dim_model, cfg.n_heads, dropout=cfg.dropout)


class EncoderLayer(_Layer):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.self_attn = _attention(cfg)
        self.norm1, self.norm2 = nn.LayerNorm(cfg.dim_model), nn.LayerNorm(cfg.dim_model)
        self.dropout1, self.dropout2 = nn.Dropout(cfg.dropout), nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, pos: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        def self_attention(h: Tensor) -> Tensor:
            # need_weights=False lets PyTorch use its fused scaled-dot-product kernel.
            out, _ = self.self_attn(
                h + pos, h + pos, h, key_padding_mask=key_padding_mask, need_weights=False
            )
            return out

        x = self._residual(x, self_attention, self.norm1, self.dropout1)
        return self._residual(x, self._feedforward, self.norm2, self.dropout2)


class DecoderLayer(_Layer):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.self_attn, self.cross_attn = _attention(cfg), _attention(cfg)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(cfg.dim_model) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (nn.Dropout(cfg.dropout) for _ in range(3))

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        def self_attention(h: Tensor) -> Tensor:
            return self.self_attn(h + query_pos, h + query_pos, h, need_weights=False)[0]

        def cross_attention(h: Tensor) -> Tensor:
            out, _ = self.cross_attn(h + query_pos, memory + memory_pos, memory, need_weights=False)
            return out

        x = self._residual(x, self_attention, self.norm1, self.dropout1)
        x = self._residual(x, cross_attention, self.norm2, self.dropout2)
        return self._residual(x, self._feedforward, self.norm3, self.dropout3)


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(num_layers))
        # Post-norm layers already end in a LayerNorm; pre-norm needs one after the stack.
        self.norm = nn.LayerNorm(cfg.dim_model) if cfg.pre_norm else nn.Identity()

    def forward(self, x: Tensor, pos: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, pos, key_padding_mask)
        return self.norm(x)


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        self.norm = nn.LayerNorm(cfg.dim_model)  # DETR keeps the final norm even when post-norm

    def forward(self, x: Tensor, memory: Tensor, query_pos: Tensor, memory_pos: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, query_pos, memory_pos)
        return self.norm(x)  # the LAST layer's output: the original's `[0]` bug is not kept


# --------------------------------------------------------------------------- ACT
class ACT(nn.Module):
    """CVAE whose decoder is the policy: images + state (+ latent z) -> a chunk of k actions.

    ``forward(state, images, actions=None, action_is_pad=None) -> (actions_hat, mu, logvar)``
    with state (B, S), images (B, N_cam, 3, H, W) ImageNet-normalized, actions (B, k, A),
    action_is_pad (B, k) bool (True = padding). All values are normalized.
    """

    def __init__(self, cfg: ModelConfig, state_dim: int, action_dim: int):
        super().__init__()
        d = cfg.dim_model
        if d % 4:  # half the channels per axis, alternating sin/cos within each half
            raise ValueError(f"model.dim_model={d} must be a multiple of 4 (2D sine embedding)")
        self.chunk_size, self.latent_dim, self.use_vae = cfg.chunk_size, cfg.latent_dim, cfg.use_vae

        # CVAE encoder: [CLS], state, k actions -> (mu, logvar). Images are left out, as in the
        # paper ("for faster training"). Default PyTorch init, as in the original.
        if cfg.use_vae:
            self.vae_encoder = Encoder(cfg, cfg.n_vae_encoder_layers)
            self.vae_encoder_cls_embed = nn.Embedding(1, d)
            self.vae_encoder_state_proj = nn.Linear(state_dim, d)
            self.vae_encoder_action_proj = nn.Linear(action_dim, d)
            self.vae_encoder_latent_proj = nn.Linear(d, 2 * cfg.latent_dim)
            # A pure function of the config, so kept out of checkpoints.
            self.register_buffer(
                "vae_encoder_pos_table", sinusoid_table_1d(cfg.chunk_size + 2, d), persistent=False
            )

        # One backbone shared by all cameras (the original's "HARDCODED" backbones[0]). The
        # trainer gives every parameter named "backbone.*" the backbone learning rate.
        self.backbone, backbone_channels = build_backbone(
            cfg.vision_backbone, cfg.pretrained_backbone
        )
        self.input_proj = nn.Conv2d(backbone_channels, d, kernel_size=1)
        self.state_proj = nn.Linear(state_dim, d)
        self.latent_proj = nn.Linear(cfg.latent_dim, d)
        self.pos_1d = nn.Embedding(2, d)  # learned positions of the [latent, state] tokens
        self.encoder = Encoder(cfg, cfg.n_encoder_layers)
        self.decoder = Decoder(cfg)
        self.query_pos = nn.Embedding(cfg.chunk_size, d)  # learned; the decoder input is zeros
        self.action_head = nn.Linear(d, action_dim)

        # DETR's Transformer._reset_parameters: Xavier for the encoder/decoder matrices only.
        for p in [*self.encoder.parameters(), *self.decoder.parameters()]:
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def encode_actions(
        self, state: Tensor, actions: Tensor, action_is_pad: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """CVAE encoder: the [CLS] output -> (mu, logvar), each (B, latent_dim)."""
        batch = state.shape[0]
        tokens = torch.cat(
            [
                self.vae_encoder_cls_embed.weight.expand(batch, 1, -1),
                self.vae_encoder_state_proj(state)[:, None],
                self.vae_encoder_action_proj(actions),
            ],
            dim=1,
        ).transpose(0, 1)  # (k + 2, B, D)
        mask = None
        if action_is_pad is not None:  # [CLS] and state are never masked
            mask = F.pad(action_is_pad.bool(), (2, 0), value=False)
        cls_out = self.vae_encoder(tokens, self.vae_encoder_pos_table[:, None], mask)[0]
        mu, logvar = self.vae_encoder_latent_proj(cls_out).chunk(2, dim=-1)
        return mu, logvar

    def image_tokens(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, 3, H, W) -> tokens (N*h*w, B, D) and their positions (N*h*w, 1, D).

        All cameras go through the backbone as one batch; with frozen BN this equals running them
        one by one. Each camera's tokens get the same 2D table, and the cameras' token lists are
        concatenated (the original concatenates feature maps along width: the same thing).
        """
        batch, n_cam = images.shape[:2]
        frames = images.flatten(0, 1)
        stem = self.backbone["conv1"].weight  # (64, 3, 7, 7): its layout tells NCHW from NHWC
        if not stem.is_contiguous() and stem.is_contiguous(memory_format=torch.channels_last):
            # The trainer converted the convolutions to NHWC on the GPU: match their layout.
            frames = frames.contiguous(memory_format=torch.channels_last)
        features = self.input_proj(self.backbone(frames)["feature_map"])
        _, d, h, w = features.shape
        tokens = features.unflatten(0, (batch, n_cam)).permute(1, 3, 4, 0, 2)  # (N, h, w, B, D)
        pos = sine_position_embedding_2d(h, w, d, device=images.device).to(tokens.dtype)
        return tokens.reshape(n_cam * h * w, batch, d), pos.repeat(n_cam, 1)[:, None]

    def forward(
        self,
        state: Tensor,
        images: Tensor,
        actions: Tensor | None = None,
        action_is_pad: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        batch = state.shape[0]
        mu = logvar = None
        if self.use_vae and actions is not None:
            # Sampled whenever actions are given, in eval mode too: the original's validation
            # loss is computed this way (reference §1.5), so train and val losses compare.
            mu, logvar = self.encode_actions(state, actions, action_is_pad)
            z = mu + (logvar / 2).exp() * torch.randn_like(mu)
        else:
            z = state.new_zeros(batch, self.latent_dim)  # the prior mean: deterministic policy

        img_tokens, img_pos = self.image_tokens(images)
        tokens_1d = torch.stack([self.latent_proj(z), self.state_proj(state)])  # (2, B, D)
        memory_in = torch.cat([tokens_1d.to(img_tokens.dtype), img_tokens])
        memory_pos = torch.cat([self.pos_1d.weight[:, None].to(img_pos.dtype), img_pos])
        memory = self.encoder(memory_in, memory_pos)

        queries = torch.zeros(
            (self.chunk_size, batch, memory.shape[-1]), dtype=memory.dtype, device=memory.device
        )
        out = self.decoder(queries, memory, self.query_pos.weight[:, None], memory_pos)
        return self.action_head(out.transpose(0, 1)), mu, logvar  # (B, k, A)


# --------------------------------------------------------------------------- loss
def act_loss(
    actions_hat: Tensor,
    actions: Tensor,
    action_is_pad: Tensor,
    mu: Tensor | None,
    logvar: Tensor | None,
    kl_weight: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """loss = L1 + kl_weight * KL, as in act:policy.py.

    L1 is the mean of |a - a_hat| * (1 - is_pad) over ALL B*k*A entries: the denominator counts
    padded entries, as in the original (LeRobot divides by the valid entries since its PR #3442),
    so losses compare with original ACT runs. KL(N(mu, sigma) || N(0, 1)) is summed over latent
    dims and averaged over the batch; it is 0 without a VAE. The dict holds detached 0-dim
    tensors: reading them with .item() forces a host sync, so the trainer does it on log steps.
    """
    valid = (~action_is_pad.bool()).unsqueeze(-1)
    l1 = ((actions - actions_hat.float()).abs() * valid).mean()
    if mu is None or logvar is None:
        kl = l1.new_zeros(())
    else:
        mu, logvar = mu.float(), logvar.float()
        kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp())).sum(-1).mean()
    loss = l1 + kl_weight * kl
    return loss, {"l1": l1.detach(), "kl": kl.detach(), "loss": loss.detach()}


def count_trainable_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# --------------------------------------------------------------------------- policy
class ACTPolicy(nn.Module):
    """ACT plus input/output normalization, working on raw dataset tensors.

    The mean/std statistics are buffers, not parameters: they are saved in the state_dict (a
    checkpoint is enough to run the policy) but never trained.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        state_dim: int,
        action_dim: int,
        norm_stats: dict[str, np.ndarray],
    ):
        super().__init__()
        self.model = ACT(cfg, state_dim, action_dim)
        expected = {"state": state_dim, "action": action_dim}
        for key in NORM_STAT_KEYS:
            if key not in norm_stats:
                raise KeyError(f"norm_stats lacks {key!r} (needs {', '.join(NORM_STAT_KEYS)})")
            value = torch.as_tensor(np.asarray(norm_stats[key], dtype=np.float32))
            size = expected[key.split("_")[0]]
            if value.shape != (size,):
                raise ValueError(
                    f"norm_stats[{key!r}] has shape {tuple(value.shape)}, expected ({size},)"
                )
            self.register_buffer(key, value)
        # Constants, so not persistent: checkpoints stay free of them.
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), False)

    def norm_stats(self) -> dict[str, np.ndarray]:
        return {key: getattr(self, key).detach().cpu().numpy().copy() for key in NORM_STAT_KEYS}

    def optim_param_groups(self, lr_backbone: float) -> list[dict]:
        """AdamW groups as in the original: backbone params at lr_backbone, the rest at the
        optimizer's default lr. Names here are "model.backbone.*", not "backbone.*"."""
        backbone = {id(p) for p in self.model.backbone.parameters()}
        params = [p for p in self.parameters() if p.requires_grad]
        return [
            {"params": [p for p in params if id(p) not in backbone]},
            {"params": [p for p in params if id(p) in backbone], "lr": lr_backbone},
        ]

    def normalize_images(self, images: Tensor) -> Tensor:
        """uint8 (B, N, 3, H, W) -> float, ImageNet-normalized, on whatever device they are."""
        if images.dtype != torch.uint8:
            raise TypeError(f"observation.images must be uint8, got {images.dtype}")
        return (images.float() / 255.0 - self.image_mean) / self.image_std

    def forward(self, batch: dict[str, Tensor], kl_weight: float) -> tuple[Tensor, dict]:
        """Training/validation loss on a raw batch: observation.state (B, S) float,
        observation.images (B, N, 3, H, W) uint8, action (B, k, A) float, action_is_pad (B, k)."""
        state = (batch["observation.state"] - self.state_mean) / self.state_std
        actions = (batch["action"] - self.action_mean) / self.action_std
        is_pad = batch["action_is_pad"]
        images = self.normalize_images(batch["observation.images"])
        actions_hat, mu, logvar = self.model(state, images, actions, is_pad)
        return act_loss(actions_hat, actions, is_pad, mu, logvar, kl_weight)

    @torch.no_grad()
    def predict_chunk(self, state: Tensor, images: Tensor) -> Tensor:
        """Raw (un-normalized) action chunk (B, k, A) for raw state (B, S) and uint8 images,
        with z = 0. Runs in eval mode (no dropout) and restores the previous mode afterwards."""
        was_training = self.training
        self.eval()
        try:
            state = (state - self.state_mean) / self.state_std
            actions_hat, _, _ = self.model(state, self.normalize_images(images))
        finally:
            self.train(was_training)
        return actions_hat.float() * self.action_std + self.action_mean
