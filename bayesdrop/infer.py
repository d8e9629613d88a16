r"""Training by stochastic variational inference, posterior predictive, checkpoints.

:func:`fit` maximises the ELBO

.. math::
    \mathcal L = \frac{N}{B} \sum_{n \in \text{batch}} \log p(y_n \mid x_n, \theta)
                 - \beta\, \mathrm{KL}\big(q(\theta) \,\|\, p(\theta)\big)

with Adam on the parameters of model and guide (``elbo.differentiable_loss``,
so Pyro's global parameter store is not involved), an optional linear warm-up
of :math:`\beta` from 0 to 1, the local reparameterisation trick for methods
that support it, and minibatches drawn on the training device.

Pyro validation follows Pyro's global setting (``pyro.enable_validation``, on by default) unless
``fit(validate=...)`` overrides it; switching it off saves about a third of a step on small networks.
:class:`MeanFieldELBO` evaluates each site's term only where the loss uses it.  Model and guide are unchanged, so
``pyro.infer.SVI`` trains the same pair.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, cast, overload

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions import Independent
from pyro.distributions.util import scale_and_mask
from pyro.infer import TraceMeanField_ELBO
from pyro.infer.util import is_validation_enabled, torch_item
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import kl_divergence
from tqdm.auto import tqdm

from .data import as_tensors, check_labels
from .guides import DropoutGuide
from .handlers import KLScale, LocalReparameterization
from .models import Likelihood
from .nn import bayesian_layers
from .posterior import PosteriorSampler, device_of

__all__ = [
    "CollapseWarning",
    "CHANCE_EPOCHS",
    "MeanFieldELBO",
    "fit",
    "FitResult",
    "predict",
    "resolve_device",
    "save_checkpoint",
    "load_checkpoint",
    "KLScale",
    "evaluate",
    "DEFAULT_LR",
    "resolve_kl_warmup",
    "param_groups",
]


DEFAULT_LR = 1e-2  # fit's Adam learning rate, decayed linearly to 0 by default; measurements in docs/defaults.md
CHANCE_EPOCHS = 5  # consecutive epochs at chance training accuracy after which fit warns of a collapse
CHANCE_MARGIN = 0.02  # "at chance": training accuracy at most the majority-class frequency plus this


class CollapseWarning(UserWarning):
    """:func:`fit` found a dead network: a layer with every weight pruned, or training accuracy at chance.

    The message names the layer or the epochs, the likely cause and the remedy; :attr:`FitResult.warnings` keeps
    it.  Filter it with ``warnings.simplefilter("ignore", bd.CollapseWarning)``, or make it an error with
    ``warnings.simplefilter("error", bd.CollapseWarning)``.
    """


def _scaled_sum(t: torch.Tensor, scale: Any, mask: Any) -> torch.Tensor:
    """``scale_and_mask(t, scale, mask).sum()``; without a mask, the sum is taken first (a scalar multiply)."""
    if mask is not None or torch.is_tensor(scale):
        return scale_and_mask(t, scale, mask).sum()
    total = t.sum() if t.dim() else t
    return total if scale == 1.0 else total * scale


class _Terms:
    """The ELBO's site terms as they come, added up at the end: ``sum(plus) - sum(minus)``.

    One ``stack`` and ``sum`` per list instead of a negation and an addition per site: with a dozen sites these
    0-d operations and their backward nodes are a measurable part of a small network's step.
    """

    def __init__(self) -> None:
        self.plus: list[torch.Tensor] = []  # log-likelihoods, Monte Carlo log p - log q
        self.minus: list[torch.Tensor] = []  # KL(q || p), entropy estimates log q

    def observed(self, site: dict) -> None:
        self.plus.append(_scaled_sum(site["fn"].log_prob(site["value"]), site["scale"], site["mask"]))

    def latent(self, name: str, site: dict, guide_site: dict) -> None:
        """Latent site ``name``: ``-KL(q || p)`` where registered, else ``log p - log q`` at the draw."""
        if is_validation_enabled() and not guide_site["fn"].has_rsample:
            raise NotImplementedError(f"MeanFieldELBO needs a reparameterised guide; site {name!r} is not")
        q, p = guide_site["fn"], site["fn"]
        scale, mask = guide_site["scale"], guide_site["mask"]
        if (
            mask is None
            and not torch.is_tensor(scale)
            and type(q) is Independent
            and type(p) is Independent
            and q.reinterpreted_batch_ndims == p.reinterpreted_batch_ndims
        ):  # the total is all the loss needs: skip Pyro's KL(Independent || Independent) and its sum_rightmost
            q, p = q.base_dist, p.base_dist
        try:
            kl = kl_divergence(q, p)
        except NotImplementedError:
            _check_drawn(name, guide_site)
            log_p = site["fn"].log_prob(site["value"])
            log_q = guide_site["fn"].log_prob(guide_site["value"])
            self.plus.append(_scaled_sum(log_p - log_q, scale, mask))
            return
        self.minus.append(_scaled_sum(kl, scale, mask))

    def auxiliary(self, name: str, guide_site: dict) -> None:
        """A guide site the model does not have: its entropy estimate ``-log q``."""
        _check_drawn(name, guide_site)
        log_q = guide_site["fn"].log_prob(guide_site["value"])
        self.minus.append(_scaled_sum(log_q, guide_site["scale"], guide_site["mask"]))

    def elbo(self) -> torch.Tensor | float:
        def total(ts: list[torch.Tensor]) -> torch.Tensor | float:
            if len(ts) < 2:
                return ts[0] if ts else 0.0
            same = all(t.dtype == ts[0].dtype for t in ts)
            return torch.stack(ts).sum() if same else sum(ts)  # mixed precision: promote as + does

        return total(self.plus) - total(self.minus)


class MeanFieldELBO(TraceMeanField_ELBO):
    """``TraceMeanField_ELBO`` that evaluates log densities only where the loss uses them.

    Pyro's ``TraceMeanField_ELBO`` computes ``log_prob`` of every site of both traces, although a latent site with
    a registered KL only contributes ``KL(q || p)``.  For dropout masks (one value per example and unit) and weights
    that is about half of a training step on small networks.  This subclass computes the same loss, site by site:
    the analytic KL where it is registered, the Monte Carlo term ``log p - log q`` (densities computed on demand)
    where it is not, and observed log-likelihoods.  It is the default of :func:`fit`; its value equals
    ``TraceMeanField_ELBO``'s (tested).

    The traces are Pyro's: the guide traced, the model replayed on it.  With Pyro's validation on, they are built
    by ``TraceMeanField_ELBO`` itself, so every check it makes (model and guide sites match, site shapes against
    the plates, the mean-field requirement) runs.  It also works with ``pyro.infer.SVI`` (``loss_and_grads``).
    """

    def _get_trace(self, model, guide, args, kwargs):
        if is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return prune_subsample_sites(model_trace), prune_subsample_sites(guide_trace)

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        terms = _Terms()
        for name, site in model_trace.nodes.items():
            if site["type"] != "sample":
                continue
            if site["is_observed"]:
                terms.observed(site)
            elif name not in guide_trace.nodes:
                raise ValueError(f"model site {name!r} is latent but the guide has no site of that name")
            else:
                terms.latent(name, site, guide_trace.nodes[name])
        for name, guide_site in guide_trace.nodes.items():  # auxiliary guide sites: their entropy
            if guide_site["type"] == "sample" and name not in model_trace.nodes:
                terms.auxiliary(name, guide_site)
        elbo = terms.elbo()
        return -torch_item(elbo), -elbo


def _check_drawn(name: str, site: dict) -> None:
    if getattr(site["value"], "_bayesdrop_lrt_placeholder", False):
        raise ValueError(
            f"site {name!r} has no analytic KL, so its Monte Carlo term needs a drawn value, but "
            "LocalReparameterization(draw_weights=False) skipped the draw; use draw_weights=True"
        )


def resolve_kl_warmup(model: torch.nn.Module, epochs: int, kl_warmup: int | str = "auto") -> int:
    """The KL warm-up in epochs: ``kl_warmup`` itself, or for ``"auto"`` the largest fraction of ``epochs`` that
    the methods of ``model``'s layers declare (:attr:`~bayesdrop.methods.TrainingDefaults.kl_warmup`), rounded."""
    if kl_warmup != "auto":
        return int(kl_warmup)
    fraction = max((layer.method.fit_defaults.kl_warmup for _, layer in bayesian_layers(model)), default=0.0)
    return round(fraction * epochs)


def param_groups(model: torch.nn.Module, guide: DropoutGuide, lr: float) -> list[dict[str, Any]]:
    """Adam parameter groups of ``model`` and ``guide``: one at ``lr``, and one per learning-rate multiplier that a
    layer's method declares for its variational parameters (:attr:`~bayesdrop.methods.TrainingDefaults.lr_scale`).

    Only trainable parameters, each once.  Use it to train with another optimiser:
    ``torch.optim.SGD(bd.infer.param_groups(model, guide, 0.1), lr=0.1)``.
    """
    scaled: dict[int, float] = {}
    for _, layer, params in guide.pairs():
        scales = layer.method.fit_defaults.lr_scale
        for name, p in params.named_parameters():
            if name in scales:
                scaled[id(p)] = scales[name]
    groups: dict[float, list[torch.nn.Parameter]] = {}
    seen: set[int] = set()
    for p in [*model.parameters(), *guide.parameters()]:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            groups.setdefault(scaled.get(id(p), 1.0), []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in sorted(groups.items())]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"`device` must be 'auto' or a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("`device` is 'cuda' but CUDA is not available")
    return dev


def _loader_or_tensors(data: Any, name: str) -> Any:
    if isinstance(data, torch.utils.data.DataLoader):
        return data
    return as_tensors(data, name=name)


def _batches(
    data: Any, batch_size: int, device: torch.device, gen: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, torch.utils.data.DataLoader):
        for xb, yb in data:
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        return
    x, y = data
    perm = torch.randperm(len(x), generator=gen).to(device)
    for i in range(0, len(x), batch_size):
        idx = perm[i : i + batch_size]
        yield x[idx], y[idx]


@dataclass
class FitResult:
    r"""What :func:`fit` returns.

    Attributes
    ----------
    history : dict of list
        Per epoch: ``elbo`` (mean loss per data point, i.e. -ELBO / N), ``nll``
        (mean negative log-likelihood per training point), ``kl`` (KL term of
        the ELBO, the estimate ``loss - N * nll``; for ``vbd`` it includes the
        constant :math:`n_\gamma \log(b - a)` of the ``gamma`` sites, see
        ``VariationalBayesianDropout.kl_constant``), ``beta``, ``lr``, ``train_acc`` and,
        when ``test`` data were given, ``test_acc`` and ``test_nll``
        (classification) or ``test_rmse`` (regression); ``seconds``.
    device : torch.device
    warnings : list of str
        The :class:`CollapseWarning` messages of this run (empty for a healthy one).
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    device: torch.device = torch.device("cpu")
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        s = self.history.get("seconds", [])
        return sum(s) / len(s) if s else float("nan")

    def to_json(self) -> str:
        return json.dumps({"history": self.history, "device": str(self.device), "warnings": self.warnings}, indent=1)


def fit(
    model: Likelihood,
    guide: DropoutGuide,
    data: Any,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = DEFAULT_LR,
    optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer] | None = None,
    loss: pyro.infer.ELBO | None = None,
    kl_warmup: int | str = "auto",
    lr_decay: str | None = "linear",
    lrt: bool = True,
    device: str | torch.device = "auto",
    seed: int | None = 0,
    test: Any = None,
    test_samples: int = 20,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    validate: bool | None = None,
    callback: Callable[[int, dict[str, list[float]]], bool | None] | None = None,
) -> FitResult:
    """Train ``model`` and ``guide`` by minibatch SVI.

    Parameters
    ----------
    model, guide
        A likelihood and its :class:`DropoutGuide`; moved to ``device`` in place.
    data
        Training data: a split with ``.x``/``.y``, an ``(x, y)`` tuple, or a
        ``torch.utils.data.DataLoader`` yielding ``(x, y)``.
    epochs, batch_size, lr
        Passes over the data, minibatch size, Adam learning rate (default 1e-2, decayed linearly: see
        ``lr_decay``).  Parameters whose method declares a multiplier
        (:attr:`~bayesdrop.methods.TrainingDefaults.lr_scale`) train at ``lr`` times it (:func:`param_groups`).
    optimizer
        A function of the parameter groups (:func:`param_groups`, each with its ``"lr"``) returning a torch
        optimiser, e.g. ``lambda groups: torch.optim.SGD(groups, momentum=0.9)``; default Adam.  ``lr_decay``
        scales each group's learning rate.
    loss
        A Pyro ELBO; default :class:`MeanFieldELBO` (``TraceMeanField_ELBO``:
        analytic KL where the method registers one, evaluated lazily).
    kl_warmup
        Epochs over which the KL weight grows linearly from 0 to 1 (0: none).  ``"auto"`` (default): the
        fraction of ``epochs`` that the model's methods declare as their training default
        (:class:`~bayesdrop.methods.TrainingDefaults`; :func:`resolve_kl_warmup`): all of them for the Gaussian
        family (``vd``, ``sparse-vd``, ``vbd``; the weight reaches 1 in the last epoch), none for fixed-rate and
        Generalized Dropout.
    lr_decay
        ``"linear"`` (default) decays the learning rate linearly over the epochs, ``lr * (1 - e / epochs)`` in
        epoch ``e = 0, 1, ...``, as Molchanov et al. (2017) trained sparse VD; ``None`` keeps ``lr``.  With a
        fixed budget of epochs the linear decay trained every registered method to a better test error than a
        constant rate on digits and MNIST-1D (``docs/defaults.md``).
    lrt
        Use the local reparameterisation trick for methods that support it;
        ``False`` samples weights.  With the default ``loss`` the guide then
        skips drawing the weight matrices that the trick ignores
        (:class:`~bayesdrop.nn.LocalReparameterization` with
        ``draw_weights=False``); with another ``loss`` it draws them.
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
    seed
        Seeds torch and Pyro and the minibatch order; ``None`` leaves them.
    test
        Optional held-out data, evaluated after every epoch by MC prediction.
    progress
        Show a progress bar with the ELBO and accuracy.
    checkpoint
        Path; the final model, guide, optimiser and history are saved there.
    validate
        Pyro's shape and support validation on every step: ``None`` (default) follows Pyro's global setting
        (``pyro.enable_validation``, on unless switched off), ``True`` / ``False`` override it for this run.
        Off, a step of a small network is about a third faster.
    callback
        ``callback(epoch, history)`` after each epoch (``epoch`` from 0,
        ``history`` as in :class:`FitResult`); returning ``True`` stops
        training early.  Its time is not in ``history["seconds"]``.

    Returns
    -------
    FitResult
    """
    for arg, v in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"`{arg}` must be a positive int, got {v!r}")
    if kl_warmup != "auto" and (not isinstance(kl_warmup, int) or isinstance(kl_warmup, bool) or kl_warmup < 0):
        raise ValueError(f"`kl_warmup` must be 'auto' or a non-negative int (epochs), got {kl_warmup!r}")
    if not lr > 0:
        raise ValueError(f"`lr` must be > 0, got {lr!r}")
    if lr_decay not in (None, "linear"):
        raise ValueError(f"`lr_decay` must be None or 'linear', got {lr_decay!r}")
    if not isinstance(guide, DropoutGuide) or guide.model is not model:
        raise ValueError("`guide` must be the DropoutGuide built for `model`")
    if optimizer is not None and not callable(optimizer):
        raise TypeError(f"`optimizer` must be callable as optimizer(param_groups), got {type(optimizer).__name__}")
    if validate is not None and not isinstance(validate, bool):
        raise TypeError(f"`validate` must be None (Pyro's setting), True or False, got {validate!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"`callback` must be callable as callback(epoch, history), got {type(callback).__name__}")
    dev = resolve_device(device)
    if seed is not None:
        pyro.set_rng_seed(seed)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    train = _loader_or_tensors(data, "data")
    if not isinstance(train, torch.utils.data.DataLoader):
        _check_targets(model, train[1], "data")
        train = (train[0].to(dev), train[1].to(dev))
        num = len(train[0])
    else:
        num = len(cast(Sized, train.dataset))
    if num != model.num_data:
        raise ValueError(f"`data` has {num} points but the model was built with num_data={model.num_data}")
    test_t = None
    if test is not None:
        test_t = as_tensors(test, name="test")
        _check_targets(model, test_t[1], "test")
    model.to(dev)
    guide.to(dev)
    elbo = loss if loss is not None else MeanFieldELBO(max_plate_nesting=1)
    captured: dict[str, torch.Tensor] = {}

    def traced_model(*args: Any) -> torch.Tensor:
        captured["out"] = out = model(*args)
        return out

    # The local reparameterisation handler acts on the guide's weight sites (the model replays the tagged values),
    # so it wraps the guide alone: the model's sample statements pass one messenger fewer.  MeanFieldELBO uses
    # analytic KLs and checks it, so the unused weight draw can be skipped.
    fit_guide = LocalReparameterization(draw_weights=not isinstance(elbo, MeanFieldELBO))(guide) if lrt else guide

    # Initialise the guide (records layer order and shapes) before collecting parameters.
    x0, y0 = next(_batches(train, batch_size, dev, torch.Generator().manual_seed(0)))
    guide(x0, y0)
    kl_warmup = resolve_kl_warmup(model, epochs, kl_warmup)
    groups = param_groups(model, guide, lr)
    params = [p for group in groups for p in group["params"]]
    optim = torch.optim.Adam(groups, lr=lr) if optimizer is None else optimizer(groups)
    if not isinstance(optim, torch.optim.Optimizer):
        raise TypeError(f"`optimizer` must return a torch.optim.Optimizer, got {type(optim).__name__}")
    base_lrs = [group["lr"] for group in optim.param_groups]
    history: dict[str, list[float]] = {k: [] for k in ("elbo", "nll", "kl", "beta", "lr", "train_acc", "seconds")}
    bar = tqdm(range(epochs), desc="fit", disable=not progress, leave=False)
    collapse: list[str] = []  # CollapseWarning messages
    steps, at_chance, chance = 0, 0, -1.0  # steps before this epoch; epochs at chance in a row; chance level
    labels: list[torch.Tensor] = []  # class counts per step of the first epoch
    for epoch in bar:
        beta = min(1.0, (epoch + 1) / kl_warmup) if kl_warmup else 1.0
        if lr_decay == "linear":
            for group, base in zip(optim.param_groups, base_lrs):
                group["lr"] = base * (1 - epoch / epochs)
        model.train(), guide.train()
        t0 = time.perf_counter()
        # Per step: loss, log-likelihood sum, correct predictions; kept on the device and read once per epoch.
        losses: list[torch.Tensor] = []
        sizes: list[int] = []
        log_liks: list[torch.Tensor] = []
        corrects: list[torch.Tensor] = []
        handlers: list[contextlib.AbstractContextManager] = []
        if validate is not None:
            handlers.append(pyro.validation_enabled(validate))
        if beta != 1.0:
            handlers.append(KLScale(beta))
        with contextlib.ExitStack() as stack:
            for h in handlers:
                stack.enter_context(h)
            for xb, yb in _batches(train, batch_size, dev, gen):
                optim.zero_grad(set_to_none=True)
                try:
                    # pyro.infer.ELBO declares no differentiable_loss; its Trace*_ELBO subclasses define it
                    loss_b = elbo.differentiable_loss(traced_model, fit_guide, xb, yb)  # type: ignore[attr-defined]
                except ValueError as err:  # Pyro's validation met a distribution with NaN or infinite parameters
                    if not _non_finite_parameter(err):
                        raise
                    bad = torch.stack([*losses, losses[-1].new_tensor(math.nan) if losses else torch.tensor(math.nan)])
                    raise FloatingPointError(_nan_message(bad, epoch, steps, lr, kl_warmup)) from err
                loss_b.backward()
                optim.step()
                with torch.no_grad():
                    out = captured["out"]
                    losses.append(loss_b.detach())
                    sizes.append(len(yb))
                    log_liks.append(model.log_likelihood(out, yb).sum())
                    if model.task == "classification":
                        corrects.append((out.argmax(-1) == yb).sum())
                        if epoch == 0:
                            labels.append(torch.bincount(yb, minlength=model.num_classes))
        count = sum(sizes)
        with torch.no_grad():
            step_losses = torch.stack(losses)
            loss_e = (step_losses @ torch.tensor(sizes, dtype=losses[0].dtype, device=dev)).item() / num
            nll = -torch.stack(log_liks).sum().item() / count
            correct = torch.stack(corrects).sum().item() if corrects else 0
            if epoch == 0 and labels:
                chance = (torch.stack(labels).sum(0).max().item() / count) + CHANCE_MARGIN
        if not math.isfinite(loss_e) or not _all_finite(params):
            raise FloatingPointError(_nan_message(step_losses, epoch, steps, lr, kl_warmup))
        steps += len(losses)
        train_acc = correct / count if model.task == "classification" else float("nan")
        history["elbo"].append(loss_e / num)
        history["nll"].append(nll)
        history["kl"].append(loss_e - num * nll)
        history["beta"].append(beta)
        history["lr"].append(lr * (1 - epoch / epochs) if lr_decay == "linear" else lr)
        history["train_acc"].append(train_acc)
        history["seconds"].append(time.perf_counter() - t0)
        postfix = {"elbo": f"{loss_e / num:.4f}"}
        if model.task == "classification":
            postfix["acc"] = f"{train_acc:.3f}"
            at_chance = at_chance + 1 if train_acc <= chance else 0
            if at_chance == CHANCE_EPOCHS:
                _warn(
                    collapse,
                    f"training accuracy has stayed at chance ({train_acc:.3f}, the majority class being "
                    f"{chance - CHANCE_MARGIN:.3f}) for {CHANCE_EPOCHS} epochs, up to epoch {epoch}: the network "
                    f"predicts nothing from its inputs; {_remedy(lr, kl_warmup, epochs)}",
                )
        if test_t is not None:
            for k, value in evaluate(model, guide, test_t, num_samples=test_samples).items():
                history.setdefault(f"test_{k}", []).append(value)
                postfix[f"test_{k}"] = f"{value:.3f}"
        bar.set_postfix(postfix)
        if callback is not None and callback(epoch, history):
            break
    for message in _pruned_layers(guide):
        _warn(collapse, f"{message}; {_remedy(lr, kl_warmup, epochs)}")
    result = FitResult(history=history, device=dev, warnings=collapse)
    if checkpoint is not None:
        save_checkpoint(checkpoint, model, guide, optimizer=optim, history=history)
    return result


def _warn(collapse: list[str], message: str) -> None:
    collapse.append(message)
    warnings.warn(message, CollapseWarning, stacklevel=3)


def _remedy(lr: float, kl_warmup: int, epochs: int) -> str:
    return (
        f"the KL term overwhelmed the likelihood or the steps were too large: lengthen `kl_warmup` (now {kl_warmup} "
        f"of {epochs} epochs; 'auto' takes the methods' defaults) or lower `lr` (now {lr:g})"
    )


def _pruned_layers(guide: DropoutGuide) -> list[str]:
    """One message per Bayesian layer whose method's pruning rule removes every weight."""
    out = []
    with torch.no_grad():
        for name, layer, params in guide.pairs():
            rule = layer.method.pruning_rule()
            if rule is None:
                continue
            kept = layer.kept_weights(layer.method.keep_masks(layer, params))
            total = sum(k.numel() for k in kept.values())
            if total and not any(bool(k.any()) for k in kept.values()):
                out.append(f"all {total} weights of layer {name!r} ({layer.method.name}) are pruned ({rule})")
    return out


def _non_finite_parameter(err: ValueError) -> bool:
    """Whether ``err`` is torch's validation error for a distribution parameter with NaN or infinite values."""
    msg = str(err)
    return "invalid values" in msg and ("nan" in msg or "inf" in msg)


def _all_finite(params: list[torch.nn.Parameter]) -> bool:
    with torch.no_grad():
        return bool(torch.stack([p.isfinite().all() for p in params]).all())


def _nan_message(step_losses: torch.Tensor, epoch: int, steps: int, lr: float, kl_warmup: int) -> str:
    """Where the run diverged: the first step with a non-finite loss, else the epoch whose steps broke a parameter."""
    bad = (~step_losses.isfinite()).nonzero()
    if len(bad):
        i = int(bad[0])
        what = f"the loss became {step_losses[i].item()} at step {i} of epoch {epoch} (step {steps + i} of the run)"
    else:
        what = f"a parameter became NaN or infinite in epoch {epoch} (steps {steps} to {steps + len(step_losses) - 1})"
    return f"{what}; training stopped. Lower `lr` (now {lr:g}) or lengthen `kl_warmup` (now {kl_warmup} epochs)"


def _check_targets(model: Likelihood, y: torch.Tensor | None, name: str) -> None:
    if y is None:
        raise ValueError(f"`{name}` must include targets y")
    if model.task == "classification":
        check_labels(y, model.num_classes, name=f"{name}.y")


_Prediction: TypeAlias = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # class probabilities, or (mean, std)


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = ...,
    rule: str = ...,
    return_samples: Literal[False] = ...,
) -> _Prediction: ...


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = ...,
    rule: str = ...,
    return_samples: Literal[True],
) -> tuple[_Prediction, torch.Tensor]: ...


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = ...,
    rule: str = ...,
    return_samples: bool = ...,
) -> _Prediction | tuple[_Prediction, torch.Tensor]: ...


@torch.no_grad()
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    rule: str = "mc",
    return_samples: bool = False,
) -> _Prediction | tuple[_Prediction, torch.Tensor]:
    r"""Posterior predictive for inputs ``x``.

    ``rule="mc"`` draws ``num_samples`` networks from the guide
    (:class:`~bayesdrop.posterior.PosteriorSampler`, one forward pass each) and averages:

    .. math:: p(y^* \mid x^*) \approx \frac1T \sum_{t=1}^T p(y^* \mid x^*, \theta_t),\quad \theta_t \sim q.

    ``rule="weight-scaling"`` runs one deterministic pass of the rescaled
    network (Goodfellow et al., Deep Learning, sec. 7.12).

    Returns
    -------
    torch.Tensor or tuple
        Classification: class probabilities ``(N, C)``.  Regression:
        ``(mean, std)`` each ``(N,)``; the std includes the observation noise
        (Gal & Ghahramani eq. 8-9).  With ``return_samples`` (MC only) the
        per-draw network outputs ``(T, N, ...)`` come as well.
    """
    if rule not in ("mc", "weight-scaling"):
        raise ValueError(f"`rule` must be 'mc' or 'weight-scaling', got {rule!r}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"`num_samples` must be a positive int, got {num_samples!r}")
    x = as_tensors(x, name="x")[0]
    x = x.to(device_of(model, guide))
    was_training = model.training
    model.eval()
    try:
        if guide._order is None:
            guide(x)
        if rule == "weight-scaling":
            out = guide.mean_network()(x).unsqueeze(0)
        else:
            out = PosteriorSampler(model, guide, num_samples, x[:1]).run(x)[0]
    finally:
        model.train(was_training)
    if model.task == "classification":
        probs = out.softmax(-1).mean(0)
        return (probs, out) if return_samples else probs
    means = out.squeeze(-1)
    mean = means.mean(0)
    std = (means.var(0, unbiased=False) + model.noise_scale**2).sqrt()
    return ((mean, std), out) if return_samples else (mean, std)


@torch.no_grad()
def evaluate(
    model: Likelihood, guide: DropoutGuide, data: Any, *, num_samples: int = 20, rule: str = "mc"
) -> dict[str, float]:
    """Accuracy and NLL (classification) or RMSE and NLL (regression) of the predictive on ``data``."""
    x, y = as_tensors(data, name="data")
    if y is None:
        raise ValueError("`data` must include targets y to be evaluated")
    if model.task == "classification":
        probs = cast(torch.Tensor, predict(model, guide, x, num_samples=num_samples, rule=rule)).cpu()
        y = y.cpu()
        nll = -probs.gather(-1, y[:, None]).clamp_min(1e-12).log().mean().item()
        return {"acc": (probs.argmax(-1) == y).float().mean().item(), "nll": nll}
    mean, std = (t.cpu() for t in predict(model, guide, x, num_samples=num_samples, rule=rule))
    y = y.cpu()
    nll = -torch.distributions.Normal(mean, std).log_prob(y).mean().item()
    return {"rmse": (mean - y).pow(2).mean().sqrt().item(), "nll": nll}


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    guide: torch.nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    history: dict | None = None,
    config: dict | None = None,
) -> None:
    """Save model, guide (and optimiser, history, config) state to ``path``.

    Only tensors and plain containers are written, so :func:`load_checkpoint`
    reads it with ``torch.load(..., weights_only=True)``.
    """
    state = {
        "format": "bayesdrop-checkpoint-1",
        "model": model.state_dict(),
        "guide": guide.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "history": history,
        "config": config,
    }
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike, model: torch.nn.Module, guide: torch.nn.Module, *, map_location: Any = "cpu"
) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` and ``guide``.

    Uses ``torch.load(..., weights_only=True)``.  Returns the whole state
    (``history``, ``config``, ``optimizer``) for the caller.

    Raises
    ------
    FileNotFoundError, ValueError
        If the file is missing or is not a bayesdrop checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint `path` {os.fspath(path)!r} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # corrupt file, pickle with code, ...
        raise ValueError(f"`path` {os.fspath(path)!r} is not a readable bayesdrop checkpoint: {err}") from err
    if not isinstance(state, dict) or state.get("format") != "bayesdrop-checkpoint-1":
        raise ValueError(f"`path` {os.fspath(path)!r} is not a bayesdrop checkpoint")
    model.load_state_dict(state["model"])
    guide.load_state_dict(state["guide"])
    return state
