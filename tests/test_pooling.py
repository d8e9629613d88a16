"""The pooling dropouts: max- and average-pooling dropout (Wu & Gu 2015), stochastic pooling (Zeiler & Fergus 2013)
and Max-Drop (Park & Kwak 2016) in the bd.nn pooling layers, checked against their training and test-time equations
by exact enumeration; the layers against torch's; bayesianize and lenet5 with pool methods; the errors."""

from __future__ import annotations

import itertools
import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
import torch.nn.functional as F
from helpers import pooling_layer
from pyro.nn import PyroModule

import bayesdrop as bd

POOL_METHODS = bd.methods.names(role="pool")


def _pool_model(layer, x, likelihood=bd.Classifier):
    """A likelihood whose network is ``layer`` and a flatten: the pooled values of ``x`` are the logits (the value
    of a ``bd.Regressor``, for one pooled value)."""
    net = PyroModule[torch.nn.Sequential](layer, torch.nn.Flatten())
    model = likelihood(net, num_data=len(x))
    guide = bd.DropoutGuide(model)
    guide(x)
    return model, guide


def _conditioned(layer, x, site, value):
    """The layer's output on ``x`` with its site ``site`` (within the layer) set to ``value``."""
    return poutine.condition(layer, data={layer.site(site): value})(x)


def test_the_method_list_by_role():
    assert POOL_METHODS == ["maxpool-dropout", "avgpool-dropout", "stochastic-pooling", "max-drop"]
    assert "cutout" in bd.methods.names(role="input") and "cutout" not in bd.methods.names(role="layer")
    roles = (
        set(bd.methods.names(role="layer")) | {"cutout"} | set(POOL_METHODS) | set(bd.methods.names(role="recurrent"))
    )
    assert roles == set(bd.methods.names())
    with pytest.raises(ValueError, match="`role` must be one of"):
        bd.methods.names(role="conv")


@pytest.mark.parametrize("dims, kernel, stride", [(1, 3, None), (1, 2, 3), (2, 2, None), (2, (2, 3), (1, 2))])
@pytest.mark.parametrize("reduce", ["max", "avg"])
def test_without_noise_the_layers_are_torchs_pooling(dims, kernel, stride, reduce):
    """p = 0: the window weights are the one-hot maximum (the mean), and the layers equal torch's pooling with the
    same kernel and stride, overlapping windows and rectangular kernels included."""
    method = bd.methods.get("maxpool-dropout" if reduce == "max" else "avgpool-dropout", p=0.0)
    cls = getattr(bd.nn, f"{reduce.capitalize()}Pool{dims}d")
    layer = cls(kernel, stride, method=method)
    x = torch.randn(3, 4, *([7] * dims))
    fn = getattr(F, f"{reduce}_pool{dims}d")
    torch.testing.assert_close(layer(x), fn(x, kernel, stride))


def _window_masks(k):
    return [torch.tensor(bits, dtype=torch.float64) for bits in itertools.product([0.0, 1.0], repeat=k)]


def test_probabilistic_weighted_pooling_is_the_expectation_over_all_masks():
    """A 2 x 2 window of non-negative activations (several windows and channels): the layer's output averaged over
    the 2^4 masks, each weighted by its probability and set through the model's mask site, equals the deterministic
    test-time network (probabilistic weighted pooling, Wu & Gu 2015) to 1e-6; the exported plain module too."""
    p = 0.3
    method = bd.methods.get("maxpool-dropout", p=p)
    layer = bd.nn.MaxPool2d(2, method=method).double()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)  # 2 x 2 windows of each feature map
    expectation = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    for m in _window_masks(4):  # one mask for every window of every example
        prob = math.prod((1 - p) if b else p for b in m.tolist())
        mask = m.expand(2, 3, 2, 2, 4)
        out = _conditioned(layer, x, "mask", mask)
        windows = bd.nn.pooling.windows(x, (2, 2), (2, 2))
        torch.testing.assert_close(out, (windows * m).amax(-1))  # the training output: max over the masked window
        expectation += prob * out
    model, guide = _pool_model(layer, x)
    mean = guide.mean_network()(x).reshape(expectation.shape)
    torch.testing.assert_close(mean, expectation, atol=1e-6, rtol=0)
    plain = bd.compress.prune(model, guide)
    assert isinstance(plain[0], bd.nn.WindowPool)
    torch.testing.assert_close(plain(x).reshape(expectation.shape), expectation, atol=1e-6, rtol=0)


def test_the_scaled_max_rule_differs_from_the_expectation_on_the_documented_example():
    """The window (1, 2, 3, 4) at p = 0.5: probabilistic weighted pooling gives 0.5*4 + 0.25*3 + 0.125*2 + 0.0625*1 =
    3.0625 (the expectation), the scaled rule (1 - p) max = 2 (the methods module's docstring)."""
    x = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    outs = {}
    for rule in ("probabilistic", "scaled"):
        layer = bd.nn.MaxPool2d(2, method=bd.methods.get("maxpool-dropout", p=0.5, test_rule=rule))
        _, guide = _pool_model(layer, x, bd.Regressor)
        outs[rule] = guide.mean_network()(x).item()
    assert outs == {"probabilistic": 3.0625, "scaled": 2.0}
    with pytest.raises(ValueError, match="`test_rule` must be one of"):
        bd.methods.get("maxpool-dropout", test_rule="expected")
    with pytest.raises(ValueError, match="`test_rule` must be one of"):  # also when switched on a trained network
        layer.method.test_rule = "scale"


def test_max_pooling_dropout_with_negative_values_is_the_max_of_the_masked_window():
    """Where the maximum of the masked window is a dropped element (a window of negative values with one kept),
    the output is 0 = max(m * a), as the paper's formula says."""
    layer = bd.nn.MaxPool1d(3, method="maxpool-dropout")
    x = torch.tensor([[[-1.0, -2.0, 3.0]]])
    mask = torch.tensor([[[[1.0, 0.0, 0.0]]]])
    assert _conditioned(layer, x, "mask", mask).item() == 0.0


def test_average_pooling_dropout_is_unbiased_and_unchanged_at_test_time():
    """Inverted masks: the mean over all 2^4 masks of the training output is the plain average, which is the test
    time network."""
    p = 0.4
    layer = bd.nn.AvgPool2d(2, method=bd.methods.get("avgpool-dropout", p=p)).double()
    x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
    expectation = torch.zeros(2, 3, 1, 1, dtype=torch.float64)
    for m in _window_masks(4):
        prob = math.prod((1 - p) if b else p for b in m.tolist())
        expectation += prob * _conditioned(layer, x, "mask", (m / (1 - p)).expand(2, 3, 1, 1, 4))
    torch.testing.assert_close(expectation, F.avg_pool2d(x, 2), atol=1e-12, rtol=0)
    _, guide = _pool_model(layer, x)
    torch.testing.assert_close(guide.mean_network()(x), F.avg_pool2d(x, 2).flatten(1))


def test_stochastic_pooling_test_weighting_is_the_expectation_of_the_training_sample():
    """Zeiler & Fergus: the training output is a_l, l ~ p_k = a_k / sum a.  Enumerating the window: the threshold
    t in [cdf_{k-1}, cdf_k) picks element k (checked at the interval's midpoint through the model's threshold
    site), so E[y] = sum_k (cdf_k - cdf_{k-1}) a_k; it equals the test-time network exactly.  Elements of value 0
    are never picked; a window without positive values outputs 0."""
    layer = bd.nn.MaxPool2d(2, method="stochastic-pooling").double()
    x = torch.tensor([[[[0.5, 0.0], [2.0, 1.5]], [[0.0, 0.0], [0.0, 0.0]]]], dtype=torch.float64)  # (1, 2, 2, 2)
    windows = bd.nn.pooling.windows(x, (2, 2), (2, 2))[0, 0, 0, 0]  # (0.5, 0, 2, 1.5)
    probs = windows / windows.sum()
    cdf = torch.cat([torch.zeros(1, dtype=torch.float64), probs.cumsum(0)])
    expectation = 0.0
    for k in range(4):
        if probs[k] == 0:
            continue
        t = torch.tensor([[[0.5 * (cdf[k] + cdf[k + 1])], [0.3]]], dtype=torch.float64).reshape(1, 2, 1, 1)
        out = _conditioned(layer, x, "threshold", t)
        assert out[0, 0].item() == windows[k].item()  # the element whose interval holds t
        assert out[0, 1].item() == 0.0  # no positive value: 0
        expectation += (cdf[k + 1] - cdf[k]).item() * windows[k].item()
    _, guide = _pool_model(layer, x)
    mean = guide.mean_network()(x)
    assert mean[0, 0].item() == pytest.approx(expectation, abs=1e-12)
    assert mean[0, 0].item() == pytest.approx((probs * windows).sum().item(), abs=1e-12)
    # the drawn elements over many thresholds follow p: a chi-square test at a fixed seed, significance 0.001
    pyro.set_rng_seed(0)
    counts = torch.zeros(4)
    draws = layer(x.expand(4000, 2, 2, 2))[:, 0, 0, 0]
    for k in range(4):
        counts[k] = (draws == windows[k]).sum()
    expected = 4000 * probs.float()
    keep = expected > 0
    stat = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
    assert counts[~keep].sum() == 0 and stat < 13.82  # chi-square(2 degrees of freedom) at 0.001


def test_max_drop_multiplies_the_window_by_one_minus_a_gaussian_fraction_and_scales_the_max_at_test_time():
    """Training: max_k (1 - M_k) a_k with 1 - M ~ N(1 - mu, sigma^2) per element (mean and variance of the drawn
    multipliers within 5 standard errors); test time: (1 - mu) max_k a_k; keep probability 1 / (1 + alpha)."""
    mu, sigma2 = 0.1, 0.05
    method = bd.methods.get("max-drop", mu=mu, sigma2=sigma2)
    layer = bd.nn.MaxPool2d(2, method=method)
    x = torch.rand(64, 8, 4, 4)
    pyro.set_rng_seed(1)
    tr = poutine.trace(layer).get_trace(x)
    z = tr.nodes[layer.site("noise")]["value"]
    assert z.shape == (64, 8, 2, 2, 4)
    n = z.numel()
    assert abs(z.mean().item() - (1 - mu)) < 5 * math.sqrt(sigma2 / n)
    assert abs(z.var().item() - sigma2) < 5 * sigma2 * math.sqrt(2 / n)
    windows = bd.nn.pooling.windows(x, (2, 2), (2, 2))
    torch.testing.assert_close(tr.nodes["_RETURN"]["value"], (windows * z).amax(-1))
    _, guide = _pool_model(layer, x)
    torch.testing.assert_close(guide.mean_network()(x), (1 - mu) * F.max_pool2d(x, 2).flatten(1))
    alpha = sigma2 / (1 - mu) ** 2
    model, guide = _pool_model(bd.nn.MaxPool2d(2, method=method), x)
    assert bd.dropout_rates(model, guide)["net.0"].tolist() == pytest.approx([1 / (1 + alpha)])


@pytest.mark.parametrize("method", POOL_METHODS)
def test_draws_are_per_example_local_sites_and_differ_between_examples_and_networks(method):
    """Every pool method's draws are sample sites in the data plate (one per example), so MC prediction averages
    over them: two examples with the same input get different outputs, and so do two draws of one example."""
    layer = pooling_layer(bd.methods.get(method), 2)
    x = torch.rand(1, 3, 4, 4).expand(6, 3, 4, 4) + 0.1
    model, guide = _pool_model(layer, x)
    tr = poutine.trace(guide).get_trace(x)
    draw = next(s for n, s in tr.nodes.items() if n.startswith("net.0.") and s["type"] == "sample")
    assert [f.name for f in draw["cond_indep_stack"]] == ["data"] and draw["value"].shape[0] == 6
    _, out = bd.predict(model, guide, x, num_samples=4, return_samples=True)
    assert not torch.equal(out[0, 0], out[0, 1]) and not torch.equal(out[0, 0], out[1, 0])


def test_keep_probabilities_are_reported_per_pooling_layer():
    x = torch.rand(4, 2, 4, 4)
    expected = {"maxpool-dropout": 0.5, "avgpool-dropout": 0.5, "stochastic-pooling": 1.0}
    for name, keep in expected.items():
        cls = bd.nn.AvgPool2d if name == "avgpool-dropout" else bd.nn.MaxPool2d
        model, guide = _pool_model(cls(2, method=name), x)
        assert bd.dropout_rates(model, guide)["net.0"].tolist() == [keep]


def test_pool_methods_and_layers_refuse_what_they_cannot_do():
    with pytest.raises(ValueError, match="acts on pool sites, and Linear has none; put it in a pooling layer"):
        bd.nn.Linear(4, 2, "maxpool-dropout")
    with pytest.raises(ValueError, match="acts on noise sites, and MaxPool2d has none; use a pool method"):
        bd.nn.MaxPool2d(2, method="bernoulli")
    with pytest.raises(ValueError, match="randomises max pooling, and AvgPool2d pools by 'avg'"):
        bd.nn.AvgPool2d(2, method="maxpool-dropout")
    with pytest.raises(ValueError, match="randomises avg pooling, and MaxPool1d pools by 'max'"):
        bd.nn.MaxPool1d(2, method="avgpool-dropout")
    with pytest.raises(ValueError, match="`kernel_size` must be a positive int"):
        bd.nn.MaxPool2d((2, 0))
    with pytest.raises(ValueError, match="`x` must have shape"):
        bd.nn.MaxPool2d(2)(torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="smaller than the pooling kernel"):
        bd.nn.MaxPool1d(4)(torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="`p`"):
        bd.methods.get("maxpool-dropout", p=1.0)
    with pytest.raises(ValueError, match="`sigma2`"):
        bd.methods.get("max-drop", sigma2=0.0)
    with pytest.raises(ValueError, match="`mu`"):
        bd.methods.get("max-drop", mu=1.0)
    with pytest.raises(TypeError, match="unknown hyper-parameter"):
        bd.methods.get("stochastic-pooling", p=0.5)


def test_lenet5_takes_a_pool_method_and_picks_the_pooling_it_randomises():
    net = bd.models.lenet5((1, 8, 8), 10, None, pool_method="maxpool-dropout", channels=(4, 6), hidden=16)
    assert [type(m).__name__ for m in net if "Pool" in type(m).__name__] == ["MaxPool2d", "MaxPool2d"]
    assert all(isinstance(m, bd.nn.BayesianLayer) for m in net if "Pool" in type(m).__name__)
    assert {m.method.p for m in net if isinstance(m, (bd.nn.Conv2d, bd.nn.Linear))} == {0.0}  # method=None
    net = bd.models.lenet5((1, 40), 10, None, pool_method="avgpool-dropout", channels=(4, 6), hidden=16)
    assert [type(m) for m in net if "Pool" in type(m).__name__] == [bd.nn.AvgPool1d, bd.nn.AvgPool1d]
    net = bd.models.lenet5((1, 8, 8), 10, pool_method="stochastic-pooling", pooling="avg", channels=(4, 6), hidden=16)
    assert [type(m) for m in net if "Pool" in type(m).__name__] == [bd.nn.AvgPool2d, bd.nn.AvgPool2d]
    with pytest.raises(ValueError, match="`pool_method` must be a method for pooling layers"):
        bd.models.lenet5((1, 8, 8), 10, pool_method="bernoulli")
    with pytest.raises(ValueError, match="`method` 'max-drop' is a method for pooling layers: pass it as pool_method"):
        bd.models.lenet5((1, 8, 8), 10, "max-drop")
    with pytest.raises(ValueError, match="`pooling` must be 'max' or 'avg'"):
        bd.models.lenet5((1, 8, 8), 10, pooling="min")


class _TorchCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, 6, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Dropout2d(0.25),
            torch.nn.Conv2d(6, 8, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.features(x))


def test_bayesianize_turns_max_pooling_and_dropout2d_into_bayesdrop_layers_that_train_and_predict():
    """nn.MaxPool2d -> bd.nn.MaxPool2d with the pool method; nn.Dropout2d -> spatial dropout of the next
    convolution (noise='channel'); the network trains, predicts by MC and by the test-time rule, and prunes to a
    plain network that equals the mean network."""
    net = bd.bayesianize(_TorchCNN(), "bernoulli", pool_method="maxpool-dropout")
    convs = [m for m in net.modules() if isinstance(m, bd.nn.Conv2d)]
    pools = [m for m in net.modules() if isinstance(m, bd.nn.MaxPool2d)]
    assert [c.noise_kind for c in convs] == ["element", "channel"] and len(pools) == 2
    assert not any(isinstance(m, torch.nn.Dropout2d) for m in net.modules())
    data = bd.data.load("digits")
    x, y = data.images(data.train)[:64], data.train.y[:64]
    model = bd.Classifier(net, num_data=64)
    guide = bd.DropoutGuide(model)
    res = bd.fit(model, guide, (x, y), epochs=2, progress=False, validate=False)
    assert len(res.history["elbo"]) == 2
    probs, draws = bd.predict(model, guide, x, num_samples=3, return_samples=True)
    assert probs.shape == (64, 10) and draws.std(0).max() > 0
    model.eval()
    with torch.no_grad():
        plain = bd.compress.prune(model, guide)
        torch.testing.assert_close(plain(x), guide.mean_network(pruned=True)(x))


def test_bayesianize_warns_for_what_it_cannot_convert_and_refuses_pool_settings_it_lacks():
    cnn = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(2, 2)
    )
    with pytest.warns(UserWarning, match="'maxpool-dropout' does not randomise AvgPool2d, which stays plain: 1"):
        bd.bayesianize(cnn, "bernoulli", pool_method="maxpool-dropout")
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    match = "'avgpool-dropout' does not randomise AdaptiveAvgPool2d, which stays plain: 1"
    with pytest.warns(UserWarning, match=match):  # a pool_method that finds nothing to act on is not silent
        bd.bayesianize(cnn, "bernoulli", pool_method="avgpool-dropout")
    cnn = torch.nn.Sequential(torch.nn.Dropout2d(), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.warns(UserWarning, match="0 drop whole feature maps"):
        bd.bayesianize(cnn, "bernoulli")
    cnn = torch.nn.Sequential(torch.nn.Dropout2d(), torch.nn.Conv2d(1, 2, 3))
    with pytest.warns(UserWarning, match="0 drop whole feature maps, which 'standout' cannot give there"):
        bd.bayesianize(cnn, "standout")
    with pytest.raises(ValueError, match="padding=1.*bd.nn pooling layers take none of these"):
        bd.bayesianize(
            torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.MaxPool2d(2, padding=1)), pool_method="max-drop"
        )
    with pytest.raises(ValueError, match="`pool_method` must be a method for pooling layers"):
        bd.bayesianize(torch.nn.Linear(2, 2), pool_method="bernoulli")
    with pytest.raises(ValueError, match="pass it as pool_method="):
        bd.bayesianize(torch.nn.Linear(2, 2), "maxpool-dropout")


def test_the_exported_pooling_module_saves_and_loads(tmp_path):
    """compress.save exports the plain network (torch.export) with the test-time pooling, and it loads back."""
    net = bd.models.lenet5((1, 8, 8), 10, None, pool_method="maxpool-dropout", channels=(3, 4), hidden=8)
    model = bd.Classifier(net, num_data=8)
    guide = bd.DropoutGuide(model)
    x = torch.rand(8, 1, 8, 8)
    guide(x)
    plain = bd.compress.prune(model, guide)
    path = tmp_path / "net.pt2"
    bd.compress.save(plain, path, x)
    torch.testing.assert_close(bd.compress.load(path)(x), plain(x))
