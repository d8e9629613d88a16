r"""Posterior predictive of a trained model: :func:`predict` and :func:`evaluate`.

For users who have trained a model and its guide: ``rule="mc"`` draws networks from the guide
(:class:`~bayesdrop.posterior.PosteriorSampler`, one forward pass each) and averages,

.. math:: p(y^* \mid x^*) \approx \frac1T \sum_{t=1}^T p(y^* \mid x^*, \theta_t),\quad \theta_t \sim q;

``rule="weight-scaling"`` runs one deterministic pass of the rescaled network (Goodfellow et al. 2016, sec. 7.12;
:func:`~bayesdrop.handlers.posterior_mean`); ``rule="moment-matching"`` integrates the masks out by Gaussian moments
(:class:`~bayesdrop.handlers.MomentMatching`): DropConnect draws each layer's pre-activation from the Gaussian of
its moments over the weight masks (Wan et al. 2013); fast dropout propagates the mean and variance through the
network in one deterministic pass and reports the output's sigma points as equally weighted draws (Wang & Manning
2013; :mod:`bayesdrop.moments`).  What a prediction is comes from the likelihood
(:meth:`~bayesdrop.likelihoods.Likelihood.predictive` and :meth:`~bayesdrop.likelihoods.Likelihood.metrics`).

Example
-------
>>> probs = bd.predict(model, guide, x_test, num_samples=100)          # classification: (N, C)
>>> bd.evaluate(model, guide, (x_test, y_test))                       # {"acc": ..., "nll": ...}
"""

from __future__ import annotations

from typing import Any, Literal, overload

import torch

from ..data import as_tensors
from ..guides import DropoutGuide
from ..handlers import MomentMatching
from ..likelihoods import Likelihood, Prediction
from ..nn import bayesian_layers
from ..posterior import PosteriorSampler, device_of

__all__ = ["predict", "evaluate", "RULES"]

RULES = ("mc", "weight-scaling", "moment-matching")


@torch.no_grad()
def output_draws(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    rule: str = "mc",
    parallel: bool = False,
    batch_size: int | None = None,
) -> torch.Tensor:
    """Network outputs ``(S, N, ...)`` for inputs ``x``: ``S = num_samples`` posterior draws (``"mc"``) or the one
    deterministic pass (``"weight-scaling"``, ``S = 1``), with ``model`` in eval mode; ``parallel`` and
    ``batch_size`` as :func:`predict`'s."""
    if rule not in RULES:
        raise ValueError(f"`rule` must be one of {RULES}, got {rule!r}")
    if not isinstance(parallel, bool):
        raise TypeError(f"`parallel` must be a bool, got {type(parallel).__name__}")
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"`batch_size` must be a positive int or None, got {batch_size!r}")
    if rule == "moment-matching":
        lacking = sorted(
            {layer.method.name for _, layer in bayesian_layers(model) if rule not in layer.method.capabilities.rules}
        )
        if lacking:
            raise ValueError(
                f"`rule` 'moment-matching' needs every layer's method to support it (dropconnect, fast-dropout); "
                f"{', '.join(repr(n) for n in lacking)} {'does' if len(lacking) == 1 else 'do'} not"
            )
    if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}")
    if not isinstance(model, Likelihood):
        raise TypeError(
            f"`model` must be a bd.Likelihood (bd.Classifier, bd.Regressor, ...), got {type(model).__name__}"
        )
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model` (bd.DropoutGuide(model))")
    x = x.to(device_of(model, guide))
    was_training = model.training
    model.eval()
    try:
        if guide._order is None:
            guide(x)
        if rule == "weight-scaling":
            step = len(x) if batch_size is None else batch_size
            mean = guide.mean_network()
            return torch.cat([mean(x[i : i + step]) for i in range(0, len(x), step)]).unsqueeze(0)
        if rule == "moment-matching":
            # one pass when no layer draws anything under the rule (fast dropout propagates moments; DropConnect
            # draws pre-activations)
            methods = [layer.method for _, layer in bayesian_layers(model)]
            if all(m.capabilities.train_rule == "moment-matching" or not m.stochastic for m in methods):
                num_samples = 1
            return PosteriorSampler(model, MomentMatching()(guide), num_samples, x[:1]).run(x, batch_size)[0]
        return PosteriorSampler(model, guide, num_samples, x[:1], parallel=parallel).run(x, batch_size)[0]
    finally:
        model.train(was_training)


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: Any,
    *,
    num_samples: int = ...,
    rule: str = ...,
    parallel: bool = ...,
    batch_size: int | None = ...,
    return_samples: Literal[False] = ...,
) -> Prediction: ...


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: Any,
    *,
    num_samples: int = ...,
    rule: str = ...,
    parallel: bool = ...,
    batch_size: int | None = ...,
    return_samples: Literal[True],
) -> tuple[Prediction, torch.Tensor]: ...


@torch.no_grad()
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: Any,
    *,
    num_samples: int = 100,
    rule: str = "mc",
    parallel: bool = False,
    batch_size: int | None = None,
    return_samples: bool = False,
) -> Prediction | tuple[Prediction, torch.Tensor]:
    r"""Posterior predictive for inputs ``x``: ``model.predictive`` of the network outputs.

    Parameters
    ----------
    model, guide
        A trained likelihood and its guide.
    x : tensor or split
        Inputs ``(N, ...)`` (targets, if given with a split or tuple, are ignored).
    num_samples : int
        Draws T of the guide for ``rule="mc"``.
    rule : {"mc", "weight-scaling", "moment-matching"}
        Monte Carlo over the guide, the deterministic posterior-mean network (each method's test-time rule: the
        weight-scaling rule of dropout, probabilistic weighted pooling for ``maxpool-dropout``, the whole input for
        ``cutout``, ...), or (for methods whose
        :attr:`~bayesdrop.methods.Capabilities.rules` include it) the masks integrated out by their moments:
        ``dropconnect``'s Gaussian pre-activations averaged over ``num_samples`` draws, ``fast-dropout``'s one
        deterministic pass (its ``2d`` sigma points are the draws; ``num_samples`` is not used).
    parallel : bool
        Draw the T networks at once and run the inputs through all of them in one vectorised pass (as
        ``pyro.infer.Predictive(parallel=True)``; layers take one weight per draw, and the draws are folded into the
        batch: :class:`~bayesdrop.sites.Draws`), instead of one pass per network.  The same law, with T times the
        activations' memory (and T copies of Gaussian weights).  On one CPU thread it is 1.4-3x faster where a
        pass's fixed cost dominates (digits MLPs, Gaussian weights), and slower for convolutional and recurrent
        networks, whose T-fold activations leave the cache (``benchmarks/results/predict_speed.md``).
    batch_size : int or None
        Inputs per pass (all at once by default): bounds the memory of a prediction, which is the same.
    return_samples : bool
        Also return the per-draw network outputs ``(T, N, ...)`` (one draw for ``"weight-scaling"``).

    Returns
    -------
    torch.Tensor or tuple
        What the likelihood's :meth:`~bayesdrop.likelihoods.Likelihood.predictive` gives: class probabilities
        ``(N, C)`` for :class:`~bayesdrop.Classifier`; ``(mean, std)`` each ``(N,)`` for
        :class:`~bayesdrop.Regressor`, the std including the observation noise (Gal & Ghahramani 2016,
        eq. 8-9); the mixture's ``(mean, std)`` by default.
    """
    inputs = as_tensors(x, name="x")[0]
    out = output_draws(
        model, guide, inputs, num_samples=num_samples, rule=rule, parallel=parallel, batch_size=batch_size
    )
    prediction = model.predictive(out)
    return (prediction, out) if return_samples else prediction


@torch.no_grad()
def evaluate(
    model: Likelihood,
    guide: DropoutGuide,
    data: Any,
    *,
    num_samples: int = 20,
    rule: str = "mc",
    parallel: bool = False,
    batch_size: int | None = None,
) -> dict[str, float]:
    """The likelihood's metrics of the posterior predictive on labelled ``data`` (``num_samples``, ``rule``,
    ``parallel`` and ``batch_size`` as :func:`predict`'s).

    :class:`~bayesdrop.Classifier`: ``acc`` and ``nll``; :class:`~bayesdrop.Regressor`: ``rmse`` and ``nll``; any
    likelihood: ``nll``, the mean negative log predictive density of the mixture over the draws.
    """
    x, y = as_tensors(data, name="data")
    if y is None:
        raise ValueError("`data` must include targets y to be evaluated")
    model.check_targets(y, name="data.y")
    out = output_draws(model, guide, x, num_samples=num_samples, rule=rule, parallel=parallel, batch_size=batch_size)
    return model.metrics(out, y.to(out.device))
