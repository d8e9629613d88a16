"""Scaling out (time against N, one process against two, prediction memory): the command line of
:mod:`bayesdrop.experiments.scale`, which holds the protocol.

Usage::

    python benchmarks/scale.py [--max-n 1000000] [--epochs 30] [--predict-n 100000] [--out benchmarks/results/scale.md]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import RESULTS  # noqa: E402

from bayesdrop.experiments import scale  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), measure, and write the record (by default
    ``benchmarks/results/scale.md``)."""
    return scale.main(argv, default_out=RESULTS / "scale.md")


if __name__ == "__main__":
    sys.exit(main())
