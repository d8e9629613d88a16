r"""DropConnect (Wan et al. 2013): a Bernoulli mask on every *weight* instead of every input unit.

For users who want the weight-level dropout of Wan, Zeiler, Zhang, LeCun & Fergus (2013), "Regularization of
Neural Networks using DropConnect" (ICML).  A layer's output is :math:`r = a\big((M \circ W) v\big)` with
:math:`M_{ij} \sim \mathrm{Bernoulli}(1 - p)` (:math:`1 - p` being their keep probability; their mask covers the bias
too, as Thevenot's survey (2020) restates it, where here the bias stays an unmasked point estimate, as every
layer's).  As a Bayesian model, with the kept weights scaled by :math:`1/(1-p)` (inverted, as ``bernoulli``; the
mask then has mean 1 and the weight-scaling rule is the network at :math:`\hat W` itself):

.. math::
    \text{model: } W \sim \mathcal N(0, s^2 I),\quad M_{ij} \sim \mathrm{Bernoulli}(1-p);\qquad
    \text{guide: } q(W) = \delta_{\hat W},\quad q(M) = \mathrm{Bernoulli}(1-p),

so KL(q(M) || p(M)) = 0 and the ELBO is DropConnect's training loss with weight decay
:math:`\lVert \hat W \rVert^2 / (2 s^2 N)` per example.

Where the masks are drawn does not change that objective: one mask per example (as in the paper) and one mask
per minibatch both estimate :math:`\sum_n \mathbb E_M \log p(y_n \mid x_n, W \circ M)` without bias; per example
the estimate varies less, and the layer's weight is a ``(B, out, in)`` tensor, B times the memory of the weight
(``bd.nn.Linear`` runs it as a batched matrix product, the convolutions as a grouped convolution).  The default,
``per_example=None``, draws per example on every layer kind that takes a weight per example (``Linear``,
``Conv1d``, ``Conv2d``: every kind of this package) and per minibatch on the others (a user's layer kind).
Measured (``docs/defaults.md``): per-minibatch masks fit the 1-50-50-1 toy regression 1.17x worse than the plain
network's RMSE at 1000 epochs, per-example masks 0.98x (3 seeds); on digits' 64-300-100-10 MLP an epoch costs about 4x
(one CPU thread); for a 784-1024-1024-10 MLP and batch 128 the masks are 0.9 GiB a step, and layers whose masks
pass 128 MiB warn.  ``per_example=False`` gives the cheaper masks; a mask per minibatch is one weight sample
:math:`W \circ M` shared by every input of a draw, a posterior sample in Gal & Ghahramani's (2016) reading.

Test time (``bd.predict(..., rule=...)``):

``"mc"``
    Monte Carlo over masks: in evaluation mode (``model.eval()``, as ``bd.predict`` and ``bd.to_inference_data``
    set it) one mask per drawn network, shared by the inputs, whatever ``per_example`` says; each example's
    predictive is the same average over masks, in the memory of one weight.
``"weight-scaling"``
    The network at :math:`\hat W` (the mask's mean).
``"moment-matching"``
    Wan et al.'s inference (their sec. 3, Algorithm 2): the pre-activation :math:`u = (M \circ W / (1 - p)) v` of
    each example is approximated by the Gaussian of its moments over the masks,

    .. math:: u \sim \mathcal N\Big(W v,\; \frac{p}{1-p}\,(W \circ W)(v \circ v)\Big),

    (their :math:`\mathcal N(p W v, p(1-p)(W \circ W)(v \circ v))` with keep probability :math:`p` and no
    rescaling), and the network's output is averaged over ``num_samples`` draws of :math:`u` in every DropConnect
    layer (:class:`~bayesdrop.handlers.MomentMatching`).  Where Algorithm 2 averages each layer's activation
    :math:`a(u)` over its Z draws and passes that one mean on, each draw here runs through the whole network and
    the outputs are averaged: the Monte Carlo predictive of the network with Gaussian pre-activations, which
    ``tests/test_dropconnect.py`` checks against Monte Carlo over real masks.  The two are the same rule for a
    network whose one DropConnect layer is its output layer.

Example
-------
>>> net = bd.models.mlp(64, [256], 10, "dropconnect", p=0.5)
>>> probs = bd.predict(model, guide, x, rule="moment-matching", num_samples=1000)
"""

from __future__ import annotations

import math
import warnings

import pyro
import pyro.distributions as dist
import torch

from ..checks import check_range
from ..distributions import FixedNoise
from ..sites import site_shaped
from . import register
from .base import Capabilities, PointWeights, site_param
from .classic import input_rate

__all__ = ["DropConnect", "LARGE_MASKS"]

LARGE_MASKS = 2**25  # per-example masks of more elements than this (128 MiB in float32) in one layer get a warning


@register("dropconnect")
class DropConnect(PointWeights):
    r"""DropConnect: :math:`W \circ M / (1 - p)` with :math:`M_{ij} \sim \mathrm{Bernoulli}(1 - p)` per weight.

    Sites of a weight site ``weight``: ``weight`` (prior :math:`\mathcal N(0, s^2)`, Delta guide) and ``mask``
    (shape ``(out, in)`` per example, or per minibatch; the same law in model and guide, KL 0).  Noise sites on the
    layer's inputs carry no noise.

    Parameters
    ----------
    p : float
        Drop probability of each weight, in [0, 1).
    per_example : bool or None
        One mask per example (``True``, Wan et al. 2013; memory ``B x out x in`` per layer, on layer kinds that take
        a weight per example: ``bd.nn.Linear``, ``Conv1d``, ``Conv2d``), one per minibatch (``False``, any layer
        kind), or ``None`` (the default): per example where the layer takes it, per minibatch elsewhere.
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on the weights (> 0).
    """

    reference = "Wan et al. 2013 (ICML)"
    capabilities = Capabilities(
        analytic_kl=True,
        lrt=False,
        structured=False,
        learns_rates=False,
        sites=frozenset({"weight"}),
        rules=frozenset({"mc", "weight-scaling", "moment-matching"}),
    )

    def __init__(self, p: float = 0.5, per_example: bool | None = None, prior_scale: float = 1.0):
        self.p = check_range("p", p, 0.0, 1.0, hi_open=True)
        if per_example is not None and not isinstance(per_example, bool):
            raise TypeError(f"`per_example` must be a bool or None, got {type(per_example).__name__}")
        self.per_example = per_example
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    @property
    def stochastic(self) -> bool:
        return self.p > 0

    def input_layer(self, in_features: int) -> DropConnect:
        """The method of a network's first layer: the fixed-rate rule of ``bernoulli``, ``p = 0.2`` with at least 64
        inputs and ``p = 0`` below (:func:`~bayesdrop.methods.classic.input_rate`)."""
        return self.replace(p=input_rate(in_features))  # type: ignore[return-value]

    def check_layer(self, layer) -> None:
        super().check_layer(layer)
        if self.per_example and not getattr(layer, "batched_weights", False):
            raise ValueError(
                f"`per_example=True` DropConnect gives every example its own weight matrix, which "
                f"{type(layer).__name__} cannot apply; use bd.nn.Linear or a convolution, or "
                "bd.methods.get('dropconnect', per_example=False) for one mask per minibatch"
            )

    def masks_per_example(self, layer) -> bool:
        """Whether the masks of ``layer`` are drawn per example: in training, ``per_example``, or where it is
        ``None`` whether the layer takes a weight per example (``layer.batched_weights``); in evaluation mode
        (``bd.predict``, ``bd.to_inference_data``) one mask per drawn network, whatever ``per_example`` says: each
        example's predictive is the same average over masks, in the memory of one weight."""
        if not getattr(layer, "training", True):
            return False
        if self.per_example is None:
            return bool(getattr(layer, "batched_weights", False))
        return self.per_example

    def _mask_law(self, site, like: torch.Tensor) -> dist.TorchDistribution:
        """One mask of weight site ``site``: event shape the weight's, values in {0, 1 / (1 - p)}."""
        base = dist.Bernoulli(like.new_full((), 1.0 - self.p).expand(site.shape))
        return FixedNoise(base, ("bernoulli", self.p), scale=1.0 / (1.0 - self.p)).to_event(len(site.shape))

    # -- a weight site: prior (model) and guide, side by side ---------------------------------------------------
    def weight_model(self, layer, site):
        # without the singletons pyro.infer.Predictive adds; refuses several networks at once
        w = site_shaped(super().weight_model(layer, site), tuple(site.shape))
        if not self.stochastic:
            return w
        name, law = site_param(site.name, "mask"), self._mask_law(site, layer.like)
        per_example = self.masks_per_example(layer)
        m = layer.sample_local(name, law, layer.like) if per_example else pyro.sample(layer.site(name), law)
        moments = getattr(m, "_bayesdrop_moments", None)
        if moments is None:
            masked = w * m
            if per_example:  # (B, out, in): tells the layer that the leading axis is the examples'
                setattr(masked, "_bayesdrop_per_example", True)  # noqa: B010 -- a tag on the tensor object
                if masked.numel() > LARGE_MASKS and self.per_example is None:
                    warnings.warn(
                        f"dropconnect draws a mask per example of the weights of layer "
                        f"{layer.site('')[:-1] or type(layer).__name__!r}: "
                        f"{masked.numel() * masked.element_size() / 2**20:.1f} MiB of masks a step; "
                        "bd.methods.get('dropconnect', per_example=False) draws one mask per minibatch (the same "
                        "objective, a noisier estimate, B times less memory)",
                        UserWarning,
                        stacklevel=2,
                    )
            return masked
        # moment matching: the layer draws its pre-activation from the Gaussian of these weight moments
        mean, variance = moments
        tagged = w.view(site.shape)  # a new tensor object for the tag
        setattr(tagged, "_bayesdrop_lrt", (w * mean, w * w * variance))  # noqa: B010 -- a tag on the tensor object
        return tagged

    def weight_guide(self, layer, site, params, plate):
        super().weight_guide(layer, site, params, plate)
        if not self.stochastic:
            return
        name, law = layer.site(site_param(site.name, "mask")), self._mask_law(site, layer.like)
        if self.masks_per_example(layer):
            with plate:
                pyro.sample(name, law, infer={"moment_matching": True})
        else:
            pyro.sample(name, law, infer={"moment_matching": True})

    def keep_prob(self, layer, params, site=None):
        """The keep probability :math:`1 - p` of every weight of weight site ``site`` (the layer's ``weight``),
        ``(out, in)``."""
        return layer.like.new_full(tuple(layer.weight_sites[self.rate_site(layer, site)].shape), 1.0 - self.p)
