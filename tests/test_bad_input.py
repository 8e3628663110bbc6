"""The bad-input catalogue: each case fails before training with a message that names the key
or file, the rule and a fix, exits with code 2, and writes nothing that overwrites a result.

Cases run in-process through `act_hydra.train.execute`, the function the CLI calls, so the
whole catalogue stays in the fast lane; test_bad_input_train_cli.py runs the real CLI.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from act_hydra.data.episodes import write_episode
from act_hydra.errors import EXIT_BAD_INPUT, ActHydraError
from act_hydra.sweep_job import JobContext
from act_hydra.train import execute
from tests.helpers import TINY

RESULT_FILES = ("metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt")


def write_dataset(folder: Path, n: int = 3, length: int = 8, cams=("top",), size=32) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        images = {c: rng.integers(0, 255, (length, size, size, 3), dtype=np.uint8) for c in cams}
        write_episode(
            folder / f"episode_{i}.hdf5",
            rng.normal(size=(length, 14)),
            None,
            rng.normal(size=(length, 14)),
            images,
        )
    return folder


def _dataset_case(make):
    """Overrides for data=aloha_hdf5 pointing at a folder that `make(folder)` prepares."""

    def build(tmp: Path) -> list[str]:
        folder = tmp / "episodes"
        make(folder)
        return ["data=aloha_hdf5", f"data.dataset_dir={folder}"]

    return build


def _non_hdf5(folder):
    write_dataset(folder)
    (folder / "episode_3.hdf5").write_text("this is not an HDF5 file")


def _missing_camera(folder):
    write_dataset(folder, cams=("top",))
    write_episode(
        folder / "episode_3.hdf5",
        np.zeros((8, 14)),
        None,
        np.zeros((8, 14)),
        {"front": np.zeros((8, 32, 32, 3), np.uint8)},
    )


def _mismatched_lengths(folder):
    write_dataset(folder)
    write_episode(
        folder / "episode_3.hdf5",
        np.zeros((8, 14)),
        None,
        np.zeros((7, 14)),
        {"top": np.zeros((8, 32, 32, 3), np.uint8)},
    )


def _inconsistent_dims(folder):
    write_dataset(folder)
    write_episode(
        folder / "episode_3.hdf5",
        np.zeros((8, 6)),
        None,
        np.zeros((8, 6)),
        {"top": np.zeros((8, 32, 32, 3), np.uint8)},
    )


# (id, overrides or a function tmp -> overrides, message fragments)
CATALOGUE = [
    ("lr_zero", ["training.lr=0"], ["training.lr=0.0", "finite number > 0", "Fix: pass"]),
    ("lr_negative", ["training.lr=-1e-4"], ["training.lr=-0.0001"]),
    ("lr_backbone_negative", ["training.lr_backbone=-1"], ["training.lr_backbone=-1.0"]),
    ("batch_zero", ["training.batch_size=0"], ["training.batch_size=0", "must be >= 1"]),
    ("steps_zero", ["training.num_steps=0"], ["training.num_steps=0"]),
    ("chunk_zero", ["model.chunk_size=0"], ["model.chunk_size=0", "at least one action"]),
    ("heads", ["model.dim_model=30"], ["model.dim_model=30", "multiple of model.n_heads"]),
    ("dropout", ["model.dropout=1.5"], ["model.dropout=1.5", "[0, 1)"]),
    ("kl_negative", ["training.kl_weight=-1"], ["training.kl_weight=-1.0"]),
    ("seed_negative", ["training.seed=-3"], ["training.seed=-3"]),
    ("device", ["training.device=tpu"], ["training.device='tpu'"]),
    ("eval_every_zero", ["training.eval_every=0"], ["training.eval_every=0"]),
    (
        "warmup_negative",
        ["scheduler=cosine", "scheduler.warmup_steps=-1"],
        ["scheduler.warmup_steps=-1"],
    ),
    (
        "warmup_too_long",
        ["scheduler=cosine", "scheduler.warmup_steps=4"],
        ["scheduler.warmup_steps=4", "before training.num_steps=4"],
    ),
    (
        "min_lr_negative",
        ["scheduler=cosine", "scheduler.warmup_steps=1", "scheduler.min_lr=-1"],
        ["scheduler.min_lr=-1.0", ">= 0"],
    ),
    (
        "min_lr_above_lr",
        ["scheduler=cosine", "scheduler.warmup_steps=1", "scheduler.min_lr=1"],
        ["scheduler.min_lr=1.0", "must not exceed training.lr"],
    ),
    ("train_ratio", ["data.train_ratio=0"], ["data.train_ratio=0.0"]),
    ("no_camera", ["data.camera_names=[]"], ["data.camera_names=[]"]),
    ("one_episode", ["data.synthetic.num_episodes=1"], ["data.synthetic.num_episodes=1"]),
    ("tiny_images", ["data.synthetic.image_size=8"], ["ResNet downsamples by 32"]),
    (
        "dataset_dir_unset",
        ["data=aloha_hdf5"],
        ["data.dataset_dir=None", "is required for recorded data"],
    ),
    (
        "dataset_dir_missing",
        ["data=aloha_hdf5", "data.dataset_dir=/nonexistent/episodes"],
        ["data.dataset_dir", "/nonexistent/episodes"],
    ),
    ("dataset_dir_empty", _dataset_case(lambda f: f.mkdir()), ["episode_*.hdf5"]),
    ("not_hdf5", _dataset_case(_non_hdf5), ["episode_3.hdf5"]),
    ("missing_camera", _dataset_case(_missing_camera), ["episode_3.hdf5", "top", "front"]),
    ("mismatched_lengths", _dataset_case(_mismatched_lengths), ["episode_3.hdf5"]),
    ("inconsistent_dims", _dataset_case(_inconsistent_dims), ["episode_3.hdf5"]),
    ("single_episode", _dataset_case(lambda f: write_dataset(f, n=1)), ["at least 2"]),
    (
        "wrong_camera_name",
        lambda tmp: [
            "data=aloha_hdf5",
            f"data.dataset_dir={write_dataset(tmp / 'e')}",
            "data.camera_names=[cam_high]",
        ],
        ["cam_high"],
    ),
    (
        "resume_missing_file",
        ["training.resume=/nonexistent/last.pt"],
        ["training.resume='/nonexistent/last.pt'", "no checkpoint file"],
    ),
    (
        "resume_garbage",
        lambda tmp: [f"training.resume={_garbage(tmp)}"],
        ["not a readable act-hydra checkpoint"],
    ),
    ("wandb_online_without_key", ["logger=wandb", "logger.mode=online"], ["WANDB_API_KEY"]),
]


def _garbage(tmp: Path) -> Path:
    path = tmp / "garbage.pt"
    path.write_bytes(b"definitely not a checkpoint")
    return path


def run_in_process(compose_train, run_dir: Path, overrides: list[str]) -> tuple[int, str]:
    """(exit code, message) of what `python -m act_hydra.train` would do; 0 if it trained."""
    dcfg = compose_train([*TINY, *overrides])
    try:
        execute(dcfg, JobContext(run_dir))
    except ActHydraError as err:
        return err.exit_code, str(err)
    return 0, ""


@pytest.mark.parametrize("case_id,overrides,fragments", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_fails_early_with_message(
    compose_train, tmp_path, monkeypatch, caplog, case_id, overrides, fragments
):
    if case_id == "wandb_online_without_key":
        monkeypatch.delenv("WANDB_API_KEY", raising=False)
        monkeypatch.setenv("WANDB_MODE", "online")
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    if callable(overrides):
        overrides = overrides(tmp_path)
    run_dir = tmp_path / "run"
    code, message = run_in_process(compose_train, run_dir, overrides)
    assert code == EXIT_BAD_INPUT
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    assert "Fix" in message or "fix" in message
    for name in RESULT_FILES:
        assert not (run_dir / name).exists(), name


# Closed sets are Enums in the schema: a wrong value fails at composition, listing the legal ones.
CLOSED_SETS = [
    ("model.feedforward_activation=tanh", ["relu", "gelu"]),
    ("model.vision_backbone=vgg16", ["resnet18", "resnet50", "resnet152"]),
    ("training.precision=fp8", ["fp32", "tf32", "bf16", "fp16"]),
    ("logger.mode=sometimes", ["online", "offline", "disabled"]),
    ("scheduler.name=linear", ["none", "cosine"]),
]


@pytest.mark.parametrize("override,legal", CLOSED_SETS, ids=[c[0] for c in CLOSED_SETS])
def test_closed_sets_fail_at_composition_listing_the_legal_values(compose_train, override, legal):
    with pytest.raises(Exception) as info:
        compose_train([*TINY, override])
    message = f"{info.value} {info.value.__cause__}"  # as Hydra's CLI prints it
    assert override.split("=")[1] in message
    for value in legal:
        assert value in message, (value, message)


def test_catalogue_is_large_enough():
    assert len(CATALOGUE) >= 25


def test_unwritable_run_dir(compose_train, tmp_path, caplog):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, message = run_in_process(compose_train, blocker / "run", [])
    assert code == EXIT_BAD_INPUT
    assert "hydra.run.dir=" in message and "must be writable" in message


def test_each_fix_for_missing_imagenet_weights_works_as_written(tmp_path, monkeypatch):
    from act_hydra.backbone import (
        ALLOW_DOWNLOAD_ENV,
        BackboneWeightsError,
        check_imagenet_weights_available,
    )

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV, raising=False)
    with pytest.raises(BackboneWeightsError) as err:
        check_imagenet_weights_available("resnet18")
    message = str(err.value)
    assert "model.pretrained_backbone=false" in message
    # the download switch, as written
    monkeypatch.setenv(ALLOW_DOWNLOAD_ENV, "1")
    check_imagenet_weights_available("resnet18")
    monkeypatch.delenv(ALLOW_DOWNLOAD_ENV)
    # the file at the path the message names, under $TORCH_HOME/hub/checkpoints/
    path = Path(message.split("looks for them at ", 1)[1].split(" ", 1)[0])
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    check_imagenet_weights_available("resnet18")
