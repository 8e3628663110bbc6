"""Plot the LR of both parameter groups against the step, before spending GPU hours.

    act-plot-lr scheduler=cosine training.num_steps=20000 [-o lr.png]
    python -m act_hydra.plot_lr scheduler=cosine

Takes the same Hydra overrides as training, validates them with the same rules, writes the plot
(PNG, or another image format by the extension of -o) and prints the LR at step 0, the end of
warmup, the midpoint of the decay and the last update.

Exit status: 0 written; 2 bad input (an override that does not compose or breaks a rule, or an
-o that names a folder, a missing or read-only folder, or an extension that is no image
format), nothing written; 4 writing the plot failed, nothing written.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from act_hydra import atomic  # noqa: E402
from act_hydra.cli_args import check_output_file, image_formats  # noqa: E402
from act_hydra.compose import compose_train_config, to_train_config  # noqa: E402
from act_hydra.config import TrainConfig  # noqa: E402
from act_hydra.errors import ActHydraError, RunIOError  # noqa: E402
from act_hydra.schedule import lr_factor_fn  # noqa: E402
from act_hydra.validate import validate_config  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="act-plot-lr", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for training")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path("lr_schedule.png"),
        help="image to write (PNG, SVG, PDF, ... by its extension) in an existing folder",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_output_file(args.output, "-o", image_formats())
        cfg = to_train_config(compose_train_config(args.overrides))
        validate_config(cfg)
        lr, lr_backbone = lr_curves(cfg)
        write_plot(cfg, lr, lr_backbone, args.output)
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print_table(cfg, lr, lr_backbone)
    print(f"wrote {args.output}")
    return 0


def lr_curves(cfg: TrainConfig) -> tuple[list[float], list[float]]:
    t = cfg.training
    factor = lr_factor_fn(cfg.scheduler, t.lr, t.num_steps)
    steps = range(t.num_steps)
    return [t.lr * factor(i) for i in steps], [t.lr_backbone * factor(i) for i in steps]


def write_plot(cfg: TrainConfig, lr: list[float], lr_backbone: list[float], output: Path) -> None:
    """Draw into memory, then replace ``output`` whole: a failed write leaves nothing behind."""
    t, s = cfg.training, cfg.scheduler
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(range(t.num_steps), lr, label=f"lr (base {t.lr:g})")
    ax.plot(
        range(t.num_steps),
        lr_backbone,
        label=f"lr_backbone (base {t.lr_backbone:g})",
        linestyle="--",
    )
    if s.name == "cosine" and s.warmup_steps > 0:
        ax.axvline(s.warmup_steps, color="grey", linewidth=0.8, label="end of warmup")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"scheduler={s.name}, training.num_steps={t.num_steps}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    image = io.BytesIO()
    fig.savefig(image, format=output.suffix.lstrip(".").lower(), dpi=100)
    plt.close(fig)
    try:
        with atomic.atomic_file(output) as f:
            f.write(image.getvalue())
    except OSError as err:
        raise RunIOError(
            f"could not write {output} ({err.strerror or err}); nothing was written. "
            "Fix: free disk space, or pass -o <another folder>/<name>.png."
        ) from err


def print_table(cfg: TrainConfig, lr: list[float], lr_backbone: list[float]) -> None:
    t, s = cfg.training, cfg.scheduler
    warmup = s.warmup_steps if s.name == "cosine" else 0
    rows = [
        ("step 0", 0),
        ("end of warmup", warmup),
        ("midpoint", warmup + (t.num_steps - warmup) // 2),
        ("last step", t.num_steps - 1),
    ]
    print(f"{'point':<15}{'step':>8}{'lr':>14}{'lr_backbone':>14}")
    for name, i in rows:
        print(f"{name:<15}{i:>8}{lr[i]:>14.4e}{lr_backbone[i]:>14.4e}")


if __name__ == "__main__":
    sys.exit(main())
