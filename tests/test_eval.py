"""Closed-loop evaluation: ensemble weights, the eval CLI end to end, rollouts during training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from act_hydra.rollout import ensemble_weights
from tests.helpers import read_jsonl, run_cli, run_train


def test_temporal_ensemble_weights_favour_the_oldest_prediction():
    np.testing.assert_allclose(ensemble_weights(2), [0.50250, 0.49750], atol=1e-5)
    w = ensemble_weights(5)
    assert w.sum() == pytest.approx(1.0) and all(np.diff(w) < 0)


@pytest.fixture(scope="module")
def trained_with_rollouts(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    proc = run_train(run_dir, "training.eval_rollouts_every=2", "training.eval_rollouts_episodes=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_training_logs_the_success_rate(trained_with_rollouts):
    rows = [
        r for r in read_jsonl(trained_with_rollouts / "metrics.jsonl") if "eval/success_rate" in r
    ]
    assert [r["step"] for r in rows] == [1, 3]
    for r in rows:
        assert 0.0 <= r["eval/success_rate"] <= 1.0
        assert r["eval/num_episodes"] == 3


@pytest.mark.parametrize("ensemble", ["false", "true"])
def test_eval_cli_writes_results_and_videos(trained_with_rollouts, tmp_path, ensemble):
    out = tmp_path / "eval"
    proc = run_cli(
        "act_hydra.eval",
        [
            f"checkpoint={trained_with_rollouts}",
            "eval.num_episodes=3",
            "eval.num_videos=2",
            f"eval.temporal_ensemble={ensemble}",
            f"hydra.run.dir={out}",
        ],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "success_rate: " in proc.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_episodes"] == 3 and len(results["episodes_success"]) == 3
    assert results["temporal_ensemble"] == (ensemble == "true")
    assert results["success_rate"] == pytest.approx(np.mean(results["episodes_success"]))
    assert len(results["videos"]) == 2
    for name in results["videos"]:
        assert (out / name).stat().st_size > 0


def test_eval_rejects_a_missing_checkpoint(tmp_path):
    proc = run_cli(
        "act_hydra.eval",
        [f"checkpoint={tmp_path / 'nothing'}", f"hydra.run.dir={tmp_path / 'out'}"],
    )
    assert proc.returncode == 2
    assert "neither a checkpoint file nor a run directory" in proc.stderr


def test_rollouts_need_the_synthetic_task(compose_train):
    from omegaconf import OmegaConf

    from act_hydra.validate import collect_problems

    cfg = OmegaConf.to_object(
        compose_train(["data=aloha_hdf5", "data.dataset_dir=/d", "training.eval_rollouts_every=10"])
    )
    assert any("closed-loop evaluation needs a simulator" in p for p in collect_problems(cfg))


def test_eval_refuses_a_policy_trained_on_recorded_data(tmp_path):
    from act_hydra.data.episodes import write_episode

    rng = np.random.default_rng(0)
    (tmp_path / "rec").mkdir()
    for i in range(3):
        write_episode(
            tmp_path / "rec" / f"episode_{i}.hdf5",
            rng.normal(size=(8, 14)),
            None,
            rng.normal(size=(8, 14)),
            {"top": rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)},
            sim=False,
        )
    assert (
        run_train(
            tmp_path / "run", "data=aloha_hdf5", f"data.dataset_dir={tmp_path / 'rec'}"
        ).returncode
        == 0
    )
    proc = run_cli(
        "act_hydra.eval", [f"checkpoint={tmp_path / 'run'}", f"hydra.run.dir={tmp_path / 'out'}"]
    )
    assert proc.returncode == 2
    assert "trained on recorded data" in proc.stderr and "no simulator" in proc.stderr
    assert not (tmp_path / "out" / "eval_results.json").exists()
