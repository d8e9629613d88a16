"""Concrete dropout's learned drop rates on digits, against a grid search and as the data grow: the command line of
:mod:`bayesdrop.experiments.concrete`, which holds the protocol, the statistics and the claims.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/concrete.py [--seeds 3] [--epochs 100] [--grid 0.1 0.2 0.3 0.4 0.5 0.6]
"""

from __future__ import annotations

from typing import Any

from _common import RESULTS

from bayesdrop.experiments import concrete


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the record (by default
    ``benchmarks/results/concrete.md``)."""
    return concrete.main(argv, default_out=RESULTS / "concrete.md")


if __name__ == "__main__":
    main()
