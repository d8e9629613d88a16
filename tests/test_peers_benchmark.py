"""bayesdrop.experiments.peers (benchmarks/peers.py): the weight-sampling floor computes what it claims, the ratio
statistic, the interleaving of contender and floor epochs, a missing peer reported rather than raised, and the quick
record with one row per contender."""

from __future__ import annotations

import re
import statistics

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_same_loss_and_gradients, plain_twin_losses

from bayesdrop.experiments import peers


def test_weight_sampling_floor_kl_is_the_closed_form_gaussian_kl():
    """``PlainWeightSamplingNet.kl`` equals the sum of torch's KL(N(mu, exp(log_sigma)^2) || N(0, s_p^2))."""
    torch.manual_seed(0)
    net = peers.PlainWeightSamplingNet([5, 7, 3], init_scale=0.3, prior_scale=0.7).double()
    with torch.no_grad():
        for log_sigma in net.log_sigma:
            log_sigma.copy_(torch.randn_like(log_sigma) - 1)
    expected = sum(
        torch.distributions.kl_divergence(
            torch.distributions.Normal(mu, log_sigma.exp()),
            torch.distributions.Normal(0.0, torch.tensor(0.7, dtype=torch.float64)),
        ).sum()
        for mu, log_sigma in zip(net.mu, net.log_sigma)
    )
    assert net.kl().detach().item() == pytest.approx(float(expected.detach()), abs=1e-6)
    assert torch.allclose(peers.PlainWeightSamplingNet([4, 2], init_scale=0.05).log_sigma[0].exp(), torch.tensor(0.05))


def test_weight_sampling_floor_draws_one_weight_matrix_per_pass():
    """One forward pass: w = mu + exp(log_sigma) eps for each layer, F.linear, ReLU between the layers."""
    net = peers.PlainWeightSamplingNet([4, 6, 3], init_scale=0.2)
    x = torch.randn(5, 4)
    torch.manual_seed(3)
    out = net(x)
    torch.manual_seed(3)
    h = x
    for i, (mu, log_sigma, b) in enumerate(zip(net.mu, net.log_sigma, net.bias)):
        h = F.linear(h, mu + log_sigma.exp() * torch.randn_like(mu), b)
        h = torch.relu(h) if i == 0 else h
    torch.testing.assert_close(out, h)


def test_sparse_vd_weight_sampling_floor_computes_bd_fits_loss_without_lrt():
    """Same parameters and random stream: ``PlainSparseWeightNet``'s minibatch loss (cross-entropy * N / B + the
    sparse-VD KL) equals ``MeanFieldELBO``'s loss of ``sparse-vd`` with its weights drawn, as ``bd.fit(...,
    lrt=False)`` runs it, and so do the gradients."""
    assert_same_loss_and_gradients(*plain_twin_losses("sparse-vd", peers.PlainSparseWeightNet, lrt=False))
    assert peers.contender("bd-sparse-vd-weights").floor == "weights-svd"


def test_ratio_stats_pairs_rounds_and_skips_the_first():
    contender = [9.0, 2.0, 2.2, 3.0]
    floor = [1.0, 1.0, 2.0, 2.0]
    out = peers.ratio_stats(contender, floor)
    ratios = [2.0, 1.1, 1.5]
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    assert out["ratio"] == pytest.approx(1.5) and out["q1"] == pytest.approx(q1) and out["q3"] == pytest.approx(q3)
    assert out["contender"] == pytest.approx(2.2) and out["floor"] == pytest.approx(2.0) and out["rounds"] == 3
    one = peers.ratio_stats([5.0, 3.0], [1.0, 2.0])
    assert one["ratio"] == one["q1"] == one["q3"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="one floor epoch per contender epoch"):
        peers.ratio_stats([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="need more than 1 rounds"):
        peers.ratio_stats([1.0], [1.0])


def test_measure_runs_one_floor_epoch_right_after_each_contender_epoch(monkeypatch):
    """Each round: the contender's epoch, then the floor's; the times are the thread clock's differences."""
    clock, log = [0.0], []

    class Fake(peers.Trainer):
        def __init__(self, name, seconds):
            self.name, self.seconds = name, seconds

        def epoch(self):
            log.append(self.name)
            clock[0] += self.seconds

        def predict_proba(self, x, draws):
            return torch.nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()

    monkeypatch.setattr(peers.time, "thread_time", lambda: clock[0])
    monkeypatch.setitem(peers.FLOORS, "fake", ("fake floor", lambda setup: Fake("floor", 1.0)))
    fake = peers.Contender("fake", "fake", "fake", None, lambda setup: Fake("contender", 3.0), "")
    row = peers.measure(fake, peers.configs(quick=True)[1], epochs=3, draws=1)
    assert log == ["contender", "floor"] * 3
    assert row["ratio"] == pytest.approx(3.0) and row["floor"] == pytest.approx(1.0) and row["rounds"] == 2
    assert 0.0 <= row["acc"] <= 1.0 and row["acc"] == row["floor_acc"]


def test_a_missing_or_broken_peer_is_reported_not_raised():
    missing = peers.Peer("no-such-peer-distribution", peers._modules("no_such_peer_module"))
    objs, reason = peers.load_peer(missing)
    assert objs is None and reason == "not installed (`pip install --no-deps no-such-peer-distribution`)"

    def broken():
        raise RuntimeError("compiled against another torch\nmore detail")

    objs, reason = peers.load_peer(peers.Peer("torch", broken))  # installed, but its import fails
    assert objs is None and reason == "does not import: RuntimeError: compiled against another torch"


def _summary_rows(text: str) -> list[list[str]]:
    block = text.split("## Contender / its floor", 1)[1].split("\n\n## ", 1)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ")][1:]  # after the heading row
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


def test_quick_run_writes_one_row_per_contender(tmp_path, monkeypatch):
    """``main(["--quick", ...])``: one row per contender in the ratio table, in order, with its floor; a peer that is
    not installed gets its reason there and dashes; every measured cell is a ratio with its interquartile range."""
    monkeypatch.setitem(
        peers.PEERS, "torchbnn", peers.Peer("no-such-peer-distribution", peers._modules("no_such_peer_module"))
    )
    out = tmp_path / "peers.md"
    assert peers.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    rows = _summary_rows(text)
    assert [r[0] for r in rows] == [f"{c.name} / {peers.FLOORS[c.floor][0]}" for c in peers.CONTENDERS]
    configs = peers.configs(quick=True)
    for c, row in zip(peers.CONTENDERS, rows):
        cells, reason = row[1:-1], row[-1]
        assert len(cells) == len(configs)
        if c.key == "torchbnn":
            assert reason == "torchbnn: not installed (`pip install --no-deps no-such-peer-distribution`)"
            assert cells == ["—"] * len(configs)
        elif reason:  # a peer this machine lacks (the CI installs none): reported, not measured
            assert c.peer is not None and reason.startswith(f"{c.peer}: ")
        else:
            assert all(re.fullmatch(r"\d+\.\d\dx \(\d+\.\d\d-\d+\.\d\d\)", cell) for cell in cells), row
    for cfg in configs:
        assert f"## {cfg.label}" in text
    assert "| torchbnn | — | not installed" in text
    assert "Command: `python benchmarks/peers.py --quick`" in text or "benchmarks/peers.py --quick`" in text
    assert "Device: CPU" in text
