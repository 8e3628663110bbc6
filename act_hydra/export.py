"""Export a trained policy as a folder LeRobot loads.

    python -m act_hydra.export checkpoint=outputs/2026-11-26/10-00-00 out=exports/cube
    act-export checkpoint=RUN_DIR/checkpoints/last.pt out=DIR image_size=[480,640]

Arguments are Hydra overrides of ExportConfig (act_hydra/config.py), parsed and type-checked
by Hydra's compose API: no output directory or log file is created beside the export. The
files and their format are described in act_hydra/lerobot_export.py. Then, in LeRobot 0.4.x:

    policy = ACTPolicy.from_pretrained(DIR)
    pre, post = make_pre_post_processors(policy.config, pretrained_path=DIR)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from act_hydra.errors import ActHydraError, ConfigError, DatasetError

log = logging.getLogger("act_hydra.export")


def camera_keys(data: dict[str, Any]) -> list[str]:
    """LeRobot feature keys of the policy's cameras: a LeRobot-trained policy keeps its
    dataset's keys, others get ``observation.images.<camera>``."""
    from act_hydra.data.lerobot_format import camera_name

    names = list(data["camera_names"])
    known = (data.get("lerobot") or {}).get("camera_keys") or []
    by_name = {camera_name(k): k for k in known}
    return [by_name.get(n, f"observation.images.{n}") for n in names]


def image_size(data: dict[str, Any], override: list[int] | None) -> tuple[int, int]:
    """(H, W) of the policy's images: given, the simulator's, or read from the dataset."""
    if override is not None:
        if len(override) != 2 or min(override) < 1:
            raise ConfigError(
                f"image_size={override} is invalid. Rule: it is [H, W] in pixels. Fix: e.g. "
                "image_size=[480,640]."
            )
        return int(override[0]), int(override[1])
    if data.get("sim"):
        return int(data["sim"]["image_height"]), int(data["sim"]["image_width"])
    if data.get("synthetic"):
        return (int(data["synthetic"]["image_size"]),) * 2
    camera = data["camera_names"][0]
    try:
        if data.get("lerobot"):
            from act_hydra.data.lerobot_format import camera_name, open_dataset

            ds = open_dataset(data["dataset_dir"])
            return ds.image_hw(next(k for k in ds.camera_keys if camera_name(k) == camera))
        if data.get("dataset_dir"):
            from act_hydra.data import scan_dataset

            h, w, _ = scan_dataset(data["dataset_dir"], [camera]).image_shapes[camera]
            return h, w
    except (DatasetError, StopIteration, TypeError):
        pass
    raise ConfigError(
        "the image size of the policy's cameras is not known: the checkpoint was trained on "
        f"recorded data that is not readable here (data.dataset_dir={data.get('dataset_dir')}). "
        "Rule: LeRobot's config.json declares each camera's [3, H, W]. Fix: pass "
        "image_size=[H,W] (e.g. image_size=[480,640])."
    )


def run_export(checkpoint: str | None, out: str | None, size: list[int] | None) -> list[Path]:
    import torch

    from act_hydra.eval import load_policy, resolve_checkpoint
    from act_hydra.lerobot_export import check_expressible, write_export

    if not out:
        raise ConfigError("out is required but not set. Fix: pass out=<folder to write>.")
    path = resolve_checkpoint(checkpoint)
    policy, config, _ = load_policy(path, torch.device("cpu"))
    check_expressible(config["model"])  # before anything else is read or written
    hw = image_size(config["data"], size)
    keys = camera_keys(config["data"])
    log.info("exporting %s (cameras %s, %dx%d) to %s", path, keys, hw[0], hw[1], out)
    return write_export(Path(out), policy, config["model"], config["training"], keys, hw)


def parse(argv: list[str]):
    """ExportConfig from Hydra overrides, with Hydra's own messages for typos and types."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from act_hydra.compose import COMPOSITION_ERRORS, CONF_DIR, composition_error

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return OmegaConf.to_object(compose("export", overrides=argv))
    except COMPOSITION_ERRORS as err:  # Hydra's override grammar, unknown keys, wrong types
        raise composition_error(err) from err


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="[%(name)s] %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    try:
        cfg = parse(argv)
        files = run_export(cfg.checkpoint, cfg.out, cfg.image_size)
    except ActHydraError as err:
        log.error("%s (exit code %d)", err, err.exit_code)
        return err.exit_code
    for file in files:
        print(file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
