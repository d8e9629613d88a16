"""``bayesdrop.lightning``: one DDP step over two CPU processes (gloo, started by the test through Lightning's
``ddp_spawn``) equals the single-process step on the same global batch, given the same random draws; a Lightning
run trains like ``bd.fit`` and its checkpoint loads with ``bd.load_checkpoint``."""

from __future__ import annotations

import math

import pyro.poutine as poutine
import pytest
import torch

import bayesdrop as bd

lightning = pytest.importorskip("lightning")
from bayesdrop.lightning import BayesdropModule  # noqa: E402

N, BATCH, WORLD = 64, 8, 2  # training-set size, per-process batch, processes: a global batch of 16


def _setup(method):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(N, 6, generator=g), torch.randint(0, 3, (N,), generator=g)
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(6, [10], 3, method), num_data=N)
    guide = bd.DropoutGuide(model)
    return model, guide, x, y


def _draws(module, x, y):
    """The random draws of one step on the global batch (weights, masks), without the data plate's site."""
    with torch.no_grad():
        trace = poutine.trace(module.guide).get_trace(x, y)
    for name in [n for n, s in trace.nodes.items() if s["type"] != "sample" or n == "data"]:
        trace.remove_node(name)
    return trace


class Replayed(BayesdropModule):
    """The module with this process's rows of given draws replayed, recording its loss and averaged gradients."""

    def __init__(self, *args, draws, inputs, out, **kwargs):
        super().__init__(*args, **kwargs)
        self.draws, self.inputs, self.out = draws, inputs, out

    def loss(self, x, y):
        # the rows of the global batch this process got from the distributed sampler (which shuffles)
        rows = torch.stack([(self.inputs == row).all(1).nonzero()[0, 0] for row in x])
        trace = self.draws.copy()
        for name, site in list(trace.nodes.items()):
            if any(f.name == "data" for f in site["cond_indep_stack"]):
                trace.nodes[name] = {**site, "value": site["value"][rows]}
        loss, out = super().loss(x, y, guide=poutine.replay(self.guide, trace=trace))
        self.recorded = loss.detach()
        return loss, out

    def on_after_backward(self):  # after DDP's all-reduce: the averaged gradients
        grads = {n: p.grad.clone() for n, p in self.named_parameters() if p.grad is not None}
        torch.save({"loss": self.recorded, "grads": grads}, f"{self.out}/rank{self.global_rank}.pt")


@pytest.mark.parametrize("method", ["bernoulli", "sparse-vd", pytest.param("vbd", marks=pytest.mark.slow)])
def test_one_ddp_step_equals_the_single_process_step(method, tmp_path):
    model, guide, x, y = _setup(method)
    xg, yg = x[: BATCH * WORLD], y[: BATCH * WORLD]
    guide(xg, yg)
    draws = _draws(BayesdropModule(model, guide, epochs=4, lrt=False), xg, yg)
    single = Replayed(model, guide, epochs=4, lrt=False, draws=draws, inputs=xg, out=str(tmp_path))
    single.on_train_epoch_start()  # the KL weight of the first epoch
    loss, _ = BayesdropModule.loss(single, xg, yg, guide=poutine.replay(guide, trace=draws))
    loss.backward()
    expected = {n: p.grad.clone() for n, p in single.named_parameters() if p.grad is not None}
    single.zero_grad()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(xg, yg), batch_size=BATCH)
    trainer = lightning.Trainer(
        accelerator="cpu",
        devices=WORLD,
        strategy="ddp_spawn",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        trainer.fit(single, loader)
    except torch.multiprocessing.ProcessExitedException:
        # A child that aborts at interpreter exit after its step ("terminate called without an active exception",
        # a teardown race of the gloo threads seen once under a loaded xdist run) has recorded what is checked
        # below; one that died before writing its record fails here.
        if not all((tmp_path / f"rank{r}.pt").exists() for r in range(WORLD)):
            raise
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    # the mean of the processes' losses is the single-process loss: likelihood N / B_g, KL once
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), loss.detach(), rtol=1e-5, atol=1e-5)
    for r in ranks:
        assert set(r["grads"]) == set(expected)
        for name, grad in expected.items():
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-5, atol=1e-5, msg=name)


def test_a_lightning_run_trains_and_its_checkpoint_loads_in_bayesdrop(tmp_path):
    """One process, digits: the run learns (test accuracy above 0.8 after 10 epochs), keeps bd.fit's history, and
    its checkpoint loads with bd.load_checkpoint into a fresh model and guide that predict the same."""
    data = bd.data.load("digits")
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(64, [100], 10), num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    module = BayesdropModule(model, guide, example=data.train.x[:2], epochs=10)
    ds = torch.utils.data.TensorDataset(data.train.x, data.train.y)
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=10, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    trainer.fit(module, loader)
    assert len(module.history["loss"]) == 10 and module.history["loss"][-1] < module.history["loss"][0]
    assert module.history["lr"][-1] < module.history["lr"][0]  # the linear decay
    acc = bd.evaluate(model, guide, data.test)["acc"]
    assert acc > 0.8
    path = tmp_path / "run.ckpt"
    trainer.save_checkpoint(path)
    fresh = bd.Classifier(bd.models.mlp(64, [100], 10), num_data=len(data.train))
    fresh_guide = bd.DropoutGuide(fresh)
    fresh_guide(data.train.x[:2])
    state = bd.load_checkpoint(path, fresh, fresh_guide)
    assert state["history"]["loss"] == module.history["loss"]
    torch.testing.assert_close(
        bd.predict(fresh, fresh_guide, data.test, rule="weight-scaling"),
        bd.predict(model, guide, data.test, rule="weight-scaling"),
    )


def test_bad_arguments_are_refused_before_training():
    model, guide, x, y = _setup("bernoulli")
    with pytest.raises(ValueError, match="`example`"):
        BayesdropModule(model, guide)
    guide(x[:2])
    with pytest.raises(ValueError, match="`epochs`"):
        BayesdropModule(model, guide, epochs=0)
    with pytest.raises(ValueError, match="`lr_decay`"):
        BayesdropModule(model, guide, lr_decay="cosine")
    with pytest.raises(ValueError, match="`guide`"):
        BayesdropModule(model, bd.DropoutGuide(bd.Classifier(bd.models.mlp(6, [4], 3), num_data=N)))
    with pytest.raises(TypeError, match="`model` must be a bd.Likelihood, got PyroSequential"):
        BayesdropModule(model.net, guide)
    for bad in (0, -1e-3, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="`lr` must be a finite number > 0"):
            BayesdropModule(model, guide, lr=bad)
    for bad in (True, "1e-3"):  # as fit: a non-number is a TypeError
        with pytest.raises(TypeError, match="`lr` must be a number"):
            BayesdropModule(model, guide, lr=bad)
    with pytest.raises(ValueError, match="`kl_warmup` must be 'auto' or a non-negative int"):
        BayesdropModule(model, guide, kl_warmup=-1)
    with pytest.raises(TypeError, match="`lrt` must be a bool, got int"):
        BayesdropModule(model, guide, lrt=1)


def test_a_lightning_run_of_fast_dropout_trains_on_its_integrated_masks(tmp_path):
    """Fast dropout under Lightning: the module integrates the masks out as ``bd.fit`` does, so its loss on a batch
    is one number (Bernoulli dropout's is not), and a run with a constant rate lowers it; the history's NLL is the
    sigma-point average of the output's moments."""
    model, guide, x, y = _setup("fast-dropout")
    module = BayesdropModule(model, guide, example=x[:2], epochs=4, lr_decay=None)
    first, second = (module.loss(x[:BATCH], y[:BATCH])[0].item() for _ in range(2))
    assert first == second
    bern = BayesdropModule(*_setup("bernoulli")[:2], example=x[:2])
    assert bern.loss(x[:BATCH], y[:BATCH])[0].item() != bern.loss(x[:BATCH], y[:BATCH])[0].item()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=4, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    trainer.fit(module, loader)
    h = module.history
    assert len(h["loss"]) == 4 and h["loss"][-1] < h["loss"][0]
    assert h["lr"] == [module.lr] * 4  # lr_decay=None: the rate kept
    assert all(math.isfinite(v) and v > 0 for v in h["nll"]) and 0 <= h["train_acc"][-1] <= 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on loaders and workers
def test_a_lightning_run_projects_the_gates_after_every_step(tmp_path):
    """Generalized Dropout's keep probabilities stay in [0, 1] after every optimiser step, as under ``bd.fit``
    (``DropoutGuide.project`` after each batch): at a step size that pushes them out, every k is in [0, 1] when
    each batch starts, and after the last step."""
    model, guide, x, y = _setup("dropout++(0)")
    # lr 0.5 without decay: steps that push the gates out of [0, 1], which the projection must undo (the point)
    module = BayesdropModule(model, guide, example=x[:2], epochs=2, lr=0.5, lr_decay=None)
    ks = [params.k for _, params in guide.projected()]
    starts: list[bool] = []

    class Record(lightning.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            starts.append(all(bool(((k >= 0) & (k <= 1)).all()) for k in ks))

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path), callbacks=[Record()],
    )  # fmt: skip
    trainer.fit(module, loader)
    assert len(starts) == 2 * N // BATCH and all(starts)
    assert all(((k >= 0) & (k <= 1)).all() for k in ks)
    assert any(((k > 0) & (k < 1)).any() for k in ks)  # the steps moved the gates off their start at 1


def test_a_lightning_run_takes_bd_fits_learning_rate_at_every_step(tmp_path):
    """The module's scheduler gives step t the rate ``bd.fit`` gives it: lr * min(1, (t + 1) / W) times the linear
    decay of its epoch (8 steps per epoch here, W = 5); ``"auto"`` warms up over a tenth of the trainer's steps
    for a network of 512 inputs."""
    model, guide, x, y = _setup("bernoulli")
    module = BayesdropModule(model, guide, example=x[:2], epochs=4, lr_warmup=5)
    rates: list[float] = []

    class Rates(lightning.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=4, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path), callbacks=[Rates()],
    )  # fmt: skip
    trainer.fit(module, loader)
    expected = [1e-2 * min(1, (t + 1) / 5) * (1 - (t // 8) / 4) for t in range(32)]
    assert rates == pytest.approx(expected, rel=1e-12)
    wide = bd.Classifier(bd.models.mlp(512, [10], 3, "bernoulli"), num_data=N)
    x = torch.randn(N, 512, generator=torch.Generator().manual_seed(0))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=BATCH)
    auto = BayesdropModule(wide, bd.DropoutGuide(wide), example=x[:2], epochs=4)
    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=4, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path), callbacks=[Rates()],
    )  # fmt: skip
    rates.clear()
    trainer.fit(auto, loader)
    assert rates[:4] == pytest.approx([1e-2 / 3, 2e-2 / 3, 1e-2, 1e-2], rel=1e-12)  # round(32 / 10) = 3 steps


def test_the_module_refuses_a_bad_lr_warmup():
    model, guide, x, _ = _setup("bernoulli")
    for bad in (-1, 0.5, "tenth", True):
        with pytest.raises(ValueError, match="`lr_warmup` must be 'auto' or a non-negative int"):
            BayesdropModule(model, guide, example=x[:2], lr_warmup=bad)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on iterable datasets and workers
def test_a_stream_without_a_length_decays_once_per_epoch_without_a_warm_up(tmp_path):
    """An IterableDataset without ``__len__``: the trainer knows no steps per epoch, so ``"auto"`` warms up over none
    even for a network of 512 inputs, and every step of epoch e takes lr * (1 - e / epochs), as ``bd.fit`` would."""
    y = _setup("bernoulli")[3]
    x = torch.randn(N, 512, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(512, [10], 3, "bernoulli"), num_data=N)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(zip(x, y))

    module = BayesdropModule(model, bd.DropoutGuide(model), example=x[:2], epochs=4)
    rates: list[float] = []

    class Rates(lightning.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            rates.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=4, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path), callbacks=[Rates()],
    )  # fmt: skip
    trainer.fit(module, torch.utils.data.DataLoader(Stream(), batch_size=BATCH))
    assert rates == pytest.approx([1e-2 * (1 - e / 4) for e in range(4) for _ in range(N // BATCH)], rel=1e-12)


def _trainer(tmp_path, max_epochs, callbacks=(), **kwargs):
    return lightning.Trainer(
        accelerator="cpu", devices=1, max_epochs=max_epochs, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
        callbacks=list(callbacks), **kwargs,
    )  # fmt: skip


class _Steps(lightning.Callback):
    """Each step's epoch, loss, batch size and the rate the optimiser's step takes."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps.append({"epoch": trainer.current_epoch, "lr": optimizer.param_groups[0]["lr"]})

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps[-1].update(loss=float(outputs["loss"]), size=len(batch[1]))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on loaders and workers
def test_the_history_is_per_training_example_and_at_the_rate_of_the_epochs_last_step(tmp_path):
    """``history["loss"]`` is ``bd.fit``'s ``elbo``: each epoch's minibatch losses weighted by their sizes, summed,
    over N^2 (of the scale of bd.fit's on the same network, not N times it); ``history["lr"]`` the rate of the
    epoch's last step, as ``bd.fit`` records it (not the next epoch's)."""
    model, guide, x, y = _setup("bernoulli")
    # lr_warmup=0: the rates asserted are the decay's alone (a small network's 'auto' is 0 too)
    module = BayesdropModule(model, guide, example=x[:2], epochs=3, lr_warmup=0)
    steps = _Steps()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=12)  # 5 of 12, one of 4
    _trainer(tmp_path, 3, [steps]).fit(module, loader)
    per_epoch = [[s for s in steps.steps if s["epoch"] == e] for e in range(3)]
    assert [len(p) for p in per_epoch] == [6, 6, 6]
    expected = [sum(s["loss"] * s["size"] for s in p) / N / N for p in per_epoch]
    assert module.history["loss"] == pytest.approx(expected, rel=1e-6)
    assert module.history["lr"] == pytest.approx([p[-1]["lr"] for p in per_epoch], rel=1e-12)
    assert module.history["lr"] == pytest.approx([1e-2, 1e-2 * 2 / 3, 1e-2 / 3], rel=1e-12)
    fit_model, fit_guide, _, _ = _setup("bernoulli")
    fitted = bd.fit(fit_model, fit_guide, (x, y), epochs=3, batch_size=12, lr_warmup=0, progress=False)
    assert fitted.history["lr"] == pytest.approx(module.history["lr"], rel=1e-12)
    for ours, theirs in zip(module.history["loss"], fitted.history["elbo"]):
        assert 0.5 < ours / theirs < 2  # the same quantity, up to the draws and the order of the minibatches


class _Observed(lightning.Callback):
    """Each step's observed log-likelihood, as the ELBO scored it, and its batch size."""

    def __init__(self):
        self.steps: list[tuple[float, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append((float(pl_module.elbo.observed["obs"]), len(batch[1])))


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on loaders and workers
@pytest.mark.parametrize("method", ["bernoulli", "fast-dropout"])
def test_the_history_takes_the_log_likelihood_from_the_loss_as_bd_fit_does(method, tmp_path):
    """The epoch's ``nll`` is the loss's own observed term, per example: the likelihood is not scored a second
    time per step (fast dropout's term is the expected log-likelihood over the sigma points, as it trains)."""
    model, guide, x, y = _setup(method)
    module = BayesdropModule(model, guide, example=x[:2], epochs=1)
    scored = []
    log_likelihood = model.log_likelihood
    model.log_likelihood = lambda out, y: scored.append(1) or log_likelihood(out, y)
    observed = _Observed()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=12)
    _trainer(tmp_path, 1, [observed]).fit(module, loader)
    assert scored == [] and len(observed.steps) == 6 and sum(b for _, b in observed.steps) == N
    assert module.history["nll"] == pytest.approx([-sum(ll for ll, _ in observed.steps) / N], rel=1e-6)
    assert 0 < module.history["nll"][0] < 2 * math.log(3)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Lightning's notes on loaders and workers
def test_the_schedule_spans_the_trainers_max_epochs_unless_epochs_is_given(tmp_path):
    """``epochs`` left out: the trainer's ``max_epochs`` (the decay reaches its end with the run); given, it wins,
    a shorter trainer running the schedule's first part; a longer one under the linear decay, whose last epochs
    would train at rate 0, is refused, as is a trainer without an epoch limit when ``epochs`` is left out."""
    model, guide, x, y = _setup("bernoulli")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 4 steps per epoch
    module = BayesdropModule(model, guide, example=x[:2], lr_warmup=0)  # the decay's rates alone, as above
    assert module.epochs is None
    steps = _Steps()
    _trainer(tmp_path, 4, [steps]).fit(module, loader)
    assert module.epochs == 4
    assert [s["lr"] for s in steps.steps] == pytest.approx([1e-2 * (1 - e / 4) for e in range(4) for _ in range(4)])
    assert module.history["lr"] == pytest.approx([1e-2 * (1 - e / 4) for e in range(4)])
    with pytest.raises(ValueError, match=r"`epochs`=2 but the trainer runs max_epochs=4: .* rate 0"):
        _trainer(tmp_path, 4).fit(BayesdropModule(model, guide, epochs=2), loader)
    with pytest.raises(ValueError, match="the trainer has no epoch limit"):
        _trainer(tmp_path, -1, max_steps=2).fit(BayesdropModule(model, guide), loader)
    steps = _Steps()  # a trainer that stops early: the first half of a schedule over 4 epochs
    _trainer(tmp_path, 2, [steps]).fit(BayesdropModule(model, guide, epochs=4, lr_warmup=0), loader)
    assert [s["lr"] for s in steps.steps] == pytest.approx([1e-2] * 4 + [7.5e-3] * 4)
    constant = BayesdropModule(model, guide, epochs=2, lr_decay=None)  # no decay: running past `epochs` is fine
    _trainer(tmp_path, 3).fit(constant, loader)
    assert constant.history["lr"] == [1e-2] * 3 and constant.history["beta"] == [1.0] * 3
