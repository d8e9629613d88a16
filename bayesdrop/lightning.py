r"""Training on several processes, GPUs or machines: a Lightning module around a bayesdrop model and guide.

For users whose data or models outgrow :func:`bayesdrop.fit`'s single process: :class:`BayesdropModule` is a
``lightning.LightningModule`` that trains a likelihood and its :class:`~bayesdrop.DropoutGuide` with the loss,
schedules and handlers of ``bd.fit`` (``bayesdrop.infer.MeanFieldELBO``, KL warm-up by
:class:`~bayesdrop.handlers.KLScale`, the local reparameterisation trick, the methods' learning-rate multipliers, a
linear learning-rate warm-up and decay), so ``lightning.Trainer`` runs it on any of its strategies: ``"ddp"`` over
``devices=N`` GPUs or CPU processes and ``num_nodes=M`` machines.  Install with ``pip install bayesdrop[lightning]``.

The ELBO under data parallelism.  With :math:`W` processes, each takes a minibatch of :math:`B` examples of the
global batch :math:`B_g = W B` (Lightning's distributed sampler gives every example to one process per epoch), and
computes the usual minibatch loss, its log-likelihood scaled by :math:`N / B` (the data plate's subsampling) and
the whole KL once:

.. math::
    \mathcal L_r = -\frac{N}{B} \sum_{n \in \mathcal B_r} \mathbb E_q \log p(y_n \mid x_n, \theta)
                   + \mathrm{KL}(q \,\|\, p).

DDP averages the gradients over the processes, so the step follows

.. math::
    \frac1W \sum_{r=1}^W \nabla \mathcal L_r
    = -\frac{N}{B_g} \sum_{n \in \mathcal B_g} \nabla \mathbb E_q \log p(y_n \mid x_n, \theta)
      + \nabla \mathrm{KL}(q \,\|\, p),

the gradient of the single-process loss on the global batch: the likelihood scaled by :math:`N / B_g`, the KL once
per step and not once per process.  (The distributed sampler pads the last global batch with repeated examples so
that every process has :math:`B` of them, as for any DDP training.)

Checkpoints: Lightning's own, with the entries of a bayesdrop checkpoint added (``format``, ``model``, ``guide``,
``history``, ``config``), so :func:`bayesdrop.load_checkpoint` loads them into a model and guide in one process
(``torch.load(weights_only=True)``) to predict.

Example
-------
>>> import lightning
>>> from bayesdrop.lightning import BayesdropModule
>>> model = bd.Classifier(bd.models.mlp(64, [300, 100], 10), num_data=len(data.train))
>>> guide = bd.DropoutGuide(model)
>>> module = BayesdropModule(model, guide, example=data.train.x[:2])  # the schedule over the trainer's 50 epochs
>>> loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train.x, data.train.y), batch_size=64)
>>> lightning.Trainer(max_epochs=50, strategy="ddp", devices=2, accelerator="cpu").fit(module, loader)
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, cast

import torch

try:
    import lightning
except ImportError as err:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "bayesdrop.lightning needs Lightning: pip install 'bayesdrop[lightning]' (or pip install lightning)"
    ) from err

from .guides import DropoutGuide
from .handlers import KLScale, LocalReparameterization, MomentMatching
from .infer.checkpoint import FORMAT
from .infer.elbo import MeanFieldELBO
from .infer.train import (
    DEFAULT_LR,
    check_schedule,
    param_groups,
    resolve_kl_warmup,
    resolve_lr_warmup,
    warmup_factor,
)
from .likelihoods import Likelihood
from .moments import Moments
from .nn import bayesian_layers

__all__ = ["BayesdropModule"]


class BayesdropModule(lightning.LightningModule):
    """A bayesdrop model and guide as a ``LightningModule``: ``bd.fit``'s loss and schedules under any strategy.

    Parameters
    ----------
    model : Likelihood
        A likelihood (``bd.Classifier``, ``bd.Regressor``, ...) whose ``num_data`` is the training-set size N.
    guide : DropoutGuide
        Its guide.
    example : torch.Tensor, optional
        A few training inputs, on which the guide creates its parameters (required unless the guide has run).
    epochs : int, optional
        The epochs of the schedule: the KL warm-up and the learning-rate decay are fractions of them, as in
        ``bd.fit``.  Left out (None), the trainer's ``max_epochs``, read when the fit starts (as Lightning's own
        schedulers are set from the trainer).  Given, it wins: a trainer that stops earlier (a smaller
        ``max_epochs``, or ``max_steps``) runs the first part of the schedule, e.g. to continue the run later from
        its checkpoint; a trainer whose ``max_epochs`` exceeds it is refused when the fit starts (``ValueError``)
        under ``lr_decay="linear"``, whose rate is 0 from epoch ``epochs`` on, and is fine without the decay (the
        KL weight stays 1 after its warm-up).  A trainer without an epoch limit (``max_epochs=-1``) needs it.
    lr : float
        Adam's learning rate (``bd.fit``'s default), times each method's multipliers
        (:func:`~bayesdrop.infer.param_groups`).
    kl_warmup : int or "auto"
        Epochs of linear KL warm-up (``"auto"``: the methods' defaults, as ``bd.fit``).
    lr_decay : "linear" or None
        The learning rate decays linearly to 0 over ``epochs`` (``bd.fit``'s default), or stays.
    lr_warmup : int or "auto"
        Optimiser steps of linear learning-rate warm-up, as ``bd.fit`` (``"auto"``: a tenth of the trainer's steps
        over ``epochs`` for a network whose first layer sums at least 512 inputs, else none).
    lrt : bool
        The local reparameterisation trick for Gaussian weights (Kingma et al. 2015).
    """

    def __init__(
        self,
        model: Likelihood,
        guide: DropoutGuide,
        *,
        example: torch.Tensor | None = None,
        epochs: int | None = None,
        lr: float = DEFAULT_LR,
        kl_warmup: int | str = "auto",
        lr_decay: str | None = "linear",
        lr_warmup: int | str = "auto",
        lrt: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(model, Likelihood):
            raise TypeError(f"`model` must be a bd.Likelihood, got {type(model).__name__}")
        if not isinstance(guide, DropoutGuide) or guide.model is not model:
            raise ValueError("`guide` must be the DropoutGuide built for `model` (bd.DropoutGuide(model))")
        # epochs=None: the trainer's max_epochs, checked when the fit starts (_schedule_epochs)
        check_schedule(
            epochs=1 if epochs is None else epochs, lr=lr, lr_decay=lr_decay, kl_warmup=kl_warmup, lr_warmup=lr_warmup
        )
        if not isinstance(lrt, bool):
            raise TypeError(f"`lrt` must be a bool, got {type(lrt).__name__}")
        if guide._order is None:
            if example is None:
                raise ValueError("`example`: give a few training inputs, on which the guide creates its parameters")
            guide(example)
        self.model, self.guide = model, guide
        self.lr, self.lr_decay, self.lr_warmup, self.lrt = float(lr), lr_decay, lr_warmup, lrt
        self._epochs, self._kl_warmup = epochs, kl_warmup  # as given; resolved for each fit (configure_optimizers)
        # the schedule's epochs and KL warm-up (epochs), known once a fit starts when `epochs` is left out
        self.epochs: int | None = epochs
        self.kl_warmup: int | None = None if epochs is None else resolve_kl_warmup(model, epochs, kl_warmup)
        self.elbo = MeanFieldELBO()
        self.beta = 1.0
        self.history: dict[str, list[float]] = {}
        self._sums: dict[str, torch.Tensor] = {}
        self._lr: float | None = None  # the rate of the epoch's last step, recorded in training_step
        self._projected = guide.projected()  # the layers whose parameters are projected after each step

    # -- training ------------------------------------------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor, guide: Any = None) -> tuple[torch.Tensor, Any]:
        """This process's minibatch loss :math:`\\mathcal L_r` (the module docstring) and the network's output;
        ``guide``: a callable to run instead of ``self.guide`` (e.g. ``poutine.replay(self.guide, trace)``)."""
        guide = self.guide if guide is None else guide
        guide = LocalReparameterization(draw_weights=False)(guide) if self.lrt else guide
        if any(layer.method.capabilities.train_rule == "moment-matching" for _, layer in bayesian_layers(self.model)):
            guide = MomentMatching(training=True)(guide)  # fast dropout: its masks integrated out
        captured: dict[str, Any] = {}

        def traced_model(*args: Any) -> Any:
            captured["out"] = out = self.model(*args)
            return out

        with KLScale(self.beta) if self.beta != 1.0 else contextlib.nullcontext():
            loss = self.elbo.differentiable_loss(traced_model, guide, x, y)
        return loss, captured["out"]

    def on_train_epoch_start(self) -> None:
        self._projected = self.guide.projected()  # per epoch, as fit: a callback may have changed a method
        epoch = self.current_epoch
        self.beta = min(1.0, (epoch + 1) / self.kl_warmup) if self.kl_warmup else 1.0
        self._sums, self._lr = {}, None

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = (batch["x"], batch["y"]) if isinstance(batch, dict) else batch
        if y.dtype in (torch.int32, torch.int16, torch.uint8):
            y = y.long()
        loss, out = self.loss(x, y)
        # the rate of the step this loss takes (the scheduler sets the next step's after it), as bd.fit records it
        self._lr = float(self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]
        with torch.no_grad():
            # the loss's own term (the observed site's log density, as bd.fit takes it), else scored again
            ll = self.elbo.observed.get("obs")
            if ll is None and isinstance(out, Moments):  # fast dropout: the expected log-likelihood
                ll = self.model.log_likelihood(out.sigma_points(out.dim() - 1), y).mean(0).sum()
            elif ll is None:
                ll = self.model.log_likelihood(out, y).sum()
            if isinstance(out, Moments):  # metrics at the mean
                out = out.mean
            sums = {"loss": loss.detach() * len(y) / self.model.num_data, "nll": -ll, "count": ll.new_tensor(len(y))}
            sums.update({f"train_{k}": v.to(ll.dtype) for k, v in self.model.train_metrics(out, y).items()})
            for k, v in sums.items():
                self._sums[k] = self._sums.get(k, 0) + v
        self.log("loss", loss.detach() / self.model.num_data, prog_bar=True, sync_dist=False)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Projected gradient, as :func:`~bayesdrop.fit`: after the optimiser's step, each method's variational
        parameters back in their domain (:meth:`~bayesdrop.DropoutGuide.project`)."""
        self.guide.project(self._projected)

    def on_train_epoch_end(self) -> None:
        """The epoch's history, summed over the processes, as ``bd.fit``'s: ``loss`` (the negative ELBO per
        training example, ``bd.fit``'s ``elbo``: the minibatch losses weighted by their sizes, summed, over
        :math:`N^2`), ``nll`` and the likelihood's training metrics per example, ``beta``, and ``lr`` (the rate of
        the epoch's last step)."""
        if not self._sums:
            return
        names = sorted(self._sums)
        totals = torch.stack([torch.as_tensor(self._sums[k], dtype=torch.float64) for k in names])
        gathered = self.all_gather(totals.to(self.device))
        assert isinstance(gathered, torch.Tensor)
        totals = gathered.reshape(-1, len(names)).sum(0)
        values = dict(zip(names, totals.tolist()))
        count = values.pop("count")
        # each step's loss estimates the negative ELBO of the N examples; the sum over the processes' steps of
        # loss * B / N estimates it once per epoch (bd.fit's loss_e), and over N more it is per training example
        record = {"loss": values.pop("loss") / self.model.num_data, "nll": values.pop("nll") / count}
        record.update({k: v / count for k, v in values.items()})
        record.update({"beta": self.beta, "lr": self.lr if self._lr is None else self._lr})
        for k, v in record.items():
            self.history.setdefault(k, []).append(float(v))

    def configure_optimizers(self) -> Any:
        """Adam over :func:`~bayesdrop.infer.param_groups`, its rate set per step as ``bd.fit`` sets it: the
        warm-up's factor (:func:`~bayesdrop.infer.train.warmup_factor`) times the epoch's linear decay.

        The schedule's epochs are the module's ``epochs``, else the trainer's ``max_epochs`` (the class's
        docstring), and the KL warm-up ``"auto"`` is resolved over them.  The steps per epoch are the trainer's (its
        training batches over ``accumulate_grad_batches``).  A stream without a length has none:
        ``lr_warmup="auto"`` is then no warm-up, and the decay is set once per epoch.

        Raises
        ------
        ValueError
            If ``epochs`` was left out and the trainer has no epoch limit, or if the trainer's ``max_epochs``
            exceeds ``epochs`` under ``lr_decay="linear"``.
        """
        epochs = self.epochs = self._schedule_epochs()
        self.kl_warmup = resolve_kl_warmup(self.model, epochs, self._kl_warmup)
        optimizer = torch.optim.Adam(param_groups(self.model, self.guide, self.lr), lr=self.lr)
        _ = self.trainer.estimated_stepping_batches  # sets up the training data, and so num_training_batches
        batches = self.trainer.num_training_batches
        per_epoch = max(1, math.ceil(batches / self.trainer.accumulate_grad_batches)) if math.isfinite(batches) else 0
        warm = resolve_lr_warmup(self.model, epochs * per_epoch, self.lr_warmup)
        if self.lr_decay is None and warm == 0:
            return optimizer

        def decay(epoch: int) -> float:
            return max(0.0, 1 - epoch / epochs) if self.lr_decay is not None else 1.0

        if per_epoch == 0 and warm == 0:  # a stream without a length: the decay once per epoch
            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, decay)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

        def factor(step: int) -> float:  # a stream's epoch is the trainer's when the step's rate is set
            return warmup_factor(step, warm) * decay(step // per_epoch if per_epoch else self.current_epoch)

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _schedule_epochs(self) -> int:
        """The epochs of this fit's schedule: the module's ``epochs``, else the trainer's ``max_epochs``; a trainer
        that would run past a linear decay's end is refused (the class's docstring)."""
        limit = self.trainer.max_epochs  # an int once the fit started: -1 for no limit (or max_steps alone)
        bounded = isinstance(limit, int) and limit >= 1
        if self._epochs is None:
            if not bounded:
                raise ValueError(
                    f"`epochs`: the trainer has no epoch limit (max_epochs={limit!r}), over which the module's "
                    "schedule (KL warm-up, learning-rate decay) would run; give BayesdropModule(epochs=...)"
                )
            return int(cast(int, limit))
        if bounded and self.lr_decay is not None and cast(int, limit) > self._epochs:
            raise ValueError(
                f"`epochs`={self._epochs} but the trainer runs max_epochs={limit}: the learning rate decays linearly "
                f"to 0 over {self._epochs} epochs, so epochs {self._epochs + 1} to {limit} would train at rate 0; "
                "leave `epochs` out (the schedule then spans the trainer's max_epochs), give the same number to both, "
                "or lr_decay=None"
            )
        return self._epochs

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the entries of a bayesdrop checkpoint, which :func:`bayesdrop.load_checkpoint` reads."""
        checkpoint.update(
            {
                "format": FORMAT,
                "model": self.model.state_dict(),
                "guide": self.guide.state_dict(),
                "history": {k: list(v) for k, v in self.history.items()},
                "config": {"trainer": "lightning", "epochs": self.epochs, "lr": self.lr, "kl_warmup": self.kl_warmup},
                "training": None,
            }
        )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.history = {k: list(v) for k, v in (checkpoint.get("history") or {}).items()}
