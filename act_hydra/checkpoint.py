"""Checkpoints: what they hold, how they are written, and which one a run resumes from.

A checkpoint is a dict of tensors and plain containers (numbers, strings, lists, dicts) only,
so it loads with ``torch.load(weights_only=True)``, which refuses to run code from the file:

    format, step, model, optimizer, scheduler, scaler, best_val_loss, best_val_step,
    rng (a list indexed by DDP rank, each python, numpy, torch, cuda), norm_stats (float32
    tensors), config (the resolved training config), wandb_run_id

It is written atomically (act_hydra.atomic): a reader sees the previous complete file or the
new complete file, never half of one. The data-sampling state needs no saving: the batch of
step i is a function of (seed, i) (act_hydra.data.dataset.StepBatchSampler).

Checkpoints of format 1 (the previous release: numpy RNG state and enum objects, pickled) are
refused like any file that would import code; convert one once, without running anything
from it, with

    python -m act_hydra.checkpoint convert OLD.pt NEW.pt     # NEW may be OLD: in place
"""

from __future__ import annotations

import argparse
import enum
import importlib
import io
import logging
import pickle
import pickletools
import random
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from act_hydra.atomic import atomic_file, remove_stale
from act_hydra.distributed import DistInfo, gather_to_main
from act_hydra.errors import EXIT_BAD_INPUT, CheckpointError, RunIOError

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 2
LEGACY_FORMAT = 1  # the previous release's layout; `convert` turns it into CHECKPOINT_FORMAT
REQUIRED_ENTRIES = ("model", "config", "norm_stats")  # what evaluating or resuming reads first


# Keys that may differ between a checkpoint and the run resuming it: they change how data is
# read, not what is learned.
def rng_state() -> dict[str, Any]:
    """Every RNG a training step draws from, as tensors and plain lists."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def rng_state_for_rank(
    saved_rng: list[dict[str, Any]] | dict[str, Any], rank: int, world_size: int
) -> dict[str, Any] | None:
    """The RNG state rank ``rank`` continues from (None: keep its freshly seeded state).

    A checkpoint holds one state per rank of the run that wrote it. Resumed on as many ranks,
    each rank restores its own and the run is bit-identical to an uninterrupted one. On a
    different number of ranks the run continues but is not that run any more (its global batch
    is training.batch_size x the new world size, too): ranks the checkpoint knows restore their
    own state, the others keep the independent seed every rank starts from
    (act_hydra.distributed.rank_seed), and rank 0 logs a warning.
    """
    states = saved_rng if isinstance(saved_rng, list) else [saved_rng]
    if len(states) != world_size and rank == 0:
        log.warning(
            "the checkpoint holds the RNG states of %d rank(s) and this run has %d: ranks 0-%d "
            "continue their own RNG streams, %s; the run continues, but not bit-identically "
            "to one resumed on %d rank(s), and its global batch is now training.batch_size x %d",
            len(states),
            world_size,
            min(len(states), world_size) - 1,
            "the others start from their own seeds"
            if world_size > len(states)
            else "the others' states are dropped",
            len(states),
            world_size,
        )
    return states[rank] if rank < len(states) else None


def norm_stats_to_tensors(stats: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in stats.items()}


def save_checkpoint(payload: dict[str, Any], path: Path) -> None:
    with atomic_file(path) as f:
        torch.save(payload, f)


def unpickling_detail(err: Exception) -> str:
    """The line of torch's weights-only error that says what was refused."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    specific = [
        line for line in lines if "GLOBAL" in line or "Unsupported" in line or "load key" in line
    ]
    return (specific or lines or [type(err).__name__])[0][:200]


def _unreadable(path: Path, detail: str) -> CheckpointError:
    return CheckpointError(
        f"{path} is not a readable act-hydra checkpoint ({detail}). Fix: point at a "
        "checkpoints/last.pt or best.pt written by act-hydra."
    )


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint without running anything from it (weights_only=True)."""
    path = Path(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused, truncated, empty, not a torch file at all
        raise _refusal(path, err) from err
    if not (isinstance(saved, dict) and saved.get("format") == CHECKPOINT_FORMAT):
        raise CheckpointError(
            f"{path} is not an act-hydra checkpoint of format {CHECKPOINT_FORMAT} "
            f"({_what_it_holds(saved)}). Fix: point at a checkpoints/last.pt or best.pt written "
            "by this version of act-hydra."
        )
    missing = [key for key in REQUIRED_ENTRIES if key not in saved]
    if missing:
        raise _unreadable(path, f"format {CHECKPOINT_FORMAT}, but without {', '.join(missing)}")
    return saved


def _what_it_holds(saved: Any) -> str:
    if not isinstance(saved, dict):
        return f"it holds a {type(saved).__name__}, not a dict"
    if "format" not in saved:
        return "it has no format entry: a bare state_dict, or another program's file"
    return f"format entry: {saved['format']!r}"


def _refusal(path: Path, err: Exception) -> CheckpointError:
    """Why torch.load(weights_only=True) failed on ``path``, as a message that says what to do."""
    needs = imported_globals(path)
    if needs and set(needs) <= set(_legacy_globals()):
        return CheckpointError(
            f"{path} looks like an act-hydra checkpoint of format {LEGACY_FORMAT} (the previous "
            f"release pickled numpy RNG state and config enums: {', '.join(needs)}); this "
            f"version loads only format {CHECKPOINT_FORMAT}, which holds tensors and plain "
            "containers. Nothing from it was run. Fix: convert it once, in place (it is read "
            f"without running code): python -m act_hydra.checkpoint convert {path} {path}"
        )
    detail = _damage(path) or (
        unpickling_detail(err)
        if isinstance(err, pickle.UnpicklingError)
        else (
            f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            if str(err)
            else type(err).__name__
        )
    )
    if needs or "GLOBAL" in detail:  # it names code to import and run
        what = ", ".join(needs[:8]) if needs else detail
        return CheckpointError(
            f"{path} was refused: loading it would import and run Python code ({what}). "
            "act-hydra checkpoints hold only tensors and plain containers, so this file "
            "was not written by act-hydra or was tampered with; nothing from it was run. "
            "Fix: use a checkpoint written by act-hydra, from a source you trust."
        )
    return _unreadable(path, detail)


def _damage(path: Path) -> str | None:
    """What is wrong with a file torch cannot open as a checkpoint, when its first bytes say:
    empty, a truncated zip archive (torch.save's format), or no torch file at all."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as err:
        return f"cannot read it: {err.strerror}"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return "truncated or damaged: the zip archive torch.save writes is incomplete"
    if not head.startswith((b"PK", b"\x80")):  # a zip archive, or a pickle (protocol >= 2)
        return f"not a file torch.save wrote: it starts with {head[:8]!r}"
    return None


def imported_globals(path: Path) -> list[str] | None:
    """What unpickling ``path`` would import beyond what torch.load(weights_only=True) allows
    (e.g. ``posix.system``), read from the pickle opcodes: nothing is imported or run. None
    when the file cannot be scanned."""
    try:
        if zipfile.is_zipfile(path):
            return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        from torch._weights_only_unpickler import _get_allowed_globals  # names only

        return sorted(_raw_pickle_globals(Path(path)) - set(_get_allowed_globals()))
    except Exception:
        return None


def _raw_pickle_globals(path: Path, max_pickles: int = 8) -> set[str]:
    """The ``module.name`` of every GLOBAL / STACK_GLOBAL in the pickles at the start of a
    non-zip file (a plain pickle, or torch's legacy format: several pickles, then raw data)."""
    found: set[str] = set()
    with open(path, "rb") as f:
        for _ in range(max_pickles):
            pushed: list[Any] = []
            memo: dict[int, Any] = {}
            try:
                for op, arg, _ in pickletools.genops(f):
                    if op.name == "GLOBAL":
                        found.add(str(arg).replace(" ", "."))
                    elif op.name == "STACK_GLOBAL" and len(pushed) >= 2:
                        found.add(f"{pushed[-2]}.{pushed[-1]}")
                    elif op.name == "MEMOIZE" and pushed:
                        memo[len(memo)] = pushed[-1]
                    elif (
                        op.name in ("PUT", "BINPUT", "LONG_BINPUT")
                        and pushed
                        and isinstance(arg, int)
                    ):
                        memo[arg] = pushed[-1]
                    elif op.name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                        pushed.append(memo.get(arg))
                    elif isinstance(arg, str):
                        pushed.append(arg)
            except Exception:  # the end of the file, or the raw data after the pickles
                break
    return found


class Checkpointer:
    """Writes checkpoints/last.pt and best.pt of one run, and turns a failed write into a
    RunIOError that says what is intact.

    Every rank calls ``save`` at the same steps: the weights are rank 0's (every rank holds the
    same), the RNG states are every rank's (gathered to rank 0), and rank 0 writes the file.
    """

    def __init__(self, run_dir: Path, dist_info: DistInfo, start_step: int = 0, **static: Any):
        self.dir = run_dir / "checkpoints"
        self.dist_info = dist_info
        self.enabled = dist_info.is_main  # the one writer
        self.static = static  # saved in every checkpoint: norm_stats, config, wandb_run_id
        self.saved_step = start_step  # the step last.pt holds: where a rerun resumes
        if self.enabled:
            remove_stale(self.dir)  # temporary files of a run killed while saving

    def paths(self) -> list[Path]:
        return [self.dir / "best.pt", self.dir / "last.pt"]

    def save(self, name: str, training_state: dict[str, Any]) -> None:
        rng = gather_to_main(rng_state(), self.dist_info)  # a collective: every rank calls it
        if not self.enabled:
            return
        payload = {"format": CHECKPOINT_FORMAT, **training_state, "rng": rng, **self.static}
        try:
            save_checkpoint(payload, self.dir / name)
            if name == "last.pt":
                self.saved_step = int(training_state["step"])
        except (OSError, RuntimeError) as err:  # torch.save reports a failed write as either
            reason = getattr(err, "strerror", None) or str(err).splitlines()[0]
            raise RunIOError(
                f"could not write {self.dir / name} ({reason}); the previous "
                f"checkpoint there is intact. Fix: free disk space or pass hydra.run.dir=<a "
                "folder with room>, then run the same command again to resume."
            ) from err


# ----------------------------------------------------------------------------- format 1


def _legacy_safe_globals() -> list[Any]:
    """Exactly what a format-1 checkpoint pickles besides tensors: numpy arrays (the numpy RNG
    state, the normalisation stats), numpy scalars and dtypes, and the config's enums. Each
    only builds a value; none runs code chosen by the file."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")  # numpy >= 2
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")  # numpy 1

    import act_hydra.config as config

    enums = [
        obj
        for obj in vars(config).values()
        if isinstance(obj, type)
        and issubclass(obj, enum.Enum)
        and obj.__module__ == config.__name__
    ]
    dtypes = sorted({type(np.dtype(c)) for c in "?bBhHiIlLqQefdgFDG"}, key=str)
    # A file names numpy's array builders by the module of the numpy that wrote it.
    builders = [
        (fn, f"{module}.multiarray.{fn.__name__}")
        for fn in (multiarray._reconstruct, multiarray.scalar)
        for module in ("numpy.core", "numpy._core")
    ]
    return [np.ndarray, np.dtype, *dtypes, *enums, *builders]


def _legacy_globals() -> list[str]:
    names = []
    for item in _legacy_safe_globals():
        obj, name = item if isinstance(item, tuple) else (item, None)
        names.append(name or f"{obj.__module__}.{obj.__qualname__}")
    return names


def _plain(value: Any) -> Any:
    """Enums as their names, numpy values as tensors or Python numbers, containers recursed."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):  # an OrderedDict stays one, with its _metadata (state dicts)
        out = type(value)((k, _plain(v)) for k, v in value.items())
        if hasattr(value, "_metadata"):
            out._metadata = value._metadata  # type: ignore[attr-defined]
        return out
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _legacy_rng_state(state: dict[str, Any]) -> dict[str, Any]:
    """Format 1's RNG state (random.getstate() and np.random.get_state() tuples) as format 2
    stores it (act_hydra.checkpoint.rng_state)."""
    version, mt_state, gauss = state["python"]
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out = {
        "python": [int(version), [int(x) for x in mt_state], gauss],
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys, np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ],
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def convert_legacy_checkpoint(src: Path, dst: Path, trust_source: bool = False) -> int:
    """Write ``src`` (format 1) as a format-2 checkpoint at ``dst`` (may be ``src``); return
    the format it had.

    ``src`` is unpickled with torch.load(weights_only=True) widened by exactly what format 1
    needs (_legacy_safe_globals), so a tampered file is refused and nothing from it runs.
    ``trust_source=True`` loads with weights_only=False instead, which runs whatever the file
    says: only for a file you wrote yourself that holds something else this converter refuses.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise CheckpointError(
            f"{src} does not exist or is not a file. Fix: pass the path of a "
            "checkpoints/last.pt or best.pt."
        )
    try:
        if trust_source:
            saved = torch.load(src, map_location="cpu", weights_only=False)
        else:
            with torch.serialization.safe_globals(_legacy_safe_globals()):
                saved = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as err:
        needs = [g for g in (imported_globals(src) or []) if g not in _legacy_globals()]
        if needs:
            raise CheckpointError(
                f"{src} was refused: it is not an act-hydra checkpoint of format "
                f"{LEGACY_FORMAT}, and loading it would import and run Python code "
                f"({', '.join(needs[:8])}); nothing from it was run. Fix: convert only "
                "checkpoints written by act-hydra. If you wrote this file yourself and trust "
                "it, --trust-source loads it with weights_only=False, which runs that code."
            ) from err
        raise _refusal(src, err) from err
    found = saved.get("format") if isinstance(saved, dict) else None
    if found not in (LEGACY_FORMAT, CHECKPOINT_FORMAT) or "model" not in saved:
        raise CheckpointError(
            f"{src} is not an act-hydra checkpoint (format entry: {found!r}). Fix: pass a "
            "checkpoints/last.pt or best.pt written by act-hydra."
        )
    if found == LEGACY_FORMAT:
        saved = _plain(
            {
                **saved,
                "format": CHECKPOINT_FORMAT,
                "rng": [_legacy_rng_state(saved["rng"])],  # format 1: one process
                "norm_stats": norm_stats_to_tensors(saved["norm_stats"]),
            }
        )
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    torch.load(buffer, map_location="cpu", weights_only=True)  # what every reader will do
    with atomic_file(dst) as f:
        f.write(buffer.getvalue())
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m act_hydra.checkpoint convert OLD NEW``."""
    parser = argparse.ArgumentParser(
        prog="python -m act_hydra.checkpoint",
        description="Convert a checkpoint of the previous release (format 1) to the current "
        "format, which loads without running code from the file.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="write OLD as a format-2 checkpoint NEW")
    convert.add_argument("old", type=Path, help="a format-1 checkpoints/last.pt or best.pt")
    convert.add_argument("new", type=Path, help="where to write it (may be OLD: in place)")
    convert.add_argument(
        "--trust-source",
        action="store_true",
        help="load OLD with weights_only=False (runs any code in it); only "
        "for your own files that the safe conversion refuses",
    )
    args = parser.parse_args(argv)
    try:
        found = convert_legacy_checkpoint(args.old, args.new, args.trust_source)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"{args.new}: format {CHECKPOINT_FORMAT}"
        + (
            f" (converted from format {found})"
            if found != CHECKPOINT_FORMAT
            else " (it already was)"
        )
    )
    return 0


if __name__ == "__main__":
    from act_hydra.checkpoint import main as importable_main

    sys.exit(importable_main())
