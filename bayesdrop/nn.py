"""Bayesian layers that take a dropout method, and :func:`bayesianize`.

A :class:`BayesianLayer` owns the deterministic parts of a layer (shape, bias,
initial weights) and delegates the probabilistic parts to its
:class:`~bayesdrop.methods.Method`: the prior sites in the model here, the
variational sites in :class:`~bayesdrop.guides.DropoutGuide`.

Three contexts steer a layer:

* :func:`local_plate` hands layers the data plate for per-example sites (the
  likelihoods in :mod:`bayesdrop.models` open it around the network).
* :class:`LocalReparameterization` (an effect handler) makes layers draw
  pre-activations instead of weights (Kingma et al. 2015) for weight sites a
  method marks with ``infer={"lrt": True}``.
* ``DropoutGuide.mean_network()`` runs the deterministic test-time network.

Weights may carry leading sample dimensions (``Predictive(parallel=True)``
draws every latent with a leading sample axis and a singleton for the data
plate); :meth:`BayesianLayer.op` handles them without Python loops.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.nn import PyroModule
from pyro.nn.module import to_pyro_module_
from pyro.poutine.messenger import Messenger
from torch.distributions import Distribution as TorchDistribution

from ._params import DirectParameters
from .methods import Method, resolve

__all__ = [
    "BayesianLayer",
    "Linear",
    "Conv2d",
    "bayesianize",
    "bayesian_layers",
    "local_plate",
    "LocalReparameterization",
]

_PLATE: contextvars.ContextVar[Any] = contextvars.ContextVar("bayesdrop_plate", default=None)
_MEAN: contextvars.ContextVar[Any] = contextvars.ContextVar("bayesdrop_mean", default=None)


@contextlib.contextmanager
def local_plate(plate: pyro.plate) -> Iterator[None]:
    """Make ``plate`` the data plate in which layers sample per-example sites.

    Call the network inside this context and *outside* the plate itself, so
    that weights stay global while masks are local::

        plate = pyro.plate("data", N, subsample=torch.arange(len(x)))
        with bd.nn.local_plate(plate):
            logits = net(x)
        with plate:
            pyro.sample("obs", dist.Categorical(logits=logits), obs=y)
    """
    token = _PLATE.set(plate)
    try:
        yield
    finally:
        _PLATE.reset(token)


class _SampleMessenger(Messenger):
    """A messenger that acts on sample statements only, dispatched without Pyro's per-message method lookup
    (``getattr(self, f"_pyro_{msg['type']}")`` for every messenger and statement)."""

    def _process_message(self, msg: dict) -> None:
        if msg["type"] == "sample":
            self._pyro_sample(msg)

    def _postprocess_message(self, msg: dict) -> None:
        if msg["type"] == "sample":
            self._pyro_post_sample(msg)

    def _pyro_sample(self, msg: dict) -> None:
        pass

    def _pyro_post_sample(self, msg: dict) -> None:
        pass


class LocalReparameterization(_SampleMessenger):
    r"""Effect handler for the local reparameterisation trick (Kingma et al. 2015).

    Wrap the guide in it (``LocalReparameterization()(guide)``), or the whole
    SVI step.  Each weight drawn in the guide from a Normal at a site marked
    ``infer={"lrt": True}`` is tagged with its mean and variance; the model
    replays that value, and the layer samples the pre-activation

    .. math:: b \sim \mathcal N\big(x \mu^\top,\; (x \circ x)(\sigma^2)^\top\big)

    instead of using the weight sample, which lowers the gradient variance.  The
    tag sits on the tensor object itself (never its ``id``).  Outside the handler,
    e.g. under ``Predictive``, layers use the sampled weights.

    Parameters
    ----------
    draw_weights : bool
        ``True`` (default): the guide still draws the weights, so every
        estimator (``Trace_ELBO``'s ``log p - log q`` included) sees a proper
        sample.  ``False``: the guide skips the draw, which the layer would
        ignore anyway, and the site's value is a placeholder (the mean ``loc``,
        without gradient, marked ``_bayesdrop_lrt_placeholder``).  Only valid
        for losses that never evaluate a density at these values, i.e. where
        the KL of every such site is analytic: :func:`bayesdrop.fit` uses it
        with its :class:`~bayesdrop.infer.MeanFieldELBO`, which raises if a
        placeholder would enter a Monte Carlo term.  It saves one Gaussian
        draw per weight and step.
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
            value._bayesdrop_lrt_placeholder = True
            msg["value"] = value

    def _pyro_post_sample(self, msg: dict) -> None:
        fn = self._normal(msg)
        if fn is not None:
            msg["value"]._bayesdrop_lrt = (fn.loc, fn.variance)


class BayesianLayer(DirectParameters, PyroModule):
    """Base class: a layer whose weights and noise are governed by a method.

    Attributes
    ----------
    method : Method
        The dropout method (its prior and variational family).
    weight_init : torch.Tensor
        Initial weights (buffer) from which guides start.
    input_event_shape : tuple of int or None
        Per-example input shape, recorded at each forward pass.
    """

    event_dim: int = 1  # number of per-example input dimensions

    def __init__(self, method: str | Method, weight: torch.Tensor, bias: torch.Tensor | None, **hyper: Any):
        super().__init__()
        self.method = resolve(method, **hyper)
        if isinstance(self, Conv2d) and not self.method.conv:
            raise ValueError(f"method {self.method.name!r} does not support Conv2d")
        self.register_buffer("weight_init", weight.detach().clone())
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone())
        self.input_event_shape: tuple[int, ...] | None = None
        self._fixed: dict[tuple, dist.Distribution] = {}

    @property
    def weight_shape(self) -> torch.Size:
        return self.weight_init.shape

    @property
    def weight_event_dim(self) -> int:
        return self.weight_init.dim()

    def site(self, name: str) -> str:
        """The Pyro site name of this layer's ``name`` (e.g. ``"net.0.weight"``)."""
        return f"{self._pyro_name}.{name}" if self._pyro_name else name

    def fixed(self, key: Hashable, like: torch.Tensor, build: Callable[[], dist.Distribution]) -> dist.Distribution:
        """``build()``, made once per ``key``, dtype and device of ``like``, per-example input shape and setting
        of distribution validation.

        For the distributions that do not change during training (priors with fixed hyper-parameters, fixed-rate
        noise): building one costs tens of microseconds per site and step.  ``build`` must not depend on anything
        else, and must not track gradients.  A distribution keeps the validation setting it was built under
        (``pyro.enable_validation``), hence the last part of the key.
        """
        k = (key, like.dtype, like.device, self.input_event_shape, TorchDistribution._validate_args)
        fn = self._fixed.get(k)
        if fn is None:
            fn = self._fixed[k] = build()
        return fn

    # -- ops ----------------------------------------------------------------------
    def op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """The layer's linear operation with weights ``w`` (possibly batched), no bias."""
        raise NotImplementedError

    def op_lrt(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """:meth:`op`, drawing the pre-activation by local reparameterisation if ``w`` is tagged."""
        tag = getattr(w, "_bayesdrop_lrt", None)
        if tag is None:
            return self.op(x, w)
        loc, variance = tag
        mean = self.op(x, loc)
        var = self.op(x * x, variance)
        return torch.addcmul(mean, var.clamp_min(1e-16).sqrt(), torch.randn_like(mean))

    def sample_local(self, name: str, fn: dist.Distribution, x: torch.Tensor) -> torch.Tensor:
        """Sample a per-example site; ``fn`` has empty batch shape and the per-example event shape."""
        plate = _PLATE.get()
        if plate is None:  # used outside a likelihood: one draw per example, explicit batch
            return pyro.sample(self.site(name), fn.expand(x.shape[: x.dim() - self.event_dim]))
        with plate:
            return pyro.sample(self.site(name), fn)

    def _check_input(self, x: torch.Tensor) -> None:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        shape = tuple(x.shape[-self.event_dim :])
        if shape != self.input_event_shape:  # a module attribute write costs microseconds: only on change
            self.input_event_shape = shape
        mean = _MEAN.get()
        if mean is not None:
            guide, pruned, threshold = mean
            params = guide.layer_guide(self)
            if pruned:
                w, keep = self.method.point_weights(self, params, threshold)
                out = self.op(x, w * keep)
            else:
                out = self.method.mean_forward(self, params, x)
        else:
            out = self.method.model(self, x)
        bias = self.bias  # one parameter statement
        if bias is not None:
            out = out + (bias if self.event_dim == 1 else bias.reshape(bias.shape + (1,) * (self.event_dim - 1)))
        return out


class Linear(BayesianLayer):
    """Bayesian ``y = x W^T + b`` with ``W`` of shape ``(out_features, in_features)``.

    Parameters
    ----------
    in_features, out_features : int
    method : str or Method
        Registered name (see :func:`bayesdrop.methods.names`) or instance.
    bias : bool
        Learn a deterministic bias (a point estimate, as in Kingma et al. 2015).
    **hyper
        Hyper-parameters of the method when given by name.
    """

    event_dim = 1

    def __init__(
        self, in_features: int, out_features: int, method: str | Method = "bernoulli", bias: bool = True, **hyper: Any
    ):
        for arg, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{arg}` must be a positive int, got {v!r}")
        ref = torch.nn.Linear(in_features, out_features, bias=bias)
        super().__init__(method, ref.weight, ref.bias, **hyper)
        self.in_features, self.out_features = in_features, out_features
        self.input_event_shape = (in_features,)

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() < 2 or x.shape[-1] != self.in_features:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"`x` must have shape (batch, {self.in_features}), got {shape}")

    def op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.dim() > 2:  # (S, 1, out, in) from a vectorised Predictive: drop the data-plate singleton
            w = w.squeeze(-3)
        return torch.matmul(x, w.transpose(-1, -2))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, method={self.method!r}, bias={self.bias is not None}"


class Conv2d(BayesianLayer):
    """Bayesian 2-D convolution (``groups=1``); weights ``(out, in, kh, kw)``.

    Inputs are ``(batch, C, H, W)`` or, under vectorised prediction,
    ``(S, batch, C, H, W)``; batched weights run as one grouped convolution.
    """

    event_dim = 3

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        method: str | Method = "bernoulli",
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        **hyper: Any,
    ):
        for arg, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"`{arg}` must be a positive int, got {v!r}")
        ref = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, bias=bias)
        super().__init__(method, ref.weight, ref.bias, **hyper)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.dilation = (
            ref.kernel_size,
            ref.stride,
            ref.padding,
            ref.dilation,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() < 4 or x.shape[-3] != self.in_channels:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"`x` must have shape (batch, {self.in_channels}, H, W), got {shape}")

    def _conv(self, x: torch.Tensor, w: torch.Tensor, groups: int = 1) -> torch.Tensor:
        return F.conv2d(x, w, None, self.stride, self.padding, self.dilation, groups)

    def op(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if w.dim() > 4:
            w = w.reshape(-1, *w.shape[-4:])  # (S, 1, O, C, kh, kw) -> (S, O, C, kh, kw)
            if w.shape[0] == 1:
                w = w[0]
        if w.dim() == 4:  # shared weights: fold any sample dims into the batch
            lead = x.shape[:-3]
            y = self._conv(x.reshape(-1, *x.shape[-3:]), w)
            return y.reshape(*lead, *y.shape[-3:])
        s, o = w.shape[0], w.shape[1]
        if x.dim() == 4:
            x = x.expand(s, *x.shape)
        x = x.reshape(s, -1, *x.shape[-3:])  # (S, B, C, H, W)
        b, c, h, wd = x.shape[1:]
        y = self._conv(x.transpose(0, 1).reshape(b, s * c, h, wd), w.reshape(s * o, *w.shape[2:]), groups=s)
        return y.reshape(b, s, o, *y.shape[-2:]).transpose(0, 1)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, method={self.method!r}, bias={self.bias is not None}"
        )


def bayesian_layers(module: torch.nn.Module) -> list[tuple[str, BayesianLayer]]:
    """All :class:`BayesianLayer` submodules of ``module`` with their names."""
    return [(n, m) for n, m in module.named_modules() if isinstance(m, BayesianLayer)]


def bayesianize(module: torch.nn.Module, method: str | Method = "bernoulli", **hyper: Any) -> PyroModule:
    """Turn an existing ``torch.nn`` model into a Bayesian one, in place.

    Every ``torch.nn.Linear`` and ``torch.nn.Conv2d`` becomes a
    :class:`Linear` / :class:`Conv2d` with ``method`` whose guide starts from
    the module's current weights, so a pre-trained network can be refined.
    ``torch.nn.Dropout`` layers become identities: the method supplies the noise.
    The module is converted to a :class:`~pyro.nn.PyroModule` so that site and
    parameter names follow the module tree.

    Returns
    -------
    PyroModule
        The converted module (the same object).
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module, got {type(module).__name__}")
    m = resolve(method, **hyper)

    def convert(mod: torch.nn.Module) -> torch.nn.Module:
        if isinstance(mod, BayesianLayer):
            return mod
        if type(mod) is torch.nn.Linear:
            new = Linear(mod.in_features, mod.out_features, m, bias=mod.bias is not None)
        elif type(mod) is torch.nn.Conv2d:
            if mod.groups != 1 or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
                raise ValueError("bayesianize supports Conv2d with groups=1, zero padding given as ints")
            new = Conv2d(
                mod.in_channels,
                mod.out_channels,
                mod.kernel_size,
                m,
                mod.stride,
                mod.padding,
                mod.dilation,
                bias=mod.bias is not None,
            )
        elif isinstance(mod, (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d)):
            return torch.nn.Identity()
        else:
            for name, child in list(mod.named_children()):
                setattr(mod, name, convert(child))
            return mod
        with torch.no_grad():
            new.weight_init.copy_(mod.weight)
            if mod.bias is not None:
                new.bias.copy_(mod.bias)
        return new

    out = convert(module)
    if not bayesian_layers(out):
        raise ValueError("`module` has no torch.nn.Linear or torch.nn.Conv2d layer to make Bayesian")
    to_pyro_module_(out)  # recursive: names of nested plain submodules follow the tree too
    return out
