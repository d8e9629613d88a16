"""fit's per-epoch callbacks: the schedule they set is the one the steps use, and user callbacks take part."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_classifier

import bayesdrop as bd
from bayesdrop.infer import callbacks as cb


class _Stop(KeyboardInterrupt):
    pass


class InterruptAt(bd.infer.Callback):
    """Raises (as a Ctrl-C would) at the end of epoch ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        if state.epoch == self.epoch:
            raise _Stop


def test_periodic_checkpoint_survives_an_interrupted_run(tmp_path):
    """Checkpoint(every=2) then a Ctrl-C in epoch 4 (from 0): the file holds the state after epoch 3, and it
    loads into a fresh model with the history of 4 epochs."""
    model, guide, x, y = tiny_classifier("bernoulli")
    path = tmp_path / "run.pt"
    with pytest.raises(_Stop):
        bd.fit(
            model, guide, (x, y), epochs=10, progress=False, callbacks=[cb.Checkpoint(path, every=2), InterruptAt(4)]
        )
    fresh, fresh_guide, _, _ = tiny_classifier("bernoulli", seed=1)
    fresh_guide(x)
    state = bd.load_checkpoint(path, fresh, fresh_guide)
    assert len(state["history"]["elbo"]) == 4
    assert state["optimizer"] is not None


def test_a_callback_that_sets_beta_changes_the_loss_the_steps_use():
    """A user callback setting beta = 0 every epoch removes the KL term: kl = loss - N * nll is 0 to rounding,
    while the same run with fit's schedule has a positive KL."""

    class NoKL(bd.infer.Callback):
        def on_epoch_start(self, state):
            state.beta = 0.0

    model, guide, x, y = tiny_classifier("sparse-vd")
    h = bd.fit(model, guide, (x, y), epochs=3, progress=False, callbacks=[NoKL()]).history
    assert h["beta"] == [0.0, 0.0, 0.0]
    assert max(abs(k) for k in h["kl"]) < 1e-3 * abs(h["elbo"][-1] * len(x))
    model, guide, x, y = tiny_classifier("sparse-vd")
    # the contrast: beta = 1 from the first epoch, which sparse-vd's default warm-up (all epochs) would not give
    h = bd.fit(model, guide, (x, y), epochs=3, kl_warmup=0, progress=False).history
    assert min(h["kl"]) > 1.0


def test_kl_warmup_and_lr_decay_callbacks_set_the_schedule():
    model, guide, x, y = tiny_classifier("bernoulli")
    # explicit settings: the schedules under test are computed from them
    h = bd.fit(model, guide, (x, y), epochs=4, kl_warmup=2, lr=0.02, progress=False).history
    assert h["beta"] == [0.5, 1.0, 1.0, 1.0]
    assert h["lr"] == pytest.approx([0.02, 0.015, 0.01, 0.005])


def test_callbacks_must_be_callbacks_and_checkpoint_every_must_be_positive(tmp_path):
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(TypeError, match="`callbacks`"):
        bd.fit(model, guide, (x, y), epochs=1, callbacks=[lambda e, h: None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="`every`"):
        cb.Checkpoint(tmp_path / "x.pt", every=0)
    with pytest.raises(ValueError, match="`epochs`"):
        cb.KLWarmup(-1)


def test_collapse_detection_needs_class_counts_and_warns_at_chance():
    """A state whose training accuracy equals the majority-class frequency for CHANCE_EPOCHS epochs warns once."""
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x)
    optim = torch.optim.SGD(guide.parameters(), lr=0.1)
    state = cb.TrainState(model=model, guide=guide, optimizer=optim, epochs=10, lr=0.1, kl_warmup=0)
    detect = cb.CollapseDetection()
    state.label_counts = torch.tensor([30, 10])  # majority 0.75
    with pytest.warns(bd.CollapseWarning, match="chance"):
        for epoch in range(cb.CHANCE_EPOCHS):
            state.epoch, state.metrics = epoch, {"train_acc": 0.75}
            detect.on_epoch_end(state)
    assert len(state.warnings) == 1
    state.label_counts = None  # a likelihood without classes: never at chance
    detect = cb.CollapseDetection()
    for state.epoch in range(2 * cb.CHANCE_EPOCHS):
        state.metrics = {"train_acc": 0.0}
        detect.on_epoch_end(state)
    assert len(state.warnings) == 1


@pytest.mark.parametrize("method", ["bernoulli", "vbd"])
def test_evaluating_held_out_data_leaves_the_training_unchanged(method):
    """Evaluation runs on a fork of the generators: the same seed trains the same parameters with no test data,
    with test data and 5 draws, and with 20 draws (before, every draw of the evaluation moved the masks of the
    next epoch)."""
    trained = []
    for test, samples in ((None, 20), ("held-out", 5), ("held-out", 20)):
        torch.manual_seed(0)  # the layers' initial weights
        model, guide, x, y = tiny_classifier(method)
        options = {} if test is None else {"test": (x[:10], y[:10]), "test_samples": samples}
        res = bd.fit(model, guide, (x, y), epochs=3, batch_size=10, seed=0, progress=False, **options)
        assert ("test_acc" in res.history) == (test is not None)
        trained.append({n: p.detach().clone() for n, p in guide.named_parameters()})
    for other in trained[1:]:
        assert other.keys() == trained[0].keys()
        assert all(torch.equal(other[n], trained[0][n]) for n in other)
