"""fit's compiled loss (``fit(jit=...)``, :mod:`bayesdrop.infer.compiled`): the same training, and the fallbacks."""

from __future__ import annotations

import pyro
import pytest
import torch
from helpers import record_validation, tiny_classifier

import bayesdrop as bd
from bayesdrop.infer.compiled import MAX_SHAPES, CompiledLoss, CompileError, python_state


def _fit(method, jit, **kw):
    torch.manual_seed(0)  # the initial weights
    model, guide, x, y = tiny_classifier(method, n=50, hidden=(16,))
    kw = {"epochs": 3, "batch_size": 16, "progress": False, "jit": jit} | kw  # 50 = 3 x 16 + 2: two shapes
    return bd.fit(model, guide, (x, y), **kw), model, guide


@pytest.mark.parametrize(
    "method", ["bernoulli", "sparse-vd", "vbd", "concrete", "sbp", "dropout++(0.5)", "sal", "fast-dropout"]
)
def test_the_compiled_loss_trains_as_the_eager_one(method):
    """Same seed: the compiled run (after the first, validated epoch) and the eager run give the same history and
    parameters, to the float32 rounding of the KL weight (a tensor in the graph, a float eagerly; ``sparse-vd`` and
    ``vbd`` warm up over all 3 epochs); recording and checking the graphs take no draw from the training's stream.
    SBP's guide draws no global value under the local reparameterisation trick (a recorded graph would drop an
    unused draw, and every later draw would move).  Generalized Dropout's gates are projected onto [0, 1] by
    ``fit`` after each step, outside the graph, which cannot write its inputs.  Fast dropout's network output is
    moments: the graph gives their mean, what the training metrics read."""
    eager, m0, g0 = _fit(method, False)
    compiled, m1, g1 = _fit(method, None)
    assert compiled.compiled and not eager.compiled
    for key in ("elbo", "nll", "kl", "train_acc", "beta"):
        assert compiled.history[key] == pytest.approx(eager.history[key], rel=1e-5, abs=1e-6), key
    for (name, a), b in zip([*m0.named_parameters(), *g0.named_parameters()], [*m1.parameters(), *g1.parameters()]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6, msg=name)


def test_the_compiled_step_runs_no_python_of_model_or_guide(monkeypatch):
    """After recording, a step does not run the loss's Python: the ELBO is called to prime the guide's draw shapes,
    record and check each of the two minibatch shapes (2 x 3), and by the validated first epoch (4 steps), not by
    the later 8 steps."""
    calls = record_validation(monkeypatch)
    result, _, _ = _fit("bernoulli", True)
    assert result.compiled
    assert calls.count(True) == 4  # the first epoch: 4 validated steps, eagerly
    assert calls.count(False) == 6  # priming, recording and checking the shapes 16 and 2


def test_a_loss_that_does_not_compile_trains_eagerly_or_is_refused():
    """A loss other than bd's one-particle ``MeanFieldELBO`` (here Pyro's ``Trace_ELBO``) is not compiled:
    ``jit=None`` trains it eagerly, as ``jit=False``; ``jit=True`` is a ValueError before any step."""
    loss = pyro.infer.Trace_ELBO(max_plate_nesting=1)
    auto, _, _ = _fit("bernoulli", None, epochs=2, loss=loss)
    eager, _, _ = _fit("bernoulli", False, epochs=2, loss=loss)
    assert not auto.compiled
    assert auto.history["elbo"] == eager.history["elbo"]
    model, guide, x, y = tiny_classifier("bernoulli", n=50, hidden=(16,))
    before = [p.detach().clone() for p in guide.parameters()]
    with pytest.raises(ValueError, match="`jit` is True but the loss cannot be compiled: the loss is Trace_ELBO"):
        bd.fit(model, guide, (x, y), epochs=1, batch_size=16, progress=False, jit=True, loss=loss)
    assert all(torch.equal(p, b) for p, b in zip(guide.parameters(), before))  # no step was taken


def test_a_graph_that_freezes_a_python_decision_is_caught():
    """A model that reads a draw's value in Python (a branch on a uniform draw) records one branch: the check
    against the eager loss from another random state finds it (the branch differs with probability 1/2 per try;
    the fixed seed picks a state where it does)."""
    model, guide, x, y = tiny_classifier("bernoulli", n=16)
    original = type(model).forward

    def forward(self, xb, yb=None):
        out = original(self, xb, yb)
        return out * 2.0 if torch.rand(()) < 0.5 else out  # a Python decision on a draw

    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    params = [*model.parameters(), *guide.parameters()]
    one = torch.ones(())
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        loss = CompiledLoss(elbo, lambda xb, yb: forward(model, xb, yb), guide, params)
        try:
            with pyro.validation_enabled(False):
                loss.record(x, y, one)
            seen.add("passed")
        except CompileError as err:
            assert "differs from the eager one" in str(err)
            seen.add("caught")
    assert "caught" in seen


def test_the_compiled_loss_reads_the_kl_weight_as_an_input():
    """One graph serves every KL weight: its loss at beta equals the eager loss under KLScale(beta)."""
    model, guide, x, y = tiny_classifier("sparse-vd", n=16)
    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    loss = CompiledLoss(elbo, model, guide, [*model.parameters(), *guide.parameters()])
    with pyro.validation_enabled(False):
        for beta in (0.25, 1.0, 0.5):
            torch.manual_seed(1)
            got, out, log_lik = loss(x, y, torch.tensor(beta))
            torch.manual_seed(1)
            with bd.infer.KLScale(beta):
                want = elbo.differentiable_loss(model, guide, x, y)
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-4)
            assert out.shape == (16, 3) and log_lik.dim() == 0
    assert len(loss.graphs) == 1


def test_at_most_max_shapes_graphs_are_recorded():
    model, guide, x, y = tiny_classifier("bernoulli", n=MAX_SHAPES + 2)
    loss = CompiledLoss(
        bd.infer.MeanFieldELBO(max_plate_nesting=1), model, guide, [*model.parameters(), *guide.parameters()]
    )
    with pyro.validation_enabled(False):
        for n in range(1, MAX_SHAPES + 1):
            loss.record(x[:n], y[:n], torch.ones(()))
        with pytest.raises(CompileError, match=f"more than {MAX_SHAPES} minibatch shapes"):
            loss.record(x, y, torch.ones(()))


def test_jit_arguments_are_checked_before_training():
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(TypeError, match="`jit` must be None, True or False"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False, jit="yes")
    with pytest.raises(
        ValueError, match="`jit` is True, which compiles the steps without validation, and `validate` is True"
    ):
        bd.fit(model, guide, (x, y), epochs=1, progress=False, jit=True, validate=True)
    always, _, _ = _fit("bernoulli", None, validate=True)  # every step validated: nothing to compile
    assert not always.compiled


def test_a_parameter_left_out_of_the_inputs_is_a_compile_error():
    """The graph's inputs are the parameters it is given: one it reads but was not given would be frozen into the
    graph as a constant, which torch refuses for a tensor that requires grad."""
    model, guide, x, y = tiny_classifier("bernoulli", n=16)
    loss = CompiledLoss(bd.infer.MeanFieldELBO(max_plate_nesting=1), model, guide, [*model.parameters()])
    with pyro.validation_enabled(False), pytest.raises(CompileError, match="requires grad as a constant"):
        loss.record(x, y, torch.ones(()))


def test_a_change_of_the_python_state_between_epochs_records_the_graphs_again():
    """A callback that changes a method's rate after the first epoch: the graphs recorded at the old rate are
    dropped and recorded again, so the compiled run still trains as the eager one; evaluating test data between
    epochs changes nothing that the graphs froze."""

    def lower_the_rate(epoch, history):
        if epoch == 1:
            for _, layer in bd.nn.bayesian_layers(model):
                layer.method.p = 0.1

    histories = []
    for jit in (False, None):
        torch.manual_seed(0)
        model, guide, x, y = tiny_classifier("bernoulli", n=50, hidden=(16,), p=0.5)
        result = bd.fit(
            model, guide, (x, y), epochs=4, batch_size=16, progress=False, jit=jit, callback=lower_the_rate,
            test=(x, y),
        )  # fmt: skip
        histories.append(result.history)
    assert result.compiled
    for key in ("elbo", "nll", "train_acc", "test_acc"):
        assert histories[1][key] == pytest.approx(histories[0][key], rel=1e-5, abs=1e-6), key
    state = python_state(model, guide)
    bd.evaluate(model, guide, (x, y))
    model.train(), guide.train()
    assert python_state(model, guide) == state


def test_forward_hooks_keep_the_steps_eager():
    """A forward hook is Python that runs on every eager forward pass and that a graph would skip."""
    torch.manual_seed(0)
    model, guide, x, y = tiny_classifier("bernoulli", n=50, hidden=(16,))
    calls = []
    model.net[0].register_forward_pre_hook(lambda module, args: calls.append(1))
    result = bd.fit(model, guide, (x, y), epochs=2, batch_size=16, progress=False)
    assert not result.compiled and len(calls) > 8  # every step of both epochs ran the hook
    with pytest.raises(ValueError, match="`jit` is True but .* has forward hooks"):
        bd.fit(model, guide, (x, y), epochs=1, batch_size=16, progress=False, jit=True)


def test_a_hook_added_during_training_sends_the_run_on_eagerly_with_a_warning_under_jit_true():
    """A forward hook registered by a callback after the first compiled epoch: the next epoch's refresh finds it,
    the run goes on eagerly (the hook runs on every later step), and ``jit=True`` is told so."""
    torch.manual_seed(0)
    model, guide, x, y = tiny_classifier("bernoulli", n=48, hidden=(16,))
    calls = []

    def add_hook(epoch, history):
        if epoch == 1:
            model.net[0].register_forward_pre_hook(lambda module, args: calls.append(1))

    with pytest.warns(UserWarning, match="training on eagerly: .* has forward hooks"):
        result = bd.fit(model, guide, (x, y), epochs=3, batch_size=16, progress=False, jit=True, callback=add_hook)
    assert result.compiled and len(calls) == 3  # the last epoch's 3 steps, eagerly
