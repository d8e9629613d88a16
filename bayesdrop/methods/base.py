"""The :class:`Method` base class shared by every dropout family, its :class:`Capabilities` and
:class:`TrainingDefaults`, and :class:`PointWeights`, the base of the methods that put noise on a layer's noise
sites and keep point-estimate weights."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import pyro
import pyro.distributions as dist
import torch
from pyro.nn import PyroModule

from ..checks import check_range, integer, real_number  # noqa: F401  (re-exported for methods written against it)
from ..distributions import IsotropicNormal

if TYPE_CHECKING:  # pragma: no cover
    from ..sites import Layer, NoiseSite, PoolSite, WeightSite

__all__ = [
    "Method",
    "PointWeights",
    "LayerGuide",
    "Capabilities",
    "TrainingDefaults",
    "site_param",
    "INPUT_MIN_FEATURES",
]

INPUT_MIN_FEATURES = 64  #: fixed-rate methods add input noise only to networks with at least this many inputs


@dataclass(frozen=True)
class TrainingDefaults:
    r"""The training settings a method needs to show its paper's behaviour; :func:`bayesdrop.fit` reads them.

    Attributes
    ----------
    kl_warmup : float
        Fraction of the epochs over which ``fit(kl_warmup="auto")`` (the default) grows the KL weight
        :math:`\beta` linearly from 0 to 1.  A model mixing methods takes the largest fraction.
    lr_scale : mapping of str to float
        Learning-rate multipliers of the method's variational parameters, by the name of the parameter in its
        :class:`LayerGuide` (e.g. ``{"k": 30.0}``), which also names the parameters of further sites that end in
        it (``"mu"``: ``noise_hh_l0_mu``, see :func:`site_param`): ``fit`` gives each its own Adam parameter group
        with ``lr * scale``.  Parameters not named train at ``lr``.
    """

    kl_warmup: float = 0.0
    lr_scale: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not 0.0 <= self.kl_warmup <= 1.0:
            raise ValueError(f"`kl_warmup` must be a fraction of the epochs in [0, 1], got {self.kl_warmup!r}")
        for name, scale in self.lr_scale.items():
            if not scale > 0:
                raise ValueError(f"`lr_scale[{name!r}]` must be > 0, got {scale!r}")
        object.__setattr__(self, "lr_scale", MappingProxyType(dict(self.lr_scale)))


@dataclass(frozen=True)
class Capabilities:
    """What a method does, as one typed record (``bd.methods.info(name)["capabilities"]``).

    Attributes
    ----------
    analytic_kl : bool
        The KL between every guide site and its prior is registered in closed form, so ``TraceMeanField_ELBO``
        (and :class:`~bayesdrop.infer.MeanFieldELBO`) never takes a Monte Carlo term for it.
    lrt : bool
        Its Gaussian weight sites are marked ``infer={"lrt": True}`` for the local reparameterisation trick.
    structured : bool
        Pruning removes whole units (input units or feature maps), not single weights.
    learns_rates : bool
        The dropout rates are variational parameters (else they are fixed hyper-parameters).
    sites : frozenset of str
        The kinds of site its randomness sits on: ``"weight"`` (the Gaussian family, DropConnect's weight masks),
        ``"noise"`` (dropout on a layer's noise sites, with point-estimate weights), ``"pool"`` (the pooling
        layers' windows: max- and average-pooling dropout, stochastic pooling, Max-Drop).  A layer needs at least
        one site of these kinds: the weightless ``bd.nn.Dropout`` serves noise methods only, the pooling layers
        pool methods only.
    rules : frozenset of str
        The test-time rules of :func:`bayesdrop.predict` it supports: ``"mc"`` and ``"weight-scaling"`` for
        every method, ``"moment-matching"`` for DropConnect (Wan et al. 2013) and fast dropout (Wang & Manning
        2013).
    train_rule : {"mc", "moment-matching"}
        How :func:`bayesdrop.fit` treats its noise in training: drawn (``"mc"``), or integrated out by propagating
        Gaussian moments (``"moment-matching"``, fast dropout: the guide is wrapped in
        :class:`~bayesdrop.handlers.MomentMatching` with ``training=True``).
    input_dependent : bool
        The law of its noise depends on the tensor the noise multiplies (Standout, Ba & Frey 2013), so the
        test-time network cannot be folded into plain weights (:func:`bayesdrop.compress.prune` refuses it).
    inputs_only : bool
        It is an augmentation of a network's inputs (Cutout, DeVries & Taylor 2017), not a noise for every layer:
        ``bd.models`` take it as ``input_method`` only.
    noise_roles : frozenset of str
        The roles of the noise sites it draws on (:class:`~bayesdrop.sites.NoiseSite`): ``"input"`` (a layer's
        inputs: every method of noise sites), and in a recurrent layer ``"recurrent"`` (the previous hidden state),
        ``"cell"`` (the cell state), ``"update"`` (the cell's update).  The other noise sites get no noise.
    recurrent : bool
        It acts on recurrent layers only (their sequence sites): RNNDrop, recurrent dropout, variational RNN
        dropout.
    pools : frozenset of str
        The poolings (``"max"``, ``"avg"``) whose pool sites it acts on (pool methods only).
    """

    analytic_kl: bool = True
    lrt: bool = False
    structured: bool = False
    learns_rates: bool = False
    sites: frozenset[str] = frozenset({"noise"})
    rules: frozenset[str] = frozenset({"mc", "weight-scaling"})
    train_rule: str = "mc"
    input_dependent: bool = False
    inputs_only: bool = False
    pools: frozenset[str] = frozenset()
    noise_roles: frozenset[str] = frozenset({"input"})
    recurrent: bool = False

    def __post_init__(self) -> None:
        if self.train_rule not in ("mc", "moment-matching"):
            raise ValueError(f"`train_rule` must be 'mc' or 'moment-matching', got {self.train_rule!r}")
        if self.train_rule != "mc" and self.train_rule not in self.rules:
            raise ValueError(f"`train_rule` {self.train_rule!r} must also be one of the test-time `rules`")
        if bool(self.pools) != ("pool" in self.sites) or not self.pools <= {"max", "avg"}:
            raise ValueError(
                f"`pools` must name the poolings ('max', 'avg') of a method for pool sites, got {self.pools}"
            )

    @property
    def plain_export(self) -> bool:
        """Whether the test-time network is a network of plain torch modules (:func:`bayesdrop.compress.prune`):
        not for noise whose law depends on its input (Standout), nor for a recurrent cell or update scaled by the
        noise's mean (RNNDrop, recurrent dropout), which torch's recurrent layers cannot hold."""
        return not (self.input_dependent or (self.recurrent and bool(self.noise_roles & {"cell", "update"})))

    @property
    def role(self) -> str:
        """Where a network takes the method: ``"layer"`` (every weight layer), ``"input"`` (its inputs only),
        ``"pool"`` (its pooling layers) or ``"recurrent"`` (its recurrent layers); see
        :func:`bayesdrop.methods.names`."""
        if "pool" in self.sites:
            return "pool"
        if self.recurrent:
            return "recurrent"
        return "input" if self.inputs_only else "layer"


class LayerGuide(PyroModule):
    """Container for one layer's variational parameters (a :class:`~pyro.nn.PyroModule`).

    Parameters set as ``torch.nn.Parameter`` attributes are seen by ``pyro.infer.SVI`` through ``pyro.param``
    statements, so the plain-Pyro training path optimises them too.  The parameters of a layer's ``weight`` and
    ``noise`` sites have short names (``weight``, ``log_sigma2``, ``k``, ...); those of further sites are prefixed
    with the site's name.
    """


class Method(ABC):
    """A dropout method: for every weight and noise site of a layer, a prior (the model) and a variational family
    (the guide), side by side.

    A layer (:class:`~bayesdrop.nn.BayesianLayer`) calls :meth:`weight_model` and :meth:`noise_model` in the model,
    the guide (:class:`~bayesdrop.guides.DropoutGuide`) calls :meth:`weight_guide` and :meth:`noise_guide`.  Site
    names come from ``layer.site(...)`` so model and guide match; the site named after the layer's site
    (``layer.site(site.name)``) holds the value the layer uses (the weight, or the multiplier of the noise), so
    that :class:`~bayesdrop.handlers.PosteriorMean` gives the test-time network of every method.  Further sites
    (hyper-priors, gate probabilities) are the method's own.

    Global sites (weights, rates) are sampled outside the data plate; local sites (per-example masks and noise)
    through ``layer.sample_local`` in the model and inside ``plate`` in the guide.

    The hooks share their arguments:

    * ``layer``: the layer whose sites are filled, a :class:`~bayesdrop.sites.Layer` (the
      :class:`~bayesdrop.nn.BayesianLayer` that calls the hook, or whose guide does); a method reads from it the
      sites, their initial values (``layer.init_value``), dtype and device (``layer.like``) and Pyro site names
      (``layer.site``).
    * ``params``: that layer's variational parameters, the :class:`LayerGuide` that :meth:`init_guide` made for it
      (held by the :class:`~bayesdrop.guides.DropoutGuide`, which passes it back).
    * ``site``: one of the layer's :class:`~bayesdrop.sites.WeightSite`, :class:`~bayesdrop.sites.NoiseSite` or
      :class:`~bayesdrop.sites.PoolSite`; in the rate hooks (:meth:`keep_prob`, :meth:`rate_site`,
      :meth:`rate_units`) its name within the layer (``"weight"``, ``"noise"``, ...).
    * ``plate``: the plate of the guide's per-example sites (see :meth:`~bayesdrop.nn.BayesianLayer.guide`).
    """

    name: str = ""
    reference: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()
    fit_defaults: ClassVar[TrainingDefaults] = TrainingDefaults()

    @property
    def stochastic(self) -> bool:
        """Whether Monte Carlo draws of the predictive differ."""
        return True

    def check_layer(self, layer: Layer) -> None:
        """Raise ``ValueError`` if ``layer`` has no site of the kinds the method acts on (``capabilities.sites``), or
        a pooling it does not randomise (``capabilities.pools``)."""
        pools = getattr(layer, "pool_sites", {})
        kinds = {"weight"} if layer.weight_sites else set()
        kinds |= {"noise"} if layer.noise_sites else set()
        kinds |= {"pool"} if pools else set()
        name = self.name or type(self).__name__
        if not kinds & self.capabilities.sites:
            remedy = (
                "use a pool method (e.g. 'maxpool-dropout')"
                if kinds == {"pool"}
                else "use a method for noise sites (e.g. 'bernoulli')"
                if "pool" not in self.capabilities.sites
                else "put it in a pooling layer (bd.nn.MaxPool2d(..., method=...))"
            )
            raise ValueError(
                f"method {name!r} acts on {' and '.join(sorted(self.capabilities.sites))} sites, and "
                f"{type(layer).__name__} has none; {remedy}"
            )
        roles = self.capabilities.noise_roles
        if self.capabilities.recurrent and not any(s.sequence and s.role in roles for s in layer.noise_sites.values()):
            raise ValueError(
                f"method {name!r} acts on the {' and '.join(sorted(roles))} noise of recurrent layers, and "
                f"{type(layer).__name__} has none (bd.nn.LSTM has every role, bd.nn.GRU all but the cell)"
            )
        for site in pools.values():
            if "pool" in self.capabilities.sites and site.reduce not in self.capabilities.pools:
                raise ValueError(
                    f"method {name!r} randomises {' and '.join(sorted(self.capabilities.pools))} pooling, and "
                    f"{type(layer).__name__} pools by {site.reduce!r}"
                )

    def input_layer(self, in_features: int) -> Method:
        """The method of a network's first layer, whose inputs are the ``in_features`` data features (pixels,
        samples of a signal, covariates), when the user names none.

        Methods that learn their rates return themselves: they learn how much noise the inputs need (``vd`` and
        ``vbd`` with one alpha per layer, whose KLs push their rate to its bound, take the fixed-rate rule for the
        bound).  Fixed-rate
        methods return a copy with the literature's input rate (Srivastava et al. 2014: drop 0.2 of the inputs,
        0.5 of hidden units) when there are at least :data:`INPUT_MIN_FEATURES` (64) inputs, and no input noise
        below: the recommendation is for many redundant inputs such as the pixels of an image; with few inputs
        each carries information no other does (measured, ``docs/defaults.md``: on MNIST-1D's 40 samples input
        dropout cost 7 points of test error at 50 epochs; on the 1-D toy regression test RMSE 0.52 with it, 0.43
        without).
        """
        return self

    def replace(self, **hyper: Any) -> Method:
        """A copy with some hyper-parameters changed (same registered name)."""
        from . import get, names

        merged = {**self.hyper(), **hyper}
        if self.name in names():
            return get(self.name, **merged)
        return type(self)(**merged)

    def hyper(self) -> dict[str, Any]:
        """Hyper-parameters as given to the constructor (for configs and checkpoints): each constructor argument
        is kept as an attribute of its name, else a ``TypeError`` naming it."""
        out = {}
        for k in inspect.signature(type(self)).parameters:
            if not hasattr(self, k):
                raise TypeError(
                    f"{type(self).__name__}: keep the constructor argument {k!r} as the attribute self.{k} "
                    "(Method.hyper reads the hyper-parameters back by name, for configurations and checkpoints)"
                )
            out[k] = getattr(self, k)
        return out

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyper().items())
        return f"{type(self).__name__}({args})"

    # -- parameters -------------------------------------------------------------------------------------------
    @abstractmethod
    def init_guide(self, layer: Layer) -> LayerGuide:
        """Create the layer's variational parameters."""

    # -- weight sites: prior and guide ---------------------------------------------------------------------------
    @abstractmethod
    def weight_model(self, layer: Layer, site: WeightSite) -> torch.Tensor:
        """Sample the prior sites of ``layer``'s weight site ``site`` and return the weight (no ``params``: the
        model holds no variational parameter)."""

    @abstractmethod
    def weight_guide(self, layer: Layer, site: WeightSite, params: LayerGuide, plate: pyro.plate) -> None:
        """Sample the guide sites matching :meth:`weight_model` for ``layer``'s weight site ``site``, from the
        layer's variational parameters ``params`` (local ones, e.g. per-example weight masks, inside ``plate``, the
        model's data plate)."""

    # -- noise sites: prior and guide --------------------------------------------------------------------------
    def noise_model(self, layer: Layer, site: NoiseSite, x: torch.Tensor) -> torch.Tensor | None:
        """Sample the prior sites of ``layer``'s noise site ``site`` on the tensor ``x`` it multiplies, and return the
        multiplier (broadcastable to ``x``), or ``None`` for no noise there (the default).  No ``params``: the
        model holds no variational parameter."""
        return None

    def noise_guide(self, layer: Layer, site: NoiseSite, params: LayerGuide, plate: pyro.plate) -> None:
        """Sample the guide sites matching :meth:`noise_model` for ``layer``'s noise site ``site``, from the layer's
        variational parameters ``params`` (local ones inside ``plate``, the model's data plate, built when it is
        first entered)."""
        return None  # no noise there (the default of noise_model)

    # -- pool sites: prior and guide ------------------------------------------------------------------------------
    def pool_model(self, layer: Layer, site: PoolSite, windows: torch.Tensor) -> torch.Tensor:
        """Sample the prior sites of pool site ``site`` on ``windows`` ``(B, C, *out, K)`` and return the window
        weights, broadcastable to ``windows``: each output of the layer is ``(windows * weights).sum(-1)``.  Only
        methods for pool sites (``"pool" in capabilities.sites``) are asked."""
        raise NotImplementedError(f"{type(self).__name__} does not act on pool sites")

    def pool_guide(self, layer: Layer, site: PoolSite, params: LayerGuide, plate: pyro.plate) -> None:
        """Sample the guide sites matching :meth:`pool_model` for ``layer``'s pool site ``site``, from the layer's
        variational parameters ``params`` (local ones inside ``plate``)."""
        raise NotImplementedError(f"{type(self).__name__} does not act on pool sites")

    def pool_test_weights(self, site: PoolSite, windows: torch.Tensor) -> torch.Tensor:
        """The window weights of the test-time network at pool site ``site`` (what :meth:`pool_model` gives at the
        posterior mean of its sites) for ``windows`` ``(B, C, *out, K)``, broadcastable to them: a function of the
        windows alone, with neither ``layer`` nor ``params``, so that :class:`~bayesdrop.nn.WindowPool` exports it
        (``functools.partial(method.pool_test_weights, site)``)."""
        raise NotImplementedError(f"{type(self).__name__} does not act on pool sites")

    def project(self, layer: Layer, params: LayerGuide) -> None:
        """Put ``layer``'s variational parameters ``params`` back in their domain, in place and without gradient:
        the projection of projected gradient descent (Generalized Dropout's keep probabilities onto [0, 1]).  The
        default does nothing.  :func:`~bayesdrop.fit` calls it after every optimiser step
        (:meth:`~bayesdrop.DropoutGuide.project`); a guide hook that also calls it, for ``pyro.infer.SVI``, skips
        it while ``torch.jit.is_tracing()``, as a recorded graph cannot write its inputs."""
        return None

    # -- rates and pruning ------------------------------------------------------------------------------------
    @abstractmethod
    def keep_prob(self, layer: Layer, params: LayerGuide, site: str | None = None) -> torch.Tensor:
        """Learned (or fixed) keep probabilities of ``layer``'s site ``site``, one of :meth:`rate_sites` (``None``:
        the first, a feed-forward layer's only one), per input unit or per weight; learned ones are read from the
        layer's variational parameters ``params``."""

    def rate_sites(self, layer: Layer) -> list[str]:
        """The sites whose keep probabilities :meth:`keep_prob` gives, in the layer's order: the pool sites of a
        pooling method, the weight sites of a method of weight sites (the Gaussian family, DropConnect), else the
        noise sites it draws on (:attr:`~bayesdrop.nn.BayesianLayer.drawn_noise_sites`).  One for a feed-forward
        layer; a recurrent layer has one per layer and direction (``weight_ih_l0``, ``noise_l0``, ...)."""
        kinds = self.capabilities.sites
        if "pool" in kinds:
            return list(layer.pool_sites)
        if "weight" in kinds:
            return list(layer.weight_sites)
        return list(layer.drawn_noise_sites)

    def rate_site(self, layer: Layer, site: str | None) -> str:
        """``site``, or for ``None`` the first of ``layer``'s :meth:`rate_sites`; a ``ValueError`` names any other.
        No ``params``: it reads the layer's sites only."""
        sites = self.rate_sites(layer)
        if site is None and sites:
            return sites[0]
        if site not in sites:
            raise ValueError(f"`site` must be one of {sites} for {self.name!r} in this layer, got {site!r}")
        return site

    def rate_units(self, layer: Layer, site: str | None = None) -> int:
        """The input units of ``layer``'s noise or pool site ``site`` (:meth:`rate_site`): the leading axis of its
        unit shape, the length of a fixed rate's :meth:`keep_prob`.  No ``params``: it reads the layer's sites
        only.  A weight site, whose keep probabilities are per weight, is a ``ValueError``."""
        name = self.rate_site(layer, site)
        found = layer.noise_sites.get(name) or layer.pool_sites.get(name)
        if found is None:
            raise ValueError(
                f"rate_units reads noise and pool sites; {name!r} is a weight site of {self.name!r}, whose keep "
                "probabilities are per weight: its keep_prob gives them from the weight's own shape"
            )
        return found.unit_shape[0]

    #: The named thresholds :meth:`keep_masks` takes besides numbers (Generalized Dropout's ``"sharp-rise"``)
    threshold_rules: tuple[str, ...] = ()

    def numeric_threshold(self, threshold: Any) -> float:
        """A number ``threshold`` of :meth:`keep_masks` as a float; a ``ValueError`` naming ``threshold`` for a name
        (those this method knows, :attr:`threshold_rules`, are read by its own :meth:`keep_masks`) and a
        ``TypeError`` for anything else."""
        if isinstance(threshold, str):
            known = f"knows {', '.join(map(repr, self.threshold_rules))}" if self.threshold_rules else "knows none"
            raise ValueError(
                f"`threshold` {threshold!r} is not a named pruning rule of {self.name!r}, which {known}: give a "
                "number, or None for the method's own threshold"
            )
        return real_number(threshold, "threshold", "a number, a named rule or None")

    def keep_masks(
        self, layer: Layer, params: LayerGuide, threshold: float | str | None = None
    ) -> dict[str, torch.Tensor]:
        """What pruning keeps of ``layer``, from its variational parameters ``params``: site name within the layer
        (``"weight"``, ``"noise"``) to a boolean mask broadcastable to the site's value (per weight, or per unit for
        noise sites), at ``threshold`` (the method's own when ``None``).  Sites not named are kept whole; the
        default prunes nothing."""
        return {}

    def pruning_rule(self) -> str | None:
        """What :meth:`keep_masks` prunes, in words (e.g. ``"log alpha >= 3"``), or ``None`` if it never prunes.

        :func:`bayesdrop.fit` warns (:class:`~bayesdrop.infer.CollapseWarning`) when the rule removes every weight
        of a layer.
        """
        return None


class PointWeights(Method):
    r"""Methods of the common shape: point-estimate weights under a Gaussian prior, noise on the noise sites.

    Every weight site has the prior :math:`W \sim \mathcal N(0, s^2 I)` and the guide :math:`\delta_{\hat W}`, so
    its KL term is :math:`-\log \mathcal N(\hat W; 0, s^2)`: weight decay :math:`\lVert \hat W \rVert^2 / (2
    s^2)` (Gal & Ghahramani 2016).  A subclass gives :meth:`noise_model`, :meth:`noise_guide` and
    :meth:`keep_prob` (``docs/guide/adding.md`` shows one whole, ``docs/examples/uniform_noise.py``).
    """

    prior_scale: float = 1.0

    def init_guide(self, layer: Layer) -> LayerGuide:
        lg = LayerGuide()
        for site in layer.weight_sites.values():
            setattr(lg, site.name, torch.nn.Parameter(layer.init_value(site).clone()))
        return lg

    def weight_model(self, layer: Layer, site: WeightSite) -> torch.Tensor:
        like = layer.init_value(site)
        return pyro.sample(layer.site(site.name), IsotropicNormal(self.prior_scale**2, site.shape, like=like))

    def weight_guide(self, layer: Layer, site: WeightSite, params: LayerGuide, plate: pyro.plate) -> None:
        w = getattr(params, site.name)
        pyro.sample(layer.site(site.name), dist.Delta(w, event_dim=w.dim()))


def site_param(site: str, suffix: str) -> str:
    """The name of a variational parameter of ``site``: ``suffix`` for the primary ``weight``, ``noise`` and
    ``pool`` sites of a layer, ``f"{site}_{suffix}"`` for further ones (``weight_hh_log_sigma2``)."""
    return suffix if site in ("weight", "noise", "pool") else f"{site}_{suffix}"


def require_per_element_noise(layer: Layer, reason: str) -> None:
    """Raise ``ValueError`` (starting with ``reason``) if a noise site of ``layer`` shares one draw across elements
    (:attr:`~bayesdrop.sites.NoiseSite.shared`, e.g. ``noise="channel"``): for methods whose noise needs one draw
    per element."""
    shared = [s.name for s in layer.noise_sites.values() if s.shared]
    if shared:
        raise ValueError(
            f"{reason}; {type(layer).__name__}'s noise {shared} shares one draw across elements (e.g. "
            "noise='channel'): use per-element noise"
        )
