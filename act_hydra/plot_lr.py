"""Plot the LR of both parameter groups against the step, before spending GPU hours.

    act-plot-lr scheduler=cosine training.num_steps=20000 [-o lr.png]
    python -m act_hydra.plot_lr scheduler=cosine

Takes the same Hydra overrides as training, validates them with the same rules, writes a PNG
and prints the LR at step 0, the end of warmup, the midpoint of the decay and the last update.
"""

from __future__ import annotations

import argparse
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from act_hydra.compose import compose_train_config, to_train_config  # noqa: E402
from act_hydra.errors import ConfigError  # noqa: E402
from act_hydra.schedule import lr_factor_fn  # noqa: E402
from act_hydra.validate import validate_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="act-plot-lr", description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for training")
    parser.add_argument("-o", "--output", default="lr_schedule.png", help="PNG to write")
    args = parser.parse_args(argv)

    cfg = to_train_config(compose_train_config(args.overrides))
    try:
        validate_config(cfg)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    t, s = cfg.training, cfg.scheduler
    factor = lr_factor_fn(s, t.lr, t.num_steps)
    steps = range(t.num_steps)
    lr = [t.lr * factor(i) for i in steps]
    lr_backbone = [t.lr_backbone * factor(i) for i in steps]

    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, lr, label=f"lr (base {t.lr:g})")
    ax.plot(steps, lr_backbone, label=f"lr_backbone (base {t.lr_backbone:g})", linestyle="--")
    if s.name == "cosine" and s.warmup_steps > 0:
        ax.axvline(s.warmup_steps, color="grey", linewidth=0.8, label="end of warmup")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"scheduler={s.name}, training.num_steps={t.num_steps}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)

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
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
