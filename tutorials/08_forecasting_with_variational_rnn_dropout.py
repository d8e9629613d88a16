# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 08 — Forecasting with variational RNN dropout: Mauna Loa CO2
#
# Dropout in a recurrent network has a choice that feed-forward dropout does not:
# draw a fresh mask at every time step, or one mask per sequence. Gal &
# Ghahramani (2016) showed that the second is variational inference: an LSTM's
# gates are
#
# $$ (i, f, g, o)_t = \mathrm{act}\big(W\,[x_t \circ m^x;\ h_{t-1} \circ m^h]\big), $$
#
# and one mask $m^h$ for the whole sequence is one draw of the weights
# $W \operatorname{diag}(m)$, the same at every step, so the network that reads a
# sequence is one sample of the approximate posterior. Monte Carlo over such
# draws gives a predictive distribution of the forecast, and the deterministic
# network (every mask at its mean $1 - p$) is the paper's test-time rule.
#
# We forecast the next 12 months of the Mauna Loa CO2 record from the 24 before
# them. `bd.data.load("co2")` reads the weekly record that `statsmodels` ships,
# takes monthly means (1958-2001), and cuts the series into windows: inputs and
# targets relative to the window's last value (so the rising level is never an
# extrapolation) and divided by one scale. Training targets all lie before 1990,
# test targets from 1990 on: we train on the past and forecast the future.
#
# The likelihood is `bd.Regressor(net, horizon=12)`: a Gaussian per step with its
# own learned noise $\sigma_h$, the window's log-likelihood the sum over its 12
# steps. A univariate series has one input feature; a per-sequence mask on it
# would hide the whole sequence in a fraction $p$ of the draws, so
# `variational-rnn` drops only $h_{t-1}$ there by default (`p_input` sets the
# input rate).

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from scipy.stats import spearmanr

import bayesdrop as bd

QUICK = os.environ.get("BAYESDROP_QUICK") == "1"  # the test suite runs every tutorial at this size
HERE = Path("tutorials") if Path("tutorials").is_dir() else Path(".")  # the repository root, or a notebook's tutorials/
# the full-size outputs are committed in tutorials/output/; a quick run writes to output/quick/ (git-ignored)
OUT = Path(os.environ.get("BAYESDROP_TUTORIAL_OUT") or HERE / ("output/quick" if QUICK else "output"))
OUT.mkdir(parents=True, exist_ok=True)
EPOCHS = 150 if QUICK else 1000
T = 50 if QUICK else 200  # MC draws

ds = bd.data.load("co2")
series = ds.series
x_train, x_test = ds.sequences("train"), ds.sequences("test")
print(f"{len(x_train)} training windows, {len(x_test)} test windows of {series.window} months -> {series.horizon}")
print(f"scale: {series.scale:.3f} ppm")
results: dict = {"quick": QUICK, "epochs": EPOCHS, "draws": T}

# %% [markdown]
# ## The model and one draw of its masks
#
# `bd.models.rnn` is an LSTM read at its last step and a dense head; the method
# acts inside the recurrence, the head has no noise. Tracing the guide shows the
# masks: one per sequence, shape `(B, 1, units)`, shared by every step.

# %%
pyro.set_rng_seed(0)
net = bd.models.rnn(1, 32, series.horizon, method="variational-rnn")
model = bd.Regressor(net, num_data=len(x_train), horizon=series.horizon)
guide = bd.DropoutGuide(model)
trace = poutine.trace(guide).get_trace(x_train[:64], ds.train.y[:64])
masks = {name: site["value"] for name, site in trace.nodes.items() if site["type"] == "sample" and "noise" in name}
for name, m in masks.items():
    print(name, tuple(m.shape), f"fraction kept {m.mean():.2f}")
m_h = masks["net.rnn.noise_hh_l0"]
results["mask_h_shape"] = list(m_h.shape)
results["mask_h_kept"] = m_h.mean().item()
results["mask_x_all_ones"] = bool((masks["net.rnn.noise_l0"] == 1).all())

# %% [markdown]
# ## Training
#
# `bd.fit` with its defaults; only the number of epochs is set.

# %%
fit = bd.fit(model, guide, (x_train, ds.train.y), epochs=EPOCHS, seed=0, progress=False)
print(f"{EPOCHS} epochs, {fit.seconds_per_epoch:.3f} s / epoch; learned noise per step (scaled units):")
print(np.round(model.noise_scale.detach().numpy(), 3))

# %% [markdown]
# ## The predictive on the test years, in ArviZ
#
# `bd.to_inference_data` draws $T$ networks and records, for every test window,
# the forecast draws with a `time` dimension (the step, 1-12 months ahead).
# `bd.diagnostics.calibration` scores every forecast value: RMSE, coverage of
# the central intervals (from the probability integral transform of the
# Gaussian mixture), and `uncertainty` splits the predictive standard deviation
# into the spread of the draws (epistemic) and the learned noise (aleatoric).

# %%
idata = bd.to_inference_data(model, guide, (x_test, ds.test.y), num_samples=T, seed=0)
print(idata.posterior_predictive["y"].dims)
cal = bd.diagnostics.calibration(idata, levels=(0.5, 0.9))
unc = bd.diagnostics.uncertainty(idata)
std_by_step = unc["std"].mean(0) * series.scale  # ppm
epi_by_step = unc["epistemic_std"].mean(0) * series.scale
rho = spearmanr(np.arange(series.horizon), std_by_step).statistic
print(
    f"RMSE {cal['rmse'] * series.scale:.3f} ppm; 50 % interval covers {cal['coverage_50']:.1%}, "
    f"90 % interval covers {cal['coverage_90']:.1%} of the held-out values"
)
print("predictive std by step (ppm):", np.round(std_by_step, 3))
print("  of which the draws' spread:", np.round(epi_by_step, 3))
print(f"Spearman correlation of the std with the step: {rho:.2f}")
det = bd.predict(model, guide, x_test, rule="weight-scaling")[0]
rmse_det = ((det - ds.test.y).pow(2).mean().sqrt() * series.scale).item()
print(f"deterministic test-time network: RMSE {rmse_det:.3f} ppm")
results.update(
    rmse=cal["rmse"] * series.scale,
    rmse_det=rmse_det,
    coverage_50=cal["coverage_50"],
    coverage_90=cal["coverage_90"],
    std_by_step=std_by_step.tolist(),
    epistemic_by_step=epi_by_step.tolist(),
    spearman_std_step=float(rho),
    noise_by_step=(model.noise_scale.detach().numpy() * series.scale).tolist(),
    time_dims=list(idata.posterior_predictive["y"].dims),
)

# %% [markdown]
# ## The forecast band beyond the data
#
# From each January of the test years, the 12-month forecast: the median and
# the 90 % band of the predictive draws (each draw a network's output plus its
# step's noise), mapped back to ppm with `series.to_values`. The training data
# end in December 1989. On the right, the mean predictive standard deviation
# of every test window by step, and its two parts.

# %%
with torch.no_grad():
    _, out = bd.predict(model, guide, x_test, num_samples=T, return_samples=True)
    draws = out + model.noise_scale * torch.randn_like(out)  # samples of the predictive, (T, N, 12)
values = series.to_values(draws, "test")  # ppm
starts = series.starts["test"]
january = [n for n, t in enumerate(starts) if abs(series.times[t] % 1) < 1e-9]
fig, (ax, ax_std) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2.6, 1]})
past = series.times < 1990
ax.plot(series.times[past], series.values[past], color="0.55", lw=1, label="training data (to 1989)")
ax.plot(series.times[~past], series.values[~past], color="k", lw=1, label="held-out future")
inside = []
for k, n in enumerate(january):
    t = series.times[starts[n] : starts[n] + series.horizon]
    lo, med, hi = np.percentile(values[:, n], [5, 50, 95], axis=0)
    truth = series.values[starts[n] : starts[n] + series.horizon]
    inside.append(((truth >= lo) & (truth <= hi)).mean())
    ax.fill_between(t, lo, hi, color="C0", alpha=0.3, lw=0, label="90 % band" if k == 0 else None)
    ax.plot(t, med, color="C0", lw=1.2, label="forecast median" if k == 0 else None)
ax.set_xlim(1980, 2002.5)
ax.set_ylim(335, 375)
ax.set_xlabel("year")
ax.set_ylabel("CO$_2$ (ppm)")
ax.set_title(f"Variational RNN dropout: 12-month forecasts from each January, {T} draws")
ax.legend(loc="upper left")
steps = np.arange(1, series.horizon + 1)
ax_std.plot(steps, std_by_step, "o-", color="C0", label="predictive std")
ax_std.plot(steps, epi_by_step, "s--", color="C1", label="spread of the draws (epistemic)")
ax_std.plot(steps, results["noise_by_step"], ":", color="0.4", label="learned noise $\\sigma_h$ (aleatoric)")
ax_std.set_xlabel("months ahead")
ax_std.set_ylabel("ppm")
ax_std.set_ylim(0, None)
ax_std.set_title("Uncertainty by forecast step, test windows")
ax_std.legend(loc="lower right", fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "08_co2_forecast.png", dpi=120)
results["band_coverage_januaries"] = float(np.mean(inside))
results["januaries"] = len(january)
print(f"{len(january)} forecasts from January; their 90 % bands hold {np.mean(inside):.1%} of the months")

# %% [markdown]
# ## What the figures say
#
# - The masks of $h_{t-1}$ are one draw per sequence, `(B, 1, 32)`; the single
#   input feature is not dropped.
# - The predictive standard deviation grows with the forecast horizon: the
#   further ahead, the wider the band (the Spearman correlation of the mean
#   standard deviation with the step is printed above; the learned noise of
#   each step grows with it).
# - The 90 % intervals cover between 70 % and 99 % of the held-out future:
#   the predictive is calibrated on years the network never saw.
# - Most of the width is the learned noise of each step (aleatoric); the
#   spread of the draws, the epistemic part, is the smaller share on a series
#   this regular.

# %%
(OUT / "08_results.json").write_text(json.dumps(results, indent=1))
