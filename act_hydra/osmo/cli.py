"""``act-osmo-sweep``: write the NVIDIA OSMO workflow of a Hydra sweep, one task per job.

    act-osmo-sweep training.lr=1e-5,5e-5,1e-4 training.kl_weight=1,10
    act-osmo-sweep sweep=default osmo.image=nvcr.io/<org>/act-hydra:1.0 \\
        osmo.output_url=s3://<bucket>/act-sweeps -o osmo/my-sweep.yaml --submit --pool <pool>
    act-osmo-sweep --check osmo/osmo-workflow-sweep.yaml

(``python scripts/generate_osmo_sweep.py`` is the same command.) The overrides are exactly what
``python -m act_hydra.train --multirun`` takes (presets such as ``sweep=default`` included);
``osmo.*`` overrides are cluster settings (``conf/osmo/default.yaml``) and never reach the tasks.
Every job is composed and validated, and the file checked with the offline OSMO check, before
anything is written.

Exit status (:mod:`act_hydra.errors`): EXIT_OK written (and submitted) or every checked file
passes; EXIT_BAD_INPUT invalid overrides or settings, -o names a folder or a place this user
may not write (nothing written), or a checked file breaks an OSMO rule; EXIT_IO_ERROR writing
failed otherwise, e.g. a full disk (each file is whole or absent); EXIT_UNEXPECTED the osmo CLI
failed to submit; EXIT_NO_OSMO (127, the shell's "command not found") ``--submit`` without the
osmo CLI installed: the files are written and the message says how to submit them by hand.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from act_hydra import atomic
from act_hydra.cli_args import check_not_a_folder
from act_hydra.errors import (
    EXIT_BAD_INPUT,
    EXIT_IO_ERROR,
    EXIT_OK,
    EXIT_UNEXPECTED,
    ActHydraError,
)
from act_hydra.osmo.sweep import expand_sweep
from act_hydra.osmo.validate import main_check, validate_workflow_text
from act_hydra.osmo.workflow import part_paths, render_workflows

DEFAULT_OUTPUT = "osmo/osmo-workflow-sweep.yaml"
NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)
EXIT_NO_OSMO = 127  # the shell's "command not found"; act_hydra.errors has no such code


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Expand a Hydra sweep into an NVIDIA OSMO workflow (one task per job).",
        epilog="Overrides: as for `python -m act_hydra.train --multirun`; osmo.* set the cluster "
        "settings (conf/osmo/default.yaml). See osmo/README.md.",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra overrides, e.g. training.lr=1e-5,1e-4 sweep=default osmo.image=...",
    )
    parser.add_argument(
        "-o",
        "--output",
        default=DEFAULT_OUTPUT,
        help=f"workflow file to write (default {DEFAULT_OUTPUT}); a split sweep "
        "writes <name>-part-K-of-N.yaml beside it",
    )
    parser.add_argument(
        "--submit",
        action="store_true",
        help="run `osmo workflow submit FILE --pool P` on what was written",
    )
    parser.add_argument("--pool", help="OSMO pool for --submit")
    parser.add_argument(
        "--check",
        nargs="+",
        metavar="FILE",
        help="only validate existing workflow files offline (no generation)",
    )
    parser.add_argument(
        "-m",
        "--multirun",
        action="store_true",
        help="accepted for symmetry with training; the sweep is always expanded",
    )
    args = parser.parse_intermixed_args(argv)
    if args.check and (args.overrides or args.submit):
        parser.error("--check validates existing files; it takes no overrides and no --submit")
    if args.submit and not args.pool:
        parser.error("--submit needs --pool P (OSMO's pool auto-selection is unreliable)")
    return args


def submit(paths: list[Path], pool: str) -> int:
    commands = [["osmo", "workflow", "submit", str(path), "--pool", pool] for path in paths]
    if shutil.which("osmo") is None:
        print(
            "error: the osmo CLI is not installed (no `osmo` on PATH), so nothing was "
            "submitted. Install and log in to the OSMO CLI (osmo login <service url>), then "
            "submit by hand:",
            file=sys.stderr,
        )
        for command in commands:
            print(f"  {shlex.join(command)}", file=sys.stderr)
        return EXIT_NO_OSMO
    failed = False
    for command in commands:  # every part, even after a failure: the parts are independent
        print(f"$ {shlex.join(command)}", flush=True)
        failed = subprocess.run(command, check=False).returncode != 0 or failed
    return EXIT_UNEXPECTED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check:
        return main_check(args.check)
    try:
        check_not_a_folder(Path(args.output), "-o", ".yaml")
        plan = expand_sweep(args.overrides)
        texts = render_workflows(plan.osmo, plan.jobs, args.overrides)
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    paths = part_paths(args.output, len(texts))
    limit = plan.osmo.max_tasks_per_workflow
    problems = [
        f"{path}: {problem}"
        for path, text in zip(paths, texts)
        for problem in validate_workflow_text(text, max_tasks=limit)
    ]
    if problems:  # the settings passed their checks but the file still breaks an OSMO rule
        print(
            "error: the generated workflow breaks OSMO rules; nothing was written:\n  "
            + "\n  ".join(problems),
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT

    try:
        for path, text in zip(paths, texts):
            atomic.write_text(path, text)
    except OSError as err:
        print(
            f"error: could not write {args.output} ({err.strerror or err}); each workflow "
            "file is whole or absent. Fix: pass -o <a writable folder>/<name>.yaml.",
            file=sys.stderr,
        )
        # A folder the user may not write into is their mistake; a full disk is not.
        return EXIT_BAD_INPUT if err.errno in NOT_PERMITTED else EXIT_IO_ERROR
    n_jobs = len(plan.jobs)
    where = paths[0] if len(paths) == 1 else f"{len(paths)} files: " + ", ".join(map(str, paths))
    print(
        f"wrote {n_jobs} run{'s' if n_jobs != 1 else ''} to {where} (passes the offline "
        "OSMO checks)"
    )
    if args.submit:
        return submit(paths, args.pool)
    print(
        "submit with: "
        + "; ".join(
            shlex.join(["osmo", "workflow", "submit", str(p), "--pool", "<pool>"]) for p in paths
        )
    )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
