"""Distributions that torch and Pyro lack, with their KL registrations.

``StraightThroughBernoulli``
    A Bernoulli gate whose sample carries the straight-through gradient of
    Srinivas & Babu (2016), section 2.5: ``d theta / d k = 1``.  It is
    reparameterised (``has_rsample = True``), so ``TraceMeanField_ELBO`` accepts
    it in a guide and uses the registered analytic KL instead of REINFORCE.

Further families (log-uniform prior, the Gaussian-uniform hierarchy of VBD)
register here as they land.
"""

from __future__ import annotations

import torch
from pyro.distributions import Bernoulli
from torch.distributions import kl_divergence, register_kl

__all__ = ["StraightThroughBernoulli"]


class StraightThroughBernoulli(Bernoulli):
    r"""Bernoulli(``probs``) whose samples pass gradients straight through to ``probs``.

    The sample is ``hard + (probs - probs.detach())``: exactly 0 or 1 in the
    forward pass, with :math:`\partial\theta / \partial k = 1` in the backward
    pass (Srinivas & Babu 2016, section 2.5).  The parenthesisation matters:
    ``hard + probs - probs.detach()`` is not exactly 0/1 in float32.

    Parameters
    ----------
    probs : torch.Tensor
        Keep probabilities in [0, 1]; any shape (the batch shape).
    """

    has_rsample = True

    def __init__(self, probs: torch.Tensor, validate_args: bool | None = None) -> None:
        super().__init__(probs=probs, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # keep the subclass (Pyro needs it)
        new = self._get_checked_instance(StraightThroughBernoulli, _instance)
        return super().expand(batch_shape, _instance=new)

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        probs = self.probs.expand(self._extended_shape(sample_shape))
        with torch.no_grad():
            hard = torch.bernoulli(probs)
        return hard + (probs - probs.detach())

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        with torch.no_grad():
            return torch.bernoulli(self.probs.expand(self._extended_shape(sample_shape)))


@register_kl(StraightThroughBernoulli, StraightThroughBernoulli)
def _kl_st_bernoulli(q: StraightThroughBernoulli, p: StraightThroughBernoulli) -> torch.Tensor:
    # The plain Bernoulli KL.  When guide and prior share ``probs`` (fixed-rate
    # dropout, Generalized Dropout's q(theta) = p(theta | k)) it is exactly 0 in
    # value and gradient.
    return kl_divergence(Bernoulli(probs=q.probs), Bernoulli(probs=p.probs))
