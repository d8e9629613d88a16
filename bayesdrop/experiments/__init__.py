"""Experiment protocols shared by the tests, the benchmarks and the command line.

:mod:`~bayesdrop.experiments.runs` turns a run configuration into data, model and guide (and rebuilds a run
directory); :mod:`~bayesdrop.experiments.compare` trains every method on one budget into one table;
:mod:`~bayesdrop.experiments.defaults` is the defaults matrix: every registered method trained with the library's
defaults against a plain PyTorch network of the same architecture and budget.

The protocols of the scripts in ``benchmarks/`` (each script is their command line and writes the record in
``benchmarks/results/``): :mod:`~bayesdrop.experiments.speed`, the per-epoch time of ``bd.fit`` against hand-written
PyTorch loops; :mod:`~bayesdrop.experiments.compression`, LeNet-300-100 and LeNet-5 analogs pruned by learned dropout
rates; :mod:`~bayesdrop.experiments.sparse_vs_bernoulli`, the accuracy of ``sparse-vd`` and ``vbd`` against Bernoulli
dropout at high sparsity; :mod:`~bayesdrop.experiments.sal_width`, architecture selection with SAL (Srinivas & Babu
2016, Table 1); :mod:`~bayesdrop.experiments.input_gates`, the Dropout++ input-gate map (their Figure 2g);
:mod:`~bayesdrop.experiments.boosting`, dropout boosting against dropout (Warde-Farley et al. 2014);
:mod:`~bayesdrop.experiments.concrete`, Concrete dropout's learned rates against a grid (Gal et al. 2017);
:mod:`~bayesdrop.experiments.cnn_dropout` and :mod:`~bayesdrop.experiments.rnn_dropout`, the dropouts of
convolutional and recurrent networks side by side; :mod:`~bayesdrop.experiments.mc_dropout_gp`, MC dropout's
extrapolation and rotated-digit results (Gal & Ghahramani 2016); :mod:`~bayesdrop.experiments.peers`, ``bd.fit``
against other Bayesian deep learning libraries (bayesian-torch, torchbnn, blitz, torch-uncertainty, TyXe, Pyro's
``AutoNormal``), each beside a hand-written floor; :mod:`~bayesdrop.experiments.lr_warmup`, ``bd.fit`` with and
without its learning-rate warm-up; :mod:`~bayesdrop.experiments.bayesianize_inputs`, ``bd.bayesianize``'s input rule
against ``bd.models.mlp``.  These six are imported by name
(``from bayesdrop.experiments import rnn_dropout``).
:mod:`~bayesdrop.experiments.report_io` describes the machine and writes a record.

Example
-------
>>> from bayesdrop.experiments import sparse_vs_bernoulli as svb
>>> rows = svb.run(["bernoulli", "vbd"], splits=1, seeds=1, epochs=200, lr=1e-2)  # doctest: +SKIP
>>> print(svb.markdown(rows, "my run"))  # doctest: +SKIP
"""

from . import (
    boosting,
    compare,
    compression,
    concrete,
    defaults,
    input_gates,
    report_io,
    runs,
    sal_width,
    sparse_vs_bernoulli,
    speed,
)

__all__ = [
    "boosting",
    "compare",
    "compression",
    "concrete",
    "defaults",
    "input_gates",
    "report_io",
    "runs",
    "sal_width",
    "sparse_vs_bernoulli",
    "speed",
]
