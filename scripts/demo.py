"""``hatch run demo``: train every present package's model briefly on embedded data.

Offline, CPU only, a few minutes on 2 cores. Prints one table and writes it to
experiments_results/demo.csv. Options: ``--only NAME ...``, ``--out CSV``, ``--quiet``.
"""

from bnn_shared.cli import run_cli
from bnn_shared.demo import main

if __name__ == "__main__":
    raise SystemExit(run_cli(main))
