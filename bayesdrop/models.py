"""Ready architectures of Bayesian layers: :func:`mlp`, :func:`lenet300_100` and :func:`lenet5`.

For users who want the networks of the dropout papers without writing them: each returns a ``PyroModule``
``Sequential`` of :mod:`bayesdrop.nn` layers, to be wrapped in a likelihood (:mod:`bayesdrop.likelihoods`).

Example
-------
>>> net = bd.models.mlp(64, [300, 100], 10, "sparse-vd")
>>> model = bd.Classifier(net, num_data=1437)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pyro.nn import PyroModule

from .methods import Method, resolve
from .nn import Conv1d, Conv2d, Linear

__all__ = ["mlp", "lenet300_100", "lenet5"]


_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "elu": torch.nn.ELU}


def _activation(name: str) -> torch.nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"`activation` must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _sequential(*layers: torch.nn.Module) -> PyroModule:
    """``PyroModule[torch.nn.Sequential](*layers)``; Pyro types ``PyroModule[cls]`` as ``type[PyroModule]``, whose
    constructor takes a name, so the class is bound here as what it is: a callable making a ``PyroModule``."""
    cls: Callable[..., PyroModule] = PyroModule[torch.nn.Sequential]
    return cls(*layers)


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    method: str | Method = "bernoulli",
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
    method : str or Method
        Method of every layer; ``**hyper`` are its hyper-parameters.
    input_method : str or Method, optional
        The method of the first layer (the inputs), e.g. ``bd.methods.get("bernoulli", p=0.0)`` for no input
        dropout.  Default: ``method.input_layer(in_features)``, which for the fixed-rate methods drops 0.2 of the
        inputs (``bernoulli`` with ``p=0.2``, ``gaussian`` with ``alpha=0.25``) while hidden units get ``method``
        (by default ``p=0.5``), as Srivastava et al. (2014) recommend, and adds no input noise to networks with
        fewer than 64 inputs; methods that learn their rates use ``method`` on every layer.
    activation : {"relu", "tanh", "sigmoid", "elu"}
    """
    widths = [in_features, *hidden, out_features]
    if isinstance(hidden, (str, bytes)) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"`hidden` must be a sequence of positive ints, got {hidden!r}")
    m = resolve(method, **hyper)
    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lm = m if i else (m.input_layer(in_features) if input_method is None else resolve(input_method))
        layers.append(Linear(a, b, lm))
        if i < len(widths) - 2:
            layers.append(_activation(activation))
    return _sequential(*layers)


def lenet300_100(
    in_features: int = 784, out_features: int = 10, method: str | Method = "bernoulli", **kw: Any
) -> PyroModule:
    """LeNet-300-100 (LeCun et al. 1998): ``mlp(in, [300, 100], out)``."""
    return mlp(in_features, [300, 100], out_features, method, **kw)


def lenet5(
    image_shape: Sequence[int] = (1, 28, 28),
    num_classes: int = 10,
    method: str | Method = "bernoulli",
    *,
    input_method: str | Method | None = None,
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
    method : str or Method
        Method of every layer; ``**hyper`` are its hyper-parameters.
    input_method : str or Method, optional
        The method of the first convolution (its inputs are the pixels), e.g.
        ``bd.methods.get("bernoulli", p=0.0)`` for none; default
        ``method.input_layer(C * H * W)`` as in :func:`mlp` (0.2 for fixed rates).
    channels, hidden
        Widths of the two convolutions and of the hidden dense layer.
    noise : {"element", "channel"}
        The draws of the noise on the second convolution's input feature maps: one per element, or one per feature
        map (spatial dropout, Tompson et al. 2015; see :class:`~bayesdrop.nn.Conv2d`).  The first convolution reads
        the pixels and keeps one draw per element.
    """
    if len(image_shape) not in (2, 3):
        raise ValueError(f"`image_shape` must be (C, H, W) or, for 1-D signals, (C, L), got {tuple(image_shape)!r}")
    m = resolve(method, **hyper)
    first = m.input_layer(math.prod(image_shape)) if input_method is None else resolve(input_method)
    if len(image_shape) == 2:  # a 1-D signal (C, L), e.g. MNIST-1D: Conv1d with kernel 5, padding 2, pooling 2
        c, length = image_shape
        for _ in range(2):
            length = length // 2
        if length < 1:
            raise ValueError(f"`image_shape` {tuple(image_shape)} is too short for LeNet-5")
        return _sequential(
            Conv1d(c, channels[0], 5, first, padding=2),
            torch.nn.ReLU(),
            torch.nn.MaxPool1d(2),
            Conv1d(channels[0], channels[1], 5, m, padding=2, noise=noise),
            torch.nn.ReLU(),
            torch.nn.MaxPool1d(2),
            torch.nn.Flatten(-2),
            Linear(channels[1] * length, hidden, m),
            torch.nn.ReLU(),
            Linear(hidden, num_classes, m),
        )
    c, h, w = image_shape
    if h == 1:  # a 1-D signal given as an image (C, 1, L)
        kernel, pool, pad = (1, 5), (1, 2), (0, 2)
    else:
        kernel, pool, pad = (5, 5), (2, 2), (0, 0) if min(h, w) >= 28 else (2, 2)
    for _ in range(2):
        h = (h + 2 * pad[0] - kernel[0] + 1) // pool[0]
        w = (w + 2 * pad[1] - kernel[1] + 1) // pool[1]
    if h < 1 or w < 1:
        raise ValueError(f"`image_shape` {tuple(image_shape)} is too small for LeNet-5")
    return _sequential(
        Conv2d(c, channels[0], kernel, first, padding=pad),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(pool),
        Conv2d(channels[0], channels[1], kernel, m, padding=pad, noise=noise),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(pool),
        torch.nn.Flatten(-3),
        Linear(channels[1] * h * w, hidden, m),
        torch.nn.ReLU(),
        Linear(hidden, num_classes, m),
    )
