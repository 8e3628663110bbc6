"""data=lerobot: LeRobot datasets (v3.0, v2.1) converted once into the dataset cache, and the
bad inputs refused before training (act_hydra/data/lerobot*.py)."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("pyarrow")

from act_hydra.config import DataConfig, LeRobotConfig  # noqa: E402
from act_hydra.data import scan_dataset  # noqa: E402
from act_hydra.data.lerobot import ensure_lerobot_dataset  # noqa: E402
from act_hydra.errors import DatasetError  # noqa: E402
from tests.helpers import read_jsonl, run_train  # noqa: E402
from tests.lerobot_fixture import frame_value, state_action, write_lerobot_dataset  # noqa: E402


def convert(tmp_path, root, cameras=("top",), **options):
    data = DataConfig(dataset_dir=str(root), lerobot=LeRobotConfig(**options), camera_names=cameras)
    return ensure_lerobot_dataset(data, cache_root=tmp_path / "cache")


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_converts_rows_and_frames_of_each_episode(tmp_path, version):
    root = write_lerobot_dataset(tmp_path / "ds", version, image_cams=("wrist",))
    out = convert(tmp_path, root, ("top", "wrist"))
    info = scan_dataset(out, ["top", "wrist"])
    assert info.episode_lengths == (12, 10, 8)
    assert info.image_shapes == {"top": (64, 64, 3), "wrist": (64, 64, 3)}
    for e, path in enumerate(info.episode_paths):
        with h5py.File(path) as f:
            assert f.attrs["fps"] == 10 and f.attrs["lerobot_episode_index"] == e
            assert f.attrs["sim"]  # LeRobot's chunks start at the observed frame
            state, action = state_action(e, info.episode_lengths[e], 3)
            np.testing.assert_array_equal(f["observations/qpos"][()], state)
            np.testing.assert_array_equal(f["action"][()], action)
            expected = [frame_value(e, t) for t in range(info.episode_lengths[e])]
            # AV1 is lossy: within a few levels, and far from the neighbouring frames' values.
            top = f["observations/images/top"][:, 32, 32, 0].astype(int)
            assert np.abs(top - expected).max() <= 4
            np.testing.assert_array_equal(f["observations/images/wrist"][:, 0, 0, 0], expected)
    manifest = json.loads((out / "task.json").read_text())
    assert manifest["fps"] == 10 and manifest["codebase_version"] == version
    assert manifest["camera_names"] == ["top", "wrist"]


def test_converted_once_keyed_by_content_and_options(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    out = convert(tmp_path, root)
    stamp = (out / "task.json").stat().st_mtime_ns
    assert convert(tmp_path, root) == out and (out / "task.json").stat().st_mtime_ns == stamp
    copy = shutil.copytree(root, tmp_path / "elsewhere")  # e.g. an OSMO download
    assert convert(tmp_path, copy) == out
    subset = convert(tmp_path, root, episodes=[2, 0])
    assert subset != out
    info = scan_dataset(subset, ["top"])
    assert info.episode_lengths == (8, 12)
    with h5py.File(info.episode_paths[0]) as f:
        assert f.attrs["lerobot_episode_index"] == 2
    (copy / "meta/info.json").write_text((copy / "meta/info.json").read_text() + " ")
    assert convert(tmp_path, copy) != out  # edited content: converted again


def test_train_cli_on_a_lerobot_dataset(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds", lengths=(12, 10, 8, 9))
    result = run_train(tmp_path / "run", "data=lerobot", f"data.dataset_dir={root}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [r for r in read_jsonl(tmp_path / "run/metrics.jsonl") if "train/loss" in r]
    assert rows and np.isfinite(rows[-1]["train/loss"])
    assert (tmp_path / "run/checkpoints/last.pt").is_file()


def test_train_cli_refuses_bad_dataset_before_training(tmp_path):
    (tmp_path / "ds").mkdir()
    result = run_train(tmp_path / "run", "data=lerobot", f"data.dataset_dir={tmp_path / 'ds'}")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "meta/info.json does not exist" in result.stderr
    assert not (tmp_path / "run/checkpoints").exists()


def test_the_dataset_folder_is_required(compose_train):
    from act_hydra.config import TrainConfig
    from act_hydra.errors import ConfigError
    from act_hydra.validate import validate_config

    cfg: TrainConfig = compose_train(["data=lerobot"])
    with pytest.raises(ConfigError, match="data.dataset_dir"):
        validate_config(cfg)


# --------------------------------------------------------------------------- bad input
def refused(tmp_path, root, *needles, **kwargs):
    with pytest.raises(DatasetError) as err:
        convert(tmp_path, root, **kwargs)
    for needle in needles:
        assert needle in str(err.value), str(err.value)
    assert "Rule:" in str(err.value) and "Fix:" in str(err.value)
    assert not list((tmp_path / "cache").glob("lerobot/*/task.json"))  # nothing half written
    return str(err.value)


def test_not_a_lerobot_dataset(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds/episode_0.hdf5").write_bytes(b"")
    refused(tmp_path, tmp_path / "ds", "meta/info.json does not exist", "episode_0.hdf5")


def test_unsupported_codebase_version(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    (root / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    refused(tmp_path, root, "info.json", "'v2.0'", "v2.1 and v3.0", "convert_dataset_v21_to_v30")


def test_missing_state_or_action_key(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    refused(
        tmp_path,
        root,
        "state_key='observation.qpos'",
        "observation.state, action",
        state_key="observation.qpos",
    )
    refused(tmp_path, root, "action_key='actions'", "Fix:", action_key="actions")


def test_missing_camera_names_the_available_ones(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds", image_cams=("wrist",))
    refused(
        tmp_path,
        root,
        "observation.images.front",
        "observation.images.top,observation.images.wrist",
        camera_keys=["observation.images.front"],
    )
    refused(tmp_path, root, "data.camera_names=[front]", "[top,wrist]", cameras=("front",))


def test_missing_episode(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    refused(tmp_path, root, "data.lerobot.episodes=[7]", "0..2", episodes=[7])


@pytest.mark.parametrize("version", ["v3.0", "v2.1"])
def test_video_with_fewer_frames_than_rows(tmp_path, version):
    root = write_lerobot_dataset(tmp_path / "ds", version, video_lengths={1: 9})
    refused(tmp_path, root, "episode 1, observation.images.top", "9 frames", "10 parquet rows")


def test_video_timestamps_disagree_with_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = write_lerobot_dataset(tmp_path / "ds", "v2.1")
    path = root / "data/chunk-000/episode_000001.parquet"
    table = pq.read_table(path)
    stretched = pa.array(table["timestamp"].to_numpy() * 2, pa.float32())
    pq.write_table(table.set_column(2, "timestamp", stretched), path)
    refused(tmp_path, root, "episode_000001.mp4", "row 1", "0.2000 s", "0.1000 s")


def test_undecodable_codec(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    video = next(root.glob("videos/*/chunk-000/file-000.mp4"))
    video.write_bytes(video.read_bytes().replace(b"av01", b"zz01"))  # an unknown sample entry
    refused(tmp_path, root, "file-000.mp4", "could not be decoded", "pip install -U av")


def test_unreadable_rows(tmp_path):
    root = write_lerobot_dataset(tmp_path / "ds")
    (root / "data/chunk-000/file-000.parquet").write_bytes(b"not parquet")
    refused(tmp_path, root, "file-000.parquet", "not a readable parquet file")


def test_data_loader_benchmark_runs(tmp_path):
    from benchmarks.bench_lerobot_data import format_table, main

    out = tmp_path / "bench.json"
    args = ["--episodes", "2", "--length", "8", "--height", "64", "--width", "64"]
    assert main([*args, "--batches", "2", "--workers", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["readers"]) == {"on_the_fly", "cache_disk", "cache_ram"}
    assert all(r["samples_per_s"] > 0 for r in result["readers"].values())
    assert "samples/s" in format_table(result)


def test_aloha_sim_dataset_evaluates_in_its_simulator(tmp_path, compose_train):
    from omegaconf import OmegaConf

    from act_hydra.data import check_matches_simulator, resolve_dataset_dir
    from act_hydra.envs import EnvSpec
    from act_hydra.validate import validate_config

    root = write_lerobot_dataset(tmp_path / "ds")
    overrides = ["data=lerobot_aloha_sim", f"data.dataset_dir={root}", "data.sim.task=insertion"]
    dcfg = compose_train(overrides)
    cfg = OmegaConf.to_object(dcfg)
    validate_config(cfg)
    spec = EnvSpec.from_data_config(OmegaConf.to_container(dcfg.data, resolve=True))
    assert spec.kind == "aloha_sim" and spec.settings["task"] == "insertion"
    info = scan_dataset(resolve_dataset_dir(cfg.data), ["top"])  # the LeRobot data, not scripted
    assert info.episode_lengths == (12, 10, 8)
    with pytest.raises(DatasetError, match="64x64 `top` images"):
        check_matches_simulator(cfg.data, info)  # the simulator renders 480x640
