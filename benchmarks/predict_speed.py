"""Monte Carlo prediction, vectorised against looped: the command line of
:mod:`bayesdrop.experiments.predict_speed`, which holds the protocol.

Usage::

    python benchmarks/predict_speed.py [--device auto] [--repeats 5] [--out benchmarks/results/predict_speed.md]
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

from _common import RESULTS  # noqa: E402

from bayesdrop.experiments import predict_speed  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), measure, and write the record (by default
    ``benchmarks/results/predict_speed.md``)."""
    return predict_speed.main(argv, default_out=RESULTS / "predict_speed.md")


if __name__ == "__main__":
    sys.exit(main())
