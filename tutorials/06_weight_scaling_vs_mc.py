# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
# ---

# %% [markdown]
# # 06 — The weight-scaling rule against Monte Carlo averaging
#
# Dropout trains an ensemble of $2^n$ sub-networks with shared weights. At test
# time the ensemble's prediction is approximated in two ways (Goodfellow, Bengio
# & Courville 2016, *Deep Learning*, sec. 7.12):
#
# * **Weight scaling**: one deterministic pass with every unit's output (or
#   outgoing weights) multiplied by its keep probability.  bayesdrop's `bernoulli`
#   trains with inverted dropout (kept units scaled by $1/(1-p)$, as
#   `torch.nn.Dropout`), so the scaling is already in the weights and the rule is
#   the network at its learned weights.
# * **Monte Carlo averaging** (MC dropout): average $T$ stochastic passes.
#
# For softmax regression the weight-scaling rule is *exact* for the renormalised
# geometric mean of the ensemble (eq. 7.56-7.66). For deep non-linear networks it
# is an approximation; we measure how good on digits.

# %%
import itertools
import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

QUICK = os.environ.get("BAYESDROP_QUICK") == "1"
HERE = Path("tutorials") if Path("tutorials").is_dir() else Path(".")  # the repository root, or a notebook's tutorials/
# the full-size outputs are committed in tutorials/output/; a quick run writes to output/quick/ (git-ignored)
OUT = Path(os.environ.get("BAYESDROP_TUTORIAL_OUT") or HERE / ("output/quick" if QUICK else "output"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Softmax regression: exact
#
# With $n = 10$ inputs and $p = 0.5$ we can enumerate all $2^{10}$ masks $m$
# (each input scaled by $m / (1 - p)$) and form the renormalised geometric mean
# $\tilde p(y \mid v) \propto \big(\prod_m p(y \mid v, m)\big)^{1/2^n}$.

# %%
n, c = 10, 4
g = torch.Generator().manual_seed(0)
W, b = torch.randn(c, n, generator=g, dtype=torch.float64), torch.randn(c, generator=g, dtype=torch.float64)
v = torch.randn(5, n, generator=g, dtype=torch.float64)
masks = torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)), dtype=torch.float64)
geometric = torch.softmax(torch.log_softmax((masks[:, None] * v / 0.5) @ W.T + b, -1).mean(0), -1)

net = PyroModule[torch.nn.Sequential](bd.nn.Linear(n, c, "bernoulli", p=0.5))
model = bd.Classifier(net, num_data=5)
guide = bd.DropoutGuide(model)
with torch.no_grad():
    guide.layer_guide(net[0]).weight.copy_(W.float())
    net[0].bias.copy_(b.float())
rule = bd.predict(model, guide, v.float(), rule="weight-scaling")
exact_err = (rule.double() - geometric).abs().max().item()
print(f"max |weight scaling - geometric mean| over 2^10 masks: {exact_err:.2e}")

# %% [markdown]
# ## A deep network on digits: approximate
#
# A 64-300-100-10 ReLU network with hidden dropout $p = 0.5$. We compare the test
# accuracy and NLL of the weight-scaling pass with MC averages of $T$ draws.

# %%
ds = bd.data.load("digits")
net = bd.models.mlp(64, [300, 100], 10, "bernoulli", p=0.5, input_method=bd.methods.get("bernoulli", p=0.0))
model = bd.Classifier(net, num_data=len(ds.train))
guide = bd.DropoutGuide(model)
bd.fit(model, guide, ds.train, epochs=10 if QUICK else 60, progress=False)
ws = bd.evaluate(model, guide, ds.test, rule="weight-scaling")
Ts = [1, 2, 5, 10, 20, 50] + ([] if QUICK else [100, 200])
mc = {}
for T in Ts:
    runs = [bd.evaluate(model, guide, ds.test, num_samples=T) for _ in range(3)]
    mc[T] = {k: sum(r[k] for r in runs) / 3 for k in ("acc", "nll")}
print("weight scaling:", ws)
for T, r in mc.items():
    print(f"MC T={T:4d}: acc {r['acc']:.4f}  NLL {r['nll']:.4f}")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, key in zip(axes, ["acc", "nll"]):
    ax.plot(Ts, [mc[T][key] for T in Ts], "o-", label="MC average of T draws")
    ax.axhline(ws[key], color="C1", ls="--", label="weight scaling (1 pass)")
    ax.set_xscale("log")
    ax.set_xlabel("T")
    ax.set_ylabel({"acc": "test accuracy", "nll": "test NLL"}[key])
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "06_weight_scaling_vs_mc.png", dpi=120)

# %% [markdown]
# **What the plot shows.** A single MC draw is a single sub-network and is clearly
# worse than the weight-scaled network. As $T$ grows the MC average improves and
# levels off after a few tens of draws (Srivastava et al. found 50 draws match weight
# scaling on MNIST). Where the curves end relative to the dashed line depends on
# the training budget: the weight-scaled pass is a cheap deterministic summary;
# MC averaging also yields the spread of the draws, which is what the Bayesian
# analyses in tutorial 04 need.

# %%
results = {"exact_max_error": exact_err, "weight_scaling": ws, "mc": {str(T): r for T, r in mc.items()}}
(OUT / "06_results.json").write_text(json.dumps(results, indent=1))
