"""Where the episodes of a run come from: a folder of recordings, or a generated task."""

from __future__ import annotations

from pathlib import Path

from act_hydra.config import DataConfig
from act_hydra.data.episodes import DatasetInfo
from act_hydra.errors import DatasetError


def resolve_dataset_dir(data: DataConfig) -> Path:
    """The folder of episode_*.hdf5 files to train on, generating it first where needed.

    - recorded data: ``data.dataset_dir``, read in place;
    - ``data.synthetic``: the built-in task in the dataset cache (``dataset_dir``: cache root);
    - ``data.sim``: the ALOHA task's scripted episodes in the dataset cache, or ``dataset_dir``
      when it is set (episodes of that task recorded elsewhere, e.g. with act-make-sim-dataset).
    - ``data.lerobot``: a LeRobot dataset folder, converted once into the dataset cache (its
      checks run first, before any conversion).
    """
    if data.lerobot is not None:
        from act_hydra.data.lerobot import ensure_lerobot_dataset

        return ensure_lerobot_dataset(data)
    if data.synthetic is not None:
        from act_hydra.data.synthetic import ensure_synthetic_dataset

        return ensure_synthetic_dataset(data.synthetic, cache_root=data.dataset_dir)
    if data.sim is not None and not data.dataset_dir:
        from act_hydra.data.aloha_sim import ensure_aloha_sim_dataset

        return ensure_aloha_sim_dataset(data.sim)
    return Path(str(data.dataset_dir))


def check_matches_simulator(data: DataConfig, info: DatasetInfo) -> None:
    """Episodes read for an ALOHA task must look like its simulator's camera, or closed-loop
    evaluation would feed the policy images of another size."""
    if data.sim is None or "top" not in info.image_shapes:
        return
    found = info.image_shapes["top"][:2]
    expected = (data.sim.image_height, data.sim.image_width)
    if tuple(found) != expected:
        source = f"data.dataset_dir={data.dataset_dir!r}"
        if data.lerobot is not None:
            source = f"the LeRobot dataset {data.dataset_dir}"
        raise DatasetError(
            f"{source} holds {found[0]}x{found[1]} `top` images, "
            f"but data.sim renders {expected[0]}x{expected[1]}. Rule: the simulator used for "
            "evaluation must render what the policy was trained on. Fix: pass "
            f"data.sim.image_height={found[0]} data.sim.image_width={found[1]}."
        )
