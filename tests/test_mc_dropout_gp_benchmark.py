"""The MC dropout benchmark after Gal & Ghahramani 2016 (:mod:`bayesdrop.experiments.mc_dropout_gp`): the networks are the
slides' ones, a tiny run of both experiments writes finite numbers and its figures, the predictive variance is
tau^-1 plus the variance of the draws, ``model_precision`` is Gal & Ghahramani's formula, and the recorded run
(``benchmarks/results/mc_dropout_gp.json``) shows what its record claims."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch

import bayesdrop as bd
from bayesdrop.experiments import mc_dropout_gp as E

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
TINY = [
    "--regression-epochs", "2", "--rotation-epochs", "2", "--width", "8", "--depth", "2", "--channels", "2", "3",
    "--hidden", "8", "--samples", "6",
]  # fmt: skip


def _finite(obj, where="record"):
    """Every number in a JSON record is finite."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite(v, f"{where}[{i}]")
    elif isinstance(obj, float):
        assert math.isfinite(obj), where


# ------------------------------------------------------------------------------------------ the networks


@pytest.mark.parametrize("activation, cls", [("relu", torch.nn.ReLU), ("tanh", torch.nn.Tanh)])
def test_the_regression_network_is_the_slides_mlp(activation, cls):
    net = E.regression_network(activation)
    layers = [m for m in net if isinstance(m, bd.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(1, 1024), *[(1024, 1024)] * 3, (1024, 1)]
    assert [m.method.p for m in layers] == [0.0, 0.2, 0.2, 0.2, 0.2]  # every hidden unit dropped, not the input
    assert sum(isinstance(m, cls) for m in net) == 4


def test_the_lenet_drops_only_before_its_last_layer():
    net = E.lenet((1, 8, 8), 10, channels=(3, 4), hidden=8)
    layers = [m for _, m in bd.nn.bayesian_layers(net)]
    assert [type(m).__name__ for m in layers] == ["Conv2d", "Conv2d", "Linear", "Linear"]
    assert [m.method.name for m in layers] == ["bernoulli"] * 4
    assert [m.method.p for m in layers] == [0.0, 0.0, 0.0, 0.5]
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_rotate_turns_the_image_about_its_centre():
    image = torch.arange(64.0).reshape(8, 8) / 64
    r = E.rotate(image, [0.0, 90.0, 180.0])
    assert r.shape == (3, 1, 8, 8)
    torch.testing.assert_close(r[0, 0], image, atol=1e-6, rtol=0)
    torch.testing.assert_close(r[1, 0], torch.rot90(image, 1), atol=1e-5, rtol=0)  # counter-clockwise
    torch.testing.assert_close(r[2, 0], torch.rot90(image, 2), atol=1e-5, rtol=0)


def test_entropy_terms_are_the_decomposition_by_hand():
    probs = torch.tensor([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0], [0.0, 1.0, 0.0]]])  # (T=2, N=2, C=3)
    t = E.entropy_terms(probs)
    ln2 = math.log(2)
    torch.testing.assert_close(t["predictive_entropy"], torch.tensor([ln2, ln2]))
    torch.testing.assert_close(t["expected_entropy"], torch.tensor([ln2, 0.0]))
    torch.testing.assert_close(t["mutual_information"], torch.tensor([0.0, ln2]))  # agreeing draws: none


# ----------------------------------------------------------------------------------------- a tiny run


def test_a_tiny_run_writes_finite_numbers_and_both_figures(tmp_path):
    out = tmp_path / "mc.md"
    assert E.main([*TINY, "--out", str(out)]) == 0
    record = json.loads((tmp_path / "mc.json").read_text())
    _finite(record)
    reg, rot = record["regression"], record["rotation"]
    assert set(reg["variants"]) == {"relu", "tanh", E.FIXED_TAU}
    for v in reg["variants"].values():
        assert v["std_inside"] > 0 and v["std_last_quarter"] > 0 and v["identity_max_error"] < 1e-5
        assert abs(v["ratio"] - v["std_last_quarter"] / v["std_inside"]) < 1e-12
    fixed = reg["variants"][E.FIXED_TAU]
    assert not fixed["learn_noise"] and abs(fixed["tau"] / reg["fixed_tau"]["tau"] - 1) < 1e-5
    assert len(rot["table"]) == len(E.ANGLES) and rot["test_index"] >= 0 and len(rot["classes"]) == 3
    assert all(r["mutual_information"] >= -1e-6 for r in rot["table"])
    assert rot["middle"] == [45.0, 60.0, 75.0, 90.0, 105.0, 120.0]
    for png in ("mc_regression.png", "mc_rotation.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    text = out.read_text()
    assert "[mc_regression.png](mc_regression.png)" in text and text.count("\n| ") >= 3 + 2 + 12


@pytest.mark.parametrize("arg", ["--width", "--samples", "--regression-epochs", "--weight-decay"])
def test_the_command_line_refuses_non_positive_sizes(arg, tmp_path):
    with pytest.raises(SystemExit):
        E.main([arg, "0", "--out", str(tmp_path / "x.md")])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="variants"):
        E.regression(["sigmoid"])
    with pytest.raises(ValueError, match="until"):
        E.regression(cutoff=1990, until=1980)
    with pytest.raises(ValueError, match="heldout"):
        E.co2_data(heldout=1.0)
    with pytest.raises(ValueError, match="angles"):
        E.rotation(angles=[0, 90])


def test_the_held_out_months_leave_the_training_set():
    d = E.co2_data(1990.0, heldout=0.2, seed=1)
    assert len(d["x_heldout"]) == round(0.2 * (d["times"] < 1990).sum())
    assert not (d["train"] & d["heldout"]).any() and len(d["x_train"]) == d["train"].sum()
    assert abs(d["y_train"].mean().item()) < 1e-5 and abs(d["y_train"].std(unbiased=False).item() - 1) < 1e-5


# ------------------------------------------------------------------- the predictive variance, with tau


def _fixed_noise_model(tau, n=12):
    pyro.set_rng_seed(0)
    net = bd.models.mlp(1, [8], 1, "bernoulli", p=0.2)
    return bd.Regressor(net, num_data=n, noise_scale=tau**-0.5, learn_noise=False)


def test_the_predictive_variance_is_inverse_tau_plus_the_variance_of_the_draws():
    tau = 7.5
    model = _fixed_noise_model(tau)
    out = torch.linspace(-2, 3, 5 * 4).reshape(5, 4, 1) ** 2  # a fixed tensor of S = 5 draws for N = 4 inputs
    mean, std = model.predictive(out)
    torch.testing.assert_close(mean, out.mean(0)[:, 0])
    torch.testing.assert_close(std**2, 1 / tau + out.var(0, unbiased=False)[:, 0], atol=1e-6, rtol=0)


def test_uncertainty_of_the_inference_data_is_inverse_tau_plus_the_variance_of_mu():
    tau, n = 4.0, 12
    model = _fixed_noise_model(tau, n)
    guide = bd.DropoutGuide(model)
    x = torch.linspace(-1, 1, n)[:, None]
    idata = bd.to_inference_data(model, guide, (x, torch.sin(3 * x[:, 0])), num_samples=30)
    mu = np.asarray(idata.posterior_predictive["mu"], dtype=np.float64)[0]  # (draw, obs)
    assert mu.shape == (30, n) and mu.var(0).max() > 1e-4  # the draws differ
    std = bd.diagnostics.uncertainty(idata)["std"]
    np.testing.assert_allclose(std**2, 1 / tau + mu.var(0), atol=1e-6, rtol=1e-6)


# --------------------------------------------------------------------------------------- model_precision


@pytest.mark.parametrize("p, ls, wd, n", [(0.2, 0.894, 1e-5, 382), (0.0, 1.0, 0.5, 1), (0.5, 1e-2, 1e-6, 60000)])
def test_model_precision_is_gal_and_ghahramanis_formula(p, ls, wd, n):
    assert bd.likelihoods.model_precision(p, ls, wd, n) == pytest.approx((1 - p) * ls**2 / (2 * n * wd), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"p": 1.0}, "p"), ({"p": -0.1}, "p"), ({"p": True}, "p"), ({"length_scale": 0.0}, "length_scale"),
        ({"length_scale": float("nan")}, "length_scale"), ({"weight_decay": -1e-4}, "weight_decay"),
        ({"weight_decay": float("inf")}, "weight_decay"), ({"num_data": 0}, "num_data"),
        ({"num_data": 3.0}, "num_data"),
    ],
)  # fmt: skip
def test_model_precision_refuses_bad_arguments_by_name(kwargs, name):
    args = {"p": 0.2, "length_scale": 1.0, "weight_decay": 1e-4, "num_data": 100, **kwargs}
    with pytest.raises(ValueError, match=f"`{name}`"):
        bd.likelihoods.model_precision(**args)


def test_fixed_tau_is_the_precision_of_the_weight_decay_the_prior_implies():
    """With the prior N(0, s^2) on the rescaled weights and a fixed tau, the ELBO is Gal & Ghahramani's objective
    with lambda = (1 - p)^2 / (2 N tau s^2); model_precision inverts it at l = sqrt(1 - p) / s."""
    for p, n, wd, s in [(0.2, 382, 1e-5, 1.0), (0.5, 1000, 3e-4, 0.3)]:
        f = E.fixed_tau(p, n, wd, prior_scale=s)
        assert f["weight_decay"] == wd and f["length_scale"] == pytest.approx(math.sqrt(1 - p) / s)
        assert (1 - p) ** 2 / (2 * n * f["tau"] * s**2) == pytest.approx(wd, rel=1e-12)
        assert f["noise_scale"] == pytest.approx(f["tau"] ** -0.5)


# ------------------------------------------------------------------------------------------ the record


@pytest.fixture(scope="module")
def record():
    path = RESULTS / "mc_dropout_gp.json"
    if not path.is_file():
        pytest.skip("benchmarks/results/mc_dropout_gp.json not written (python benchmarks/mc_dropout_gp.py)")
    return json.loads(path.read_text())


def test_the_record_is_the_full_protocol(record):
    reg, rot = record["regression"], record["rotation"]
    s = reg["settings"]
    assert (s["width"], s["depth"], s["p"], s["num_samples"]) == (1024, 4, 0.2, 100)
    assert (s["cutoff"], s["until"]) == (1990.0, 2010.0)
    r = rot["settings"]
    assert (r["channels"], r["hidden"], r["p"], r["num_samples"], r["angles"]) == (
        [20, 50],
        500,
        0.5,
        100,
        list(E.ANGLES),
    )
    _finite(record)
    for name in ("mc_dropout_gp.md", "mc_dropout_gp_regression.png", "mc_dropout_gp_rotation.png"):
        assert (RESULTS / name).is_file()


def test_the_recorded_relu_uncertainty_grows_away_from_the_data(record):
    v = record["regression"]["variants"]
    assert v["relu"]["ratio"] >= 2  # the last quarter of the horizon against the training range
    assert v["relu"]["std_last_quarter"] > v["tanh"]["std_last_quarter"]  # TanH's band stays narrower
    assert v["tanh"]["ratio"] < 1.5
    for row in v.values():
        assert row["identity_max_error"] < 1e-6  # std^2 = tau^-1 + the variance of the draws


def test_the_recorded_mutual_information_is_higher_at_the_middle_angles_than_upright(record):
    rot = record["rotation"]
    assert rot["mi_middle_mean"] > rot["mi_0"]
    assert rot["mi_middle_min"] > rot["mi_0"]
    assert rot["table"][0]["prediction"] == rot["settings"]["digit"]  # the upright digit is classified right
