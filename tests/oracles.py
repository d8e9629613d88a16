"""Closed-form KL terms of every method, written out from the papers independently of the KLs registered in
``bayesdrop.distributions``, so that tests can check the ELBO Pyro computes against the papers' formulas.

``kl(layer, params)`` is KL(q || p) of a layer's global sites (local noise sites have KL 0 for every method so far:
their guide law is their prior's).
"""

from __future__ import annotations

import math

import torch
from scipy import integrate

from bayesdrop.distributions import LOG_ALPHA_CLIP, MOLCHANOV_K
from bayesdrop.methods.classic import FixedRate
from bayesdrop.methods.concrete import ConcreteDropout
from bayesdrop.methods.cutout import Cutout
from bayesdrop.methods.dropconnect import DropConnect
from bayesdrop.methods.gaussian import (
    SparseVariationalDropout,
    UnitVariationalBayesianDropout,
    VariationalBayesianDropout,
    VariationalDropout,
)
from bayesdrop.methods.generalized import EPS, GeneralizedDropout
from bayesdrop.methods.pooling import PoolDropout
from bayesdrop.methods.sbp import StructuredBayesianPruning
from bayesdrop.methods.standout import Standout


def gaussian_weight_decay(layer, params, s: float) -> torch.Tensor:
    """-log N(W; 0, s^2) summed over the Delta weights: the KL of a point estimate under the Gaussian prior."""
    s2 = s**2
    return sum(
        (0.5 * getattr(params, name).pow(2) / s2 + 0.5 * math.log(2 * math.pi * s2)).sum()
        for name in layer.weight_sites
    )


def molchanov_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """Molchanov et al. (2017), eq. 14: -(k1 sigmoid(k2 + k3 log a) - 0.5 log(1 + 1/a) - k1), log alpha clipped."""
    k1, k2, k3 = MOLCHANOV_K
    la = log_alpha.clamp(*LOG_ALPHA_CLIP)
    return k1 - k1 * torch.sigmoid(k2 + k3 * la) + 0.5 * torch.log1p(torch.exp(-la))


def vbd_kl(method, loc: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Liu et al. (2019), eq. 14 at the guide's gamma* (eq. 16, clamped into [a, b)), plus n log(b - a)."""
    gamma = (loc.square() + sigma2).detach().clamp(method.a, method._b_below)
    kl_w = 0.5 * (gamma / sigma2).log() + (sigma2 + loc.square()) / (2 * gamma) - 0.5
    return kl_w.sum() + gamma.numel() * math.log(method.b - method.a)


def kl(layer, params) -> torch.Tensor:
    m = layer.method
    if isinstance(m, GeneralizedDropout):
        k = params.k.clamp(0, 1).clamp(EPS, 1 - EPS)
        a, b = m.a, m.b
        log_beta_fn = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
        log_prior = (a - 1) * torch.log(k) + (b - 1) * torch.log1p(-k) - log_beta_fn
        return -m.strength * log_prior.sum() + gaussian_weight_decay(layer, params, m.prior_scale)
    if isinstance(m, ConcreteDropout):
        return concrete_kl(layer, params)
    if isinstance(m, PoolDropout):  # no weights; the draws' guide law is their prior's
        return torch.zeros(())
    if isinstance(m, (FixedRate, DropConnect, Standout, Cutout)):  # the masks' (thresholds', centres') KL is 0
        return gaussian_weight_decay(layer, params, m.prior_scale)
    if isinstance(m, (VariationalDropout, SparseVariationalDropout)):
        shape = layer.weight_sites["weight"].shape
        return molchanov_kl(m.log_alpha(layer, params)).expand(shape).sum()
    if isinstance(m, VariationalBayesianDropout):
        q = m.weight_posterior(layer, "weight", params)
        return vbd_kl(m, q.loc, q.variance)
    if isinstance(m, UnitVariationalBayesianDropout):
        q = m._posterior(params)
        return vbd_kl(m, q.loc, q.variance) + gaussian_weight_decay(layer, params, m.prior_scale)
    if isinstance(m, StructuredBayesianPruning):  # log(b - a) minus the entropy of the truncated normal (scipy)
        from scipy.stats import truncnorm

        kl = 0.0
        for site in layer.noise_sites:
            loc = getattr(params, "mu" if site == "noise" else f"{site}_mu").detach().double().cpu().numpy()
            scale = getattr(params, "log_sigma" if site == "noise" else f"{site}_log_sigma").exp()
            scale = scale.detach().double().cpu().numpy()
            h = truncnorm.entropy((m.a - loc) / scale, (m.b - loc) / scale, loc=loc, scale=scale)
            kl += float((math.log(m.b - m.a) - h).sum())
        return torch.tensor(kl) + gaussian_weight_decay(layer, params, m.prior_scale)
    raise TypeError(f"no closed-form KL written for {type(m).__name__}")


def _entropy(q: float) -> float:
    return -(q * math.log(q) + (1 - q) * math.log(1 - q))


def concrete_kl(layer, params) -> torch.Tensor:
    """Gal, Hron & Kendall (2017): per noise site with K draws per example, -K H(p) plus the entropic prior's
    normaliser K log 2 + log Z_K (Z_K by quadrature, independently of the library's); per weight site of n weights
    on the inputs of a rate p, l^2 (1 - p) / 2 ||M / (1 - p)||^2 and the Gaussian and Beta normalisers."""
    l2 = layer.method.length_scale**2
    total, rates = torch.zeros(()), {}
    for site in layer.noise_sites.values():
        k = math.prod(layer.draw_shape(site))
        p = torch.sigmoid(getattr(params, "p_logit" if site.name == "noise" else f"{site.name}_p_logit"))
        rates[site.weight] = p
        z = integrate.quad(
            lambda q, k=k: math.exp(k * (_entropy(q) - math.log(2))), 1e-300, 1 - 1e-16, points=[0.5], limit=500
        )[0]
        total = total + k * (p * p.log() + (1 - p) * (1 - p).log()) + k * math.log(2) + math.log(z)
    for name in layer.weight_sites:
        w = getattr(params, name)
        n, p = w.numel(), rates.get(name, torch.zeros(()))
        beta = math.log(n / 2 + 1) if name in rates else 0.0
        total = total + l2 * (1 - p) / 2 * (w / (1 - p)).square().sum() + n / 2 * math.log(2 * math.pi / l2) - beta
    return total
