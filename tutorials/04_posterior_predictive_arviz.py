# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 04 — Posterior predictive analysis with ArviZ
#
# A trained model/guide pair is a variational posterior $q(\theta)$. Drawing
# $S$ networks $\theta_s \sim q$ and pushing data through them gives
# everything a Bayesian workflow asks of a posterior: replicated data for
# posterior predictive checks (PPC), pointwise log-likelihoods for PSIS-LOO and
# WAIC, calibration of the predictive, and the split of predictive entropy into
# an aleatoric part and an epistemic part (mutual information). `bd.to_inference_data`
# records the draws as an `arviz.InferenceData`; the functions in
# `bd.diagnostics` read that object only.
#
# We look at two models: an MC-dropout classifier on `digits` (with uniform
# noise as out-of-distribution inputs) and an MC-dropout regressor on
# `toy-regression` (a gap in the inputs, nothing beyond $|x| > 3$).

# %%
import json
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import bayesdrop as bd

# ArviZ 0.2x announces its 1.x refactor on import; that notice only.
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
import arviz as az  # noqa: E402

QUICK = os.environ.get("BAYESDROP_QUICK") == "1"  # the test suite runs every tutorial at this size
HERE = Path("tutorials") if Path("tutorials").is_dir() else Path(".")  # the repository root, or a notebook's tutorials/
# the full-size outputs are committed in tutorials/output/; a quick run writes to output/quick/ (git-ignored)
OUT = Path(os.environ.get("BAYESDROP_TUTORIAL_OUT") or HERE / ("output/quick" if QUICK else "output"))
OUT.mkdir(parents=True, exist_ok=True)
S = 100 if QUICK else 200  # draws from q
results = {}

# %% [markdown]
# ## 1. Digits: a Bernoulli MC-dropout classifier
#
# A 64-100-10 ReLU network, dropout $p = 0.2$ on the input pixels and
# $p = 0.5$ on the hidden units. The `predictions` inputs are images of
# uniform noise in $[0, 1]$, the value range of the training pixels: inputs
# the network has never seen anything like.

# %%
ds = bd.data.load("digits")
print(ds.train.x.shape, "training images; pixel range", ds.train.x.min().item(), ds.train.x.max().item())
torch.manual_seed(0)
net = bd.models.mlp(64, [100], 10, "bernoulli", p=0.5, input_method=bd.methods.get("bernoulli", p=0.2))
clf = bd.Classifier(net, num_data=len(ds.train))
clf_guide = bd.DropoutGuide(clf)
bd.fit(clf, clf_guide, ds.train, epochs=10 if QUICK else 20, lr=1e-2, progress=False, seed=0)

noise = torch.rand(len(ds.test), 64, generator=torch.Generator().manual_seed(1))  # uniform-noise "images"
idata = bd.to_inference_data(clf, clf_guide, ds.test, num_samples=S, predictions=noise, seed=0)
print(idata)

# %% [markdown]
# The draws are independent, so every group has one `chain` and `draw` = $S$.
# Each draw is one network: its dropout masks are drawn once and shared by
# every input, so a draw is one sample of the weights $W_s = M\,\mathrm{diag}(z_s)$
# (Gal & Ghahramani 2016). `posterior` holds those masks (`net.0.noise` on the
# pixels, `net.2.noise` on the hidden units), the random quantities of $q$;
# the keep probabilities, which Bernoulli dropout fixes, are point estimates
# and sit in their own group, `point_estimates` (R-hat cannot be computed
# from one chain, which ArviZ logs). `posterior_predictive` holds
# replicated labels `y` and the softmax `probs` of every draw;
# `log_likelihood` holds $\log p(y_n \mid \theta_s)$; `predictions` the same
# for the noise images.

# %%
print(az.summary(idata, kind="stats").head())
print("point estimates:", {k: float(v.mean()) for k, v in idata.point_estimates.data_vars.items()})
print(
    "posterior_predictive:",
    dict(idata.posterior_predictive.sizes),
    "| predictions:",
    dict(idata.predictions.sizes),
)

# %% [markdown]
# ### Calibration
#
# `calibration` scores the predictive $\bar p_n = \frac1S \sum_s p(\cdot \mid x_n, \theta_s)$
# against the observed labels: accuracy, NLL, Brier score, expected and
# maximum calibration error over 15 confidence bins.

# %%
cal = bd.diagnostics.calibration(idata)
for k, v in cal.items():
    print(f"{k:>16}: {v:.4f}" if isinstance(v, float) else f"{k:>16}: {v}")
bd.diagnostics.plot_reliability(idata, path=OUT / "04_reliability.png")
results.update(accuracy=cal["accuracy"], nll=cal["nll"], ece=cal["ece"], mean_confidence=cal["mean_confidence"])

# %% [markdown]
# **What the reliability diagram shows** (`04_reliability.png`). Each bar is one
# confidence bin: its height is the accuracy of the test digits whose
# predicted-class probability fell in the bin, the diagonal is perfect
# calibration (the hatched bars: the mean confidence of the bin), and the
# lower panel counts the digits per bin: most sit in the upper bins. In the full-size run the network is accurate (0.95) but
# clearly *under*-confident: the mean confidence is 0.77, every accuracy bar
# but that of the lowest bin (two digits) lies above the diagonal, and the ECE
# is 0.18. Averaging draws of a network
# whose hidden units are dropped with $p = 0.5$ (and a fifth of the input
# pixels) spreads the predictive over several classes; a smaller $p$, or
# learning it (e.g. `dropout++(0.5)` or `vbd`), may give sharper ones. Under-
# rather than over-confidence is the safe side to err on, but it is an error:
# the diagram shows it, the accuracy alone would not.
#
# ### Entropy of correct and wrong predictions

# %%
bd.diagnostics.plot_entropy(idata, path=OUT / "04_entropy.png")
u_test = bd.diagnostics.uncertainty(idata)
correct = u_test["prediction"] == ds.test.y.numpy()
results["entropy_correct"] = float(u_test["predictive_entropy"][correct].mean())
results["entropy_wrong"] = float(u_test["predictive_entropy"][~correct].mean())
print(f"mean predictive entropy: correct {results['entropy_correct']:.3f}, wrong {results['entropy_wrong']:.3f} nats")

# %% [markdown]
# **What the entropy plot shows** (`04_entropy.png`). Left: the predictive
# entropy $H[\bar p_n]$ of the correctly classified digits (green) is spread
# mostly over 0.1-1.2 nats (the under-confidence above), that of the 17
# misclassified ones (red) lies entirely above 1.0 nats: about twice
# the mean (1.52 against 0.76 nats). Right: the same for the mutual
# information, the part of the entropy due to disagreement between the draws
# (0.48 against 0.25 nats). The network
# knows when it is likely to be wrong, which is what a reject option or
# active learning would use.
#
# ### PSIS-LOO and WAIC, with the Pareto k honestly reported
#
# Leave-one-out cross-validation estimates how well the model predicts data
# it was not fitted to, from the data it was fitted to: PSIS-LOO therefore
# runs on the *training* digits. The test digits measure the same quantity
# directly, so `loo_check` compares the two: the test lppd per point times
# the number of training points is what `elpd_loo` should be.

# %%
idata_train = bd.to_inference_data(clf, clf_guide, ds.train, num_samples=S, seed=0)
loo = bd.diagnostics.loo_check(idata_train, idata)
for k in ("elpd_loo", "se", "p_loo", "lppd", "elpd_waic", "p_waic", "reference", "reference_se", "z", "k_max"):
    print(f"{k:>12}: {loo[k]:.3f}")
print(
    "Pareto k counts:",
    {k: loo[k] for k in ("k<=0.5", "0.5<k<=0.7", "0.7<k<=1", "k>1", "k>good_k")},
    "of",
    loo["n_data_points"],
)
results.update(
    elpd_loo=loo["elpd_loo"],
    p_loo=loo["p_loo"],
    lppd=loo["lppd"],
    elpd_waic=loo["elpd_waic"],
    loo_reference=loo["reference"],
    loo_z=loo["z"],
    n_loo=loo["n_data_points"],
)
results["pareto_k_over_0.7"] = int(loo["0.7<k<=1"] + loo["k>1"])
results["pareto_k_over_good_k"] = int(loo["k>good_k"])

# %% [markdown]
# `az.loo` computes the same from the `log_likelihood` group (it warns that
# some k are high; we keep that warning visible here).

# %%
print(az.loo(idata_train, var_name="y"))

# %% [markdown]
# **Reading the numbers.** `lppd` $= \sum_n \log \frac1S \sum_s p(y_n \mid \theta_s)$ is
# the Monte Carlo log predictive density of the training digits; `elpd_loo`
# is meant to estimate that of new ones, which the test digits measure
# (`reference`). Here PSIS-LOO fails, and says so: in the full-size run
# 746 of the 1437 training points have Pareto $k > 0.7$, `p_loo` is
# 519 and `elpd_loo` (-929) lies 15.7 standard errors below the
# held-out reference (-475). PSIS reweights each draw by
# $1 / p(y_n \mid \theta_s)$, which is right for draws from the exact
# posterior. MC dropout's $q$ keeps its mask law fixed, whatever the data:
# the draws spread far more than 1437 digits would allow the posterior to,
# one point's likelihood varies over them by orders of magnitude, and the
# importance ratios are heavy-tailed. Sharing the masks across inputs (the
# draws here) does not change that: the leave-one-out estimate of a point
# reads only that point's draws, whose law is the same with a mask per input.
# For fixed-rate dropout, compare models on the held-out lppd (or K-fold
# cross-validation); a $q$ that learns its spread (`vbd`, `sparse-vd`) gives
# `elpd_loo` within a few standard errors of the reference and `p_loo` near 5
# (`benchmarks/results/analysis.md`).
#
# ### Out-of-distribution inputs: mutual information
#
# The mutual information $I(y; \theta \mid x, D) = H[\bar p] - \frac1S\sum_s H[p_s]$
# is large where the draws disagree: epistemic uncertainty. On noise images
# the network has no evidence, so its draws should disagree more than on
# test digits.

# %%
u_noise = bd.diagnostics.uncertainty(idata, group="predictions")
results["mi_test"] = float(u_test["mutual_information"].mean())
results["mi_noise"] = float(u_noise["mutual_information"].mean())
results["entropy_test"] = float(u_test["predictive_entropy"].mean())
results["entropy_noise"] = float(u_noise["predictive_entropy"].mean())
results["mi_ratio"] = results["mi_noise"] / results["mi_test"]
# how well the mutual information alone separates noise from digits (AUROC, AUPR, FPR at 95 % TPR)
detection = bd.diagnostics.ood(idata)
results["mi_auroc"] = detection["mutual_information"]["auroc"]
print({name: {k: round(v, 3) for k, v in row.items()} for name, row in detection.items() if isinstance(row, dict)})
bd.diagnostics.plot_ood(idata, label_out="uniform noise", path=OUT / "04_ood.png")
print(
    f"mean mutual information: test digits {results['mi_test']:.3f}, noise {results['mi_noise']:.3f} nats "
    f"(ratio {results['mi_ratio']:.1f}); AUROC of MI for noise vs digits {results['mi_auroc']:.3f}"
)
print(f"mean predictive entropy: test digits {results['entropy_test']:.3f}, noise {results['entropy_noise']:.3f} nats")

# %% [markdown]
# On the noise images the mean mutual information is several times that of
# the test digits (full-size run: 0.68 against 0.26 nats, 2.6x, and the
# predictive entropy is 1.7 nats, near the 2.3 of a uniform guess; the MI
# alone ranks a noise image above a test digit with an AUROC of 0.985). Epistemic uncertainty
# flags the inputs that lie outside the training distribution, where a
# single deterministic network would just output some class with a
# softmax score.
#
# ## 2. Toy regression: PPC, LOO-PIT and coverage
#
# A 1-50-50-1 ReLU network with dropout $p = 0.1$ on the hidden units and
# the known observation noise $\sigma = 0.1$. The 200 training inputs lie in
# $[-3, 3]$ outside the gap $(-0.75, 0.75)$; the test set is a grid of 400
# points over $[-5, 5]$ with targets from the true function, so it extends
# well beyond the training inputs.

# %%
toy = bd.data.load("toy-regression")
torch.manual_seed(0)
rnet = bd.models.mlp(1, [50, 50], 1, "bernoulli", p=0.1, input_method=bd.methods.get("bernoulli", p=0.0))
reg = bd.Regressor(rnet, num_data=len(toy.train), noise_scale=0.1, learn_noise=False)
reg_guide = bd.DropoutGuide(reg)
bd.fit(reg, reg_guide, toy.train, epochs=200 if QUICK else 300, batch_size=200, lr=1e-2, progress=False, seed=0)
ridata = bd.to_inference_data(reg, reg_guide, toy.test, num_samples=S, seed=0)
print(bd.diagnostics.arviz.groups(ridata), "| test grid", toy.test.x.min().item(), "to", toy.test.x.max().item())

bd.diagnostics.plot_ppc(ridata, path=OUT / "04_ppc.png")
bd.diagnostics.plot_loo_pit(ridata, path=OUT / "04_loo_pit.png")
bd.diagnostics.plot_predictive_band(ridata, train=toy.train, path=OUT / "04_predictive_band.png")
rloo = bd.diagnostics.loo_summary(ridata)
results["toy_pareto_k_over_0.7"] = int(rloo["0.7<k<=1"] + rloo["k>1"])
print(
    f"toy regression: Pareto k > 0.7 for {results['toy_pareto_k_over_0.7']} of {rloo['n_data_points']} points, "
    f"k max {rloo['k_max']:.1f}, p_loo {rloo['p_loo']:.0f}"
)

# %% [markdown]
# **What the plots show.** `04_predictive_band.png`: the predictive mean with
# its 50 % and 90 % central intervals (of the Gaussian mixture over the
# draws), the training points (orange) and the test grid (black). Where the
# training points lie the band hugs them; in the gap and beyond $|x| > 3$
# it widens (most on the left), but the true function leaves it: it turns
# back at $x \approx -4$ and $x \approx 3.5$ while the network extrapolates a line.
# `04_ppc.png`: the replicated densities (blue, one per draw) reproduce the predictive
# mean's three bumps and reach out to $y \approx -5$ and $y > 3$, where the
# left band and the rising right extrapolation put mass; the observed
# targets (black) stay in $[-2.6, 2.6]$ and are smoother. The mismatch comes
# from the test points beyond the data.
#
# `04_loo_pit.png`: the LOO-PIT values $P(\tilde y_n \le y_n \mid y_{-n})$ should
# be uniform for a calibrated predictive. Here they pile up at 0 and 1 with
# almost nothing in between, and that says more about PSIS than about the
# model: with $\sigma = 0.1$ a single draw's likelihood of a point is far above
# the others', so nearly every point has a huge Pareto $k$ (printed above;
# full size: $k > 0.7$ for 400 of 400 points, $k$ up to 28, `p_loo` in the tens of thousands). The
# leave-one-out weights collapse on one draw and the LOO-PIT degenerates.
# The plain PIT $F_n(y_n)$ of the predictive (no leave-one-out; what
# `calibration` uses) is the one to read here, `04_pit.png` below.
#
# ### Coverage on the whole grid and on the in-support points
#
# A point lies in the central interval of mass $m$ iff its PIT value lies in
# $[(1-m)/2, (1+m)/2]$. We compute it on the whole test grid and on the grid
# points where the training inputs lie (inside the training range and outside
# the gap).

# %%
x = toy.test.x[:, 0]
support = (x >= toy.x_range[0]) & (x <= toy.x_range[1]) & ((x <= toy.gap[0]) | (x >= toy.gap[1]))
idata_support = bd.to_inference_data(reg, reg_guide, (toy.test.x[support], toy.test.y[support]), num_samples=S, seed=0)
cal_grid = bd.diagnostics.calibration(ridata)
cal_support = bd.diagnostics.calibration(idata_support)
print(f"{'interval':>9} {'grid':>6} {'support':>8}")
for m in ("50", "80", "90", "95"):
    print(f"{m + ' %':>9} {cal_grid['coverage_' + m]:6.3f} {cal_support['coverage_' + m]:8.3f}")
print(
    f"{int(support.sum())} in-support points of {len(x)}; RMSE grid {cal_grid['rmse']:.3f}, support {cal_support['rmse']:.3f}"
)
u_reg = bd.diagnostics.uncertainty(ridata)
outside = ((x < toy.x_range[0]) | (x > toy.x_range[1])).numpy()
results["std_support"] = float(u_reg["std"][support.numpy()].mean())
results["std_outside"] = float(u_reg["std"][outside].mean())
print(f"mean predictive std: in support {results['std_support']:.3f}, beyond the data {results['std_outside']:.3f}")
for m in ("50", "80", "90", "95"):
    results[f"coverage{m}_grid"] = cal_grid["coverage_" + m]
    results[f"coverage{m}_support"] = cal_support["coverage_" + m]
results["n_support"] = int(support.sum())
results["n_grid"] = len(x)
u_pit = bd.diagnostics.pit(ridata)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.hist(u_pit, bins=20, range=(0, 1), density=True, alpha=0.5, label=f"whole grid ({len(x)} points)")
ax.hist(
    u_pit[support.numpy()], bins=20, range=(0, 1), density=True, alpha=0.5, label=f"in support ({int(support.sum())})"
)
ax.axhline(1, color="k", ls="--", lw=1, label="uniform")
ax.set(xlabel="PIT $F_n(y_n)$", ylabel="density", title="PIT of the test targets")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "04_pit.png", dpi=120)

# %% [markdown]
# Where the training inputs lie (180 of the 400 grid points), the intervals
# are close to right, a little narrow: in the full-size run the 50/80/90/95 %
# intervals cover 0.45/0.72/0.85/0.91 of the in-support points. On the whole
# grid the coverage drops to 0.22/0.35/0.42/0.45: the grid extends to $|x| = 5$
# and crosses the gap, and there the ReLU draws fan out (the mean predictive std
# beyond the data is 0.42 against 0.21 in support) but far too little to
# follow the true function, which turns back while the network extrapolates
# a line (see the band plot). `04_pit.png` shows it: the in-support PIT
# values are close to uniform (a little heavy at the ends), the grid's pile up
# at 0 and 1. MC dropout under-covers out of the data: its
# uncertainty grows in the right direction, but it is not a calibrated
# statement about extrapolation. Calibration should be measured (and
# claimed) on data like the training data.
#
# ## 3. Saving and loading
#
# An InferenceData is a set of xarray datasets; `save_netcdf` writes every
# group to one netCDF4 file and `load_netcdf` reads it back (here into a
# temporary folder: the file is a few MB).

# %%
tmp = tempfile.mkdtemp()  # a few MB: kept out of the output folder
back = bd.diagnostics.load_netcdf(bd.diagnostics.save_netcdf(ridata, Path(tmp) / "toy_idata.nc"))
results["netcdf_roundtrip"] = bool(
    np.array_equal(back.posterior_predictive["mu"].values, ridata.posterior_predictive["mu"].values)
)
print("round trip exact:", results["netcdf_roundtrip"], "| groups:", bd.diagnostics.arviz.groups(back))

# %%
print(json.dumps(results, indent=1))
(OUT / "04_results.json").write_text(json.dumps(results, indent=1))
