"""Dropout in convolutional networks (LeNet-5 analogs on digits, MNIST-1D or MNIST): the command line of
:mod:`bayesdrop.experiments.cnn_dropout`, which holds the protocol, the configurations and the statistics.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/cnn_dropout.py [--dataset {digits,mnist1d,mnist}] [--mnist-dir DIR]
        [--seeds 3] [--epochs E] [--jobs 2] [--configs NAME ...] [--eval-samples 100]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import cnn_dropout


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the data set's section of the record (by
    default ``benchmarks/results/cnn_dropout.md``, keeping the other data sets' sections)."""
    return cnn_dropout.main(argv, default_out=RESULTS / "cnn_dropout.md")


if __name__ == "__main__":
    sys.exit(main())
