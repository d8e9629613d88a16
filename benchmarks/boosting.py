"""Dropout boosting against standard dropout on digits or MNIST-1D (Warde-Farley et al. 2014): the command line
of :mod:`bayesdrop.experiments.boosting`, which holds the protocol, the statistics and the claim.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/boosting.py [--dataset {digits,mnist1d}] [--seeds 3] [--epochs 200]
        [--masks 4] [--lr 1e-2] [--eval-samples 100]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import boosting


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the data set's section of the record (by
    default ``benchmarks/results/boosting.md``, keeping the other data sets' sections)."""
    return boosting.main(argv, default_out=RESULTS / "boosting.md")


if __name__ == "__main__":
    sys.exit(main())
