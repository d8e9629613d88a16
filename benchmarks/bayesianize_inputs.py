"""``bd.bayesianize``'s input rule on the digits MLP, against ``bd.models.mlp`` and the method on every layer: the
command line of :mod:`bayesdrop.experiments.bayesianize_inputs`, which holds the protocol.

Usage::

    python benchmarks/bayesianize_inputs.py [--methods bernoulli vd sparse-vd] [--epochs 100] [--out ...]
"""

from __future__ import annotations

from _common import RESULTS

from bayesdrop.experiments import bayesianize_inputs


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (``sys.argv[1:]`` when ``None``), train, and write the record (by default
    ``benchmarks/results/bayesianize_inputs.md``)."""
    bayesianize_inputs.main(argv, default_out=RESULTS / "bayesianize_inputs.md")


if __name__ == "__main__":
    main()
