# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 05 — Your own likelihood: one `distribution`, then bd.fit, Pyro's SVI, predict and ArviZ
#
# `bd.Classifier` and `bd.Regressor` are two likelihoods. A likelihood is a
# `bd.Likelihood` subclass with one method, `distribution(out)`: the distribution
# of a target given the network's output. Everything else derives from it: the
# observation site of the Pyro model, the pointwise log-likelihood, the posterior
# predictive (by default the mixture's mean and standard deviation), the test NLL
# and the ArviZ groups. Here we write a heteroscedastic regression — the network
# predicts a mean and a noise scale per input — train it once with `bd.fit` and
# once with a plain `pyro.infer.SVI` loop, and predict with Pyro's own `Predictive`.
#
# The model is an ordinary Pyro model: `Likelihood.forward` opens the data plate
# (subsampled, so minibatches are scaled by N/B), runs the network inside
# `bd.nn.local_plate(plate)` (weights global, masks per example) and observes
# `y ~ distribution(out)` inside the plate. A hand-written model with those two
# rules works with `bd.DropoutGuide` too.

# %%
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pyro
import pyro.distributions as dist
import torch

import bayesdrop as bd

QUICK = os.environ.get("BAYESDROP_QUICK") == "1"
HERE = Path("tutorials") if Path("tutorials").is_dir() else Path(".")  # the repository root, or a notebook's tutorials/
# the full-size outputs are committed in tutorials/output/; a quick run writes to output/quick/ (git-ignored)
OUT = Path(os.environ.get("BAYESDROP_TUTORIAL_OUT") or HERE / ("output/quick" if QUICK else "output"))
OUT.mkdir(parents=True, exist_ok=True)
STEPS = 300 if QUICK else 3000

# Data whose noise grows with |x|.
g = torch.Generator().manual_seed(0)
x = torch.rand(400, 1, generator=g) * 6 - 3
y = torch.sin(2 * x[:, 0]) + (0.05 + 0.15 * x[:, 0].abs()) * torch.randn(400, generator=g)


class HeteroscedasticRegression(bd.Likelihood):
    """y ~ N(mu(x), sigma(x)^2): the network's two outputs give mu and sigma = softplus(.) + 0.01."""

    def distribution(self, out):
        return dist.Normal(out[..., 0], torch.nn.functional.softplus(out[..., 1]) + 0.01)


def network():
    return bd.models.mlp(1, [64, 64], 2, "bernoulli", input_method=bd.methods.get("bernoulli", p=0.0), p=0.1)


# %% [markdown]
# With `bd.fit` (its defaults: Adam at 1e-2 decayed linearly, the MeanFieldELBO), then
# `bd.predict` (the mixture's mean and standard deviation over 200 networks) and
# `bd.evaluate` (the mixture's negative log predictive density):

# %%
model = HeteroscedasticRegression(network(), num_data=len(x))
guide = bd.DropoutGuide(model)
result = bd.fit(model, guide, (x, y), epochs=40 if QUICK else 400, batch_size=100, progress=False)
mean_fit, std_fit = bd.predict(model, guide, x, num_samples=200)
fit_nll = bd.evaluate(model, guide, (x, y), num_samples=200)["nll"]
print(
    f"bd.fit: training NLL {result.history['nll'][0]:.3f} -> {result.history['nll'][-1]:.3f}; predictive NLL on the data {fit_nll:.3f}"
)
idata = bd.to_inference_data(model, guide, (x, y), num_samples=100, seed=0)
print(idata.posterior_predictive["f"].dims)  # the network output per draw: (chain, draw, obs_id, f_dim_0)

# %% [markdown]
# The same model and guide, trained by a plain Pyro loop:

# %%
pyro.clear_param_store()
model = HeteroscedasticRegression(network(), num_data=len(x))
guide = bd.DropoutGuide(model)
svi = pyro.infer.SVI(model, guide, pyro.optim.ClippedAdam({"lr": 3e-3}), pyro.infer.TraceMeanField_ELBO())
losses = []
for _ in range(STEPS):
    idx = torch.randint(0, len(x), (100,), generator=g)
    losses.append(svi.step(x[idx], y[idx]))
print(f"loss: first 50 steps {sum(losses[:50]) / 50:.1f}, last 50 steps {sum(losses[-50:]) / 50:.1f}")

# %% [markdown]
# Prediction uses Pyro's own `Predictive`, one network per draw (`parallel=False`: each
# draw is an ordinary forward pass). The model returns the network output, so `_RETURN`
# holds one (mean, raw scale) per draw.

# %%
grid = torch.linspace(-4.5, 4.5, 200)[:, None]
pred = pyro.infer.Predictive(model, guide=guide, num_samples=200, parallel=False, return_sites=["_RETURN"])
with torch.no_grad():
    draws = pred(grid)["_RETURN"]  # (200, 200, 2)
mu, sigma = draws[..., 0], torch.nn.functional.softplus(draws[..., 1]) + 0.01
mean = mu.mean(0)
aleatoric = (sigma**2).mean(0).sqrt()
epistemic = mu.std(0)

fig, ax = plt.subplots(figsize=(7, 3.8))
ax.scatter(x[:, 0], y, s=5, c="k")
ax.plot(grid[:, 0], mean, label="mean")
ax.fill_between(grid[:, 0], mean - 2 * aleatoric, mean + 2 * aleatoric, alpha=0.25, label="±2 aleatoric std")
ax.fill_between(grid[:, 0], mean - 2 * epistemic, mean + 2 * epistemic, alpha=0.5, label="±2 epistemic std")
ax.axvspan(-4.5, -3, color="0.92", zorder=-1)
ax.axvspan(3, 4.5, color="0.92", zorder=-1)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "05_heteroscedastic.png", dpi=120)

# %% [markdown]
# **What the plot shows.** The learned noise (light band) widens with $|x|$,
# because the network's second output models it; the epistemic band (dark)
# stays thin where data are dense and opens up outside $[-3, 3]$ (grey), where
# no data constrain the network. Both come from one model: a likelihood written
# by hand and a dropout posterior supplied by bayesdrop.

# %%
x0 = grid[:, 0]
centre, edge, outside = x0.abs() < 0.5, (x0.abs() > 2.5) & (x0.abs() < 3), x0.abs() > 3.75
results = {
    "fit_nll_first": result.history["nll"][0],
    "fit_nll_last": result.history["nll"][-1],
    "fit_predictive_nll": fit_nll,
    "loss_first": sum(losses[:50]) / 50,
    "loss_last": sum(losses[-50:]) / 50,
    "aleatoric_centre": aleatoric[centre].mean().item(),
    "aleatoric_edge": aleatoric[edge].mean().item(),
    "epistemic_inside": epistemic[x0.abs() < 3].mean().item(),
    "epistemic_outside": epistemic[outside].mean().item(),
}
print(json.dumps(results, indent=1))
(OUT / "05_results.json").write_text(json.dumps(results, indent=1))
