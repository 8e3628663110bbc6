"""Against the real LeRobot (scripts/check_lerobot_interop.py): a dataset written by LeRobot's
own writer trains here, and an exported policy predicts the same chunk in LeRobot.

Runs when ACT_HYDRA_LEROBOT_PYTHON names an interpreter with lerobot installed (the script's
--create-env makes one), e.g.

    ACT_HYDRA_LEROBOT_PYTHON=/work/lerobot-venv/bin/python .venv/bin/python -m pytest -m slow \
        tests/test_lerobot_interop.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

LEROBOT_PYTHON = os.environ.get("ACT_HYDRA_LEROBOT_PYTHON")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not LEROBOT_PYTHON,
        reason="set ACT_HYDRA_LEROBOT_PYTHON to an interpreter with lerobot installed "
        "(scripts/check_lerobot_interop.py --create-env DIR makes one)",
    ),
]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("lerobot_interop")
    script = ROOT / "scripts" / "check_lerobot_interop.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--lerobot-python", str(LEROBOT_PYTHON), "--work", str(work)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.stdout.strip(), proc.stderr[-4000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


def test_trains_on_a_dataset_written_by_lerobot(results):
    dataset = results["dataset"]
    assert dataset["codebase_version"] == "v3.0" and dataset["video_codec"] == "av1"
    assert dataset["state_action_equal"]
    assert dataset["pixel_max_abs_diff_vs_lerobot_reader"] <= 2
    assert dataset["fixture_layout_differences"] == []  # the default lane's fixture is faithful
    assert dataset["train_final_loss"] < dataset["train_first_loss"]


def test_exported_policy_predicts_the_same_chunk_in_lerobot(results):
    export = results["export"]
    assert export["lerobot"].startswith("0.4")
    assert export["max_abs_diff"] < 1e-4, export
