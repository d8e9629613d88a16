"""benchmarks/speed.py: the hand-written LRT baseline computes what a bd.fit step computes, and the ratio statistic."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import pyro
import pytest
import torch

import bayesdrop as bd
from bayesdrop.infer import LocalReparameterization, MeanFieldELBO

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import speed  # noqa: E402


@pytest.mark.parametrize("method", speed.GAUSSIAN_METHODS)
def test_plain_lrt_baseline_computes_the_same_loss_as_a_fit_step(method):
    """Same parameters and random stream: the baseline's minibatch loss (cross-entropy * N / B + KL) equals
    ``MeanFieldELBO``'s trace-free loss under ``LocalReparameterization(draw_weights=False)``, as ``bd.fit`` runs
    it (for ``vbd`` up to the constant n_gamma log(b - a) of the gamma sites), and so do the gradients."""
    widths, n, b = [6, 9, 7, 3], 50, 16
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(b, widths[0], generator=g), torch.randint(0, widths[-1], (b,), generator=g)
    model = bd.Classifier(bd.models.mlp(widths[0], widths[1:-1], widths[-1], method), num_data=n)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    net = speed.PlainLRTNet(widths)
    layers = [(layer, params) for _, layer, params in guide.pairs()]
    with torch.no_grad():
        for i, (layer, params) in enumerate(layers):
            params.log_sigma2.copy_(torch.randn(layer.weight_shape, generator=g) - 4)  # log alpha on both sides of 0
            net.theta[i].copy_(params.weight)
            net.log_sigma2[i].copy_(params.log_sigma2)
            net.bias[i].copy_(layer.bias)
    torch.manual_seed(1)
    plain = torch.nn.functional.cross_entropy(net(x), y, reduction="sum") * (n / b) + net.kl(method)
    torch.manual_seed(1)
    with pyro.validation_enabled(False), LocalReparameterization(draw_weights=False):
        ours = MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)
    constant = sum(layer.method.kl_constant(layer) for layer, _ in layers) if method == "vbd" else 0.0
    assert ours.item() - constant == pytest.approx(plain.item(), rel=1e-5)
    ours_grads = torch.autograd.grad(ours, [p.weight for _, p in layers] + [p.log_sigma2 for _, p in layers])
    plain_grads = torch.autograd.grad(plain, [*net.theta, *net.log_sigma2])
    for a, c in zip(ours_grads, plain_grads):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def test_interleave_reports_the_median_of_pairwise_ratios():
    """The ratio is the median of the per-pair ratios, not the ratio of the median times: with pairs whose
    ratios are 1.1, 1.3, 1.2, 1.2, 1.25 and baseline times that drift, the first is 1.2, the second would be 1.3."""
    plain = iter([0.01, 0.01, 0.03, 0.02, 0.04, 0.05])  # warm-up, then five pairs
    ratio = iter([1.0, 1.1, 1.3, 1.2, 1.2, 1.25])
    last = {}

    class Result:
        def __init__(self, seconds: float) -> None:
            self.history = {"seconds": [seconds]}

    def run_plain() -> None:
        last["t"] = t = next(plain)
        end = speed.time.perf_counter() + t
        while speed.time.perf_counter() < end:  # busy-wait: overshoots by microseconds
            pass

    def run_bd() -> Result:
        return Result(next(ratio) * last["t"])

    out = speed.interleave(run_plain, run_bd, torch.device("cpu"), 5)
    assert out["ratio"] == pytest.approx(1.2, rel=0.01)
    assert out["plain"] == pytest.approx(0.03, rel=0.01) and out["bayesdrop"] / out["plain"] == pytest.approx(
        1.3, rel=0.02
    )
    q1, _, q3 = statistics.quantiles([1.1, 1.3, 1.2, 1.2, 1.25], n=4)
    assert out["q1"] == pytest.approx(q1, rel=0.01) and out["q3"] == pytest.approx(q3, rel=0.01)
