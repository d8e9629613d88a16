"""Vectorised posterior draws: ``bd.predict(parallel=True)``, ``PosteriorSampler(parallel=True)`` and the layout of
:class:`bayesdrop.sites.Draws` (the draws folded into the batch axis).

Every method on every layer kind is checked against networks run one at a time in ``test_architecture.py``; here:
the same law as the loop through ``bd.predict``, exact agreement where the draws are the same networks, bounded
memory by ``batch_size``, and the refusals.
"""

from __future__ import annotations

import contextlib

import pyro
import pytest
import torch
from helpers import tiny_classifier, tiny_convnet

import bayesdrop as bd
from bayesdrop.sites import Draws


def test_draws_fold_the_input_draw_major_and_unfold_the_output():
    d = Draws(count=3, batch=2, shape=(3, 2))
    x = torch.arange(4.0).reshape(2, 2)
    folded = d.fold(x)
    assert folded.shape == (6, 2) and torch.equal(folded[2:4], x) and torch.equal(folded[4:], x)
    assert d.fold(folded) is folded  # already folded
    assert torch.equal(d.unfold(folded)[1], x)
    with pytest.raises(ValueError, match="expected 2 rows"):
        d.fold(torch.zeros(5, 2))
    seq = torch.zeros(7, 2, 4)  # time first: the batch on axis 1
    assert d.fold(seq, dim=1).shape == (7, 6, 4)


@pytest.mark.parametrize("parallel", [True, 7])
@pytest.mark.parametrize("method", ["bernoulli", "vd"])
def test_predict_in_parallel_draws_from_the_same_law_as_the_loop(method, parallel):
    """Classifier probabilities averaged over 300 draws: vectorised (in one pass, or in passes of 7 networks, the
    last of 6) and looped agree within 5 standard errors of the difference, per input and class (a 5-sigma band:
    flakes with probability below 1e-5 per entry on another random stream)."""
    model, guide, x, y = tiny_classifier(method)
    guide(x, y)
    probs = {}
    for p in (parallel, False):
        pyro.set_rng_seed(1)
        _, draws = bd.predict(model, guide, x, num_samples=300, parallel=p, return_samples=True)
        probs[p] = draws.softmax(-1)
        assert draws.shape == (300, len(x), 3)
    a, b = probs[parallel], probs[False]
    se = ((a.var(0) + b.var(0)) / 300).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() <= 5 * se + 1e-6).all()
    assert not torch.allclose(a[0], a[1])  # the draws are different networks


@pytest.mark.parametrize("parallel", [True, 3])
def test_batches_of_a_vectorised_prediction_share_the_networks(parallel):
    """With Gaussian weights and no masks (``vd`` at prediction), the output is a function of the drawn networks:
    batch_size=3 gives exactly the draws of one pass, at a fixed seed (the networks are drawn before the batches),
    also in passes of 3 networks (3, 3 and 1)."""
    model, guide, x, y = tiny_classifier("vd")
    guide(x, y)
    outs = []
    for batch_size in (None, 3):
        pyro.set_rng_seed(0)
        outs.append(
            bd.predict(model, guide, x, num_samples=7, parallel=parallel, batch_size=batch_size, return_samples=True)[1]
        )
    assert outs[0].shape == (7, len(x), 3)
    torch.testing.assert_close(outs[0], outs[1])
    one = bd.predict(model, guide, x, rule="weight-scaling")
    torch.testing.assert_close(one, bd.predict(model, guide, x, rule="weight-scaling", batch_size=5))


def test_evaluate_takes_the_vectorised_draws():
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    pyro.set_rng_seed(0)
    metrics = bd.evaluate(model, guide, (x, y), num_samples=50, parallel=True, batch_size=4)
    assert set(metrics) >= {"acc", "nll"} and 0.0 <= metrics["acc"] <= 1.0 and metrics["nll"] > 0


def test_regression_and_recurrent_networks_predict_in_parallel():
    """A Regressor's (mean, std) and an LSTM's class probabilities, vectorised."""
    torch.manual_seed(0)
    x, y = torch.randn(12, 3), torch.randn(12)
    model = bd.Regressor(bd.models.mlp(3, [8], 1, method="concrete"), num_data=12)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    mean, std = bd.predict(model, guide, x, num_samples=20, parallel=True)
    assert mean.shape == std.shape == (12,) and (std > 0).all()
    seq = torch.randn(5, 6, 2)
    rnn = bd.Classifier(bd.models.rnn(2, 8, 3, method="variational-rnn"), num_data=5)
    g = bd.DropoutGuide(rnn)
    g(seq)
    probs = bd.predict(rnn, g, seq, num_samples=10, parallel=True)
    assert probs.shape == (5, 3) and torch.allclose(probs.sum(-1), torch.ones(5), atol=1e-5)


def test_refusals_name_the_argument():
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    with pytest.raises(ValueError, match="`parallel` must be 'auto', a bool or a positive int"):
        bd.predict(model, guide, x, parallel="yes")
    with pytest.raises(ValueError, match="`parallel` must be a bool or a positive int"):
        bd.predict(model, guide, x, parallel=0)
    with pytest.raises(ValueError, match="`batch_size`"):
        bd.predict(model, guide, x, batch_size=0)
    with pytest.raises(TypeError, match="`parallel`"):
        bd.posterior.PosteriorSampler(model, guide, 2, x[:1], parallel=1.5)
    with pytest.raises(ValueError, match="`parallel`"):
        bd.posterior.PosteriorSampler(model, guide, 2, x[:1], parallel=-1)


@pytest.mark.parametrize("method", ["bernoulli", "vd"])
def test_a_prediction_is_the_same_however_the_networks_are_grouped(method):
    """The fixed-seed comparison: class probabilities of 40 networks drawn one pass each, in passes of 7 (the last
    of 5), all at once, and by ``"auto"``, equal to 1e-6; so are evaluate's metrics, with per-example and shared
    masks; and the networks differ from one another."""
    model, guide, x, y = tiny_classifier(method)
    guide(x, y)
    probs, draws = {}, {}
    for p in (False, 7, True, "auto"):
        pyro.set_rng_seed(3)
        probs[p], draws[p] = bd.predict(model, guide, x, num_samples=40, parallel=p, return_samples=True)
    for p in (7, True, "auto"):
        torch.testing.assert_close(probs[p], probs[False], rtol=0, atol=1e-6)
        torch.testing.assert_close(draws[p].softmax(-1), draws[False].softmax(-1), rtol=0, atol=1e-6)
    assert not torch.allclose(draws[False][0], draws[False][1])
    for noise in ("per-example", "shared"):
        metrics = [bd.evaluate(model, guide, (x, y), noise=noise, seed=1, parallel=p) for p in (False, 4, True)]
        for m in metrics[1:]:
            assert m.keys() == metrics[0].keys()
            assert all(abs(m[k] - metrics[0][k]) <= 1e-6 for k in m)


@pytest.mark.parametrize("method", bd.methods.names())
def test_every_method_draws_the_same_networks_in_any_grouping(method):
    """Every method on every layer kind, its variational parameters moved off their initial values: the outputs
    and the drawn observations of 7 networks in one pass each and in passes of 3 (3, 3 and 1) agree (outputs to
    float32 round-off at the outputs' scale, observations exactly), in evaluation mode, with masks per example
    (and, on the linear network, shared)."""
    from test_architecture import BUILDERS, _randomise, _refusal

    for kind, build in BUILDERS.items():
        if _refusal(method, kind) is not None:
            continue
        model, guide, x, y = build(method)
        guide(x, y)
        _randomise(guide)
        model.eval()
        for shared in (False, True) if kind == "linear" else (False,):
            runs = {}
            for p in (False, 3):
                pyro.set_rng_seed(5)
                sampler = bd.posterior.PosteriorSampler(model, guide, 7, x[:1], parallel=p, shared_noise=shared)
                runs[p] = sampler.run(x, batch_size=9)
            out, obs = runs[False]
            # round-off relative to the outputs' scale: a batched and a single convolution sum in different orders,
            # and with the log alphas of _randomise (up to 6) the outputs reach thousands where some are near 0
            atol = 1e-5 * max(1.0, out.abs().max().item())
            torch.testing.assert_close(runs[3][0], out, rtol=1e-5, atol=atol, msg=f"{kind}, shared={shared}")
            assert torch.equal(runs[3][1], obs), (kind, shared)


def test_regression_draws_the_same_observations_in_any_grouping():
    """The observation law depends on each network's output (a Normal around it): in a pass of several networks
    each is drawn from its network's slice of the law, so the replicated observations agree exactly."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(20, 3, generator=g), torch.randn(20, generator=g)
    model = bd.Regressor(bd.models.mlp(3, (8,), 1), num_data=20)
    guide = bd.DropoutGuide(model)
    guide(x, y)
    runs = []
    for p in (False, 4):
        pyro.set_rng_seed(2)
        runs.append(bd.posterior.PosteriorSampler(model, guide, 6, x[:1], parallel=p).run(x))
    torch.testing.assert_close(runs[1][0], runs[0][0], rtol=1e-6, atol=1e-6)
    assert torch.equal(runs[1][1], runs[0][1]) and runs[0][1].shape == (6, 20)


@pytest.mark.parametrize("parallel", [False, 3])
def test_outputs_are_the_runs_without_drawing_the_observations(parallel, monkeypatch):
    """``PosteriorSampler.outputs`` (what ``bd.predict`` reads): the outputs of ``run`` at the same seed, with the
    observation site left undrawn in its passes, so a sampler of the class labels is never called."""
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    samplers = []
    for _ in range(3):  # the same seed: the same networks
        pyro.set_rng_seed(4)
        samplers.append(bd.posterior.PosteriorSampler(model, guide, 7, x[:1], parallel=parallel))
    out, _ = samplers[0].run(x)

    def refused(self, sample_shape=torch.Size()):
        raise AssertionError("the observation site was drawn")

    monkeypatch.setattr(bd.distributions.LogitsCategorical, "sample", refused)
    torch.testing.assert_close(samplers[1].outputs(x), out, rtol=0, atol=0)
    with pytest.raises(AssertionError, match="observation site was drawn"):
        samplers[2].run(x)


def test_network_streams_leave_the_callers_stream_and_refuse_a_misshapen_site():
    """:class:`~bayesdrop.handlers.NetworkStreams`: the default generator's state is the caller's after a pass;
    the networks' states move; an empty range, and a site whose batch has neither 1 nor the networks' number at the
    plate's dimension, are refused."""
    from bayesdrop.handlers import NetworkStreams, default_generator

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    gen = default_generator(x.device)
    states = [torch.Generator().manual_seed(i).get_state() for i in range(3)]
    before, first = torch.get_rng_state(), [t.clone() for t in states]
    with torch.no_grad(), pyro.plate("draws", 3, dim=-2), NetworkStreams(gen, states, range(3)):
        guide_trace = pyro.poutine.trace(guide).get_trace(x)
        pyro.poutine.trace(pyro.poutine.replay(model, trace=guide_trace)).get_trace(x)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(not torch.equal(a, b) for a, b in zip(states, first))
    with pytest.raises(ValueError, match="`networks`"):
        NetworkStreams(gen, states, range(2, 5))

    def two_of_three():
        pyro.sample("z", pyro.distributions.Normal(torch.zeros(2, 1), 1.0).to_event(0))

    with pytest.raises(ValueError, match="site 'z'.*2 at the networks' dimension -2"):
        with pyro.plate("draws", 3, dim=-2), NetworkStreams(gen, states, range(3)):
            two_of_three()


def test_auto_on_a_cpu_takes_passes_of_networks_where_a_timed_pass_is_faster():
    """``parallel="auto"``'s CPU rule with stated timings: passes of 10 networks where one costs under 0.8 of 10
    single passes, one pass per network otherwise; no probe for S < 20 or a batch too large for 2 networks per
    pass, fewer networks where 10 would pass 4096 rows; the probe runs once per shapes, on a fork of the
    generators."""
    from bayesdrop.infer.predict import _cpu_networks_per_pass

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    model.eval()
    timed = []

    def clock(seconds_per_network, fixed):
        def seconds(run):
            out = run()  # the outputs, (networks, B, C)
            timed.append(out.shape[0])
            return fixed + seconds_per_network * out.shape[0]

        return seconds

    state = torch.get_rng_state()
    # a pass of 10: 0.1 + 10 * 0.01 = 0.2 s against 10 * 0.11 = 1.1 s
    assert _cpu_networks_per_pass(model, guide, x, 100, clock(0.01, 0.1)) == 10
    assert torch.equal(torch.get_rng_state(), state) and timed == [1, 1, 10]
    assert _cpu_networks_per_pass(model, guide, x, 100, clock(1.0, 0.0)) == 10 and len(timed) == 3  # kept
    assert _cpu_networks_per_pass(model, guide, x, 19, clock(0.01, 0.1)) is False and len(timed) == 3
    # no fixed cost to share: 10 s against 10 s, not under 0.8
    other, other_guide, xo, yo = tiny_classifier("bernoulli", seed=1)
    other_guide(xo, yo)
    assert _cpu_networks_per_pass(other, other_guide, xo, 100, clock(1.0, 0.0)) is False
    big = torch.randn(1000, x.shape[1])  # 4 networks x 1000 rows fit in 4096
    assert _cpu_networks_per_pass(model, guide, big, 100, clock(0.01, 0.1)) == 4 and timed[-1] == 4
    assert _cpu_networks_per_pass(model, guide, torch.randn(2100, x.shape[1]), 100, clock(0.01, 0.1)) is False
    # a first pass of one network slowed (0.2 s against 0.05 s): the faster of two is weighed, 0.6 s for 10 is not
    # under 0.8 * 10 * 0.05 s
    slowed = iter([0.2, 0.05, 0.6])
    third, third_guide, x3, y3 = tiny_classifier("bernoulli", seed=2)
    third_guide(x3, y3)
    assert _cpu_networks_per_pass(third, third_guide, x3, 100, lambda run: next(slowed)) is False


@pytest.mark.parametrize("method", ["vbd", "bernoulli"])
def test_auto_on_a_cpu_joins_the_batches_of_networks_that_draw_nothing_per_example(method, monkeypatch):
    """Where the timed rule takes passes of networks, a network that draws nothing per example (Gaussian weights:
    ``vbd``) sees consecutive batches joined, up to 4096 rows per pass: 4 passes of 10 networks through all 60
    inputs instead of 40 (10 batches of 6 each); a network with masks per example (``bernoulli``) sees the batches
    as they come.  The prediction equals one pass per network on each batch to 1e-6."""
    import importlib

    prediction = importlib.import_module("bayesdrop.infer.predict")  # the module (bd.infer.predict is the function)
    model, guide, x, y = tiny_classifier(method, n=60)
    guide(x, y)
    monkeypatch.setattr(prediction, "auto_parallel", lambda *args: 10)  # the timed rule's choice, stated
    rows = []
    hook = model.net.register_forward_hook(lambda module, args, out: rows.append(out.shape[0]))
    pyro.set_rng_seed(2)
    joined = bd.predict(model, guide, x, num_samples=40, batch_size=6)
    hook.remove()
    pyro.set_rng_seed(2)
    one_each = bd.predict(model, guide, x, num_samples=40, batch_size=6, parallel=False)
    torch.testing.assert_close(joined, one_each, rtol=0, atol=1e-6)
    sampler = bd.posterior.PosteriorSampler(model, guide, 2, x[:1])
    assert sampler.draws_per_example == (method == "bernoulli")
    assert rows[0] == 1  # the sampler's trace of the networks' sites on one example
    assert rows[1:] == ([10 * 6] * 40 if method == "bernoulli" else [10 * 60] * 4)


def test_a_run_looks_at_the_active_plates_once_whatever_the_layers():
    """The draws of a vectorised run are found as ``local_plate`` is entered, not by each layer: one ``inspect``
    message per model run of a three-layer dropout MLP (there were 13), alone and in a pass of 3 networks, where
    every layer still sees the draws (outputs ``(3, B, C)``)."""
    from pyro.poutine.messenger import Messenger

    class Inspections(Messenger):
        count = 0

        def _process_message(self, msg):
            self.count += msg["type"] == "inspect"

    model, guide, x, y = tiny_classifier("bernoulli", hidden=(8, 8))
    guide(x, y)
    for plates in (0, 1):
        seen = Inspections()
        with pyro.plate("draws", 3, dim=-2) if plates else contextlib.nullcontext(), seen:
            out = model(x)
        assert seen.count == 1
        assert out.shape == ((3,) if plates else ()) + (len(x), 3)


def test_a_site_that_cannot_take_one_value_per_draw_is_refused_with_the_remedy():
    """A global site whose draws differ, where the method takes one value for all networks: a clear error."""
    from bayesdrop.nn.base import local_plate
    from bayesdrop.sites import site_shaped

    plate = pyro.plate("data", 4, subsample=torch.arange(4))
    with pyro.plate("draws", 3, dim=-2), local_plate(plate):  # the draws' plate around the run, as Predictive's
        value = torch.randn(3, 1, 5)
        with pytest.raises(ValueError, match="one network at a time|parallel=False"):
            site_shaped(value, (5,))
        per_draw = site_shaped(value, (5,), per_draw=True)
        assert per_draw.shape == (3, 5) and per_draw._bayesdrop_per_draw
        shared = site_shaped(torch.randn(5).expand(3, 1, 5), (5,))  # a point estimate: one value for all draws
        assert shared.shape == (5,)


@pytest.mark.parametrize("parallel", [False, True])
def test_predict_in_batches_joins_the_batches_predictions(parallel):
    """Without masks at prediction (``vd``), the prediction is a function of the drawn networks, which every batch
    shares: ``batch_size=4`` gives the unbatched class probabilities, and a Regressor's (mean, std), exactly at a
    fixed seed, while holding one batch's draws at a time."""
    model, guide, x, y = tiny_classifier("vd")
    guide(x, y)
    pyro.set_rng_seed(0)
    whole = bd.predict(model, guide, x, num_samples=9, parallel=parallel)
    pyro.set_rng_seed(0)
    torch.testing.assert_close(bd.predict(model, guide, x, num_samples=9, parallel=parallel, batch_size=4), whole)
    xr, yr = torch.randn(10, 3), torch.randn(10)
    reg = bd.Regressor(bd.models.mlp(3, [8], 1, method="vd"), num_data=10)
    reg_guide = bd.DropoutGuide(reg)
    reg_guide(xr, yr)
    pyro.set_rng_seed(0)
    mean, std = bd.predict(reg, reg_guide, xr, num_samples=9, parallel=parallel)
    pyro.set_rng_seed(0)
    mean_b, std_b = bd.predict(reg, reg_guide, xr, num_samples=9, parallel=parallel, batch_size=3)
    torch.testing.assert_close((mean_b, std_b), (mean, std))


def test_predict_and_evaluate_take_a_dataloader_as_fit_does():
    """One data contract: a DataLoader of (x, y) pairs, of dicts or of bare inputs gives the prediction of the
    tensors (exactly, for draws without masks: ``vd``), and evaluate's metrics; a batch_size beside a DataLoader
    and a loader without targets to evaluate are refused."""
    model, guide, x, y = tiny_classifier("vd")
    guide(x, y)
    pairs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    pyro.set_rng_seed(0)
    whole = bd.predict(model, guide, x, num_samples=6)
    for loader in (pairs, [{"x": x[i : i + 5], "y": y[i : i + 5]} for i in range(0, len(x), 5)]):
        loader = loader if isinstance(loader, torch.utils.data.DataLoader) else _Loader(loader)
        pyro.set_rng_seed(0)
        torch.testing.assert_close(bd.predict(model, guide, loader, num_samples=6), whole)
    pyro.set_rng_seed(0)
    tensors = bd.evaluate(model, guide, (x, y), num_samples=6, seed=3)
    assert bd.evaluate(model, guide, pairs, num_samples=6, seed=3) == pytest.approx(tensors)
    with pytest.raises(ValueError, match="`batch_size`"):
        bd.predict(model, guide, pairs, batch_size=4)
    bare = torch.utils.data.DataLoader(x, batch_size=5)
    assert bd.predict(model, guide, bare, num_samples=2).shape == (len(x), 3)
    with pytest.raises(ValueError, match="targets"):
        bd.evaluate(model, guide, bare)


class _Loader(torch.utils.data.DataLoader):
    """A DataLoader over ready-made batches (dicts), as a user's collate function would give them."""

    def __init__(self, batches):
        super().__init__(batches, batch_size=None)


def test_fit_evaluates_a_test_dataloader_every_epoch():
    model, guide, x, y = tiny_classifier("bernoulli")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4)
    result = bd.fit(model, guide, (x, y), epochs=2, progress=False, test=loader, test_samples=3)
    assert len(result.history["test_acc"]) == 2 and 0.0 <= result.history["test_acc"][-1] <= 1.0


def test_to_inference_data_takes_a_dataloader_of_dicts():
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    dicts = [{"x": x[i : i + 5], "y": y[i : i + 5]} for i in range(0, len(x), 5)]
    idata = bd.to_inference_data(model, guide, _Loader(dicts), num_samples=4)
    assert idata.observed_data["y"].shape == (len(x),)


def test_networks_per_pass_fill_the_budget_without_touching_the_draws():
    """``parallel="auto"``'s count (here on the CPU, with a stated measurement of 1000 bytes per network): the budget
    over it, at most S and at least 1; the probe pass runs on a fork of the generators; fast dropout's moments and
    one draw are not vectorised."""
    from bayesdrop.infer.predict import _networks_per_pass

    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x, y)
    model.eval()
    ran = []

    def thousand(run):
        ran.append(run().shape)  # the probe: one network's outputs on the batch, (1, B, C)
        return 1000

    state = torch.get_rng_state()
    assert _networks_per_pass(model, guide, x, 50, thousand, budget=7_500) == 7
    assert torch.equal(torch.get_rng_state(), state) and ran == [(1, len(x), 3)]
    assert _networks_per_pass(model, guide, x, 50, thousand, budget=7_500) == 7 and len(ran) == 1  # kept, no probe
    assert _networks_per_pass(model, guide, x, 5, thousand, budget=7_500) == 5
    assert _networks_per_pass(model, guide, x, 50, thousand, budget=10) == 1
    assert _networks_per_pass(model, guide, x, 1, thousand, budget=7_500) is False
    fast, fast_guide, xf, yf = tiny_classifier("fast-dropout")
    fast_guide(xf, yf)
    assert _networks_per_pass(fast, fast_guide, xf, 50, thousand, budget=7_500) is False


@pytest.mark.parametrize("parallel", [False, True])
def test_non_finite_network_outputs_are_refused_after_the_run(parallel):
    """Only the first pass runs under Pyro's validation (the others replay the same distributions); a network
    whose outputs are NaN on a later batch is still refused, with a message that names the cause."""
    model, guide, x, y = tiny_classifier("vd")
    guide(x, y)
    bad = x.clone()
    bad[-1, 0] = float("nan")  # the last batch of 4 inputs
    with pytest.raises(ValueError, match="outputs are not all finite"):
        bd.posterior.PosteriorSampler(model, guide, 3, x[:1], parallel=parallel).run(bad, batch_size=4)
    draws, _ = bd.posterior.PosteriorSampler(model, guide, 3, x[:1], parallel=parallel).run(x, batch_size=4)
    assert draws.shape == (3, len(x), 3) and torch.isfinite(draws).all()
    reg = bd.Regressor(bd.models.mlp(6, [8], 1, method="vd"), num_data=len(x))  # a Normal draws NaN silently
    reg_guide = bd.DropoutGuide(reg)
    reg_guide(x, y.float())
    with pytest.raises(ValueError, match="outputs are not all finite"):
        bd.posterior.PosteriorSampler(reg, reg_guide, 3, x[:1], parallel=parallel).run(bad, batch_size=4)


@pytest.mark.parametrize("net", ["mlp", "convnet"])
def test_vbd_with_one_noise_per_unit_predicts_in_parallel_from_the_loops_law(net):
    """``vbd`` with ``granularity="unit"`` draws one noise value per unit and network (a global site): in a
    vectorised run each network's values spread over its own examples (they used to broadcast against the whole
    batch); class probabilities over 300 draws agree with the loop's within 5 standard errors of the difference."""
    if net == "mlp":
        model, guide, x, y = tiny_classifier("vbd", granularity="unit")
    else:
        model, guide, x, y = tiny_convnet("vbd", granularity="unit")
    guide(x, y)
    with torch.no_grad():  # a noise the draws can tell apart
        for name, p in guide.named_parameters():
            if "log_sigma2" in name:
                p.fill_(-1.0)
    probs = {}
    for parallel in (True, False):
        pyro.set_rng_seed(2)
        probs[parallel] = bd.predict(model, guide, x, num_samples=300, parallel=parallel, return_samples=True)[1]
        probs[parallel] = probs[parallel].softmax(-1)
    a, b = probs[True], probs[False]
    se = ((a.var(0) + b.var(0)) / 300).sqrt()
    assert ((a.mean(0) - b.mean(0)).abs() <= 5 * se + 1e-6).all() and a.var(0).max() > 1e-4
