"""Ready architectures of Bayesian layers: :func:`mlp`, :func:`lenet300_100`, :func:`lenet5` and :func:`rnn`.

For users who want the networks of the dropout papers without writing them: each returns a ``PyroModule``
``Sequential`` of :mod:`bayesdrop.nn` layers, to be wrapped in a likelihood (:mod:`bayesdrop.likelihoods`).

Example
-------
>>> net = bd.models.mlp(64, [300, 100], 10, "sparse-vd")
>>> model = bd.Classifier(net, num_data=1437)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from pyro.nn import PyroModule

from .checks import integer
from .methods import Method, get, resolve
from .nn import GRU, LSTM, AvgPool1d, AvgPool2d, Conv1d, Conv2d, Linear, MaxPool1d, MaxPool2d

__all__ = ["mlp", "lenet300_100", "lenet5", "rnn", "SequenceNet"]


_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "elu": torch.nn.ELU}


def _widths(value: Any, name: str, example: str) -> list[int]:
    """A sequence of layer widths as ints (:func:`~bayesdrop.checks.integer`), else a ``TypeError`` (not a
    sequence of ints) or ``ValueError`` (a width < 1) naming ``name`` with an ``example`` of one."""
    message = f"`{name}` must be a sequence of positive ints (e.g. {example}), got {value!r}"
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = list(value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(message)
    widths = []
    for v in value:
        try:
            widths.append(integer(v, name))
        except TypeError:
            raise TypeError(message) from None
        except ValueError:
            raise ValueError(message) from None
    return widths


def _activation(name: str) -> torch.nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _layer_method(method: str | Method | None, hyper: dict[str, Any], arg: str = "method") -> Method:
    """The method of a network's layers: ``None`` is no noise (``bernoulli`` with ``p = 0``: point estimates under
    the Gaussian prior); a method for the inputs only or for pooling layers is refused with the argument it
    belongs to."""
    if method is None:
        if hyper:
            raise TypeError(f"hyper-parameters {sorted(hyper)} need a method, and `{arg}` is None")
        return get("bernoulli", p=0.0)
    m = resolve(method, **hyper)
    role = m.capabilities.role
    if role != "layer":
        what, where = {
            "input": ("a network's inputs", "pass it as input_method="),
            "pool": ("pooling layers", "pass it as pool_method="),
            "recurrent": ("recurrent layers", "use bd.models.rnn or bd.nn.LSTM / GRU"),
        }[role]
        raise ValueError(f"`{arg}` {m.name or type(m).__name__!r} is a method for {what}: {where}")
    return m


def _input_method(
    method: str | Method | None, m: Method, input_method: str | Method | None, in_features: int
) -> Method:
    """The method of the first layer: ``input_method`` (a layer or input method), else ``m.input_layer`` (no noise
    where ``method`` is ``None``)."""
    if input_method is None:
        return m if method is None else m.input_layer(in_features)
    im = resolve(input_method)
    if im.capabilities.role == "pool":
        raise ValueError(f"`input_method` {im.name!r} is a method for pooling layers: pass it as pool_method=")
    return im


def _sequential(*layers: torch.nn.Module) -> PyroModule:
    """``PyroModule[torch.nn.Sequential](*layers)``; Pyro types ``PyroModule[cls]`` as ``type[PyroModule]``, whose
    constructor takes a name, so the class is bound here as what it is: a callable making a ``PyroModule``."""
    cls: Callable[..., PyroModule] = PyroModule[torch.nn.Sequential]
    return cls(*layers)


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    method: str | Method | None = "bernoulli",
    *,
    input_method: str | Method | None = None,
    activation: str = "relu",
    **hyper: Any,
) -> PyroModule:
    """A multilayer perceptron of :class:`bayesdrop.nn.Linear` layers.

    Each layer applies its method to its inputs (Gal & Ghahramani's
    :math:`W = M \\mathrm{diag}(z)`), so hidden units are dropped by the layer
    after them.

    Parameters
    ----------
    in_features, out_features : int
    hidden : sequence of int
        Hidden widths, e.g. ``[300, 100]`` for LeNet-300-100.
    method : str, Method or None
        Method of every layer (``bd.methods.names(role="layer")``); ``**hyper`` are its hyper-parameters.  ``None``:
        no noise (point estimates under the Gaussian prior, ``bernoulli`` with ``p=0``).
    input_method : str or Method, optional
        The method of the first layer (the inputs), e.g. ``bd.methods.get("bernoulli", p=0.0)`` for no input
        dropout, or ``"cutout"`` (``bd.methods.names(role="input")``).  Default: ``method.input_layer(in_features)``,
        which for the fixed-rate methods drops 0.2 of the
        inputs (``bernoulli`` with ``p=0.2``, ``gaussian`` with ``alpha=0.25``) while hidden units get ``method``
        (by default ``p=0.5``), as Srivastava et al. (2014) recommend, and adds no input noise to networks with
        fewer than 64 inputs; ``vd`` and ``vbd`` with ``granularity="layer"``, whose KLs send their rate to its
        bound, take the same rule for the bound
        (:meth:`~bayesdrop.methods.gaussian.VariationalDropout.input_layer`); the other methods that learn their
        rates use ``method`` on every layer.
    activation : {"relu", "tanh", "sigmoid", "elu"}
        The hidden units' activation.  ``standout`` with another than ``"relu"`` warns: its keep probability reads
        the activations, where Ba & Frey's reads the pre-activations, the same rule for ReLU units alone
        (:mod:`bayesdrop.methods.standout`).
    """
    widths = [
        integer(in_features, "in_features"),
        *_widths(hidden, "hidden", "[8]"),
        integer(out_features, "out_features"),
    ]
    m = _layer_method(method, hyper)
    first = _input_method(method, m, input_method, in_features)
    if m.name == "standout" and activation != "relu" and len(widths) > 2:
        warnings.warn(
            f"standout after {activation!r} units: its keep probability sigma(alpha a + beta) reads the activations "
            "a = f(u), where Ba & Frey's reads the pre-activations u, the same rule for ReLU units alone",
            UserWarning,
            stacklevel=2,
        )
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lm = m if i else first
        layers.append(Linear(a, b, lm))
        if i < len(widths) - 2:
            layers.append(_activation(activation))
    return _sequential(*layers)


def lenet300_100(
    in_features: int = 784, out_features: int = 10, method: str | Method | None = "bernoulli", **kw: Any
) -> PyroModule:
    """LeNet-300-100 (LeCun et al. 1998): ``mlp(in, [300, 100], out)``.

    ``method`` (default ``"bernoulli"``, a name in ``bd.methods.names(role="layer")`` or a :class:`Method`) is the
    method of every layer, passed to :func:`mlp` as its ``method`` (the first layer's follows :func:`mlp`'s
    ``input_method`` rule); ``**kw`` go to :func:`mlp` too (``input_method``, ``activation`` and the method's
    hyper-parameters).
    """
    return mlp(in_features, [300, 100], out_features, method, **kw)


def lenet5(
    image_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    method: str | Method | None = "bernoulli",
    *,
    input_method: str | Method | None = None,
    pool_method: str | Method | None = None,
    pooling: str | None = None,
    channels: tuple[int, int] = (20, 50),
    hidden: int = 500,
    noise: str = "element",
    **hyper: Any,
) -> PyroModule:
    """LeNet-5-Caffe: conv(20, 5x5) - maxpool - conv(50, 5x5) - maxpool - fc(500) - fc(classes).

    Every layer is Bayesian.  Images smaller than 28x28 (e.g. the 8x8 digits)
    get padding 2 so that the two 5x5 convolutions fit; 1-D signals ``(C, L)``
    (e.g. MNIST-1D, ``image_shape=(1, 40)``) get ``Conv1d`` layers with kernel 5,
    padding 2 and pooling 2 (given as ``(C, 1, L)`` images, 1x5 kernels).

    Parameters
    ----------
    image_shape : (C, H, W) or (C, L)
    num_classes : int
    method : str, Method or None
        Method of every weight layer; ``**hyper`` are its hyper-parameters; ``None``: no noise (as in :func:`mlp`).
    input_method : str or Method, optional
        The method of the first convolution (its inputs are the pixels), e.g.
        ``bd.methods.get("bernoulli", p=0.0)`` for none or ``"cutout"``; default
        ``method.input_layer(C * H * W)`` as in :func:`mlp` (0.2 for fixed rates).
    pool_method : str or Method, optional
        A method for the two pooling layers (``bd.methods.names(role="pool")``, e.g. ``"maxpool-dropout"``), which
        become :mod:`bayesdrop.nn` pooling layers; default: plain pooling.
    pooling : {"max", "avg"}, optional
        The pooling; default max pooling, or average pooling for a ``pool_method`` that randomises only that
        (``avgpool-dropout``).
    channels, hidden
        Widths of the two convolutions and of the hidden dense layer.
    noise : {"element", "channel"}
        The draws of the noise on the second convolution's input feature maps: one per element, or one per feature
        map (spatial dropout, Tompson et al. 2015; see :class:`~bayesdrop.nn.Conv2d`).  The first convolution reads
        the pixels and keeps one draw per element.
    """
    image_shape = _widths(image_shape, "image_shape", "(1, 28, 28)")
    if len(image_shape) not in (2, 3):
        raise ValueError(f"`image_shape` must be (C, H, W) or, for 1-D signals, (C, L), got {tuple(image_shape)!r}")
    num_classes, hidden = integer(num_classes, "num_classes"), integer(hidden, "hidden")
    channels_ = _widths(channels, "channels", "(20, 50)")
    if len(channels_) != 2:
        raise ValueError(f"`channels` must be the widths of the two convolutions, e.g. (20, 50), got {channels!r}")
    channels = (channels_[0], channels_[1])
    m = _layer_method(method, hyper)
    first = _input_method(method, m, input_method, math.prod(image_shape))
    pm = None if pool_method is None else resolve(pool_method)
    if pm is not None and pm.capabilities.role != "pool":
        raise ValueError(
            f"`pool_method` must be a method for pooling layers (bd.methods.names(role='pool')), got {pm.name!r}"
        )
    if pooling is None:
        pooling = "max" if pm is None or "max" in pm.capabilities.pools else "avg"
    if pooling not in ("max", "avg"):
        raise ValueError(f"`pooling` must be 'max' or 'avg', got {pooling!r}")

    def pool(dims: int, size: int | tuple[int, int]) -> torch.nn.Module:
        plain: dict[tuple[int, str], Callable[..., torch.nn.Module]] = {
            (1, "max"): torch.nn.MaxPool1d,
            (1, "avg"): torch.nn.AvgPool1d,
            (2, "max"): torch.nn.MaxPool2d,
            (2, "avg"): torch.nn.AvgPool2d,
        }
        if pm is None:
            return plain[dims, pooling](size)
        bayes: dict[tuple[int, str], Callable[..., torch.nn.Module]] = {
            (1, "max"): MaxPool1d,
            (1, "avg"): AvgPool1d,
            (2, "max"): MaxPool2d,
            (2, "avg"): AvgPool2d,
        }
        return bayes[dims, pooling](size, method=pm)

    if len(image_shape) == 2:  # a 1-D signal (C, L), e.g. MNIST-1D: Conv1d with kernel 5, padding 2, pooling 2
        c, length = image_shape
        for _ in range(2):
            length = length // 2
        if length < 1:
            raise ValueError(f"`image_shape` {tuple(image_shape)} is too short for LeNet-5")
        return _sequential(
            Conv1d(c, channels[0], 5, first, padding=2),
            torch.nn.ReLU(),
            pool(1, 2),
            Conv1d(channels[0], channels[1], 5, m, padding=2, noise=noise),
            torch.nn.ReLU(),
            pool(1, 2),
            torch.nn.Flatten(-2),
            Linear(channels[1] * length, hidden, m),
            torch.nn.ReLU(),
            Linear(hidden, num_classes, m),
        )
    c, h, w = image_shape
    if h == 1:  # a 1-D signal given as an image (C, 1, L)
        kernel, window, pad = (1, 5), (1, 2), (0, 2)
    else:
        kernel, window, pad = (5, 5), (2, 2), (0, 0) if min(h, w) >= 28 else (2, 2)
    for _ in range(2):
        h = (h + 2 * pad[0] - kernel[0] + 1) // window[0]
        w = (w + 2 * pad[1] - kernel[1] + 1) // window[1]
    if h < 1 or w < 1:
        raise ValueError(f"`image_shape` {tuple(image_shape)} is too small for LeNet-5")
    return _sequential(
        Conv2d(c, channels[0], kernel, first, padding=pad),
        torch.nn.ReLU(),
        pool(2, window),
        Conv2d(channels[0], channels[1], kernel, m, padding=pad, noise=noise),
        torch.nn.ReLU(),
        pool(2, window),
        torch.nn.Flatten(-3),
        Linear(channels[1] * h * w, hidden, m),
        torch.nn.ReLU(),
        Linear(hidden, num_classes, m),
    )


class SequenceNet(PyroModule):
    """A recurrent layer read at the end of the sequence, then a dense head: ``head(rnn(x)[0][:, -1])`` for ``x``
    ``(B, T, features)`` (classification from the last state, a forecast of the next values).

    A bidirectional layer (``rnn.bidirectional``) is read where each direction ends: the forward half of its output
    at the last step and the backward half at the first, each having read the whole sequence (torch's ``h_n`` of
    the last layer).  A layer with ``batch_first=False`` takes and returns ``(T, B, ...)``.
    """

    def __init__(self, rnn: torch.nn.Module, head: torch.nn.Module):
        super().__init__()
        self.rnn, self.head = rnn, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        if not getattr(self.rnn, "batch_first", True):
            out = out.transpose(0, 1)  # (B, T, directions * H)
        if not getattr(self.rnn, "bidirectional", False):
            return self.head(out[:, -1])
        h = out.shape[-1] // 2  # torch's layout: the forward direction's H features, then the backward one's
        return self.head(torch.cat([out[:, -1, :h], out[:, 0, h:]], -1))


def rnn(
    input_size: int,
    hidden_size: int,
    out_features: int,
    method: str | Method | None = "variational-rnn",
    *,
    cell: str = "lstm",
    num_layers: int = 1,
    bidirectional: bool = False,
    **hyper: Any,
) -> PyroModule:
    """A recurrent network read at its last step: ``bd.nn.LSTM`` (or ``GRU``) - last output - ``bd.nn.Linear``
    (:class:`SequenceNet`; bidirectional: the forward direction's last output and the backward one's first).

    Parameters
    ----------
    input_size, hidden_size, num_layers, bidirectional
        As ``torch.nn.LSTM``; inputs ``(B, T, input_size)`` (``bd.data.Dataset.sequences``).
    out_features : int
        Classes (``bd.Classifier``) or the values forecast (``bd.Regressor``).
    method : str, Method or None
        A recurrent method (``bd.methods.names(role="recurrent")``: its noise inside the recurrence, the head
        without noise) or a layer method (on the recurrent layer's inputs, a fresh draw per step, and on the head's:
        the dropout of the non-recurrent connections of Zaremba et al. 2014); ``None``: no noise.
    cell : {"lstm", "gru"}
    """
    if cell not in ("lstm", "gru"):
        raise ValueError(f"`cell` must be 'lstm' or 'gru', got {cell!r}")
    input_size, hidden_size = integer(input_size, "input_size"), integer(hidden_size, "hidden_size")
    out_features, num_layers = integer(out_features, "out_features"), integer(num_layers, "num_layers")
    if method is None or resolve(method, **hyper).capabilities.role != "recurrent":
        m = _layer_method(method, hyper)
        head = m
    else:
        m, head = resolve(method, **hyper), get("bernoulli", p=0.0)
    layer = (LSTM if cell == "lstm" else GRU)(input_size, hidden_size, num_layers, m, bidirectional=bidirectional)
    return SequenceNet(layer, Linear(hidden_size * (2 if bidirectional else 1), out_features, head))
