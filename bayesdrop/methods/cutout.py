r"""Cutout (DeVries & Taylor 2017): a square region of each input zeroed, at a random centre.

For users who want the region dropout of DeVries & Taylor (2017), "Improved regularization of convolutional neural
networks with cutout" (arXiv:1708.04552), as the input method of any network (``bd.models.lenet5(...,
input_method="cutout")``, ``bd.models.mlp(..., input_method="cutout")``, ``bd.nn.Conv2d(..., method="cutout")``).
Neighbouring pixels are correlated, so dropping single pixels removes little; Cutout removes a contiguous region, on
every channel at once.  The region is a ``size`` x ``size`` square of an image ``(C, H, W)`` (a segment of ``size``
samples of a signal ``(C, L)`` or of a feature vector ``(F,)``) centred at a position :math:`c` uniform over the
positions; it may extend past the borders, where it is clipped (DeVries & Taylor, sec. 3.2: the centre is anywhere
in the image, so some inputs keep most of their area).

As a Pyro model the centre is a per-example local site, two (one) uniform draws :math:`u \sim U(0, 1)^d`, one per
spatial axis, with :math:`c_i = \lfloor u_i n_i \rfloor` for an axis of :math:`n_i` positions (exactly uniform over
the positions), in the model and the guide (KL 0); the multiplier of the input is

.. math:: z_{hw} = 1 - \mathbb 1[c_1 - \lfloor s/2 \rfloor \le h < c_1 - \lfloor s/2 \rfloor + s]\,
                   \mathbb 1[c_2 - \lfloor s/2 \rfloor \le w < c_2 - \lfloor s/2 \rfloor + s],

not rescaled.  At test time the input is used whole (DeVries & Taylor): the test-time network
(``bd.predict(..., rule="weight-scaling")``, :func:`bayesdrop.compress.prune`) is the network without the noise.  The
default ``size`` removes a quarter of the positions when the square is inside the borders: half of each side of an
image (16 of CIFAR-10's 32, DeVries & Taylor's choice for it), a quarter of a signal's length.

Example
-------
>>> net = bd.models.lenet5((1, 8, 8), 10, method="bernoulli", input_method="cutout")
>>> net = bd.models.lenet5((1, 28, 28), 10, input_method=bd.methods.get("cutout", size=12))
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch

from ..checks import check_range
from ..distributions import FixedNoise
from ..moments import Moments
from . import register
from .base import Capabilities, PointWeights, require_per_element_noise, site_param

__all__ = ["Cutout"]


@register("cutout")
class Cutout(PointWeights):
    r"""Cutout: the input times a mask that is 0 on a ``size``-wide square (segment) at a uniform centre.

    Sites of a noise site ``noise``: ``centre`` (:math:`U(0, 1)` per spatial axis, one per example, in model and
    guide).  Weights: prior :math:`\mathcal N(0, s^2)`, Delta guide (as ``bernoulli``).  The tensor the noise
    multiplies is read as ``(F,)`` (one axis), ``(C, L)`` (one spatial axis) or ``(C, H, W)`` (two) per example.

    Parameters
    ----------
    size : int or None
        Side of the square (length of the segment) in positions, or ``None``: half of each side of an image
        (rounded up), a quarter of a signal's length.
    prior_scale : float
        Standard deviation ``s`` of the Gaussian prior on the weights (> 0).
    """

    reference = "DeVries & Taylor 2017 (arXiv:1708.04552)"
    capabilities = Capabilities(analytic_kl=True, inputs_only=True)

    def __init__(self, size: int | None = None, prior_scale: float = 1.0):
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"`size` must be a positive int or None, got {size!r}")
        self.size = size
        self.prior_scale = check_range("prior_scale", prior_scale, 0.0, math.inf, lo_open=True, hi_open=True)

    def check_layer(self, layer) -> None:
        super().check_layer(layer)
        require_per_element_noise(layer, "cutout zeroes a region of the positions of the tensor it multiplies")

    def spatial_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The spatial axes of one example of shape ``shape``: ``(F,)``, ``(L,)`` of ``(C, L)``, ``(H, W)`` of
        ``(C, H, W)``."""
        if len(shape) == 1:
            return shape
        if len(shape) in (2, 3):
            return shape[1:]
        raise ValueError(f"cutout needs inputs (F,), (C, L) or (C, H, W) per example, got {shape}")

    def side(self, spatial: tuple[int, ...]) -> int:
        """The square's side (the segment's length) for the spatial shape ``spatial``."""
        if self.size is not None:
            return self.size
        if len(spatial) == 1:
            return max(1, math.ceil(spatial[0] / 4))
        return max(1, math.ceil(min(spatial) / 2))

    def _centre_law(self, d: int, like: torch.Tensor) -> dist.TorchDistribution:
        base = dist.Uniform(like.new_zeros(()), like.new_ones(())).expand((d,))
        return FixedNoise(base, ("uniform",)).to_event(1)

    def mask(self, centre: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """The multiplier of examples of shape ``shape`` for draws ``centre`` ``(B, d)`` of :math:`U(0, 1)^d`:
        ``(B, 1, *spatial)`` (``(B, F)`` for feature vectors), 0 inside the region and 1 outside."""
        spatial = self.spatial_shape(shape)
        side = self.side(spatial)
        inside = None
        for i, n in enumerate(spatial):
            c = (centre[:, i] * n).floor().clamp_max(n - 1)  # uniform over the n positions
            lo = (c - side // 2).unsqueeze(-1)
            pos = torch.arange(n, device=centre.device, dtype=centre.dtype)
            axis = (pos >= lo) & (pos < lo + side)  # (B, n)
            view = [axis.shape[0]] + [1] * len(spatial)
            view[1 + i] = n
            axis = axis.reshape(view)
            inside = axis if inside is None else inside & axis
        assert inside is not None
        keep = (~inside).to(centre.dtype)
        return keep if len(shape) == 1 else keep.unsqueeze(1)

    # -- a noise site: prior (model) and guide, side by side ------------------------------------------------------
    def noise_model(self, layer, site, x):
        if isinstance(x, Moments):
            raise TypeError("cutout draws its region on the values it multiplies, which fast dropout does not draw")
        shape = layer.draw_shape(site)
        d = len(self.spatial_shape(shape))
        batch = x.new_zeros(()).expand(*x.shape[: x.dim() - len(shape)], d)  # the shape sample_local reads
        centre = layer.sample_local(site_param(site.name, "centre"), self._centre_law(d, layer.like), batch)
        if getattr(centre, "_bayesdrop_posterior_mean", False):  # test time: the whole input
            return None
        return self.mask(centre.reshape(-1, d), shape).reshape(*centre.shape[:-1], *self._mask_shape(shape))

    def _mask_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape if len(shape) == 1 else (1, *shape[1:])

    def noise_guide(self, layer, site, params, plate):
        d = len(self.spatial_shape(layer.draw_shape(site)))
        with plate:
            pyro.sample(layer.site(site_param(site.name, "centre")), self._centre_law(d, layer.like))

    def keep_prob(self, layer, params, site=None):
        r"""The probability that an input unit is kept: per feature of a feature vector (lower in the middle than
        near the borders, which fewer centres reach), per channel the mean over its positions."""
        site = layer.noise_sites[self.rate_site(layer, site)]
        shape = layer.draw_shape(site)
        spatial = self.spatial_shape(shape)
        side = self.side(spatial)
        cut = None
        for i, n in enumerate(spatial):
            pos = torch.arange(n, dtype=layer.like.dtype, device=layer.like.device)
            c = pos.unsqueeze(-1)  # the centres
            lo = c - side // 2
            covered = ((pos >= lo) & (pos < lo + side)).to(pos.dtype).mean(0)  # P(position is inside), (n,)
            view = [1] * len(spatial)
            view[i] = n
            covered = covered.reshape(view)
            cut = covered if cut is None else cut * covered
        assert cut is not None
        keep = 1.0 - cut
        if len(shape) == 1:
            return keep
        return keep.mean().expand(self.rate_units(layer, site.name)).clone()
