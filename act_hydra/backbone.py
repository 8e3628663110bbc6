"""ResNet image backbone of ACT, and the offline-safe loading of its ImageNet weights.

As in the original (act:detr/models/backbone.py) the ResNet uses FrozenBatchNorm2d: its BN
statistics and affine terms are buffers, so they neither train nor depend on the batch, while the
conv weights do train (at ``training.lr_backbone``). Only the ``layer4`` feature map is kept;
avgpool and fc are dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import torch
from torch import nn

from act_hydra.errors import BadInputError

if TYPE_CHECKING:
    import torchvision

# torchvision is imported where it is used: it costs seconds (it loads torch._dynamo), which a
# run that stops at a config or dataset error should not pay.

# Set to 1 to let torchvision download missing weights. Off by default because a download
# attempt without network can hang for minutes before failing, e.g. on a cluster node.
ALLOW_DOWNLOAD_ENV = "ACT_HYDRA_ALLOW_DOWNLOAD"


class BackboneWeightsError(BadInputError):
    """The ImageNet weights asked for by ``model.pretrained_backbone=true`` are unavailable."""


def imagenet_weights(name: str) -> torchvision.models.WeightsEnum:
    """The torchvision weights the original ACT uses (``pretrained=True`` meant IMAGENET1K_V1)."""
    import torchvision

    return torchvision.models.get_model_weights(str(name)).IMAGENET1K_V1


def weights_cache_path(weights: torchvision.models.WeightsEnum) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` looks for (and would download) the file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _weights_error(name: str, weights, path: Path, reason: str) -> BackboneWeightsError:
    return BackboneWeightsError(
        f"model.pretrained_backbone=true needs torchvision's ImageNet weights for {name} "
        f"({weights}), but {reason}.\n"
        f"torchvision looks for them at {path} ($TORCH_HOME/hub/checkpoints/; TORCH_HOME "
        "defaults to ~/.cache/torch).\nFix it with one of:\n"
        "  - train the backbone from scratch: pass model.pretrained_backbone=false\n"
        f"  - put {path.name} (from {weights.url}) at that path, or export TORCH_HOME=<folder> "
        f"where <folder>/hub/checkpoints/{path.name} exists\n"
        f"  - let torchvision download it (needs network): prefix the command with "
        f"{ALLOW_DOWNLOAD_ENV}=1"
    )


def check_imagenet_weights_available(name: str) -> None:
    """Raise BackboneWeightsError (with the fix) unless the weights are cached or may be
    downloaded: cheap, so training calls it before any dataset work."""
    weights = imagenet_weights(name)
    path = weights_cache_path(weights)
    allow_download = os.environ.get(ALLOW_DOWNLOAD_ENV, "").lower() in ("1", "true", "yes")
    # Check the cache ourselves: torchvision would otherwise start a download.
    if not path.is_file() and not allow_download:
        raise _weights_error(name, weights, path, "the file is not in the cache")


def load_imagenet_state_dict(name: str) -> dict[str, torch.Tensor]:
    """ImageNet state dict of ``name`` from torchvision's cache, never touching the network
    unless ``ACT_HYDRA_ALLOW_DOWNLOAD=1``. Raises BackboneWeightsError with the fix otherwise."""
    check_imagenet_weights_available(name)
    weights = imagenet_weights(name)
    path = weights_cache_path(weights)
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except Exception as exc:  # offline download, truncated file, ...: same fix applies
        raise _weights_error(name, weights, path, f"loading them failed ({exc!r})") from exc


def build_backbone(name: str, pretrained: bool) -> tuple[nn.Module, int]:
    """ResNet up to layer4 with frozen BN. Returns (module, feature channels). The module maps
    (B, 3, H, W) to ``{"feature_map": (B, C, H/32, W/32)}``."""
    import torchvision
    from torchvision.models._utils import IntermediateLayerGetter
    from torchvision.ops.misc import FrozenBatchNorm2d

    name = str(name)  # a config Backbone value; the schema restricts it to torchvision ResNets
    resnet = torchvision.models.get_model(name, weights=None, norm_layer=FrozenBatchNorm2d)
    if pretrained:
        # FrozenBatchNorm2d drops the checkpoint's num_batches_tracked keys, so strict loading
        # still checks every conv weight and BN statistic.
        resnet.load_state_dict(load_imagenet_state_dict(name))
    channels = resnet.fc.in_features
    return IntermediateLayerGetter(resnet, return_layers={"layer4": "feature_map"}), channels
