"""The likelihood protocol: one ``distribution`` gives fit, predict, evaluate and to_inference_data their meaning.

A user's heteroscedastic likelihood (the network predicts a mean and a scale, as in tutorial 05) goes through every
entry point with nothing but ``distribution`` defined; its derived quantities are checked against formulas computed
here from the output draws.
"""

from __future__ import annotations

import math

import numpy as np
import pyro.distributions as dist
import pytest
import torch
import torch.nn.functional as F

import bayesdrop as bd


class Heteroscedastic(bd.Likelihood):
    """y ~ N(mu(x), sigma(x)^2), the network's two outputs giving mu and softplus(.) + 0.01."""

    def distribution(self, out):
        return dist.Normal(out[..., 0], F.softplus(out[..., 1]) + 0.01)


def _data(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 6 - 3
    y = torch.sin(2 * x[:, 0]) + (0.05 + 0.15 * x[:, 0].abs()) * torch.randn(n, generator=g)
    return x, y


def _trained(epochs=30):
    x, y = _data()
    net = bd.models.mlp(1, [32], 2, "bernoulli", p=0.1)
    model = Heteroscedastic(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    result = bd.fit(model, guide, (x, y), epochs=epochs, batch_size=40, progress=False)
    return model, guide, x, y, result


def test_a_likelihood_must_define_its_distribution():
    model = bd.Likelihood(bd.models.mlp(2, [3], 1), num_data=4)
    with pytest.raises(NotImplementedError, match="distribution"):
        model.distribution(torch.zeros(4, 1))


def test_user_likelihood_trains_predicts_evaluates_and_gives_inference_data():
    model, guide, x, y, result = _trained()
    h = result.history
    assert h["nll"][-1] < h["nll"][0] - 0.3  # it learned: the training NLL fell
    assert "train_acc" not in h  # no accuracy for a likelihood that reports none

    torch.manual_seed(1)
    (mean, std), out = bd.predict(model, guide, x, num_samples=50, return_samples=True)
    assert out.shape == (50, len(x), 2) and mean.shape == std.shape == (len(x),)
    mu, sigma = out[..., 0], F.softplus(out[..., 1]) + 0.01
    # law of total variance over the 50 draws, written out
    np.testing.assert_allclose(mean, mu.mean(0), rtol=1e-6)
    np.testing.assert_allclose(std**2, (sigma**2).mean(0) + mu.var(0, unbiased=False), rtol=1e-5)

    torch.manual_seed(1)
    metrics = bd.evaluate(model, guide, (x, y), num_samples=50)
    log_p = dist.Normal(mu, sigma).log_prob(y)  # same draws: the seed is the same
    expected = -(torch.logsumexp(log_p, 0) - math.log(50)).mean().item()
    assert set(metrics) == {"nll"} and metrics["nll"] == pytest.approx(expected, rel=1e-5)

    idata = bd.to_inference_data(model, guide, (x, y), num_samples=20, seed=0)
    f = idata.posterior_predictive["f"]
    assert f.dims == ("chain", "draw", "obs_id", "f_dim_0") and f.shape == (1, 20, len(x), 2)
    ll = idata.log_likelihood["y"].values[0]
    draws = torch.as_tensor(f.values[0])
    expected_ll = Heteroscedastic.distribution(model, draws).log_prob(y).numpy()
    np.testing.assert_allclose(ll, expected_ll, rtol=1e-5, atol=1e-5)
    assert idata.observed_data["y"].dtype == np.float64
    assert idata.attrs["bayesdrop_likelihood"] == "Heteroscedastic"


def test_regressor_rejects_column_targets_before_training():
    """(N, 1) targets would broadcast against (N,) means into an (N, N) likelihood: refused, with the fix named."""
    x, y = _data(40)
    model = bd.Regressor(bd.models.mlp(1, [8], 1), num_data=40)
    guide = bd.DropoutGuide(model)
    with pytest.raises(ValueError, match=r"data\.y.*shape \(N,\).*\(40, 1\).*squeeze"):
        bd.fit(model, guide, (x, y[:, None]), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"data\.y"):
        bd.evaluate(model, guide, (x, y[:, None]))
    with pytest.raises(ValueError, match=r"data\.y"):
        bd.to_inference_data(model, guide, (x, y[:, None]), num_samples=2)


def test_likelihoods_name_a_bad_argument():
    """The constructors and the model's call refuse what they cannot use, naming the argument; ``predict`` and
    ``evaluate`` refuse empty data and data without targets."""
    net = bd.models.mlp(2, [4], 3)
    with pytest.raises(TypeError, match="`net` must be a torch.nn.Module containing bayesdrop.nn layers"):
        bd.Classifier(torch.nn.Linear(2, 3), num_data=10)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="`num_data` must be a positive int"):
            bd.Classifier(net, num_data=bad)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`noise_scale` must be a finite number > 0"):
            bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, noise_scale=bad)
    for bad in ("0.1", torch.ones(2)):
        with pytest.raises(TypeError, match="`noise_scale` must be a number"):
            bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, noise_scale=bad)
    for good in (np.float32(0.5), torch.tensor(0.5), 1):  # numbers of any kind, and a one-value tensor
        sigma = bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, noise_scale=good).noise_scale
        assert sigma.item() == pytest.approx(float(good), rel=1e-6)
    with pytest.raises(ValueError, match="`horizon` must be None or a positive int"):
        bd.Regressor(bd.models.mlp(2, [4], 2), num_data=10, horizon=0)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`precision` must be a finite number > 0"):
            bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, precision=bad)
    for bad in ("4.0", True, torch.ones(2)):
        with pytest.raises(TypeError, match=r"`precision` must be a number \(the model precision tau"):
            bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, precision=bad)
    for good in (np.float32(4.0), torch.tensor(4.0), 4):  # as noise_scale: sigma = tau^-1/2, not learned
        model = bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, precision=good, noise_scale=7.0)
        assert model.noise_scale.item() == pytest.approx(0.5, rel=1e-6) and not model.noise_scale.requires_grad
    model = bd.Classifier(net, num_data=10)
    guide = bd.DropoutGuide(model)
    with pytest.raises(TypeError, match="`x` must be a floating-point tensor"):
        model(torch.zeros(5, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"`y` must be a tensor with one entry per row of `x` \(5\)"):
        model(torch.zeros(5, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"class labels must have shape \(N,\).*squeeze"):
        model.check_targets(torch.zeros(5, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="no inputs to predict"):
        bd.predict(model, guide, torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(0, 2))))
    with pytest.raises(ValueError, match="`data` must include targets"):
        bd.evaluate(model, guide, torch.zeros(5, 2))


def test_regressor_nll_is_the_mixture_density_of_the_draws():
    x, y = _data(60)
    model = bd.Regressor(bd.models.mlp(1, [16], 1, "bernoulli", p=0.2), num_data=60, noise_scale=0.3)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (x, y), epochs=3, progress=False)
    torch.manual_seed(2)
    metrics = bd.evaluate(model, guide, (x, y), num_samples=30)
    torch.manual_seed(2)
    _, out = bd.predict(model, guide, x, num_samples=30, return_samples=True)
    log_p = dist.Normal(out[..., 0], model.noise_scale).log_prob(y)
    assert metrics["nll"] == pytest.approx(-(torch.logsumexp(log_p, 0) - math.log(30)).mean().item(), rel=1e-5)
    assert metrics["rmse"] == pytest.approx((out[..., 0].mean(0) - y).pow(2).mean().sqrt().item(), rel=1e-5)


def test_predict_and_to_inference_data_refuse_a_model_that_is_not_a_likelihood():
    model, guide, x, y = _tiny()
    with pytest.raises(TypeError, match="bd.Likelihood"):
        bd.predict(torch.nn.Linear(2, 2), guide, x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="DropoutGuide built for `model`"):
        bd.to_inference_data(torch.nn.Linear(2, 2), guide, (x, y))  # type: ignore[arg-type]


def _tiny():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(10, 3, generator=g), torch.randint(0, 2, (10,), generator=g)
    model = bd.Classifier(bd.models.mlp(3, [4], 2), num_data=10)
    guide = bd.DropoutGuide(model)
    guide(x)
    return model, guide, x, y


@pytest.mark.parametrize("classes", [2, 10, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_class_softmax_is_the_softmax_over_the_classes(classes, dtype):
    """The same values as ``softmax(-1)`` / ``log_softmax(-1)`` to float round-off; on a CPU, below one SIMD
    register of classes, computed over the classes moved first (a view of that layout)."""
    from bayesdrop.likelihoods import _simd_bytes, class_softmax

    torch.manual_seed(0)
    out = torch.randn(7, 5, classes, dtype=dtype) * 5
    moved = classes * out.element_size() < _simd_bytes()
    for log in (False, True):
        got = class_softmax(out, log=log)
        want = out.log_softmax(-1) if log else out.softmax(-1)
        assert got.shape == want.shape and got.dtype == dtype
        torch.testing.assert_close(got, want)
        assert (got.stride(-1) != 1) == moved  # the moved layout exactly where the rows are short
    model = bd.Classifier(bd.nn.Linear(3, classes), num_data=5)
    torch.testing.assert_close(model.predictive(out), out.softmax(-1).mean(0))
    one = model.predictive(out[:1])
    assert one.is_contiguous() and torch.equal(one, class_softmax(out[:1])[0])


class _HeadFirst(torch.nn.Module):
    """A head registered before the body it reads: 4 -> 8 (body) -> 10 (head)."""

    def __init__(self, hidden=8, classes=10):
        super().__init__()
        self.head = torch.nn.Linear(hidden, classes)
        self.body = torch.nn.Linear(4, hidden)

    def forward(self, x):
        return self.head(self.body(x).relu())


class _TwoHeads(torch.nn.Module):
    """Two heads side by side, their outputs joined: 5 classes that no single layer outputs."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 3)
        self.b = torch.nn.Linear(4, 2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], -1)


def test_classifier_counts_the_classes_the_network_outputs_not_the_last_layer_registered():
    """A head registered before its body: 10 classes (not the body's 8), labels 0..9 train; the other way round
    (8 classes, a body of 10), labels up to 9 are refused naming both numbers; two heads joined into 5 outputs:
    labels 0..4 train and the count becomes the output's width; the probabilities have one entry per class."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    model = bd.Classifier(bd.bayesianize(_HeadFirst(), "bernoulli"), num_data=40)
    assert model.num_classes == 10
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (x, torch.arange(40) % 10), epochs=1, progress=False)
    idata = bd.to_inference_data(model, guide, (x, torch.arange(40) % 10), num_samples=2)
    assert idata.posterior_predictive["probs"].sizes["class"] == 10

    model = bd.Classifier(bd.bayesianize(_HeadFirst(10, 8), "bernoulli"), num_data=40)
    assert model.num_classes == 8
    guide = bd.DropoutGuide(model)
    with pytest.raises(ValueError, match=r"labels in \[0, 7\] \(num_classes=8"):
        bd.fit(model, guide, (x, torch.arange(40) % 10), epochs=1, progress=False)

    model = bd.Classifier(bd.bayesianize(_TwoHeads(), "bernoulli"), num_data=40)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (x, torch.arange(40) % 5), epochs=1, progress=False)
    assert model.num_classes == 5
    assert bd.predict(model, guide, x, num_samples=2).shape == (40, 5)
    with pytest.raises(ValueError, match=r"labels in \[0, 4\] \(num_classes=5\)"):
        bd.evaluate(model, guide, (x, torch.arange(40) % 6))

    # a convolution's out_channels (1) is not the width of what follows it (1 x 1 x 2, flattened)
    net = bd.models._sequential(bd.nn.Conv2d(2, 1, 1, "bernoulli"), torch.nn.Flatten(-3))
    model = bd.Classifier(net, num_data=40)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (torch.randn(40, 2, 1, 2, generator=g), torch.arange(40) % 2), epochs=1, progress=False)
    assert model.num_classes == 2


def test_classifier_takes_num_classes_and_checks_it_against_the_output():
    x, y = torch.randn(40, 4), torch.arange(40) % 3
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40, num_classes=5)
    assert model.num_classes == 5
    guide = bd.DropoutGuide(model)
    with pytest.raises(ValueError, match=r"output has 3 classes .* but num_classes is 5 \(given\)"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False)
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40, num_classes=np.int64(3))
    assert model.num_classes == 3 and type(model.num_classes) is int
    bd.fit(model, bd.DropoutGuide(model), (x, y), epochs=1, progress=False)
    for bad in (1, 2.0, "3", True):
        with pytest.raises(ValueError, match="`num_classes` must be an int >= 2"):
            bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40, num_classes=bad)


def test_regressor_names_the_targets_and_the_network_width_it_cannot_match():
    """One value per example (``horizon=None``) and a network of 3 outputs: a ``ValueError`` naming y's shape and
    the width (with the horizon that would fit) from fit, and from predict without targets; a network returning
    one value per example as ``(N,)`` still trains."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randn(40, generator=g)
    model = bd.Regressor(bd.models.mlp(4, [8], 3), num_data=40)
    guide = bd.DropoutGuide(model)
    with pytest.raises(ValueError, match=r"`y` of shape \(40,\), but the network has 3 outputs.*horizon=3"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False)
    with pytest.raises(ValueError, match=r"the network has 3 outputs"):
        bd.predict(model, guide, x, num_samples=2)

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(x).squeeze(-1)

    model = bd.Regressor(bd.bayesianize(Flat(), "bernoulli"), num_data=40)
    guide = bd.DropoutGuide(model)
    bd.fit(model, guide, (x, y), epochs=1, progress=False)
    mean, std = bd.predict(model, guide, x, num_samples=3)
    assert mean.shape == std.shape == (40,)


def test_regressor_learn_noise_must_be_a_bool_and_num_data_any_integer():
    for bad in ("no", 0, None):
        with pytest.raises(TypeError, match="`learn_noise` must be True or False"):
            bd.Regressor(bd.models.mlp(2, [4], 1), num_data=10, learn_noise=bad)
    fixed = bd.Regressor(bd.models.mlp(2, [4], 1), num_data=np.int64(10), learn_noise=False)
    assert fixed.num_data == 10 and type(fixed.num_data) is int and not fixed.log_noise.requires_grad
    assert bd.Regressor(bd.models.mlp(2, [4], 2), num_data=10, horizon=np.int64(2)).horizon == 2
    tau = bd.likelihoods.model_precision(0.1, length_scale=1e-2, weight_decay=1e-6, num_data=np.int64(400))
    assert tau == pytest.approx(0.9 * 1e-4 / (2 * 400 * 1e-6))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_inputs_with_an_extra_axis_are_refused_before_they_broadcast_the_likelihood(kind):
    """``x`` of shape ``(N, 1, D)`` for an MLP reading ``(N, D)`` gives outputs ``(N, 1, C)``, which Pyro's data plate
    broadcast against targets ``(N,)`` into an ``(N, N)`` log-likelihood: ``fit`` trained on it (a training
    accuracy above 1) and ``predict`` returned ``(N, 1, C)``.  Every run of the model and the weight-scaling rule's
    plain pass refuse it, naming ``x``; the right shape trains."""
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    if kind == "classifier":
        model: bd.Likelihood = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
        y = torch.randint(0, 3, (40,))
    else:
        model = bd.Regressor(bd.models.mlp(4, [8], 1), num_data=40)
        y = torch.randn(40)
    guide = bd.DropoutGuide(model)
    wrong = r"`x`: examples of shape \(1, 4\) give network outputs of shape \(1, \d\) each, 2 dimensions"
    with pytest.raises(ValueError, match=wrong):
        bd.fit(model, guide, (x.unsqueeze(1), y), epochs=1, progress=False)
    result = bd.fit(model, guide, (x, y), epochs=1, progress=False)
    assert math.isfinite(result.history["elbo"][0])
    for rule in ("mc", "weight-scaling"):
        with pytest.raises(ValueError, match=wrong):
            bd.predict(model, guide, x[:5].unsqueeze(1), rule=rule)
    assert model.output_dims() == ((1,) if kind == "classifier" else (0, 1))


def test_a_classifier_of_one_output_is_refused_as_one_class():
    """A network of one output makes a one-class Classifier (softmax 1 everywhere: NLL 0 and accuracy 1 whatever it
    learns): refused at construction where the width is known from the layers, naming ``net``; an explicit
    ``num_classes=1`` is refused as before."""
    with pytest.raises(
        ValueError, match=r"`net`: the network has 1 output, but a Classifier needs logits of at least 2"
    ):
        bd.Classifier(bd.models.mlp(4, [8], 1), num_data=40)
    with pytest.raises(ValueError, match=r"`num_classes`"):
        bd.Classifier(bd.models.mlp(4, [8], 1), num_data=40, num_classes=1)
    assert bd.Classifier(bd.models.mlp(4, [8], 2), num_data=40).num_classes == 2


def test_regressor_names_the_dtype_of_integer_targets():
    """Integer regression targets are refused for their dtype (the message said only their shape, which was
    right)."""
    model = bd.Regressor(bd.models.mlp(4, [8], 1), num_data=40)
    with pytest.raises(ValueError, match=r"got int64 \(40,\) \(pass y.float\(\)\)"):
        model.check_targets(torch.arange(40))
