"""Per-epoch training time of ``bd.fit`` against plain PyTorch, in one process.

Baseline: a hand-written PyTorch loop of the same network (``nn.Dropout`` before
each ``nn.Linear``, as ``bd.models.mlp`` drops each layer's inputs), the same
data, batch size, Adam and learning rate.  Epochs are interleaved (baseline,
bayesdrop, baseline, ...) after a warm-up epoch of each.  The ratio reported is
the median over ``--repeats`` pairs of the ratio within each pair, with its
interquartile range: adjacent epochs see the same machine load, so a slow
spell of the machine cancels out of the ratio (the medians of the epoch times
themselves are listed as well).

Usage::

    python benchmarks/speed.py [--device auto] [--repeats 15] [--out benchmarks/results/speed.md]

Target (issue 2): ``bernoulli`` at most 1.5x the plain loop.  Issue 4 adds ``sparse-vd`` and ``vbd`` against a
hand-written loop of the same local reparameterisation estimator and closed-form KL (target: at most 1.25x).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from _common import RESULTS, device_name, write_results

import bayesdrop as bd
from bayesdrop.infer import resolve_device

# (dataset, hidden widths, batch size): a small and a large configuration.
CONFIGS = [("digits", [300, 100], 128), ("mnist1d", [1024, 1024], 128), ("mnist1d", [1024, 1024], 512)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_dropout_net(in_features: int, hidden: list[int], out_features: int, p: float) -> torch.nn.Sequential:
    widths = [in_features, *hidden, out_features]
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [torch.nn.Dropout(p), torch.nn.Linear(a, b)]
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def plain_epoch(net, opt, x, y, batch_size, weight_decay_scale: float) -> None:
    """One epoch of the baseline: cross-entropy * N plus the same Gaussian-prior penalty."""
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = loss + weight_decay_scale * sum(
            (p * p).sum() for name, p in net.named_parameters() if name.endswith("weight")
        )
        loss.backward()
        opt.step()


def bd_epoch(model, guide, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device) -> bd.FitResult:
    """One epoch of ``bd.fit`` with Adam at lr 1e-3, as the plain loops.

    ``validate=False``: a long fit validates only its first step; every one-epoch call here would validate one.
    """
    return bd.fit(
        model, guide, (x, y), epochs=1, batch_size=batch_size, lr=1e-3, device=device, seed=None, progress=False,
        validate=False,
    )  # fmt: skip


def measure(
    dataset: str, hidden: list[int], batch_size: int, device: torch.device, repeats: int, p: float = 0.5
) -> dict:
    ds = bd.data.load(dataset)
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    torch.manual_seed(0)
    net = plain_dropout_net(ds.in_features, hidden, ds.num_classes, p).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    model = bd.Classifier(bd.models.mlp(ds.in_features, hidden, ds.num_classes, "bernoulli", p=p), num_data=len(x))
    guide = bd.DropoutGuide(model)

    def run_plain() -> None:
        plain_epoch(net, opt, x, y, batch_size, 0.5)  # 0.5 w^2 / s^2 with s = 1, as the N(0, 1) prior

    row = {"dataset": dataset, "arch": _arch(ds, hidden), "batch": batch_size}
    return row | interleave(run_plain, lambda: bd_epoch(model, guide, x, y, batch_size, device), device, repeats)


def _arch(ds, hidden: list[int]) -> str:
    return f"{ds.in_features}-{'-'.join(map(str, hidden))}-{ds.num_classes}"


def interleave(run_plain, run_bd, device: torch.device, repeats: int) -> dict:
    """Time ``repeats`` interleaved pairs of epochs (after one warm-up of each).

    ``run_bd`` returns a :class:`bayesdrop.FitResult`, whose own epoch timer excludes ``fit``'s set-up.  Returns the
    median epoch times, the median of the per-pair ratios ``bd / plain`` and that ratio's quartiles.
    """

    def time_plain() -> float:
        _sync(device)
        t0 = time.perf_counter()
        run_plain()
        _sync(device)
        return time.perf_counter() - t0

    time_plain(), run_bd()  # warm-up
    plain, ours = [], []
    for _ in range(repeats):
        plain.append(time_plain())
        ours.append(run_bd().history["seconds"][0])
    ratios = [b / p for p, b in zip(plain, ours)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if repeats > 1 else (ratios[0],) * 3
    return {
        "plain": statistics.median(plain),
        "bayesdrop": statistics.median(ours),
        "ratio": statistics.median(ratios),
        "q1": q1,
        "q3": q3,
    }


# -- Gaussian family (issue 4): sparse-vd and vbd against a hand-written LRT loop ---------------------------------
#
# Baseline: the same network as ``bd.models.mlp`` with every layer's weights Gaussian (theta, log sigma^2 per
# weight, additive parameterisation), trained with the same local reparameterisation estimator
# (b = x theta^T + sqrt((x * x) exp(log sigma^2)^T) eps + bias) and the same KL in closed form: Molchanov et
# al.'s approximation with log alpha clipped to [-10, 10] (sparse-vd), sum 0.5 log(1 + 1/alpha) (vbd, eq. 18).
# Same data, batch size, Adam and learning rate; interleaved epochs, median after a warm-up epoch.

GAUSSIAN_METHODS = ["sparse-vd", "vbd"]


class PlainLRTNet(torch.nn.Module):
    """MLP with Gaussian weights N(theta, sigma^2) trained by the local reparameterisation trick."""

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
        n = len(self.theta)
        for i, (th, ls2, b) in enumerate(zip(self.theta, self.log_sigma2, self.bias)):
            mean = x @ th.T
            var = (x * x) @ ls2.exp().T
            x = mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean) + b
            if i < n - 1:
                x = torch.relu(x)
        return x

    def kl(self, method: str) -> torch.Tensor:
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


def plain_lrt_epoch(net: PlainLRTNet, opt, x, y, batch_size: int, method: str) -> None:
    n = len(x)
    for idx in torch.randperm(n, device=x.device).split(batch_size):
        opt.zero_grad(set_to_none=True)
        nll = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx))
        loss = nll + net.kl(method)
        loss.backward()
        opt.step()


def measure_gaussian(
    method: str, dataset: str, hidden: list[int], batch_size: int, device: torch.device, repeats: int
) -> dict:
    ds = bd.data.load(dataset)
    x, y = ds.train.x.to(device), ds.train.y.to(device)
    torch.manual_seed(0)
    net = PlainLRTNet([ds.in_features, *hidden, ds.num_classes]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    model = bd.Classifier(bd.models.mlp(ds.in_features, hidden, ds.num_classes, method), num_data=len(x))
    guide = bd.DropoutGuide(model)

    row = {"method": method, "dataset": dataset, "arch": _arch(ds, hidden), "batch": batch_size}
    return row | interleave(
        lambda: plain_lrt_epoch(net, opt, x, y, batch_size, method),
        lambda: bd_epoch(model, guide, x, y, batch_size, device),
        device,
        repeats,
    )


def gaussian_section(device: torch.device, repeats: int) -> list[str]:
    """Markdown lines of the sparse-vd / vbd comparison (target: at most 1.25x)."""
    rows = [measure_gaussian(m, d, h, b, device, repeats) for m in GAUSSIAN_METHODS for d, h, b in CONFIGS]
    lines = [
        "",
        "## `sparse-vd` and `vbd` against a hand-written LRT loop (target: at most 1.25x)",
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


def _cells(r: dict) -> str:
    """The shared table cells of a row, from the data set to the ratio's interquartile range."""
    return (
        f"| {r['dataset']} | {r['arch']} | {r['batch']} | {r['plain']:.4f} | {r['bayesdrop']:.4f} | "
        f"{r['ratio']:.2f}x | {r['q1']:.2f}-{r['q3']:.2f}x |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default=str(RESULTS / "speed.md"))
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    rows = [measure(d, h, b, device, args.repeats) for d, h, b in CONFIGS]
    lines = [
        "# Training speed: `bd.fit` against a plain PyTorch loop",
        "",
        f"Device: {device_name(device)}; {args.repeats} interleaved pairs of epochs after a warm-up.  "
        "Epoch times are medians; the ratio is the median of the per-pair ratios `bd.fit / plain`, with its "
        "interquartile range.",
        "Command: `python benchmarks/speed.py"
        + (f" --device {args.device}" if args.device != "auto" else "")
        + (f" --repeats {args.repeats}" if args.repeats != 15 else "")
        + "`",
        "",
        "## `bernoulli` (target: at most 1.5x)",
        "",
        "| data | network | batch | plain PyTorch s/epoch | bd.fit s/epoch | ratio | ratio IQR |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_cells(r) for r in rows]
    lines += gaussian_section(device, args.repeats)
    write_results("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
