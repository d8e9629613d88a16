"""Architecture selection with SAL (Srinivas & Babu 2016, Table 1): the command line of
:mod:`bayesdrop.experiments.sal_width`, which holds the priors, the protocol and the table.

Usage::

    python benchmarks/sal_width.py [--epochs 40] [--datasets digits,mnist1d] [--mnist-dir DIR]
                                   [--out benchmarks/results/sal_width.md]
"""

from __future__ import annotations

from _common import RESULTS

from bayesdrop.experiments import sal_width


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), run, and write the record (by default
    ``benchmarks/results/sal_width.md``)."""
    sal_width.main(argv, default_out=RESULTS / "sal_width.md")


if __name__ == "__main__":
    main()
