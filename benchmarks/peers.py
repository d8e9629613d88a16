"""Training time and accuracy of bayesdrop against other Bayesian deep learning libraries, each beside its floor:
the command line of :mod:`bayesdrop.experiments.peers`, which holds the floors, the contenders and the protocol.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/peers.py [--epochs 30] [--rounds 6] [--draws 20] [--quick]
        [--out benchmarks/results/peers.md]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import peers


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), measure, and write the record (by default
    ``benchmarks/results/peers.md``)."""
    return peers.main(argv, default_out=RESULTS / "peers.md")


if __name__ == "__main__":
    sys.exit(main())
