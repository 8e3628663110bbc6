"""Data-loader and training-step benchmark of act-hydra (issue 8); takes the training overrides.

    python scripts/benchmark.py model=act_small data.synthetic.num_episodes=6 \
        training.batch_size=4 --steps 5
    python scripts/benchmark.py experiment=aloha_sim_transfer_cube data.dataset_dir=DIR \
        training.batch_size=64 --steps 50 --compile --json bench.json
    python scripts/benchmark.py --make-episodes /tmp/eps480 --episodes 4 --length 50 \
        data.num_workers=2 --only data

Prints a table on stdout and, with --json FILE, writes every number. See act_hydra/benchmark.py.
"""

from __future__ import annotations

import sys

from act_hydra.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
