"""Bayesian layers that take a dropout method, and :func:`bayesianize`.

For people who build networks: a layer (:class:`Linear`, :class:`Conv1d`, :class:`Conv2d`, the weightless
:class:`Dropout`, the pooling layers :class:`MaxPool2d`, ...) declares its weight, noise and pool sites and how they enter its computation; its
:class:`~bayesdrop.methods.Method` gives each site a prior (the model) and a variational family (the guide,
:class:`~bayesdrop.guides.DropoutGuide`).  New layer kinds subclass :class:`BayesianLayer`
(``docs/architecture.md``).

Example
-------
>>> net = PyroModule[torch.nn.Sequential](bd.nn.Linear(64, 100, "vbd"), torch.nn.ReLU(), bd.nn.Linear(100, 10, "vbd"))
"""

from ..handlers import LocalReparameterization
from ..sites import NoiseSite, PoolSite, WeightSite
from .base import BayesianLayer, bayesian_layers, local_plate
from .conv import Conv1d, Conv2d
from .convert import bayesianize
from .dropout import Dropout, Scale
from .embedding import Embedding
from .linear import Linear
from .pooling import AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d, WindowPool
from .recurrent import GRU, LSTM

__all__ = [
    "BayesianLayer",
    "WeightSite",
    "NoiseSite",
    "PoolSite",
    "Linear",
    "Conv1d",
    "Conv2d",
    "Dropout",
    "Scale",
    "Embedding",
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "WindowPool",
    "LSTM",
    "GRU",
    "bayesianize",
    "bayesian_layers",
    "local_plate",
    "LocalReparameterization",
]
