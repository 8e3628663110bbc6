"""Check this project against the real LeRobot library, installed in a separate environment.

    python scripts/check_lerobot_interop.py --lerobot-python /work/lerobot-venv/bin/python
    python scripts/check_lerobot_interop.py --create-env /work/lerobot-venv   # pip install first
    ACT_HYDRA_LEROBOT_PYTHON=/work/lerobot-venv/bin/python python scripts/check_lerobot_interop.py

Run it with this project's interpreter (.venv/bin/python). LeRobot pins its own torch, so it
lives in its own environment and runs here as a subprocess (its interpreter: --lerobot-python,
else $ACT_HYDRA_LEROBOT_PYTHON). Two checks:

dataset  LeRobot's own writer (LeRobotDataset.create / add_frame / save_episode, AV1 video by
         default) writes 3 small episodes; this project converts them (data=lerobot), its frames,
         states and actions must equal what LeRobot's own reader returns for the same rows,
         the layout must match the one the tests write (tests/lerobot_fixture.py), and a
         debug=tiny run must train on it.
export   a tiny quickstart policy is trained and exported (act_hydra.export); LeRobot loads it
         with ACTPolicy.from_pretrained (strict: every tensor named) and make_pre_post_processors,
         and its action chunk for one observation must equal this project's (max abs diff
         < 1e-4).

Prints one JSON object with the results and exits 0 when both pass. --work DIR keeps the files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEROBOT_VERSION = "0.4.4"
TOLERANCE = 1e-4
FPS, H, W, LENGTHS = 10, 96, 128, (14, 11, 9)

# Run by LeRobot's interpreter: write a dataset with LeRobot's writer, then read every row back
# with LeRobot's reader (pyav backend: torchcodec needs system FFmpeg libraries).
WRITE_AND_READ = r"""
import json, sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root = Path(sys.argv[1])
fps, h, w = (int(a) for a in sys.argv[2:5])
lengths = json.loads(sys.argv[5])
vector = {"dtype": "float32", "shape": (3,), "names": ["a", "b", "c"]}
camera = {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]}
features = {"observation.state": vector, "action": vector, "observation.images.top": camera}
ds = LeRobotDataset.create("local/act_hydra_check", fps, features=features, root=root)
for e, n in enumerate(lengths):
    for t in range(n):
        image = np.zeros((h, w, 3), np.uint8)
        image[..., 0] = (40 * e + 9 * t) % 200 + 20
        image[: h // 2, : w // 2, 1] = 200  # a block, so the frame is not flat
        state = (e + t / 100 + np.arange(3)).astype(np.float32)
        frame = {"observation.state": state, "action": state + 0.5}
        ds.add_frame({**frame, "observation.images.top": image, "task": "check"})
    ds.save_episode()
ds.finalize()
read = LeRobotDataset("local/act_hydra_check", root=root, video_backend="pyav")
out = {"state": [], "action": [], "top": []}
for i in range(len(read)):
    item = read[i]
    out["state"].append(item["observation.state"].numpy())
    out["action"].append(item["action"].numpy())
    out["top"].append((item["observation.images.top"].numpy() * 255).round().astype(np.uint8))
np.savez(root.parent / "lerobot_read.npz", **{k: np.stack(v) for k, v in out.items()})
"""

# Run by LeRobot's interpreter: load the export and predict the chunk for the saved observation.
LOAD_AND_PREDICT = r"""
import json, sys, numpy as np, torch
from importlib.metadata import version
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.factory import make_pre_post_processors
export, obs_file = sys.argv[1], sys.argv[2]
policy = ACTPolicy.from_pretrained(export, strict=True)
pre, post = make_pre_post_processors(policy.config, pretrained_path=export)
obs = np.load(obs_file)
keys = [k for k in policy.config.input_features if k.startswith("observation.images.")]
frame = {"observation.state": torch.from_numpy(obs["state"])}
for i, key in enumerate(keys):
    frame[key] = torch.from_numpy(obs["images"][i]).float() / 255.0
with torch.no_grad():
    chunk = post(policy.predict_action_chunk(pre(frame)))
np.save(obs_file.replace(".npz", "_lerobot.npy"), chunk[0].numpy())
print(json.dumps({"lerobot": version("lerobot"), "torch": torch.__version__}))
"""


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HYDRA_FULL_ERROR": "0", **kwargs.pop("env", {})}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
        raise SystemExit(f"failed ({result.returncode}): {' '.join(cmd[:4])} ...")
    return result


def create_env(folder: Path) -> Path:
    """A venv with lerobot; its own torch pin (<2.11) comes from PyPI, not a local cap."""
    python = folder / "bin" / "python"
    if not python.exists():
        run([sys.executable, "-m", "venv", str(folder)])
    run(
        [str(python), "-m", "pip", "install", "--quiet", f"lerobot=={LEROBOT_VERSION}"],
        env={"PIP_CONSTRAINT": ""},
    )
    return python


def layout_differences(real: Path, ours: Path) -> list[str]:
    """What the test fixture's layout lacks or types differently from LeRobot's own output."""
    import pyarrow.parquet as pq

    problems = []
    a, b = (json.loads((p / "meta/info.json").read_text()) for p in (real, ours))
    for key in sorted(set(a) - set(b) - {"total_videos", "total_chunks"}):
        if key not in ("data_files_size_in_mb", "video_files_size_in_mb"):
            problems.append(f"info.json key {key!r} missing in the fixture")
    for key in ("codebase_version", "data_path", "video_path"):
        if a.get(key) != b.get(key):
            problems.append(f"info.json {key}: LeRobot {a.get(key)!r}, fixture {b.get(key)!r}")
    for name, spec in a["features"].items():
        mine = b["features"].get(name)
        if (
            mine is None
            or mine["dtype"] != spec["dtype"]
            or list(mine["shape"]) != list(spec["shape"])
        ):
            problems.append(f"feature {name}: LeRobot {spec}, fixture {mine}")
    for pattern in ("data/*/*.parquet", "meta/episodes/*/*.parquet"):
        real_schema = pq.read_schema(next(real.glob(pattern)))
        our_schema = pq.read_schema(next(ours.glob(pattern)))
        for field in our_schema:
            if field.name not in real_schema.names:
                problems.append(f"{pattern}: column {field.name} not written by LeRobot")
            elif not field.type.equals(real_schema.field(field.name).type):
                real_type = real_schema.field(field.name).type
                problems.append(f"{pattern}: {field.name} is {field.type}, LeRobot {real_type}")
        needed = [c for c in real_schema.names if not c.startswith("stats/")]
        problems += [f"{pattern}: column {c} missing" for c in needed if c not in our_schema.names]
    return problems


def check_dataset(lerobot_python: str, work: Path) -> dict:
    import h5py
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from act_hydra.config import DataConfig, LeRobotConfig
    from act_hydra.data import scan_dataset
    from act_hydra.data.lerobot import ensure_lerobot_dataset
    from tests.lerobot_fixture import write_lerobot_dataset

    root = work / "lerobot_dataset"
    args = [str(root), str(FPS), str(H), str(W), json.dumps(LENGTHS)]
    run([lerobot_python, "-c", WRITE_AND_READ, *args])
    info = json.loads((root / "meta/info.json").read_text())
    codec = info["features"]["observation.images.top"].get("info", {}).get("video.codec")
    fixture = write_lerobot_dataset(work / "fixture_dataset", lengths=LENGTHS, size=(H, W))
    data = DataConfig(dataset_dir=str(root), lerobot=LeRobotConfig(), camera_names=["top"])
    converted = ensure_lerobot_dataset(data, cache_root=work / "cache")
    ours = scan_dataset(converted, ["top"])
    state, action, top = [], [], []
    for path in ours.episode_paths:
        with h5py.File(path) as f:
            state.append(f["observations/qpos"][()])
            action.append(f["action"][()])
            top.append(f["observations/images/top"][()].transpose(0, 3, 1, 2))
    theirs = np.load(work / "lerobot_read.npz")
    pixels = np.abs(np.concatenate(top).astype(int) - theirs["top"].astype(int))
    run_dir = work / "train_on_lerobot_dataset"
    train = run(
        [sys.executable, "-m", "act_hydra.train", "data=lerobot", f"data.dataset_dir={root}",
         "debug=tiny", "training.num_steps=20", "training.log_every=5", f"hydra.run.dir={run_dir}"],
        env={"ACT_HYDRA_CACHE": str(work / "cache")},
    )  # fmt: skip
    del train
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    result = {
        "codebase_version": info["codebase_version"],
        "video_codec": codec,
        "episodes": list(ours.episode_lengths),
        "state_action_equal": bool(
            np.array_equal(np.concatenate(state), theirs["state"])
            and np.array_equal(np.concatenate(action), theirs["action"])
        ),
        "pixel_max_abs_diff_vs_lerobot_reader": int(pixels.max()),
        "pixel_mean_abs_diff_vs_lerobot_reader": round(float(pixels.mean()), 4),
        "fixture_layout_differences": layout_differences(root, fixture),
        "train_first_loss": losses[0],
        "train_final_loss": losses[-1],
        "train_steps": len(losses) and rows[-1].get("step"),
    }
    result["ok"] = (
        result["state_action_equal"]
        and result["pixel_max_abs_diff_vs_lerobot_reader"] <= 2
        and not result["fixture_layout_differences"]
        and ours.episode_lengths == LENGTHS
    )
    return result


def check_export(lerobot_python: str, work: Path, overrides: tuple[str, ...] = ()) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from act_hydra.eval import load_policy

    run_dir, export = work / "quickstart_run", work / "export"
    run(
        [
            sys.executable,
            "-m",
            "act_hydra.train",
            "debug=tiny",
            *overrides,
            f"hydra.run.dir={run_dir}",
        ],
        env={"ACT_HYDRA_CACHE": str(work / "cache")},
    )
    run([sys.executable, "-m", "act_hydra.export", f"checkpoint={run_dir}", f"out={export}"])
    policy, config, _ = load_policy(run_dir / "checkpoints" / "best.pt", torch.device("cpu"))
    size = int(config["data"]["synthetic"]["image_size"])
    rng = np.random.default_rng(0)
    stats = policy.norm_stats()
    state = stats["state_mean"] + stats["state_std"] * rng.standard_normal(len(stats["state_mean"]))
    images = rng.integers(0, 256, (len(config["data"]["camera_names"]), 3, size, size), np.uint8)
    obs = work / "observation.npz"
    np.savez(obs, state=state.astype(np.float32), images=images)
    ours = policy.predict_chunk(
        torch.from_numpy(state.astype(np.float32))[None], torch.from_numpy(images)[None]
    )[0].numpy()
    out = run([lerobot_python, "-c", LOAD_AND_PREDICT, str(export), str(obs)]).stdout
    versions = json.loads(out.strip().splitlines()[-1])  # LeRobot prints progress lines first
    theirs = np.load(work / "observation_lerobot.npy")
    diff = float(np.abs(ours - theirs).max()) if ours.shape == theirs.shape else float("inf")
    return {
        **versions,
        "chunk_shape": list(ours.shape),
        "max_abs_diff": diff,
        "ok": diff < TOLERANCE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lerobot-python", default=os.environ.get("ACT_HYDRA_LEROBOT_PYTHON"))
    parser.add_argument(
        "--create-env", type=Path, help=f"make a venv with lerobot {LEROBOT_VERSION} here"
    )
    parser.add_argument("--work", type=Path, help="keep the files here (default: a temp folder)")
    parser.add_argument("--only", choices=("dataset", "export"), help="run one check")
    parser.add_argument(
        "--train-overrides",
        nargs="*",
        default=[],
        help="extra overrides of the exported policy's training run (e.g. model.pre_norm=true)",
    )
    args = parser.parse_args(argv)
    python = str(create_env(args.create_env)) if args.create_env else args.lerobot_python
    if not python:
        parser.error(
            "name LeRobot's interpreter: --lerobot-python, ACT_HYDRA_LEROBOT_PYTHON or --create-env"
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = {}
        if args.only in (None, "dataset"):
            results["dataset"] = check_dataset(python, work)
        if args.only in (None, "export"):
            results["export"] = check_export(python, work, tuple(args.train_overrides))
    print(json.dumps(results, indent=2))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
