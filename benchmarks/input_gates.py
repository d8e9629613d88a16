"""The input-gate map of Srinivas & Babu (2016), Figure 2g, on the 8x8 digits: the command line of
:mod:`bayesdrop.experiments.input_gates`, which holds the protocol and the figure.

Usage::

    python benchmarks/input_gates.py [--method "dropout++(0)"] [--epochs 100] [--out benchmarks/results/input_gates.png]
"""

from __future__ import annotations

from _common import RESULTS

from bayesdrop.experiments import input_gates


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), learn the map, and save the figure (by default
    ``benchmarks/results/input_gates.png``)."""
    input_gates.main(argv, default_out=RESULTS / "input_gates.png")


if __name__ == "__main__":
    main()
