"""fit / predict / checkpoints, the plain-Pyro path, bad input."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from helpers import record_validation, tiny_classifier

import bayesdrop as bd


def test_plain_pyro_svi_trains_the_same_model():
    ds = bd.data.load("digits")
    net = bd.models.mlp(64, [64], 10, "bernoulli", p=0.2)
    model = bd.Classifier(net, num_data=len(ds.train))
    guide = bd.DropoutGuide(model)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), pyro.infer.TraceMeanField_ELBO())
    x, y = ds.train.x, ds.train.y
    before = bd.evaluate(model, guide, ds.test, rule="weight-scaling")["acc"]
    losses = []
    for _epoch in range(15):
        for idx in torch.randperm(len(x)).split(128):
            losses.append(svi.step(x[idx], y[idx]))
    after = bd.evaluate(model, guide, ds.test, rule="weight-scaling")["acc"]
    # the loss carries the KL constant 0.5 log(2 pi) per weight; the data term starts near N log 10
    drop = (sum(losses[:10]) - sum(losses[-10:])) / 10
    assert drop > 0.5 * len(x) * torch.log(torch.tensor(10.0)).item()
    assert before < 0.3 and after > 0.9


def test_fit_history_and_kl_warmup():
    model, guide, x, y = tiny_classifier("bernoulli", p=0.1)
    res = bd.fit(
        model, guide, (x, y), epochs=4, batch_size=10, kl_warmup=4, lr=1e-3, lr_decay=None, progress=False, test=(x, y)
    )
    h = res.history
    assert h["beta"] == [0.25, 0.5, 0.75, 1.0]
    assert {"elbo", "nll", "kl", "train_acc", "test_acc", "test_nll", "seconds"} <= set(h)
    assert all(len(v) == 4 for v in h.values())
    assert res.seconds_per_epoch > 0
    assert h["lr"] == [1e-3] * 4  # no decay with lr_decay=None


def test_fit_linear_lr_decay():
    """``lr_decay="linear"``: the optimiser runs epoch e at lr (1 - e / epochs), e = 0..epochs-1."""
    model, guide, x, y = tiny_classifier("bernoulli", p=0.1)
    res = bd.fit(model, guide, (x, y), epochs=4, batch_size=10, lr=0.02, lr_decay="linear", progress=False)
    assert res.history["lr"] == pytest.approx([0.02, 0.015, 0.01, 0.005], rel=1e-12)
    with pytest.raises(ValueError, match="`lr_decay` must be None or 'linear'"):
        bd.fit(model, guide, (x, y), epochs=1, lr_decay="cosine", progress=False)


def test_fit_accepts_a_dataloader():
    model, guide, x, y = tiny_classifier("bernoulli", p=0.1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=10, shuffle=True)
    res = bd.fit(model, guide, loader, epochs=2, progress=False)
    assert len(res.history["elbo"]) == 2


def test_fit_rejects_bad_data():
    model, guide, x, y = tiny_classifier("bernoulli")
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        bd.fit(model, guide, (bad, y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="labels|range|classes"):
        bd.fit(model, guide, (x, y + 3), epochs=1, progress=False)
    with pytest.raises(ValueError, match="num_data"):
        bd.fit(model, guide, (x[:10], y[:10]), epochs=1, progress=False)
    with pytest.raises(ValueError, match="`epochs`"):
        bd.fit(model, guide, (x, y), epochs=0, progress=False)
    with pytest.raises(ValueError, match="`device`"):
        bd.fit(model, guide, (x, y), device="tpu", progress=False)
    with pytest.raises(ValueError, match="shape"):
        bd.fit(model, guide, (x[:, :4], y), epochs=1, progress=False)
    other = bd.DropoutGuide(tiny_classifier("bernoulli")[0])
    with pytest.raises(ValueError, match="`guide`"):
        bd.fit(model, other, (x, y), epochs=1, progress=False)


BAD_FIT_ARGUMENTS = [
    ({"lr": float("nan")}, ValueError, "`lr` must be a finite number > 0"),
    ({"lr": -1e-3}, ValueError, "`lr` must be a finite number > 0"),
    ({"lr": "1e-3"}, TypeError, "`lr` must be a number"),
    ({"loss": torch.optim.Adam}, TypeError, "`loss` must be a Pyro ELBO"),
    ({"optimizer": "adam"}, TypeError, "`optimizer` must be callable"),
    ({"lrt": 1}, TypeError, "`lrt` must be True or False"),
    ({"progress": "yes"}, TypeError, "`progress` must be True or False"),
    ({"validate": 0}, TypeError, "`validate` must be None"),
    ({"jit": "on"}, TypeError, "`jit` must be None, True or False"),
    ({"jit": True, "validate": True}, ValueError, "pass one of them"),
    ({"seed": -1}, ValueError, r"`seed` must be an int >= 0 \(or None\), got -1"),
    ({"seed": True}, TypeError, r"`seed` must be an int >= 0 \(or None\), got True"),
    ({"test_samples": 0}, ValueError, "`test_samples` must be a positive int"),
    ({"epochs": "3"}, TypeError, "`epochs` must be a positive int, got '3'"),
    ({"kl_warmup": -1}, ValueError, "`kl_warmup` must be 'auto' or a non-negative int"),
    ({"checkpoint_every": 1.5}, TypeError, "`checkpoint_every` must be a positive int"),
    ({"callback": 3}, TypeError, "`callback` must be callable"),
    ({"callbacks": "early-stop"}, TypeError, "`callbacks` must be a list"),
    ({"callbacks": [print]}, TypeError, "`callbacks` must hold bd.infer.Callback objects"),
    ({"checkpoint": 3}, TypeError, "`checkpoint` must be a path"),
    ({"checkpoint_every": 2}, ValueError, "`checkpoint_every` needs `checkpoint`"),
    ({"run_config": ["a"]}, TypeError, "`run_config` must be None or a dict"),
    ({"run_config": {"a": object()}}, TypeError, r"`run_config\['a'\]`: object is not storable in a checkpoint"),
    ({"loss": pyro.infer.TraceMeanField_ELBO}, TypeError, r"got the class TraceMeanField_ELBO: pass Trace"),
    ({"seed": 2**32}, ValueError, r"`seed` must be an int in \[0, 2\*\*32 - 1\] \(or None\), got 4294967296"),
    ({"checkpoint": "no/such/dir/ck.pt"}, ValueError, r"`checkpoint` must be a file path in an existing directory"),
    ({"resume": "no/such/checkpoint.pt"}, ValueError, "`resume` 'no/such/checkpoint.pt' is not an existing"),
]


@pytest.mark.parametrize("kwargs,error,message", BAD_FIT_ARGUMENTS, ids=lambda v: str(v)[:40])
def test_fit_names_a_bad_argument_before_it_trains(kwargs, error, message):
    """Each refused argument raises its own error, naming it and what is accepted, before any step: the
    parameters are those of the untrained model."""
    model, guide, x, y = tiny_classifier("bernoulli")
    guide(x)  # the guide's parameters exist, to compare after the refusal
    params = lambda: [*model.parameters(), *guide.parameters()]  # noqa: E731
    before = [p.detach().clone() for p in params()]
    assert len(before) == len(params()) >= 4
    with pytest.raises(error, match=message):
        bd.fit(model, guide, (x, y), batch_size=10, **{"progress": False, "epochs": 1, **kwargs})
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, params()))


def test_fit_refuses_a_dataloader_without_batches():
    """An empty data set, and one whose only batch ``drop_last`` drops."""
    model, guide, x, y = tiny_classifier("bernoulli")
    data, empty = torch.utils.data.TensorDataset(x, y), torch.utils.data.TensorDataset(x[:0], y[:0])
    with pytest.raises(ValueError, match="`data` has no examples"):
        bd.fit(model, guide, torch.utils.data.DataLoader(empty), epochs=1, progress=False)
    dropped = torch.utils.data.DataLoader(data, batch_size=len(x) + 1, drop_last=True)
    with pytest.raises(ValueError, match="`data`: the DataLoader yields no batch"):
        bd.fit(model, guide, dropped, epochs=1, progress=False)


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown method 'dropconnect-x'.*accepted names"):
        bd.methods.get("dropconnect-x")
    with pytest.raises(TypeError, match="unknown hyper-parameter"):
        bd.methods.get("bernoulli", alpha=1.0)


def _first_number_hyper(name: str) -> tuple[str, float] | None:
    hyper = bd.methods.info(name)["hyper"]
    return next(((k, v) for k, v in hyper.items() if isinstance(v, float) and v == v), None)


@pytest.mark.parametrize("name", [n for n in bd.methods.names() if _first_number_hyper(n)])  # not stochastic pooling
def test_hyper_parameters_are_numbers_never_text(name):
    """Each method's first number hyper-parameter (all of them go through ``check_range``) refuses a string
    (``float("0.5")`` would read it), a bool and a tensor of several values with a ``TypeError`` naming the
    argument; a NumPy scalar and a one-value tensor are read as the number they hold."""
    key, value = _first_number_hyper(name)
    for bad in (str(value), True, torch.tensor([value, value])):
        with pytest.raises(TypeError, match=f"`{key}` must be a number, got"):
            bd.methods.get(name, **{key: bad})
    for same in (np.float64(value), torch.tensor(value, dtype=torch.float64)):
        assert getattr(bd.methods.get(name, **{key: same}), key) == pytest.approx(value)


def test_predict_rejects_bad_arguments():
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(ValueError, match="`rule`"):
        bd.predict(model, guide, x, rule="geometric")
    with pytest.raises(ValueError, match="`num_samples`"):
        bd.predict(model, guide, x, num_samples=0)
    with pytest.raises(ValueError, match="`x` must have shape"):
        bd.predict(model, guide, x[:, :3])


def test_load_checkpoint_validates_the_file(tmp_path):
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bd.load_checkpoint(tmp_path / "missing.pt", model, guide)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable bayesdrop checkpoint"):
        bd.load_checkpoint(junk, model, guide)
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a bayesdrop checkpoint"):
        bd.load_checkpoint(tmp_path / "other.pt", model, guide)
    with pytest.raises(TypeError, match="`path` must be a path"):
        bd.load_checkpoint(3, model, guide)
    good = tmp_path / "good.pt"
    bd.save_checkpoint(good, model, guide)
    state = torch.load(good, weights_only=True)
    torch.save({**state, "model": {"w": 1.0}}, tmp_path / "entry.pt")
    with pytest.raises(ValueError, match="its 'model' entry is not a state dict of tensors"):
        bd.load_checkpoint(tmp_path / "entry.pt", model, guide)
    torch.save({**state, "history": [1.0]}, tmp_path / "history.pt")
    with pytest.raises(ValueError, match="its 'history' entry must be a dict or None"):
        bd.load_checkpoint(tmp_path / "history.pt", model, guide)
    wider, wider_guide = tiny_classifier("bernoulli", d=7)[:2]  # another network: its entries do not fit
    with pytest.raises(ValueError, match=r"model state does not fit.*shapes differ"):
        bd.load_checkpoint(good, wider, wider_guide)
    deeper = bd.Classifier(bd.models.mlp(6, [8, 8], 3, "bernoulli"), num_data=40)
    with pytest.raises(ValueError, match=r"model state does not fit.*missing \["):
        bd.load_checkpoint(good, deeper, bd.DropoutGuide(deeper))


def test_regressor_predict_returns_mean_and_std():
    ds = bd.data.load("toy-regression")
    net = bd.models.mlp(1, [16], 1, "bernoulli", p=0.1, input_method=bd.methods.get("bernoulli", p=0.0))
    model = bd.Regressor(net, num_data=len(ds.train), noise_scale=0.2)
    guide = bd.DropoutGuide(model)
    mean, std = bd.predict(model, guide, ds.test.x, num_samples=10)
    assert mean.shape == std.shape == (len(ds.test),)
    assert (std >= model.noise_scale.detach() - 1e-6).all()  # predictive std includes the noise


def test_mean_field_elbo_refuses_a_skipped_weight_draw_without_analytic_kl():
    """``LocalReparameterization(draw_weights=False)`` leaves a placeholder where the weight draw was; a site whose
    KL is not registered (Normal guide, Cauchy prior) would score it by Monte Carlo, so MeanFieldELBO raises."""

    def model():
        pyro.sample("w", dist.Cauchy(torch.zeros(3), 1.0).to_event(1))

    def guide():
        pyro.sample("w", dist.Normal(torch.zeros(3), 1.0).to_event(1), infer={"lrt": True})

    elbo = bd.infer.MeanFieldELBO()
    with bd.nn.LocalReparameterization(draw_weights=False), pytest.raises(ValueError, match="draw_weights=True"):
        elbo.differentiable_loss(model, guide)
    with bd.nn.LocalReparameterization():  # drawn weights: the Monte Carlo term is fine
        assert torch.isfinite(elbo.differentiable_loss(model, guide))


def test_fit_follows_pyros_validation_setting_in_its_first_epoch_unless_told(monkeypatch):
    """By default fit validates every step of its first epoch when Pyro validates (the tests turn it on globally)
    and no later step, none when Pyro does not; ``validate=`` sets it for every step of the run only.  Eager steps
    (``jit=False``) are counted; the compiled loss (``jit``'s default) is recorded without validation."""
    model, guide, x, y = tiny_classifier("sparse-vd")
    seen = record_validation(monkeypatch)
    assert pyro.infer.util.is_validation_enabled()
    bd.fit(model, guide, (x, y), epochs=2, batch_size=10, progress=False, jit=False)
    assert seen == [True] * 4 + [False] * 4  # 2 epochs of 4 steps
    assert pyro.infer.util.is_validation_enabled()  # restored
    seen.clear()
    bd.fit(model, guide, (x, y), epochs=2, batch_size=10, progress=False)  # primed, recorded and checked: 3 calls
    assert seen == [False] * 3 + [True] * 4
    seen.clear()
    bd.fit(model, guide, (x, y), epochs=2, batch_size=10, progress=False, validate=True)
    assert seen == [True] * 8
    seen.clear()
    bd.fit(model, guide, (x, y), epochs=1, batch_size=10, progress=False, validate=False, jit=False)
    assert seen == [False] * 4
    assert pyro.infer.util.is_validation_enabled()  # restored
    seen.clear()
    with pyro.validation_enabled(False):
        bd.fit(model, guide, (x, y), epochs=1, batch_size=10, progress=False, jit=False)
        assert seen == [False] * 4
        seen.clear()
        bd.fit(model, guide, (x, y), epochs=1, batch_size=10, progress=False, validate=True)
        assert seen == [True] * 4
    with pytest.raises(TypeError, match="`validate`"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False, validate="first")


def test_svi_sees_every_parameter_through_param_statements():
    """The plain-Pyro path: model and guide issue a pyro.param statement for every parameter."""
    model, guide, x, y = tiny_classifier("sparse-vd")
    names = {f"guide.{n}" for n, _ in guide.named_parameters()} | {n for n, _ in model.named_parameters()}
    with poutine.trace(param_only=True) as tr:
        guide(x, y)
        model(x, y)
    assert set(tr.trace.nodes) == names


def test_fit_history_aggregates_its_steps(monkeypatch):
    """Per epoch: elbo = sum_b loss_b B_b / N^2, nll = -sum log p(y | out) / N, train_acc from every step's
    output, kl = N elbo - N nll; batches of unequal size (15, 15, 10) weigh by their size."""
    model, guide, x, y = tiny_classifier("sparse-vd")
    steps = []
    original_loss = bd.infer.MeanFieldELBO.differentiable_loss
    original_forward = type(model).forward

    def spy_loss(self, model_, guide_, xb, yb):
        loss = original_loss(self, model_, guide_, xb, yb)
        steps[-1]["loss"], steps[-1]["size"] = loss.item(), len(yb)
        return loss

    def spy_forward(self, xb, yb=None):
        out = original_forward(self, xb, yb)
        steps.append({"ll": self.log_likelihood(out, yb).sum().item(), "correct": (out.argmax(-1) == yb).sum().item()})
        return out

    monkeypatch.setattr(bd.infer.MeanFieldELBO, "differentiable_loss", spy_loss)
    monkeypatch.setattr(type(model), "forward", spy_forward)
    # eager steps, whose Python the spies see (a compiled run's history equals it: tests/test_compiled.py)
    h = bd.fit(model, guide, (x, y), epochs=2, batch_size=15, progress=False, jit=False).history
    n = len(x)
    steps = steps[1:]  # the first call is the guide's set-up run of the model
    assert [s["size"] for s in steps] == [15, 15, 10] * 2
    for epoch in range(2):
        ep = steps[3 * epoch : 3 * epoch + 3]
        elbo = sum(s["loss"] * s["size"] for s in ep) / n**2
        nll = -sum(s["ll"] for s in ep) / n
        assert h["elbo"][epoch] == pytest.approx(elbo, rel=1e-5)
        assert h["nll"][epoch] == pytest.approx(nll, rel=1e-5)
        assert h["kl"][epoch] == pytest.approx(n * elbo - n * nll, rel=1e-4)
        assert h["train_acc"][epoch] == sum(s["correct"] for s in ep) / n


def test_fit_reads_the_log_likelihood_from_its_loss_and_recomputes_it_for_other_losses():
    """bd.fit's MeanFieldELBO records each minibatch's unscaled log-likelihood as it scores it (``nll`` is taken
    from there); a subclass is not trusted to, and its ``nll`` is recomputed from the output.  Same seed, same
    loss: the same history to rounding, fast dropout's expected log-likelihood included."""

    class Subclass(bd.infer.MeanFieldELBO):
        pass

    for method in ("bernoulli", "fast-dropout"):
        hist = []
        for loss in (None, Subclass(max_plate_nesting=1)):
            pyro.set_rng_seed(0)  # the same initial network
            model, guide, x, y = tiny_classifier(method)
            hist.append(
                bd.fit(model, guide, (x, y), epochs=2, batch_size=15, seed=0, loss=loss, progress=False).history
            )
        assert hist[0]["nll"] == pytest.approx(hist[1]["nll"], rel=1e-5)
        assert hist[0]["elbo"] == pytest.approx(hist[1]["elbo"], rel=1e-5)
    elbo = bd.infer.MeanFieldELBO(max_plate_nesting=1)
    model, guide, x, y = tiny_classifier("vd")
    loss = elbo.differentiable_loss(model, guide, x[:10], y[:10])
    assert set(elbo.observed) == {"obs"} and not elbo.observed["obs"].requires_grad and loss.requires_grad
    assert elbo.observed["obs"] < 0  # a log-likelihood of 10 labels, unscaled (the loss has it times N / 10)


def test_fit_callback_sees_each_epoch_and_can_stop_early():
    model, guide, x, y = tiny_classifier("bernoulli", p=0.1)
    seen = []

    def callback(epoch, history):
        seen.append((epoch, len(history["elbo"])))
        return epoch == 2  # stop after the third epoch

    res = bd.fit(model, guide, (x, y), epochs=10, batch_size=10, progress=False, callback=callback)
    assert seen == [(0, 1), (1, 2), (2, 3)]
    assert len(res.history["elbo"]) == 3
    with pytest.raises(TypeError, match="`callback` must be callable"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False, callback=3)


def test_fit_takes_an_optimizer_factory_of_the_param_groups():
    model, guide, x, y = tiny_classifier("sparse-vd")
    made = []

    def sgd(groups):
        made.append([g["lr"] for g in groups])
        return torch.optim.SGD(groups, momentum=0.9)

    before = guide.layers["net__0"].weight.detach().clone()
    # lr=0.05 is what the factory must receive in its groups; validation off only for speed (it changes no number)
    bd.fit(model, guide, (x, y), epochs=2, batch_size=10, lr=0.05, optimizer=sgd, progress=False, validate=False)
    assert made == [[0.05]] and not torch.equal(before, guide.layers["net__0"].weight)
    with pytest.raises(TypeError, match="`optimizer` must return a torch.optim.Optimizer"):
        bd.fit(model, guide, (x, y), epochs=1, optimizer=lambda groups: None, progress=False)
    with pytest.raises(TypeError, match="`optimizer` must be callable"):
        bd.fit(model, guide, (x, y), epochs=1, optimizer="sgd", progress=False)


class _PlateOnly(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 2)

    def data_plate(self, x, y=None):
        return pyro.plate("data", len(x))


def test_the_guide_names_what_it_cannot_guide():
    """``DropoutGuide`` needs a likelihood with bayesdrop layers, reads point values only once it has run, and
    answers for its own model's layers only; ``dropout_rates`` takes only the guide built for the model."""
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(TypeError, match=r"`model` must provide data_plate\(x, ...\)"):
        bd.DropoutGuide(model.net)
    with pytest.raises(ValueError, match="`model` contains no bayesdrop.nn layers"):
        bd.DropoutGuide(_PlateOnly())  # a likelihood-like model of plain layers
    with pytest.raises(RuntimeError, match=r"call the guide once \(e.g. guide\(x\)\)"):
        guide.point_values()
    other, other_guide = tiny_classifier("bernoulli")[:2]
    with pytest.raises(KeyError, match="not part of this guide's model"):
        guide.layer_guide(other.net[0])
    with pytest.raises(ValueError, match="`guide` must be the DropoutGuide built for `model`"):
        bd.dropout_rates(model, other_guide)
    guide(x)
    assert set(guide.point_values()) == set(bd.dropout_rates(model, guide))


def test_fit_keeps_the_parameters_a_user_froze():
    """A parameter with requires_grad=False (a frozen normalisation layer) is not trained, and stays frozen: Pyro's
    param store turns requires_grad on as it registers a module's parameters, which the guide's first run undoes."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.ln, self.out = torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(self.ln(self.fc(x)).relu())

    torch.manual_seed(0)
    plain = Net()
    plain.ln.requires_grad_(False)
    net = bd.bayesianize(plain, "bernoulli")
    model = bd.Classifier(net, num_data=40)
    guide = bd.DropoutGuide(model)
    before = [p.detach().clone() for p in net.ln.parameters()]
    bd.fit(model, guide, (torch.randn(40, 4), torch.randint(0, 3, (40,))), epochs=2, progress=False)
    assert all(not p.requires_grad and torch.equal(p, b) for p, b in zip(net.ln.parameters(), before))
    assert all(
        id(p) not in {id(q) for q in net.ln.parameters()}
        for g in bd.infer.param_groups(model, guide, 0.1)
        for p in g["params"]
    )


def test_inputs_of_the_wrong_kind_are_refused_by_fit_and_predict_alike():
    """Float64 inputs to a float32 network and integer inputs to a network without an embedding: a TypeError
    naming the argument before any step or draw (torch's own error comes from inside a layer, mid-trace)."""
    torch.manual_seed(0)
    net = bd.models.mlp(4, [8], 3)
    model = bd.Classifier(net, num_data=40)
    guide = bd.DropoutGuide(model)
    y = torch.randint(0, 3, (40,))
    with pytest.raises(TypeError, match=r"`data`: x is int64, integer tokens, but the network has no embedding"):
        bd.fit(model, guide, (torch.ones(40, 4, dtype=torch.int64), y), epochs=1, progress=False)
    bd.fit(model, guide, (torch.randn(40, 4), y), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"`x`: x is float64 but the model's parameters are float32"):
        bd.predict(model, guide, torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"`x`: x is int64, integer tokens"):
        bd.predict(model, guide, torch.ones(3, 4, dtype=torch.int64))


def test_a_plain_pyro_svi_step_refuses_inputs_of_the_wrong_dtype_by_name():
    """The model checks every batch it runs: a plain ``pyro.infer.SVI`` step of a float64 model on float32 inputs
    (NumPy's default) or on integer inputs without an embedding is a TypeError naming ``x``, not torch's matrix
    product error from inside the first layer; in float64 the step runs."""
    torch.manual_seed(0)
    pyro.clear_param_store()
    model = bd.Classifier(bd.models.mlp(4, [8], 3, "bernoulli"), num_data=10).double()
    guide = bd.DropoutGuide(model)
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), pyro.infer.Trace_ELBO())
    x, y = torch.randn(10, 4, dtype=torch.float64), torch.randint(0, 3, (10,))
    with pytest.raises(TypeError, match=r"`x`: x is float32 but the model's parameters are float64"):
        svi.step(x.float(), y)
    with pytest.raises(TypeError, match=r"`x`: x is int64, integer tokens, but the network has no embedding"):
        svi.step(x.long(), y)
    assert math.isfinite(svi.step(x, y))


def test_the_input_check_reads_the_parameter_that_parameters_yields_first():
    """The dtype check's walk of the module tree finds the first floating parameter of ``model.parameters()``:
    past a root and containers without parameters, a child set to None and integer buffers, in a network whose
    own parameter comes before its children's, and none in a network without floating parameters."""
    from bayesdrop.likelihoods import _first_floating_parameter

    def first(module: torch.nn.Module) -> torch.Tensor | None:
        return next((p for p in module.parameters() if p.is_floating_point()), None)

    torch.manual_seed(0)
    nested = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(3, 4)))
    nested.register_module("gone", None)
    nested.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    class Scaled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.child = torch.nn.Linear(2, 2)
            self.scale = torch.nn.Parameter(torch.ones(()))  # registered after the child: parameters() yields it first

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.child(x) * self.scale

    own = Scaled()
    with pytest.warns(UserWarning, match="parameters that Scaled holds itself stay deterministic"):
        nets = [bd.bayesianize(nested, "bernoulli"), bd.bayesianize(own, "bernoulli")]
    nets += [bd.models.lenet5((1, 8, 8), 10, "bernoulli"), bd.models.rnn(1, 4, 3, "variational-rnn")]
    for net in nets:
        model = bd.Classifier(net, num_data=10)
        assert _first_floating_parameter(model) is first(model) is not None
    assert _first_floating_parameter(nets[1]) is own.scale
    assert _first_floating_parameter(torch.nn.Sequential(torch.nn.ReLU())) is None


def test_nan_inputs_from_a_data_loader_are_named_not_blamed_on_the_learning_rate():
    """A loader's batches are not checked before training as tensors are: a NaN input in its third batch stops the
    run with a message naming that batch, compiled or eager."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    x[25, 1] = float("nan")
    for jit in (None, False):
        model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
        guide = bd.DropoutGuide(model)
        with pytest.raises(FloatingPointError, match=r"`data`: x of batch 2 of epoch 0 .* contains NaN or inf"):
            bd.fit(model, guide, DataLoader(TensorDataset(x, y), batch_size=10), epochs=1, progress=False, jit=jit)


def test_fit_refuses_a_batch_size_beside_a_data_loader():
    """A DataLoader sets its own batches: a batch_size beside it would be ignored, so it is refused (as predict
    refuses it)."""
    from torch.utils.data import DataLoader, TensorDataset

    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
    guide = bd.DropoutGuide(model)
    loader = DataLoader(TensorDataset(torch.randn(40, 4), torch.randint(0, 3, (40,))), batch_size=8)
    with pytest.raises(ValueError, match="`batch_size`: the DataLoader sets the batches"):
        bd.fit(model, guide, loader, batch_size=7, epochs=1, progress=False)


def test_a_model_cast_after_its_guide_ran_is_named_before_training():
    """model.double() after the guide ran leaves the variational parameters float32: fit and predict say so, and
    what to do, before a step (it failed deep in a matrix product); cast together, they train in float64."""
    model, guide, x, y = tiny_classifier("vbd")
    guide(x)
    bd.predict(model, guide, x, rule="weight-scaling")  # its plain network cached, then stale
    model.double()
    for call in (
        lambda: bd.fit(model, guide, (x.double(), y), epochs=1, progress=False),
        lambda: bd.predict(model, guide, x.double()),
        lambda: bd.predict(model, guide, x.double(), rule="weight-scaling"),
        lambda: bd.evaluate(model, guide, (x.double(), y), num_samples=2),
        lambda: bd.to_inference_data(model, guide, (x.double(), y), num_samples=2),
    ):
        with pytest.raises(ValueError, match=r"guide's parameter .* is torch.float32 .* layer .* is torch.float64"):
            call()
    guide.double()
    result = bd.fit(model, guide, (x.double(), y), epochs=1, progress=False)
    assert math.isfinite(result.history["elbo"][0])
    assert bd.predict(model, guide, x.double()).dtype == torch.float64


def test_evaluate_refuses_inputs_of_the_wrong_dtype_by_name_under_every_rule():
    """``evaluate`` checks its tensor inputs before any pass, naming ``data``: under the weight-scaling rule, whose
    plain pass does not run the model, torch's matrix-product error came from inside the first layer."""
    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=10)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    guide(x)
    for rule in ("mc", "weight-scaling"):
        with pytest.raises(TypeError, match=r"`data`: x is float64 but the model's parameters are float32"):
            bd.evaluate(model, guide, (x.double(), y), rule=rule)
    assert set(bd.evaluate(model, guide, (x, y), rule="weight-scaling")) == {"acc", "nll"}


class _LaterBatchDouble(torch.utils.data.Dataset):
    """Ten examples whose last batch of four (rows 8-9) comes in float64: a check of the first batch alone misses it."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.x[i].double() if i >= 8 else self.x[i]), self.y[i]


def test_a_dataloaders_batches_of_the_wrong_dtype_are_refused_by_name_under_every_rule():
    """A DataLoader's batches are checked as they come, before a pass reads them, by ``predict`` (naming ``x``) and
    ``evaluate`` (naming ``data``) under every rule: the weight-scaling rule's plain network checks nothing itself,
    and torch's matrix-product error came from inside its first layer; a wrong later batch is named too."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = bd.Classifier(bd.models.mlp(4, [8], 3, "bernoulli"), num_data=10)
    guide = bd.DropoutGuide(model)
    x, y = torch.randn(10, 4), torch.randint(0, 3, (10,))
    guide(x)
    for rule in ("mc", "weight-scaling"):
        for data in (TensorDataset(x.double(), y), _LaterBatchDouble(x, y)):
            loader = DataLoader(data, batch_size=4)
            with pytest.raises(TypeError, match=r"`x`: x is float64 but the model's parameters are float32"):
                bd.predict(model, guide, loader, rule=rule)
            with pytest.raises(TypeError, match=r"`data`: x is float64 but the model's parameters are float32"):
                bd.evaluate(model, guide, loader, rule=rule)
        good = DataLoader(TensorDataset(x, y), batch_size=4)
        assert bd.predict(model, guide, good, rule=rule).shape == (10, 3)


def test_test_data_the_network_cannot_read_is_refused_before_the_first_epoch():
    """``fit(test=...)`` runs the model on the first examples of ``test`` before training (a loader's first batch
    checked as a training batch is): the wrong width, an extra axis, float64 inputs and labels out of range, as
    tensors or a DataLoader, are a ValueError / TypeError naming ``test`` with no step taken (they came after an
    epoch, naming ``data`` or ``x``).  Valid test data gives the same history as before the check: it runs on a
    fork of the generators."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))

    def loader(xs: torch.Tensor, ys: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(xs, ys), batch_size=8)

    cases = [
        ((torch.randn(40, 5), y), ValueError, r"`test`: its first examples do not run .* \(\*, 4\)"),
        (loader(torch.randn(40, 5), y), ValueError, r"`test`: its first examples do not run .* \(\*, 4\)"),
        ((x.unsqueeze(1), y), ValueError, r"`test`: its first examples .* examples of shape \(1, 4\)"),
        (loader(x.double(), y), TypeError, r"`test`: x is float64"),
        (loader(x, y + 5), ValueError, r"`test.y` must hold labels in \[0, 2\]"),
        (DataLoader(TensorDataset(x), batch_size=8), TypeError, r"`test`: a DataLoader must yield \(x, y\) pairs"),
    ]
    for test, error, message in cases:
        model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
        guide = bd.DropoutGuide(model)
        before = [p.detach().clone() for p in model.parameters()]
        with pytest.raises(error, match=message):
            bd.fit(model, guide, (x, y), epochs=1, progress=False, test=test, seed=0)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True)), "a step was taken"
    histories = []
    for test in ((x, y), loader(x, y), None):
        torch.manual_seed(1)
        model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
        histories.append(bd.fit(model, bd.DropoutGuide(model), (x, y), epochs=2, progress=False, test=test, seed=0))
    assert histories[0].history["elbo"] == histories[1].history["elbo"] == histories[2].history["elbo"]
    assert histories[0].history["test_nll"] == histories[1].history["test_nll"]


def test_warmups_longer_than_the_run_are_named_in_a_warning():
    """A KL warm-up longer than the run never gives the KL term its full weight (the last epoch's beta is
    epochs / kl_warmup) and a learning-rate warm-up longer than the run's steps never reaches ``lr``: each is a
    UserWarning with the factor the run ends at; warm-ups within the run give none."""
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.warns(
        UserWarning,
        match=r"`kl_warmup` is 100 epochs, longer than the run's 2: the KL term never gets its full weight \(beta ends at 0.02\)",
    ):
        # the warm-ups are what the test is about: one longer than the run, then ones within it
        result = bd.fit(model, guide, (x, y), epochs=2, kl_warmup=100, progress=False)
    assert result.history["beta"] == pytest.approx([0.01, 0.02])
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.warns(UserWarning, match=r"`lr_warmup` is 1000 optimiser steps, longer than the run's \d+"):
        bd.fit(model, guide, (x, y), epochs=2, lr_warmup=1000, progress=False)
    model, guide, x, y = tiny_classifier("bernoulli")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        bd.fit(model, guide, (x, y), epochs=2, kl_warmup=2, lr_warmup=1, progress=False)


def test_a_short_run_that_ends_at_chance_warns_once():
    """Inputs that say nothing of the labels (all zeros) keep training accuracy at chance: a run shorter than the
    epochs the collapse warning waits for warns at its end, naming the epochs trained; a longer one warns once,
    when the chance epochs are reached, not again at its end."""
    torch.manual_seed(0)
    x, y = torch.zeros(40, 4), torch.arange(40) % 3
    for epochs, expected in ((3, r"training ended at chance accuracy \(0\.\d+\) after 3 epochs"), (6, r"stayed at")):
        model = bd.Classifier(bd.models.mlp(4, [8], 3), num_data=40)
        with pytest.warns(bd.CollapseWarning) as caught:
            result = bd.fit(model, bd.DropoutGuide(model), (x, y), epochs=epochs, progress=False, seed=0)
        chance = [str(w.message) for w in caught if "chance" in str(w.message)]
        assert len(chance) == 1 and re.search(expected, chance[0]), chance
        assert result.warnings == chance


def test_flags_and_seeds_of_the_wrong_kind_are_refused_by_name():
    """Truthy values are not bools: ``return_samples="yes"``, ``jit=1`` and ``prune(sparse="yes")`` were accepted as
    True; a seed beyond 32 bits failed inside NumPy or torch without naming ``seed``; ``KLScale`` took any beta."""
    model, guide, x, y = tiny_classifier("bernoulli")
    bd.fit(model, guide, (x, y), epochs=1, progress=False)
    with pytest.raises(TypeError, match=r"`return_samples` must be True or False, got 'yes'"):
        bd.predict(model, guide, x, return_samples="yes")
    with pytest.raises(TypeError, match=r"`jit` must be None, True or False, got 1"):
        bd.fit(model, guide, (x, y), epochs=1, progress=False, jit=1)
    with pytest.raises(TypeError, match=r"`sparse` must be True or False, got 'yes'"):
        bd.compress.prune(model, guide, sparse="yes")
    for call in (
        lambda: bd.evaluate(model, guide, (x, y), seed=2**64),
        lambda: bd.to_inference_data(model, guide, (x, y), seed=2**40, num_samples=2),
    ):
        with pytest.raises(ValueError, match=r"`seed` must be an int in \[0, 2\*\*32 - 1\] \(or None\)"):
            call()
    for beta, error in ((-1.0, ValueError), (float("nan"), ValueError), ("x", TypeError), (True, TypeError)):
        with pytest.raises(error, match="`beta`"):
            bd.handlers.KLScale(beta)
    assert bd.handlers.KLScale(torch.tensor(0.5)).beta.item() == 0.5


def test_a_model_cast_after_its_guide_was_built_is_named_by_predict_and_evaluate():
    """``model.double()`` after ``DropoutGuide(model)`` (the guide's parameters still float32): predict and evaluate
    name the guide's parameter and the remedy, as fit does, instead of torch's matrix-product error."""
    model, guide, x, y = tiny_classifier("bernoulli")
    model.double()
    for call in (lambda: bd.predict(model, guide, x.double()), lambda: bd.evaluate(model, guide, (x.double(), y))):
        with pytest.raises(
            ValueError, match=r"the guide's parameter .* is torch.float32 .* cast the guide the same way"
        ):
            call()


def test_output_draws_refuses_inputs_that_are_not_a_tensor():
    """``output_draws`` takes a tensor of inputs (``predict`` also DataLoaders and arrays): a nested list was read as
    batches and failed on ``.to`` (an AttributeError)."""
    model, guide, x, _ = tiny_classifier("bernoulli")
    with pytest.raises(TypeError, match=r"`x` must be a tensor of inputs \(N, \.\.\.\), got list"):
        bd.infer.output_draws(model, guide, x.tolist())
    assert bd.infer.output_draws(model, guide, x, num_samples=3).shape == (3, len(x), 3)
