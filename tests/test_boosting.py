"""Dropout boosting (Warde-Farley et al. 2014): ``bd.infer.DropoutBoostingELBO`` against hand computations from
traced draws and against ``MeanFieldELBO``, training with it, and the control experiment's table, record and claim
on digits and MNIST-1D (:mod:`bayesdrop.experiments.boosting`)."""

from __future__ import annotations

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch
from helpers import tiny_classifier
from torch.distributions import kl_divergence

import bayesdrop as bd
from bayesdrop.experiments import boosting as exp
from bayesdrop.infer.boosting import log_mean_exp


def _setup(method="bernoulli", **hyper):
    model, guide, x, y = tiny_classifier(method, n=40, d=6, hidden=(16,), **hyper)
    guide(x[:10], y[:10])  # the guide's set-up run of the model, before any seeded draw
    return model, guide, x[:10], y[:10]  # a minibatch of 10 out of 40: the data term is scaled by 4


def _loss(elbo, model, guide, x, y, seed=3):
    pyro.set_rng_seed(seed)
    return elbo.differentiable_loss(model, guide, x, y)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "4", None])
def test_num_masks_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="`num_masks` must be a positive int"):
        bd.infer.DropoutBoostingELBO(num_masks=bad)


def test_one_mask_is_the_mean_field_elbo():
    """K = 1: the loss equals MeanFieldELBO's for the same seed, in value and gradient."""
    model, guide, x, y = _setup(p=0.5)
    params = list(guide.parameters()) + list(model.parameters())
    a = _loss(bd.infer.DropoutBoostingELBO(num_masks=1), model, guide, x, y)
    ga = torch.autograd.grad(a, params)
    b = _loss(bd.infer.MeanFieldELBO(), model, guide, x, y)
    gb = torch.autograd.grad(b, params)
    assert a.item() == pytest.approx(b.item(), abs=1e-6)
    assert all(torch.allclose(u, v, atol=1e-6) for u, v in zip(ga, gb))


def _hand_draws(model, guide, x, y, k, seed=3):
    """``k`` traced draws of the guide, the model replayed on each, with Pyro's trace machinery."""
    pyro.set_rng_seed(seed)
    draws = []
    for _ in range(k):
        gt = poutine.trace(guide).get_trace(x, y)
        mt = poutine.trace(poutine.replay(model, trace=gt)).get_trace(x, y)
        draws.append((mt, gt))
    return draws


def test_three_masks_equal_a_hand_computation():
    """K = 3: per example logsumexp over 3 traced draws of log p(y_n | x_n, m_k), minus log 3, times N / B = 4,
    plus the KL terms of the first draw (its MeanFieldELBO loss without its own data term)."""
    model, guide, x, y = _setup(p=0.5)
    got = _loss(bd.infer.DropoutBoostingELBO(num_masks=3), model, guide, x, y)
    draws = _hand_draws(model, guide, x, y, 3)
    ll = torch.stack([mt.nodes["obs"]["fn"].log_prob(y) for mt, _ in draws])  # (3, 10)
    assert ll.shape == (3, 10) and not torch.equal(ll[0], ll[1])  # different masks
    mt, gt = draws[0]
    latent = [n for n, s in mt.nodes.items() if s["type"] == "sample" and not s["is_observed"] and n != "data"]
    assert {n.rsplit(".", 1)[1] for n in latent} == {"weight", "noise"}
    kl_terms = sum(kl_divergence(gt.nodes[n]["fn"], mt.nodes[n]["fn"]).sum() * gt.nodes[n]["scale"] for n in latent)
    first_loss = _loss(bd.infer.MeanFieldELBO(), model, guide, x, y)  # the same first draw
    assert first_loss.item() == pytest.approx((kl_terms - 4.0 * ll[0].sum()).item(), rel=1e-6)
    expected = kl_terms - 4.0 * (ll.logsumexp(0) - math.log(3)).sum()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() < first_loss.item()  # boosting's bound is above the single draw's here


def test_jensen_per_example_and_for_the_loss():
    """The boosted data term of each example is at least the mean of its K draws' log-likelihoods (strictly above
    where the masks give different likelihoods), so the loss is at most the mean of the K draws' ELBO losses."""
    model, guide, x, y = _setup(p=0.5)
    elbo = bd.infer.DropoutBoostingELBO(num_masks=5)
    pyro.set_rng_seed(7)
    draws = elbo.draws(model, guide, x, y)
    assert len(draws) == 5
    ll, scale, mask = elbo.log_likelihoods([mt for mt, _ in draws])
    assert ll.shape == (5, 10) and scale == 4.0 and mask is None
    boosted, mean = log_mean_exp(ll), ll.mean(0)
    assert (boosted >= mean - 1e-6).all()
    assert (boosted > mean + 1e-4).sum() >= 8  # a test that can fail: the masks do matter
    per_draw = [bd.infer.MeanFieldELBO()._differentiable_loss_particle(*d)[1] for d in draws]
    loss = elbo.loss_from_draws(draws)
    assert loss.item() <= torch.stack(per_draw).mean().item() + 1e-4
    assert loss.item() == pytest.approx((per_draw[0] + scale * (ll[0] - boosted).sum()).item(), rel=1e-6)


@pytest.mark.parametrize(
    ("method", "hyper"), [("bernoulli", {"p": 0.0}), ("sparse-vd", {}), ("dropconnect", {"per_example": False})]
)
def test_a_guide_that_draws_nothing_per_example_is_refused(method, hyper):
    """Every later draw replays the first draw's global sites, so a guide without a site per example (no mask
    noise; Gaussian weights without the local reparameterisation trick; DropConnect's masks once per minibatch)
    would make all K draws the first and the objective standard dropout's: a ValueError, not a silent L_1.  With
    the local reparameterisation trick the layer redraws the pre-activations per example, and it boosts."""
    model, guide, x, y = _setup(method, **hyper)
    elbo = bd.infer.DropoutBoostingELBO(num_masks=3)
    with pytest.raises(ValueError, match="the guide draws no site per example"):
        _loss(elbo, model, guide, x, y)
    if method == "sparse-vd":
        lrt = bd.handlers.LocalReparameterization()(guide)
        boosted = _loss(elbo, model, lrt, x, y)
        single = _loss(bd.infer.MeanFieldELBO(), model, lrt, x, y)
        assert torch.isfinite(boosted) and boosted.item() != pytest.approx(single.item(), rel=1e-6)


def test_global_sites_are_drawn_once():
    """The later draws replay the first draw's global sites: with Gaussian weights (``sparse-vd`` under the local
    reparameterisation trick, whose pre-activations the layer draws per example) every draw uses the same weights;
    per-example masks are drawn anew."""
    model, guide, x, y = _setup("sparse-vd")
    elbo = bd.infer.DropoutBoostingELBO(num_masks=3)
    pyro.set_rng_seed(3)
    draws = elbo.draws(model, bd.handlers.LocalReparameterization()(guide), x, y)
    weights = [n for n in draws[0][1].nodes if n.endswith(".weight")]
    assert weights
    for name in weights:
        assert all(torch.equal(gt.nodes[name]["value"], draws[0][1].nodes[name]["value"]) for _, gt in draws)

    model, guide, x, y = _setup(p=0.5)
    pyro.set_rng_seed(3)
    draws = elbo.draws(model, guide, x, y)
    noise = [n for n in draws[0][1].nodes if n.endswith(".noise")]
    assert noise and not torch.equal(draws[0][1].nodes[noise[-1]]["value"], draws[1][1].nodes[noise[-1]]["value"])


def test_loss_and_loss_and_grads_for_svi():
    """``loss`` is the value of ``differentiable_loss`` for the same seed; ``loss_and_grads`` fills the gradients
    that ``pyro.infer.SVI`` steps on, and SVI lowers the loss."""
    model, guide, x, y = _setup(p=0.5)
    elbo = bd.infer.DropoutBoostingELBO(num_masks=3)
    value = _loss(elbo, model, guide, x, y).item()
    pyro.set_rng_seed(3)
    assert elbo.loss(model, guide, x, y) == pytest.approx(value, rel=1e-6)
    pyro.set_rng_seed(3)
    assert elbo.loss_and_grads(model, guide, x, y) == pytest.approx(value, rel=1e-6)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in guide.parameters())
    svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), elbo)
    losses = [svi.step(x, y) for _ in range(60)]
    assert sum(losses[-10:]) < sum(losses[:10])


def test_fit_trains_with_boosting():
    """``bd.fit(loss=DropoutBoostingELBO(...))``: the loss decreases, and the training accuracy (from the last
    draw's output, which fit captures) is recorded."""
    model, guide, x, y = tiny_classifier("bernoulli", n=40, d=6, hidden=(16,), p=0.5)
    loss = bd.infer.DropoutBoostingELBO(num_masks=3)
    h = bd.fit(model, guide, (x, y), epochs=12, batch_size=10, loss=loss, progress=False).history
    assert len(h["elbo"]) == 12 and h["elbo"][-1] < h["elbo"][0] - 0.1
    assert 0.0 <= h["train_acc"][-1] <= 1.0 and h["train_acc"][-1] > h["train_acc"][0]


def test_vectorized_particles_are_refused():
    with pytest.raises(NotImplementedError, match="vectorize"):
        bd.infer.DropoutBoostingELBO(num_masks=2, vectorize_particles=True, num_particles=2)


# -- the control experiment -----------------------------------------------------------------------------------


def _rows():
    rows = [
        ("dropout", 0, 0.000, 0.020),
        ("dropout", 1, 0.002, 0.024),
        ("boosting", 0, 0.000, 0.050),
        ("boosting", 1, 0.000, 0.040),
        ("none", 0, 0.000, 0.045),
    ]
    nll = {"train_nll": 0.01, "test_nll": 0.1, "nll_gap": 0.09}
    data = {"dataset": "digits", "arch": "64-300-100-10", "n_train": 1437, "n_test": 360}
    return [
        {"objective": o, "seed": s, "train": a, "test": b, "gap": b - a, **nll, **data, "s": 1.0} for o, s, a, b in rows
    ]


def test_summary_claim_and_written_table():
    """Means per objective; the claim needs boosting's mean gap >= 2 x dropout's and its test error not lower; the
    table has a row per objective and per run, the ratio to dropout's gap and the verdict."""
    rows = _rows()
    summ = exp.summary(rows)
    assert summ["dropout"]["gap"] == pytest.approx(0.021) and summ["boosting"]["gap"] == pytest.approx(0.045)
    assert summ["boosting"]["runs"] == 2 and summ["none"]["test"] == pytest.approx(0.045)
    assert exp.claim(summ)
    text = exp.markdown(rows, "python benchmarks/boosting.py --seeds 2", "CPU (1 threads, x86_64)", masks=4, epochs=9)
    assert text.startswith("## digits: 64-300-100-10 MLP, 9 epochs\n")
    assert "Command: `python benchmarks/boosting.py --seeds 2`; CPU (1 threads, x86_64)." in text
    assert "Digits 64-300-100-10 MLP, `bernoulli` p = 0.5" in text and "default split (1437 / 360)." in text
    assert "| boosting | 2 | 0.00 | 4.50 | 4.50 | 2.14 | 0.0100 | 0.1000 | 0.0900 |" in text
    assert "| dropout | 1 | 0.20 | 2.40 | 2.20 | 0.0100 | 0.1000 | 0.0900 | 1 |" in text and "The claim held" in text
    assert "Without dropout the test error is 4.50 %: dropout's own effect here is -2.30 points." in text
    assert "fits its training set" not in text  # one dropout run has a training error
    rows[2]["test"] = rows[2]["gap"] = 0.030  # boosting's gap now 1.75 x dropout's
    assert not exp.claim(exp.summary(rows))
    assert "The claim did not hold" in exp.markdown(rows, "c", "d", masks=4, epochs=9)


def test_merge_replaces_the_section_of_its_data_set_and_keeps_the_others():
    """The record: the title, then one section per data set in the order of DATASETS, whatever order they were
    written in; a new section of a data set replaces its old one and leaves the other untouched."""
    digits = exp.markdown(_rows(), "c1", "d", masks=4, epochs=9)
    mnist1d_rows = [
        {**r, "dataset": "mnist1d", "arch": "40-100-100-10", "n_train": 4000, "n_test": 1000} for r in _rows()
    ]
    mnist1d = exp.markdown(mnist1d_rows, "c2", "d", masks=4, epochs=7)
    assert mnist1d.startswith("## mnist1d: 40-100-100-10 MLP, 7 epochs\n")
    assert "MNIST-1D (Greydanus 2020) 40-100-100-10 MLP" in mnist1d and "(4000 / 1000)" in mnist1d
    assert "One test example is 0.10 points." in mnist1d
    record = exp.merge(exp.merge(None, mnist1d), digits)
    assert record.startswith(exp.TITLE + "\n") and record.endswith("\n") and not record.endswith("\n\n")
    assert record.index("## digits:") < record.index("## mnist1d:") and record.count("\n## ") == 2
    assert digits in record and mnist1d in record
    again = exp.markdown(_rows(), "c3", "d", masks=4, epochs=9)
    updated = exp.merge(record, again)
    assert "`c3`" in updated and "`c1`" not in updated and mnist1d in updated and updated.count("\n## ") == 2
    assert exp.merge(updated, again) == updated


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="`dataset` must be one of"):
        exp.one_run("dropout", 0, epochs=1, masks=2, lr=1e-2, dataset="cifar10")
    with pytest.raises(ValueError, match="needs `--mnist-dir`"):
        exp.one_run("dropout", 0, epochs=1, masks=2, lr=1e-2, dataset="mnist")
    with pytest.raises(SystemExit):
        exp.main(["--dataset", "mnist"])


def test_mnist_from_idx_files_runs_the_wide_network(tmp_path):
    """MNIST from a user's IDX files (here tiny ones, 4 x 3 pixels): the 1024-1024 network of Srivastava et al."""
    from test_data import write_mnist

    write_mnist(tmp_path, n_train=6, n_test=4)
    row = exp.one_run("boosting", 0, epochs=1, masks=2, lr=1e-2, eval_samples=2, dataset="mnist", mnist_dir=tmp_path)
    assert row["arch"] == "12-1024-1024-10" and (row["n_train"], row["n_test"]) == (6, 4)


def test_main_runs_the_protocol_and_writes_the_record(tmp_path):
    """One run per data set into the same record: each writes its own section and keeps the other's; the quoted
    command leaves out ``--out``."""
    out = tmp_path / "boosting.md"
    argv = ["--objectives", "dropout", "boosting", "--seeds", "1", "--epochs", "1", "--masks", "2"]
    argv += ["--eval-samples", "3", "--out", str(out)]
    assert exp.main(argv) == 0
    text = out.read_text()
    assert text.startswith(exp.TITLE) and "## digits: 64-300-100-10 MLP, 1 epochs" in text
    assert "--epochs 1" in text and "DropoutBoostingELBO(num_masks=2)" in text and str(out) not in text
    assert text.count("| boosting |") == 2 and text.count("| dropout |") == 2  # summary row and run row
    assert "torch " in text  # the machine
    assert "One test example is 0.28 points." in text  # 360 test digits
    assert exp.main(["--dataset", "mnist1d", *argv]) == 0
    both = out.read_text()
    assert text.split("\n## ", 1)[1] in both  # the digits section, unchanged
    assert "## mnist1d: 40-100-100-10 MLP, 1 epochs" in both and "--dataset mnist1d" in both
    assert both.count("| boosting |") == 4 and "One test example is 0.10 points." in both  # 1000 test signals


_NOT_REPRODUCED = {
    "digits": "boosting's gap equals dropout's (every run fits its training set); at this size dropout 1.94 / "
    "boosting 2.22 points, ratio 1.14",
    "mnist1d": "boosting's gap is 1.64x dropout's and its test error 1.74 points lower; at this size gaps 10.84 / "
    "20.27 points (ratio 1.87), test errors 33.80 / 33.10 %",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "dataset",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=f"not reproduced on {name}: {why}"))
        for name, why in _NOT_REPRODUCED.items()
    ],
)
def test_boosting_keeps_almost_none_of_dropouts_regularisation(dataset):
    """Goodfellow et al. (2016, sec. 7.12), after Warde-Farley et al. (2014): with the same masks, boosting's gap
    between test and training error is at least twice standard dropout's and its test error is not lower; at a
    reduced size (2 seeds, 100 epochs; the full runs are in benchmarks/results/boosting.md).

    The claim did not hold in the full runs nor here, on either data set: on digits both fit their training sets
    and their test errors are within one or two digits of each other; on MNIST-1D boosting's gap is larger, but
    less than twice dropout's, and its test error is lower.  So the test is an expected failure, strict: should
    the claim come to hold, it reports that."""
    rows = exp.run(["dropout", "boosting"], seeds=2, epochs=100, masks=4, lr=1e-2, dataset=dataset)
    summ = exp.summary(rows)
    print("\n" + exp.markdown(rows, "slow test", "CPU", masks=4, epochs=100))
    assert exp.claim(summ), summ
