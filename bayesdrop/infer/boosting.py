r"""Dropout boosting: the dropout ensemble trained as one model, a per-example importance-weighted ELBO.

For users who train with :func:`~bayesdrop.fit` or ``pyro.infer.SVI`` and want the control objective of
Warde-Farley et al. (2014), "An empirical analysis of dropout in piecewise linear networks", and Goodfellow et al.
(2016, *Deep Learning*, sec. 7.12): the same mask noise as dropout, but the *ensemble* (the mean over masks of the
sub-networks' likelihoods) trained to fit the data jointly, as boosting does, where standard dropout trains every
sub-network to fit the data on its own, as bagging does.  Per example :math:`n` of a minibatch of :math:`B` out of
:math:`N`, with :math:`K` masks :math:`m_{n1}, \dots, m_{nK}` drawn from the guide,

.. math::
    \mathcal L_K = \frac{N}{B} \sum_{n \in \text{batch}} \log \frac1K \sum_{k=1}^K p(y_n \mid x_n, \theta, m_{nk})
                   - \mathrm{KL}\big(q(\theta) \,\|\, p(\theta)\big),

against standard dropout's :math:`\mathcal L_1` (:class:`~bayesdrop.infer.MeanFieldELBO`), whose data term is the
mean over masks of the log-likelihoods.  :class:`DropoutBoostingELBO` computes it.

Example
-------
>>> result = bd.fit(model, guide, data.train, epochs=50, loss=bd.infer.DropoutBoostingELBO(num_masks=4))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.infer.util import torch_item
from pyro.poutine import Trace
from pyro.util import warn_if_nan

from .elbo import MeanFieldELBO, _scaled_sum, _Terms

__all__ = ["DropoutBoostingELBO", "log_mean_exp"]


def log_mean_exp(log_liks: torch.Tensor) -> torch.Tensor:
    r"""Per example, the log of the mean likelihood over the draws of the leading axis.

    .. math:: \ell_n = \log \frac1K \sum_{k=1}^K e^{\log p_{kn}}
              = \operatorname{logsumexp}_k \log p_{kn} - \log K \;\ge\; \frac1K \sum_k \log p_{kn}

    (Jensen's inequality).  ``log_liks`` has shape ``(K, *batch)``; the result has shape ``batch``.
    """
    return log_liks.logsumexp(0) - math.log(log_liks.shape[0])


def _same(a: Any, b: Any) -> bool:
    """Whether two site scales or masks are the same: the same object, or equal numbers."""
    return a is b or (not torch.is_tensor(a) and not torch.is_tensor(b) and a == b)


def _observed(model_trace: Trace) -> list[Any]:
    return [s for s in model_trace.nodes.values() if s["type"] == "sample" and s["is_observed"]]


def _local_plates(model_trace: Trace) -> set[str]:
    """The names of the vectorised plates of the observed sites: the plates whose sites are per example."""
    return {f.name for s in _observed(model_trace) for f in s["cond_indep_stack"] if f.vectorized}


def _global_sites(guide_trace: Trace, local_plates: set[str]) -> Trace:
    """The latent sites of ``guide_trace`` outside the data plates (weights, rates), to replay in later draws."""
    shared = Trace()
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample" and not any(f.name in local_plates for f in site["cond_indep_stack"]):
            shared.add_node(name, **site)
    return shared


def _per_example(name: str, site: dict[str, Any], shared: Trace) -> bool:
    """Whether the guide's site ``name`` draws anew for every example: a latent site inside the data plate, or a
    global one the layer redraws per example (tagged by :class:`~bayesdrop.handlers.LocalReparameterization`: a
    Gaussian weight's pre-activations, SBP's noise)."""
    if site["type"] != "sample":
        return False
    value = site["value"]
    return name not in shared or hasattr(value, "_bayesdrop_lrt") or hasattr(value, "_bayesdrop_local")


class DropoutBoostingELBO(MeanFieldELBO):
    r"""Dropout boosting (Warde-Farley et al. 2014): per example, the log of the mean likelihood over ``num_masks``
    masks, plus the KL terms of :class:`~bayesdrop.infer.MeanFieldELBO`.

    Each evaluation traces the guide ``K`` times (``poutine.trace``) and replays the model on every trace
    (``poutine.replay``).  The first draw is :class:`MeanFieldELBO`'s; the later ``K - 1`` draws replay its global
    sites (those outside the data plate: weights, learned rates), so only the per-example sites (the masks) are
    drawn anew, and the network is drawn once; a guide that draws nothing per example, whose K draws would all be
    the first, is refused (:meth:`draws`).  The loss is

    .. math::
        -\mathcal L_K = -\sum_{\text{observed}} s \sum_n \Big( \operatorname{logsumexp}_{k=1}^K
            \log p(y_n \mid x_n, \theta, m_{nk}) - \log K \Big)
            + \sum_{\text{latent}} \mathrm{KL}(q \,\|\, p) + \dots,

    where :math:`s = N / B` is the observed site's ``scale`` (the subsampled data plate), the per-example
    log-likelihood is ``site["fn"].log_prob(site["value"])`` (summed over the observed sites of one draw, which
    must share their scale), and the latent and guide-only terms are those of :class:`MeanFieldELBO` (analytic KL
    where registered, else ``log p - log q``) counted once, from the first draw.

    **An importance-weighted bound.**  Given the network :math:`\theta`, the masks are independent per example, so
    :math:`\log p(Y \mid X, \theta) = \sum_n \log \mathbb E_{p(m)}\, p(y_n \mid x_n, \theta, m)`, and each term is
    bounded by importance sampling with :math:`K` draws from the proposal :math:`q(m)` (Burda et al. 2016):

    .. math::
        \log p(y_n \mid x_n, \theta) \;\ge\; \mathbb E_{m_{n,1:K} \sim q}\,
            \log \frac1K \sum_{k=1}^K \frac{p(y_n \mid x_n, \theta, m_{nk})\, p(m_{nk})}{q(m_{nk})},

    with the prior masks as proposal: for the fixed-rate methods (``bernoulli``, ``gaussian``; also Generalized
    Dropout's gates, whose guide law is their prior given the rates) the guide's mask law is the prior's,
    :math:`p(m) / q(m) = 1` and the mask KL is 0, which gives :math:`\mathcal L_K`.  So
    :math:`\mathbb E\,\mathcal L_K \le \log p(Y \mid X)`, :math:`\mathcal L_1` is the ELBO of standard dropout,
    :math:`\mathbb E\,\mathcal L_K` grows with :math:`K` (Burda et al. 2016, Theorem 1) and tends to
    :math:`\mathbb E_{q(\theta)} \log p(Y \mid X, \theta) - \mathrm{KL}`: the log-likelihood of the ensemble, the
    network averaged over its masks, fitted as one model.  For a method whose guide's per-example law differs from
    its prior the mask term here is the first draw's KL, not the weight :math:`p / q` inside the sum: the boosting
    objective under :math:`q`'s masks, not that bound.

    **Per example, not per batch.**  Pyro's ``RenyiELBO(alpha=0)`` with ``K`` particles is the importance-weighted
    bound of the *joint* latent state (Burda et al. 2016): one logsumexp over the particles of the log weight of
    the whole minibatch, :math:`\log \frac1K \sum_k \prod_n w_{nk}` with
    :math:`w_{nk} = p(y_n \mid x_n, \theta, m_{nk})` (times the global sites' :math:`p / q`, each factor raised
    to :math:`N / B` under subsampling).  When the masks are independent per example, the likelihood factorises,
    and the per-example bound
    :math:`\sum_n \log \frac1K \sum_k w_{nk} = \log \frac{1}{K^B} \sum_{k_1, \dots, k_B} \prod_n w_{n k_n}` is the
    joint bound over all :math:`K^B` recombinations of the drawn masks, at the cost of ``K`` draws.  The joint
    weight of a minibatch is a product of ``B`` per-example weights, so its spread grows exponentially with ``B``
    and the joint logsumexp is dominated by one draw (it is at most the best draw's log weight), while the
    per-example one averages the masks of each example.  And only a sum over examples is estimated without bias
    by :math:`N / B` times a minibatch sum; the log of a mean over the minibatch's joint weights is not.

    **In** :func:`~bayesdrop.fit`: the model runs ``K`` times per step; the output ``fit`` records for its
    training metrics (``train_acc``, ``nll``) is the last draw's, one mask per example, so ``history["nll"]`` is
    the single-mask log loss and ``history["kl"]`` (``loss - N * nll``) includes the boosting term's gain over it
    (it can be negative).  Under the local reparameterisation trick (``fit``'s ``lrt=True``, for the
    Gaussian-weight methods) the layer draws its pre-activations anew in every draw and for every example, so the
    mean over draws runs over per-example weight noise too, and the bound above, whose weights are shared by the
    minibatch, holds with ``lrt=False``.  ``fit`` skips the unused weight draw as for :class:`MeanFieldELBO`.

    Parameters
    ----------
    num_masks : int
        :math:`K`, the masks per example (>= 1); ``num_masks=1`` is :class:`MeanFieldELBO`.
    **kwargs
        Of ``pyro.infer.ELBO``, e.g. ``max_plate_nesting``; ``num_particles`` averages that many independent
        estimates of :math:`\mathcal L_K`.  ``vectorize_particles`` is not supported.

    Examples
    --------
    >>> loss = bd.infer.DropoutBoostingELBO(num_masks=4)
    >>> bd.fit(model, guide, data.train, epochs=50, loss=loss)
    >>> svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), loss)  # loss_and_grads
    """

    def __init__(self, num_masks: int = 4, **kwargs: Any):
        if not isinstance(num_masks, int) or isinstance(num_masks, bool) or num_masks < 1:
            raise ValueError(f"`num_masks` must be a positive int, got {num_masks!r}")
        if kwargs.get("vectorize_particles"):
            raise NotImplementedError("DropoutBoostingELBO does not vectorize particles; use vectorize_particles=False")
        super().__init__(**kwargs)
        self.num_masks = num_masks

    def draws(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> list[tuple[Trace, Trace]]:
        r"""The ``num_masks`` pairs ``(model_trace, guide_trace)``: the first as :class:`MeanFieldELBO` draws it,
        the others with the guide replaying the first draw's global sites (``poutine.replay``).

        Raises
        ------
        ValueError
            If the guide draws no latent site per example (inside the data plate): every later draw would replay
            the first whole, and :math:`\mathcal L_K` would be standard dropout's :math:`\mathcal L_1` (masks
            drawn once per minibatch, e.g. DropConnect with ``per_example=False``; Gaussian weights without the
            local reparameterisation trick).
        """
        first = self._get_trace(model, guide, args, kwargs)
        if self.num_masks == 1:
            return [first]
        local = _local_plates(first[0])
        shared = _global_sites(first[1], local)
        if not any(_per_example(name, site, shared) for name, site in first[1].nodes.items()):
            raise ValueError(
                "DropoutBoostingELBO: the guide draws no site per example (inside the data plate), so each of the "
                f"{self.num_masks} draws would replay the first and the objective would be standard dropout's: draw "
                "the masks per example (DropConnect's per_example=True; the local reparameterisation trick, fit's "
                "lrt=True, for Gaussian weights)"
            )
        replayed = poutine.replay(guide, trace=shared)
        return [first] + [self._get_trace(model, replayed, args, kwargs) for _ in range(self.num_masks - 1)]

    @staticmethod
    def log_likelihoods(model_traces: Sequence[Trace]) -> tuple[torch.Tensor, Any, Any]:
        """Per draw and example, the log-likelihood of the observed sites, unscaled.

        Parameters
        ----------
        model_traces : sequence of pyro.poutine.Trace
            The model's traces, one per draw (the ``K`` model traces of :meth:`draws`), each observing the same
            sites in the same order; the first gives the returned ``scale`` and ``mask``.

        Returns
        -------
        log_liks : torch.Tensor
            Shape ``(K, *batch)``: the sum over the observed sites of ``site["fn"].log_prob(site["value"])``.
        scale, mask
            The observed sites' ``scale`` (``N / B`` under a subsampled plate) and ``mask``.

        Raises
        ------
        ValueError
            If the first trace has no observed site, if the draws observe different sites, or if the observed sites
            of a draw do not share one scale and mask.
        """
        first = _observed(model_traces[0])
        if not first:
            raise ValueError("the model has no observed site: nothing to boost")
        names = [s["name"] for s in first]
        scale, mask = first[0]["scale"], first[0]["mask"]
        per_draw = []
        for tr in model_traces:
            sites = _observed(tr)
            if [s["name"] for s in sites] != names:
                raise ValueError(f"the draws observe different sites: {names} and {[s['name'] for s in sites]}")
            if not all(_same(s["scale"], sites[0]["scale"]) and _same(s["mask"], sites[0]["mask"]) for s in sites):
                raise ValueError(f"the observed sites {names} must share one scale and mask to be boosted together")
            total = sites[0]["fn"].log_prob(sites[0]["value"])
            for s in sites[1:]:
                total = total + s["fn"].log_prob(s["value"])
            per_draw.append(total)
        shape = torch.broadcast_shapes(*(t.shape for t in per_draw))
        return torch.stack([t.expand(shape) for t in per_draw]), scale, mask

    def loss_from_draws(self, traces: Sequence[tuple[Any, Any]]) -> torch.Tensor | float:
        r""":math:`-\mathcal L_K` from the draws of :meth:`draws`, differentiable: :class:`MeanFieldELBO`'s site
        terms of the first draw, with the observed sites' term (at the place of the first of them) replaced by the
        boosted data term of all draws, :func:`log_mean_exp` of :meth:`log_likelihoods` times the site's scale."""
        model_trace, guide_trace = traces[0]
        terms = _Terms()
        boosted = False
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                if not boosted:
                    log_liks, scale, mask = self.log_likelihoods([m for m, _ in traces])
                    terms.plus.append(_scaled_sum(log_mean_exp(log_liks), scale, mask))
                    boosted = True
            elif name not in guide_trace.nodes:
                raise ValueError(f"model site {name!r} is latent but the guide has no site of that name")
            else:
                terms.latent(name, site, guide_trace.nodes[name])
        for name, guide_site in guide_trace.nodes.items():
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                terms.auxiliary(name, guide_site)
        return terms.loss()

    def differentiable_loss(self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any):
        """:math:`-\\mathcal L_K`, averaged over ``num_particles`` independent sets of draws; differentiable."""
        loss: Any = 0.0
        for _ in range(self.num_particles):
            loss = loss + self.loss_from_draws(self.draws(model, guide, *args, **kwargs)) / self.num_particles
        warn_if_nan(loss, "loss")
        return loss

    def loss(self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """:math:`-\\mathcal L_K` as a float, without gradients."""
        with torch.no_grad():
            return torch_item(self.differentiable_loss(model, guide, *args, **kwargs))

    def loss_and_grads(self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
        """:math:`-\\mathcal L_K` as a float, its gradients accumulated into the parameters (``pyro.infer.SVI``)."""
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        if getattr(loss, "requires_grad", False):
            loss.backward(retain_graph=self.retain_graph)
        return torch_item(loss)
