"""Training time and accuracy of bayesdrop against other Bayesian deep learning libraries, each beside its floor.

For users choosing a library for Bayesian neural networks in PyTorch, and for maintainers checking the targets of
the speed issue (bd at or ahead of every Pyro-based peer; within 5 % of the fastest thin PyTorch library on the wide
networks): ``benchmarks/peers.py`` is the command line that writes ``benchmarks/results/peers.md``;
``tests/test_peers_benchmark.py`` checks the floors, the statistic and the record.

Floors: hand-written plain PyTorch loops, the least work each estimator needs.

- ``dropout``: ``nn.Dropout(0.5)`` before each ``nn.Linear`` (MC dropout, Gal & Ghahramani 2016), cross-entropy * N / B
  plus 0.5 sum w^2 (the N(0, 1) prior); :func:`~bayesdrop.experiments.speed.plain_epoch`.
- ``lrt``: Gaussian weights trained by the local reparameterisation trick (Kingma et al. 2015) with the sparse-VD KL
  approximation (Molchanov et al. 2017); :class:`~bayesdrop.experiments.speed.PlainLRTNet`.
- ``weights``: Gaussian weights N(mu, exp(log_sigma)^2), one weight draw per minibatch (Bayes by Backprop, Blundell
  et al. 2015), point biases, the KL to N(0, 1) in closed form; :class:`PlainWeightSamplingNet`.
- ``weights-svd``: the same estimator with sparse VD's parameters and KL approximation, the floor of ``lrt``'s
  network with its weights drawn; :class:`PlainSparseWeightNet`.

Contenders, each against the floor of its estimator: bd ``bernoulli`` and torch-uncertainty's MC-dropout wrapper
against ``dropout``; bd ``sparse-vd`` and bayesian-torch's Flipout layers (Wen et al. 2018) against ``lrt``;
bayesian-torch's reparameterisation layers, torchbnn, blitz, TyXe (Ritter & Karaletsos 2022) and Pyro's
``AutoNormal`` on a ``PyroModule`` MLP against ``weights``; bd ``sparse-vd`` with ``lrt=False`` against
``weights-svd``.  bd runs ``bd.fit`` with its
defaults except ``epochs``, ``batch_size``, ``progress=False`` and the callback; each peer runs the recipe of its own
documentation (:data:`CONTENDERS` holds each one's, and the record quotes them); floors and peers train with Adam at
``--lr``.  Pyro's validation is off for the whole run (for bd and the two Pyro-based peers).

Configurations (:func:`configs`): digits (scikit-learn's 8x8 images, 1437 train / 360 test) on a 64-300-100-10 MLP,
batch 128; a wide 784-1024-1024-10 MLP on synthetic data (:func:`~bayesdrop.experiments.speed.synthetic`: 2000
training and 1000 test inputs x ~ N(0, I_784), labels argmax of x W for a fixed Gaussian 784 x 10 matrix W, so
learnable by a linear map), batch 128 and 512.  The synthetic training set is small so that the whole run fits in
about a quarter of an hour on the loaded 2-core development machine (one epoch of the weight-sampling floor at batch
128: about 1.8 s of one core).

Protocol: for each contender and configuration, the contender and a fresh floor are built from the same seed and
trained side by side, one floor epoch right after each of the contender's epochs (for ``bd.fit`` and TyXe's
``fit``, in their per-epoch callback), so every contender epoch has a floor epoch next to it in time: one round.
Times are CPU seconds of the timed thread (``time.thread_time``, one torch thread); a contender's epoch is the
time from the end of one round to its callback, so it includes its library's per-epoch bookkeeping.  Reported: the
median and interquartile range over rounds 2.. (the first warms up and holds the set-up) of the per-round ratio
contender / floor, and the median seconds per epoch of each.  Accuracy at equal budget: after the rounds (``--epochs``
on digits, ``--rounds`` on the synthetic data), test accuracy of the class probabilities averaged over ``--draws``
stochastic forward passes, for every contender and floor (all are stochastic at test time).

Peers are installed beside torch with ``pip install --no-deps bayesian-torch torchbnn blitz-bayesian-pytorch
torch-uncertainty tyxe einops``.  A peer that does not import is listed in the record with the reason and not
measured (:func:`load_peer`).  torch-uncertainty's package imports torchvision, which does not install beside this
torch; its wrapper's own file (``torch_uncertainty/methods/mc_dropout.py``, which needs ``einops``) is then loaded
alone, and the record says so.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/peers.py [--epochs 30] [--rounds 6] [--draws 20] [--lr 1e-3] [--seed 0]
        [--only KEY ...] [--quick] [--out benchmarks/results/peers.md]

Example
-------
>>> from bayesdrop.experiments import peers
>>> cfg = peers.configs(quick=True)[0]
>>> row = peers.measure(peers.contender("bd-bernoulli"), cfg, epochs=3, draws=2)  # doctest: +SKIP
>>> row["ratio"], row["acc"]  # median bd.fit / nn.Dropout loop per round, MC test accuracy  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal, init_to_value
from pyro.nn import PyroModule, PyroSample

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results
from .speed import PlainLRTNet, plain_dropout_net, plain_epoch, plain_lrt_epoch, synthetic

__all__ = [
    "CONTENDERS",
    "FLOORS",
    "PEERS",
    "Config",
    "Contender",
    "Peer",
    "PlainWeightSamplingNet",
    "PlainSparseWeightNet",
    "configs",
    "contender",
    "load_peer",
    "main",
    "measure",
    "plain_weight_epoch",
    "ratio_stats",
]

DROPOUT_P = 0.5
INIT_SCALE = 1e-2
_PyroAdam: Callable[[dict[str, float]], Any] = pyro.optim.Adam  # type: ignore[attr-defined]  # made at import  # initial posterior standard deviation of the weight-sampling floor and the Pyro-based peers


# -- configurations and data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """One column of the table: a data set, an MLP's widths and a batch size.

    Parameters
    ----------
    data
        ``"digits"`` or ``"synthetic"`` (:func:`~bayesdrop.experiments.speed.synthetic`, with ``n_train`` /
        ``n_test`` examples).
    widths
        Input, hidden and output widths.
    batch
        Examples per step.
    n_train, n_test
        Sizes of the synthetic data (not used for digits).
    """

    data: str
    widths: tuple[int, ...]
    batch: int
    n_train: int = 2000
    n_test: int = 1000

    @property
    def arch(self) -> str:
        """The widths joined by dashes, e.g. ``"64-300-100-10"``."""
        return "-".join(map(str, self.widths))

    @property
    def label(self) -> str:
        """The column heading: data, network and batch."""
        return f"{self.data} {self.arch} b{self.batch}"


def configs(quick: bool = False) -> list[Config]:
    """The three configurations of the record, or tiny ones for tests (``quick``)."""
    if quick:
        return [
            Config("digits", (64, 16, 10), 128),
            *(Config("synthetic", (16, 32, 32, 10), b, 128, 64) for b in (32, 64)),
        ]
    return [
        Config("digits", (64, 300, 100, 10), 128),
        *(Config("synthetic", (784, 1024, 1024, 10), b) for b in (128, 512)),
    ]


@dataclass
class Data:
    """The training and test tensors of a configuration."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@functools.cache
def _load(config: Config) -> Data:
    if config.data == "digits":
        ds = bd.data.load("digits")
        return Data(ds.train.x, ds.train.y, ds.test.x, ds.test.y)
    return Data(*synthetic(config.n_train, config.n_test, config.widths[0], config.widths[-1]))


@dataclass
class Setup:
    """What a contender or floor is built from: the configuration, its data, the learning rate of the plain loops and
    peers, and the imported peers (``{name: objects}``)."""

    config: Config
    data: Data
    lr: float
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)


def _batches(n: int, batch: int) -> Iterator[torch.Tensor]:
    return iter(torch.randperm(n).split(batch))


# -- trainers: one interface for floors and contenders --------------------------------------------------------------


class Trainer:
    """A network being trained: ``run(epochs, after_epoch)`` trains, calling ``after_epoch(epoch)`` after each epoch;
    ``predict_proba(x, draws)`` averages the class probabilities of ``draws`` stochastic passes.

    Loop-based subclasses implement :meth:`epoch` and :meth:`logits` (one stochastic pass).
    """

    def run(self, epochs: int, after_epoch: Callable[[int], None]) -> None:
        """Train ``epochs`` epochs, calling ``after_epoch(epoch)`` after each."""
        for e in range(epochs):
            self.epoch()
            after_epoch(e)

    def epoch(self) -> None:
        """One training epoch."""
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """One stochastic forward pass."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        """Class probabilities ``(N, C)``: the mean of ``draws`` passes' softmax."""
        return torch.stack([self.logits(x).softmax(-1) for _ in range(draws)]).mean(0)


class PlainWeightSamplingNet(torch.nn.Module):
    """MLP with Gaussian weights N(mu, sigma^2), one weight draw per forward pass (Blundell et al. 2015).

    The weight-sampling floor: sigma = exp(log_sigma) (cheaper than a softplus of rho, in the draw and in the KL),
    point biases, the prior N(0, ``prior_scale``^2) on each weight and its KL in closed form (:meth:`kl`).

    Parameters
    ----------
    widths
        Input, hidden and output widths.
    init_scale
        The initial posterior standard deviation of every weight; the means start as ``nn.Linear``'s weights.
    prior_scale
        The prior's standard deviation.
    """

    def __init__(self, widths: Sequence[int], init_scale: float = INIT_SCALE, prior_scale: float = 1.0):
        super().__init__()
        self.prior_scale = prior_scale
        self.mu = torch.nn.ParameterList()
        self.log_sigma = torch.nn.ParameterList()
        self.bias = torch.nn.ParameterList()
        for a, b in zip(widths[:-1], widths[1:]):
            ref = torch.nn.Linear(a, b)
            self.mu.append(torch.nn.Parameter(ref.weight.detach().clone()))
            self.log_sigma.append(torch.nn.Parameter(torch.full_like(ref.weight, math.log(init_scale))))
            self.bias.append(torch.nn.Parameter(ref.bias.detach().clone()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` under one draw of every weight matrix."""
        n = len(self.mu)
        for i, (mu, log_sigma, b) in enumerate(zip(self.mu, self.log_sigma, self.bias)):
            x = F.linear(x, mu + log_sigma.exp() * torch.randn_like(mu), b)
            if i < n - 1:
                x = torch.relu(x)
        return x

    def kl(self) -> torch.Tensor:
        """KL(q || p) summed over the weights: log s_p - log sigma + (sigma^2 + mu^2) / (2 s_p^2) - 1/2 for each."""
        total = self.mu[0].new_zeros(())
        s_p2 = self.prior_scale**2
        for mu, log_sigma in zip(self.mu, self.log_sigma):
            kl = math.log(self.prior_scale) - log_sigma + ((2 * log_sigma).exp() + mu * mu) / (2 * s_p2) - 0.5
            total = total + kl.sum()
        return total


class PlainSparseWeightNet(PlainLRTNet):
    """MLP with Gaussian weights N(theta, sigma^2) in sparse VD's parameterisation, one weight draw per forward pass.

    The weight-sampling floor of the sparse-VD KL (Molchanov et al. 2017; :meth:`PlainLRTNet.kl`): the parameters,
    initialisation and KL of :class:`~bayesdrop.experiments.speed.PlainLRTNet`, with the weights drawn, ``W = theta +
    exp(log_sigma2 / 2) eps``, instead of the pre-activations: what ``bd.fit(..., lrt=False)`` computes for
    ``sparse-vd``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` under one draw of every weight matrix."""
        n = len(self.theta)
        for i, (th, ls2, b) in enumerate(zip(self.theta, self.log_sigma2, self.bias)):
            x = F.linear(x, th + (0.5 * ls2).exp() * torch.randn_like(th), b)
            if i < n - 1:
                x = torch.relu(x)
        return x


def plain_weight_epoch(
    net: PlainWeightSamplingNet, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int
) -> None:
    """One epoch of the weight-sampling floor: cross-entropy * N / B plus ``net.kl()`` per step."""
    n = len(x)
    for idx in _batches(n, batch_size):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x[idx]), y[idx], reduction="sum") * (n / len(idx)) + net.kl()
        loss.backward()
        opt.step()


class _ModuleLoop(Trainer):
    """A module trained by Adam with ``step_loss(module, xb, yb)`` per minibatch; ``logits`` in training mode."""

    def __init__(self, setup: Setup, module: torch.nn.Module, step_loss: Callable[..., torch.Tensor]):
        self.setup, self.module, self.step_loss = setup, module, step_loss
        self.opt = torch.optim.Adam(module.parameters(), lr=setup.lr)

    def epoch(self) -> None:
        d, opt = self.setup.data, self.opt
        self.module.train()
        for idx in _batches(len(d.x), self.setup.config.batch):
            opt.zero_grad(set_to_none=True)
            self.step_loss(self.module, d.x[idx], d.y[idx]).backward()
            opt.step()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        self.module.train()  # stochastic at test time: MC dropout, sampled weights
        out = self.module(x)
        return out[0] if isinstance(out, tuple) else out


class _DropoutFloor(_ModuleLoop):
    def __init__(self, setup: Setup):
        w = setup.config.widths
        super().__init__(setup, plain_dropout_net(w[0], list(w[1:-1]), w[-1], DROPOUT_P), _no_loss)

    def epoch(self) -> None:
        d = self.setup.data
        self.module.train()
        plain_epoch(self.module, self.opt, d.x, d.y, self.setup.config.batch, 0.5)  # 0.5 w^2: the N(0, 1) prior


class _LRTFloor(_ModuleLoop):
    """The sparse-VD floors: ``net_class``'s network (the trick's, or :class:`PlainSparseWeightNet`, which draws the
    weights) with the sparse-VD KL, by :func:`~bayesdrop.experiments.speed.plain_lrt_epoch`."""

    net_class: type[PlainLRTNet] = PlainLRTNet

    def __init__(self, setup: Setup):
        self.net = self.net_class(list(setup.config.widths))
        super().__init__(setup, self.net, _no_loss)

    def epoch(self) -> None:
        d = self.setup.data
        plain_lrt_epoch(self.net, self.opt, d.x, d.y, self.setup.config.batch, "sparse-vd")


class _WeightFloor(_ModuleLoop):
    def __init__(self, setup: Setup):
        self.net = PlainWeightSamplingNet(setup.config.widths)
        super().__init__(setup, self.net, _no_loss)

    def epoch(self) -> None:
        d = self.setup.data
        plain_weight_epoch(self.net, self.opt, d.x, d.y, self.setup.config.batch)


class _SparseWeightFloor(_LRTFloor):
    net_class = PlainSparseWeightNet


def _no_loss(*args: Any) -> torch.Tensor:
    raise NotImplementedError


FLOORS: dict[str, tuple[str, Callable[[Setup], Trainer]]] = {
    "dropout": ("`nn.Dropout` loop", _DropoutFloor),
    "lrt": ("hand-written LRT loop", _LRTFloor),
    "weights": ("weight-sampling loop", _WeightFloor),
    "weights-svd": ("weight-sampling loop, sparse-VD KL", _SparseWeightFloor),
}
"""The floors: key -> (name in the record, builder)."""


# -- bayesdrop --------------------------------------------------------------------------------------------------------


class _Bayesdrop(Trainer):
    """``bd.fit`` with its defaults except ``epochs``, ``batch_size``, ``progress`` and the callback (and
    ``fit_kwargs``); ``bd.predict`` with ``num_samples=draws``."""

    def __init__(self, setup: Setup, method: str, hyper: dict[str, Any], **fit_kwargs: Any):
        w = setup.config.widths
        self.setup, self.fit_kwargs = setup, fit_kwargs
        self.model = bd.Classifier(bd.models.mlp(w[0], list(w[1:-1]), w[-1], method, **hyper), len(setup.data.x))
        self.guide = bd.DropoutGuide(self.model)

    def run(self, epochs: int, after_epoch: Callable[[int], None]) -> None:
        d = self.setup.data
        bd.fit(
            self.model, self.guide, (d.x, d.y), epochs=epochs, batch_size=self.setup.config.batch, device="cpu",
            progress=False, callback=lambda epoch, history: after_epoch(epoch), **self.fit_kwargs,
        )  # fmt: skip

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        out = bd.predict(self.model, self.guide, x, num_samples=draws)
        assert isinstance(out, torch.Tensor)
        return out


def _bd_bernoulli(setup: Setup) -> Trainer:
    # p = 0.5 on every layer's inputs, as the floor's nn.Dropout before each nn.Linear
    hyper = {"p": DROPOUT_P, "input_method": bd.methods.get("bernoulli", p=DROPOUT_P)}
    return _Bayesdrop(setup, "bernoulli", hyper)


def _bd_sparse_vd(setup: Setup) -> Trainer:
    return _Bayesdrop(setup, "sparse-vd", {})


def _bd_sparse_vd_weights(setup: Setup) -> Trainer:
    return _Bayesdrop(setup, "sparse-vd", {}, lrt=False)


# -- thin PyTorch libraries -------------------------------------------------------------------------------------------


class _TorchUncertainty(_ModuleLoop):
    """torch-uncertainty's ``mc_dropout`` wrapper around the floor's network, trained by the floor's loop (in training
    mode the wrapper calls the network); at test time the wrapper repeats the batch ``draws`` times."""

    def __init__(self, setup: Setup):
        w = setup.config.widths
        net = plain_dropout_net(w[0], list(w[1:-1]), w[-1], DROPOUT_P)
        self.wrapper: Any = setup.peers["torch-uncertainty"]["mc_dropout"](net, num_estimators=1)
        super().__init__(setup, self.wrapper, _no_loss)

    def epoch(self) -> None:
        d = self.setup.data
        self.module.train()
        plain_epoch(self.module, self.opt, d.x, d.y, self.setup.config.batch, 0.5)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        self.wrapper.num_estimators = draws
        self.wrapper.eval()
        return self.wrapper(x).view(draws, len(x), -1).softmax(-1).mean(0)


class _LayerStack(torch.nn.Module):
    """An MLP of bayesian-torch layers: ``forward`` returns the logits and the layers' summed KL terms."""

    def __init__(self, layer: Callable[[int, int], torch.nn.Module], widths: Sequence[int]):
        super().__init__()
        self.layers = torch.nn.ModuleList(layer(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kl = x.new_zeros(())
        for i, layer in enumerate(self.layers):
            x, k = layer(x)
            kl = kl + k
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x, kl


def _bayesian_torch_loss(net: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    out, kl = net(xb)
    return F.cross_entropy(out, yb) + kl / len(xb)  # the recipe of bayesian-torch's README and examples


def _bayesian_torch(layer_name: str) -> Callable[[Setup], Trainer]:
    def build(setup: Setup) -> Trainer:
        layer = setup.peers["bayesian-torch"][layer_name]
        return _ModuleLoop(setup, _LayerStack(layer, setup.config.widths), _bayesian_torch_loss)

    return build


def _sequential(layer: Callable[[int, int], torch.nn.Module], widths: Sequence[int]) -> torch.nn.Sequential:
    mods: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(layer(a, b))
        if i < len(widths) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def _torchbnn(setup: Setup) -> Trainer:
    bnn = setup.peers["torchbnn"]["torchbnn"]
    net = _sequential(lambda a, b: bnn.BayesLinear(prior_mu=0, prior_sigma=0.1, in_features=a, out_features=b),
                      setup.config.widths)  # fmt: skip
    kl_loss = bnn.BKLLoss(reduction="mean", last_layer_only=False)

    def loss(module: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(module(xb), yb) + 0.01 * kl_loss(module)  # torchbnn's README: kl_weight 0.01

    return _ModuleLoop(setup, net, loss)


def _blitz(setup: Setup) -> Trainer:
    objs = setup.peers["blitz-bayesian-pytorch"]
    n = len(setup.data.x)

    @objs["variational_estimator"]
    class BlitzMLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _sequential(objs["BayesianLinear"], setup.config.widths)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    criterion = torch.nn.CrossEntropyLoss()

    def loss(module: Any, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        # blitz's README: sample_elbo with the KL weighted 1/N; one sample per step, as every other contender
        return module.sample_elbo(inputs=xb, labels=yb, criterion=criterion, sample_nbr=1,
                                  complexity_cost_weight=1 / n)  # fmt: skip

    return _ModuleLoop(setup, BlitzMLP(), loss)


# -- Pyro-based peers -------------------------------------------------------------------------------------------------


class PyroMLP(PyroModule):
    """A ``PyroModule`` MLP with N(0, 1) priors on every weight and bias and a categorical likelihood, for Pyro's
    ``AutoNormal``.  ``forward(x, y=None, idx=None)``: ``idx`` are the minibatch's indices in the ``num_data``
    training examples (the plate scales the likelihood by N / B)."""

    def __init__(self, widths: Sequence[int], num_data: int):
        super().__init__()
        self.num_data = num_data
        self.init_values: dict[str, torch.Tensor] = {}
        linear: Any = PyroModule[torch.nn.Linear]  # a class Pyro makes; typed as PyroModule
        module_list: Any = PyroModule[torch.nn.ModuleList]
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layer = linear(a, b)
            self.init_values[f"layers.{i}.weight"] = layer.weight.detach().clone()
            self.init_values[f"layers.{i}.bias"] = layer.bias.detach().clone()
            layer.weight = PyroSample(dist.Normal(0.0, 1.0).expand([b, a]).to_event(2))
            layer.bias = PyroSample(dist.Normal(0.0, 1.0).expand([b]).to_event(1))
            layers.append(layer)
        self.layers = module_list(layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of ``x``; observes ``y`` in a plate of ``num_data`` subsampled at ``idx``."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        with pyro.plate("data", size=self.num_data if idx is not None else len(x), subsample=idx):
            pyro.sample("obs", dist.Categorical(logits=x), obs=y)
        return x


class _PyroAutoNormal(Trainer):
    """``SVI`` with ``Trace_ELBO`` (Pyro's default ELBO, a Monte Carlo KL) and ``pyro.optim.Adam``; ``Predictive``
    at test time."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.model = PyroMLP(setup.config.widths, len(setup.data.x))
        self.guide = AutoNormal(self.model, init_loc_fn=init_to_value(values=self.model.init_values),
                                init_scale=INIT_SCALE)  # fmt: skip
        self.svi = SVI(self.model, self.guide, _PyroAdam({"lr": setup.lr}), Trace_ELBO())

    def epoch(self) -> None:
        d = self.setup.data
        for idx in _batches(len(d.x), self.setup.config.batch):
            self.svi.step(d.x[idx], d.y[idx], idx)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        pred = Predictive(self.model, guide=self.guide, num_samples=draws, return_sites=("_RETURN",))
        return pred(x)["_RETURN"].softmax(-1).mean(0)


class _Loader:
    """A re-iterable of shuffled minibatches ``(x, y)``, as a ``DataLoader`` yields them (without its per-example
    collation, which the floors do not pay either)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch: int):
        self.x, self.y, self.batch = x, y, batch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in _batches(len(self.x), self.batch):
            yield self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch)


class _TyXe(Trainer):
    """``tyxe.VariationalBNN`` of a plain MLP: IID N(0, 1) prior, categorical likelihood, TyXe's ``AutoNormal``
    guide starting at the network's initial weights; TyXe's ``fit`` (``TraceMeanField_ELBO``, its default) with a
    per-epoch callback, ``bnn.predict`` at test time."""

    def __init__(self, setup: Setup):
        tyxe = setup.peers["TyXe"]["tyxe"]
        self.setup = setup
        net = _sequential(torch.nn.Linear, setup.config.widths)
        prior = tyxe.priors.IIDPrior(dist.Normal(torch.tensor(0.0), torch.tensor(1.0)))
        likelihood = tyxe.likelihoods.Categorical(dataset_size=len(setup.data.x))
        guide = functools.partial(tyxe.guides.AutoNormal, init_scale=INIT_SCALE,
                                  init_loc_fn=tyxe.guides.PretrainedInitializer.from_net(net))  # fmt: skip
        self.bnn = tyxe.VariationalBNN(net, prior, likelihood, guide)

    def run(self, epochs: int, after_epoch: Callable[[int], None]) -> None:
        d = self.setup.data
        loader = _Loader(d.x, d.y, self.setup.config.batch)
        self.bnn.fit(loader, _PyroAdam({"lr": self.setup.lr}), epochs,
                     callback=lambda bnn, epoch, elbo: after_epoch(epoch))  # fmt: skip

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, draws: int) -> torch.Tensor:
        return self.bnn.predict(x, num_predictions=draws).softmax(-1)  # log of the mean probabilities


# -- peers: detection at import -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """A peer library: its distribution name (for ``pip install --no-deps`` and its version) and the function that
    imports what the benchmark uses, returning ``(objects, note)``."""

    dist: str
    load: Callable[[], tuple[dict[str, Any], str]]


def _modules(*names: str, **attrs: str) -> Callable[[], tuple[dict[str, Any], str]]:
    """A loader importing modules ``names`` (``{name: module}``) and attributes ``{key: "module:attr"}``."""

    def load() -> tuple[dict[str, Any], str]:
        out: dict[str, Any] = {name: importlib.import_module(name) for name in names}
        for key, spec in attrs.items():
            module, attr = spec.split(":")
            out[key] = getattr(importlib.import_module(module), attr)
        return out, ""

    return load


def _load_torch_uncertainty() -> tuple[dict[str, Any], str]:
    """torch-uncertainty's ``mc_dropout``: from the package, or (when the package does not import, e.g. for want of
    torchvision) from the wrapper's own file, loaded alone."""
    spec = importlib.util.find_spec("torch_uncertainty")
    if importlib.util.find_spec("torchvision") is None:  # the package's __init__ imports it: spare the attempt
        reason = "its `__init__` imports torchvision, which is not installed"
    else:
        try:
            module = importlib.import_module("torch_uncertainty.methods.mc_dropout")
            return {"mc_dropout": module.mc_dropout}, ""
        except ModuleNotFoundError as err:
            if err.name == "torch_uncertainty":
                raise
            reason = f"{type(err).__name__}: {err}"
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'torch_uncertainty'", name="torch_uncertainty")
    path = Path(list(spec.submodule_search_locations)[0]) / "methods" / "mc_dropout.py"
    file_spec = importlib.util.spec_from_file_location("_peers_torch_uncertainty_mc_dropout", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    note = f"the package does not import ({reason}); its wrapper's file `torch_uncertainty/methods/mc_dropout.py` loaded alone"
    return {"mc_dropout": module.mc_dropout}, note


def _deep_getattr(obj: Any, name: str) -> Any:
    """``getattr`` along a dotted ``name``: Pyro's ``pyro.util.deep_getattr`` before Pyro 1.9 removed it."""
    return functools.reduce(getattr, name.split("."), obj)


def _load_tyxe() -> tuple[dict[str, Any], str]:
    """TyXe; its guides call ``pyro.util.deep_getattr``, which Pyro 1.9 removed: restored when missing (the
    record says so)."""
    import pyro.util

    tyxe = importlib.import_module("tyxe")
    if hasattr(pyro.util, "deep_getattr"):
        return {"tyxe": tyxe}, ""
    setattr(pyro.util, "deep_getattr", _deep_getattr)  # noqa: B010 -- a function of the installed Pyro's API
    return {"tyxe": tyxe}, (
        f"TyXe calls `pyro.util.deep_getattr`, which Pyro {pyro.__version__} no longer has: restored for the run "
        "(`functools.reduce(getattr, name.split('.'), obj)`, its former body)"
    )


PEERS: dict[str, Peer] = {
    "bayesian-torch": Peer(
        "bayesian-torch",
        _modules(
            LinearReparameterization="bayesian_torch.layers:LinearReparameterization",
            LinearFlipout="bayesian_torch.layers:LinearFlipout",
        ),
    ),  # fmt: skip
    "torchbnn": Peer("torchbnn", _modules("torchbnn")),
    "blitz-bayesian-pytorch": Peer(
        "blitz-bayesian-pytorch",
        _modules(
            BayesianLinear="blitz.modules:BayesianLinear", variational_estimator="blitz.utils:variational_estimator"
        ),
    ),  # fmt: skip
    "torch-uncertainty": Peer("torch-uncertainty", _load_torch_uncertainty),
    "TyXe": Peer("tyxe", _load_tyxe),
    "Pyro": Peer("pyro-ppl", _modules("pyro.infer.autoguide")),
}
"""The peer libraries: name in the record -> :class:`Peer`."""


def load_peer(peer: Peer) -> tuple[dict[str, Any] | None, str]:
    """Import a peer, never raising.

    Returns
    -------
    tuple
        ``(objects, note)`` when it imports (``note``: how, when not plainly), else ``(None, reason)``: "not
        installed" with the command that installs it, or the error its import raised.
    """
    try:
        return peer.load()
    except Exception as err:  # missing, or a broken install: any error at import
        if _version(peer.dist) == "—":
            return None, f"not installed (`pip install --no-deps {peer.dist}`)"
        first = str(err).splitlines()[0] if str(err) else ""
        return None, f"does not import: {type(err).__name__}: {first}"


def _version(dist_name: str) -> str:
    try:
        return importlib.metadata.version(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return "—"


# -- contenders -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """One row: ``key`` (for ``--only``), ``name`` in the record, the ``floor`` it is timed against (a key of
    :data:`FLOORS`), the ``peer`` library it needs (a key of :data:`PEERS`, ``None`` for bayesdrop), its builder and
    its ``recipe`` (what it trains and how, for the record)."""

    key: str
    name: str
    floor: str
    peer: str | None
    build: Callable[[Setup], Trainer]
    recipe: str

    @property
    def pyro_based(self) -> bool:
        """Runs on Pyro's inference machinery (bayesdrop, TyXe, Pyro)."""
        return self.peer in (None, "TyXe", "Pyro")


CONTENDERS: list[Contender] = [
    Contender("bd-bernoulli", "bd `bernoulli`", "dropout", None, _bd_bernoulli,
              "`bd.models.mlp(..., 'bernoulli', p=0.5)` with p = 0.5 on the inputs too; `bd.fit` defaults (Adam, lr "
              "1e-2 decayed linearly, `MeanFieldELBO`); `bd.predict`"),
    Contender("tu-mc-dropout", "torch-uncertainty MC-dropout wrapper", "dropout", "torch-uncertainty",
              _TorchUncertainty,
              "`mc_dropout(net, num_estimators)` around the floor's network, trained by the floor's loop; at test "
              "time the wrapper repeats the batch once per draw"),
    Contender("bd-sparse-vd", "bd `sparse-vd`", "lrt", None, _bd_sparse_vd,
              "`bd.fit` defaults: the local reparameterisation trick, KL warm-up over all epochs, lr 1e-2 decayed "
              "linearly"),
    Contender("bt-flipout", "bayesian-torch Flipout", "lrt", "bayesian-torch", _bayesian_torch("LinearFlipout"),
              "`LinearFlipout` layers (defaults: N(0, 1) prior, rho -3); loss mean cross-entropy + KL / B as in its "
              "README"),
    Contender("bt-reparam", "bayesian-torch Reparameterization", "weights", "bayesian-torch",
              _bayesian_torch("LinearReparameterization"),
              "`LinearReparameterization` layers (defaults); loss mean cross-entropy + KL / B as in its README"),
    Contender("torchbnn", "torchbnn", "weights", "torchbnn", _torchbnn,
              "`BayesLinear(prior_mu=0, prior_sigma=0.1)`; loss cross-entropy + 0.01 `BKLLoss(reduction='mean')` "
              "as in its README"),
    Contender("blitz", "blitz", "weights", "blitz-bayesian-pytorch", _blitz,
              "`BayesianLinear` layers (defaults) in a `@variational_estimator` module; `sample_elbo(sample_nbr=1, "
              "complexity_cost_weight=1/N)` as in its README (Monte Carlo KL to its prior)"),
    Contender("bd-sparse-vd-weights", "bd `sparse-vd` with `lrt=False`", "weights-svd", None, _bd_sparse_vd_weights,
              "as bd `sparse-vd`, with `bd.fit(..., lrt=False)`: one weight draw per minibatch"),
    Contender("tyxe", "TyXe", "weights", "TyXe", _TyXe,
              "`VariationalBNN`, IID N(0, 1) prior, TyXe's `AutoNormal` (init scale 1e-2, means at the network's "
              "initial weights); `bnn.fit` (`TraceMeanField_ELBO`, `pyro.optim.Adam`) and `bnn.predict`"),
    Contender("pyro-autonormal", "Pyro `AutoNormal`", "weights", "Pyro", _PyroAutoNormal,
              "`PyroModule` MLP with N(0, 1) priors on weights and biases, `AutoNormal` (init scale 1e-2, means at "
              "`nn.Linear`'s initial weights), `SVI` with `Trace_ELBO` and `pyro.optim.Adam`; `Predictive`"),
]  # fmt: skip
"""Every contender of the record, in its order."""


def contender(key: str) -> Contender:
    """The contender of ``key`` (``KeyError`` naming the keys otherwise)."""
    for c in CONTENDERS:
        if c.key == key:
            return c
    raise KeyError(f"no contender {key!r}; the keys are {[c.key for c in CONTENDERS]}")


# -- measurement ----------------------------------------------------------------------------------------------------


def ratio_stats(contender_s: Sequence[float], floor_s: Sequence[float], skip: int = 1) -> dict[str, float]:
    """Median and quartiles of the per-round ratios ``contender / floor``, from round ``skip + 1`` on.

    Parameters
    ----------
    contender_s, floor_s
        Seconds of each round's contender epoch and floor epoch (the same number of rounds).
    skip
        Leading rounds left out (the first warms up and holds the set-up).

    Returns
    -------
    dict
        ``ratio``, ``q1``, ``q3`` (quartiles; both the ratio with one round), ``contender`` and ``floor`` (median
        seconds per epoch) and ``rounds`` (the rounds counted).
    """
    if len(contender_s) != len(floor_s):
        raise ValueError(f"one floor epoch per contender epoch: got {len(contender_s)} and {len(floor_s)}")
    if len(contender_s) <= skip:
        raise ValueError(f"need more than {skip} rounds (the first {skip} warm up), got {len(contender_s)}")
    ours, floor = list(contender_s[skip:]), list(floor_s[skip:])
    ratios = [c / f for c, f in zip(ours, floor)]
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {
        "ratio": statistics.median(ratios),
        "q1": q1,
        "q3": q3,
        "contender": statistics.median(ours),
        "floor": statistics.median(floor),
        "rounds": float(len(ratios)),
    }


def _accuracy(trainer: Trainer, data: Data, draws: int) -> float:
    probs = trainer.predict_proba(data.x_test, draws)
    return float((probs.argmax(-1) == data.y_test).float().mean())


def measure(
    contender: Contender,
    config: Config,
    *,
    epochs: int,
    draws: int = 20,
    lr: float = 1e-3,
    seed: int = 0,
    peers: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``contender`` and a fresh floor side by side for ``epochs`` rounds on ``config`` and test both.

    Parameters
    ----------
    contender, config
        What to train, on what.
    epochs
        Rounds: each one contender epoch, then one floor epoch (at least 2; the first is left out of the times).
    draws
        Stochastic passes averaged at test time.
    lr
        Adam's learning rate for the floor and the peers (bd uses its own default).
    seed
        Seeds torch and Pyro before building each network and before testing.
    peers
        Imported peers (``{name: objects}``, :func:`load_peer`); ``contender.peer`` must be among them.

    Returns
    -------
    dict
        The statistics of :func:`ratio_stats`, ``acc`` and ``floor_acc`` (test accuracy), and the contender's and
        configuration's names.
    """
    data = _load(config)
    setup = Setup(config, data, lr, dict(peers or {}))
    pyro.clear_param_store()
    torch.manual_seed(seed)
    floor = FLOORS[contender.floor][1](setup)
    pyro.set_rng_seed(seed)
    trainer = contender.build(setup)
    ours: list[float] = []
    floor_s: list[float] = []
    mark = [time.thread_time()]

    def after_epoch(epoch: int) -> None:
        ours.append(time.thread_time() - mark[0])
        t0 = time.thread_time()
        floor.epoch()
        floor_s.append(time.thread_time() - t0)
        mark[0] = time.thread_time()

    trainer.run(epochs, after_epoch)
    stats = ratio_stats(ours, floor_s)
    pyro.set_rng_seed(seed)
    acc = _accuracy(trainer, data, draws)
    pyro.set_rng_seed(seed)
    floor_acc = _accuracy(floor, data, draws)
    pyro.clear_param_store()
    return {"contender": contender.name, "config": config.label, "acc": acc, "floor_acc": floor_acc, **stats}


# -- the record -----------------------------------------------------------------------------------------------------


def _ratio_cell(row: dict[str, Any] | None) -> str:
    return "—" if row is None else f"{row['ratio']:.2f}x ({row['q1']:.2f}-{row['q3']:.2f})"


def _acc(a: float) -> str:
    return f"{100 * a:.1f} %"


def record(
    rows: dict[tuple[str, str], dict[str, Any]],
    contenders: Sequence[Contender],
    cfgs: Sequence[Config],
    status: dict[str, tuple[str, str]],
    reasons: dict[str, str],
    header: Sequence[str],
) -> str:
    """The Markdown record: the ratio table (one row per contender, its reason where it was not measured), one table
    per configuration with times and accuracies, the peers with their versions and status, and each contender's
    recipe.

    Parameters
    ----------
    rows
        ``{(contender key, config label): row of measure}``.
    contenders, cfgs
        The rows and columns, in order.
    status
        ``{peer name: (version, status)}``.
    reasons
        ``{contender key: why it was not measured}``.
    header
        The lines before the tables (title, machine, command, protocol).
    """
    lines = [*header, "", "## Contender / its floor: median per-round ratio (interquartile range)", ""]
    lines += ["| contender / its floor | " + " | ".join(c.label for c in cfgs) + " | not measured because |"]
    lines += ["|---" * (len(cfgs) + 2) + "|"]
    for c in contenders:
        cells = [_ratio_cell(rows.get((c.key, cfg.label))) for cfg in cfgs]
        lines.append(f"| {c.name} / {FLOORS[c.floor][0]} | " + " | ".join(cells) + f" | {reasons.get(c.key, '')} |")
    for cfg in cfgs:
        lines += ["", f"## {cfg.label}", ""]
        lines += ["| contender | floor | floor s/epoch | contender s/epoch | ratio | ratio IQR | rounds | test acc | "
                  "floor test acc |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for c in contenders:
            r = rows.get((c.key, cfg.label))
            if r is None:
                lines.append(f"| {c.name} | {FLOORS[c.floor][0]} | — | — | — | — | — | — | — |")
                continue
            lines.append(
                f"| {c.name} | {FLOORS[c.floor][0]} | {r['floor']:.4f} | {r['contender']:.4f} | {r['ratio']:.2f}x | "
                f"{r['q1']:.2f}-{r['q3']:.2f}x | {int(r['rounds'])} | {_acc(r['acc'])} | {_acc(r['floor_acc'])} |"
            )
    lines += ["", "## Peers", "", "| peer | version | status |", "|---|---|---|"]
    lines += [f"| {name} | {version} | {st} |" for name, (version, st) in status.items()]
    lines += ["", "## Recipes", "", "| contender | floor | what it trains and how |", "|---|---|---|"]
    lines += [f"| {c.name} | {FLOORS[c.floor][0]} | {c.recipe} |" for c in contenders]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/peers.md") -> int:
    """The command line of ``benchmarks/peers.py``: import the peers, measure every contender on every configuration,
    and write the Markdown record.

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    int
        The exit status, 0.
    """
    ap = script_parser(__doc__)
    ap.add_argument("--epochs", type=int, default=None, help="rounds (epochs) on digits; default 30 (--quick: 2)")
    ap.add_argument(
        "--rounds", type=int, default=None, help="rounds (epochs) on the synthetic data; default 6 (--quick: 2)"
    )
    ap.add_argument("--draws", type=int, default=None, help="stochastic passes at test time; default 20 (--quick: 2)")
    ap.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate of the floors and peers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", nargs="+", default=None, metavar="KEY", choices=[c.key for c in CONTENDERS],
                    help="measure these contenders only")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="tiny networks and few epochs (for tests)")
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else 30)
    rounds = args.rounds if args.rounds is not None else (2 if args.quick else 6)
    draws = args.draws if args.draws is not None else (2 if args.quick else 20)
    for name, v in (("--epochs", epochs), ("--rounds", rounds)):
        if v < 2:
            ap.error(f"{name} must be at least 2 (the first round warms up), got {v}")
    if draws < 1:
        ap.error(f"--draws must be positive, got {draws}")
    contenders = [c for c in CONTENDERS if args.only is None or c.key in args.only]
    cfgs = configs(args.quick)

    loaded: dict[str, dict[str, Any]] = {}
    status: dict[str, tuple[str, str]] = {}
    for name, peer in PEERS.items():
        objs, note = load_peer(peer)
        if objs is not None:
            loaded[name] = objs
        status[name] = (_version(peer.dist), ("measured" + (f"; {note}" if note else "")) if objs is not None else note)
    reasons = {c.key: f"{c.peer}: {status[c.peer][1]}" for c in contenders if c.peer and c.peer not in loaded}

    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        with pyro.validation_enabled(False):
            for cfg in cfgs:
                n = epochs if cfg.data == "digits" else rounds
                for c in contenders:
                    if c.key in reasons:
                        continue
                    try:
                        row = measure(c, cfg, epochs=n, draws=draws, lr=args.lr, seed=args.seed, peers=loaded)
                    except Exception as err:
                        if c.peer is None:
                            raise  # bayesdrop's own failures are bugs
                        reasons[c.key] = f"{c.peer}: failed during the run: {type(err).__name__}: {err}"
                        print(f"{c.name}: {reasons[c.key]}", file=sys.stderr)
                        continue
                    rows[(c.key, cfg.label)] = row
                    print(f"{cfg.label} | {c.name}: {row['ratio']:.2f}x, acc {row['acc']:.3f}", file=sys.stderr)
        device = device_name(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)

    header = [
        "# Peers: bd.fit against other Bayesian deep learning libraries, each beside its floor",
        "",
        f"Device: {device}.  Command: `{quoted_command('benchmarks/peers.py', list(sys.argv[1:] if argv is None else argv))}`"
        f" ({(time.perf_counter() - started) / 60:.1f} min of wall time).",
        "",
        f"Protocol (`bayesdrop/experiments/peers.py`): each contender and a fresh floor of its estimator, built from "
        f"seed {args.seed}, train side by side in one process, one floor epoch right after each contender epoch (in "
        "`bd.fit`'s and TyXe's per-epoch callbacks): one round.  Times: CPU seconds of the timed thread "
        "(`time.thread_time`, one torch thread) per epoch; ratio: contender / floor per round, median and "
        "interquartile range over rounds 2.. (the first warms up and holds the set-up); s/epoch: medians.  "
        f"Budget: {epochs} epochs on digits, {rounds} on the synthetic data, for every contender and floor; test "
        f"accuracy of the class probabilities averaged over {draws} stochastic passes (every contender and floor is "
        f"stochastic at test time).  Floors and peers: Adam at lr {args.lr:g}; bd: `bd.fit`'s defaults but epochs, "
        "batch size, `progress=False` and the callback.  Pyro's validation off throughout.",
        "",
        "Data: digits, scikit-learn's 8x8 images (1437 train / 360 test, pixels in [0, 1]); synthetic, "
        f"{cfgs[-1].n_train} training and {cfgs[-1].n_test} test inputs x ~ N(0, I_{cfgs[-1].widths[0]}) labelled "
        f"argmax(x W) for a fixed W ~ N(0, 1) of {cfgs[-1].widths[0]} x {cfgs[-1].widths[-1]} (learnable: a linear "
        "map of the inputs).",
        "",
        "Floors: `nn.Dropout` loop, `nn.Dropout(0.5)` before each `nn.Linear`, cross-entropy * N / B + 0.5 sum w^2; "
        "hand-written LRT loop, Gaussian weights by the local reparameterisation trick with the sparse-VD KL "
        "approximation (`bayesdrop.experiments.speed.PlainLRTNet`); weight-sampling loop, Gaussian weights "
        "N(mu, exp(log_sigma)^2) drawn once per minibatch, point biases, closed-form KL to N(0, 1), init scale "
        f"{INIT_SCALE:g} (`PlainWeightSamplingNet`); weight-sampling loop, sparse-VD KL, the LRT loop's network, "
        "parameters and KL with its weights drawn once per minibatch (`PlainSparseWeightNet`).",
    ]
    write_results(record(rows, contenders, cfgs, status, reasons, header), args.out)
    return 0
