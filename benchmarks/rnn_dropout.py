"""Dropout in recurrent networks (LSTM classifiers on digits and MNIST-1D sequences, forecasters on CO2 and
sunspots; the training time against a hand-written loop): the command line of
:mod:`bayesdrop.experiments.rnn_dropout`, which holds the protocol, the configurations and the statistics.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/rnn_dropout.py [--task {digits,mnist1d,co2,sunspots,speed}] [--seeds 3]
        [--epochs E] [--jobs 2] [--configs NAME ...] [--eval-samples 100] [--hidden H]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import rnn_dropout


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the task's section of the record (by default
    ``benchmarks/results/rnn_dropout.md``, keeping the other tasks' sections)."""
    return rnn_dropout.main(argv, default_out=RESULTS / "rnn_dropout.md")


if __name__ == "__main__":
    sys.exit(main())
