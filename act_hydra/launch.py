"""Run training on several processes with torchrun, keeping a preempted run's exit code 75.

    python -m act_hydra.launch --standalone --nproc_per_node=8 -- \\
        experiment=aloha_sim_transfer_cube data.dataset_dir=/data/cube hydra.run.dir=/out/run-000

Arguments before ``--`` go to torchrun, those after it to ``act_hydra.train``. torchrun
reports any failed worker as exit code 1, so a preempted run (SIGTERM: the ranks finish the
step, save last.pt and exit 75) would look like a crash to a scheduler that reschedules on 75
(OSMO's ``exitActions``). The launcher:

- runs ``python -m torch.distributed.run <torchrun args> -m act_hydra.train <overrides>`` with
  ``hydra.run.dir`` fixed up front (resolved from the config when not given), so the launcher
  knows where the run's summary.json will be;
- forwards SIGTERM to torchrun, which passes it to every worker, and gives the workers 300 s
  to save before torchrun kills them (``TORCH_ELASTIC_SHUTDOWN_TIMEOUT``, unless set); the
  platform's own grace period still bounds it. Ctrl-C in a terminal reaches torchrun directly;
- when torchrun fails, reads the summary.json that rank 0 wrote during this launch: status
  ``interrupted`` exits 75, ``diverged`` exits 3, anything else torchrun's code. Without one on
  this node (rank 0 runs on another node, or the run stopped before training began) it exits 75
  if the launcher itself was sent SIGTERM, else torchrun's code.

Exit code 2: the launcher's own arguments are wrong, or the training overrides do not compose
(nothing was started).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from act_hydra.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_PREEMPTED, ActHydraError

SHUTDOWN_TIMEOUT_S = "300"
USAGE = (
    "usage: python -m act_hydra.launch [torchrun arguments] -- [training overrides]\n"
    "  e.g. python -m act_hydra.launch --standalone --nproc_per_node=2 -- debug=tiny "
    "hydra.run.dir=outputs/ddp"
)


class UsageError(Exception):
    pass


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """(torchrun arguments, training overrides), split at the first ``--``."""
    if "--" not in argv:
        raise UsageError(
            "the training overrides must follow `--` (torchrun's arguments come first)"
        )
    i = argv.index("--")
    torchrun_args, overrides = argv[:i], argv[i + 1 :]
    if not any(a.startswith(("--nproc_per_node", "--nproc-per-node")) for a in torchrun_args):
        raise UsageError("pass --nproc_per_node=<processes per node> before `--`")
    if any(
        a in ("-m", "--module", "--no_python", "--no-python") or a.endswith(".py")
        for a in torchrun_args
    ):
        raise UsageError(
            "the launcher runs `-m act_hydra.train` itself: pass only torchrun's "
            "options before `--`"
        )
    if any(a in ("-m", "--multirun") for a in overrides):
        raise UsageError("--multirun cannot run under torchrun: launch one run per command")
    return torchrun_args, overrides


def run_dir_override(overrides: list[str]) -> tuple[Path, list[str]]:
    """The run directory and the overrides that fix it (``hydra.run.dir`` added when absent:
    the default ``outputs/<date>/<time>`` is resolved here, once, for every rank). The
    overrides are composed here first: a mistake is reported once (ConfigError, exit code 2)
    rather than by every rank as a crash."""
    from act_hydra.compose import COMPOSITION_ERRORS, compose_train_config, composition_error

    cfg = compose_train_config(overrides, return_hydra_config=True)
    try:
        run_dir = str(cfg.hydra.run.dir)
    except COMPOSITION_ERRORS as err:  # hydra.run.dir's interpolations
        raise composition_error(err) from err
    for arg in overrides:
        key, sep, value = arg.lstrip("+").partition("=")
        if sep and key == "hydra.run.dir":
            return Path(value.strip("'\"")), overrides
    return Path(run_dir), [*overrides, f"hydra.run.dir={run_dir}"]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_fresh_summary(path: Path, before: tuple[int, int] | None) -> dict[str, Any] | None:
    """summary.json if this launch wrote it (it is replaced atomically, so a new write has a new
    inode or mtime), else None: a summary left by an earlier attempt says nothing about this
    one."""
    now = _stamp(path)
    if now is None or now == before:
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def task_exit_code(torchrun_code: int, summary: dict[str, Any] | None, got_sigterm: bool) -> int:
    """The exit code of the task: see the module docstring."""
    if torchrun_code == 0:
        return 0
    if summary is not None:
        status = summary.get("status")
        if status == "interrupted":
            return EXIT_PREEMPTED
        if status == "diverged":
            return EXIT_DIVERGED
        return torchrun_code
    return EXIT_PREEMPTED if got_sigterm else torchrun_code


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in ([], ["-h"], ["--help"]):
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv else EXIT_BAD_INPUT
    try:
        torchrun_args, overrides = split_args(argv)
        run_dir, overrides = run_dir_override(overrides)
    except UsageError as err:
        print(f"error: {err}.\n{USAGE}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code

    summary_path = run_dir / "summary.json"
    before = _stamp(summary_path)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_args,
        "-m",
        "act_hydra.train",
        *overrides,
    ]
    env = {**os.environ}
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", SHUTDOWN_TIMEOUT_S)

    got_sigterm = False
    proc: subprocess.Popen | None = None

    def on_sigterm(signum, frame) -> None:
        nonlocal got_sigterm
        got_sigterm = True
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    # Ctrl-C reaches torchrun from the terminal (same process group); a second copy from here
    # would cut its graceful shutdown short.
    previous_int = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        proc = subprocess.Popen(cmd, env=env)
        if got_sigterm:  # arrived while starting it
            proc.send_signal(signal.SIGTERM)
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)
    if code < 0:  # torchrun itself was killed by a signal
        code = 128 - code
    summary = read_fresh_summary(summary_path, before)
    result = task_exit_code(code, summary, got_sigterm)
    if result != code:
        why = (
            f"{summary_path} says {summary.get('status')!r}"
            if summary is not None
            else "it was sent SIGTERM and no summary.json of this launch is on this node"
        )
        print(f"act_hydra.launch: torchrun exited {code}; {why}: exit {result}", file=sys.stderr)
    return result


if __name__ == "__main__":
    sys.exit(main())
