"""The one posterior sampler behind :func:`bayesdrop.predict` and :func:`bayesdrop.to_inference_data`.

For people who need draws of the network itself: :class:`PosteriorSampler` draws S networks from the guide (their
global sites: weights, rates) and runs every batch of inputs through each of them, by Pyro's own ``trace`` and
``replay``.  The local sites (masks, multiplicative noise) are drawn afresh for every example, as in training, or,
with ``shared_noise=True``, once per network and shared by every input: then each draw is one sample of the weights
(Gal & Ghahramani 2016, :func:`~bayesdrop.sites.shared_noise`), the draws that PSIS-LOO and WAIC take.  Each draw is
an ordinary forward pass, so any module works in the network (pooling, batch normalisation, anything that expects
one batch dimension).

Example
-------
>>> sampler = bd.posterior.PosteriorSampler(model, guide, num_samples=100, example=x[:1])
>>> out, y_rep = sampler.run(x)  # (100, N, classes) network outputs and (100, N) replicated observations
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from .checks import seed as check_seed
from .data import all_finite
from .handlers import NetworkStreams, default_generator
from .moments import Moments
from .sites import shared_noise as _shared_noise

__all__ = [
    "PosteriorSampler",
    "device_of",
    "draws_per_pass",
    "plate_nesting",
    "seeded",
    "forked",
    "guide_setup",
    "check_noise",
    "NOISE",
    "NOT_FINITE",
]

NOISE = ("shared", "per-example")  #: the draw schemes of the local sites: once per network, or once per example


def device_of(model: torch.nn.Module, guide: torch.nn.Module) -> torch.device:
    """The device of the first parameter or buffer of ``guide`` or ``model`` (the CPU if they have none)."""
    for t in itertools.chain(guide.parameters(), model.parameters(), guide.buffers(), model.buffers()):
        return t.device
    return torch.device("cpu")


#: what a prediction raises where a drawn network's outputs are not all finite
NOT_FINITE = (
    "the drawn networks' outputs are not all finite (NaN or inf): check the inputs and the guide's parameters "
    "(bd.fit raises FloatingPointError where training diverges)"
)


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every entry of ``tensors`` is finite (integer tensors always are)."""
    return all(all_finite(t) for t in tensors if t.is_floating_point())


class PosteriorSampler:
    """S networks from the guide, shared by every input; per-example sites drawn afresh for each input, or once per
    network (``shared_noise``).

    Parameters
    ----------
    model, guide
        A likelihood (any model with ``data_plate(x)``) and its guide, called as ``model(x)`` and ``guide(x)``.
    num_samples : int
        Number S of networks.
    example : torch.Tensor
        A batch of inputs (one row is enough) on which the S networks are drawn.
    parallel : bool or int
        Draw the S networks at once, in a ``pyro.plate`` left of the data plate, and run each batch of inputs
        through all of them in one vectorised pass (activations ``S`` times a batch's: bound them with ``run``'s
        ``batch_size``), as ``pyro.infer.Predictive(parallel=True)``; for models whose only plate is the data plate
        (bayesdrop's likelihoods).  An int ``k``: vectorised passes of ``k`` networks each (the last one the
        remainder), activations ``k`` times a batch's.  ``False``: one pass per network.  The draws are the same
        in every case: network ``i`` draws every site from its own random stream, seeded from the current one
        (:class:`~bayesdrop.handlers.NetworkStreams`), whether it runs alone or in a pass of ``k``.
    shared_noise : bool
        Draw the per-example sites (masks, noise) of each network once, with its global sites, and share them by
        every input (:func:`~bayesdrop.sites.shared_noise`): each network is then one posterior sample of the
        weights, :math:`W_s = M \\operatorname{diag}(z_s)` (Gal & Ghahramani 2016), its output on an input
        independent of the batch and of ``batch_size``, and the log-likelihoods of one network over the data those
        of one posterior draw (what PSIS-LOO and WAIC assume).  ``False`` (default): a fresh draw per example, as in
        training.  Both give the same predictive law for each input.
    lazy : bool
        Draw the networks' traces when a pass first needs them (:meth:`draw`), not at construction; what
        :class:`~bayesdrop.infer.plain.PlainDraws` builds on, drawing each network's weights itself.
    """

    def __init__(
        self,
        model: Any,
        guide: Any,
        num_samples: int,
        example: torch.Tensor,
        *,
        parallel: bool | int = False,
        shared_noise: bool = False,
        lazy: bool = False,
    ):
        per_pass = draws_per_pass(parallel, num_samples)
        for name, flag in (("shared_noise", shared_noise), ("lazy", lazy)):
            if not isinstance(flag, bool):
                raise TypeError(f"`{name}` must be a bool, got {type(flag).__name__}")
        self.model, self.guide, self.num_samples = model, guide, num_samples
        self.parallel = parallel is not False  # True or an int: traces of networks in the draws' plate
        self.shared_noise = shared_noise
        self.dim = -2  # the draws' plate of a vectorised sampler, left of the data plate
        self.data_plate = model.data_plate(example).name
        self.networks: list[poutine.Trace] = []
        # networks per trace: traces of `per_pass` networks in a plate (the last the rest), or S traces of one
        self.sizes = [min(per_pass, num_samples - i) for i in range(0, num_samples, per_pass)]
        self.passes = list(zip(range(0, num_samples, per_pass), self.sizes))  # (first network, networks)
        # each network's own random stream, seeded from the current one: its draws do not depend on the passes
        self.generator = default_generator(example.device)
        self.states: list[torch.Tensor] = []
        if self.generator is not None:
            seed = int(torch.randint(2**62, ()))
            streams = torch.Generator(example.device)  # one generator seeded S times: a state per network
            self.states = [streams.manual_seed(seed + i).get_state() for i in range(num_samples)]
        traces = _example_traces(model, guide, example)
        self.example_trace = traces[0]  #: the guide's trace on the example: the laws of the networks' sites
        self.obs_site = self._obs(*traces)
        #: whether a network draws anything per example besides the observation: masks or noise per input (not
        #: under ``shared_noise``, which draws them once per network); without, a network's outputs on a batch do
        #: not depend on the rows it is passed with
        self.draws_per_example = not shared_noise and any(
            name != self.obs_site and self._per_example(site) for trace in traces for name, site in trace.nodes.items()
        )
        #: the model's sample sites that the guide does not draw, besides the observation (drawn from the prior)
        self.model_only = [
            name
            for name, site in traces[1].nodes.items()
            if site["type"] == "sample"
            and not site_is_subsample(site)
            and name not in traces[0].nodes
            and name != self.obs_site
        ]
        if self.parallel and _nesting(*traces) != 1:
            raise ValueError(
                "`parallel` draws the networks in a plate left of the data plate, for models with the "
                "data plate alone (bayesdrop's likelihoods); use parallel=False"
            )
        self.guide_local = False  # whether the guide has per-example sites, drawn at every pass
        self.checked = False  # whether a pass has run (under Pyro's validation, if on)
        self.example = example
        if not lazy:
            self.draw()

    def draw(self) -> None:
        """Draw the networks' traces (at construction, unless ``lazy``: :class:`~bayesdrop.infer.plain.PlainDraws`
        draws each network's weights from its stream as it runs it; the streams are untouched until then, so that
        the networks are the same either way)."""
        if self.networks:
            return
        # Pyro's validation (if on) has checked the guide's distributions on the example; the networks' traces
        # build the same ones, and checking their weight-sized arguments again was a fifth of a prediction with
        # Gaussian weights on 40-1024-1024-10 (benchmarks/results/predict_speed.md)
        with poutine.block(), _shared_noise(self.shared_noise), pyro.validation_enabled(False):
            # each trace k networks, their global sites (k, 1, ...) in a plate left of the data plate
            for start, size in self.passes:
                with self._pass(start, size):
                    self.networks.append(self._globals(poutine.trace(self.guide).get_trace(self.example)))

    @contextlib.contextmanager
    def _pass(self, start: int, size: int) -> Iterator[None]:
        """A pass of networks ``start`` to ``start + size``: in the draws' plate (none for a pass of one network, a
        plain one), each network drawing from its own stream (:class:`~bayesdrop.handlers.NetworkStreams`)."""
        with contextlib.ExitStack() as stack:
            if size > 1:
                stack.enter_context(self._draws(size))
            if self.generator is not None:
                stack.enter_context(NetworkStreams(self.generator, self.states, range(start, start + size), self.dim))
            yield

    def _globals(self, trace: poutine.Trace) -> poutine.Trace:
        """``trace`` without its local sites (those in the data plate): the sites of one (or S) networks, with their
        shared per-example sites under ``shared_noise``."""
        for name, site in list(trace.nodes.items()):
            per_example = self._per_example(site)
            self.guide_local |= per_example
            if per_example or site["type"] != "sample" or site_is_subsample(site):
                trace.remove_node(name)
        return trace

    def _per_example(self, site: Any) -> bool:
        """Whether ``site`` is a sample site in the data plate (one value per example)."""
        return (
            site["type"] == "sample"
            and not site_is_subsample(site)
            and any(f.name == self.data_plate for f in site.get("cond_indep_stack", ()))
        )

    def _draws(self, size: int) -> pyro.plate:
        """The plate of the ``size`` networks of one vectorised trace."""
        return pyro.plate("_bayesdrop_draws", size, dim=self.dim)

    @staticmethod
    def _unbatched(value: Any, batch: int, add_axis: bool = False) -> torch.Tensor:
        """A value of a vectorised run, ``(k, B, ...)`` (the draws' plate, the data plate, the event); with
        ``add_axis``, ``value`` is one network's ``(B, ...)`` (a pass of one network, run without the plate) and
        gets the draws' axis."""
        if isinstance(value, Moments):
            raise TypeError(
                "the Gaussian moments of fast dropout are one deterministic pass: sample them with parallel=False"
            )
        if add_axis:
            value = value.unsqueeze(0)
        if value.dim() < 2 or value.shape[1] != batch:
            raise ValueError(f"a vectorised run gave a value of shape {tuple(value.shape)} for a batch of {batch}")
        return value

    def _obs(self, guide_trace: poutine.Trace, model_trace: poutine.Trace) -> str:
        """The observation site: the model's one sample site that the guide does not have (``"obs"`` among
        several)."""
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

    def run(self, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs ``(S, N, ...)`` and draws of the observation site ``(S, N, ...)`` for inputs ``x``.

        A network whose output is the :class:`~bayesdrop.moments.Moments` of a Gaussian approximation (fast dropout
        under :class:`~bayesdrop.handlers.MomentMatching`) gives its :math:`2d` sigma points as equally weighted
        draws: ``S * 2d`` outputs, and ``S`` observation draws.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``(N, ...)``, on the device of the model and guide.
        batch_size : int or None
            Inputs per pass, a positive int: every network runs on consecutive slices of ``batch_size`` rows of
            ``x``, the results joined along the inputs, so that it bounds the activations of a pass (times ``k``
            in a vectorised pass of ``k`` networks).  ``None`` (default): all of ``x`` in one pass.
        """
        out, obs = self._run(x, batch_size, observations=True)
        assert obs is not None
        return out, obs

    def outputs(self, x: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        """The network outputs of :meth:`run` alone, the observation site left undrawn (for a prediction, which
        reads the outputs: a classifier's draw of the labels was 15 % of a pass of 10 MLPs on digits).  Draws
        of the networks' other sites are those of :meth:`run` for the first batch; later batches' per-example
        draws differ, since :meth:`run` draws the observations from the networks' streams too.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``(N, ...)``, on the device of the model and guide.
        batch_size : int or None
            Inputs per pass, as :meth:`run`'s: consecutive slices of ``batch_size`` rows of ``x`` through every
            network, the outputs joined along the inputs; ``None`` (default): all of ``x`` in one pass.
        """
        return self._run(x, batch_size, observations=False)[0]

    @torch.no_grad()
    def _run(
        self, x: torch.Tensor, batch_size: int | None, observations: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.draw()
        step = len(x) if batch_size is None else batch_size
        undrawn = contextlib.nullcontext() if observations else _Undrawn(self.obs_site, x.device)
        outs: list[list[torch.Tensor]] = [[] for _ in self.networks]
        obs: list[list[torch.Tensor]] = [[] for _ in self.networks]
        points = False
        finite = torch.ones((), dtype=torch.bool, device=x.device)
        with poutine.block(), _shared_noise(self.shared_noise):
            for i in range(0, len(x), step):
                xb = x[i : i + step]
                for s, (network, (start, size)) in enumerate(zip(self.networks, self.passes)):
                    plated = self.parallel and size > 1
                    # Pyro's validation (if on) checks the sampler's first pass; the others rebuild the same
                    # distributions around replayed values, and checking their weight-sized arguments again was a
                    # quarter of a pass with Gaussian weights (benchmarks/results/predict_speed.md); outputs are
                    # checked below
                    checked = contextlib.nullcontext() if not self.checked else pyro.validation_enabled(False)
                    self.checked = True
                    with self._pass(start, size), checked, undrawn:
                        # the guide runs again only to draw its local sites: the network's global ones are replayed
                        guide_trace = (
                            poutine.trace(poutine.replay(self.guide, trace=network)).get_trace(xb)
                            if self.guide_local
                            else network
                        )
                        try:
                            model_trace = poutine.trace(poutine.replay(self.model, trace=guide_trace)).get_trace(xb)
                        except RuntimeError as err:  # e.g. a Categorical of NaN probabilities, drawing y
                            if not _all_finite([xb, *self.model.parameters(), *self.guide.parameters()]):
                                raise ValueError(NOT_FINITE) from err
                            raise
                    out = model_trace.nodes["_RETURN"]["value"]
                    y_rep = model_trace.nodes[self.obs_site]["value"]
                    if self.parallel:  # (k, ..., B, ...) in Pyro's layout: the draws and the examples
                        out = self._unbatched(out, len(xb), add_axis=not plated)
                        y_rep = self._unbatched(y_rep, len(xb), add_axis=not plated) if observations else y_rep
                    if isinstance(out, Moments):  # fast dropout: the output's 2d sigma points, (B, 2d, ...)
                        points = True
                        out = out.sigma_points(out.dim() - 1).movedim(0, 1)
                    finite = finite & torch.isfinite(out).all()
                    outs[s].append(out)
                    obs[s].append(y_rep)
        if not bool(finite):  # one device sync for the whole run
            raise ValueError(NOT_FINITE)
        if self.parallel:  # traces of k networks each: (k, N, ...) joined along the draws, (S, N, ...)
            draws = torch.cat([torch.cat(o, 1) for o in outs])
            return draws, torch.cat([torch.cat(o, 1) for o in obs]) if observations else None
        draws = torch.stack([torch.cat(o) for o in outs])
        if points:  # (S, N, 2d, ...) -> (S * 2d, N, ...): each network's sigma points are draws
            draws = draws.movedim(2, 1).flatten(0, 1)
        return draws, torch.stack([torch.cat(o) for o in obs]) if observations else None


class _Undrawn(Messenger):
    """Leave site ``name`` undrawn: its value a placeholder of zeros of its shape (nothing reads it)."""

    def __init__(self, name: str, device: torch.device):
        super().__init__()
        self.name, self.zero = name, torch.zeros((), device=device)

    def _pyro_sample(self, msg: dict) -> None:
        if msg["name"] == self.name and msg["value"] is None and not msg["is_observed"]:
            msg["value"] = self.zero.expand(msg["fn"].batch_shape + msg["fn"].event_shape)


def draws_per_pass(parallel: Any, num_samples: int) -> int:
    """Networks per vectorised pass that ``parallel`` (bool or positive int) asks of ``num_samples`` draws: all of
    them for ``True``, one (a pass per network) for ``False``, ``min(k, num_samples)`` for an int ``k``."""
    if isinstance(parallel, bool):
        return num_samples if parallel else 1
    if not isinstance(parallel, int):
        raise TypeError(f"`parallel` must be a bool or a positive int (networks per pass), got {parallel!r}")
    if parallel < 1:
        raise ValueError(f"`parallel` must be a bool or a positive int (networks per pass), got {parallel!r}")
    return min(parallel, num_samples)


def plate_nesting(model: Any, guide: Any, example: torch.Tensor) -> int:
    """The number of plate dimensions of ``model`` and ``guide`` on ``example`` (as Pyro's ``Predictive`` finds it):
    1 for bayesdrop's likelihoods, whose one plate is the data plate."""
    return _nesting(*_example_traces(model, guide, example))


@torch.no_grad()
def _example_traces(model: Any, guide: Any, example: torch.Tensor) -> tuple[poutine.Trace, poutine.Trace]:
    """The traces of ``guide`` and of ``model`` replayed on it, on ``example``."""
    with poutine.block():
        guide_trace = poutine.trace(guide).get_trace(example)
        return guide_trace, poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(example)


def _nesting(guide_trace: poutine.Trace, model_trace: poutine.Trace) -> int:
    """:func:`plate_nesting` of the traces of guide and model."""
    dims = [
        f.dim
        for tr in (guide_trace, model_trace)
        for site in tr.nodes.values()
        for f in site.get("cond_indep_stack", ())
        if f.vectorized and f.dim is not None
    ]
    return -min(dims, default=0)


def check_noise(noise: Any) -> bool:
    """Whether ``noise`` (one of :data:`NOISE`) draws the local sites once per network; ``ValueError`` otherwise."""
    if noise not in NOISE:
        raise ValueError(f"`noise` must be one of {NOISE}, got {noise!r}")
    return noise == "shared"


@contextlib.contextmanager
def seeded(seed: int | None, device: torch.device, setup: Callable[[], Any] | None = None) -> Iterator[None]:
    """Run the block on a fork of torch's generators seeded with ``seed`` (the caller's random state is left as it
    was), or on the current state for ``None``: the draws of :func:`bayesdrop.evaluate` and
    :func:`bayesdrop.to_inference_data`, so that one seed gives the same networks through either.  ``setup`` (a
    guide's first run, which draws too) runs on the fork before it is seeded, so that the draws do not depend on
    whether the guide had run.

    Parameters
    ----------
    seed : int or None
        An int in ``[0, 2**32 - 1]`` (:func:`~bayesdrop.checks.seed`: else a ``TypeError`` or ``ValueError``),
        seeding the generators of the CPU and of ``device`` inside the fork, as ``torch.manual_seed`` seeds them
        (the other devices' are left alone); ``None``: no fork and no seed, the block (and ``setup``) draw from the
        current state.
    device : torch.device
        The device of the draws: the fork covers the CPU's generator and, for a CUDA or MPS device, that device's
        (:func:`forked`).
    setup : callable or None
        Run first, with no argument (:func:`guide_setup`); ``None`` (default): nothing.
    """
    if seed is not None:
        seed = check_seed(seed, "seed", "or None")
    if seed is None:
        if setup is not None:
            setup()
        yield
        return
    with forked(device):
        if setup is not None:
            setup()
        _seed_forked(seed, device)
        yield


def forked(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """A fork of torch's generators of the CPU and of ``device`` (a CUDA or MPS device's): what runs inside draws
    without moving the caller's random stream."""
    if device.type in ("cuda", "mps"):
        return torch.random.fork_rng(devices=[device], device_type=device.type)
    return torch.random.fork_rng(devices=[])


def _seed_forked(seed: int, device: torch.device) -> None:
    """Seed the generators :func:`forked` forks, those of the CPU and of ``device``, and no other: as
    ``torch.manual_seed(seed)`` seeds them, which would also reseed every other GPU's generator, outside the fork,
    for good."""
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)


def guide_setup(guide: Any, x: torch.Tensor, device: torch.device) -> Callable[[], Any] | None:
    """The first run of ``guide``, a :class:`~bayesdrop.guides.DropoutGuide` that has not run yet, on ``x[:2]``
    moved to ``device`` (the device of the model and guide), for :func:`seeded`: a function of no argument;
    ``None`` when ``guide`` has run (or is not a DropoutGuide).  The run is followed by the guide's
    :meth:`~bayesdrop.DropoutGuide.check_dtypes`."""
    if getattr(guide, "_order", True) is not None:
        return None

    def setup() -> None:
        guide(x[:2].to(device))
        guide.check_dtypes()  # a model cast after its guide was built: named, not a matrix product's error

    return setup
