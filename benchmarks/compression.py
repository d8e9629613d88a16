"""Compression and architecture selection: the command line of :mod:`bayesdrop.experiments.compression`, which holds
the networks, the methods, the protocol and the table.

Usage::

    python benchmarks/compression.py                                  # digits and mnist1d, both networks
    python benchmarks/compression.py --datasets digits --archs mlp    # the 64-300-100-10 claims only
    python benchmarks/compression.py --mnist-dir ~/data/mnist         # adds MNIST

``make bench`` runs it after ``benchmarks/speed.py``.
"""

from __future__ import annotations

from _common import RESULTS

from bayesdrop.experiments import compression


def main(argv: list[str] | None = None) -> list[compression.Result]:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the record (by default
    ``benchmarks/results/compression.md``)."""
    return compression.main(argv, default_out=RESULTS / "compression.md")


if __name__ == "__main__":
    main()
