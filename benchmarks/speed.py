"""Per-epoch training time of ``bd.fit`` against plain PyTorch: the command line of
:mod:`bayesdrop.experiments.speed`, which holds the baselines, the protocol and the targets.

Usage::

    python benchmarks/speed.py [--device auto] [--repeats 5] [--epochs 4] [--parts configs sweep validation compile]
        [--widths 100 300 1000 3000] [--batches 32 128 512 2048] [--out benchmarks/results/speed.md]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import speed


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), measure, and write the record (by default
    ``benchmarks/results/speed.md``)."""
    return speed.main(argv, default_out=RESULTS / "speed.md")


if __name__ == "__main__":
    sys.exit(main())
