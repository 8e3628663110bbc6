"""The OSMO sweep generator, ``act-osmo-sweep`` (act_hydra/osmo/cli.py), run from a checkout."""

from act_hydra.osmo.cli import main

raise SystemExit(main())
