"""The learning-rate warm-up of ``bd.fit``, ``"auto"`` against none, on real MNIST with a 784-1024-1024-10 MLP and on
the digits; the command line of :mod:`bayesdrop.experiments.lr_warmup`, which holds the protocol.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/lr_warmup.py [--datasets mnist5k digits] [--seeds 2] [--jobs 2]
        [--methods bernoulli gaussian concrete sparse-vd vbd] [--epochs N] [--out FILE]
"""

from __future__ import annotations

import sys

from _common import RESULTS

from bayesdrop.experiments import lr_warmup


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write ``benchmarks/results/lr_warmup.md`` (or ``--out``)."""
    lr_warmup.main(argv, default_out=RESULTS / "lr_warmup.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
