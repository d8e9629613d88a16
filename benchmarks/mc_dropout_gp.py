"""MC dropout as a Bayesian approximation (Gal & Ghahramani 2016): CO2 extrapolated by ReLU and TanH networks and a
rotated digit, as in Gal's MC dropout slides; the command line of :mod:`bayesdrop.experiments.mc_dropout_gp`, which holds
the protocol, the statistics and the figures.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/mc_dropout_gp.py [--regression-epochs 400] [--rotation-epochs 100]
        [--width 1024] [--depth 4] [--samples 100] [--out FILE]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import mc_dropout_gp


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run both experiments, and write the record (by default
    ``benchmarks/results/mc_dropout_gp.md``), its JSON and its two figures."""
    return mc_dropout_gp.main(argv, default_out=RESULTS / "mc_dropout_gp.md")


if __name__ == "__main__":
    sys.exit(main())
