"""``sparse-vd`` and ``vbd`` against Bernoulli dropout on digits: the command line of
:mod:`bayesdrop.experiments.sparse_vs_bernoulli`, which holds the protocol, the statistics and the claim.

Usage::

    python benchmarks/sparse_vs_bernoulli.py [--splits 3] [--seeds 3] [--epochs 200] [--lr 1e-2]
"""

from __future__ import annotations

from typing import Any

from _common import RESULTS

from bayesdrop.experiments import sparse_vs_bernoulli


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the record (by default
    ``benchmarks/results/sparse_vs_bernoulli.md``)."""
    return sparse_vs_bernoulli.main(argv, default_out=RESULTS / "sparse_vs_bernoulli.md")


if __name__ == "__main__":
    main()
