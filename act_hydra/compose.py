"""Compose the training config outside a Hydra run (for scripts that take training overrides)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import act_hydra.config  # noqa: F401  (registers the schema and resolvers)
from act_hydra.config import TrainConfig
from act_hydra.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent / "conf"  # package data: a plain install works

# A wrong type, an unknown key or config option, a malformed override, a bad interpolation.
COMPOSITION_ERRORS = (HydraException, OmegaConfBaseException)
COMPOSITION_FIX = (
    "Fix: correct that override (`act-train --cfg job` prints every key and its value, "
    "`act-train --help` the options of each config group)."
)
_NOISE = ("reference_type=", "object_type=", "To append to your config use")


def hydra_error_message(err: BaseException) -> str:
    """What Hydra's CLI prints for ``err`` (its message, then its cause), without the config
    search path, OmegaConf's class names and Hydra's `+key=` hint (the schema refuses new keys
    too), which say nothing about the fix."""
    unparsed = [e for e in (err, err.__cause__) if isinstance(e, OverrideParseException)]
    where = f"Error parsing override '{unparsed[0].override}'" if unparsed else ""
    lines: list[str] = []
    for part in (where, str(err), str(err.__cause__ or "")):
        for line in part.strip().splitlines():
            if line.startswith("Config search path:"):
                break
            if line in lines or line.strip().startswith(_NOISE):
                continue
            lines.append(line)
    return "\n".join(lines).strip()


def composition_error(err: BaseException) -> ConfigError:
    return ConfigError(f"{hydra_error_message(err)}\n{COMPOSITION_FIX}")


def compose_train_config(overrides: list[str], return_hydra_config: bool = False) -> DictConfig:
    """The same config `python -m act_hydra.train <overrides>` would run with; ConfigError
    (exit code 2) with Hydra's message when the overrides do not compose."""
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("train", overrides=overrides, return_hydra_config=return_hydra_config)
    except COMPOSITION_ERRORS as err:
        raise composition_error(err) from err


def to_train_config(cfg: DictConfig) -> TrainConfig:
    """The typed config; ConfigError for a key the schema does not know (``+typo=...``)."""
    from act_hydra.validate import check_known_keys

    check_known_keys(cfg)
    try:
        return OmegaConf.to_object(cfg)
    except COMPOSITION_ERRORS as err:  # a missing mandatory value, an interpolation
        raise composition_error(err) from err
