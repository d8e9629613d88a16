"""Spatial dropout (Tompson et al. 2015): one draw of the input noise per feature map of a convolution."""

from __future__ import annotations

import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

SPATIAL_METHODS = ["bernoulli", "gaussian", "concrete", "dropout++(0.5)"]


def _net(method, conv=bd.nn.Conv2d, c=3, hw=5, n=6):
    shape = (n, c, hw, hw) if conv is bd.nn.Conv2d else (n, c, hw)
    first = conv(c, 4, 3, method, padding=1, noise="channel")
    flat = 4 * hw * hw if conv is bd.nn.Conv2d else 4 * hw
    net = PyroModule[torch.nn.Sequential](
        first, torch.nn.ReLU(), torch.nn.Flatten(), bd.nn.Linear(flat, 2, "bernoulli")
    )
    model = bd.Classifier(net, num_data=n)
    return model, bd.DropoutGuide(model), torch.randn(shape), first


@pytest.mark.parametrize("parallel", [False, True], ids=["one-at-a-time", "vectorised"])
@pytest.mark.parametrize("conv", [bd.nn.Conv1d, bd.nn.Conv2d], ids=["conv1d", "conv2d"])
@pytest.mark.parametrize("method", SPATIAL_METHODS)
def test_every_position_of_a_channel_shares_its_draw_and_draws_differ(method, conv, parallel):
    """The layer multiplies its input by the noise: the input over the noisy input is constant over the positions
    of each channel of each example (one draw per feature map), and differs between examples and between draws of
    Predictive (vectorised, parallel=True, or one network at a time)."""
    model, guide, x, layer = _net(method, conv)
    guide(x)
    if method.startswith("dropout++"):  # its gates start fully open (k = 1): half-open ones draw
        with torch.no_grad():
            guide.layer_guide(layer).k.fill_(0.5)
    pyro.set_rng_seed(0)
    predictive = pyro.infer.Predictive(
        model, guide=guide, num_samples=3, parallel=parallel, return_sites=["net.0.noise"]
    )
    z = predictive(x)["net.0.noise"]  # (3, n, C, 1[, 1]): one value per feature map of each example
    assert z.shape[:3] == (3, len(x), 3) and all(n == 1 for n in z.shape[3:])
    z = z.reshape(3, len(x), 3)
    assert not torch.equal(z[0], z[1])  # draws of the predictive differ
    assert not torch.equal(z[0, 0], z[0, 1])  # examples differ
    # the multiplier of the convolution's input: constant over the positions of each feature map of each example
    value = poutine.trace(guide).get_trace(x).nodes["net.0.noise"]["value"]
    assert value.expand_as(x).flatten(2).std(-1).max() == 0


def test_the_weight_scaling_rule_folds_the_mean_of_a_feature_map_draw():
    """The test-time network of spatial Bernoulli dropout is the network at the guide's weights (inverted masks,
    mean 1); prune exports it."""
    model, guide, x, layer = _net("bernoulli")
    guide(x)
    with torch.no_grad():
        plain = bd.compress.prune(model, guide)
        torch.testing.assert_close(plain(x), guide.mean_network()(x))


def test_spatial_noise_is_refused_where_it_cannot_mean_anything():
    with pytest.raises(ValueError, match="`noise` must be one of"):
        bd.nn.Conv2d(3, 4, 3, "bernoulli", noise="pixel")
    with pytest.raises(ValueError, match="puts its randomness on the weights"):
        bd.nn.Conv2d(3, 4, 3, "sparse-vd", noise="channel")
    with pytest.raises(ValueError, match="standout draws one mask per element"):
        bd.nn.Conv2d(3, 4, 3, "standout", noise="channel")
    with pytest.raises(ValueError, match="shared draws correlate"):
        bd.nn.Conv2d(3, 4, 3, "fast-dropout", noise="channel")


@pytest.mark.parametrize("image_shape", [(1, 8, 8), (1, 40)], ids=["digits", "mnist1d"])
def test_lenet5_takes_spatial_noise_on_its_feature_maps_and_trains(image_shape):
    net = bd.models.lenet5(image_shape, 10, "bernoulli", noise="channel", channels=(4, 6), hidden=16)
    convs = [m for m in net.modules() if isinstance(m, (bd.nn.Conv1d, bd.nn.Conv2d))]
    assert [c.noise_kind for c in convs] == ["element", "channel"]
    x, y = torch.randn(12, *image_shape), torch.randint(0, 10, (12,))
    model = bd.Classifier(net, num_data=12)
    guide = bd.DropoutGuide(model)
    res = bd.fit(model, guide, (x, y), epochs=2, progress=False)
    assert len(res.history["elbo"]) == 2
    assert bd.predict(model, guide, x, num_samples=2).shape == (12, 10)
