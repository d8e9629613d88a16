"""PSIS-LOO against the held-out density and out-of-distribution detection: the command line of
:mod:`bayesdrop.experiments.analysis`, which holds the protocol and the table.

Usage::

    python benchmarks/analysis.py [--seeds 0,1,2] [--methods bernoulli,vbd,sparse-vd] [--num-samples 200]
                                  [--out benchmarks/results/analysis.md]
"""

from __future__ import annotations

from _common import RESULTS

from bayesdrop.experiments import analysis


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the record (by default
    ``benchmarks/results/analysis.md``)."""
    analysis.main(argv, default_out=RESULTS / "analysis.md")


if __name__ == "__main__":
    main()
