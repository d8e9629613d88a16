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
:class:`NetworkStreams`
    Each network of a Monte Carlo prediction draws its sites from its own random stream, so that its draws do not
    depend on how many networks share its pass (:class:`~bayesdrop.posterior.PosteriorSampler`).

Example
-------
>>> mean_net = bd.handlers.posterior_mean(model, guide)  # a function of the model's arguments
>>> logits = mean_net(x)
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.runtime import Message
from pyro.poutine.util import site_is_subsample

from .distributions import base_distribution

__all__ = [
    "LocalReparameterization",
    "MomentMatching",
    "KLScale",
    "PosteriorMean",
    "posterior_mean",
    "eval_mode",
    "NetworkStreams",
    "default_generator",
]


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
        ``_bayesdrop_lrt_placeholder``; for another law, its mean).  Only valid for losses that never evaluate a
        density at these values, i.e. where the KL of every such site is analytic: :func:`bayesdrop.fit` uses it
        with its :class:`~bayesdrop.infer.MeanFieldELBO`, which raises if a placeholder would enter a Monte Carlo
        term.  A draw nothing uses is also one that a recorded graph (``fit``'s compiled loss) would drop.
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
        if self.draw_weights or msg["value"] is not None or not msg["infer"].get("lrt") or msg["is_observed"]:
            return
        fn = self._normal(msg)
        if fn is not None:
            value = fn.loc.detach()  # a new tensor object, no copy
        else:  # another law (the method redraws it per example): its mean, in its support
            try:
                value = base_distribution(msg["fn"]).mean.detach()
            except NotImplementedError:
                return
        shape = msg["fn"].shape()
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
    r"""Scale every latent (non-observed) sample site by ``beta``, the KL warm-up weight :math:`\beta` (a number, or
    a 0-d tensor: an input of :func:`~bayesdrop.fit`'s compiled loss).

    Wrap model *and* guide: ``TraceMeanField_ELBO`` scales the analytic KL of a site by the guide site's scale,
    Monte Carlo terms by both.

    Raises
    ------
    TypeError
        If ``beta`` is neither a real number nor a one-value floating tensor.
    ValueError
        If a number ``beta`` is negative, NaN or infinite (a tensor is not read: it may be a traced input).
    """

    def __init__(self, beta: float | torch.Tensor):
        super().__init__()
        if torch.is_tensor(beta):
            if not beta.is_floating_point() or beta.numel() != 1:
                raise TypeError(
                    f"`beta` must be a number or a one-value floating tensor, got {beta.dtype} {tuple(beta.shape)}"
                )
        elif isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"`beta` must be a number (the KL weight) or a 0-d tensor, got {type(beta).__name__}")
        elif not (math.isfinite(beta) and beta >= 0):
            raise ValueError(f"`beta` must be a finite number >= 0 (the KL weight), got {beta!r}")
        self.beta = beta

    def _pyro_sample(self, msg: dict) -> None:
        if not msg["is_observed"]:
            scale = msg["scale"]
            unit = not torch.is_tensor(scale) and scale == 1.0  # a global site: beta itself, not an operation
            msg["scale"] = self.beta if unit else scale * self.beta


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
    model on that trace (blocked, so nothing reaches an outer handler), a module model in eval mode
    (:func:`eval_mode`).  ``masks`` zeroes pruned entries.

    Raises
    ------
    ValueError
        If ``guide`` states the module it was built for (``guide.model``, as :class:`~bayesdrop.DropoutGuide` and
        Pyro's autoguides do) and that module is not ``model``, itself a module (a function wrapping a model is
        not checked): the outputs would be another model's.
    """
    built_for = getattr(guide, "model", None)
    modules = isinstance(model, torch.nn.Module) and isinstance(guide, torch.nn.Module)
    if modules and isinstance(built_for, torch.nn.Module) and built_for is not model:
        raise ValueError(
            f"`guide` was built for another model (guide.model is a {type(built_for).__name__} other than `model`): "
            "pass the guide built for this model"
        )

    def run(*args: Any, **kwargs: Any) -> Any:
        with eval_mode(model), poutine.block():
            guide_trace = poutine.trace(PosteriorMean(masks)(guide)).get_trace(*args, **kwargs)
            return poutine.replay(model, trace=guide_trace)(*args, **kwargs)

    return run


@contextlib.contextmanager
def eval_mode(module: object) -> Iterator[None]:
    """Every submodule of ``module`` in eval mode for the block (batch normalisation on its running statistics,
    which stay as they were), each returned to its own mode after it; nothing for anything not a module, or a
    module already in eval mode throughout."""
    training = [m for m in module.modules() if m.training] if isinstance(module, torch.nn.Module) else []
    if not training:
        yield
        return
    cast(torch.nn.Module, module).eval()
    try:
        yield
    finally:
        for m in training:
            m.training = True


def default_generator(device: torch.device) -> torch.Generator | None:
    """The default generator of torch on ``device`` (the CPU's, or the CUDA device's), which the samplers of
    distributions draw from; ``None`` for other device types."""
    if device.type == "cpu":
        return torch.default_generator
    if device.type == "cuda":
        return torch.cuda.default_generators[torch.cuda.current_device() if device.index is None else device.index]
    return None


class NetworkStreams(Messenger):
    r"""Draw the random sites of network :math:`i` from its own stream, ``states[i]``, of torch's default generator.

    For Monte Carlo prediction in passes of several networks (:class:`~bayesdrop.posterior.PosteriorSampler`):
    network :math:`i` takes the same values whether it runs alone or in a pass of :math:`k` networks, whatever
    :math:`k` and its place in the pass, since each of its sites is drawn from its stream alone, in the same order
    (the guide's sites, then the model's, batch after batch).  The caller's random state is left as it was.

    Enter it inside the networks' plate, ``pyro.plate(name, k, dim=dim)``, and outside model and guide: it sees a
    site before that plate broadcasts it over the networks, so a site whose law does not depend on the network
    (weights, masks: batch shape 1 or absent at ``dim``) is drawn once from each network's stream, and a site whose
    law does (the observation, from the network's output: size :math:`k` at ``dim``) is drawn from each network's
    slice of its parameters.  Without a plate (one network per pass) give one network.  Point masses (``Delta``)
    are left to Pyro: nothing is drawn.

    Parameters
    ----------
    generator : torch.Generator
        The default generator of the device the networks run on (:func:`default_generator`).
    states : list of torch.Tensor
        The streams' states (``generator.get_state()``), one per network of the whole sample; updated in place.
    networks : range
        The networks of this pass: indices into ``states``, in the order of the plate.
    dim : int
        The networks' plate dimension (negative).

    Examples
    --------
    >>> gen = bd.handlers.default_generator(torch.device("cpu"))
    >>> states = [torch.Generator().manual_seed(i).get_state() for i in range(4)]
    >>> with pyro.plate("draws", 2, dim=-2), NetworkStreams(gen, states, range(2, 4)):
    ...     trace = poutine.trace(guide).get_trace(x)  # networks 2 and 3, as if each ran alone
    """

    def __init__(self, generator: torch.Generator, states: list[torch.Tensor], networks: range, dim: int = -2):
        super().__init__()
        if not networks or networks.start < 0 or networks.stop > len(states):
            raise ValueError(f"`networks` must be a non-empty range of indices into `states`, got {networks!r}")
        self.generator, self.states, self.networks, self.dim = generator, states, networks, dim

    def _draw(self, fn: torch.distributions.Distribution, i: int) -> torch.Tensor:
        """A sample of ``fn`` from network ``i``'s stream (the generator's state is the caller's after it)."""
        self.generator.set_state(self.states[i])
        value = fn.sample()
        self.states[i] = self.generator.get_state()
        return value

    def _pyro_sample(self, msg: dict) -> None:
        if msg["is_observed"] or msg["value"] is not None or site_is_subsample(cast(Message, msg)):
            return
        fn = msg["fn"]
        if isinstance(base_distribution(fn), dist.Delta):
            return
        outer = self.generator.get_state()
        try:
            if len(self.networks) == 1:  # a pass of one network: no plate
                msg["value"] = self._draw(fn, self.networks[0])
                return
            count, event = len(self.networks), tuple(fn.event_shape)
            batch = tuple(fn.batch_shape)
            length = max(len(batch), -self.dim)
            batch = (1,) * (length - len(batch)) + batch
            at = length + self.dim  # the networks' axis in the batch shape
            if batch[at] == 1:  # the same law for every network
                parts = [self._draw(fn, i).reshape(batch + event) for i in self.networks]
            elif batch[at] == count:  # one law per network: its slice
                parts = [self._one_network(fn, j, i, at) for j, i in enumerate(self.networks)]
            else:
                raise ValueError(
                    f"site {msg['name']!r}: batch shape {tuple(fn.batch_shape)} has {batch[at]} at the networks' "
                    f"dimension {self.dim}, not 1 or their number {count}"
                )
            msg["value"] = torch.cat(parts, at)
        finally:
            self.generator.set_state(outer)

    def _one_network(self, fn: torch.distributions.Distribution, j: int, i: int, at: int) -> torch.Tensor:
        """Network ``i``'s draw (``fn``'s shape with 1 at ``at``) from ``fn``'s slice ``j`` along batch axis
        ``at``, or, for a law whose parameters cannot be sliced, slice ``j`` of a draw of all of ``fn``."""
        full = fn.batch_shape + fn.event_shape
        shape = full[:at] + (1,) + full[at + 1 :]
        try:
            value = self._draw(_sliced(fn, j, at), i)
        except (RuntimeError, ValueError, TypeError, AttributeError):
            value = None
        if value is None or value.shape != shape:
            value = self._draw(fn, i).narrow(at, j, 1)
        return value


def _sliced(fn: torch.distributions.Distribution, j: int, at: int) -> torch.distributions.Distribution:
    """``fn`` restricted to index ``j`` of batch axis ``at`` (kept, of size 1): its tensors whose leading
    dimensions are the batch shape (parameters and their cached forms) sliced, as ``Distribution.expand`` rebuilds
    a law around expanded ones."""
    if isinstance(fn, dist.Independent):
        return dist.Independent(_sliced(fn.base_dist, j, at), fn.reinterpreted_batch_ndims)
    batch = fn.batch_shape
    new = type(fn).__new__(type(fn))
    for name, value in vars(fn).items():
        if torch.is_tensor(value) and value.shape[: len(batch)] == batch:
            value = value.narrow(at, j, 1)
        new.__dict__[name] = value
    shape = batch[:at] + (1,) + batch[at + 1 :]
    torch.distributions.Distribution.__init__(new, shape, fn.event_shape, validate_args=False)
    return new
