"""Posterior predictive analysis: InferenceData, calibration, uncertainty, LOO, plots, report.

Trained models are shared by module-scoped fixtures:

* ``digits_mc``: MC dropout on digits, ``mlp(64, [100], 10)`` with Bernoulli
  dropout p = 0.5 on the hidden units and p = 0.2 on the inputs (Srivastava et
  al. 2014's recommended rates), 20 epochs, lr 1e-2, 200 draws.
* ``toy``: the 1-D gap regression, ``mlp(1, [50, 50], 1)`` with p = 0.1 on the
  hidden units and none on the input, ReLU, the known observation noise
  sigma = 0.1 of the data set (``learn_noise=False``), 300 epochs at batch 200,
  lr 1e-2.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import stat
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier
from matplotlib.figure import Figure

import bayesdrop as bd
from bayesdrop import cli
from bayesdrop.diagnostics import arviz as _arviz
from bayesdrop.diagnostics.plots import _mixture_quantiles

D = bd.diagnostics
PNG = b"\x89PNG\r\n\x1a\n"


def _phi(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _Phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def _shape_warnings(caught) -> list[str]:
    """Warnings about array shapes (not ArviZ's note on the Pareto *shape parameter* k, reported separately)."""
    texts = [str(w.message) for w in caught]
    return [
        t for t in texts if ("shape" in t.lower() and "shape parameter of Pareto" not in t) or "same with the sum" in t
    ]


def _lppd(idata) -> np.ndarray:
    ll = idata.log_likelihood["y"].values.reshape(-1, idata.log_likelihood.sizes["obs_id"])
    m = ll.max(0)
    return np.log(np.exp(ll - m).mean(0)) + m


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def digits_mc():
    ds = bd.data.load("digits")
    torch.manual_seed(0)
    net = bd.models.mlp(64, [100], 10, "bernoulli", input_method=bd.methods.get("bernoulli", p=0.2))
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    result = bd.fit(model, guide, ds.train, epochs=20, lr=1e-2, progress=False, seed=0)
    noise = torch.rand(len(ds.test), 64, generator=torch.Generator().manual_seed(1))  # uniform-noise "images"
    idata = bd.to_inference_data(model, guide, ds.test, num_samples=200, predictions=noise, seed=0)
    return types.SimpleNamespace(ds=ds, model=model, guide=guide, idata=idata, noise=noise, history=result.history)


@pytest.fixture(scope="module")
def toy():
    ds = bd.data.load("toy-regression")
    torch.manual_seed(0)
    net = bd.models.mlp(
        1, [50, 50], 1, "bernoulli", p=0.1, input_method=bd.methods.get("bernoulli", p=0.0), activation="relu"
    )
    model = bd.Regressor(net, num_data=len(ds.train), noise_scale=0.1, learn_noise=False)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, ds.train, epochs=300, batch_size=200, lr=1e-2, progress=False, seed=0)
    idata = bd.to_inference_data(model, guide, ds.test, num_samples=200, seed=0)
    return types.SimpleNamespace(ds=ds, model=model, guide=guide, idata=idata)


def _hand_classification(with_log_likelihood: bool = False):
    """5 points, 3 classes, 2 draws; the mean probabilities are given in the comments."""
    draws = np.array(
        [
            # draw 0
            [[0.95, 0.05, 0.00], [0.10, 0.80, 0.10], [0.55, 0.25, 0.20], [0.40, 0.20, 0.40], [0.95, 0.03, 0.02]],
            # draw 1
            [[0.75, 0.15, 0.10], [0.00, 0.86, 0.14], [0.55, 0.25, 0.20], [0.20, 0.30, 0.50], [0.95, 0.03, 0.02]],
        ]
    )
    # means: [.85 .10 .05], [.05 .83 .12], [.55 .25 .20], [.30 .25 .45], [.95 .03 .02]
    y = np.array([0, 2, 0, 1, 0])
    groups = dict(
        posterior={"a": np.zeros((1, 2))},
        posterior_predictive={"probs": draws[None], "y": np.zeros((1, 2, 5), dtype=np.int64)},
        observed_data={"y": y},
        dims={"probs": ["obs_id", "class"], "y": ["obs_id"]},
    )
    if with_log_likelihood:
        groups["log_likelihood"] = {"y": np.log(draws[:, np.arange(5), y])[None]}
    return _arviz.from_dict(**groups)


def _hand_regression():
    """3 points, 2 draws of the network mean, sigma = (0.5, 1, 2)."""
    return _arviz.from_dict(
        posterior={"a": np.zeros((1, 2))},
        posterior_predictive={"mu": np.array([[[0.0, 2.0, -1.0], [1.0, 2.0, 1.0]]]), "y": np.zeros((1, 2, 3))},
        observed_data={"y": np.array([0.5, 0.0, 4.0])},
        constant_data={"noise_scale": np.array([0.5, 1.0, 2.0])},
        dims={"mu": ["obs_id"], "y": ["obs_id"], "noise_scale": ["obs_id"]},
    )


# ----------------------------------------------------------------------------- InferenceData


def test_inference_data_groups_vars_and_dims(digits_mc):
    idata, ds = digits_mc.idata, digits_mc.ds
    S, N, C = 200, len(ds.test), 10
    assert set(_arviz.groups(idata)) == {
        "posterior",
        "posterior_predictive",
        "predictions",
        "log_likelihood",
        "observed_data",
        "point_estimates",
    }
    # the keep probabilities are point estimates of q (fixed rates): their own group, without draws
    point = idata.point_estimates
    assert point["net.0.keep_prob"].dims == ("net.0.unit",) and point["net.2.keep_prob"].shape == (100,)
    np.testing.assert_allclose(point["net.0.keep_prob"].values, 0.8)
    np.testing.assert_allclose(point["net.2.keep_prob"].values, 0.5)
    # the posterior holds random quantities only: each network's masks, drawn once and shared by every input
    post = idata.posterior
    assert set(post.data_vars) == {"net.0.noise", "net.2.noise"}
    assert post["net.0.noise"].dims == ("chain", "draw", "net.0.unit") and post["net.2.noise"].shape == (1, S, 100)
    np.testing.assert_allclose(np.unique(post["net.0.noise"].values), [0.0, 1 / 0.8])  # z / (1 - p)
    for name in post.data_vars:  # no constant variable: every element varies over the draws
        assert (post[name].values[0].std(0) > 0).all(), name
    assert abs((post["net.2.noise"].values > 0).mean() - 0.5) < 0.01  # keep probability 0.5: 20000 draws
    assert idata.attrs["bayesdrop_noise"] == "shared"

    pp = idata.posterior_predictive
    assert pp["y"].dims == ("chain", "draw", "obs_id") and pp["y"].shape == (1, S, N)
    assert pp["probs"].dims == ("chain", "draw", "obs_id", "class") and pp["probs"].shape == (1, S, N, C)
    assert np.issubdtype(pp["y"].dtype, np.integer)
    np.testing.assert_allclose(pp["probs"].values.sum(-1), 1.0, atol=1e-5)
    assert pp["probs"].values.std(axis=1).mean() > 0.01  # every draw is its own network
    np.testing.assert_array_equal(idata.observed_data["y"].values, ds.test.y.numpy())
    np.testing.assert_array_equal(idata.observed_data["obs_id"].values, np.arange(N))

    # log_likelihood is log p(y_n | theta_s) of the same draws as `probs`
    ll = idata.log_likelihood["y"]
    assert ll.dims == ("chain", "draw", "obs_id")
    p_y = np.take_along_axis(pp["probs"].values[0], ds.test.y.numpy()[None, :, None], -1)[..., 0]
    np.testing.assert_allclose(np.exp(ll.values[0]), p_y, atol=1e-6)

    # replicated labels are draws from Categorical(probs_s): class counts over all (s, n) match within 5 sd
    y_rep = pp["y"].values[0]
    probs = pp["probs"].values[0].astype(np.float64)
    for c in range(C):
        expected, var = probs[..., c].sum(), (probs[..., c] * (1 - probs[..., c])).sum()
        assert abs((y_rep == c).sum() - expected) < 5 * math.sqrt(var)

    pred = idata.predictions
    assert pred["probs"].dims == ("chain", "draw", "pred_id", "class") and pred["probs"].shape == (1, S, N, C)
    assert pred["y"].dims == ("chain", "draw", "pred_id")
    assert idata.attrs["bayesdrop_likelihood"] == "Classifier" and idata.attrs["bayesdrop_num_samples"] == S


def test_regression_inference_data(toy):
    idata, ds = toy.idata, toy.ds
    N = len(ds.test)
    assert set(_arviz.groups(idata)) == {
        "posterior",
        "posterior_predictive",
        "log_likelihood",
        "observed_data",
        "constant_data",
        "point_estimates",
    }
    assert set(idata.point_estimates.data_vars) == {"net.0.keep_prob", "net.2.keep_prob", "net.4.keep_prob"}
    np.testing.assert_allclose(idata.point_estimates["net.0.keep_prob"].values, 1.0)
    np.testing.assert_allclose(idata.point_estimates["net.2.keep_prob"].values, 0.9)
    assert set(idata.posterior.data_vars) == {"net.2.noise", "net.4.noise"}  # no input noise: p = 0 draws nothing
    mu, y_rep = idata.posterior_predictive["mu"].values[0], idata.posterior_predictive["y"].values[0]
    assert mu.shape == y_rep.shape == (200, N)
    np.testing.assert_allclose(idata.constant_data["noise_scale"].values, 0.1, rtol=1e-6)
    np.testing.assert_allclose(idata.constant_data["x"].values, ds.test.x.numpy(), rtol=1e-6)
    assert idata.constant_data["x"].dims == ("obs_id", "feature")
    # y_rep = mu + sigma * eps: standardised residuals are N(0, 1) (n = 80000: mean within 5 / sqrt(n), sd within 2 %)
    z = (y_rep - mu) / 0.1
    assert abs(z.mean()) < 5 / math.sqrt(z.size) and abs(z.std() - 1) < 0.02
    ll = idata.log_likelihood["y"].values[0]
    y = ds.test.y.numpy()[None].astype(np.float64)
    sigma = idata.constant_data["noise_scale"].values  # the model's, computed in its float32
    expected = -0.5 * ((y - mu.astype(np.float64)) / sigma) ** 2 - np.log(sigma) - 0.5 * math.log(2 * math.pi)
    # computed in float64 from the outputs on (the noise scale's square and log stay float32 inside torch's Normal:
    # 2e-6 here; from float32 outputs it was 8e-5)
    np.testing.assert_allclose(ll, expected, rtol=1e-6, atol=1e-5)


def test_seeded_draws_are_reproducible_and_leave_the_rng_alone():
    model, guide, x, y = tiny_classifier("bernoulli", p=0.3)
    state = torch.get_rng_state()
    a = bd.to_inference_data(model, guide, (x, y), num_samples=30, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = bd.to_inference_data(model, guide, (x, y), num_samples=30, seed=3)
    c = bd.to_inference_data(model, guide, (x, y), num_samples=30, seed=4)
    np.testing.assert_array_equal(a.posterior_predictive["probs"].values, b.posterior_predictive["probs"].values)
    assert not np.array_equal(a.posterior_predictive["probs"].values, c.posterior_predictive["probs"].values)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    d = bd.to_inference_data(model, guide, loader, num_samples=30, seed=3)  # streamed: passes of 16, not of 40
    # the same networks; float32 matmuls of other batch shapes round differently (a few ulps)
    np.testing.assert_allclose(
        a.posterior_predictive["probs"].values, d.posterior_predictive["probs"].values, atol=1e-6
    )
    torch.manual_seed(123)  # the caller's random state does not enter seeded draws: the seed alone fixes them
    e = bd.to_inference_data(model, guide, (x, y), num_samples=30, seed=3)
    np.testing.assert_array_equal(a.posterior_predictive["probs"].values, e.posterior_predictive["probs"].values)


def test_posterior_draws_are_the_networks_behind_every_batch_of_predictions():
    """vd draws random weights: the stored weight draws must reproduce the predictive of every batch."""
    model, guide, x, y = tiny_classifier("vd", n=40, input_method="vd")  # vd on the 6 inputs too: not its default
    new = torch.randn(9, 6, generator=torch.Generator().manual_seed(5))
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=25, predictions=new, batch_size=7, weights=True)
    w0, w2 = (idata.posterior[f"net.{i}.weight"].values[0] for i in (0, 2))
    assert idata.posterior["net.0.weight"].dims == ("chain", "draw", "net.0.out", "net.0.in")
    assert w0.shape == (25, 8, 6) and w0.std(0).min() > 0  # random global draws
    b0, b2 = (model.net[i].bias.detach().double().numpy() for i in (0, 2))

    def probs(inputs):
        h = np.maximum(np.einsum("nd,sod->sno", inputs.double().numpy(), w0) + b0, 0)
        logits = np.einsum("snd,sod->sno", h, w2) + b2
        return torch.from_numpy(logits).softmax(-1).numpy()

    np.testing.assert_allclose(idata.posterior_predictive["probs"].values[0], probs(x), atol=1e-5)
    np.testing.assert_allclose(idata.predictions["probs"].values[0], probs(new), atol=1e-5)


def _site_shape(guide, x, name):
    with torch.no_grad():
        return tuple(poutine.trace(guide).get_trace(x).nodes[name]["value"].shape)


def _guide_global_sites(model, guide, x):
    with torch.no_grad(), pyro.plate("draws", 2, dim=-2):
        trace = poutine.trace(guide).get_trace(x)
    weight_sites = {layer.site(w) for _, layer, _ in guide.pairs() for w in layer.weight_sites}
    out = {}
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or name in weight_sites or name == "data":
            continue
        if any(f.name == "data" for f in site["cond_indep_stack"]):
            continue
        fn = site["fn"]
        while isinstance(fn, dist.Independent):
            fn = fn.base_dist
        out[name] = isinstance(fn, dist.Delta)
    return out


@pytest.mark.parametrize(
    "method, hyper", [(m, {}) for m in bd.methods.names()] + [("vbd", {"granularity": "unit"})], ids=str
)
def test_every_registered_method(method, hyper, tmp_path, caplog):
    model, guide, x, y = tiny_classifier(method, **hyper)
    bd.fit(model, guide, (x, y), epochs=2, batch_size=20, lr=1e-2, progress=False)
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=40, predictions=x[:5])
    rates = bd.dropout_rates(model, guide)
    for name, kp in rates.items():
        var = idata.point_estimates[f"{name}.keep_prob"]  # point estimates of q: no draws
        assert var.shape == kp.shape
        np.testing.assert_allclose(var.values, kp.numpy(), rtol=1e-6)
    # non-weight global guide sites: Delta -> point_estimates (no draws), random -> posterior draws (those of the
    # weights' shape, DropConnect's masks, only with weights=True)
    weight_shapes = {tuple(w.shape) for _, layer, _ in guide.pairs() for w in layer.weight_sites.values()}
    for name, is_delta in _guide_global_sites(model, guide, x).items():
        if is_delta:
            assert name in idata.point_estimates and "draw" not in idata.point_estimates[name].dims
        elif "posterior" in _arviz.groups(idata) and name in idata.posterior:
            assert idata.posterior[name].shape[:2] == (1, 40) and idata.posterior[name].values.std(1).max() > 0
        else:  # constant over the draws (a point mass in effect), or a per-weight mask (weights=False)
            in_point = "point_estimates" in _arviz.groups(idata) and name in idata.point_estimates
            assert in_point or _site_shape(guide, x, name)[-2:] in weight_shapes, name
    if "posterior" in _arviz.groups(idata):  # random quantities only: nothing constant over the draws
        for name, var in idata.posterior.data_vars.items():
            assert var.values[0].std(0).max() > 0, name
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        loo = _arviz.loo(idata)
        _arviz.waic(idata)
    assert not _shape_warnings(caught)
    assert "Shape validation" not in caplog.text
    assert math.isfinite(float(loo["elpd_loo"]))
    if "posterior" in _arviz.groups(idata):
        summary = _arviz.summary(idata)
        assert len(summary) == sum(v.size // 40 for v in idata.posterior.data_vars.values())
    cal = D.calibration(idata)
    assert 0 <= cal["ece"] <= 1 and 0 <= cal["accuracy"] <= 1
    back = D.load_netcdf(D.save_netcdf(idata, tmp_path / "idata.nc"))
    assert set(_arviz.groups(back)) == set(_arviz.groups(idata))
    for group in _arviz.groups(idata):
        assert _arviz.group(back, group).equals(_arviz.group(idata, group)), group
    assert back.attrs["bayesdrop_methods"] == idata.attrs["bayesdrop_methods"]


def test_netcdf_round_trip_with_predictions(digits_mc, tmp_path):
    path = D.save_netcdf(digits_mc.idata, tmp_path / "digits.nc")
    back = D.load_netcdf(path)
    for group in _arviz.groups(digits_mc.idata):
        xr_a, xr_b = _arviz.group(digits_mc.idata, group), _arviz.group(back, group)
        assert xr_a.equals(xr_b), group
    assert D.calibration(back) == D.calibration(digits_mc.idata)


# ----------------------------------------------------------------------------- LOO, WAIC, summary


def test_loo_and_waic_agree_with_the_log_mean_likelihood(digits_mc, caplog):
    idata = digits_mc.idata
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        loo = _arviz.loo(idata, pointwise=True)
        waic = _arviz.waic(idata, pointwise=True)
    assert not _shape_warnings(caught)
    assert "Shape validation" not in caplog.text
    assert loo["n_samples"] == 200 and loo["n_data_points"] == len(digits_mc.ds.test)
    lppd_i = _lppd(idata)
    lppd = lppd_i.sum()
    # p_loo is defined as lppd - elpd_loo: ArviZ reads our log_likelihood with the draws where we put them
    assert float(loo["elpd_loo"]) + float(loo["p_loo"]) == pytest.approx(lppd, rel=1e-9)
    assert float(waic["elpd_waic"]) + float(waic["p_waic"]) == pytest.approx(lppd, rel=1e-9)
    # PSIS-LOO weights w_s ~ 1 / p_s (smoothed, order kept) give a weighted mean of p_s that lies between
    # min_s p_s and the plain mean (Chebyshev's sum inequality): log min_s p <= elpd_loo_i <= lppd_i
    ll = idata.log_likelihood["y"].values[0]
    loo_i = loo["loo_i"].values
    assert (loo_i <= lppd_i + 1e-9).all() and (loo_i >= ll.min(0) - 1e-9).all()
    assert ll.min(0).sum() <= float(loo["elpd_loo"]) <= lppd
    summary = D.loo_summary(idata)
    assert summary["elpd_loo"] == pytest.approx(float(loo["elpd_loo"]))
    assert summary["lppd"] == pytest.approx(lppd)
    k = loo["pareto_k"].values
    assert summary["k<=0.5"] + summary["0.5<k<=0.7"] + summary["0.7<k<=1"] + summary["k>1"] == len(k)
    assert summary["k>good_k"] == int((k > summary["good_k"]).sum())
    print(
        f"\nLOO digits: elpd_loo {float(loo['elpd_loo']):.2f}, lppd {lppd:.2f}, p_loo {float(loo['p_loo']):.2f}, "
        f"lower bound {ll.min(0).sum():.2f}; Pareto k: <=0.5 {summary['k<=0.5']}, (0.5, 0.7] {summary['0.5<k<=0.7']}, "
        f"(0.7, 1] {summary['0.7<k<=1']}, >1 {summary['k>1']}; WAIC {float(waic['elpd_waic']):.2f}"
    )


def test_summary_of_the_posterior_group(digits_mc, caplog):
    """``az.summary``, ``az.ess`` and ``az.rhat`` of the posterior (the masks of the 200 networks, one chain) run
    without a warning: no constant variable, no fake chains.  R-hat needs two chains: NaN, which ArviZ logs (a
    log record about the chain count, not a warning)."""
    az = _arviz.az()
    idata = digits_mc.idata
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # any warning fails the test
        summary = az.summary(idata)
        ess = az.ess(idata)
        rhat = az.rhat(idata)
    assert len(summary) == 64 + 100  # the masks of the inputs of the two layers
    np.testing.assert_allclose(summary["mean"].values, 1.0, atol=0.3)  # z / (1 - p) has mean 1
    assert (summary["sd"] > 0).all() and np.isfinite(summary["ess_bulk"]).all()
    # independent draws: an effective sample size near S = 200 on average (each estimate is noisy)
    assert 150 < ess["net.2.noise"].values.mean() < 260 and ess["net.2.noise"].values.min() > 40
    assert summary["r_hat"].isna().all() and np.isnan(rhat["net.0.noise"].values).all()
    assert all("Shape validation failed" in r.getMessage() and "chains=2" in r.getMessage() for r in caplog.records)


# ----------------------------------------------------------------------------- calibration (hand-computed)


@pytest.mark.parametrize("with_ll", [False, True])
def test_calibration_classification_by_hand(with_ll):
    cal = D.calibration(_hand_classification(with_ll), n_bins=15)
    assert cal["accuracy"] == pytest.approx(3 / 5)
    nll = -(math.log(0.85) + math.log(0.12) + math.log(0.55) + math.log(0.25) + math.log(0.95)) / 5
    assert cal["nll"] == pytest.approx(nll, rel=1e-12)
    brier = (0.035 + 1.4658 + 0.305 + 0.855 + 0.0038) / 5  # per point: sum_c (p_c - 1[y = c])^2
    assert cal["brier"] == pytest.approx(brier, rel=1e-12)
    # bins of width 1/15: confidences .85 and .83 in (12/15, 13/15] (one right, one wrong), .55 in (8/15, 9/15]
    # (right), .45 in (6/15, 7/15] (wrong), .95 in (14/15, 1] (right); 11 of the 15 bins are empty
    ece = 2 / 5 * abs(0.5 - 0.84) + 1 / 5 * abs(1 - 0.55) + 1 / 5 * abs(0 - 0.45) + 1 / 5 * abs(1 - 0.95)
    assert cal["ece"] == pytest.approx(ece, rel=1e-12)
    assert cal["mce"] == pytest.approx(0.45, rel=1e-12)
    assert cal["mean_confidence"] == pytest.approx((0.85 + 0.83 + 0.55 + 0.45 + 0.95) / 5)
    rel = D.reliability(_hand_classification(with_ll), n_bins=15)
    expected = np.zeros(15, dtype=int)
    expected[[6, 8, 12, 14]] = [1, 1, 2, 1]
    np.testing.assert_array_equal(rel["count"], expected)
    assert np.isnan(rel["accuracy"][expected == 0]).all()
    np.testing.assert_allclose(rel["confidence"][[6, 8, 12, 14]], [0.45, 0.55, 0.84, 0.95])
    # one bin: ECE = MCE = |accuracy - mean confidence|
    one = D.calibration(_hand_classification(with_ll), n_bins=1)
    assert one["ece"] == pytest.approx(abs(0.6 - 3.63 / 5)) and one["mce"] == pytest.approx(one["ece"])


def test_ece_bins_are_closed_on_the_right():
    # confidence 0.5 falls in (0, 0.5], confidence 1.0 in (0.5, 1]
    idata = _arviz.from_dict(
        posterior={"a": np.zeros((1, 1))},
        posterior_predictive={"probs": np.array([[[[0.5, 0.5], [1.0, 0.0], [0.3, 0.7]]]])},
        observed_data={"y": np.array([0, 0, 0])},
        dims={"probs": ["obs_id", "class"]},
    )
    rel = D.reliability(idata, n_bins=2)
    np.testing.assert_array_equal(rel["count"], [1, 2])
    np.testing.assert_allclose(rel["accuracy"], [1.0, 0.5])
    np.testing.assert_allclose(rel["confidence"], [0.5, 0.85])
    assert rel["ece"] == pytest.approx(1 / 3 * 0.5 + 2 / 3 * 0.35)
    assert rel["mce"] == pytest.approx(0.5)


def test_calibration_regression_by_hand():
    idata = _hand_regression()
    u = np.array([(_Phi(1) + _Phi(-1)) / 2, _Phi(-2), (_Phi(2.5) + _Phi(1.5)) / 2])  # 0.5, 0.02275, 0.96349
    np.testing.assert_allclose(D.pit(idata), u, rtol=1e-12)
    cal = D.calibration(idata)
    assert cal["rmse"] == pytest.approx(math.sqrt((0 + 4 + 16) / 3))
    nll = -(math.log(_phi(1) / 0.5) + math.log(_phi(2)) + math.log((_phi(2.5) + _phi(1.5)) / 2 / 2)) / 3
    assert cal["nll"] == pytest.approx(nll, rel=1e-12)
    # central interval of mass m <=> PIT in [(1 - m) / 2, (1 + m) / 2]
    assert cal["coverage_50"] == pytest.approx(1 / 3)
    assert cal["coverage_80"] == pytest.approx(1 / 3)
    assert cal["coverage_90"] == pytest.approx(1 / 3)
    assert cal["coverage_95"] == pytest.approx(2 / 3)  # 0.02275 < 0.025 is out, 0.9635 < 0.975 is in
    s = np.sort(u)
    assert cal["pit_ks"] == pytest.approx(max(1 / 3 - s[0], 2 / 3 - s[1], 1 - s[2], s[0], s[1] - 1 / 3, s[2] - 2 / 3))
    assert cal["mean_std"] == pytest.approx((math.sqrt(0.5) + 1 + math.sqrt(5)) / 3)
    unc = D.uncertainty(idata)
    np.testing.assert_allclose(unc["mean"], [0.5, 2.0, 0.0])
    np.testing.assert_allclose(unc["epistemic_std"], [0.5, 0.0, 1.0])
    np.testing.assert_allclose(unc["aleatoric_std"], [0.5, 1.0, 2.0])
    np.testing.assert_allclose(unc["std"], [math.sqrt(0.5), 1.0, math.sqrt(5)])
    # the quantiles behind the band plot: one draw is a plain normal
    np.testing.assert_allclose(_mixture_quantiles(np.zeros((1, 1)), np.ones(1), 0.95), 1.6448536, atol=1e-6)
    # two far-apart components: the median of the mixture lies half way
    np.testing.assert_allclose(_mixture_quantiles(np.array([[-5.0], [5.0]]), np.ones(1), 0.5), 0.0, atol=1e-9)


def test_uncertainty_decomposition_by_hand():
    draws = np.array(
        [
            [[1.0, 0.0], [0.5, 0.5], [0.9, 0.1], [0.8, 0.2]],
            [[0.0, 1.0], [0.5, 0.5], [0.9, 0.1], [0.4, 0.6]],
        ]
    )
    idata = _arviz.from_dict(
        posterior={"a": np.zeros((1, 2))},
        posterior_predictive={"probs": draws[None]},
        dims={"probs": ["obs_id", "class"]},
    )
    u = D.uncertainty(idata)

    def h(*p):
        return -sum(q * math.log(q) for q in p if q > 0)

    np.testing.assert_allclose(u["predictive_entropy"], [math.log(2), math.log(2), h(0.9, 0.1), h(0.6, 0.4)])
    np.testing.assert_allclose(u["expected_entropy"], [0, math.log(2), h(0.9, 0.1), (h(0.8, 0.2) + h(0.4, 0.6)) / 2])
    np.testing.assert_allclose(
        u["mutual_information"], [math.log(2), 0, 0, h(0.6, 0.4) - (h(0.8, 0.2) + h(0.4, 0.6)) / 2], atol=1e-15
    )
    np.testing.assert_array_equal(u["prediction"], [0, 0, 0, 0])
    np.testing.assert_allclose(u["confidence"], [0.5, 0.5, 0.9, 0.6])


# ----------------------------------------------------------------------------- the claims on trained models


def test_mutual_information_is_higher_on_noise_than_on_digits(digits_mc):
    test = D.uncertainty(digits_mc.idata)
    noise = D.uncertainty(digits_mc.idata, group="predictions")
    for u in (test, noise):  # H[E p] = E H[p] + I
        np.testing.assert_allclose(u["predictive_entropy"], u["expected_entropy"] + u["mutual_information"], atol=1e-12)
        assert (u["mutual_information"] > -1e-12).all()
    mi_test, mi_noise = test["mutual_information"].mean(), noise["mutual_information"].mean()
    cal = D.calibration(digits_mc.idata)
    print(f"\nMI digits {mi_test:.4f}, MI noise {mi_noise:.4f}, ratio {mi_noise / mi_test:.2f}; calibration {cal}")
    assert cal["accuracy"] > 0.9
    assert mi_noise >= 2 * mi_test


def test_toy_regression_90_percent_interval_covers_80_to_98_percent(toy):
    """Calibration is measured where the training inputs lie: the test-grid points in
    ``x_range`` outside the ``gap``.  The rest of the grid (the gap and |x| > 3) is
    extrapolation, where MC dropout's band grows but too little (printed, not asserted)."""
    ds = toy.ds
    x = ds.test.x[:, 0]
    support = (x >= ds.x_range[0]) & (x <= ds.x_range[1]) & ((x <= ds.gap[0]) | (x >= ds.gap[1]))
    idata = bd.to_inference_data(toy.model, toy.guide, (ds.test.x[support], ds.test.y[support]), 200, seed=0)
    cal = D.calibration(idata)
    u = D.pit(toy.idata)
    covered = ((u >= 0.05) & (u <= 0.95)).astype(float)
    outside = ((x < ds.x_range[0]) | (x > ds.x_range[1])).numpy()
    gap = ((x > ds.gap[0]) & (x < ds.gap[1])).numpy()
    std = D.uncertainty(toy.idata)["std"]
    print(
        f"\ntoy regression: coverage_90 on {int(support.sum())} in-support points {cal['coverage_90']:.3f} "
        f"(all {covered.mean():.3f}, gap {covered[gap].mean():.3f}, |x| > 3 {covered[outside].mean():.3f}); "
        f"predictive std in support {std[support.numpy()].mean():.3f}, gap {std[gap].mean():.3f}, "
        f"|x| > 3 {std[outside].mean():.3f}; {cal}"
    )
    assert 0.8 <= cal["coverage_90"] <= 0.98
    assert cal["coverage_50"] < cal["coverage_80"] < cal["coverage_90"] < cal["coverage_95"]
    assert std[outside].mean() > 1.2 * std[support.numpy()].mean()  # uncertainty grows away from the data


# ----------------------------------------------------------------------------- plots


def _check_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 5000, path


def test_plots_return_figures_and_write_pngs(digits_mc, toy, tmp_path):
    figs = {
        "reliability": D.plot_reliability(digits_mc.idata, path=tmp_path / "reliability.png"),
        "ppc": D.plot_ppc(digits_mc.idata, path=tmp_path / "ppc.png"),
        "rates": D.plot_dropout_rates(digits_mc.idata, path=tmp_path / "rates.png"),
        "entropy": D.plot_entropy(digits_mc.idata, path=tmp_path / "entropy.png"),
        "loo_pit": D.plot_loo_pit(toy.idata, path=tmp_path / "loo_pit.png"),
        "band": D.plot_predictive_band(toy.idata, train=toy.ds.train, path=tmp_path / "band.png"),
        "ppc_regression": D.plot_ppc(toy.idata, path=tmp_path / "ppc_regression.png"),
        "ood": D.plot_ood(digits_mc.idata, label_out="uniform noise", path=tmp_path / "ood.png"),
        "training": D.plot_training(digits_mc.history, path=tmp_path / "training.png"),
    }
    for name, fig in figs.items():
        assert isinstance(fig, Figure), name
        _check_png(tmp_path / f"{name}.png")
        _check_labelled(fig, name)
    # the classification PPC: observed class frequencies (bars) against the replicated ones (median, interval)
    ppc_ax = figs["ppc"].axes[0]
    observed = np.bincount(digits_mc.ds.test.y.numpy(), minlength=10) / len(digits_mc.ds.test)
    np.testing.assert_allclose([p.get_height() for p in ppc_ax.patches], observed)
    assert ppc_ax.get_xlabel() == "class" and ppc_ax.get_ylabel() == "frequency"
    assert figs["loo_pit"].axes[0].get_xlabel() != "y"
    assert figs["rates"].axes[0].get_ylabel() == "units"
    assert len(figs["ood"].axes) == 3 and len(figs["training"].axes) == 4  # loss, NLL, KL, accuracy
    rel_ax = figs["reliability"].axes[0]
    assert len(rel_ax.patches) == 2 * int((D.reliability(digits_mc.idata)["count"] > 0).sum())
    assert len(figs["rates"].axes) == 2  # one panel per layer
    band_ax = figs["band"].axes[0]
    assert len(band_ax.collections) == 2 + 2  # two bands, test and training points
    assert D.plot_reliability(digits_mc.idata) is not None  # no path: nothing written, figure returned
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.png" for n in figs)


# ----------------------------------------------------------------------------- CLI report


def _collect_figures(monkeypatch) -> list:
    """Every figure the plot functions finish (write), in order."""
    from bayesdrop.diagnostics import plots

    figures = []
    finish = plots._finish

    def recording(fig, path):
        figures.append((fig, path))
        return finish(fig, path)

    monkeypatch.setattr(plots, "_finish", recording)
    return figures


def _check_labelled(fig, name) -> None:
    """Every panel of ``fig`` has a title and both axis labels."""
    assert fig.axes, name
    for ax in fig.axes:
        if ax.get_legend() is not None and not ax.has_data():
            continue  # pragma: no cover - a legend-only panel
        assert ax.get_title(), (name, ax)
        assert ax.get_xlabel() and ax.get_ylabel(), (name, ax.get_title())


def test_report_command_writes_pngs_and_a_summary(tmp_path, capsys, monkeypatch):
    figures = _collect_figures(monkeypatch)
    run = tmp_path / "digits"
    argv = ["train", "--dataset", "digits", "--arch", "mlp:32", "--epochs", "3", "--lr", "1e-2", "--quiet"]
    assert cli.main([*argv, "--num-samples", "50", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert cli.main(["report", str(run), "--num-samples", "50", "--ood-points", "100"]) == 0
    text = (run / "report.md").read_text()
    # every plot of the report: linked, a non-empty PNG, and a figure whose panels have titles and labelled axes
    linked = re.findall(r"\]\((\w+\.png)\)", text)
    assert set(linked) == {"training.png", "reliability.png", "entropy.png", "ood.png", "ppc.png", "dropout_rates.png"}
    for name in linked:
        _check_png(run / name)
    assert sorted(Path(p).name for _, p in figures) == sorted(linked)
    for fig, p in figures:
        _check_labelled(fig, Path(p).name)
    idata = D.load_netcdf(run / "inference_data.nc")
    cal = D.calibration(idata)
    assert f"| accuracy | {cal['accuracy']:.4f} |" in text and f"| ece | {cal['ece']:.4f} |" in text
    # train and report print the same test metrics: the same networks (seed, draws) and one definition of each
    assert f"test NLL {cal['nll']:.4f}" in printed and f"test accuracy {cal['accuracy']:.4f}" in printed
    assert f"| nll | {cal['nll']:.4f} |" in text
    # PSIS-LOO on the training data, checked against the test lppd scaled to the training size
    idata_train = D.load_netcdf(run / "inference_data_train.nc")
    loo = D.loo_check(idata_train, idata)
    assert loo["n_train"] == idata_train.observed_data.sizes["obs_id"] == 1437
    assert f"| {loo['elpd_loo']:.2f} | {loo['se']:.2f} | {loo['p_loo']:.2f} |" in text
    assert f"| {loo['k<=0.5']} | {loo['0.5<k<=0.7']} | {loo['0.7<k<=1']} | {loo['k>1']} |" in text
    assert f"times the 1437 training points is {loo['reference']:.2f}" in text
    assert "uniform noise of the inputs' shape on [0, 1]" in text and "(reliability.png)" in text
    assert idata.predictions.sizes["pred_id"] == 100
    detection = D.ood(idata)
    row = detection["mutual_information"]
    assert f"| mutual_information | {row['auroc']:.4f} | {row['aupr']:.4f} | {row['fpr95']:.4f} |" in text

    figures.clear()
    reg = tmp_path / "toy"
    argv = ["train", "--dataset", "toy-regression", "--arch", "mlp:20", "--epochs", "30", "--lr", "1e-2", "--quiet"]
    assert cli.main([*argv, "--out", str(reg)]) == 0
    assert cli.main(["report", str(reg), "--num-samples", "50", "--kfold", "2"]) == 0
    text = (reg / "report.md").read_text()
    # K-fold beside PSIS-LOO: the run's configuration refitted on each half of the training split
    kfold = json.loads((reg / "report_metrics.json").read_text())["kfold"]
    assert kfold["k"] == 2 and kfold["n_data_points"] == 200 and math.isfinite(kfold["elpd_kfold"])
    assert "## 2-fold cross-validation" in text and f"elpd_kfold {kfold['elpd_kfold']:.2f} ± {kfold['se']:.2f}" in text
    assert f"{kfold['z']:+.2f} standard errors from the test lppd" in text
    linked = re.findall(r"\]\((\w+\.png)\)", text)
    assert set(linked) == {"training.png", "loo_pit.png", "predictive_band.png", "ppc.png", "dropout_rates.png"}
    for name in linked:
        _check_png(reg / name)
    for fig, p in figures:
        _check_labelled(fig, Path(p).name)
    cal = D.calibration(D.load_netcdf(reg / "inference_data.nc"))
    assert f"| coverage_90 | {cal['coverage_90']:.4f} |" in text and f"| rmse | {cal['rmse']:.4f} |" in text
    loo = D.loo_summary(D.load_netcdf(reg / "inference_data_train.nc"))
    assert math.isfinite(loo["elpd_loo"]) and f"| {loo['elpd_loo']:.2f} |" in text
    capsys.readouterr()
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["report", str(run), "--num-samples", "0"]) == 2
    assert cli.main(["report", str(run), "--kfold", "1"]) == 2
    assert "`--kfold` must be 0 (no K-fold cross-validation) or a number of folds >= 2" in capsys.readouterr().err


# ----------------------------------------------------------------------------- errors


def test_bad_arguments_are_named():
    model, guide, x, y = tiny_classifier("bernoulli")
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=5)
    with pytest.raises(ValueError, match="`data` must include targets"):
        bd.to_inference_data(model, guide, x)
    for kw, arg in (({"num_samples": 0}, "num_samples"), ({"batch_size": 0}, "batch_size"), ({"seed": -1}, "seed")):
        with pytest.raises(ValueError, match=f"`{arg}`"):
            bd.to_inference_data(model, guide, (x, y), **kw)
    with pytest.raises(ValueError, match="`guide`"):
        bd.to_inference_data(model, bd.DropoutGuide(tiny_classifier("bernoulli")[0]), (x, y))
    with pytest.raises(ValueError, match="data.y"):
        bd.to_inference_data(model, guide, (x, y + 5))
    with pytest.raises(TypeError, match="`idata`"):
        D.calibration({"posterior": None})
    with pytest.raises(ValueError, match="`n_bins`"):
        D.calibration(idata, n_bins=0)
    with pytest.raises(ValueError, match="`levels`"):
        D.calibration(idata, levels=[1.5])
    with pytest.raises(ValueError, match="`group`"):
        D.uncertainty(idata, group="prior")
    with pytest.raises(ValueError, match="`idata` has no 'predictions' group"):
        D.uncertainty(idata, group="predictions")
    no_pp = _arviz.from_dict(posterior={"a": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="`idata` has no 'posterior_predictive' group"):
        D.calibration(no_pp)
    with pytest.raises(ValueError, match="regression"):
        D.pit(idata)
    with pytest.raises(ValueError, match="regression"):
        D.plot_loo_pit(idata)
    with pytest.raises(ValueError, match="classification"):
        D.plot_reliability(_hand_regression())
    with pytest.raises(ValueError, match="noise_scale"):
        D.calibration(
            _arviz.from_dict(
                posterior={"a": np.zeros((1, 2))},
                posterior_predictive={"mu": np.zeros((1, 2, 3))},
                observed_data={"y": np.zeros(3)},
            )
        )
    with pytest.raises(FileNotFoundError, match="`path`"):
        D.load_netcdf("/nonexistent/idata.nc")


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_streamed_inference_data_equals_the_unbatched_one(kind):
    """``to_inference_data`` streams its inputs (passes of ``batch_size``, a DataLoader's batches): with the same seed
    every group equals the one-pass result (the same networks; float32 rounding of other batch shapes aside), except
    the replicated ``y``, fresh likelihood draws whose random stream follows the passes (equal in law)."""
    if kind == "classifier":
        model, guide, x, y = tiny_classifier("bernoulli", n=40, p=0.3)
    else:
        torch.manual_seed(0)
        model = bd.Regressor(bd.models.mlp(3, [8], 1, "bernoulli", p=0.2), num_data=40, noise_scale=0.3)
        guide = bd.DropoutGuide(model)
        x = torch.randn(40, 3, generator=torch.Generator().manual_seed(1))
        y = x.sum(1)
    new = torch.randn(11, x.shape[1], generator=torch.Generator().manual_seed(2))
    whole = bd.to_inference_data(model, guide, (x, y), num_samples=20, predictions=new, seed=5, batch_size=None)
    dicts = [{"x": x[i : i + 9], "y": y[i : i + 9]} for i in range(0, 40, 9)]
    for data, batch_size in (((x, y), 7), (torch.utils.data.DataLoader(dicts, batch_size=None), 4)):
        part = bd.to_inference_data(model, guide, data, num_samples=20, predictions=new, seed=5, batch_size=batch_size)
        assert _arviz.groups(part) == _arviz.groups(whole)
        for group in _arviz.groups(whole):
            for name, value in whole[group].data_vars.items():
                other = part[group][name]
                assert other.dims == value.dims and other.shape == value.shape, (group, name)
                if name == "y" and group in ("posterior_predictive", "predictions"):
                    assert other.dtype == value.dtype
                    continue
                np.testing.assert_allclose(other.values, value.values, rtol=1e-5, atol=1e-6, err_msg=f"{group}/{name}")
    labels = whole.posterior_predictive["y"].values
    if kind == "classifier":
        assert labels.dtype == np.int8 and set(np.unique(labels)) <= {0, 1, 2}  # 3 classes: the smallest type
        assert whole.observed_data["y"].dtype == np.int8
        assert whole.posterior_predictive["probs"].dtype == np.float32  # the network's dtype: half the memory
    with pytest.raises(ValueError, match="`batch_size` must be a positive int or None"):
        bd.to_inference_data(model, guide, (x, y), batch_size=0)
    with pytest.raises(ValueError, match="`predictions` is empty"):
        bd.to_inference_data(model, guide, (x, y), predictions=new[:0])


def test_plots_name_bad_input():
    """Each plot refuses what it cannot draw, naming the argument, before drawing; ``plot_ood`` takes class
    probabilities as arrays too (one draw for a deterministic network)."""
    cls, reg = _hand_classification(), _hand_regression()
    for kw, arg in (({"num_pp_samples": 0}, "num_pp_samples"), ({"interval": 1.0}, "interval")):
        with pytest.raises(ValueError, match=f"`{arg}`"):
            D.plot_ppc(cls, **kw)
    for kw, arg in (({"num_pp_samples": True}, "num_pp_samples"), ({"interval": "0.9"}, "interval")):
        with pytest.raises(TypeError, match=f"`{arg}`"):  # True is not one draw, nor text a probability
            D.plot_ppc(cls, **kw)
    with pytest.raises(ValueError, match="the band plot is for regression"):
        D.plot_predictive_band(cls)
    with pytest.raises(ValueError, match=r"`levels` must be numbers in \(0, 1\)"):
        D.plot_predictive_band(reg, levels=(0.5, 1.5))
    with pytest.raises(ValueError, match=r"group 'constant_data' lacks the variable\(s\) \['x'\]"):
        D.plot_predictive_band(reg)
    two_features = _arviz.from_dict(
        posterior={"a": np.zeros((1, 2))},
        posterior_predictive={"mu": np.zeros((1, 2, 3))},
        observed_data={"y": np.zeros(3)},
        constant_data={"noise_scale": np.ones(3), "x": np.zeros((3, 2))},
        dims={"mu": ["obs_id"], "y": ["obs_id"], "noise_scale": ["obs_id"], "x": ["obs_id", "feature"]},
    )
    with pytest.raises(ValueError, match=r"the band plot needs one input feature, x has shape \(3, 2\)"):
        D.plot_predictive_band(two_features)
    with pytest.raises(ValueError, match="keep_prob"):
        D.plot_dropout_rates(cls)
    with pytest.raises(TypeError, match="`history` must be a FitResult or its non-empty history dict"):
        D.plot_training({})
    with pytest.raises(ValueError, match="`history` has none of the curves"):
        D.plot_training({"seconds": [0.1]})
    with pytest.raises(ValueError, match="`score` must be one of"):
        D.plot_ood(cls, score="variance")
    with pytest.raises(ValueError, match="`idata_out` is required"):
        D.plot_ood(np.full((2, 4, 3), 1 / 3))
    p_in = np.array([[[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.85, 0.05]]])
    p_out = np.full((4, 3), 1 / 3)
    fig = D.plot_ood(p_in, p_out)
    assert len(fig.axes) == 2  # histogram and ROC: no labels, so no accuracy-rejection panel


# ----------------------------------------------------------------------------- netCDF files, PSIS with one draw


def test_load_netcdf_names_the_path_of_a_file_it_cannot_read(tmp_path):
    """A truncated, empty or foreign file is a ValueError naming the argument and the path (not h5py's bare
    OSError); a missing path a FileNotFoundError, a directory an IsADirectoryError, both naming the path."""
    good = D.save_netcdf(_hand_classification(with_log_likelihood=True), tmp_path / "good.nc")
    raw = good.read_bytes()
    bad = {"truncated.nc": raw[: len(raw) // 2], "empty.nc": b"", "text.nc": b"hello"}
    for name, content in bad.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=r"is not a readable netCDF InferenceData") as err:
            D.load_netcdf(path)
        assert f"`path` {str(path)!r}" in str(err.value)
    missing = tmp_path / "missing.nc"
    with pytest.raises(FileNotFoundError, match="`path` does not exist") as err:
        D.load_netcdf(missing)
    assert err.value.filename == str(missing)
    with pytest.raises(IsADirectoryError, match="`path` is a directory") as err:
        D.load_netcdf(tmp_path)
    assert err.value.filename == str(tmp_path)
    with pytest.raises(TypeError, match="`path` must be a path"):
        D.load_netcdf(3)
    assert set(_arviz.groups(D.load_netcdf(good))) >= {"posterior_predictive", "log_likelihood"}


def test_every_numeric_variable_of_a_netcdf_file_carries_a_checksum(tmp_path):
    """Under either ArviZ line (read with netCDF4, which both test environments have): every numeric variable of
    every group is deflated and Fletcher-32 checksummed, and the file loads back equal."""
    netCDF4 = pytest.importorskip("netCDF4")
    idata = _hand_classification(with_log_likelihood=True)
    path = D.save_netcdf(idata, tmp_path / "good.nc")
    seen = set()
    with netCDF4.Dataset(path) as f:
        for group_name, grp in f.groups.items():
            for name, var in grp.variables.items():
                if var.dtype != str and np.dtype(var.dtype).kind in "biufc":
                    filters = var.filters()
                    assert filters["fletcher32"] and filters["zlib"], f"{group_name}/{name}"
                    seen.add(group_name)
    assert seen >= {"posterior_predictive", "log_likelihood"}
    back = D.load_netcdf(path)
    assert all(_arviz.group(back, g).equals(_arviz.group(idata, g)) for g in _arviz.groups(idata))


def test_a_netcdf_file_checksums_its_data_and_a_changed_chunk_is_refused(tmp_path):
    """Every numeric variable of a saved InferenceData carries a Fletcher-32 checksum per chunk (deflate alone left
    the chunks it could not shrink unchecked, and a flipped bit there loaded as other numbers): a byte changed in
    any stored chunk of any variable is a ValueError that names the file as corrupt."""
    h5py = pytest.importorskip("h5py")
    path = D.save_netcdf(_hand_classification(with_log_likelihood=True), tmp_path / "good.nc")
    chunks: list[tuple[str, int, int]] = []  # (variable, byte offset, size) of every stored chunk

    def collect(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "biufc" and obj.id.get_storage_size():
            assert obj.fletcher32 and obj.compression == "gzip", name
            for i in range(obj.id.get_num_chunks()):
                info = obj.id.get_chunk_info(i)
                assert info.filter_mask == 0, name  # every filter applied: none skipped for this chunk
                chunks.append((name, info.byte_offset, info.size))

    with h5py.File(path, "r") as f:
        f.visititems(collect)
    assert {name.split("/")[0] for name, _, _ in chunks} >= {"posterior_predictive", "log_likelihood"}
    raw = path.read_bytes()
    for _, offset, size in chunks:
        changed = bytearray(raw)
        changed[offset + size // 2] ^= 0x10
        bad = tmp_path / "changed.nc"
        bad.write_bytes(bytes(changed))
        with pytest.raises(ValueError, match=r"the file is corrupt: a checksum .* does not match"):
            D.load_netcdf(bad)


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=oct)
def test_save_netcdf_has_the_mode_of_every_artefact_and_names_the_path(tmp_path, monkeypatch, umask):
    """``save_netcdf`` publishes its file with the permission bits of ``fileio.atomic_write`` (0644, not mkstemp's
    0600), and an error names the path the caller gave, not the hidden temporary file."""
    from bayesdrop import fileio

    idata = _hand_classification(with_log_likelihood=True)
    old = os.umask(umask)
    try:
        path = D.save_netcdf(idata, tmp_path / "idata.nc")
        fileio.atomic_write_text(tmp_path / "other.json", "{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "other.json").st_mode) == 0o644
    missing = tmp_path / "missing_dir" / "x.nc"
    with pytest.raises(FileNotFoundError) as err:
        D.save_netcdf(idata, missing)
    assert err.value.filename == str(missing) and ".tmp" not in str(err.value)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # a full disk: the old file is kept, the error names it
    with pytest.raises(OSError, match="No space left") as err:
        D.save_netcdf(idata, path)
    monkeypatch.undo()
    assert err.value.filename == str(path) and path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idata.nc", "other.json"]  # no temporary file left


def test_the_methods_without_a_posterior_group_are_the_documented_ones():
    """The ``posterior`` bullet of ``to_inference_data``'s module docstring names every method (of those an MLP
    takes) whose InferenceData has no ``posterior`` group, and says what to do for PSIS-LOO then; with
    ``reff=1.0`` (what ``loo_summary`` passes) PSIS-LOO works on them."""
    import importlib

    doc = importlib.import_module("bayesdrop.diagnostics.inference_data").__doc__
    bullet = doc[doc.index("* ``posterior``:") : doc.index("* ``posterior_predictive``:")]
    assert "reff=1.0" in bullet and "loo_summary" in bullet
    absent = []
    cases = [(m, {}) for m in bd.methods.names(role="input")] + [("vbd", {"granularity": "unit"})]
    for method, hyper in cases:
        model, guide, x, y = tiny_classifier(method, **hyper)
        bd.fit(model, guide, (x, y), epochs=1, batch_size=20, progress=False, seed=0)
        # 50 draws: ArviZ 1.x fits the Pareto tail from 5 tail draws at least, which 20 draws did not give
        idata = bd.to_inference_data(model, guide, (x, y), num_samples=50, seed=0)
        if "posterior" not in _arviz.groups(idata):
            absent.append((method, hyper))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert math.isfinite(D.loo_summary(idata)["elpd_loo"])
                result = _arviz.az().loo(idata, reff=1.0)  # ArviZ 1.x's result names it elpd
                assert math.isfinite(float(result.elpd if _arviz.major_version() >= 1 else result["elpd_loo"]))
    assert ("vbd", {"granularity": "unit"}) not in absent  # per-unit vbd has draws of its noise
    assert {m for m, _ in absent} >= {"vd", "sparse-vd", "vbd", "dropconnect"}
    for method, _ in absent:
        assert f"``{method}``" in bullet, method


def test_psis_needs_two_draws():
    """PSIS-LOO (and LOO-PIT, PSIS weights) of one draw is a ValueError naming the argument, not ArviZ's
    ``IndexError: index -2 is out of bounds``; two draws work."""

    def ll_idata(S, regression=False):
        rng = np.random.default_rng(0)
        ll = rng.normal(-1.0, 0.3, size=(1, S, 6))
        if regression:
            return _arviz.from_dict(
                posterior_predictive={"mu": rng.normal(size=(1, S, 6)), "y": rng.normal(size=(1, S, 6))},
                log_likelihood={"y": ll},
                observed_data={"y": np.zeros(6)},
                constant_data={"noise_scale": np.ones(6)},
                dims={"mu": ["obs_id"], "y": ["obs_id"], "noise_scale": ["obs_id"]},
            )
        return _arviz.from_dict(
            posterior_predictive={"probs": np.full((1, S, 6, 3), 1 / 3)},
            log_likelihood={"y": ll},
            observed_data={"y": np.zeros(6, dtype=np.int64)},
            dims={"probs": ["obs_id", "class"], "y": ["obs_id"]},
        )

    one = ll_idata(1)
    needs = "needs at least 2 draws, got 1"
    with pytest.raises(ValueError, match=f"^`idata`: PSIS-LOO {needs}"):
        D.loo_summary(one)
    with pytest.raises(ValueError, match=f"^`idata`: PSIS-LOO {needs}"):
        _arviz.loo(one)
    with pytest.raises(ValueError, match=f"^`idata_train`: PSIS-LOO {needs}"):
        D.loo_check(one, ll_idata(3))
    with pytest.raises(ValueError, match=re.escape("`idatas['b']`: PSIS-LOO ") + needs):
        D.compare_loo({"a": ll_idata(3), "b": one})
    with pytest.raises(ValueError, match=f"^`log_ratios`: PSIS {needs}"):
        _arviz.psislw(np.zeros((4, 1)))
    with pytest.raises(ValueError, match=f"^`idata`: LOO-PIT {needs}"):
        D.plot_loo_pit(ll_idata(1, regression=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isfinite(D.loo_summary(ll_idata(2))["elpd_loo"])
    # the audit's case: a model's InferenceData of a single draw
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(ValueError, match=f"^`idata`: PSIS-LOO {needs}"):
        D.loo_summary(bd.to_inference_data(model, guide, (x, y), num_samples=1))


def test_a_signal_during_a_netcdf_write_stops_it_and_leaves_the_old_file(tmp_path, monkeypatch):
    """netCDF's writer swallows a KeyboardInterrupt raised inside its callbacks, so SIGINT during a write was lost:
    the signal is recorded for the write's duration and raised before the new file replaces the old one."""
    import os
    import signal

    import numpy as np

    from bayesdrop.diagnostics.arviz import from_dict, to_netcdf

    idata = from_dict(posterior={"a": np.zeros((1, 10, 3))})
    path = tmp_path / "x.nc"
    path.write_bytes(b"old")
    write = _arviz._write_checksummed

    def interrupted(data: Any, name: str) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # arrives while the file is being written
        write(data, name)

    with monkeypatch.context() as patched:
        patched.setattr(_arviz, "_write_checksummed", interrupted)
        with pytest.raises(KeyboardInterrupt, match="SIGINT") as caught:
            to_netcdf(idata, path)
    assert caught.value.signum == signal.SIGINT  # the command line's exit status reads it
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.nc"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back
    to_netcdf(idata, path)
    assert path.read_bytes() != b"old"
