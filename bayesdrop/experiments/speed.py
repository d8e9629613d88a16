"""Per-epoch training time of ``bd.fit`` against plain PyTorch, in one process.

For maintainers checking the library's speed targets: ``benchmarks/speed.py`` is the command line that writes
``benchmarks/results/speed.md``, ``tests/test_speed_benchmark.py`` checks the baselines and the statistic.

Baseline: a hand-written PyTorch loop of the same network (``nn.Dropout`` before
each ``nn.Linear``, as ``bd.models.mlp`` drops each layer's inputs), the same
data, batch size, Adam and learning rate.

Protocol: ``--repeats`` times, a baseline network and a bayesdrop model are
built from the same seed and trained side by side for ``--epochs`` epochs,
each with one optimiser throughout, as in real training: ``bd.fit`` runs its
epochs, and its ``callback`` runs one baseline epoch after each of them, so
every bayesdrop epoch has a baseline epoch next to it in time.  The ratio of
such a pair is bayesdrop's epoch time (``fit``'s own timer) over the
baseline's.  Reported: the median and quartiles of the pairs' ratios from the
second epoch on (the first warms up), over all repeats, and the median epoch
times.  Training both from scratch side by side matters on a CPU: the cost of an
epoch drifts as a network trains (elementwise kernels ran 2-3x slower in early
epochs than later on the development machine), and the machine's speed drifts
from second to second.

Usage::

    python benchmarks/speed.py [--device auto] [--repeats 5] [--epochs 4] [--out benchmarks/results/speed.md]

Targets, on the network of real width (40-1024-1024-10): ``bernoulli`` at most 1.3x the plain loop;
``sparse-vd`` (Molchanov et al. 2017) and ``vbd`` (Liu et al. 2019) at most 1.15x a hand-written loop of the same
local reparameterisation estimator (Kingma et al. 2015) and closed-form KL.  ``bd.fit`` runs with Pyro's validation
off (``validate=False``), the setting for speed; with it on, Pyro checks every step.

Example
-------
>>> import torch
>>> from bayesdrop.experiments import speed
>>> row = speed.measure("vbd", "digits", [300, 100], 128, torch.device("cpu"), repeats=1, epochs=2)  # doctest: +SKIP
>>> row["ratio"]  # median of bd.fit's epoch time over the hand-written loop's  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = [
    "CONFIGS",
    "GAUSSIAN_METHODS",
    "PlainLRTNet",
    "bd_fit_epochs",
    "compare_runs",
    "gaussian_section",
    "main",
    "measure",
    "plain_dropout_net",
    "plain_epoch",
    "plain_lrt_epoch",
    "timed",
]

# (dataset, hidden widths, batch size, epochs as a multiple of --epochs): a small and a large configuration.  A
# digits epoch is ~20x shorter than a mnist1d one, so its runs are 4x longer, for a comparable number of steps.
CONFIGS = [("digits", [300, 100], 128, 4), ("mnist1d", [1024, 1024], 128, 1), ("mnist1d", [1024, 1024], 512, 1)]

EpochCallback = Callable[[int, dict[str, list[float]]], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_dropout_net(in_features: int, hidden: list[int], out_features: int, p: float) -> torch.nn.Sequential:
    """The Bernoulli baseline: ``nn.Dropout(p)`` before each ``nn.Linear``, ReLU between the layers.

    Parameters
    ----------
    in_features, hidden, out_features
        The widths, as those of ``bd.models.mlp``.
    p
        The drop probability of every layer's inputs.

    Returns
    -------
    torch.nn.Sequential
    """
    widths = [in_features, *hidden, out_features]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [torch.nn.Dropout(p), torch.nn.Linear(a, b)]
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def plain_epoch(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    weight_decay_scale: float,
) -> None:
    """One epoch of the baseline: cross-entropy * N plus the same Gaussian-prior penalty.

    Parameters
    ----------
    net, opt
        The baseline network and its optimiser.
    x, y
        The training set, on the device of ``net``.
    batch_size
        Examples per step, in a fresh random order each epoch.
    weight_decay_scale
        Factor of the sum of squared weights (0.5 for the N(0, 1) prior).
    """
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = loss + weight_decay_scale * sum(
            (p * p).sum() for name, p in net.named_parameters() if name.endswith("weight")
        )
        loss.backward()
        opt.step()


def timed(run_epoch: Callable[[], None], device: torch.device) -> float:
    """Seconds of one call of ``run_epoch`` (a baseline epoch), the device synchronised on both sides."""
    _sync(device)
    t0 = time.perf_counter()
    run_epoch()
    _sync(device)
    return time.perf_counter() - t0


def bd_fit_epochs(
    model: bd.Classifier,
    guide: bd.DropoutGuide,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    epochs: int,
    seed: int,
    device: torch.device,
    callback: EpochCallback,
) -> list[float]:
    """Seconds of each epoch of one ``bd.fit`` run with Adam at lr 1e-3, as the plain loops (``fit``'s timer).

    ``callback`` is ``fit``'s: it runs after each epoch, outside the epoch's timer.
    """
    res = bd.fit(
        model, guide, (x, y), epochs=epochs, batch_size=batch_size, lr=1e-3, device=device, seed=seed,
        kl_warmup=0, lr_decay=None, progress=False, callback=callback, validate=False,
    )  # fmt: skip
    return res.history["seconds"]


def compare_runs(
    make_plain: Callable[[int], Callable[[], None]],
    bd_run: Callable[[int, int, EpochCallback], list[float]],
    repeats: int,
    epochs: int,
    device: torch.device,
) -> dict[str, float]:
    """Median and quartiles of the per-epoch ratios ``bd / plain`` (epochs 2.., all repeats).

    Parameters
    ----------
    make_plain
        ``make_plain(seed)`` builds a baseline network and optimiser and returns a function running one epoch.
    bd_run
        ``bd_run(seed, epochs, callback)`` builds a bayesdrop model from ``seed``, trains it with ``bd.fit(...,
        callback=callback)`` and returns the seconds of each epoch.  The callback runs one baseline epoch.
    repeats, epochs
        Pairs of runs, and epochs of each (at least 2: the first is a warm-up).
    device
        Synchronised around each baseline epoch.

    Returns
    -------
    dict
        ``plain`` and ``bayesdrop``: median seconds per epoch; ``ratio``, ``q1``, ``q3``: median and quartiles of
        the ratios.
    """
    if epochs < 2:
        raise ValueError(f"`epochs` must be at least 2 (the first is a warm-up), got {epochs!r}")
    plain: list[float] = []
    ours: list[float] = []
    for r in range(repeats):
        run_plain = make_plain(r)
        times: list[float] = []

        def after_epoch(epoch: int, history: dict, run_plain=run_plain, times=times) -> None:
            times.append(timed(run_plain, device))

        seconds = bd_run(r, epochs, after_epoch)
        plain += times[1:]
        ours += seconds[1:]
    ratios = [b / p for p, b in zip(plain, ours)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {
        "plain": statistics.median(plain),
        "bayesdrop": statistics.median(ours),
        "ratio": statistics.median(ratios),
        "q1": q1,
        "q3": q3,
    }


def measure(
    method: str, dataset: str, hidden: list[int], batch_size: int, device: torch.device, repeats: int, epochs: int
) -> dict[str, Any]:
    """One row: ``method`` (``"bernoulli"`` with p = 0.5, or one of :data:`GAUSSIAN_METHODS`) against its baseline,
    ``nn.Dropout`` with the N(0, 1) weight penalty or the hand-written LRT loop.

    Returns
    -------
    dict
        ``method``, ``dataset``, ``arch``, ``batch`` and the statistics of :func:`compare_runs`.
    """
    ds = bd.data.load(dataset)
    num_classes = ds.num_classes
    assert num_classes is not None, "a classification data set"
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    # bernoulli: p = 0.5 on every layer's inputs, as the baseline's nn.Dropout before each nn.Linear
    hyper: dict[str, Any] = (
        {"p": 0.5, "input_method": bd.methods.get("bernoulli", p=0.5)} if method == "bernoulli" else {}
    )

    def make_plain(seed: int) -> Callable[[], None]:
        torch.manual_seed(seed)
        if method == "bernoulli":
            net = plain_dropout_net(ds.in_features, hidden, num_classes, 0.5).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            return lambda: plain_epoch(net, opt, x, y, batch_size, 0.5)  # 0.5 w^2 / s^2, s = 1: the N(0, 1) prior
        lrt = PlainLRTNet([ds.in_features, *hidden, num_classes]).to(device)
        lrt_opt = torch.optim.Adam(lrt.parameters(), lr=1e-3)
        return lambda: plain_lrt_epoch(lrt, lrt_opt, x, y, batch_size, method)

    def bd_run(seed: int, epochs: int, callback: EpochCallback) -> list[float]:
        torch.manual_seed(seed)
        model = bd.Classifier(bd.models.mlp(ds.in_features, hidden, num_classes, method, **hyper), len(x))
        return bd_fit_epochs(model, bd.DropoutGuide(model), x, y, batch_size, epochs, seed, device, callback)

    row = {"method": method, "dataset": dataset, "arch": _arch(ds, hidden), "batch": batch_size}
    return row | compare_runs(make_plain, bd_run, repeats, epochs, device)


def _arch(ds: bd.data.Dataset, hidden: list[int]) -> str:
    return f"{ds.in_features}-{'-'.join(map(str, hidden))}-{ds.num_classes}"


# -- Gaussian family: sparse-vd and vbd against a hand-written LRT loop ------------------------------------------
#
# Baseline: the same network as ``bd.models.mlp`` with every layer's weights Gaussian (theta, log sigma^2 per
# weight, additive parameterisation), trained with the same local reparameterisation estimator
# (b = x theta^T + sqrt((x * x) exp(log sigma^2)^T) eps + bias) and the same KL in closed form: Molchanov et
# al. (2017)'s approximation with log alpha clipped to [-10, 10] (sparse-vd), sum 0.5 log(1 + 1/alpha) (vbd, Liu et
# al. 2019, eq. 18).
# Same data, batch size, Adam and learning rate; the protocol of the module docstring.

GAUSSIAN_METHODS = ["sparse-vd", "vbd"]


class PlainLRTNet(torch.nn.Module):
    """MLP with Gaussian weights N(theta, sigma^2) trained by the local reparameterisation trick.

    Parameters
    ----------
    widths
        Input, hidden and output widths.
    log_sigma2_init
        Initial log sigma^2 of every weight.
    """

    def __init__(self, widths: list[int], log_sigma2_init: float = -10.0):
        super().__init__()
        self.theta = torch.nn.ParameterList()
        self.log_sigma2 = torch.nn.ParameterList()
        self.bias = torch.nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            ref = torch.nn.Linear(a, b)
            self.theta.append(torch.nn.Parameter(ref.weight.detach().clone()))
            self.log_sigma2.append(torch.nn.Parameter(torch.full_like(ref.weight, log_sigma2_init)))
            self.bias.append(torch.nn.Parameter(ref.bias.detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``, with one draw of the pre-activations of each layer."""
        n = len(self.theta)
        for i, (th, ls2, b) in enumerate(zip(self.theta, self.log_sigma2, self.bias)):
            mean = x @ th.T
            var = (x * x) @ ls2.exp().T
            x = mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean) + b
            if i < n - 1:
                x = torch.relu(x)
        return x

    def kl(self, method: str) -> torch.Tensor:
        """The closed-form KL of every weight: Molchanov et al. (2017)'s approximation for ``"sparse-vd"``, sum
        0.5 log(1 + 1/alpha) otherwise (``"vbd"``)."""
        total = self.theta[0].new_zeros(())
        for th, ls2 in zip(self.theta, self.log_sigma2):
            log_alpha = ls2 - (th * th + 1e-16).log()
            if method == "sparse-vd":
                k1, k2, k3 = 0.63576, 1.87320, 1.48695
                la = log_alpha.clamp(-10.0, 10.0)
                kl = k1 - k1 * torch.sigmoid(k2 + k3 * la) + 0.5 * torch.nn.functional.softplus(-la)
            else:
                kl = 0.5 * torch.nn.functional.softplus(-log_alpha)
            total = total + kl.sum()
        return total


def plain_lrt_epoch(
    net: PlainLRTNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int, method: str
) -> None:
    """One epoch of the LRT baseline: cross-entropy * N / B plus ``net.kl(method)`` per step."""
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        nll = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = nll + net.kl(method)
        loss.backward()
        opt.step()


def gaussian_section(device: torch.device, repeats: int, epochs: int) -> list[str]:
    """Markdown lines of the sparse-vd / vbd comparison (target on 40-1024-1024-10: at most 1.15x)."""
    rows = [measure(m, d, h, b, device, repeats, epochs * k) for m in GAUSSIAN_METHODS for d, h, b, k in CONFIGS]
    lines = [
        "",
        "## `sparse-vd` and `vbd` against a hand-written LRT loop (target on 40-1024-1024-10: at most 1.15x)",
        "",
        "Baseline: the same MLP with Gaussian weights (theta, log sigma^2), the same local reparameterisation "
        "estimator and the same closed-form KL (Molchanov's approximation / sum 0.5 log(1 + 1/alpha)) in plain "
        "PyTorch; `bd.fit` uses `MeanFieldELBO` with the registered KLs and `LocalReparameterization`.",
        "",
        "| method | data | network | batch | plain PyTorch s/epoch | bd.fit s/epoch | ratio | ratio IQR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['method']} " + _cells(r) for r in rows]
    return lines


def _cells(r: dict[str, Any]) -> str:
    """The shared table cells of a row, from the data set to the ratio's interquartile range."""
    return (
        f"| {r['dataset']} | {r['arch']} | {r['batch']} | {r['plain']:.4f} | {r['bayesdrop']:.4f} | "
        f"{r['ratio']:.2f}x | {r['q1']:.2f}-{r['q3']:.2f}x |"
    )


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/speed.md") -> int:
    """The command line of ``benchmarks/speed.py``: measure every row and write the Markdown record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    int
        The exit status, 0.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    device = bd.infer.resolve_device(args.device)
    rows = [measure("bernoulli", d, h, b, device, args.repeats, args.epochs * k) for d, h, b, k in CONFIGS]
    lines = [
        "# Training speed: `bd.fit` against a plain PyTorch loop",
        "",
        f"Device: {device_name(device)}.  {args.repeats} repeats; in each, a baseline network and a bayesdrop model "
        f"built from the same seed train side by side for {args.epochs} epochs ({4 * args.epochs} on digits, whose "
        "epochs are ~20x shorter), each with one optimiser, one baseline epoch after each `bd.fit` epoch (`fit`'s "
        "callback).  Ratio: median and interquartile range of the per-epoch ratios `bd.fit / plain` from the second "
        "epoch on, over all repeats; epoch times are medians.",
        f"Command: `{quoted_command('benchmarks/speed.py', list(sys.argv[1:] if argv is None else argv))}`",
        "",
        "## `bernoulli` (target on 40-1024-1024-10: at most 1.3x)",
        "",
        "| data | network | batch | plain PyTorch s/epoch | bd.fit s/epoch | ratio | ratio IQR |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_cells(r) for r in rows]
    lines += gaussian_section(device, args.repeats, args.epochs)
    write_results("\n".join(lines), args.out)
    return 0
