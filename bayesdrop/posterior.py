"""The one posterior sampler behind :func:`bayesdrop.predict` and :func:`bayesdrop.to_inference_data`.

For people who need draws of the network itself: :class:`PosteriorSampler` draws S networks from the guide (their
global sites: weights, rates) and runs every batch of inputs through each of them, with fresh local sites (masks)
per example, by Pyro's own ``trace`` and ``replay``.  Each draw is an ordinary forward pass, so any module works in
the network (pooling, batch normalisation, anything that expects one batch dimension).

Example
-------
>>> sampler = bd.posterior.PosteriorSampler(model, guide, num_samples=100, example=x[:1])
>>> out, y_rep = sampler.run(x)  # (100, N, classes) network outputs and (100, N) replicated observations
"""

from __future__ import annotations

from typing import Any

import pyro.poutine as poutine
import torch
from pyro.poutine.util import site_is_subsample

from .moments import Moments

__all__ = ["PosteriorSampler", "device_of"]


def device_of(model: torch.nn.Module, guide: torch.nn.Module) -> torch.device:
    """The device of the first parameter or buffer of ``guide`` or ``model`` (the CPU if they have none)."""
    for t in (*guide.parameters(), *model.parameters(), *guide.buffers(), *model.buffers()):
        return t.device
    return torch.device("cpu")


class PosteriorSampler:
    """S networks from the guide, shared by every input; per-example sites drawn afresh for each input.

    Parameters
    ----------
    model, guide
        A likelihood (any model with ``data_plate(x)``) and its guide, called as ``model(x)`` and ``guide(x)``.
    num_samples : int
        Number S of networks.
    example : torch.Tensor
        A batch of inputs (one row is enough) on which the S networks are drawn.
    """

    def __init__(self, model: Any, guide: Any, num_samples: int, example: torch.Tensor):
        self.model, self.guide, self.num_samples = model, guide, num_samples
        plate = model.data_plate(example).name
        self.networks: list[poutine.Trace] = []
        with poutine.block():
            for _ in range(num_samples):
                trace = poutine.trace(guide).get_trace(example)
                for name, site in list(trace.nodes.items()):
                    local = any(f.name == plate for f in site.get("cond_indep_stack", ()))
                    if site["type"] != "sample" or site_is_subsample(site) or local:
                        trace.remove_node(name)
                self.networks.append(trace)
        self.obs_site: str | None = None

    def _obs(self, model_trace: poutine.Trace, guide_trace: poutine.Trace) -> str | None:
        names = [
            n
            for n, s in model_trace.nodes.items()
            if s["type"] == "sample" and not site_is_subsample(s) and n not in guide_trace.nodes
        ]
        if len(names) == 1:
            return names[0]
        if "obs" in names:
            return "obs"
        raise ValueError(f"`model`: cannot tell its observation site among the sample sites {names}")

    @torch.no_grad()
    def run(self, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs ``(S, N, ...)`` and draws of the observation site ``(S, N, ...)`` for inputs ``x``.

        A network whose output is the :class:`~bayesdrop.moments.Moments` of a Gaussian approximation (fast dropout
        under :class:`~bayesdrop.handlers.MomentMatching`) gives its :math:`2d` sigma points as equally weighted
        draws: ``S * 2d`` outputs, and ``S`` observation draws."""
        step = len(x) if batch_size is None else batch_size
        outs: list[list[torch.Tensor]] = [[] for _ in self.networks]
        obs: list[list[torch.Tensor]] = [[] for _ in self.networks]
        points = False
        with poutine.block():
            for i in range(0, len(x), step):
                xb = x[i : i + step]
                for s, network in enumerate(self.networks):
                    guide_trace = poutine.trace(poutine.replay(self.guide, trace=network)).get_trace(xb)
                    model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(xb)
                    if self.obs_site is None:
                        self.obs_site = self._obs(model_trace, guide_trace)
                    out = model_trace.nodes["_RETURN"]["value"]
                    if isinstance(out, Moments):  # fast dropout: the output's 2d sigma points, (B, 2d, ...)
                        points = True
                        out = out.sigma_points(out.dim() - 1).movedim(0, 1)
                    outs[s].append(out)
                    obs[s].append(model_trace.nodes[self.obs_site]["value"])
        draws = torch.stack([torch.cat(o) for o in outs])
        if points:  # (S, N, 2d, ...) -> (S * 2d, N, ...): each network's sigma points are draws
            draws = draws.movedim(2, 1).flatten(0, 1)
        return draws, torch.stack([torch.cat(o) for o in obs])
