"""Small builders shared by the tests."""

from __future__ import annotations

import pyro
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

NONE = bd.methods.get("bernoulli", p=0.0)  # no noise: point estimates under the Gaussian prior


def pooling_layer(method, dims, kernel=2):
    """The bd.nn pooling layer of ``dims`` spatial dimensions for a pool ``method`` (max pooling where it takes it)."""
    kind = "Max" if "max" in method.capabilities.pools else "Avg"
    return getattr(bd.nn, f"{kind}Pool{dims}d")(kernel, method=method)


class LastStep(PyroModule):
    """A recurrent layer's output at the last step: ``rnn(x)[0][:, -1]``."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x):
        return self.rnn(x)[0][:, -1]


def tiny_rnn(method, d, c, hidden=8, kind="LSTM"):
    """The ``d`` features read as a sequence of ``d`` steps of one value: LSTM (or GRU) with ``method`` - last step -
    Linear (no noise)."""
    rnn = getattr(bd.nn, kind)(1, hidden, method=method)
    return PyroModule[torch.nn.Sequential](torch.nn.Unflatten(1, (d, 1)), LastStep(rnn), bd.nn.Linear(hidden, c, NONE))


class Bag(PyroModule):
    """Tokens (B, T) -> bd.nn.Embedding -> mean over the steps -> Linear (no noise)."""

    def __init__(self, method, vocab=7, dim=4, classes=3):
        super().__init__()
        self.emb = bd.nn.Embedding(vocab, dim, method)
        self.out = bd.nn.Linear(dim, classes, NONE)

    def forward(self, tokens):
        return self.out(self.emb(tokens).mean(1))


def tiny_bag(method, n=16, steps=5, vocab=7, classes=3, seed=0, **hyper):
    """The method in an embedding over random token sequences: (model, guide, tokens, y)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, vocab, (n, steps), generator=g)
    y = tokens[:, 0] % classes
    model = bd.Classifier(Bag(bd.methods.get(method, **hyper), vocab, classes=classes), num_data=n)
    return model, bd.DropoutGuide(model), tokens, y


def tiny_classifier(method, n=40, d=6, c=3, hidden=(8,), seed=0, device="cpu", input_method=None, **hyper):
    """A small classifier on random separable data: (model, guide, x, y).  ``method`` sits where a network takes it
    (``bd.methods.names(role=...)``): on every layer of an MLP, on the inputs of an MLP without other noise, in
    the pooling layer of a 1-D convolution (Conv1d - ReLU - pool - Linear, ``hidden`` unused) on the ``d`` features
    read as a signal, or in an LSTM over the ``d`` features read as a sequence (:func:`tiny_rnn`)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :c].argmax(-1)).long()
    m = bd.methods.resolve(method, **hyper)
    role = m.capabilities.role
    if role == "layer":
        net = bd.models.mlp(d, list(hidden), c, m, input_method=input_method)
    elif role == "input":
        net = bd.models.mlp(d, list(hidden), c, None, input_method=m)
    elif role == "recurrent":
        net = tiny_rnn(m, d, c, hidden[0] if hidden else 8)
    else:
        net = PyroModule[torch.nn.Sequential](
            torch.nn.Unflatten(1, (1, d)),
            bd.nn.Conv1d(1, 4, 3, NONE, padding=1),
            torch.nn.ReLU(),
            pooling_layer(m, 1),
            torch.nn.Flatten(),
            bd.nn.Linear(4 * (d // 2), c, NONE),
        )
    model = bd.Classifier(net, num_data=n).to(device)
    guide = bd.DropoutGuide(model).to(device)
    return model, guide, x.to(device), y.to(device)


def tiny_convnet(method, n=12, c=2, hw=6, classes=3, seed=0, device="cpu", **hyper):
    """Conv2d -> ReLU -> Flatten -> Linear classifier on random images: (model, guide, x, y).  A layer method sits in
    both layers, an input method in the convolution alone, a pool method in a pooling layer after the ReLU."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, hw, hw, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    m = bd.methods.get(method, **hyper)
    role = m.capabilities.role
    if role == "recurrent":
        raise ValueError(f"{method!r} acts in recurrent layers: no convolutional network takes it")
    pool = [pooling_layer(m, 2)] if role == "pool" else []
    side = hw // 2 if pool else hw
    net = PyroModule[torch.nn.Sequential](
        bd.nn.Conv2d(c, 4, 3, m if role != "pool" else NONE, padding=1),
        torch.nn.ReLU(),
        *pool,
        torch.nn.Flatten(-3),
        bd.nn.Linear(4 * side * side, classes, m if role == "layer" else NONE),
    )
    model = bd.Classifier(net, num_data=n).to(device)
    guide = bd.DropoutGuide(model).to(device)
    return model, guide, x.to(device), y.to(device)


def elbo_loss(model, guide, x, y, seed=0):
    pyro.set_rng_seed(seed)
    return pyro.infer.TraceMeanField_ELBO(max_plate_nesting=1).differentiable_loss(model, guide, x, y)


def plain_twin_losses(method, plain_cls, *, lrt):
    """A 6-9-7-3 MLP of Gaussian-weight ``method`` (on the inputs too) and a plain network of ``plain_cls`` (lists
    ``theta``, ``log_sigma2``, ``bias`` and ``kl(method)``, as ``bayesdrop.experiments.speed.PlainLRTNet``) with the
    same parameters, log sigma^2 drawn around -4 so that log alpha lies on both sides of 0.  On one minibatch of 16
    of N = 50 and the same random stream: ``MeanFieldELBO``'s loss as ``bd.fit(..., lrt=lrt)`` computes it (the
    guide under ``LocalReparameterization(draw_weights=False)`` with ``lrt``), minus the constant KL of ``vbd``'s
    gamma sites, and the plain loss cross-entropy * N / B + KL.  Returns ``(ours, plain, ours_params,
    plain_params)``, the parameter lists in the same order (theta, then log sigma^2)."""
    from bayesdrop.handlers import LocalReparameterization
    from bayesdrop.infer import MeanFieldELBO

    widths, n, b = [6, 9, 7, 3], 50, 16
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(b, widths[0], generator=g), torch.randint(0, widths[-1], (b,), generator=g)
    m = bd.methods.get(method)
    model = bd.Classifier(bd.models.mlp(widths[0], widths[1:-1], widths[-1], m, input_method=m), num_data=n)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    net = plain_cls(widths)
    layers = [(layer, params) for _, layer, params in guide.pairs()]
    with torch.no_grad():
        for i, (layer, params) in enumerate(layers):
            params.log_sigma2.copy_(torch.randn(params.log_sigma2.shape, generator=g) - 4)
            net.theta[i].copy_(params.weight)
            net.log_sigma2[i].copy_(params.log_sigma2)
            net.bias[i].copy_(layer.bias)
    torch.manual_seed(1)
    plain = torch.nn.functional.cross_entropy(net(x), y, reduction="sum") * (n / b) + net.kl(method)
    torch.manual_seed(1)
    with pyro.validation_enabled(False):  # the handler wraps the guide, as in fit
        run = LocalReparameterization(draw_weights=False)(guide) if lrt else guide
        ours = MeanFieldELBO(max_plate_nesting=1).differentiable_loss(model, run, x, y)
    constant = sum(layer.method.kl_constant(layer) for layer, _ in layers) if method == "vbd" else 0.0
    ours_params = [p.weight for _, p in layers] + [p.log_sigma2 for _, p in layers]
    return ours - constant, plain, ours_params, [*net.theta, *net.log_sigma2]


def assert_same_loss_and_gradients(ours, plain, ours_params, plain_params):
    """The two losses of :func:`plain_twin_losses` equal to 1e-5 (relative), and their gradients."""
    import pytest

    assert ours.item() == pytest.approx(plain.item(), rel=1e-5)
    for a, c in zip(torch.autograd.grad(ours, ours_params), torch.autograd.grad(plain, plain_params)):
        torch.testing.assert_close(a, c, rtol=1e-4, atol=1e-5)


def record_validation(monkeypatch) -> list[bool]:
    """Patch ``MeanFieldELBO.differentiable_loss`` to append, at each call, whether Pyro's validation is on: the
    list it returns records the eager evaluations of the loss (a compiled step makes none)."""
    seen: list[bool] = []
    original = bd.infer.MeanFieldELBO.differentiable_loss

    def spy(self, *args, **kwargs):
        seen.append(pyro.infer.util.is_validation_enabled())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(bd.infer.MeanFieldELBO, "differentiable_loss", spy)
    return seen
