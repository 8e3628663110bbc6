"""`act-sweep-summary DIR`: rebuild the summary of a sweep from its run directories.

    act-sweep-summary multirun/2024-05-01/12-00-00
    act-sweep-summary ~/osmo-downloads/act-hydra-sweep-3 --expected-jobs 12
    python -m act_hydra.sweep_summary_cli DIR --rank-by success_rate --out reports/

Writes sweep_summary.csv, sweep_summary.md and sweep_val_loss.png into DIR (or --out: an
existing folder, or a new one in an existing folder) and prints the table
(act_hydra.sweep_summary). Exit status: 0 written; 1 with --strict when a job did not complete;
2 bad input, nothing written: DIR is not a folder or holds no run directory, --out is a file, a
read-only folder or in a missing folder; 4 writing failed (each file is whole or absent).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from act_hydra.cli_args import check_output_dir, non_negative_int
from act_hydra.errors import ActHydraError
from act_hydra.sweep_callback import failure_message
from act_hydra.sweep_summary import RANK_BY, summarize_sweep


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="act-sweep-summary",
        description="Summarize a sweep folder: one row per job, the winner marked.",
    )
    parser.add_argument(
        "dir",
        type=Path,
        help="sweep folder (hydra.sweep.dir of a --multirun, "
        "or downloaded OSMO task outputs); searched recursively",
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="folder for the summary files (default: DIR); created if its parent exists",
    )
    parser.add_argument(
        "--rank-by",
        choices=RANK_BY,
        default="val_loss",
        help="val_loss: lowest best validation loss wins (default); val_l1: lowest "
        "val/l1 (comparable across training.kl_weight); "
        "success_rate: highest last eval/success_rate wins",
    )
    parser.add_argument(
        "--expected-jobs",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="the sweep had N jobs: any of 0..N-1 without a run dir is "
        "listed as missing (an OSMO task that uploaded nothing)",
    )
    parser.add_argument("--no-plot", action="store_true", help="skip sweep_val_loss.png")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a job did not complete")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.out is not None:
            check_output_dir(args.out, "--out")
        summary = summarize_sweep(
            args.dir,
            out_dir=args.out,
            rank_by=args.rank_by,
            expected_jobs=args.expected_jobs,
            plot=not args.no_plot,
        )
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(summary.markdown())
    print("written: " + ", ".join(str(p) for p in summary.files))
    if summary.not_completed:
        print(failure_message(summary), file=sys.stderr)
        if args.strict:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
