"""Episode files, validation messages, datasets, stats, split and the resumable sampler."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from act_hydra.config import SyntheticTaskConfig
from act_hydra.data import (
    DatasetError,
    EpisodeDataset,
    StepBatchSampler,
    cache_key,
    compute_norm_stats,
    ensure_synthetic_dataset,
    generate_synthetic_dataset,
    scan_dataset,
    split_episodes,
    synthetic,
    write_episode,
)
from act_hydra.data import dataset as dataset_module


def make_episode(T=20, S=14, A=14, cams=("top",), hw=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    qpos = rng.normal(size=(T, S)).astype(np.float32)
    action = rng.normal(size=(T, A)).astype(np.float32)
    images = {c: rng.integers(0, 256, size=(T, *hw, 3), dtype=np.uint8) for c in cams}
    return qpos, np.zeros_like(qpos), action, images


def write_dataset(folder, lengths=(20, 20), cams=("top",), hw=(32, 32), **kw):
    folder.mkdir(parents=True, exist_ok=True)
    episodes = []
    for i, T in enumerate(lengths):
        ep = make_episode(T=T, cams=cams, hw=hw, seed=i, **kw)
        write_episode(folder / f"episode_{i}.hdf5", *ep)
        episodes.append(ep)
    return episodes


# -- write / scan --------------------------------------------------------------------------------
def test_write_scan_round_trip_two_cameras(tmp_path):
    episodes = write_dataset(tmp_path, lengths=(20, 15, 18), cams=("top", "left_wrist"))
    info = scan_dataset(tmp_path, ["top", "left_wrist"])
    assert info.num_episodes == 3
    assert info.episode_lengths == (20, 15, 18)  # lengths may differ across episodes
    assert (info.state_dim, info.action_dim) == (14, 14)
    assert info.image_shapes == {"top": (32, 32, 3), "left_wrist": (32, 32, 3)}
    assert info.sim is True
    with h5py.File(info.episode_paths[1], "r") as f:
        assert bool(f.attrs["sim"]) is True
        img = f["observations/images/left_wrist"]
        assert img.chunks == (1, 32, 32, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img[()], episodes[1][3]["left_wrist"])
        np.testing.assert_array_equal(f["action"][()], episodes[1][2])
        assert f["observations/qvel"].shape == (15, 14)


def test_episodes_sorted_naturally(tmp_path):
    for i in (10, 2, 1):
        write_episode(tmp_path / f"episode_{i}.hdf5", *make_episode(T=3 + i))
    info = scan_dataset(tmp_path, ["top"])
    assert [p.name for p in info.episode_paths] == [
        "episode_1.hdf5",
        "episode_2.hdf5",
        "episode_10.hdf5",
    ]
    assert info.episode_lengths == (4, 5, 13)


def test_error_dataset_dir_missing(tmp_path):
    with pytest.raises(
        DatasetError,
        match=r"data\.dataset_dir=.*nope does not exist.*"
        r"`data\.dataset_dir=/abs/path/to/nope`",
    ):
        scan_dataset(tmp_path / "nope", ["top"])
    with pytest.raises(DatasetError, match=r"data\.dataset_dir is not set"):
        scan_dataset(None, ["top"])


def test_error_dataset_dir_is_a_file(tmp_path):
    (tmp_path / "episode_0.hdf5").write_text("x")
    with pytest.raises(
        DatasetError,
        match=r"is a file, not a folder.*"
        rf"`data\.dataset_dir={tmp_path}`",
    ):
        scan_dataset(tmp_path / "episode_0.hdf5", ["top"])


def test_error_no_episodes(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(
        DatasetError,
        match=r"contains no episode_\*\.hdf5 files "
        r"\(it holds: notes\.txt\)",
    ):
        scan_dataset(tmp_path, ["top"])


def test_error_not_hdf5(tmp_path):
    write_dataset(tmp_path, lengths=(5,))
    (tmp_path / "episode_1.hdf5").write_bytes(b"<html>404</html>")
    with pytest.raises(
        DatasetError,
        match=r"episode_1\.hdf5 in data\.dataset_dir=.* is not an "
        r"HDF5 file",
    ):
        scan_dataset(tmp_path, ["top"])


def test_error_missing_camera_lists_cameras(tmp_path):
    write_dataset(tmp_path, lengths=(5,), cams=("top", "left_wrist"))
    with pytest.raises(
        DatasetError,
        match=r"has no camera 'front' under /observations/images "
        r"\(it has: left_wrist, top\).*"
        r"`data\.camera_names=\[left_wrist,top\]`",
    ):
        scan_dataset(tmp_path, ["top", "front"])


def test_error_mismatched_lengths_within_episode(tmp_path):
    qpos, qvel, action, images = make_episode(T=10)
    write_episode(tmp_path / "episode_0.hdf5", qpos, qvel, action[:9], images)
    with pytest.raises(
        DatasetError,
        match=r"different lengths \(/observations/qpos: 10, "
        r"/action: 9, /observations/images/top: 10\)",
    ):
        scan_dataset(tmp_path, ["top"])


def test_error_inconsistent_dims_across_episodes(tmp_path):
    write_episode(tmp_path / "episode_0.hdf5", *make_episode(T=5))
    write_episode(tmp_path / "episode_1.hdf5", *make_episode(T=5, S=7))
    with pytest.raises(
        DatasetError,
        match=r"episode_1\.hdf5 .* has state_dim 7 .* but "
        r"episode_0\.hdf5 has 14",
    ):
        scan_dataset(tmp_path, ["top"])
    (tmp_path / "episode_1.hdf5").unlink()
    write_episode(tmp_path / "episode_1.hdf5", *make_episode(T=5, A=16))
    with pytest.raises(DatasetError, match=r"has action_dim 16"):
        scan_dataset(tmp_path, ["top"])


def test_error_image_shape_mismatch(tmp_path):
    write_episode(tmp_path / "episode_0.hdf5", *make_episode(T=5))
    write_episode(tmp_path / "episode_1.hdf5", *make_episode(T=5, hw=(24, 32)))
    with pytest.raises(DatasetError, match=r"image size must be the same in every episode"):
        scan_dataset(tmp_path, ["top"])


def test_error_jpeg_compressed_images(tmp_path):
    qpos, qvel, action, _ = make_episode(T=4)
    with h5py.File(tmp_path / "episode_0.hdf5", "w") as f:
        f.attrs["sim"] = False
        f.attrs["compress"] = True
        f.create_dataset("observations/qpos", data=qpos)
        f.create_dataset("action", data=action)
        f.create_dataset("observations/images/top", data=np.zeros((4, 1000), np.uint8))
    with pytest.raises(DatasetError, match=r"JPEG-compressed.*cv2\.imdecode"):
        scan_dataset(tmp_path, ["top"])


def test_error_missing_action(tmp_path):
    with h5py.File(tmp_path / "episode_0.hdf5", "w") as f:
        f.create_dataset("observations/qpos", data=np.zeros((3, 14)))
    with pytest.raises(
        DatasetError,
        match=r"has no /action dataset \(it has: /observations, "
        r"/observations/qpos\)",
    ):
        scan_dataset(tmp_path, ["top"])


# -- dataset items ---------------------------------------------------------------------------------
@pytest.fixture
def tiny(tmp_path):
    episodes = write_dataset(tmp_path / "ds", lengths=(20, 12, 16), cams=("top", "wrist"))
    return scan_dataset(tmp_path / "ds", ["top", "wrist"]), episodes


@pytest.mark.parametrize("preload_max_mib", [1024, 0])
def test_items_and_padding(tiny, preload_max_mib):
    info, episodes = tiny
    ds = EpisodeDataset(
        info, [0, 1], chunk_size=30, camera_names=["wrist", "top"], preload_max_mib=preload_max_mib
    )
    assert ds.preloaded is (preload_max_mib > 0)
    assert len(ds) == 20 + 12  # every (episode, start_ts)
    item = ds[20 + 5]  # episode 1, start_ts 5: 7 real actions, chunk 30 > episode length 12
    qpos, _, action, images = episodes[1]
    assert item["observation.state"].dtype == torch.float32
    np.testing.assert_array_equal(item["observation.state"].numpy(), qpos[5])
    assert item["observation.images"].shape == (2, 3, 32, 32)
    assert item["observation.images"].dtype == torch.uint8
    np.testing.assert_array_equal(
        item["observation.images"][0].numpy(), images["wrist"][5].transpose(2, 0, 1)
    )
    np.testing.assert_array_equal(
        item["observation.images"][1].numpy(), images["top"][5].transpose(2, 0, 1)
    )
    assert item["action"].shape == (30, 14) and item["action"].dtype == torch.float32
    np.testing.assert_array_equal(item["action"][:7].numpy(), action[5:])
    assert torch.all(item["action"][7:] == 0)
    assert item["action_is_pad"].dtype == torch.bool
    assert item["action_is_pad"].tolist() == [False] * 7 + [True] * 23
    last = ds[19]  # last step of episode 0
    assert last["action_is_pad"].sum() == 29
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_real_robot_episodes_read_the_action_chunk_one_step_earlier(tmp_path):
    """As the original (act:utils.py): for an episode whose root.attrs['sim'] is false, the
    chunk starts at max(start_ts - 1, 0); a simulated episode's at start_ts. Per episode."""
    folder = tmp_path / "ds"
    folder.mkdir()
    episodes = [make_episode(T=10, seed=i) for i in range(2)]
    write_episode(folder / "episode_0.hdf5", *episodes[0], sim=True)
    write_episode(folder / "episode_1.hdf5", *episodes[1], sim=False)
    info = scan_dataset(folder, ["top"])
    assert info.episode_sim == (True, False) and info.sim is True
    ds = EpisodeDataset(info, [0, 1], chunk_size=4)
    sim_action, real_action = episodes[0][2], episodes[1][2]
    for ts in range(10):
        sim_item, real_item = ds[ts], ds[10 + ts]
        # The observation is always that of start_ts.
        np.testing.assert_array_equal(real_item["observation.state"].numpy(), episodes[1][0][ts])
        first = max(ts - 1, 0)
        n_real, n_sim = min(4, 10 - first), min(4, 10 - ts)
        np.testing.assert_array_equal(
            real_item["action"][:n_real].numpy(), real_action[first : first + n_real]
        )
        np.testing.assert_array_equal(
            sim_item["action"][:n_sim].numpy(), sim_action[ts : ts + n_sim]
        )
        assert real_item["action_is_pad"].tolist() == [False] * n_real + [True] * (4 - n_real)
        assert sim_item["action_is_pad"].tolist() == [False] * n_sim + [True] * (4 - n_sim)
        assert torch.all(real_item["action"][n_real:] == 0)
    # The last step: the real episode's chunk holds its last two actions, then padding.
    assert ds[19]["action_is_pad"].tolist() == [False, False, True, True]
    np.testing.assert_array_equal(ds[19]["action"][:2].numpy(), real_action[8:10])
    # Step 0 cannot start earlier: both kinds read from action 0.
    np.testing.assert_array_equal(ds[10]["action"].numpy(), real_action[0:4])


def test_disk_handles_opened_once_per_process(tiny, monkeypatch):
    info, _ = tiny
    opened = []
    real_file = h5py.File

    def counting_file(path, *args, **kwargs):
        opened.append(str(path))
        return real_file(path, *args, **kwargs)

    ds = EpisodeDataset(info, [0, 1, 2], chunk_size=5, preload_max_mib=0)
    assert not ds.preloaded
    monkeypatch.setattr(dataset_module.h5py, "File", counting_file)
    for i in list(range(len(ds))) * 2:
        ds[i]
    assert sorted(opened) == sorted(ds.paths)  # one open per file, never per sample
    # A forked worker (another pid) opens its own handles and leaves the parent's alone.
    parent_handles = dict(ds._handles)
    monkeypatch.setattr(dataset_module.os, "getpid", lambda: 424242)
    ds[0], ds[1]
    assert len(opened) == 4 and set(ds._handles) == {*parent_handles, 424242}
    # Pickling (spawned workers) drops handles.
    import pickle

    assert pickle.loads(pickle.dumps(ds))._handles == {}
    # With a cap on open files the least recently used handle is closed, not leaked.
    monkeypatch.undo()
    capped = EpisodeDataset(info, [0, 1, 2], chunk_size=5, preload_max_mib=0, max_open_files=2)
    for i in range(len(capped)):
        capped[i]
    assert capped.open_count == 3 and len(next(iter(capped._handles.values()))) == 2


def test_dataloader_workers_read_from_disk(tiny):
    info, episodes = tiny
    ds = EpisodeDataset(info, [0, 2], chunk_size=4, preload_max_mib=0)
    sampler = StepBatchSampler(len(ds), batch_size=4, seed=3)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=2)
    it = iter(loader)
    for step in range(3):
        batch = next(it)
        expected = sampler.batch(step)
        for j, idx in enumerate(expected):
            np.testing.assert_array_equal(
                batch["observation.images"][j].numpy(), ds[idx]["observation.images"].numpy()
            )
    del it


def test_paper_sized_images_short_episode(tmp_path):
    """480x640 frames in the original layout, episodes shorter than a chunk of 100."""
    for i in range(2):
        qpos = np.full((10, 14), i, np.float32)
        action = np.arange(140, dtype=np.float32).reshape(10, 14) + 1000 * i
        images = {"top": np.full((10, 480, 640, 3), 7 * i, np.uint8)}
        write_episode(tmp_path / f"episode_{i}.hdf5", qpos, qpos * 0, action, images, sim=True)
    info = scan_dataset(tmp_path, ["top"])
    assert info.image_shapes["top"] == (480, 640, 3)
    for mib in (1024, 0):
        ds = EpisodeDataset(info, [1], chunk_size=100, camera_names=["top"], preload_max_mib=mib)
        item = ds[3]
        assert item["observation.images"].shape == (1, 3, 480, 640)
        assert int(item["observation.images"][0, 0, 0, 0]) == 7
        assert item["action"].shape == (100, 14)
        np.testing.assert_array_equal(
            item["action"][:7].numpy(), np.arange(42, 140).reshape(7, 14) + 1000
        )
        assert int((~item["action_is_pad"]).sum()) == 7


def test_preload_threshold(tiny):
    info, _ = tiny
    # 3 episodes x 48 frames x 2 cameras x 32x32x3 bytes = 0.28 MiB
    assert EpisodeDataset(info, [0, 1, 2], 5, preload_max_mib=1).preloaded
    assert not EpisodeDataset(info, [0, 1, 2], 5, preload_max_mib=0.1).preloaded


# -- stats, split, sampler -------------------------------------------------------------------------
def test_norm_stats_and_std_clip(tmp_path):
    for i, T in enumerate((6, 4)):  # different lengths are concatenated
        qpos = np.zeros((T, 3), np.float32)
        qpos[:, 0] = np.arange(T) + 10 * i
        qpos[:, 1] = 5.0  # constant -> std clipped to 1e-2
        qpos[:, 2] = np.linspace(0, 1e-4, T)  # tiny -> clipped too
        action = np.ones((T, 2), np.float32) * [1, 2] + i
        write_episode(
            tmp_path / f"episode_{i}.hdf5",
            qpos,
            None,
            action,
            {"top": np.zeros((T, 8, 8, 3), np.uint8)},
        )
    info = scan_dataset(tmp_path, ["top"])
    stats = compute_norm_stats(info, [0, 1])
    all_q0 = np.concatenate([np.arange(6), np.arange(4) + 10]).astype(np.float64)
    assert set(stats) == {"state_mean", "state_std", "action_mean", "action_std"}
    assert all(v.dtype == np.float32 for v in stats.values())
    np.testing.assert_allclose(stats["state_mean"], [all_q0.mean(), 5.0, 5e-5], rtol=1e-5)
    np.testing.assert_allclose(stats["state_std"], [all_q0.std(ddof=1), 1e-2, 1e-2], rtol=1e-5)
    np.testing.assert_allclose(stats["action_mean"], [1.4, 2.4], rtol=1e-5)
    np.testing.assert_allclose(
        stats["action_std"], [np.std([0] * 6 + [1] * 4, ddof=1)] * 2, rtol=1e-5
    )
    only_first = compute_norm_stats(info, [0])
    np.testing.assert_allclose(only_first["state_mean"][0], 2.5)


def test_split_is_deterministic_and_matches_the_original():
    train, val = split_episodes(50, 0.8, 1)
    assert (train, val) == split_episodes(50, 0.8, 1)
    assert len(train) == 40 and len(val) == 10 and not set(train) & set(val)
    assert sorted(train + val) == list(range(50))
    np.random.seed(1)  # the original: set_seed(1); np.random.permutation(num_episodes)
    perm = np.random.permutation(50)
    assert train == sorted(perm[:40].tolist())
    assert split_episodes(50, 0.8, 2) != (train, val)
    assert split_episodes(2, 0.99, 0)[1] and split_episodes(2, 0.01, 0)[0]  # one on each side
    assert [len(s) for s in split_episodes(3, 0.9, 0)] == [2, 1]


def test_split_errors():
    with pytest.raises(DatasetError, match=r"has 1 episode\(s\).*at least 2"):
        split_episodes(1, 0.8, 1)
    with pytest.raises(DatasetError, match=r"data\.train_ratio=1\.0 must be strictly between"):
        split_episodes(10, 1.0, 1)


def test_step_sampler_resumes_exactly():
    full = StepBatchSampler(num_samples=100, batch_size=8, seed=7)
    it = iter(full)
    batches = [next(it) for _ in range(30)]
    assert all(len(b) == 8 and all(0 <= i < 100 for i in b) for b in batches)
    assert len({tuple(b) for b in batches}) == 30
    for start in (0, 1, 13, 29):
        resumed = iter(StepBatchSampler(100, 8, seed=7, start_step=start))
        assert [next(resumed) for _ in range(30 - start)] == batches[start:]
    other = iter(StepBatchSampler(100, 8, seed=8))
    assert next(other) != batches[0]
    tiny = iter(StepBatchSampler(num_samples=3, batch_size=8, seed=0))  # fewer samples than batch
    assert len(next(tiny)) == 8


def test_step_sampler_ddp_ranks_take_disjoint_slices():
    world = 4
    samplers = [
        StepBatchSampler(1000, 6, seed=1, start_step=5, rank=r, world_size=world)
        for r in range(world)
    ]
    iters = [iter(s) for s in samplers]
    for step in range(5, 10):
        parts = [next(it) for it in iters]
        glob = samplers[0].global_batch(step).tolist()
        assert sum(parts, []) == glob  # the ranks tile one global batch, in rank order
        assert len(glob) == 24
    with pytest.raises(ValueError, match="rank=4"):
        StepBatchSampler(10, 2, seed=0, rank=4, world_size=4)


# -- synthetic dataset cache -----------------------------------------------------------------------
TINY_TASK = SyntheticTaskConfig(num_episodes=3, episode_len=20, image_size=32, seed=0)


def test_generate_synthetic_dataset_round_trip(tmp_path):
    out = tmp_path / "syn"
    facts = generate_synthetic_dataset(TINY_TASK, out)
    info = scan_dataset(out, ["top"])
    assert info.num_episodes == 3 and info.episode_lengths == (20, 20, 20)
    assert info.image_shapes == {"top": (32, 32, 3)} and info.state_dim == info.action_dim == 14
    # 20 steps are too short for the expert (it grasps at step 25): the manifest says so.
    assert facts == {"camera_names": ["top"], "expert_success_rate": 0.0}


def test_ensure_synthetic_dataset_caches_by_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ACT_HYDRA_CACHE", str(tmp_path / "env_root"))
    path = ensure_synthetic_dataset(TINY_TASK)
    assert path == tmp_path / "env_root" / "synthetic" / cache_key(synthetic.settings(TINY_TASK))
    manifest = json.loads((path / "task.json").read_text())
    assert manifest["num_episodes"] == 3 and manifest["image_size"] == 32
    mtime = (path / "episode_0.hdf5").stat().st_mtime_ns
    assert ensure_synthetic_dataset(TINY_TASK) == path  # reused, not regenerated
    assert (path / "episode_0.hdf5").stat().st_mtime_ns == mtime
    other = SyntheticTaskConfig(num_episodes=3, episode_len=20, image_size=32, seed=1)
    assert cache_key(synthetic.settings(other)) != cache_key(synthetic.settings(TINY_TASK))
    explicit = ensure_synthetic_dataset(TINY_TASK, cache_root=tmp_path / "explicit")
    assert explicit.parent == tmp_path / "explicit" / "synthetic"
    assert not [p for p in explicit.parent.iterdir() if p.name.startswith(".")]  # no temp left
    # Same settings -> identical episodes.
    with h5py.File(path / "episode_2.hdf5") as a, h5py.File(explicit / "episode_2.hdf5") as b:
        np.testing.assert_array_equal(
            a["observations/images/top"][()], b["observations/images/top"][()]
        )


def test_ensure_synthetic_dataset_loses_race_gracefully(tmp_path, monkeypatch):
    """Another job renames its copy into place while we generate: we use theirs."""
    final = tmp_path / "synthetic" / cache_key(synthetic.settings(TINY_TASK))
    real_generate = synthetic.generate_synthetic_dataset

    def generate_then_lose(cfg, out_dir):
        real_generate(cfg, final)  # the other job finishes first
        (final / "task.json").write_text("{}")
        return real_generate(cfg, out_dir)

    monkeypatch.setattr(synthetic, "generate_synthetic_dataset", generate_then_lose)
    assert ensure_synthetic_dataset(TINY_TASK, cache_root=tmp_path) == final
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == [final.name]
