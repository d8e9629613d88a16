"""The plain modules behind a prediction (:mod:`bayesdrop.infer.plain`): networks whose drawn weights are the whole
network run as plain modules, one after another, and give what the Pyro passes give; where they do not apply, they
are not used; the weight-scaling network is left as it was."""

from __future__ import annotations

import importlib

import pyro
import pytest
import torch
from helpers import tiny_classifier
from test_architecture import BUILDERS, _randomise, _refusal

import bayesdrop as bd
from bayesdrop.infer.plain import PlainDraws, plain_draws
from bayesdrop.posterior import PosteriorSampler

predict_module = importlib.import_module("bayesdrop.infer.predict")

#: the methods whose networks draw nothing per example at test time (Gaussian weights, SBP's per-unit noise)
PLAIN = ("vd", "sparse-vd", "vbd", "sbp")
KINDS = ("linear", "conv2d", "embedding")


def _cases():
    return [(method, kind) for method in bd.methods.names() for kind in BUILDERS if _refusal(method, kind) is None]


def _built(method, kind):
    model, guide, x, y = BUILDERS[kind](method)
    guide(x, y)
    _randomise(guide)
    model.eval()
    return model, guide, x


@pytest.mark.parametrize("method,kind", _cases())
def test_the_networks_run_as_plain_modules_exactly_where_they_draw_nothing_per_example(method, kind):
    """Every method on every layer kind: the plain path applies to the methods whose networks draw nothing per
    example, on the layer kinds with a plain module of one weight, and nowhere else."""
    model, guide, x = _built(method, kind)
    expected = method in PLAIN and kind in KINDS
    assert predict_module._plain_possible(model, guide, x) is expected


@pytest.mark.parametrize("method", PLAIN)
@pytest.mark.parametrize("kind", KINDS)
def test_plain_networks_are_the_pyro_passes_networks(method, kind, monkeypatch):
    """``parallel=False`` runs the networks as plain modules (no Pyro pass of the sampler runs), and its prediction
    is the vectorised Pyro passes' (passes of 3) from the same seed to float32 round-off, in one batch and in
    batches of 5 (the networks' weights kept between batches); the generator is left where the Pyro passes leave
    it; and the weight-scaling network's parameters are untouched."""
    model, guide, x = _built(method, kind)
    mean_before = bd.predict(model, guide, x, rule="weight-scaling")
    for rows in (len(x), 5):  # the once-per-shape check runs the sampler's passes: done here
        assert predict_module._plain_possible(model, guide, x[:rows])
    runs, states = {}, {}
    for parallel in (3, False):
        for batch in (None, 5):
            pyro.set_rng_seed(4)
            if parallel is False:  # the plain path: the sampler's own passes must not run
                monkeypatch.setattr(PosteriorSampler, "_run", _refused)
            runs[parallel, batch] = bd.predict(model, guide, x, num_samples=7, parallel=parallel, batch_size=batch)
            states[parallel, batch] = torch.get_rng_state()
            monkeypatch.undo()
    reference = runs[3, None]
    for key, probs in runs.items():
        torch.testing.assert_close(probs, reference, rtol=1e-5, atol=1e-6, msg=str(key))
        assert torch.equal(states[key], states[3, None]), key
    torch.testing.assert_close(bd.predict(model, guide, x, rule="weight-scaling"), mean_before, rtol=0, atol=0)


def _refused(*args, **kwargs):
    raise AssertionError("the sampler's Pyro passes ran where the plain networks should have")


def test_a_plain_path_that_disagrees_with_the_pyro_passes_is_not_taken(monkeypatch):
    """The once-per-guide check compares the plain networks' outputs with the sampler's: plain weights that differ
    from the drawn ones (here scaled by 1.01) make it refuse the plain path, and the prediction is the Pyro one."""
    model, guide, x, _ = tiny_classifier("sparse-vd")
    guide(x)
    model.eval()
    honest = PlainDraws.weights
    monkeypatch.setattr(PlainDraws, "weights", lambda self, i: [1.01 * w for w in honest(self, i)])
    assert predict_module._plain_possible(model, guide, x) is False
    pyro.set_rng_seed(0)
    got = bd.predict(model, guide, x, num_samples=5, parallel=False)
    monkeypatch.undo()
    pyro.set_rng_seed(0)
    torch.testing.assert_close(got, bd.predict(model, guide, x, num_samples=5, parallel=3), rtol=1e-5, atol=1e-6)


def test_a_likelihood_with_its_own_forward_keeps_the_pyro_passes():
    """A likelihood whose ``forward`` computes more than its network: its outputs are not the plain module's, so
    ``plain_draws`` declines."""

    class Shifted(bd.Classifier):
        def forward(self, x, y=None):
            return super().forward(x + 1.0, y)

    torch.manual_seed(0)
    net = bd.models.mlp(6, [8], 3, "sparse-vd")
    model = Shifted(net, num_data=40)
    guide = bd.DropoutGuide(model)
    x = torch.randn(40, 6)
    guide(x)
    model.eval()
    sampler = PosteriorSampler(model, guide, 2, x[:1], lazy=True)
    assert plain_draws(model, guide, sampler) is None
    assert predict_module._plain_possible(model, guide, x) is False


def test_a_lazy_sampler_draws_the_networks_it_would_have_drawn_at_once():
    """``lazy=True`` leaves the networks' streams untouched until a pass needs them: its outputs are those of a
    sampler that drew at construction, from the same seed."""
    model, guide, x, _ = tiny_classifier("bernoulli")
    guide(x)
    model.eval()
    outs = []
    for lazy in (False, True):
        pyro.set_rng_seed(3)
        sampler = PosteriorSampler(model, guide, 4, x[:1], parallel=2, lazy=lazy)
        assert len(sampler.networks) == (0 if lazy else 2)
        torch.manual_seed(99)  # the current stream moves between construction and the pass
        outs.append(sampler.outputs(x))
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=0)
    with pytest.raises(TypeError, match="`lazy` must be a bool"):
        PosteriorSampler(model, guide, 4, x[:1], lazy=1)


def test_auto_on_a_cpu_runs_plain_networks_where_they_are_faster():
    """``parallel="auto"`` on a CPU, for networks that run as plain modules: one plain pass per network where 10 of
    them take less than a vectorised pass of 10, the vectorised pass otherwise (stated timings: the probe times
    the plain networks, then the vectorised pass, each of 10 networks)."""
    for seed, (plain, vectorised), expected in ((0, (0.1, 0.2), False), (1, (0.3, 0.2), 10)):
        model, guide, x, _ = tiny_classifier("vbd", seed=seed)
        guide(x)
        model.eval()
        stated = iter((plain, vectorised))
        counts: list[int] = []

        def seconds(run, stated=stated, counts=counts):
            counts.append(run().shape[0])
            return next(stated)

        assert predict_module._cpu_networks_per_pass(model, guide, x, 100, seconds) == expected
        assert counts == [10, 10]
