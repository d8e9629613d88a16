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

import functools
import itertools
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, overload

import torch
from torch.utils.data import DataLoader

from ..data import as_tensors, loader_batches
from ..guides import DropoutGuide
from ..handlers import MomentMatching, default_generator, eval_mode
from ..likelihoods import Likelihood, Prediction
from ..nn import bayesian_layers
from ..posterior import PosteriorSampler, check_noise, device_of, draws_per_pass, forked, guide_setup, seeded
from .plain import cached_network, cached_plain, plain_draws, weight_scaling_network

__all__ = [
    "predict",
    "evaluate",
    "auto_parallel",
    "weight_scaling_network",
    "RULES",
    "AUTO_MEMORY_SHARE",
    "AUTO_CPU_NETWORKS",
    "AUTO_CPU_ROWS",
    "AUTO_CPU_GAIN",
]

RULES = ("mc", "weight-scaling", "moment-matching")
#: What ``parallel`` takes: ``"auto"``, vectorised (``True``), one pass per network (``False``), networks per pass
Parallel = bool | int | Literal["auto"]


@torch.no_grad()
def output_draws(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor,
    *,
    num_samples: int = 100,
    rule: str = "mc",
    parallel: Parallel = "auto",
    batch_size: int | None = None,
    noise: str = "per-example",
) -> torch.Tensor:
    """Network outputs ``(S, N, ...)`` for inputs ``x``: ``S = num_samples`` posterior draws (``"mc"``) or the one
    deterministic pass (``"weight-scaling"``, ``S = 1``), with ``model`` in eval mode; ``parallel``,
    ``batch_size`` as :func:`predict`'s, ``noise`` as :func:`evaluate`'s.

    ``guide`` is the :class:`~bayesdrop.DropoutGuide` built for ``model`` (else a ``ValueError``).  ``rule`` is one
    of :data:`RULES`, as :func:`predict` takes it: with ``"moment-matching"`` (every layer's method must support
    it) ``S = num_samples`` draws of DropConnect's Gaussian pre-activations, and a network whose output is Gaussian
    moments (fast dropout) gives its ``2d`` sigma points per draw (``d`` entries per example), from one draw where
    no layer draws anything under the rule (``S = 2d``)."""
    if not torch.is_tensor(x):
        raise TypeError(f"`x` must be a tensor of inputs (N, ...), got {type(x).__name__}")
    parts = _per_batch(
        model, guide, x, num_samples=num_samples, rule=rule, parallel=parallel, batch_size=batch_size, noise=noise
    )
    return torch.cat(parts, 1)


def _per_batch(
    model: Likelihood,
    guide: DropoutGuide,
    x: torch.Tensor | Iterable[torch.Tensor],
    *,
    num_samples: int,
    rule: str,
    parallel: Parallel,
    batch_size: int | None,
    reduce: Callable[[torch.Tensor], Any] | None = None,
    noise: str = "per-example",
    name: str = "x",
) -> list[Any]:
    """The output draws ``(S, B, ...)`` of every batch of ``batch_size`` inputs (all at once for ``None``), or of
    every batch of inputs ``x`` yields (a DataLoader's, :func:`loader_batches`), each batch moved to the model's
    device in turn and seen by the same S networks; ``reduce`` of each where given (:func:`predict` keeps only the
    batch's prediction, so that memory does not grow with S times N).  Tensor inputs are checked first, a
    DataLoader's batches as they come, before a pass reads them
    (:meth:`~bayesdrop.likelihoods.Likelihood.check_inputs`), a refusal naming the argument ``name``."""
    if rule not in RULES:
        raise ValueError(f"`rule` must be one of {RULES}, got {rule!r}")
    shared = check_noise(noise) and rule == "mc"  # the masks of one network shared by its inputs
    if isinstance(parallel, str):
        if parallel != "auto":
            raise ValueError(
                f"`parallel` must be 'auto', a bool or a positive int (networks per pass), got {parallel!r}"
            )
    elif isinstance(num_samples, int):
        draws_per_pass(parallel, num_samples)  # a bool or a positive int
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
    if torch.is_tensor(x):  # before any pass, the plain one of the weight-scaling rule included (not the model's)
        model.check_inputs(x, name)
    # the weight-scaling rule's network and device, kept while the parameters are unchanged (None: the guide's first
    # run comes first); built after guide.check_dtypes(), which the draws take here
    kept = cached_plain(model, guide) if rule == "weight-scaling" and guide._order is not None else None
    if kept is None and guide._order is not None:
        guide.check_dtypes()
    dev = device_of(model, guide) if kept is None else kept.device
    if torch.is_tensor(x):
        inputs = len(x)
        step = inputs if batch_size is None else batch_size
        if kept is not None and kept.network is not None and inputs:  # one plain forward pass per batch, no more
            net = kept.network
            if step >= inputs and x.device == dev:  # one batch on the network's device: no slice, no move
                outs = [net(x).unsqueeze(0)]
            else:
                outs = [net(x[i : i + step].to(dev)).unsqueeze(0) for i in range(0, inputs, step)]
            model.check_outputs(x, outs[0], vectorised=True)  # the model's own runs check theirs
            return outs if reduce is None else [reduce(out) for out in outs]
        batches: Iterable[torch.Tensor] = [x[i : i + step] for i in range(0, inputs, step)]
    elif batch_size is not None:
        raise ValueError("`batch_size`: the DataLoader sets the batches; leave batch_size None")
    else:
        batches = x
    sizes = [len(xb) for xb in batches] if isinstance(batches, list) else None  # rows per batch, where known
    if isinstance(batches, list):
        iterator, first = iter(batches[1:]), batches[0] if batches else None
    else:
        with torch.random.fork_rng(devices=[]):  # a DataLoader's iterator draws its seed: not the networks' stream
            iterator = iter(batches)
            first = next(iterator, None)
    if first is None:
        raise ValueError("no inputs to predict: the data is empty")
    if sizes is None:  # a DataLoader's batches, each checked before any pass reads it (a tensor's were above)
        model.check_inputs(first, name)
        iterator = _checked(model, iterator, name)
    batches = itertools.chain([first], iterator)
    # eval mode for the Pyro runs (a plain module is in eval mode already); eval() walks every module's setattr
    with eval_mode(model if kept is None or kept.network is None else None):
        if guide._order is None:  # the guide's first run, off the draws' random stream (as `seeded`'s setup)
            with forked(dev):
                guide(first[:2].to(dev))
            guide.check_dtypes()  # a model cast after its guide was built: named, not a matrix product's error
        draw: Callable[[torch.Tensor], torch.Tensor]
        rows = 0  # rows per pass of joined batches (0: the batches as they come)
        if rule == "weight-scaling":
            network = weight_scaling_network(model, guide) if kept is None else cached_network(kept, guide)

            def draw(xb: torch.Tensor) -> torch.Tensor:
                out = network(xb).unsqueeze(0)
                model.check_outputs(xb, out, vectorised=True)
                return out

        else:
            sampled: Any = guide
            if rule == "moment-matching":
                # one pass when no layer draws anything under the rule (fast dropout propagates moments; DropConnect
                # draws pre-activations)
                methods = [layer.method for _, layer in bayesian_layers(model)]
                if all(m.capabilities.train_rule == "moment-matching" or not m.stochastic for m in methods):
                    num_samples = 1
                sampled, parallel = MomentMatching()(guide), False
            auto = parallel == "auto"
            if isinstance(parallel, str):  # "auto"; shared masks: one pass per network, to_inference_data's
                parallel = False if shared else auto_parallel(model, guide, first.to(dev), num_samples)
            # one plain pass per network where its drawn weights are the whole network (each drawn from its own
            # stream, as the sampler's passes draw them: the same networks)
            plain = parallel is False and rule == "mc" and not shared and _plain_possible(model, guide, first.to(dev))
            if auto and dev.type == "cpu" and (plain or not isinstance(parallel, bool)):
                rows = AUTO_CPU_ROWS // (1 if plain else int(parallel))
            sampler = PosteriorSampler(
                model, sampled, num_samples, first[:1].to(dev), parallel=parallel, shared_noise=shared, lazy=plain
            )
            if sampler.draws_per_example:  # a batch's draws depend on its rows: batches as they come
                rows = 0
            # a prediction in one pass draws each network's weights as it runs it and drops them; over several, it
            # keeps them for the next
            one_pass = sizes is not None and (len(sizes) == 1 or 0 < sum(sizes) <= rows)
            runner = plain_draws(model, guide, sampler, keep=not one_pass) if plain else None
            draw = sampler.outputs if runner is None else runner.outputs

        # networks without draws per example: batches joined, a pass through as many rows as it holds
        groups = _joined(batches, rows) if rows else ([xb] for xb in batches)
        parts = (part for group in groups for part in _split(draw(_cat(group).to(dev)), group))
        return [part if reduce is None else reduce(part) for part in parts]


def _checked(model: Likelihood, batches: Iterable[torch.Tensor], name: str) -> Iterator[torch.Tensor]:
    """``batches`` as they come, each refused by :meth:`~bayesdrop.likelihoods.Likelihood.check_inputs` (naming
    ``name``) before any pass reads it: the plain network of the weight-scaling rule checks nothing itself."""
    for xb in batches:
        model.check_inputs(xb, name)
        yield xb


def _joined(batches: Iterable[torch.Tensor], rows: int) -> Iterator[list[torch.Tensor]]:
    """Consecutive ``batches`` in groups of at most ``rows`` rows (a larger batch alone)."""
    group: list[torch.Tensor] = []
    count = 0
    for xb in batches:
        if group and count + len(xb) > rows:
            yield group
            group, count = [], 0
        group.append(xb)
        count += len(xb)
    if group:
        yield group


def _split(out: torch.Tensor, group: list[torch.Tensor]) -> list[torch.Tensor] | tuple[torch.Tensor, ...]:
    """The outputs ``(S, rows, ...)`` of the joined batches of ``group``, one part per batch."""
    return [out] if len(group) == 1 else out.split([len(xb) for xb in group], 1)


def _cat(group: list[torch.Tensor]) -> torch.Tensor:
    """The batches of ``group`` as one (a lone batch as it is)."""
    return group[0] if len(group) == 1 else torch.cat(group)


AUTO_MEMORY_SHARE = 8  #: ``parallel="auto"`` on CUDA: a vectorised pass holds at most 1/8 of the device's memory
AUTO_CPU_NETWORKS = 10  #: ``parallel="auto"`` on a CPU: the networks of a vectorised pass it weighs
AUTO_CPU_ROWS = 4096  #: ... and at most this many rows (networks times inputs) in it, its activations in the cache
AUTO_CPU_GAIN = 0.8  #: ... taken where it costs under this share of as many passes of one network


def auto_parallel(model: Likelihood, guide: DropoutGuide, xb: torch.Tensor, num_samples: int) -> bool | int:
    """What ``parallel="auto"`` (the default of :func:`predict` and :func:`evaluate`) means for a batch.

    The draws are the same whatever it picks (each network draws from its own stream,
    :class:`~bayesdrop.handlers.NetworkStreams`), so the choice is one of speed alone.

    On a CPU, passes of :data:`AUTO_CPU_NETWORKS` networks where a pass of them, timed once on ``xb``, takes under
    :data:`AUTO_CPU_GAIN` of as many passes of one network (MLPs and LeNet-5 on one thread: about half,
    ``benchmarks/results/predict_speed.md``), and one pass per network otherwise (an LSTM's per-step activations
    made passes of 5 networks 1.5x slower).  Only for at least 2 such passes of networks (S >= 20) and at most
    :data:`AUTO_CPU_ROWS` rows per pass (networks times the batch's inputs), so that the activations stay in the
    cache; the timing, 12 network passes on a fork of the generators (the faster of two passes of one network
    against one pass of 10), runs once per guide and shapes.  Networks that draw nothing per example (Gaussian
    weights, :func:`~bayesdrop.infer.plain.plain_draws`) run one pass per network as plain modules, without Pyro's
    traces (what ``parallel=False`` runs for them), unless the vectorised pass of 10 is faster than 10 of those:
    on one thread, a vectorised pass of 10 took 1.4-1.5x as long as 10 plain passes on a digits MLP and 1.05x on
    40-1024-1024-10, where a pass of one network keeps its activations in the cache.

    Where the networks draw nothing per example
    (:attr:`~bayesdrop.posterior.PosteriorSampler.draws_per_example`: Gaussian weights), :func:`predict` on a CPU
    also joins consecutive batches, up to :data:`AUTO_CPU_ROWS` rows per pass (networks times inputs): a network's
    outputs on an input do not depend on the inputs beside it, and a pass reads the networks' drawn weights once
    for all of them (30 Gaussian networks of 40-1024-1024-10 on 1000 inputs: passes of 10 networks through 4
    batches of 100 took 0.85 of the time of passes through one batch at a time, ``parallel=10``; plain passes draw
    each network's weights once for all 1000; ``benchmarks/results/predict_speed.md``).

    On a CUDA device, vectorised passes of as many networks as fit in :data:`AUTO_MEMORY_SHARE`-th of its memory,
    from the peak memory of a pass of one network on ``xb``.  This resets CUDA's peak-memory statistics
    (``torch.cuda.reset_peak_memory_stats``).

    On either, after a vectorised pass of two networks on two inputs has run: a network whose layers refuse it, or
    that cannot be vectorised at all (a plate besides the data plate; fast dropout's moments), takes one pass per
    network.  The probes run on a fork of the generators, once per guide, batch shape and weight shapes: later
    predictions of the same shapes (an evaluation every epoch of ``bd.fit``) take what they found.

    Parameters
    ----------
    model, guide
        A likelihood and its guide, already run once (the guide knows its sites).
    xb : torch.Tensor
        A batch of inputs ``(B, ...)`` on the model's device, the largest the prediction will pass.
    num_samples : int
        Networks S to draw.

    Returns
    -------
    bool or int
        ``False`` (one pass per network) or the networks per vectorised pass, at most S.
    """
    dev = xb.device
    if dev.type == "cuda":
        budget = torch.cuda.get_device_properties(dev).total_memory // AUTO_MEMORY_SHARE
        return _networks_per_pass(model, guide, xb, num_samples, functools.partial(_cuda_peak_bytes, dev=dev), budget)
    return _cpu_networks_per_pass(model, guide, xb, num_samples)


# per guide: what the probes found, by rule, batch and weight shapes (bytes of a one-network pass, or the count)
_FOUND: weakref.WeakKeyDictionary[DropoutGuide, dict[tuple[Any, ...], int | None]] = weakref.WeakKeyDictionary()


def _found(guide: DropoutGuide, xb: torch.Tensor, rule: str, probe: Callable[[], int | None]) -> int | None:
    """``probe()``, once per guide, rule and batch and weight shapes."""
    key = (rule, tuple(xb.shape), xb.dtype, xb.device, tuple(p.shape for p in guide.parameters()))
    found = _FOUND.setdefault(guide, {})
    if key not in found:
        found[key] = probe()
    return found[key]


def _networks_per_pass(
    model: Likelihood,
    guide: DropoutGuide,
    xb: torch.Tensor,
    num_samples: int,
    peak_bytes: Callable[[Callable[[], Any]], int],
    budget: int,
) -> bool | int:
    """:func:`auto_parallel`'s count by memory: ``budget`` bytes over the bytes ``peak_bytes(run)`` measures for
    ``run``, a vectorised pass of one network on ``xb``; ``False`` where vectorising is not possible."""
    if num_samples == 1:
        return False

    def probe() -> int | None:
        if not _vectorisable(model, guide, xb):
            return None
        with forked(xb.device):
            return max(peak_bytes(lambda: PosteriorSampler(model, guide, 1, xb[:1], parallel=True).outputs(xb)), 1)

    per_network = _found(guide, xb, "bytes", probe)
    return False if per_network is None else max(1, min(num_samples, budget // per_network))


def _cpu_networks_per_pass(
    model: Likelihood,
    guide: DropoutGuide,
    xb: torch.Tensor,
    num_samples: int,
    seconds: Callable[[Callable[[], Any]], float] | None = None,
) -> bool | int:
    """:func:`auto_parallel`'s count by time: :data:`AUTO_CPU_NETWORKS` (fewer where the rows would pass
    :data:`AUTO_CPU_ROWS`) where ``seconds(run)`` of a pass of them is under :data:`AUTO_CPU_GAIN` times as many
    of a pass of one network, ``False`` otherwise.  ``seconds`` times a call (wall clock by default)."""
    count = min(AUTO_CPU_NETWORKS, AUTO_CPU_ROWS // len(xb))
    if count < 2 or num_samples < 2 * count:
        return False
    clock = _seconds if seconds is None else seconds

    def probe() -> int | None:
        if not _vectorisable(model, guide, xb):
            return None
        with forked(xb.device):
            if _plain_possible(model, guide, xb):  # one plain pass per network against a vectorised pass
                plain = clock(lambda: _plain_outputs(model, guide, count, xb))
                together = clock(lambda: PosteriorSampler(model, guide, count, xb[:1], parallel=True).outputs(xb))
                return count if together < plain else None
            # the faster of two passes of one network: a first pass slowed by allocations or a busy machine would
            # make passes of networks look faster than they are (the error this rule cannot afford: an LSTM's
            # passes of 10 networks took 1.5x as long), while a slowed pass of 10 only keeps one pass per network
            one = min(clock(lambda: PosteriorSampler(model, guide, 1, xb[:1]).outputs(xb)) for _ in range(2))
            together = clock(lambda: PosteriorSampler(model, guide, count, xb[:1], parallel=True).outputs(xb))
        return count if together < AUTO_CPU_GAIN * count * one else None

    found = _found(guide, xb, f"time {count}", probe)
    return False if found is None else found


def _plain_possible(model: Likelihood, guide: DropoutGuide, xb: torch.Tensor) -> bool:
    """Whether the networks can run as plain modules, one after another (:func:`~bayesdrop.infer.plain.plain_draws`),
    and give there what the sampler's passes give: the outputs of two networks on two inputs compared, from the same
    random state, to float round-off.  Once per guide and shapes, on a fork of the generators."""

    def probe() -> int | None:
        with forked(xb.device):
            generator = default_generator(xb.device)
            state = None if generator is None else generator.get_state()
            lazy = PosteriorSampler(model, guide, 2, xb[:1], lazy=True)
            runner = plain_draws(model, guide, lazy)
            if runner is None:
                return None
            if generator is not None and state is not None:
                generator.set_state(state)
            try:
                same = torch.allclose(
                    runner.outputs(xb[:2]),
                    PosteriorSampler(model, guide, 2, xb[:1]).outputs(xb[:2]),
                    rtol=1e-4,
                    atol=1e-6,
                )
            except ValueError:  # outputs that are not finite
                return None
        return 1 if same else None

    return _found(guide, xb, "plain", probe) is not None


def _plain_outputs(model: Likelihood, guide: DropoutGuide, count: int, xb: torch.Tensor) -> torch.Tensor:
    """The outputs of ``count`` networks, each run as a plain module on ``xb`` (what ``parallel=False`` runs where
    :func:`_plain_possible`)."""
    runner = plain_draws(model, guide, PosteriorSampler(model, guide, count, xb[:1], lazy=True))
    assert runner is not None  # _plain_possible
    return runner.outputs(xb)


def _seconds(run: Callable[[], Any]) -> float:
    """Wall-clock seconds of ``run()``."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@torch.no_grad()
def _vectorisable(model: Likelihood, guide: DropoutGuide, xb: torch.Tensor) -> bool:
    """Whether the networks can run in vectorised passes: the data plate alone, no moment propagation, and every
    layer taking a pass of two networks on two inputs.  On a fork of the generators."""
    if any(layer.method.capabilities.train_rule == "moment-matching" for _, layer in bayesian_layers(model)):
        return False
    with forked(xb.device):
        # two networks in the draws' plate, on two inputs: the sampler refuses a plate besides the data plate
        # (ValueError), and every layer must take the vectorised layout
        try:
            PosteriorSampler(model, guide, 2, xb[:1], parallel=True).run(xb[:2])
        except (RuntimeError, ValueError, TypeError):
            return False
    return True


def _cuda_peak_bytes(run: Callable[[], Any], dev: torch.device) -> int:
    """Bytes of CUDA memory ``run()`` allocates at its peak, over what was allocated before."""
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    before = torch.cuda.memory_allocated(dev)
    run()
    return torch.cuda.max_memory_allocated(dev) - before


def _merge(parts: list[Any]) -> Any:
    """One prediction from the predictions of consecutive batches: tensors concatenated along the inputs, tuples,
    lists and dicts of them entry by entry."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if torch.is_tensor(first):
        return torch.cat(parts, 0)
    if isinstance(first, (tuple, list)):
        return type(first)(_merge([p[i] for p in parts]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _merge([p[k] for p in parts]) for k in first}
    raise TypeError(
        f"the likelihood's predictive returned a {type(first).__name__}, which bd.predict cannot join over batches: "
        "return tensors (or tuples, lists or dicts of them), or predict without batch_size"
    )


@overload
def predict(
    model: Likelihood,
    guide: DropoutGuide,
    x: Any,
    *,
    num_samples: int = ...,
    rule: str = ...,
    parallel: Parallel = ...,
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
    parallel: Parallel = ...,
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
    parallel: Parallel = "auto",
    batch_size: int | None = None,
    return_samples: bool = False,
) -> Prediction | tuple[Prediction, torch.Tensor]:
    r"""Posterior predictive for inputs ``x``: ``model.predictive`` of the network outputs.

    Parameters
    ----------
    model, guide
        A trained likelihood and its guide.
    x : tensor, split, (x, y) tuple or DataLoader
        Inputs ``(N, ...)`` (targets, if given, are ignored); a DataLoader as :func:`~bayesdrop.fit` takes it
        (batches ``x``, ``(x, y)`` or dicts with key ``"x"``), predicted batch by batch.
    num_samples : int
        Draws T of the guide for ``rule="mc"``.
    rule : {"mc", "weight-scaling", "moment-matching"}
        Monte Carlo over the guide, the deterministic posterior-mean network (each method's test-time rule: the
        weight-scaling rule of dropout, probabilistic weighted pooling for ``maxpool-dropout``, the whole input for
        ``cutout``, ...), or (for methods whose
        :attr:`~bayesdrop.methods.Capabilities.rules` include it) the masks integrated out by their moments:
        ``dropconnect``'s Gaussian pre-activations averaged over ``num_samples`` draws, ``fast-dropout``'s one
        deterministic pass (its ``2d`` sigma points are the draws; ``num_samples`` is not used).
    parallel : {"auto"}, bool or int
        How the T networks of ``rule="mc"`` go through the inputs.  ``True``: drawn at once and run in one
        vectorised pass (as ``pyro.infer.Predictive(parallel=True)``; layers take one weight per draw, and the draws
        are folded into the batch: :class:`~bayesdrop.sites.Draws`); an int ``k``: vectorised passes of ``k``
        networks each, activations ``k`` times a batch's (and ``k`` copies of Gaussian weights); ``False``: one pass
        per network (for networks that draw nothing per example, Gaussian weights, a pass of the plain module of
        :func:`bayesdrop.compress.mean_module` at the network's drawn weights: :mod:`bayesdrop.infer.plain`).  The same draws in every case: each network draws from its own random stream
        (:class:`~bayesdrop.handlers.NetworkStreams`), so one seed gives the same prediction, to float round-off,
        however the networks are grouped.  ``"auto"`` (default, :func:`auto_parallel`): on a CPU, passes of 10
        networks where a timed pass of them is faster than 10 passes of one (MLPs and LeNet-5, about twice),
        one pass per network otherwise (an LSTM), and for networks that draw nothing per example (Gaussian
        weights) one plain pass per network unless a vectorised pass is faster, consecutive batches joined in
        passes of up to 4096 rows (networks times inputs), so that the drawn weights are read once for several
        batches; on a CUDA device, passes of as many networks as fit an
        eighth of its memory (measured on a pass of one network), 19-67x faster than one pass per network on an
        H100; one pass per network where a layer cannot take vectorised draws
        (``benchmarks/results/predict_speed.md``).
    batch_size : int or None
        Inputs per pass (all at once by default; a DataLoader's own batches): bounds the memory of a prediction
        (``"auto"`` on a CPU may pass up to 4096 rows, networks times inputs, at once).  Networks whose draws are
        per network (Gaussian weights, ``noise="shared"``) give the same prediction whatever the batch size; noise
        drawn per example (Bernoulli masks) is drawn pass by pass, so another batch size gives other Monte Carlo
        draws of the same predictive.
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
    if not isinstance(return_samples, bool):
        raise TypeError(f"`return_samples` must be True or False, got {return_samples!r}")
    inputs: Any = loader_batches(x, name="x") if isinstance(x, DataLoader) else as_tensors(x, name="x")[0]
    options: dict[str, Any] = {"num_samples": num_samples, "rule": rule, "parallel": parallel, "batch_size": batch_size}
    if not return_samples:  # one batch's draws at a time: memory O(S B), not O(S N)
        return _merge(_per_batch(model, guide, inputs, **options, reduce=lambda out: model.predictive(out)))
    out = torch.cat(_per_batch(model, guide, inputs, **options), 1)
    return model.predictive(out), out


@torch.no_grad()
def evaluate(
    model: Likelihood,
    guide: DropoutGuide,
    data: Any,
    *,
    num_samples: int = 20,
    rule: str = "mc",
    parallel: Parallel = "auto",
    batch_size: int | None = None,
    noise: str = "per-example",
    seed: int | None = None,
) -> dict[str, float]:
    """The likelihood's metrics of the posterior predictive on labelled ``data``: a split, an ``(x, y)`` tuple or a
    DataLoader of ``(x, y)`` pairs or dicts with keys ``"x"`` and ``"y"``, as :func:`~bayesdrop.fit` takes them
    (``num_samples``, 20 by default, ``rule``, ``parallel`` and ``batch_size`` as :func:`predict`'s).

    :class:`~bayesdrop.Classifier`: ``acc`` and ``nll``; :class:`~bayesdrop.Regressor`: ``rmse`` and ``nll``; any
    likelihood: ``nll``, the mean negative log predictive density of the mixture over the draws (the definitions
    of :mod:`bayesdrop.diagnostics.metrics`, which the report and ``compare`` use too).

    Parameters
    ----------
    model, guide
        A trained :class:`~bayesdrop.Likelihood` and the :class:`~bayesdrop.DropoutGuide` built for it; the
        draws run on their device, to which each batch of ``data`` is moved.
    noise : {"per-example", "shared"}
        For ``rule="mc"``: the masks (and other per-example sites) drawn afresh for every input, as in training, or
        once per network and shared by every input, so that each draw is one posterior sample of the weights (Gal &
        Ghahramani 2016; :func:`~bayesdrop.sites.shared_noise`).  The same predictive law for each input.  With
        ``"shared"``, ``parallel="auto"`` is one pass per network on every device (the networks of
        :func:`~bayesdrop.to_inference_data`).
    seed : int or None
        Seed of the draws, on a fork of torch's generators (the caller's random state is left alone); ``None``
        draws from the current state.  With ``noise="shared"`` and the same ``seed`` and ``num_samples``, the
        networks are those of :func:`~bayesdrop.to_inference_data`, so the metrics equal
        :func:`~bayesdrop.diagnostics.calibration`'s of its InferenceData.
    """
    dev = device_of(model, guide)
    options: dict[str, Any] = {"num_samples": num_samples, "rule": rule, "parallel": parallel, "noise": noise}
    if isinstance(data, DataLoader):  # batch by batch, the targets collected on the way
        targets: list[torch.Tensor] = []
        with seeded(seed, dev, None):
            out = torch.cat(
                _per_batch(model, guide, loader_batches(data, targets), batch_size=batch_size, name="data", **options),
                1,
            )
        y = torch.cat(targets)
        model.check_targets(y, name="data.y")
        return model.metrics(out, y.to(out.device))
    x, y_ = as_tensors(data, name="data")
    if y_ is None:
        raise ValueError("`data` must include targets y to be evaluated")
    model.check_targets(y_, name="data.y")
    with seeded(seed, dev, guide_setup(guide, x, dev) if isinstance(guide, DropoutGuide) else None):
        out = torch.cat(_per_batch(model, guide, x, batch_size=batch_size, name="data", **options), 1)
    return model.metrics(out, y_.to(out.device))
