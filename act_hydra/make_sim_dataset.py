"""Write the scripted demonstrations of an ALOHA MuJoCo task into a folder (to share them, or
as the dataset input of an OSMO workflow).

    act-make-sim-dataset /data/sim_insertion data.sim.task=insertion
    python -m act_hydra.make_sim_dataset /data/cube experiment=aloha_sim_transfer_cube

Takes the training overrides (`data=aloha_sim` is implied) and writes exactly the episodes that
training would generate into its cache: the same settings give the same files. Train on them
with `data=aloha_sim data.dataset_dir=<folder>` (the simulator settings must match, for
evaluation). The folder appears only once complete; it must not exist yet.
"""

from __future__ import annotations

import argparse
import logging
import sys

from act_hydra.compose import compose_train_config, to_train_config
from act_hydra.errors import ActHydraError, ConfigError
from act_hydra.validate import validate_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="act-make-sim-dataset", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out", help="folder to create, e.g. /data/sim_transfer_cube_scripted")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    picks_data = any(o.startswith(("data=", "experiment=")) for o in args.overrides)
    overrides = args.overrides if picks_data else ["data=aloha_sim", *args.overrides]
    try:
        cfg = to_train_config(compose_train_config(overrides))
        validate_config(cfg)
        if cfg.data.sim is None:
            raise ConfigError(
                f"the overrides {overrides} pick no ALOHA task (data.sim is "
                "null). Fix: pass data=aloha_sim or an aloha_sim experiment."
            )
        from act_hydra.aloha_sim.generate import generate_dataset

        sim = cfg.data.sim
        out = generate_dataset(
            args.out,
            str(sim.task),
            sim.num_episodes,
            sim.episode_len,
            sim.image_height,
            sim.image_width,
            str(sim.render_style),
            sim.num_workers,
            progress=not args.no_progress,
        )
    except ActHydraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {sim.num_episodes} {sim.task} episodes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
