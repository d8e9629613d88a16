r"""The ELBO that :func:`~bayesdrop.fit` maximises: Pyro's ``TraceMeanField_ELBO``, evaluated lazily.

For users who train with ``pyro.infer.SVI`` or their own loop and want ``bd.fit``'s loss: :class:`MeanFieldELBO`
is a ``TraceMeanField_ELBO`` subclass whose value and gradients equal Pyro's (tested), with each site's term
computed only where the loss uses it,

.. math::
    \mathcal L = \sum_{\text{observed}} \log p(y \mid \cdot)
                 - \sum_{\text{latent, KL registered}} \mathrm{KL}(q \,\|\, p)
                 + \sum_{\text{latent, no KL}} (\log p - \log q)
                 - \sum_{\text{guide only}} \log q.

Example
-------
>>> svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), bd.infer.MeanFieldELBO(max_plate_nesting=1))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyro.poutine as poutine
import torch
from pyro.distributions import Independent
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence

from ..distributions import same_fixed_law

__all__ = ["MeanFieldELBO"]


def _scalar(scale: Any) -> bool:
    """Whether ``scale`` is one number: a Python number or a 0-d tensor (the KL weight of a compiled step)."""
    return not torch.is_tensor(scale) or scale.dim() == 0


def _scaled_sum(t: torch.Tensor, scale: Any, mask: Any) -> torch.Tensor:
    """``scale_and_mask(t, scale, mask).sum()``; without a mask and with one scale, the sum is taken first (a scalar
    multiply)."""
    if mask is not None or not _scalar(scale):
        return scale_and_mask(t, scale, mask).sum()
    total = t.sum() if t.dim() else t
    return total * scale if torch.is_tensor(scale) or scale != 1.0 else total


class _Terms:
    """The ELBO's site terms as they come, added up at the end: ``sum(plus) - sum(minus)``.

    One ``stack`` and ``sum`` per list instead of a negation and an addition per site: with a dozen sites these
    0-d operations and their backward nodes are a measurable part of a small network's step.
    """

    def __init__(self) -> None:
        self.plus: list[torch.Tensor] = []  # log-likelihoods, Monte Carlo log p - log q
        self.minus: list[torch.Tensor] = []  # KL(q || p), entropy estimates log q
        self.observed: dict[str, torch.Tensor] = {}  # each observed site's log density, unscaled, detached

    def observe(self, name: str, site: dict) -> None:
        log_p = site["fn"].log_prob(site["value"])
        scale = site["scale"]
        if site["mask"] is None and _scalar(scale):  # one sum serves both
            total = log_p.sum()
            self.observed[name] = total.detach()
            self.plus.append(total if not torch.is_tensor(scale) and scale == 1.0 else total * scale)
            return
        self.observed[name] = scale_and_mask(log_p.detach(), 1.0, site["mask"]).sum()
        self.plus.append(_scaled_sum(log_p, site["scale"], site["mask"]))

    def latent(self, name: str, site: dict, guide_site: dict) -> None:
        """Latent site ``name``: ``-KL(q || p)`` where registered, else ``log p - log q`` at the draw."""
        if is_validation_enabled() and not guide_site["fn"].has_rsample:
            raise NotImplementedError(f"MeanFieldELBO needs a reparameterised guide; site {name!r} is not")
        q, p = guide_site["fn"], site["fn"]
        if same_fixed_law(*(d.base_dist if type(d) is Independent else d for d in (q, p))):
            return  # fixed-rate noise whose guide is its prior: the KL is 0 in value and gradient, whatever scales it
        scale, mask = guide_site["scale"], guide_site["mask"]
        if (
            mask is None
            and _scalar(scale)
            and type(q) is Independent
            and type(p) is Independent
            and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims
        ):  # the total is all the loss needs: skip Pyro's KL(Independent || Independent) and its sum_rightmost
            q, p = q.base_dist, p.base_dist
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            _check_drawn(name, guide_site)
            log_p = site["fn"].log_prob(site["value"])
            log_q = guide_site["fn"].log_prob(guide_site["value"])
            self.plus.append(_scaled_sum(log_p - log_q, scale, mask))
            return
        self.minus.append(_scaled_sum(kl, scale, mask))

    def auxiliary(self, name: str, guide_site: dict) -> None:
        """A guide site the model does not have: its entropy estimate ``-log q``."""
        _check_drawn(name, guide_site)
        log_q = guide_site["fn"].log_prob(guide_site["value"])
        self.minus.append(_scaled_sum(log_q, guide_site["scale"], guide_site["mask"]))

    def elbo(self) -> torch.Tensor | float:
        return _total(self.plus) - _total(self.minus)

    def loss(self) -> torch.Tensor | float:
        """``-elbo()``, as ``sum(minus) - sum(plus)``: no negation."""
        return _total(self.minus) - _total(self.plus)


def _total(ts: list[torch.Tensor]) -> Any:
    """The sum of the 0-d tensors ``ts`` (0.0 for none): one ``stack`` and ``sum``, or ``+`` where dtypes differ."""
    if len(ts) < 2:
        return ts[0] if ts else 0.0
    same = all(t.dtype == ts[0].dtype for t in ts)
    return torch.stack(ts).sum() if same else sum(ts)  # mixed precision: promote as + does


class MeanFieldELBO(TraceMeanField_ELBO):
    """``TraceMeanField_ELBO`` that evaluates log densities only where the loss uses them.

    Pyro's ``TraceMeanField_ELBO`` computes ``log_prob`` of every site of both traces, although a latent site with
    a registered KL only contributes ``KL(q || p)``.  For dropout masks (one value per example and unit) and weights
    that is about half of a training step on small networks.  This subclass computes the same loss, site by site:
    the analytic KL where it is registered, the Monte Carlo term ``log p - log q`` (densities computed on demand)
    where it is not, and observed log-likelihoods.  It is the default of :func:`fit`; its value equals
    ``TraceMeanField_ELBO``'s (tested).

    After each evaluation :attr:`observed` maps each observed site of the minibatch it scored to its log density
    (summed over the minibatch, without the N / B scale, detached; of the last particle): the ``"obs"`` site's is
    the log-likelihood that :func:`fit` reports as ``nll``, taken from the loss rather than computed a second time.

    The traces are Pyro's: the guide traced, the model replayed on it.  With Pyro's validation on, they are built
    by ``TraceMeanField_ELBO`` itself, so every check it makes (model and guide sites match, site shapes against
    the plates, the mean-field requirement) runs.  It also works with ``pyro.infer.SVI`` (``loss_and_grads``).
    """

    observed: dict[str, torch.Tensor] = {}  #: the last minibatch's observed log densities, unscaled, detached

    def _get_trace(self, model, guide, args, kwargs):
        if is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def differentiable_loss(
        self, model: Callable[..., Any], guide: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """The loss :math:`-\\mathcal L`, differentiable, averaged over ``num_particles``.

        Unlike Pyro's, it reads no value to the host: Pyro's takes ``.item()`` of the loss twice and checks it for
        NaN forward and backward, four waits for a GPU per step.  :func:`~bayesdrop.fit` checks the losses and
        the parameters itself, every ``NAN_CHECK_EVERY`` (25) steps and after each epoch.
        """
        loss: Any = None
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            particle = self._surrogate(model_trace, guide_trace)
            if self.num_particles != 1:
                particle = particle / self.num_particles
            loss = particle if loss is None else loss + particle
        return loss

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        surrogate = self._surrogate(model_trace, guide_trace)
        return torch_item(surrogate), surrogate

    def _surrogate(self, model_trace, guide_trace) -> Any:
        """:math:`-\\mathcal L` of one particle, a 0-d tensor (or 0.0 for a model without sample sites)."""
        terms = _Terms()
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                terms.observe(name, site)
            elif name not in guide_trace.nodes:
                raise ValueError(f"model site {name!r} is latent but the guide has no site of that name")
            else:
                terms.latent(name, site, guide_trace.nodes[name])
        for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites: their entropy
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                terms.auxiliary(name, guide_site)
        self.observed = terms.observed
        return terms.loss()


def _check_drawn(name: str, site: dict) -> None:
    if getattr(site["value"], "_bayesdrop_lrt_placeholder", False):
        raise ValueError(
            f"site {name!r} has no analytic KL, so its Monte Carlo term needs a drawn value, but "
            "LocalReparameterization(draw_weights=False) skipped the draw; use draw_weights=True"
        )
