r"""``bd.nn.Embedding``: a Bayesian embedding whose noise drops whole word types (embedding dropout).

For sequence models over tokens.  The weight ``(num_embeddings, embedding_dim)`` is one weight site whose units are
its rows (the vocabulary, ``unit_dim=0``); the noise site multiplies each row, one draw per row and example, so that
a dropped word type is dropped at every position of the sequence where it occurs: Gal & Ghahramani's (2016, sec. 4)
embedding dropout, the input counterpart of variational RNN dropout,

.. math:: e_{b t} = (W \circ (z_b \mathbf 1^\top))_{x_{b t}} = z_{b, x_{b t}}\, W_{x_{b t}},\qquad
          z_b \sim \text{the method's noise over the vocabulary}.

With a fixed-rate method (``bernoulli``: inverted masks) its mean folds into the rows: the test-time embedding is the
plain ``torch.nn.Embedding`` of the posterior-mean weights.  The lookup is linear in ``W`` but a word repeated in a
sequence must see one draw of its row, so the local reparameterisation trick is off (``WeightSite.lrt``).

Example
-------
>>> emb = bd.nn.Embedding(10_000, 128, method="bernoulli", p=0.1)   # drop a tenth of the word types per sequence
>>> e = emb(tokens)                                                  # tokens: (B, T) int64 -> (B, T, 128)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

from ..checks import integer
from ..methods import Method
from .base import BayesianLayer, NoiseSite, grouped_rows

__all__ = ["Embedding"]


class Embedding(BayesianLayer):
    """Bayesian ``torch.nn.Embedding`` with embedding dropout: sites ``weight`` ``(V, D)`` (rows are the units) and
    ``noise`` over the rows (unit shape ``(V,)``, one draw of every row per example).

    Parameters
    ----------
    num_embeddings, embedding_dim : int
        As ``torch.nn.Embedding`` (no ``padding_idx``, ``max_norm`` or sparse gradients).
    method : str or Method
        Registered name or instance; ``**hyper`` are its hyper-parameters.
    """

    batched_weights = True

    def __init__(
        self, num_embeddings: int, embedding_dim: int, method: str | Method = "bernoulli", **hyper: Any
    ) -> None:
        num_embeddings, embedding_dim = (
            integer(num_embeddings, "num_embeddings"),
            integer(embedding_dim, "embedding_dim"),
        )
        ref = torch.nn.Embedding(num_embeddings, embedding_dim)
        noise = {"noise": NoiseSite("noise", (num_embeddings,), shape=(num_embeddings,), weight="weight")}
        super().__init__(method, {"weight": ref.weight}, noise, **hyper)
        caps = self.method.capabilities
        if caps.input_dependent or caps.inputs_only or caps.train_rule == "moment-matching":
            raise ValueError(
                f"{self.method.name!r} cannot act on an embedding: its noise multiplies the vocabulary's rows, which "
                "are parameters, not values of the inputs (use e.g. 'bernoulli' to drop word types, or put "
                f"{self.method.name!r} after the embedding)"
            )
        # the rows are the units; a word repeated in a sequence sees one draw of its row: no local reparameterisation
        self.weight_sites["weight"] = dataclasses.replace(self.weight_sites["weight"], unit_dim=0, lrt=False)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(tokens) or tokens.dtype not in (torch.int64, torch.int32) or tokens.dim() < 1:
            got = f"{tokens.dtype} {tuple(tokens.shape)}" if torch.is_tensor(tokens) else type(tokens).__name__
            raise TypeError(f"`tokens` must be an integer tensor (batch, ...), got {got}")
        tokens = self.fold_draws(tokens)
        batch = tokens.shape[0]
        z = self.multiplier("noise", tokens.new_zeros((), dtype=self.like.dtype).expand(batch, self.num_embeddings))
        w = self.weight()
        if w.dim() == 3:  # one weight per example (DropConnect's per-example masks) or per network (vectorised)
            _, m = grouped_rows(tokens, w)
            rows = torch.arange(batch, device=tokens.device).div(m, rounding_mode="floor")
            out = w[rows.reshape(-1, *([1] * (tokens.dim() - 1))), tokens]
        else:
            out = F.embedding(tokens, w)
        if z is None:
            return out
        z = z.reshape(-1, self.num_embeddings).expand(batch, self.num_embeddings)  # (B, V): every row per example
        return out * torch.gather(z, 1, tokens.reshape(batch, -1)).reshape(tokens.shape).unsqueeze(-1)

    def to_plain(self, values, bias=None) -> torch.nn.Module:
        """``torch.nn.Embedding`` with the noise's mean folded into the rows."""
        w = self.fold(values)["weight"]
        return torch.nn.Embedding.from_pretrained(w.detach().clone(), freeze=False)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, method={self.method!r}"
