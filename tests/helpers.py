"""Helpers for the tests: run the real CLIs on the `debug=tiny` preset, read their files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "act_hydra" / "conf"

# A model and task small enough for a CLI run in a few seconds on a 2-core CPU
# (conf/debug/tiny.yaml; it also shrinks the synthetic task).
TINY = ["debug=tiny"]


def run_cli(
    module: str,
    args: list[str],
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(
    run_dir: Path,
    *overrides: str,
    tiny: bool = True,
    env: dict | None = None,
) -> subprocess.CompletedProcess:
    args = [*(TINY if tiny else []), *overrides, f"hydra.run.dir={run_dir}"]
    return run_cli("act_hydra.train", args, env=env)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
