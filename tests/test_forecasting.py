"""Forecasting: the CO2 and sunspot series cut into windows (train on the past, test on the future), multi-step
``bd.Regressor(horizon=H)`` (a joint Gaussian over the H steps, a noise per step), and its posterior predictive in
ArviZ with a ``time`` dimension, scored value by value."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

import bayesdrop as bd
from bayesdrop.diagnostics import calibration, pit, uncertainty


@pytest.mark.parametrize("name, n_train, n_test, test_from", [("co2", 347, 133, 1990.0), ("sunspots", 215, 48, 1950.0)])
def test_forecasting_windows_are_relative_scaled_and_split_by_time(name, n_train, n_test, test_from):
    ds = bd.data.load(name)
    s = ds.series
    assert s is not None and (s.window, s.horizon) == (24, 12) and ds.task == "regression"
    assert ds.train.x.shape == (n_train, 24) and ds.train.y.shape == (n_train, 12)
    assert ds.test.x.shape == (n_test, 24) and ds.sequences("test").shape == (n_test, 24, 1)
    assert np.isfinite(s.values).all() and np.all(np.diff(s.times) > 0)
    # train on the past: every training target before test_from; test on the future: every test target after
    assert s.times[s.starts["train"] + 11].max() < test_from <= s.times[s.starts["test"]].min()
    # inputs and targets relative to the window's last value, divided by the scale
    assert torch.equal(ds.train.x[:, -1], torch.zeros(n_train))
    n = 5
    t = s.starts["test"][n]
    np.testing.assert_allclose(ds.test.y[n].numpy() * s.scale, s.values[t : t + 12] - s.values[t - 1], atol=1e-4)
    np.testing.assert_allclose(ds.test.x[n].numpy() * s.scale, s.values[t - 24 : t] - s.values[t - 1], atol=1e-4)
    np.testing.assert_allclose(s.to_values(ds.test.y, "test")[n], s.values[t : t + 12], rtol=1e-6)
    np.testing.assert_allclose(s.to_values(ds.test.y, "test", scale_only=True), ds.test.y.numpy() * s.scale)
    assert ds.train.y.std().item() == pytest.approx(1.0, rel=1e-3)  # the scale is the train targets' std
    with pytest.raises(ValueError, match="split"):
        s.to_values(ds.test.y, "valid")
    with pytest.raises(ValueError, match=r"\(215, 12\)|\(347, 12\)"):
        s.to_values(ds.test.y, "train")


def test_co2_is_the_monthly_mean_of_the_weekly_record():
    from statsmodels.datasets import co2

    weekly = co2.load_pandas().data["co2"]
    s = bd.data.load("co2").series
    assert len(s.values) == 526 and s.times[0] == 1958 + 2 / 12 and s.times[-1] == 2001 + 11 / 12
    may_1990 = weekly["1990-05-01":"1990-05-31"].mean()
    assert s.values[np.flatnonzero(np.isclose(s.times, 1990 + 4 / 12))[0]] == pytest.approx(may_1990)


def test_forecasting_options_are_checked():
    assert bd.data.load("sunspots", window=10, horizon=3, test_from=1980).train.y.shape[1] == 3
    for kwargs, error, match in (  # a value of the wrong kind is a TypeError, one out of range a ValueError
        ({"window": 0}, ValueError, r"`window` must be a positive int \(time steps\), got 0"),
        ({"horizon": 1.5}, TypeError, "`horizon` must be a positive int"),
        ({"test_from": "1990"}, TypeError, r"`test_from` must be a number \(a year\), got '1990'"),
        ({"test_from": float("nan")}, ValueError, "`test_from` must lie in"),
        ({"test_from": 1700}, ValueError, "training"),
        ({"horizon": 400}, ValueError, "test windows"),
    ):
        with pytest.raises(error, match=match):
            bd.data.load("sunspots", **kwargs)
    with pytest.raises(TypeError, match="noise"):
        bd.data.load("co2", noise=0.1)


def _forecaster(horizon=3, n=20, seed=0):
    torch.manual_seed(seed)
    x, y = torch.randn(n, 6, 1), torch.randn(n, horizon)
    model = bd.Regressor(bd.models.rnn(1, 4, horizon), num_data=n, horizon=horizon)
    guide = bd.DropoutGuide(model)
    return model, guide, x, y


def test_a_forecast_is_a_joint_gaussian_over_its_steps_with_a_noise_per_step():
    model, guide, x, y = _forecaster()
    with torch.no_grad():
        model.log_noise.copy_(torch.tensor([-1.0, 0.0, 0.5]))
    out = torch.randn(4, 20, 3)
    expected = norm.logpdf(y.numpy(), out.numpy(), np.exp([-1.0, 0.0, 0.5])).sum(-1)
    np.testing.assert_allclose(model.log_likelihood(out, y).detach().numpy(), expected, rtol=1e-5)
    with torch.no_grad():
        mean, std = model.predictive(out)
    assert mean.shape == std.shape == (20, 3)
    torch.testing.assert_close(std, (out.var(0, unbiased=False) + model.noise_scale.detach() ** 2).sqrt())
    with pytest.raises(ValueError, match="3 outputs"):
        model.distribution(torch.randn(20, 2))
    for bad in (torch.randn(20), torch.randn(20, 4), torch.randint(0, 3, (20, 3))):
        with pytest.raises(ValueError, match=r"\(N, 3\)"):
            model.check_targets(bad)
    with pytest.raises(ValueError, match="horizon"):
        bd.Regressor(bd.models.rnn(1, 4, 3), num_data=20, horizon=0)
    with pytest.raises(ValueError, match="horizon=H"):  # a one-value regressor given a forecast's targets
        bd.Regressor(bd.models.rnn(1, 4, 1), num_data=20).check_targets(y)


def test_forecasts_train_and_reach_arviz_with_a_time_dimension():
    model, guide, x, y = _forecaster()
    bd.fit(model, guide, (x, y), epochs=2, progress=False)
    mean, std = bd.predict(model, guide, x, num_samples=8)
    assert mean.shape == std.shape == (20, 3)
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=16, predictions=x[:5])
    pp = idata.posterior_predictive
    assert pp["y"].dims == ("chain", "draw", "obs_id", "time") and pp["mu"].dims == pp["y"].dims
    assert list(pp["time"].values) == [1, 2, 3]
    assert idata.predictions["y"].dims == ("chain", "draw", "pred_id", "time")
    assert idata.constant_data["noise_scale"].dims == ("obs_id", "time")
    assert idata.predictions_constant_data["noise_scale"].shape == (5, 3)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "obs_id")
    # log_likelihood is the joint density of a window: the sum over its steps
    mu = pp["mu"].values[0].astype(np.float64)  # stored in the network's float32; the metrics compute in float64
    sigma = model.noise_scale.detach().double().numpy()
    np.testing.assert_allclose(
        idata.log_likelihood["y"].values[0], norm.logpdf(y.numpy(), mu, sigma).sum(-1), rtol=1e-5, atol=1e-5
    )
    # calibration scores every value; the nll without the log_likelihood group is the same joint density
    u = (norm.cdf((y.double().numpy()[None] - mu) / sigma)).mean(0)
    np.testing.assert_allclose(pit(idata), u, rtol=1e-6)
    cal = calibration(idata, levels=(0.9,))
    assert cal["coverage_90"] == pytest.approx(((u >= 0.05) & (u <= 0.95)).mean())
    del idata["log_likelihood"]  # an InferenceData (ArviZ 0.2x) or a DataTree (1.x)
    assert calibration(idata, levels=(0.9,))["nll"] == pytest.approx(cal["nll"], rel=1e-6)
    unc = uncertainty(idata)
    assert unc["std"].shape == (20, 3)
    np.testing.assert_allclose(unc["aleatoric_std"], np.broadcast_to(sigma, (20, 3)), rtol=1e-6)
    assert math.isfinite(bd.evaluate(model, guide, (x, y))["rmse"])


def test_a_regression_with_new_inputs_keeps_their_noise_in_predictions_constant_data():
    """ArviZ 0.2x's ``from_dict`` reads ``predictions_constant_data`` with the observed data's dims, which failed for
    every regression with ``predictions``; the group is now added with the predictions' own dims."""
    torch.manual_seed(0)
    x, y = torch.randn(20, 2), torch.randn(20)
    model = bd.Regressor(bd.models.mlp(2, [4], 1), num_data=20)
    guide = bd.DropoutGuide(model)
    idata = bd.to_inference_data(model, guide, (x, y), num_samples=4, predictions=x[:5])
    group = idata.predictions_constant_data
    assert group["noise_scale"].dims == ("pred_id",) and group["x"].dims == ("pred_id", "feature")
    np.testing.assert_allclose(group["x"].values, x[:5].numpy())
    assert list(group["pred_id"].values) == list(range(5))


def test_the_command_line_trains_and_reports_a_forecaster(tmp_path):
    """``bayesdrop train --dataset co2 --arch rnn:H`` builds a 12-step forecaster (``Regressor(horizon=12)``), and
    ``bayesdrop report`` plots the forecast by step in place of the LOO-PIT (LOO is per window, the PIT per value)."""
    from bayesdrop import cli

    out = tmp_path / "run"
    argv = ["train", "--method", "variational-rnn", "--dataset", "co2", "--arch", "rnn:4", "--epochs", "1"]
    assert cli.main([*argv, "--out", str(out), "--quiet"]) == 0
    _, model, _, _ = bd.experiments.runs.load_run(out)
    assert model.horizon == 12 and model.noise_scale.shape == (12,)
    assert cli.main(["report", str(out)]) == 0
    assert (out / "forecast_steps.png").stat().st_size > 0 and not (out / "loo_pit.png").exists()
    with pytest.raises(ValueError, match="forecast"):
        bd.diagnostics.plot_forecast_steps(bd.diagnostics.load_netcdf(out / "inference_data.nc").sel(time=1))


def test_a_fixed_precision_is_the_noise_and_the_predictive_variance_adds_it():
    """``Regressor(precision=tau)``: sigma = tau^-1/2, not learned; the predictive variance is tau^-1 plus the
    variance of the draws (Gal & Ghahramani 2016), on a fixed set of draws."""
    tau = bd.likelihoods.model_precision(0.1, length_scale=0.5, weight_decay=1e-4, num_data=50)
    assert tau == pytest.approx(0.9 * 0.25 / (2 * 50 * 1e-4))
    model = bd.Regressor(bd.models.mlp(2, [8], 1), num_data=50, precision=tau)
    assert not model.log_noise.requires_grad and "log_noise" not in dict(model.named_parameters())
    out = torch.randn(7, 5, 1)
    with torch.no_grad():
        _, std = model.predictive(out)
    torch.testing.assert_close(std**2, 1 / tau + out.squeeze(-1).var(0, unbiased=False))
    with pytest.raises(ValueError, match="precision"):
        bd.Regressor(bd.models.mlp(2, [8], 1), num_data=50, precision=0.0)
