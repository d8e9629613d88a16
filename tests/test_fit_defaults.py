"""``bd.fit``'s defaults that live with the methods, and its collapse and divergence detection."""

from __future__ import annotations

import re
import warnings

import pyro
import pytest
import torch
from helpers import tiny_classifier
from pyro.nn import PyroModule

import bayesdrop as bd
from bayesdrop.infer import CHANCE_EPOCHS, param_groups, resolve_kl_warmup
from bayesdrop.methods import TrainingDefaults


def test_kl_warmup_auto_is_the_largest_fraction_declared_by_the_layers():
    fixed, _, _, _ = tiny_classifier("bernoulli")
    assert resolve_kl_warmup(fixed, 100) == 0
    vbd, _, _, _ = tiny_classifier("vbd")
    for name in ("vd", "sparse-vd", "vbd"):
        assert bd.methods.get(name).fit_defaults.kl_warmup == 1.0
    assert resolve_kl_warmup(vbd, 100) == 100 and resolve_kl_warmup(vbd, 7) == 7
    assert resolve_kl_warmup(vbd, 100, 3) == 3
    mixed = bd.Classifier(bd.models.mlp(6, [8], 3, "bernoulli", input_method="vbd"), num_data=40)
    assert resolve_kl_warmup(mixed, 10) == 10

    class HalfWarm(type(bd.methods.get("bernoulli"))):
        fit_defaults = TrainingDefaults(kl_warmup=0.5)

    half = bd.Classifier(bd.models.mlp(6, [8], 3, HalfWarm(), input_method="bernoulli"), num_data=40)
    assert resolve_kl_warmup(half, 7) == 4  # round(3.5), to even


def test_fit_records_the_resolved_warm_up_in_beta():
    model, guide, x, y = tiny_classifier("sparse-vd")
    res = bd.fit(model, guide, (x, y), epochs=5, batch_size=20, progress=False)
    assert res.history["beta"] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # over all 5 epochs
    model, guide, x, y = tiny_classifier("bernoulli")
    res = bd.fit(model, guide, (x, y), epochs=3, batch_size=20, progress=False)
    assert res.history["beta"] == [1.0, 1.0, 1.0]


def test_default_learning_rate_decays_linearly():
    model, guide, x, y = tiny_classifier("bernoulli")
    res = bd.fit(model, guide, (x, y), epochs=4, batch_size=20, progress=False)
    assert res.history["lr"] == pytest.approx([1e-2, 7.5e-3, 5e-3, 2.5e-3])
    # What the test is about: the non-default settings are recorded as given.
    res = bd.fit(model, guide, (x, y), epochs=2, batch_size=20, lr_decay=None, lr=3e-3, progress=False)
    assert res.history["lr"] == [3e-3, 3e-3]


class _Recording(torch.optim.Adam):
    """Adam that records the first group's learning rate at each of its steps."""

    def __init__(self, groups, rates):
        super().__init__(groups)
        self.rates = rates

    def step(self, closure=None):
        self.rates.append(self.param_groups[0]["lr"])
        return super().step(closure)


def test_learning_rate_warms_up_linearly_over_its_steps_then_decays():
    """``lr_warmup=W``: step t takes lr * min(1, (t + 1) / W) times its epoch's linear decay; the history keeps the
    rate of each epoch's last step; without the decay the warmed-up rate is lr again (not the last warm-up step's)."""
    model, guide, x, y = tiny_classifier("bernoulli")  # 40 points, batch 16: 3 steps per epoch
    rates: list[float] = []
    res = bd.fit(
        model, guide, (x, y), epochs=4, batch_size=16, lr_warmup=5, optimizer=lambda g: _Recording(g, rates),
        progress=False,
    )  # fmt: skip
    expected = [1e-2 * min(1, (t + 1) / 5) * (1 - (t // 3) / 4) for t in range(12)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert expected[:5] == pytest.approx([2e-3, 4e-3, 6e-3, 6e-3, 7.5e-3])  # the warm-up, then the decay
    assert res.history["lr"] == pytest.approx([expected[2], expected[5], expected[8], expected[11]], rel=1e-12)
    rates.clear()
    bd.fit(
        model, guide, (x, y), epochs=3, batch_size=16, lr_warmup=4, lr_decay=None,
        optimizer=lambda g: _Recording(g, rates), progress=False,
    )  # fmt: skip
    assert rates == pytest.approx([2.5e-3, 5e-3, 7.5e-3] + [1e-2] * 6, rel=1e-12)


def test_lr_warmup_auto_is_a_tenth_of_the_steps_from_512_inputs_on():
    """``"auto"``: a tenth of the steps where the first weight layer sums at least 512 inputs (an MLP's
    ``in_features``, a convolution's channels times its kernel), none below; a number is taken as given."""
    from bayesdrop.infer import LR_WARMUP_FAN_IN, LR_WARMUP_FRACTION, input_fan_in, resolve_lr_warmup

    assert (LR_WARMUP_FRACTION, LR_WARMUP_FAN_IN) == (0.1, 512)
    wide, guide, x, y = tiny_classifier("bernoulli", d=512)
    narrow = tiny_classifier("bernoulli", d=511)[0]
    assert input_fan_in(wide) == 512 and input_fan_in(narrow) == 511
    assert input_fan_in(bd.models.lenet5((3, 32, 32), 10, "bernoulli")) == 3 * 5 * 5
    assert resolve_lr_warmup(wide, 1600) == 160 and resolve_lr_warmup(wide, 24) == 2 and resolve_lr_warmup(wide, 4) == 0
    assert resolve_lr_warmup(narrow, 1600) == 0 and resolve_lr_warmup(narrow, 1600, 7) == 7
    rates: list[float] = []
    bd.fit(wide, guide, (x, y), epochs=10, batch_size=4, optimizer=lambda g: _Recording(g, rates), progress=False)
    # 10 steps per epoch, 100 in all: the rate rises over the first 10
    assert rates[:11] == pytest.approx([1e-3 * (t + 1) for t in range(10)] + [9e-3], rel=1e-12)
    model, guide, x, y = tiny_classifier("bernoulli", d=511)
    rates.clear()
    bd.fit(model, guide, (x, y), epochs=10, batch_size=4, optimizer=lambda g: _Recording(g, rates), progress=False)
    assert rates[:10] == [1e-2] * 10


@pytest.mark.parametrize("bad", [-1, 1.5, "tenth", True, None])
def test_lr_warmup_rejects_bad_values(bad):
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(ValueError, match="`lr_warmup` must be 'auto' or a non-negative int"):
        bd.fit(model, guide, (x, y), epochs=1, lr_warmup=bad, progress=False)


@pytest.mark.parametrize("bad", [-1, 1.5, "half", True, None])
def test_kl_warmup_rejects_bad_values(bad):
    model, guide, x, y = tiny_classifier("bernoulli")
    with pytest.raises(ValueError, match="kl_warmup"):
        bd.fit(model, guide, (x, y), epochs=1, kl_warmup=bad, progress=False)


def test_training_defaults_are_validated():
    with pytest.raises(ValueError, match="kl_warmup"):
        TrainingDefaults(kl_warmup=1.5)
    with pytest.raises(ValueError, match="lr_scale"):
        TrainingDefaults(lr_scale={"k": 0.0})
    d = TrainingDefaults(lr_scale={"k": 3.0})
    with pytest.raises(TypeError):
        d.lr_scale["k"] = 1.0  # read-only


class _FastGates(type(bd.methods.get("sal"))):
    fit_defaults = TrainingDefaults(lr_scale={"k": 30.0})


def test_lr_scale_gives_the_named_parameters_their_own_group_and_rate():
    method = _FastGates(a=0.5, b=0.5, init=0.5)
    model = bd.Classifier(bd.models.mlp(6, [8], 3, method), num_data=40)
    guide = bd.DropoutGuide(model)
    groups = param_groups(model, guide, 1e-2)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2, 0.3])
    gates = {id(p) for _, _, lg in guide.pairs() for n, p in lg.named_parameters() if n == "k"}
    assert {id(p) for p in groups[1]["params"]} == gates
    every = [p for g in groups for p in g["params"]]
    assert len(every) == len({id(p) for p in every}) == len({id(p) for p in [*model.parameters(), *guide.parameters()]})
    # Under fit, a gate moves 30x further per Adam step than at lr (Adam's first step is lr * sign(grad)).
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    before = guide.layers["net__0"].k.detach().clone()
    # One full-batch step at a known constant rate, so that the step of a gate is exactly lr * scale.
    bd.fit(model, guide, (x, y), epochs=1, batch_size=40, lr=1e-3, lr_decay=None, progress=False, validate=False)
    step = (guide.layers["net__0"].k.detach() - before).abs()
    assert step.max().item() == pytest.approx(3e-2, rel=1e-3) and (step <= 3e-2 * (1 + 1e-6)).all()


def test_forced_collapse_warns_with_the_remedy():
    """vbd without warm-up at lr 1e-2 on digits: the KL prunes every weight (Liu et al. 2019 train with warm-up)."""
    data = bd.data.load("digits")
    net = bd.models.mlp(64, [300, 100], 10, method="vbd")
    model = bd.Classifier(net, num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    with pytest.warns(bd.CollapseWarning) as record:  # the forced collapse: no warm-up, lr 1e-2
        res = bd.fit(model, guide, data.train, epochs=CHANCE_EPOCHS + 3, kl_warmup=0, lr=1e-2, progress=False)
    messages = [str(w.message) for w in record]
    assert res.warnings == messages
    assert any("stayed at chance" in m for m in messages)
    pruned = [m for m in messages if "are pruned (log alpha >= 3)" in m]
    assert pruned and all(
        "lengthen `kl_warmup` (now 0 of 8 epochs" in m and "lower `lr` (now 0.01)" in m for m in pruned
    )
    assert any("layer 'net.0'" in m for m in pruned)


def test_healthy_run_has_no_collapse_warning():
    model, guide, x, y = tiny_classifier("vbd", n=200, hidden=(32,))
    with warnings.catch_warnings():
        warnings.simplefilter("error", bd.CollapseWarning)
        res = bd.fit(model, guide, (x, y), epochs=10, batch_size=50, progress=False)
    assert res.warnings == [] and res.history["train_acc"][-1] > 0.8


def test_collapse_warning_can_be_made_an_error():
    data = bd.data.load("digits")
    model = bd.Classifier(bd.models.mlp(64, [300, 100], 10, method="sparse-vd"), num_data=len(data.train))
    guide = bd.DropoutGuide(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bd.CollapseWarning)
        with pytest.raises(bd.CollapseWarning, match="chance|pruned"):  # forced collapse, as above
            bd.fit(model, guide, data.train, epochs=CHANCE_EPOCHS + 3, kl_warmup=0, lr=1e-2, progress=False)


class _Poison(torch.nn.Module):
    """Identity until armed, then NaN: a divergence at a known step."""

    armed = False

    def forward(self, x):
        return x * float("nan") if self.armed else x


def test_nan_stops_training_naming_the_step():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 6, generator=g), torch.randint(0, 3, (120,), generator=g)
    poison = _Poison()
    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(6, 8, "bernoulli"), poison, bd.nn.Linear(8, 3, "bernoulli"))
    model = bd.Classifier(net, num_data=120)
    guide = bd.DropoutGuide(model)

    def arm(epoch, history):
        poison.armed = True

    saved = {}

    def arm_and_save(epoch, history):
        arm(epoch, history)
        saved.update({n: p.detach().clone() for n, p in [*model.named_parameters(), *guide.named_parameters()]})

    with pytest.raises(FloatingPointError) as info:
        bd.fit(model, guide, (x, y), epochs=3, batch_size=40, progress=False, callback=arm_and_save)
    message = str(info.value)
    assert re.search(r"at step 0 \(batch 0\) of epoch 1 \(step 3 of the run\)", message), message
    assert "not finite: model.net.0.bias" in message and "lower `lr`" in message  # the parameters named
    assert "restored to the start of epoch 1" in message
    for n, p in [*model.named_parameters(), *guide.named_parameters()]:  # rolled back to the end of epoch 0
        assert torch.equal(p.detach(), saved[n]), n


def test_a_first_step_that_diverges_names_the_method_settings_changed_from_their_defaults():
    """sparse-vd with log sigma^2 = 60 at the start: the very first loss is NaN, and the error names that setting
    and the layers that use it (the defaults of the input and hidden layers' methods are not listed)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    net = bd.models.mlp(6, [8], 3, method=bd.methods.get("sparse-vd", log_sigma2_init=60.0, threshold=3))
    model = bd.Classifier(net, num_data=64)
    with warnings.catch_warnings(), pytest.raises(FloatingPointError) as info:
        warnings.simplefilter("ignore")  # Pyro's NaN warnings on the way
        bd.fit(model, bd.DropoutGuide(model), (x, y), epochs=1, progress=False)
    message = str(info.value)
    assert "at step 0 (batch 0) of epoch 0" in message, message
    assert "(net.0, net.2: sparse-vd's log_sigma2_init=60.0 (default -10.0))" in message, message
    assert "threshold" not in message  # 3 == 3.0, its default
    for name in ("sparse-vd", "bernoulli", "vd", "sal"):  # presets and the input rule are defaults too
        for inputs in (6, 64):
            net = bd.models.mlp(inputs, [8], 3, method=name)
            assert bd.infer.train._changed_settings(net) == "", (name, inputs)


def test_fit_result_json_has_the_warnings():
    import json

    res = bd.FitResult(history={"elbo": [1.0]}, warnings=["all 3 weights of layer 'net.0' (vbd) are pruned"])
    assert json.loads(res.to_json())["warnings"] == res.warnings


def test_cli_and_compare_take_fits_defaults(tmp_path):
    """One place for the defaults: ``bayesdrop train`` / ``compare`` and ``bd.compare`` use ``bd.fit``'s."""
    import inspect
    import json

    from bayesdrop import cli
    from bayesdrop.experiments import compare

    fit_defaults = inspect.signature(bd.fit).parameters
    for command in ("train", "compare"):
        args = cli.make_parser().parse_args([command] + (["--out", "x"] if command == "train" else []))
        assert args.lr == fit_defaults["lr"].default and args.kl_warmup == fit_defaults["kl_warmup"].default
        assert args.lr_warmup == fit_defaults["lr_warmup"].default
        assert cli._decay(args) == fit_defaults["lr_decay"].default
    compare_defaults = inspect.signature(compare.compare).parameters
    for name in ("lr", "kl_warmup", "lr_decay", "lr_warmup"):
        assert compare_defaults[name].default == fit_defaults[name].default, name
    assert fit_defaults["batch_size"].default is None  # DEFAULT_BATCH_SIZE on tensors, a DataLoader's own batches
    assert compare_defaults["batch_size"].default == bd.infer.DEFAULT_BATCH_SIZE
    out = tmp_path / "run"
    assert cli.main(["train", "--method", "vbd", "--epochs", "2", "--arch", "mlp:8", "--out", str(out), "--quiet"]) == 0
    config, history = (json.loads((out / f).read_text()) for f in ("config.json", "history.json"))
    assert (config["lr"], config["lr_decay"], config["kl_warmup"]) == (1e-2, "linear", 2)  # vbd: all the epochs
    assert config["lr_warmup"] == 0  # "auto" on the digits' 64 inputs: none
    assert history["beta"] == [0.5, 1.0] and history["lr"] == pytest.approx([1e-2, 5e-3])


def test_without_validation_a_divergence_is_caught_within_the_check_interval():
    """Pyro's validation off (as for speed): the losses and parameters are checked every NAN_CHECK_EVERY steps, so a
    NaN at step 30 of a 120-step epoch stops training at step 49, naming step 30, not at the end of the epoch."""
    from bayesdrop.infer.train import NAN_CHECK_EVERY

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 6, generator=g), torch.randint(0, 3, (120,), generator=g)
    poison = _Poison()
    calls = []

    def count(module, args):
        calls.append(1)
        poison.armed = len(calls) > 30  # the 31st forward pass is step 30

    net = PyroModule[torch.nn.Sequential](bd.nn.Linear(6, 8, "bernoulli"), poison, bd.nn.Linear(8, 3, "bernoulli"))
    model = bd.Classifier(net, num_data=120)
    guide = bd.DropoutGuide(model)
    guide(x[:1])
    poison.register_forward_pre_hook(count)
    with pyro.validation_enabled(False), pytest.raises(FloatingPointError, match=r"at step 30 \(batch 30\) of epoch 0"):
        bd.fit(model, guide, (x, y), epochs=1, batch_size=1, progress=False)
    assert NAN_CHECK_EVERY == 25 and len(calls) == 2 * NAN_CHECK_EVERY  # stopped after step 49, not 119
