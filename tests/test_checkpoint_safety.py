"""Opening a checkpoint never runs code from it; the previous release's checkpoints convert.

A crafted file whose unpickling would create a marker file goes through the real CLIs (eval,
resume) and the conversion command: each refuses it with exit code 2 and a message that names
the file and why, and the marker never appears. (The same file, loaded the unsafe way at the
end, does create it: the payload is live.)
"""

from __future__ import annotations

import os
import pickle
import random
import shlex

import numpy as np
import pytest
import torch

from act_hydra.checkpoint import (
    CHECKPOINT_FORMAT,
    convert_legacy_checkpoint,
    load_checkpoint,
    restore_rng_state,
)
from act_hydra.config import LoggerBackend, Precision
from act_hydra.errors import EXIT_BAD_INPUT, CheckpointError
from tests.helpers import run_cli, run_train


class _CreatesMarker:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def write_malicious(path, marker, kind: str) -> None:
    """A file shaped like a checkpoint whose config would run code when unpickled."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "step": 0,
        "model": {},
        "config": _CreatesMarker(marker),
    }
    if kind == "torch_zip":  # what torch.save writes
        torch.save(payload, path)
    elif kind == "torch_legacy":  # torch's pre-1.6 format: pickles, then raw storage data
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:  # a plain pickle
        with open(path, "wb") as f:
            pickle.dump(payload, f)


KINDS = ["torch_zip", "torch_legacy", "raw_pickle"]


def make_malicious(tmp_path, kind):
    marker = tmp_path / "marker"
    path = tmp_path / f"evil-{kind}.pt"
    write_malicious(path, marker, kind)
    return path, marker


def assert_live(path, marker, kind) -> None:
    """The payload is live: loaded the unsafe way, it creates the marker."""
    assert not marker.exists()
    if kind == "raw_pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


# The CLIs on the two shapes the issue names (torch.save's zip, a plain pickle); the loader
# itself on every shape.
@pytest.fixture(params=["torch_zip", "raw_pickle"])
def malicious(request, tmp_path):
    path, marker = make_malicious(tmp_path, request.param)
    yield path, marker
    assert_live(path, marker, request.param)


def assert_refused(proc, path, marker) -> None:
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert str(path) in proc.stderr
    assert "would import and run Python code" in proc.stderr and "system" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


def test_eval_refuses_a_malicious_checkpoint(malicious, tmp_path):
    path, marker = malicious
    proc = run_cli("act_hydra.eval", [f"checkpoint={path}", f"hydra.run.dir={tmp_path / 'ev'}"])
    assert_refused(proc, path, marker)


def test_resume_refuses_a_malicious_checkpoint(malicious, tmp_path):
    path, marker = malicious
    proc = run_train(tmp_path / "run", f"training.resume={path}")
    assert_refused(proc, path, marker)
    assert "training.resume=" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing was trained


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", KINDS)
def test_loading_and_conversion_refuse_a_malicious_checkpoint(kind, tmp_path):
    path, marker = make_malicious(tmp_path, kind)
    with pytest.raises(CheckpointError, match="would import and run Python code") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value) and "system" in str(err.value)
    with pytest.raises(CheckpointError, match="would import and run Python code") as err:
        convert_legacy_checkpoint(path, tmp_path / "converted.pt")
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert "--trust-source" in str(err.value)
    assert not marker.exists()
    assert not (tmp_path / "converted.pt").exists()
    assert_live(path, marker, kind)


# -- format 1 (the previous release) ------------------------------------------------------------


def to_format_1(saved: dict) -> dict:
    """A format-2 checkpoint in the layout the previous release wrote: the RNG states as
    random.getstate() / np.random.get_state() tuples (an ndarray inside), the normalisation
    stats as numpy arrays, the config's enums as enum objects (OmegaConf.to_container without
    enum_to_str), format 1."""
    outer = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    restore_rng_state(saved["rng"][0])
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    random.setstate(outer[0])
    np.random.set_state(outer[1])
    torch.set_rng_state(outer[2])
    config = {group: dict(values) for group, values in saved["config"].items()}
    config["training"]["precision"] = Precision[config["training"]["precision"]]
    config["logger"]["backend"] = LoggerBackend[config["logger"]["backend"]]
    assert isinstance(rng["numpy"][1], np.ndarray)
    return {
        **saved,
        "format": 1,
        "rng": rng,
        "config": config,
        "norm_stats": {k: v.numpy() for k, v in saved["norm_stats"].items()},
    }


def assert_same(a, b, where="checkpoint") -> None:
    assert type(a) is type(b) or (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))), (
        f"{where}: {type(a)} vs {type(b)}"
    )
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("format2") / "run"
    proc = run_train(run_dir, "training.num_steps=2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir / "checkpoints" / "last.pt"


def test_a_format_1_checkpoint_is_refused_with_the_conversion_command_then_converts(
    trained, tmp_path
):
    original = load_checkpoint(trained)
    legacy = tmp_path / "legacy.pt"
    torch.save(to_format_1(original), legacy)

    # Refused like any file that imports code, but told how to convert it.
    proc = run_train(tmp_path / "refused", f"training.resume={legacy}", "training.num_steps=4")
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-3000:]
    assert f"python -m act_hydra.checkpoint convert {legacy} {legacy}" in proc.stderr
    assert "format 1" in proc.stderr and "Traceback" not in proc.stderr

    # The conversion is lossless: the format-2 checkpoint the legacy file was made from.
    converted = tmp_path / "converted.pt"
    proc = run_cli("act_hydra.checkpoint", ["convert", str(legacy), str(converted)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "converted from format 1" in proc.stdout
    assert_same(torch.load(converted, weights_only=True), original)
    assert (
        torch.load(converted, weights_only=True)["model"]._metadata == original["model"]._metadata
    )  # the state dict's version info

    # ... and resumes.
    run_dir = tmp_path / "resumed"
    proc = run_train(run_dir, f"training.resume={converted}", "training.num_steps=4")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from {converted} at step 2" in (run_dir / "train.log").read_text()


def test_conversion_in_place_and_of_a_current_checkpoint(trained, tmp_path):
    original = load_checkpoint(trained)
    path = tmp_path / "last.pt"
    torch.save(to_format_1(original), path)
    assert convert_legacy_checkpoint(path, path) == 1
    assert_same(load_checkpoint(path), original)
    assert convert_legacy_checkpoint(path, path) == CHECKPOINT_FORMAT  # already: unchanged
    assert_same(load_checkpoint(path), original)


def test_conversion_refuses_what_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"format": 1, "weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="is not an act-hydra checkpoint"):
        convert_legacy_checkpoint(path, tmp_path / "out.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        convert_legacy_checkpoint(tmp_path / "missing.pt", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
