"""The recurrent-dropout benchmark (:mod:`bayesdrop.experiments.rnn_dropout`): every configuration builds the
network it names, the forecast scores are the mixture's (checked against scipy), a run of each kind of task gives a
record with one row per configuration, the sections of other tasks stay, and the speed verdict follows its target.
Tiny widths, one epoch and a few examples: what is checked is the protocol, not the accuracies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import bayesdrop as bd
from bayesdrop.experiments import rnn_dropout as E


@pytest.mark.parametrize("config", E.CONFIGS)
def test_every_configuration_puts_its_method_where_it_says(config):
    net = E.network(config, 3, 10, 8)
    lstm, head = net.rnn, net.head
    assert isinstance(lstm, bd.nn.LSTM) and lstm.hidden_size == 8 and head.out_features == 10
    expected = {"none": "bernoulli", "naive": "bernoulli"}.get(config, config)
    assert lstm.method.name == expected
    if config == "none":
        assert lstm.method.p == 0 and head.method.p == 0
    elif config == "naive":  # Zaremba et al.: the non-recurrent connections, the head's input too
        assert head.method.p > 0
    else:
        assert not head.method.stochastic


def test_forecast_scores_are_the_mixtures():
    torch.manual_seed(0)
    S, N, H, scale = 7, 11, 4, 2.5
    out, y = torch.randn(S, N, H), torch.randn(N, H)
    noise = torch.rand(H) + 0.2
    got = E.forecast_scores(out, noise, y, scale)
    o, s, t = out.double().numpy(), noise.double().numpy(), y.double().numpy()
    dens = norm.pdf(scale * t, scale * o, scale * s).mean(0)  # the mixture's density in the series' units
    assert got["nll"] == pytest.approx(-np.log(dens).mean(), rel=1e-9)
    assert got["rmse"] == pytest.approx(scale * np.sqrt(((o.mean(0) - t) ** 2).mean()), rel=1e-9)
    u = norm.cdf((t - o) / s).mean(0)
    assert got["coverage"] == pytest.approx(100 * ((u >= 0.05) & (u <= 0.95)).mean())
    std = np.sqrt(o.var(0) + s**2).mean(0) * scale
    assert got["std_first"] == pytest.approx(std[0]) and got["std_last"] == pytest.approx(std[-1])


@pytest.mark.parametrize("task", ["co2", "digits"])
def test_a_tiny_run_writes_a_record_with_a_row_per_configuration(task, tmp_path):
    out = tmp_path / "rnn.md"
    out.write_text(E.TITLE + "\n\n## speed: kept\n\nold speed section\n")
    argv = ["--task", task, "--seeds", "1", "--epochs", "1", "--jobs", "1", "--hidden", "4", "--eval-samples", "3",
            "--configs", "none", "variational-rnn", "--out", str(out)]  # fmt: skip
    assert E.main(argv) == 0
    text = out.read_text()
    assert "old speed section" in text and text.index(f"## {task}:") < text.index("## speed:")
    rows = [line for line in text.splitlines() if line.startswith("| none |") or line.startswith("| variational")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")][2:]
        values = [float(c.split(" ± ")[0]) for c in cells]
        assert all(math.isfinite(v) for v in values)
        if task == "co2":
            assert 0 <= values[2] <= 100  # coverage %
        else:
            assert 0 <= values[0] <= 100 and values[1] > 0  # error %, NLL


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="config"):
        E.network("dropout", 1, 1, 4)
    with pytest.raises(ValueError, match="task"):
        E.one_run("none", 0, task="co3", epochs=1)
    with pytest.raises(ValueError, match="configs"):
        E.run("none", task="co2")
    with pytest.raises(ValueError, match="epochs"):
        E.run(["none"], task="co2", epochs=0)
    with pytest.raises(SystemExit):
        E.main(["--task", "co2", "--seeds", "0"])


def test_speed_section_states_the_target_it_was_held_to():
    result = {"seconds": {"bd": 0.3, "hand": 0.2, "fused": 0.05}, "bd_vs_hand": 1.4, "bd_vs_fused": 6.0,
              "rounds": 3, "epochs": 2, "hidden": 64, "device": "CPU"}  # fmt: skip
    assert "1.5x the hand-written loop: met" in E.speed_markdown(result, "cmd")
    assert "NOT met" in E.speed_markdown({**result, "bd_vs_hand": 1.6}, "cmd")
    r = E.speed(rounds=1, epochs=1, hidden=4)
    s = r["seconds"]
    assert r["bd_vs_hand"] == pytest.approx(s["bd"] / s["hand"]) and min(s.values()) > 0


def test_the_persistence_reference_is_the_last_value_carried_forward():
    s = bd.data.load("sunspots").series
    errors = [s.values[t + h] - s.values[t - 1] for t in s.starts["test"] for h in range(s.horizon)]
    assert E.persistence_rmse("sunspots") == pytest.approx(float(np.sqrt(np.mean(np.square(errors)))), rel=1e-6)
    with pytest.raises(ValueError, match="forecasting"):
        E.persistence_rmse("digits")
