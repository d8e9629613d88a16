r"""The defaults matrix: every registered method under the library's defaults, against plain PyTorch.

For maintainers and for users who want to know what the defaults give.  Each case builds the network with
``bd.models.mlp`` and trains it with ``bd.fit``, every argument of both (and of ``bd.Classifier`` /
``bd.Regressor``, ``bd.DropoutGuide``) at its default except ``epochs`` (one budget per data set, the same for every
method) and the seed.  The *floor* is the network a PyTorch user would write: the same widths, ``nn.Dropout(0.5)``
on the hidden units, Adam at torch's default learning rate, ``fit``'s default batch size and the same epochs,
evaluated in ``eval()`` mode.  ``tests/test_defaults.py`` asserts on it, ``benchmarks/defaults.py`` writes the full
table to ``benchmarks/results/defaults.md``.

The convolutional methods (``bd.methods.names(role="pool")`` and the input method ``cutout``) are judged on a
LeNet-5 analog instead (``arch="lenet5"``, :data:`CNN_SETTINGS`): ``bd.models.lenet5`` at its defaults with no
other noise (``method=None``) and the method where a network takes it (``pool_method=`` or ``input_method=``);
the floor is the same LeNet-5 in plain PyTorch with ``nn.Dropout(0.5)`` on its hidden dense units.

Example
-------
>>> from bayesdrop.experiments import defaults
>>> case = defaults.run_method("vbd", "digits", epochs=defaults.SETTINGS["digits"].fast_epochs)  # doctest: +SKIP
>>> floor = defaults.run_floor("digits", epochs=case.epochs)  # doctest: +SKIP
>>> case.error - floor.error  # test error in points above the floor  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass, field
from typing import cast

import pyro
import torch
import torch.nn.functional as F

from .. import data as bd_data
from ..guides import DropoutGuide
from ..infer import DEFAULT_BATCH_SIZE, CollapseWarning, fit, predict
from ..likelihoods import Classifier, Likelihood, Regressor
from ..methods import get
from ..models import lenet5, mlp, rnn
from ..nn import BayesianLayer

__all__ = [
    "Setting",
    "SETTINGS",
    "CNN_SETTINGS",
    "RNN_SETTINGS",
    "ARCHS",
    "settings",
    "MLP_HIDDEN",
    "Case",
    "run_method",
    "run_floor",
    "fewest_kept",
    "ERROR_TOLERANCE",
    "RMSE_TOLERANCE",
]

ERROR_TOLERANCE = 1.5  # classification: test error at most this many points above the floor
RMSE_TOLERANCE = 1.10  # regression: test RMSE at most this factor of the floor's


@dataclass(frozen=True)
class Setting:
    """One data set of the matrix: its MLP's hidden widths and the two budgets (epochs for every method)."""

    dataset: str
    hidden: tuple[int, ...]
    fast_epochs: int  # the tier in ``make test``
    full_epochs: int  # the tier marked ``slow`` and ``benchmarks/defaults.py``


SETTINGS: dict[str, Setting] = {
    "digits": Setting("digits", (300, 100), fast_epochs=100, full_epochs=200),  # fast: the README's budget
    "mnist1d": Setting("mnist1d", (100, 100), fast_epochs=30, full_epochs=200),
    "toy-regression": Setting("toy-regression", (50, 50), fast_epochs=300, full_epochs=1000),
}
# The LeNet-5 analog (``bd.models.lenet5``'s default widths 20-50-500) on the two bundled data sets it reads: the 8x8
# digits as images, MNIST-1D as 40-sample signals.  Its ``hidden`` is the dense layer's width.
CNN_SETTINGS: dict[str, Setting] = {
    "digits": Setting("digits", (500,), fast_epochs=50, full_epochs=100),
    "mnist1d": Setting("mnist1d", (500,), fast_epochs=30, full_epochs=100),
}
# The recurrent methods on a sequence task: the 8x8 digits read as 8 rows of 8 (``Dataset.sequences``) by
# ``bd.models.rnn`` (an LSTM of 64 units read at its last step, a dense head).  Its ``hidden`` is the LSTM's width.
RNN_SETTINGS: dict[str, Setting] = {
    "digits": Setting("digits", (64,), fast_epochs=30, full_epochs=100),
}
ARCHS = ("mlp", "lenet5", "rnn")
# The hidden widths of the experiments' MLPs: the matrix's for the classification data it bundles, and for MNIST
# (from the user's IDX files) and its 5000-image subset the 1024-1024 ReLU network of Srivastava et al. (2014), where
# dropout regularises.
MLP_HIDDEN: dict[str, tuple[int, ...]] = {
    "digits": SETTINGS["digits"].hidden,
    "mnist1d": SETTINGS["mnist1d"].hidden,
    "mnist": (1024, 1024),
    "mnist5k": (1024, 1024),
}


@dataclass
class Case:
    """The outcome of one method (or the floor) on one data set.

    ``error`` is the test error in percent (classification, Monte Carlo predictive with ``bd.predict``'s default
    draws); ``rmse`` the test RMSE of the predictive mean on the test inputs where the training data are (inside
    the training range and outside its gap: there any interpolation or extrapolation is as good as another).  ``kept`` is the number of weights the
    method's pruning rule keeps in its sparsest layer; ``warnings`` the :class:`~bayesdrop.infer.CollapseWarning`
    messages of the run; ``model`` and ``guide`` the trained pair (``None`` for the floor).
    """

    method: str
    dataset: str
    epochs: int
    seed: int
    error: float = float("nan")
    rmse: float = float("nan")
    kept: int = -1
    warnings: list[str] = field(default_factory=list)
    model: Likelihood | None = field(default=None, repr=False, compare=False)
    guide: DropoutGuide | None = field(default=None, repr=False, compare=False)


@functools.lru_cache(maxsize=4)
def _dataset(name: str) -> bd_data.Dataset:
    return bd_data.load(name)


def settings(arch: str = "mlp") -> dict[str, Setting]:
    """The data sets and budgets of the matrix's arm ``arch``: the MLP's, LeNet-5's or the recurrent network's."""
    if arch not in ARCHS:
        raise ValueError(f"`arch` must be one of {ARCHS}, got {arch!r}")
    return {"mlp": SETTINGS, "lenet5": CNN_SETTINGS, "rnn": RNN_SETTINGS}[arch]


def _setting(dataset: str, arch: str = "mlp") -> Setting:
    settings_ = settings(arch)
    if dataset not in settings_:
        raise ValueError(f"`dataset` must be one of {sorted(settings_)} for arch {arch!r}, got {dataset!r}")
    return settings_[dataset]


def _inputs(ds: bd_data.Dataset, split: bd_data.Split, arch: str) -> torch.Tensor:
    """A split's inputs as the network reads them: flat for the MLP, images (signals) for LeNet-5, sequences for the
    recurrent network."""
    return split.x if arch == "mlp" else ds.images(split) if arch == "lenet5" else ds.sequences(split)


def network(method: str, ds: bd_data.Dataset, arch: str = "mlp") -> torch.nn.Module:
    """The matrix's network of ``method`` for data set ``ds``: the MLP with ``method`` on every layer, or LeNet-5
    without other noise and the method where it goes (its pooling layers or its inputs; a layer method on every
    layer)."""
    setting = _setting(ds.name, arch)
    out = cast(int, ds.num_classes) if ds.task == "classification" else 1
    if arch == "mlp":
        return mlp(ds.in_features, list(setting.hidden), out, method)
    assert ds.image_shape is not None  # CNN_SETTINGS and RNN_SETTINGS name image data sets only
    if arch == "rnn":
        return rnn(ds.sequences(ds.test).shape[-1], setting.hidden[0], out, method)
    role = get(method).capabilities.role
    if role == "pool":
        return lenet5(ds.image_shape, out, None, pool_method=method, hidden=setting.hidden[0])
    if role == "input":
        return lenet5(ds.image_shape, out, None, input_method=method, hidden=setting.hidden[0])
    return lenet5(ds.image_shape, out, method, hidden=setting.hidden[0])


def _in_range(ds: bd_data.Dataset) -> torch.Tensor:
    """Mask of the test inputs where the training data are: inside the range and outside the gap (regression)."""
    x = ds.test.x[:, 0]
    keep = torch.ones_like(x, dtype=torch.bool)
    if ds.x_range is not None:
        keep &= (x >= ds.x_range[0]) & (x <= ds.x_range[1])
    if ds.gap is not None:
        keep &= (x < ds.gap[0]) | (x > ds.gap[1])
    return keep


def run_method(method: str, dataset: str, *, epochs: int, seed: int = 0, arch: str = "mlp") -> Case:
    """Train ``method`` on ``dataset`` with every library default except ``epochs`` and ``seed``, in the MLP or the
    LeNet-5 analog (``arch``)."""
    ds = _dataset(dataset)
    _setting(dataset, arch)
    pyro.set_rng_seed(seed)  # the initial weights
    net = network(method, ds, arch)
    model: Likelihood = (Classifier if ds.task == "classification" else Regressor)(net, num_data=len(ds.train))
    guide = DropoutGuide(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)  # kept in FitResult.warnings
        train = (_inputs(ds, ds.train, arch), ds.train.y)
        result = fit(model, guide, train, epochs=epochs, seed=seed, progress=False)
    case = Case(method, dataset, epochs, seed, warnings=list(result.warnings), model=model, guide=guide)
    x, y = _inputs(ds, ds.test, arch).to(result.device), ds.test.y.to(result.device)
    if ds.task == "classification":
        probs = cast(torch.Tensor, predict(model, guide, x))
        case.error = 100 * (probs.argmax(-1) != y).double().mean().item()
    else:
        mean, _ = predict(model, guide, x)
        keep = _in_range(ds).to(result.device)
        case.rmse = (mean - y)[keep].pow(2).mean().sqrt().item()
    case.kept = fewest_kept(guide)
    return case


def fewest_kept(guide: DropoutGuide) -> int:
    """The number of weights that the method's pruning rule keeps in the guide's sparsest layer."""
    with torch.no_grad():
        return min(
            sum(int(k.sum()) for k in layer.kept_weights(layer.method.keep_masks(layer, params)).values())
            for _, layer, params in guide.pairs()
            if layer.weight_sites
        )


def plain_lenet5(ds: bd_data.Dataset, hidden: int) -> torch.nn.Sequential:
    """LeNet-5 of ``bd.models.lenet5``'s layout in plain PyTorch, ``nn.Dropout(0.5)`` on the hidden dense units: the
    weights of the plain modules that ``bd.models.lenet5`` (without noise) exports."""
    assert ds.image_shape is not None and ds.num_classes is not None
    bayes = lenet5(ds.image_shape, ds.num_classes, None, hidden=hidden)
    layers: list[torch.nn.Module] = []
    for m in bayes.children():
        if isinstance(m, BayesianLayer):
            plain = m.to_plain({"weight": m.init_value("weight")})
            if isinstance(plain, torch.nn.Linear) and plain.out_features == ds.num_classes:
                layers.append(torch.nn.Dropout(0.5))
            layers.append(plain)
        else:
            layers.append(copy.deepcopy(m) if not isinstance(m, torch.nn.Flatten) else torch.nn.Flatten())
    return torch.nn.Sequential(*layers)


class PlainSequenceNet(torch.nn.Module):
    """The recurrent floor: ``torch.nn.LSTM`` read at its last step, ``nn.Dropout(0.5)``, a dense head."""

    def __init__(self, features: int, hidden: int, out: int | None):
        super().__init__()
        self.rnn = torch.nn.LSTM(features, hidden, batch_first=True)
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(hidden, cast(int, out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def run_floor(
    dataset: str, *, epochs: int, seed: int = 0, arch: str = "mlp", hidden: tuple[int, ...] | None = None
) -> Case:
    """The plain PyTorch network of the same widths and budget (see the module docstring); ``hidden``: the MLP's
    hidden widths for a data set outside the matrix (default: the matrix's)."""
    ds = _dataset(dataset)
    if hidden is not None and arch != "mlp":
        raise ValueError(f"`hidden` sets the MLP's widths; arch {arch!r} takes None")
    hidden = _setting(dataset, arch).hidden if hidden is None else hidden
    torch.manual_seed(seed)
    if arch == "rnn":
        net: torch.nn.Module = PlainSequenceNet(ds.sequences(ds.test).shape[-1], hidden[0], ds.num_classes)
    elif arch == "mlp":
        widths = [ds.in_features, *hidden, cast(int, ds.num_classes) if ds.task == "classification" else 1]
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            if i:
                layers += [torch.nn.ReLU(), torch.nn.Dropout(0.5)]
            layers.append(torch.nn.Linear(a, b))
        net = torch.nn.Sequential(*layers)
    else:
        net = plain_lenet5(ds, hidden[0])
    opt = torch.optim.Adam(net.parameters())
    batch_size = DEFAULT_BATCH_SIZE
    x, y = _inputs(ds, ds.train, arch), ds.train.y
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=gen).split(batch_size):
            opt.zero_grad()
            out = net(x[idx])
            loss = F.cross_entropy(out, y[idx]) if ds.task == "classification" else F.mse_loss(out[:, 0], y[idx])
            loss.backward()
            opt.step()
    net.eval()
    case = Case("floor", dataset, epochs, seed, kept=sum(p.numel() for p in net.parameters()))
    with torch.no_grad():
        out = net(_inputs(ds, ds.test, arch))
        if ds.task == "classification":
            case.error = 100 * (out.argmax(-1) != ds.test.y).double().mean().item()
        else:
            keep = _in_range(ds)
            case.rmse = (out[:, 0] - ds.test.y)[keep].pow(2).mean().sqrt().item()
    return case
