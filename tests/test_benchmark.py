"""The benchmark (issue 8) on a tiny config on CPU: every field present and sane."""

from __future__ import annotations

import json
import math

import pytest
import torch

from act_hydra import fast_path
from act_hydra.compose import compose_train_config, to_train_config
from act_hydra.data import EpisodeDataset, compute_norm_stats, scan_dataset
from benchmarks.benchmark import (
    BenchOptions,
    NaiveEpisodeReader,
    _flop_rates,
    compare_losses,
    default_fast_precision,
    format_table,
    main,
    make_episodes,
    parse_args,
    peak_tflops,
    run_benchmark,
)
from tests.helpers import TINY


def _tiny(*extra: str) -> list[str]:
    return [*TINY, "training.num_steps=1000", *extra]


@pytest.fixture(scope="module")
def result():
    # fp32 pinned: on a CPU with native bf16 the fast path would otherwise be bf16.
    return run_benchmark(
        _tiny("training.precision=fp32"), BenchOptions(steps=2, warmup=1, data_batches=2)
    )


def test_result_has_every_field_with_sane_values(result):
    json.dumps(result)  # JSON-able as it is
    assert result["environment"]["device"] == "cpu"

    data = result["data"]
    readers = data["readers"]
    assert {"naive", "project"} <= set(readers)
    for r in readers.values():
        assert r["samples_per_s"] > 0 and r["ms_per_batch"] > 0
        assert r["speedup_vs_naive"] > 0
    assert readers["naive"]["num_workers"] == 1
    assert readers["naive"]["speedup_vs_naive"] == pytest.approx(1.0)
    # The tiny dataset fits in RAM: the preloaded and the open-handle paths both appear.
    assert readers["project"]["preloaded"] and not readers["project_handles"]["preloaded"]

    step = result["step"]
    assert step["flops_per_step"] > 0 and step["trainable_parameters"] > 0
    assert set(step["paths"]) == {"plain", "fast", "fast_loader"}
    for r in step["paths"].values():
        assert r["ms_per_step"] > 0 and r["samples_per_s"] > 0 and r["tflops_per_s"] > 0
        assert r["timed_steps"] == 2 and r["speedup_vs_plain"] > 0
        assert r["mfu"] is None and r["peak_tflops"] is None  # CPU, no --peak-tflops
    for key in ("plain", "fast"):
        assert step["paths"][key]["peak_memory_mib"] > 0
        assert step["paths"][key]["memory_kind"].startswith("CPU peak RSS")
        assert step["paths"][key]["memory_growth_mib"] >= 0
    assert step["paths"]["plain"]["precision"] == "fp32"
    assert step["paths"]["fast"]["precision"] == "fp32"
    # The timed steps alternate between the paths, one block per path and round.
    assert step["rounds"] == 2 and len(step["paths"]["fast"]["speedup_per_round"]) == 2
    assert step["fast_path"]["precision"] == "fp32" and step["fast_path"]["device"] == "cpu"
    assert step["paths"]["fast_loader"]["data_wait_ms_per_step"] >= 0

    check = step["loss_check"]
    assert check["steps"] == 3  # warm-up + timed
    assert len(check["plain"]) == len(check["fast"]) == 3
    assert all(math.isfinite(v) for v in check["plain"] + check["fast"])
    assert check["finite"]
    # On CPU both paths are fp32 eager with the same optimizer: same losses up to rounding.
    assert check["max_rel_diff"] < 1e-5 and check["within_tolerance"]

    table = format_table(result)
    for text in (
        "naive: reopen HDF5 per sample",
        "plain fp32 eager",
        "fast:",
        "per round",
        "loss check",
        "MFU",
        "n/a",
    ):
        assert text in table


def test_mfu_with_a_given_peak(result):
    r = dict(result["step"]["paths"]["fast"])
    _flop_rates(r, result["step"]["flops_per_step"], torch.device("cpu"), 2.0)
    assert r["peak_tflops"] == 2.0 and r["mfu"] == pytest.approx(r["tflops_per_s"] / 2.0)
    assert peak_tflops(torch.device("cpu"), "bf16", None) is None
    assert "%" in format_table(
        {**result, "step": {**result["step"], "paths": {**result["step"]["paths"], "fast": r}}}
    )


def test_fast_precision_follows_the_device(monkeypatch):
    cfg = to_train_config(compose_train_config(_tiny()))
    cpu = torch.device("cpu")
    monkeypatch.setattr(fast_path, "cpu_has_native_bf16", lambda: True)
    assert default_fast_precision(cfg.training, cpu, None) == "bf16"
    monkeypatch.setattr(fast_path, "cpu_has_native_bf16", lambda: False)
    assert default_fast_precision(cfg.training, cpu, None) == "fp32"
    assert default_fast_precision(cfg.training, cpu, "bf16") == "bf16"


def test_loss_comparison():
    same = compare_losses([1.0, 0.5], [1.0, 0.5], "fp32")
    assert same["max_rel_diff"] == 0 and same["within_tolerance"]
    off = compare_losses([1.0, 0.5], [1.0, 0.6], "bf16")
    assert off["max_rel_diff"] == pytest.approx(0.2) and not off["within_tolerance"]
    assert not compare_losses([1.0], [float("nan")], "bf16")["finite"]


def test_naive_reader_reads_the_same_samples(tmp_path):
    make_episodes(tmp_path, 2, 6, height=24, width=32)
    info = scan_dataset(tmp_path, ["top"])
    stats = {k: torch.from_numpy(v) for k, v in compute_norm_stats(info, [0, 1]).items()}
    project = EpisodeDataset(info, [0, 1], chunk_size=4, preload_max_mib=0)
    naive = NaiveEpisodeReader(
        project.paths, project.lengths, ["top"], {k: v.numpy() for k, v in stats.items()}
    )
    assert len(naive) == len(project) == 12
    for index in (0, 5, 7, 11):
        images, qpos, action, is_pad = naive[index]
        item = project[index]
        assert torch.allclose(images, item["observation.images"].float() / 255.0)
        state = (item["observation.state"] - stats["state_mean"]) / stats["state_std"]
        assert torch.allclose(qpos, state)
        n = int((~item["action_is_pad"]).sum())
        assert not is_pad[:n].any()
        expected = (item["action"][:n] - stats["action_mean"]) / stats["action_std"]
        assert torch.allclose(action[:n], expected)
    project.close()


def test_cli_makes_episodes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "--make-episodes",
            str(tmp_path / "eps"),
            "--episodes",
            "2",
            "--length",
            "3",
            "--only",
            "data",
            "--data-batches",
            "2",
            "training.batch_size=2",
            "data.num_workers=0",
            "training.device=cpu",
            "model.chunk_size=2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    info = scan_dataset(tmp_path / "eps", ["top"])
    assert info.image_shapes["top"] == (480, 640, 3) and info.episode_lengths == (3, 3)
    result = json.loads(out.read_text())
    assert result["config"]["image_hw"] == [480, 640]
    assert result["data"]["readers"]["naive"]["samples_per_s"] > 0
    assert "data loader" in capsys.readouterr().out
    # Files of the right shape are reused, not rewritten.
    before = (tmp_path / "eps" / "episode_0.hdf5").stat().st_mtime_ns
    make_episodes(tmp_path / "eps", 2, 3)
    assert (tmp_path / "eps" / "episode_0.hdf5").stat().st_mtime_ns == before


def test_reduced_image_size_and_rounds_options():
    args = parse_args(["--make-episodes", "eps", "--image-size", "240", "320", "--rounds", "3"])
    assert args.image_size == [240, 320] and args.rounds == 3
    assert parse_args([]).image_size == [480, 640]


def test_bad_input_exits_2(capsys):
    assert main(["training.batch_size=0", "training.device=cpu"]) == 2
    assert "training.batch_size" in capsys.readouterr().err
