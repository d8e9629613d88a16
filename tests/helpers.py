"""Small builders shared by the tests."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule

import bayesdrop as bd


def tiny_classifier(method, n=40, d=6, c=3, hidden=(8,), seed=0, device="cpu", **hyper):
    """A small MLP classifier on random separable data: (model, guide, x, y)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :c].argmax(-1)).long()
    net = bd.models.mlp(d, list(hidden), c, method, **hyper)
    model = bd.Classifier(net, num_data=n).to(device)
    guide = bd.DropoutGuide(model).to(device)
    return model, guide, x.to(device), y.to(device)


def tiny_convnet(method, n=12, c=2, hw=6, classes=3, seed=0, device="cpu", **hyper):
    """Conv2d -> ReLU -> Flatten -> Linear classifier on random images: (model, guide, x, y)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, hw, hw, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    m = bd.methods.get(method, **hyper)
    net = PyroModule[torch.nn.Sequential](
        bd.nn.Conv2d(c, 4, 3, m, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(-3),
        bd.nn.Linear(4 * hw * hw, classes, m),
    )
    model = bd.Classifier(net, num_data=n).to(device)
    guide = bd.DropoutGuide(model).to(device)
    return model, guide, x.to(device), y.to(device)


def elbo_loss(model, guide, x, y, seed=0):
    pyro.set_rng_seed(seed)
    return pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)
