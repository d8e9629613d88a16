r"""Pyro effect handlers that say *how* the sites of a dropout model are sampled.

For people who train or evaluate a model/guide pair by hand, with ``pyro.infer.SVI`` or ``pyro.poutine``; the
same handlers serve :func:`bayesdrop.fit`, :func:`bayesdrop.predict` and :mod:`bayesdrop.compress`.

:class:`LocalReparameterization`
    The local reparameterisation trick (Kingma et al. 2015): Gaussian weight sites marked
    ``infer={"lrt": True}`` are drawn as pre-activations by the layer.
:class:`MomentMatching`
    Wan et al.'s (2013) test-time inference for weight masks: sites marked ``infer={"moment_matching": True}``
    are not drawn; the layer draws its pre-activation from the Gaussian of its moments over the masks.
:class:`KLScale`
    Multiplies the terms of latent sites by :math:`\beta` (KL warm-up).
:class:`PosteriorMean` and :func:`posterior_mean`
    The deterministic test-time network: every latent site of the guide at its mean (the weight-scaling rule of
    dropout, the posterior-mean network of variational dropout), optionally with pruned entries zeroed.

Example
-------
>>> mean_net = bd.handlers.posterior_mean(model, guide)  # a function of the model's arguments
>>> logits = mean_net(x)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from pyro.poutine.util import site_is_subsample

from .distributions import base_distribution

__all__ = ["LocalReparameterization", "MomentMatching", "KLScale", "PosteriorMean", "posterior_mean"]


class LocalReparameterization(Messenger):
    r"""Effect handler for the local reparameterisation trick (Kingma et al. 2015).

    Wrap the guide in it (``LocalReparameterization()(guide)``), or the whole SVI step.  Each weight drawn in the
    guide from a Normal at a site marked ``infer={"lrt": True}`` is tagged with its mean and variance; the model
    replays that value, and the layer samples the pre-activation

    .. math:: b \sim \mathcal N\big(x \mu^\top,\; (x \circ x)(\sigma^2)^\top\big)

    instead of using the weight sample, which lowers the gradient variance.  The tag sits on the tensor object
    itself.  A value marked so but drawn from another law is tagged with that law (``_bayesdrop_local``): its
    method redraws it for every example.  Outside the handler, e.g. under ``Predictive``, layers use the sampled
    weights.

    Parameters
    ----------
    draw_weights : bool
        ``True`` (default): the guide still draws the weights, so every estimator (``Trace_ELBO``'s
        ``log p - log q`` included) sees a proper sample.  ``False``: the guide skips the draw, which the layer
        would ignore anyway; the site's value is a placeholder (the mean ``loc``, without gradient, marked
        ``_bayesdrop_lrt_placeholder``).  Only valid for losses that never evaluate a density at these values,
        i.e. where the KL of every such site is analytic: :func:`bayesdrop.fit` uses it with its
        :class:`~bayesdrop.infer.MeanFieldELBO`, which raises if a placeholder would enter a Monte Carlo term.
    """

    def __init__(self, draw_weights: bool = True):
        super().__init__()
        self.draw_weights = draw_weights

    @staticmethod
    def _normal(msg: dict) -> dist.Normal | None:
        if not msg["infer"].get("lrt") or msg["is_observed"]:
            return None
        fn = msg["fn"]
        while isinstance(fn, dist.Independent):
            fn = fn.base_dist
        return fn if isinstance(fn, dist.Normal) else None

    def _pyro_sample(self, msg: dict) -> None:
        if self.draw_weights or msg["value"] is not None:
            return
        fn = self._normal(msg)
        if fn is not None:
            value, shape = fn.loc.detach(), msg["fn"].shape()  # a new tensor object, no copy
            value = value if value.shape == shape else value.expand(shape)
            setattr(value, "_bayesdrop_lrt_placeholder", True)  # noqa: B010 -- a tag on the tensor object
            msg["value"] = value

    def _pyro_post_sample(self, msg: dict) -> None:
        fn = self._normal(msg)
        if fn is not None:
            msg["value"]._bayesdrop_lrt = (fn.loc, fn.variance)
        elif msg["infer"].get("lrt") and not msg["is_observed"]:
            # Any other law marked for it (structured Bayesian pruning's truncated log-normal): tagged with the law
            # itself, and the method draws one value per example from it (its reparameterised ``rsample``), the same
            # reduction of variance for a unit's multiplicative noise.
            base = msg["fn"]
            while isinstance(base, dist.Independent):
                base = base.base_dist
            msg["value"]._bayesdrop_local = base


class MomentMatching(Messenger):
    r"""Effect handler for moment-matching inference over weight masks (Wan et al. 2013, sec. 3).

    Wrap the guide in it.  A mask site marked ``infer={"moment_matching": True}`` (DropConnect's) is not drawn: its
    value is a placeholder of ones (no memory: an expanded scalar) tagged with the mask law's mean and variance, and
    the method turns the weight into a tagged one whose layer samples the pre-activation

    .. math:: u \sim \mathcal N\big(\mathrm{op}(v, W \circ \mathbb E M),\;
              \mathrm{op}(v \circ v, (W \circ W) \circ \mathrm{Var} M)\big)

    as under the local reparameterisation trick.  :func:`bayesdrop.predict` with ``rule="moment-matching"`` uses it.

    Fast dropout (Wang & Manning 2013) marks its input masks the same way, with ``"train"``: its layers turn the
    tagged placeholder into the :class:`~bayesdrop.moments.Moments` of the mask and propagate the mean and variance
    through the network without drawing anything, in training (:func:`bayesdrop.fit` wraps the guide in
    ``MomentMatching(training=True)``) and at test time.

    Parameters
    ----------
    training : bool
        Act only on the sites of methods trained by moment matching (marked ``infer={"moment_matching":
        "train"}``), leaving the others (DropConnect's, marked ``True``) to be drawn: the handler of a training
        step.  ``False`` (default): every marked site, the test-time rule.
    """

    def __init__(self, training: bool = False):
        super().__init__()
        self.training = training

    def _pyro_sample(self, msg: dict) -> None:
        flag = msg["infer"].get("moment_matching")
        if msg["value"] is not None or msg["is_observed"] or not flag or (self.training and flag != "train"):
            return
        fn = msg["fn"]
        first = (0,) * len(fn.batch_shape)  # the law is the same for every example of the plate: one event's moments
        value = fn.mean.new_ones(()).expand(fn.shape())
        setattr(value, "_bayesdrop_moments", (fn.mean[first], fn.variance[first]))  # noqa: B010 -- a tag on the tensor
        msg["value"] = value


class KLScale(Messenger):
    r"""Scale every latent (non-observed) sample site by ``beta``, the KL warm-up weight :math:`\beta`.

    Wrap model *and* guide: ``TraceMeanField_ELBO`` scales the analytic KL of a site by the guide site's scale,
    Monte Carlo terms by both.
    """

    def __init__(self, beta: float):
        super().__init__()
        self.beta = beta

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"]:
            msg["scale"] = msg["scale"] * self.beta


def _mean(fn: torch.distributions.Distribution) -> torch.Tensor:
    fn = base_distribution(fn)
    if isinstance(fn, dist.Delta):
        return fn.v
    return fn.mean


class PosteriorMean(Messenger):
    """Put every latent sample site at the mean of its distribution instead of drawing it.

    Wrap a *guide* and replay the model on its trace (:func:`posterior_mean` does both): the model then runs at the
    mean of the variational posterior, the test-time network of every dropout method (the weight-scaling rule,
    Goodfellow et al., Deep Learning, sec. 7.12, for noise of mean one; the posterior-mean network for Gaussian
    weights).

    Every value it sets is tagged ``_bayesdrop_posterior_mean``, so that a method whose noise is a nonlinear
    function of a site (Standout: a mask thresholding a uniform draw) can return the noise's expectation, which is
    the weight-scaling rule, rather than the function at the site's mean.

    Parameters
    ----------
    masks : mapping of str to torch.Tensor, optional
        Site name to a boolean mask broadcastable to the site's value: entries where it is false are zeroed (the
        pruned network, see :meth:`~bayesdrop.guides.DropoutGuide.keep_masks`).
    """

    def __init__(self, masks: Mapping[str, torch.Tensor] | None = None):
        super().__init__()
        self.masks = dict(masks or {})

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(cast(Message, msg)):
            return
        value = _mean(msg["fn"])
        shape = msg["fn"].shape()
        value = value.expand(shape) if value.shape != shape else value
        mask = self.masks.get(msg["name"])
        if mask is not None:
            value = value * mask.to(value.dtype)
        else:
            value = value.expand(shape)  # a new tensor object for the tag
        # noise that is a nonlinear function of this site (Standout's mask from a uniform threshold) reads the tag
        # and takes its expectation instead of its value at the mean
        setattr(value, "_bayesdrop_posterior_mean", True)  # noqa: B010 -- a tag on the tensor object
        msg["value"] = value
        msg["done"] = True


def posterior_mean(
    model: Callable[..., Any],
    guide: Callable[..., Any],
    masks: Mapping[str, torch.Tensor] | None = None,
) -> Callable[..., Any]:
    """``model`` as a deterministic function, run at the posterior mean of ``guide`` (:class:`PosteriorMean`).

    Returns a function of the model's arguments that traces the guide under :class:`PosteriorMean` and replays the
    model on that trace (blocked, so nothing reaches an outer handler).  ``masks`` zeroes pruned entries.
    """

    def run(*args: Any, **kwargs: Any) -> Any:
        with poutine.block():
            guide_trace = poutine.trace(PosteriorMean(masks)(guide)).get_trace(*args, **kwargs)
            return poutine.replay(model, trace=guide_trace)(*args, **kwargs)

    return run
