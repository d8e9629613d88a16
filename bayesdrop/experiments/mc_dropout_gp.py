r"""MC dropout as a Bayesian approximation (Gal & Ghahramani 2016): the extrapolation of the Mauna Loa CO2 series
by ReLU and TanH networks, and the uncertainty of a LeNet on a rotated digit, as in Gal's MC dropout slides.

For users who want to see what the predictive uncertainty of MC dropout (``bernoulli`` with ``bd.predict``) does
away from the data, and for maintainers checking it end to end: ``benchmarks/mc_dropout_gp.py`` is the command line that
writes the record ``benchmarks/results/mc_dropout_gp.md``, the numbers in ``mc_dropout_gp.json`` next to it and the two figures
``mc_dropout_gp_regression.png`` and ``mc_dropout_gp_rotation.png``; ``tests/test_mc_dropout_gp_benchmark.py`` runs the protocol at
tiny sizes and checks the recorded numbers.

Dropout training maximises an ELBO of a deep Gaussian process approximated with the variational family
:math:`W_i = M_i\,\mathrm{diag}(z_i)`, :math:`z_{ij} \sim \mathrm{Bernoulli}(1 - p)` (Gal & Ghahramani 2016), and
:math:`T` stochastic forward passes give the predictive moments

.. math:: \mathbb E[y^*] \approx \frac1T \sum_{t=1}^T \hat y_t(x^*), \qquad
    \mathrm{Var}[y^*] \approx \tau^{-1} + \frac1T \sum_{t=1}^T \hat y_t(x^*)^2 - \mathbb E[y^*]^2,

which ``bd.Regressor.predictive`` returns (the noise :math:`\sigma = \tau^{-1/2}` learned, or fixed).

Protocol, regression (:func:`regression`): the monthly CO2 series of ``bd.data.load("co2").series`` (March 1958 -
December 2001) as a function of time, :math:`x` = the decimal year, :math:`y` = the concentration (ppm), both
standardised with the statistics of the training months, the months before ``cutoff`` (:data:`CUTOFF`, 1990).  An
MLP of :data:`DEPTH` hidden layers of :data:`WIDTH` units (``bd.models.mlp(1, [1024] * 4, 1, "bernoulli", p=0.2,
activation=...)``: every hidden unit dropped with p = 0.2, the single input not) per activation, ReLU and TanH,
with ``bd.Regressor`` (the noise learned) and ``bd.fit``'s defaults but the epochs (:data:`REGRESSION_EPOCHS`) and
Pyro's validation (off); a third network, ReLU with the model precision fixed at Gal & Ghahramani's
:math:`\tau = (1 - p) l^2 / (2 N \lambda)` (:func:`bayesdrop.likelihoods.model_precision`, :func:`fixed_tau`).
``bd.predict`` with :data:`SAMPLES` draws on a monthly grid from the first month to ``until`` (:data:`UNTIL`,
2010).  Reported: the mean predictive standard deviation inside the training range and over the last quarter of
the extrapolation horizon (the cut-off to ``until``), their ratio, the noise, and the RMSE and interval coverage on
the months after the cut-off.

Protocol, classification (:func:`rotation`): a LeNet-5 analog (``bd.models.lenet5`` with widths 20-50-500 and no
noise, its last layer replaced by a ``bd.nn.Linear`` with ``bernoulli`` dropout p = 0.5 on its inputs: dropout only
before the last fully connected layer, as Gal & Ghahramani's LeNet) on the 8 x 8 digits (1437 training images),
``bd.fit``'s defaults but the epochs (:data:`ROTATION_EPOCHS`).  The first test image of a ``1`` that the MC
predictive classifies correctly is rotated through :data:`ANGLES` (0 to 165 degrees, bilinear,
``scipy.ndimage.rotate``); for each rotation :data:`SAMPLES` draws of the network's outputs (the softmax inputs) and
their softmax, the predictive entropy :math:`H[\bar p]` and the mutual information :math:`H[\bar p] - \frac1T
\sum_t H[p_t]` (:func:`entropy_terms`).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/mc_dropout_gp.py [--regression-epochs 400] [--rotation-epochs 100]
        [--width 1024] [--depth 4] [--channels 20 50] [--hidden 500] [--samples 100] [--cutoff 1990]
        [--until 2010] [--weight-decay 1e-5] [--seed 0] [--out FILE]

Example
-------
>>> from bayesdrop.experiments import mc_dropout_gp
>>> reg = mc_dropout_gp.regression(width=32, depth=2, epochs=20)  # doctest: +SKIP
>>> rot = mc_dropout_gp.rotation(channels=(4, 8), hidden=16, epochs=5)  # doctest: +SKIP
>>> print(mc_dropout_gp.markdown(reg, rot, "my run"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch
from pyro.nn import PyroModule

import bayesdrop as bd

from .report_io import device_name, quoted_command, script_parser, write_results

__all__ = [
    "ACTIVATIONS",
    "ANGLES",
    "CHANNELS",
    "CUTOFF",
    "DEPTH",
    "DIGIT",
    "FIXED_TAU",
    "HIDDEN",
    "P_REGRESSION",
    "P_ROTATION",
    "REGRESSION_EPOCHS",
    "ROTATION_EPOCHS",
    "SAMPLES",
    "UNTIL",
    "WEIGHT_DECAY",
    "WIDTH",
    "co2_data",
    "entropy_terms",
    "fixed_tau",
    "json_ready",
    "lenet",
    "main",
    "markdown",
    "plot_regression",
    "plot_rotation",
    "regression",
    "regression_network",
    "rotate",
    "rotation",
]

WIDTH, DEPTH, P_REGRESSION = 1024, 4, 0.2  # the slides' MLP: 4 hidden layers of 1024 units, dropout 0.2
ACTIVATIONS = ("relu", "tanh")
FIXED_TAU = "relu, fixed tau"  # the name of the third regression network
CUTOFF, UNTIL = 1990.0, 2010.0  # train on the months before CUTOFF, predict up to UNTIL
WEIGHT_DECAY = 1e-5  # Gal & Ghahramani's lambda of the fixed-tau network (see fixed_tau)
REGRESSION_EPOCHS = 400  # about 2 min per network of 4 x 1024 units on one (shared) CPU thread
CHANNELS, HIDDEN, P_ROTATION = (20, 50), 500, 0.5  # LeNet-5's widths; dropout before the last layer
ROTATION_EPOCHS = 100
ANGLES = tuple(15.0 * k for k in range(12))  # 0, 15, ..., 165 degrees
DIGIT = 1
SAMPLES = 100  # T, the MC draws of every prediction
TOP_CLASSES = 3  # classes shown in the rotation figure
TITLE = "# MC dropout as a Bayesian approximation (Gal & Ghahramani 2016)"


# --------------------------------------------------------------------------------------------- regression


def co2_data(cutoff: float = CUTOFF, *, heldout: float = 0.0, seed: int = 0) -> dict[str, Any]:
    r"""The Mauna Loa CO2 series as a regression on time, standardised with the training months' statistics.

    .. math:: x = \frac{t - \bar t}{s_t}, \qquad y = \frac{c - \bar c}{s_c},

    with :math:`\bar t, s_t, \bar c, s_c` the mean and standard deviation (``ddof=0``) of the times and values of
    the training months.

    Parameters
    ----------
    cutoff
        The first year not trained on: the training months are those before it.
    heldout
        Fraction in [0, 1) of the months before ``cutoff`` kept out of training (drawn with ``seed``), for the
        calibration of the predictive inside the training range.
    seed
        Seeds the choice of the held-out months.

    Returns
    -------
    dict
        ``times``, ``values`` (the whole series, numpy), ``x_train``, ``y_train``, ``x_heldout``, ``y_heldout``,
        ``x_after``, ``y_after`` (the months from ``cutoff`` on; tensors ``(N, 1)`` and ``(N,)``), ``train``,
        ``heldout`` (boolean masks of the series' months), ``x_mean``, ``x_std``, ``y_mean``, ``y_std``, ``cutoff``.
    """
    if not 0 <= heldout < 1:
        raise ValueError(f"`heldout` must be a fraction in [0, 1), got {heldout!r}")
    series = bd.data.load("co2").series
    if series is None:  # pragma: no cover - co2 is a forecasting data set
        raise ValueError("the co2 data set has no series")
    times, values = np.asarray(series.times, np.float64), np.asarray(series.values, np.float64)
    before = times < cutoff
    if before.sum() < 2 or before.all():
        raise ValueError(f"`cutoff` {cutoff} must leave months on both sides ({times[0]:.1f}-{times[-1]:.1f})")
    held = np.zeros_like(before)
    if heldout > 0:
        idx = np.flatnonzero(before)
        rng = np.random.default_rng(seed)
        held[rng.choice(idx, size=int(round(heldout * len(idx))), replace=False)] = True
    train = before & ~held
    x_mean, x_std = float(times[train].mean()), float(times[train].std())
    y_mean, y_std = float(values[train].mean()), float(values[train].std())

    def xs(mask: np.ndarray) -> torch.Tensor:
        return torch.tensor((times[mask] - x_mean) / x_std, dtype=torch.float32)[:, None]

    def ys(mask: np.ndarray) -> torch.Tensor:
        return torch.tensor((values[mask] - y_mean) / y_std, dtype=torch.float32)

    return {
        "times": times, "values": values, "train": train, "heldout": held, "cutoff": float(cutoff),
        "x_train": xs(train), "y_train": ys(train), "x_heldout": xs(held), "y_heldout": ys(held),
        "x_after": xs(~before), "y_after": ys(~before),
        "x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_std": y_std,
    }  # fmt: skip


def regression_network(
    activation: str, *, width: int = WIDTH, depth: int = DEPTH, p: float = P_REGRESSION, prior_scale: float = 1.0
) -> PyroModule:
    """The slides' MLP: ``depth`` hidden layers of ``width`` units with ``activation``, one input, one output.

    ``bd.models.mlp(1, [width] * depth, 1, "bernoulli", p=p, activation=activation)``: each layer after the first
    drops its inputs (the hidden units) with probability ``p``; the first layer's single input is not dropped
    (``mlp``'s rule for fewer than 64 inputs).  Every weight has the prior :math:`\\mathcal N(0, s^2)`,
    ``s = prior_scale``.
    """
    return bd.models.mlp(1, [width] * depth, 1, "bernoulli", p=p, prior_scale=prior_scale, activation=activation)


def fixed_tau(
    p: float, num_data: int, weight_decay: float = WEIGHT_DECAY, prior_scale: float = 1.0
) -> dict[str, float]:
    r"""Gal & Ghahramani's (2016) model precision for the networks of :func:`regression_network`.

    Their dropout objective per example is :math:`\frac12 \lVert y - \hat y \rVert^2 + \lambda \sum_i \lVert M_i
    \rVert^2`, with masks :math:`z \in \{0, 1\}` and weights :math:`M` not rescaled.  bayesdrop's layers rescale
    the kept units by :math:`1 / (1 - p)`, so their weights are :math:`\hat M = (1 - p) M`, and its negative ELBO
    per example with a fixed precision :math:`\tau` and the prior :math:`\hat M \sim \mathcal N(0, s^2)` is, over
    :math:`\tau`,

    .. math:: \frac12 (y - \hat y)^2 + \frac{\lVert \hat M \rVert^2}{2 N \tau s^2}
        = \frac12 (y - \hat y)^2 + \frac{(1 - p)^2}{2 N \tau s^2} \lVert M \rVert^2 + \text{const}:

    their objective with :math:`\lambda = (1 - p)^2 / (2 N \tau s^2)`.  Their
    :math:`\tau = (1 - p)\, l^2 / (2 N \lambda)` (:func:`~bayesdrop.likelihoods.model_precision`) then holds with
    the prior length-scale :math:`l = \sqrt{1 - p} / s`, for any :math:`\lambda`: choosing the weight decay
    :math:`\lambda` chooses :math:`\tau`.  (The first layer, whose input is not dropped, and the biases, point
    estimates without a prior, fall outside the identity.)

    Parameters
    ----------
    p
        The dropout rate of the hidden units.
    num_data
        N, the training months.
    weight_decay
        :math:`\lambda`.
    prior_scale
        s, the prior standard deviation of the network's weights.

    Returns
    -------
    dict
        ``tau``, ``noise_scale`` (:math:`\tau^{-1/2}`), ``length_scale`` (l), ``weight_decay`` and ``prior_scale``.
    """
    length_scale = math.sqrt(1 - p) / prior_scale
    tau = bd.likelihoods.model_precision(p, length_scale, weight_decay, num_data)
    return {
        "tau": tau, "noise_scale": tau**-0.5, "length_scale": length_scale, "weight_decay": weight_decay,
        "prior_scale": prior_scale,
    }  # fmt: skip


def _mean(a: np.ndarray, mask: np.ndarray) -> float:
    return float(a[mask].mean())


def regression(
    variants: Sequence[str] = (*ACTIVATIONS, FIXED_TAU),
    *,
    width: int = WIDTH,
    depth: int = DEPTH,
    p: float = P_REGRESSION,
    epochs: int = REGRESSION_EPOCHS,
    cutoff: float = CUTOFF,
    until: float = UNTIL,
    num_samples: int = SAMPLES,
    weight_decay: float = WEIGHT_DECAY,
    heldout: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    r"""Train one network per variant on the CO2 months before ``cutoff`` and predict up to ``until``.

    Parameters
    ----------
    variants
        ``"relu"``, ``"tanh"`` (the noise :math:`\sigma = \tau^{-1/2}` learned, from 0.1) and :data:`FIXED_TAU`
        (ReLU with :math:`\tau` fixed by :func:`fixed_tau` at ``weight_decay``).
    width, depth, p
        The networks (:func:`regression_network`).
    epochs
        Training epochs; ``bd.fit``'s other arguments keep their defaults (seed ``seed``, Pyro's validation off).
    cutoff, until
        The first year not trained on, and the end of the prediction grid (monthly, from the first month).
    num_samples
        T, the MC draws of every prediction.
    weight_decay
        :math:`\lambda` of the fixed-precision network.
    heldout
        Fraction of the months before ``cutoff`` held out (:func:`co2_data`); their interval coverage is
        reported when > 0.
    seed
        Seeds the initial weights, training and the draws.
    progress
        Print a line per network.

    Returns
    -------
    dict
        ``settings`` (the arguments, the standardisation, the training months, the device
        (:func:`~bayesdrop.experiments.report_io.device_name`)); ``variants``: per variant ``activation``,
        ``learn_noise``, ``noise_ppm`` (:math:`\sigma`), ``tau`` (standardised units), ``std_inside`` and
        ``std_last_quarter`` (the mean predictive standard deviation, ppm, on the grid months inside the training
        range and in the last quarter of the horizon from ``cutoff`` to ``until``), ``ratio`` (their quotient),
        ``epistemic_inside`` and ``epistemic_last_quarter`` (the standard deviation of the draws alone),
        ``identity_max_error`` (the largest :math:`|\mathrm{std}^2 - \tau^{-1} - \widehat{\mathrm{Var}}_t[\hat y_t]|`
        on the grid, standardised units), ``rmse_after`` (ppm) and ``coverage_after`` (of the central 50 and 90 %
        intervals, ``bd.diagnostics.calibration``) on the months from ``cutoff`` on, ``coverage_heldout`` and
        ``rmse_heldout`` (ppm) with ``heldout`` > 0, ``seconds``, ``s_per_epoch`` and ``warnings``; ``fixed_tau``
        (:func:`fixed_tau`); ``data`` and ``curves`` (numpy arrays for :func:`plot_regression`: the grid's years,
        and per variant the predictive ``mean`` and ``std`` in ppm).
    """
    unknown = [v for v in variants if v not in (*ACTIVATIONS, FIXED_TAU)]
    if isinstance(variants, str) or unknown or not variants:
        raise ValueError(f"`variants` must be a non-empty list of {[*ACTIVATIONS, FIXED_TAU]}, got {variants!r}")
    if not until > cutoff:
        raise ValueError(f"`until` ({until}) must be after `cutoff` ({cutoff})")
    d = co2_data(cutoff, heldout=heldout, seed=seed)
    n = len(d["x_train"])
    grid_t = np.arange(d["times"][0], until + 1e-9, 1 / 12)
    grid = torch.tensor((grid_t - d["x_mean"]) / d["x_std"], dtype=torch.float32)[:, None]
    inside = (grid_t >= d["times"][d["train"]].min()) & (grid_t < cutoff)
    last = grid_t >= cutoff + 0.75 * (until - cutoff)
    tau_fixed = fixed_tau(p, n, weight_decay)
    ys = d["y_std"]
    out: dict[str, Any] = {"variants": {}, "curves": {"years": grid_t}, "fixed_tau": tau_fixed}
    device = ""
    for variant in variants:
        t0 = time.perf_counter()
        activation = "relu" if variant == FIXED_TAU else variant
        pyro.set_rng_seed(seed)
        net = regression_network(activation, width=width, depth=depth, p=p)
        if variant == FIXED_TAU:
            model = bd.Regressor(net, num_data=n, precision=tau_fixed["tau"])
        else:
            model = bd.Regressor(net, num_data=n)
        guide = bd.DropoutGuide(model)
        with pyro.validation_enabled(False):
            fit = bd.fit(model, guide, (d["x_train"], d["y_train"]), epochs=epochs, seed=seed, progress=False)
        device = device_name(fit.device)
        pyro.set_rng_seed(seed)
        (mean, std), draws = bd.predict(model, guide, grid, num_samples=num_samples, return_samples=True)
        mu = draws.squeeze(-1).double()
        noise = float(model.noise_scale.item())
        identity = (std.double() ** 2 - noise**2 - mu.var(0, unbiased=False)).abs().max().item()
        std_ppm, epi_ppm = std.numpy() * ys, mu.std(0, unbiased=False).numpy() * ys
        idata = bd.to_inference_data(model, guide, (d["x_after"], d["y_after"]), num_samples, seed=seed)
        after = bd.diagnostics.calibration(idata, levels=(0.5, 0.9))
        row: dict[str, Any] = {
            "activation": activation, "learn_noise": variant != FIXED_TAU, "noise_ppm": noise * ys,
            "tau": noise**-2, "std_inside": _mean(std_ppm, inside), "std_last_quarter": _mean(std_ppm, last),
            "epistemic_inside": _mean(epi_ppm, inside), "epistemic_last_quarter": _mean(epi_ppm, last),
            "identity_max_error": identity, "rmse_after": after["rmse"] * ys,
            "coverage_after": {"50": after["coverage_50"], "90": after["coverage_90"]},
        }  # fmt: skip
        row["ratio"] = row["std_last_quarter"] / row["std_inside"]
        if heldout > 0:
            idata = bd.to_inference_data(model, guide, (d["x_heldout"], d["y_heldout"]), num_samples, seed=seed)
            cal = bd.diagnostics.calibration(idata, levels=(0.5, 0.9))
            row["coverage_heldout"] = {"50": cal["coverage_50"], "90": cal["coverage_90"]}
            row["rmse_heldout"] = cal["rmse"] * ys
        row.update(seconds=time.perf_counter() - t0, s_per_epoch=fit.seconds_per_epoch, warnings=list(fit.warnings))
        out["variants"][variant] = row
        out["curves"][variant] = {"mean": mean.numpy() * ys + d["y_mean"], "std": std_ppm}
        if progress:
            print(
                f"{variant}: std {row['std_inside']:.2f} ppm inside, {row['std_last_quarter']:.2f} ppm in the last "
                f"quarter (x {row['ratio']:.2f}); noise {row['noise_ppm']:.2f} ppm; {row['seconds']:.0f} s",
                flush=True,
            )
    out["data"] = {k: d[k] for k in ("times", "values", "train", "heldout")}
    out["settings"] = {
        "width": width, "depth": depth, "p": p, "epochs": epochs, "cutoff": cutoff, "until": until,
        "num_samples": num_samples, "weight_decay": weight_decay, "heldout": heldout, "seed": seed, "n_train": n,
        "n_heldout": int(d["heldout"].sum()), "n_after": len(d["x_after"]), "x_mean": d["x_mean"],
        "x_std": d["x_std"], "y_mean": d["y_mean"], "y_std": ys, "last_quarter_from": float(grid_t[last][0]),
        "grid_months": len(grid_t), "device": device,
    }  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------- classification


def lenet(
    image_shape: Sequence[int] = (1, 8, 8),
    num_classes: int = 10,
    *,
    channels: tuple[int, int] = CHANNELS,
    hidden: int = HIDDEN,
    p: float = P_ROTATION,
) -> PyroModule:
    """Gal & Ghahramani's LeNet: ``bd.models.lenet5`` without noise, its last layer a ``bd.nn.Linear`` that drops
    its inputs (the hidden dense layer's units) with probability ``p``: dropout only before the last fully connected
    layer.  ``bd.models.lenet5`` puts one method on every weight layer, hence the replacement."""
    net = bd.models.lenet5(image_shape, num_classes, None, channels=channels, hidden=hidden)
    net[-1] = bd.nn.Linear(hidden, num_classes, "bernoulli", p=p)
    return net


def rotate(image: torch.Tensor, angles: Sequence[float]) -> torch.Tensor:
    """``image`` ``(H, W)`` rotated counter-clockwise by each angle (degrees) about its centre, bilinear, zeros
    outside (``scipy.ndimage.rotate`` with ``reshape=False, order=1``); returns ``(len(angles), 1, H, W)``."""
    from scipy import ndimage

    a = image.detach().cpu().numpy()
    rotated = [ndimage.rotate(a, float(angle), reshape=False, order=1, mode="constant", cval=0.0) for angle in angles]
    return torch.tensor(np.stack(rotated), dtype=torch.float32)[:, None]


def entropy_terms(probs: torch.Tensor) -> dict[str, torch.Tensor]:
    r"""The decomposition of the predictive entropy from class-probability draws ``probs`` ``(T, N, C)`` (nats):

    .. math:: H[\bar p_n] = -\sum_c \bar p_{nc} \log \bar p_{nc}, \qquad
        I_n = H[\bar p_n] - \frac1T \sum_t H[p_{tn}],

    with :math:`\bar p_n = \frac1T \sum_t p_{tn}`: the mutual information :math:`I_n` between the prediction and
    the network's weights (Gal & Ghahramani 2016; the epistemic part), as ``bd.diagnostics.uncertainty``.

    Returns
    -------
    dict
        ``predictive_entropy``, ``expected_entropy`` and ``mutual_information``, each ``(N,)``.
    """

    def h(q: torch.Tensor) -> torch.Tensor:
        return -torch.special.xlogy(q, q).sum(-1)

    pe, ee = h(probs.mean(0)), h(probs).mean(0)
    return {"predictive_entropy": pe, "expected_entropy": ee, "mutual_information": pe - ee}


def _middle(n: int) -> list[int]:
    """The middle half of ``n`` rotations (12: the 4th to the 9th, 45-120 degrees)."""
    return list(range(n // 4, n - n // 4))


def rotation(
    *,
    channels: tuple[int, int] = CHANNELS,
    hidden: int = HIDDEN,
    p: float = P_ROTATION,
    epochs: int = ROTATION_EPOCHS,
    angles: Sequence[float] = ANGLES,
    num_samples: int = SAMPLES,
    digit: int = DIGIT,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    r"""Train :func:`lenet` on the digits and measure its predictive uncertainty on one test digit rotated.

    Parameters
    ----------
    channels, hidden, p
        The network (:func:`lenet`).
    epochs
        Training epochs; ``bd.fit``'s other arguments keep their defaults (seed ``seed``, Pyro's validation off).
    angles
        Rotations in degrees (:func:`rotate`).
    num_samples
        T, the MC draws.
    digit
        The class of the rotated test image: the first test image of it that the MC predictive classifies
        correctly (the first test image of it if there is none, e.g. after too short a training).
    seed
        Seeds the initial weights, training and the draws.
    progress
        Print a line when done.

    Returns
    -------
    dict
        ``settings``; ``test_accuracy`` (MC predictive); ``test_index`` (of the rotated image) and
        ``classified_correctly`` (by the MC predictive); ``classes`` (the :data:`TOP_CLASSES` classes with the
        largest mean probability over the rotations); ``table``: per angle ``angle``, ``prediction``,
        ``probability`` (of the prediction), ``predictive_entropy`` and ``mutual_information``
        (:func:`entropy_terms`); ``mi_0`` (at the first angle), ``middle`` (the middle half of the angles),
        ``mi_middle_mean``, ``mi_middle_min`` and ``mi_outer_mean`` (over the angles neither the first nor in the
        middle); ``seconds``, ``s_per_epoch``, ``warnings``; ``images`` ``(A, H, W)`` and ``draws`` (``logits``
        and ``probs`` ``(T, A, 3)`` of ``classes``) as numpy arrays for :func:`plot_rotation`; the trained
        ``model`` and ``guide``.
    """
    if len(angles) < 4:
        raise ValueError(f"`angles` must hold at least 4 rotations, got {list(angles)!r}")
    t0 = time.perf_counter()
    ds = bd.data.load("digits")
    if ds.image_shape is None or ds.num_classes is None:  # pragma: no cover - digits has both
        raise ValueError("the digits data set has no images")
    x_train, x_test = ds.images(ds.train), ds.images(ds.test)
    pyro.set_rng_seed(seed)
    net = lenet(ds.image_shape, ds.num_classes, channels=channels, hidden=hidden, p=p)
    model = bd.Classifier(net, num_data=len(x_train))
    guide = bd.DropoutGuide(model)
    with pyro.validation_enabled(False):
        fit = bd.fit(model, guide, (x_train, ds.train.y), epochs=epochs, seed=seed, progress=False)
    pyro.set_rng_seed(seed)
    probs = bd.predict(model, guide, x_test, num_samples=num_samples)
    of_digit = ds.test.y == digit
    correct = of_digit & (probs.argmax(-1) == ds.test.y)
    index = int((correct if correct.any() else of_digit).nonzero()[0, 0])  # an untrained network: the first
    images = rotate(x_test[index, 0], angles)
    pyro.set_rng_seed(seed)
    mean, logits = bd.predict(model, guide, images, num_samples=num_samples, return_samples=True)
    draws = logits.softmax(-1)
    terms = entropy_terms(draws)
    classes = mean.sum(0).argsort(descending=True)[:TOP_CLASSES].tolist()
    table = [
        {
            "angle": float(a),
            "prediction": int(mean[i].argmax()),
            "probability": float(mean[i].max()),
            "predictive_entropy": float(terms["predictive_entropy"][i]),
            "mutual_information": float(terms["mutual_information"][i]),
        }  # fmt: skip
        for i, a in enumerate(angles)
    ]
    middle = _middle(len(angles))
    mi = [row["mutual_information"] for row in table]
    out = {
        "settings": {
            "channels": list(channels), "hidden": hidden, "p": p, "epochs": epochs,
            "angles": [float(a) for a in angles], "num_samples": num_samples, "digit": digit, "seed": seed,
            "n_train": len(x_train), "n_test": len(x_test), "device": device_name(fit.device),
        },
        "test_accuracy": float((probs.argmax(-1) == ds.test.y).double().mean()), "test_index": index,
        "classified_correctly": bool(correct[index]),
        "classes": classes, "table": table, "mi_0": mi[0], "middle": [float(angles[i]) for i in middle],
        "mi_middle_mean": float(np.mean([mi[i] for i in middle])), "mi_middle_min": min(mi[i] for i in middle),
        "mi_outer_mean": float(np.mean([mi[i] for i in range(1, len(mi)) if i not in middle])),
        "seconds": time.perf_counter() - t0, "s_per_epoch": fit.seconds_per_epoch, "warnings": list(fit.warnings),
        "images": images[:, 0].numpy(), "model": model, "guide": guide,
        "draws": {"logits": logits[..., classes].numpy(), "probs": draws[..., classes].numpy()},
    }  # fmt: skip
    if progress:
        print(
            f"rotation: test accuracy {out['test_accuracy']:.4f}; MI at 0 degrees {out['mi_0']:.4f}, over the "
            f"middle angles {out['mi_middle_mean']:.4f} (min {out['mi_middle_min']:.4f}); {out['seconds']:.0f} s",
            flush=True,
        )
    return out


# ------------------------------------------------------------------------------------------------- figures


def plot_regression(reg: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """One panel per activation (ReLU, TanH) of :func:`regression`'s results: the data (grey after the cut-off),
    the predictive mean and mean ± 2 std, the cut-off and the last quarter of the horizon; the fixed-precision
    network's ± 2 std as dashed lines on the ReLU panel.  Written to ``path`` (PNG)."""
    from matplotlib.figure import Figure

    s, data, curves = reg["settings"], reg["data"], reg["curves"]
    panels = [v for v in ACTIVATIONS if v in reg["variants"]] or list(reg["variants"])
    fig = Figure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    years, times, values = curves["years"], data["times"], data["values"]
    before = times < s["cutoff"]
    for ax, variant in zip(axes, panels):
        row, c = reg["variants"][variant], curves[variant]
        ax.plot(times[before], values[before], ".", ms=2.5, c="k", label="training months")
        ax.plot(times[~before], values[~before], ".", ms=2.5, c="0.6", label="after the cut-off")
        ax.plot(years, c["mean"], c="C0", lw=1, label="predictive mean")
        ax.fill_between(years, c["mean"] - 2 * c["std"], c["mean"] + 2 * c["std"], color="C0", alpha=0.25,
                        label="mean ± 2 std")  # fmt: skip
        if variant == "relu" and FIXED_TAU in reg["variants"]:
            f = curves[FIXED_TAU]
            for sign in (-1, 1):
                ax.plot(years, f["mean"] + sign * 2 * f["std"], "--", c="C3", lw=0.8,
                        label="fixed τ: mean ± 2 std" if sign < 0 else None)  # fmt: skip
        ax.axvline(s["cutoff"], c="k", ls=":", lw=1)
        ax.axvspan(s["last_quarter_from"], s["until"], color="0.92", zorder=-1)
        name = {"relu": "ReLU", "tanh": "TanH"}.get(variant, variant)
        ax.set_title(f"{name}: std x {row['ratio']:.2f} beyond the cut-off")
        ax.set_xlabel("year")
    axes[0].set_ylabel("CO2 (ppm)")
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(
        f"MC dropout, {s['depth']} x {s['width']} units, p = {s['p']:g}, trained before {s['cutoff']:g} "
        f"(dotted); shaded: the last quarter of the horizon",
        fontsize=9,
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def plot_rotation(rot: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """The slides' rotated-digit figure from :func:`rotation`'s results: the rotated images, then per image the
    softmax input (left) and softmax output (right) of every draw for the three most probable classes.  Written to
    ``path`` (PNG)."""
    from matplotlib.figure import Figure

    images, angles = rot["images"], rot["settings"]["angles"]
    n = len(angles)
    fig = Figure(figsize=(11, 5.2), layout="constrained")
    grid = fig.add_gridspec(2, 2 * n, height_ratios=[1, 4.5])
    for i in range(n):
        ax = fig.add_subplot(grid[0, 2 * i : 2 * i + 2])
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{angles[i]:g}°", fontsize=7)
    rng = np.random.default_rng(0)
    for k, (key, label) in enumerate((("logits", "softmax input"), ("probs", "softmax output"))):
        ax = fig.add_subplot(grid[1, k * n : (k + 1) * n])
        values = rot["draws"][key]  # (T, A, classes)
        for j, c in enumerate(rot["classes"]):
            jitter = rng.uniform(-0.15, 0.15, values.shape[0])
            for i in range(n):
                ax.scatter(
                    i + jitter, values[:, i, j], s=3, c=f"C{j}", alpha=0.5, label=f"class {c}" if i == 0 else None
                )
        ax.set_xticks(range(n))
        ax.set_xticklabels([f"{a:g}" for a in angles], fontsize=7)
        ax.set_xlabel("rotation (degrees)")
        ax.set_title(f"{label}, {values.shape[0]} draws per image")
        if k == 0:
            ax.legend(fontsize=7, markerscale=3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


# -------------------------------------------------------------------------------------------------- record


def json_ready(reg: dict[str, Any], rot: dict[str, Any]) -> dict[str, Any]:
    """The recorded numbers of :func:`regression` and :func:`rotation` (without the arrays of the figures), as
    the JSON record: ``{"regression": {"settings", "variants", "fixed_tau"}, "rotation": {...}}``."""
    return {
        "regression": {k: reg[k] for k in ("settings", "variants", "fixed_tau")},
        "rotation": {k: v for k, v in rot.items() if k not in ("images", "draws", "model", "guide")},
    }


def _cov(c: dict[str, float]) -> str:
    return f"{100 * c['50']:.0f} / {100 * c['90']:.0f}"


def _regression_findings(reg: dict[str, Any]) -> list[str]:
    """What the regression table shows, in words computed from the numbers (nothing is asserted that they do not
    show)."""
    v, s = reg["variants"], reg["settings"]
    lines = []
    span = f"{s['last_quarter_from']:.1f}-{s['until']:g}"
    if "relu" in v:
        r = v["relu"]
        grows = "grows" if r["ratio"] >= 2 else "grows less than twofold" if r["ratio"] > 1 else "does not grow"
        lines.append(
            f"- ReLU: the predictive std {grows} away from the data: {r['std_last_quarter']:.2f} ppm over {span}, "
            f"{r['ratio']:.2f} times its {r['std_inside']:.2f} ppm inside the training range."
        )
    if "tanh" in v:
        t = v["tanh"]
        trend = "shrinks" if t["ratio"] < 1 else "grows"
        lines.append(
            f"- TanH: the predictive std {trend} beyond the cut-off ({t['ratio']:.2f} times its value inside the "
            f"training range, {t['std_last_quarter']:.2f} ppm over {span})."
        )
    if "relu" in v and "tanh" in v:
        r, t = v["relu"], v["tanh"]
        narrower = t["std_last_quarter"] < r["std_last_quarter"]
        lines.append(
            f"- The slide's observation, that TanH's uncertainty stays narrower than ReLU's away from the data, "
            f"{'holds' if narrower else 'does not hold'} here: {t['std_last_quarter']:.2f} against "
            f"{r['std_last_quarter']:.2f} ppm over {span}.  On the months after the cut-off the central 90 % "
            f"interval covers {100 * t['coverage_after']['90']:.0f} % of the data for TanH (RMSE "
            f"{t['rmse_after']:.1f} ppm) and {100 * r['coverage_after']['90']:.0f} % for ReLU (RMSE "
            f"{r['rmse_after']:.1f} ppm)"
            + (
                ": TanH's narrower band is over-confident."
                if narrower and t["coverage_after"]["90"] < min(0.5, r["coverage_after"]["90"])
                else "."
            )
        )
    if FIXED_TAU in v:
        f, tau = v[FIXED_TAU], reg["fixed_tau"]
        lines.append(
            f"- With the precision fixed at Gal & Ghahramani's τ = (1 - p) l² / (2 N λ) = {tau['tau']:.1f} "
            f"(`bd.likelihoods.model_precision`; λ = {tau['weight_decay']:g}, l = √(1 - p) / s = "
            f"{tau['length_scale']:.3f} for the prior N(0, s²), s = {tau['prior_scale']:g}, N = {s['n_train']}: "
            f"σ = τ^-1/2 = {f['noise_ppm']:.2f} ppm) the ReLU network's std is {f['std_inside']:.2f} ppm inside and "
            f"{f['std_last_quarter']:.2f} ppm over {span} (x {f['ratio']:.2f}); on the grid std² = τ⁻¹ + the "
            f"variance of the draws to {f['identity_max_error']:.1e} (standardised units)."
        )
    return lines


def markdown(
    reg: dict[str, Any], rot: dict[str, Any], command: str, *, seconds: float | None = None, stem: str = "mc_dropout_gp"
) -> str:
    """The record: the protocol, the regression table and findings, the rotation table and findings.

    Parameters
    ----------
    reg, rot
        The results of :func:`regression` and :func:`rotation`.
    command
        The command line, quoted.
    seconds
        The wall time of the whole run, reported when given.
    stem
        The figures' file names are ``<stem>_regression.png`` and ``<stem>_rotation.png`` (next to the record).
    """
    s, r = reg["settings"], rot["settings"]
    took = f"; {seconds / 60:.1f} min in all" if seconds is not None else ""
    lines = [
        TITLE,
        "",
        f"Command: `{command}`; {s['device']}{took}.",
        "",
        "The two experiments of Gal's MC dropout slides (Gal & Ghahramani 2016, *Dropout as a Bayesian "
        "approximation*): `bernoulli` dropout trained by `bd.fit` is variational inference in a deep Gaussian "
        "process with q(W) = M diag(z), and `bd.predict` with T draws gives the predictive mean and variance "
        "(τ⁻¹ plus the variance of the draws).",
        "",
        "## Regression: CO2 extrapolated",
        "",
        f'Mauna Loa CO2, monthly means (`bd.data.load("co2").series`), as a function of time; trained on the '
        f"{s['n_train']} months before {s['cutoff']:g}, x (year) and y (ppm) standardised with their statistics "
        f"(x: {s['x_mean']:.2f} ± {s['x_std']:.2f} years, y: {s['y_mean']:.2f} ± {s['y_std']:.2f} ppm).  "
        f'`bd.models.mlp(1, [{s["width"]}] * {s["depth"]}, 1, "bernoulli", p={s["p"]:g}, activation=...)`: '
        f"dropout p = {s['p']:g} on every hidden unit, not on the single input; N(0, 1) prior on the weights.  "
        f"`bd.Regressor` (noise σ learned from 0.1, or fixed), `bd.DropoutGuide`, `bd.fit` with its defaults but "
        f"{s['epochs']} epochs (Adam, lr 1e-2 decayed linearly, batch 128; Pyro's validation off), seed "
        f"{s['seed']}.  Predictions: `bd.predict` with {s['num_samples']} draws on a monthly grid of "
        f"{s['grid_months']} months up to {s['until']:g}; std: the predictive standard deviation (noise "
        f"included), epistemic: the standard deviation of the draws; inside: the grid months of the training range; "
        f"last quarter: from {s['last_quarter_from']:.2f} to {s['until']:g}.  RMSE and the coverage of the central "
        f"50 / 90 % intervals (`bd.diagnostics.calibration` on `bd.to_inference_data`): the {s['n_after']} months "
        f"from {s['cutoff']:g} on.  Figure: "
        f"[{stem}_regression.png]({stem}_regression.png).",
        "",
        "| network | σ (ppm) | std inside (ppm) | std last quarter (ppm) | ratio | epistemic inside | epistemic "
        "last quarter | RMSE after (ppm) | coverage 50 / 90 % after | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in reg["variants"].items():
        label = {"relu": "ReLU", "tanh": "TanH"}.get(name, f"ReLU, fixed τ = {v['tau']:.1f}")
        lines.append(
            f"| {label} | {v['noise_ppm']:.2f}{'' if v['learn_noise'] else ' (fixed)'} | {v['std_inside']:.2f} | "
            f"{v['std_last_quarter']:.2f} | {v['ratio']:.2f} | {v['epistemic_inside']:.2f} | "
            f"{v['epistemic_last_quarter']:.2f} | {v['rmse_after']:.2f} | {_cov(v['coverage_after'])} | "
            f"{v['s_per_epoch']:.3f} |"
        )
    lines += ["", *_regression_findings(reg)]
    warnings = sum(len(v["warnings"]) for v in reg["variants"].values()) + len(rot["warnings"])
    angles = r["angles"]
    correctly = " classified correctly" if rot["classified_correctly"] else " (none is classified correctly)"
    lines += [
        "",
        "## Classification: a rotated digit",
        "",
        f"Digits (8 x 8, {r['n_train']} training / {r['n_test']} test images); `bd.models.lenet5` "
        f"{'-'.join(map(str, (*r['channels'], r['hidden'])))} without noise, its last layer a `bd.nn.Linear` with "
        f"`bernoulli` p = {r['p']:g} on its inputs (dropout only before the last fully connected layer); "
        f"`bd.Classifier`, `bd.fit` with its defaults but {r['epochs']} epochs, seed {r['seed']}.  MC test accuracy "
        f"{100 * rot['test_accuracy']:.2f} % ({r['num_samples']} draws).  Test image {rot['test_index']}, the first "
        f'"{r["digit"]}"{correctly}, rotated by {", ".join(f"{a:g}" for a in angles)} degrees '
        f"(`scipy.ndimage.rotate`, bilinear); per rotation {r['num_samples']} draws of the softmax input and "
        f"output.  Entropy H[p̄] and mutual information H[p̄] - mean_t H[p_t] in nats.  Figure (classes "
        f"{', '.join(map(str, rot['classes']))}, the most probable over the rotations): "
        f"[{stem}_rotation.png]({stem}_rotation.png).",
        "",
        "| angle (°) | predicted class | its probability | predictive entropy | mutual information |",
        "|---|---|---|---|---|",
    ]
    for row in rot["table"]:
        lines.append(
            f"| {row['angle']:g} | {row['prediction']} | {row['probability']:.3f} | "
            f"{row['predictive_entropy']:.3f} | {row['mutual_information']:.4f} |"
        )
    higher = rot["mi_middle_mean"] > rot["mi_0"]
    every = rot["mi_middle_min"] > rot["mi_0"]
    outer = [a for i, a in enumerate(angles) if i and a not in rot["middle"]]
    top = [angles[i] for i in np.argsort([-row["mutual_information"] for row in rot["table"]])[:2]]
    middle = f"{rot['middle'][0]:g}-{rot['middle'][-1]:g}°"
    changes = [row["prediction"] for row in rot["table"]]
    lines += [
        "",
        f"- The mutual information is {'higher' if higher else 'not higher'} at the middle angles ({middle}: mean "
        f"{rot['mi_middle_mean']:.4f}, smallest {rot['mi_middle_min']:.4f}) than at 0° ({rot['mi_0']:.4f})"
        + (", at each of them." if every else (", though not at each of them." if higher else ".")),
        f"- At the other angles ({', '.join(f'{a:g}' for a in outer)}°) its mean is {rot['mi_outer_mean']:.4f}"
        + (
            ": the mutual information rises as soon as the digit leaves 0°, not only at the middle angles; it is "
            f"largest at {top[0]:g}° and {top[1]:g}°."
            if rot["mi_outer_mean"] > rot["mi_0"]
            else "."
        ),
        f"- The prediction goes {' → '.join(str(c) for i, c in enumerate(changes) if i == 0 or c != changes[i - 1])} "
        "as the digit turns.",
        f"- Run times: regression {sum(v['seconds'] for v in reg['variants'].values()):.0f} s "
        f"({len(reg['variants'])} networks), classification {rot['seconds']:.0f} s."
        + (f"  `bd.fit` issued {warnings} collapse warning(s)." if warnings else ""),
    ]
    return "\n".join(lines)


def _positive(ap: Any, args: Any, names: Sequence[str]) -> None:
    for name in names:
        v = getattr(args, name)
        if (min(v) if isinstance(v, list) else v) <= 0:
            ap.error(f"--{name.replace('_', '-')} must be positive")


def main(argv: Sequence[str] | None = None, *, default_out: str | Path = "benchmarks/results/mc_dropout_gp.md") -> int:
    """The command line of ``benchmarks/mc_dropout_gp.py``: run both experiments and write the record ``--out``, the JSON
    of its numbers (:func:`json_ready`) and the figures next to it (``<stem>.json``, ``<stem>_regression.png``,
    ``<stem>_rotation.png``).

    ``argv`` and ``default_out`` as :func:`~bayesdrop.experiments.report_io.script_parser` says.

    Returns
    -------
    int
        The exit status, 0.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = script_parser(__doc__)
    ap.add_argument("--regression-epochs", type=int, default=REGRESSION_EPOCHS)
    ap.add_argument("--rotation-epochs", type=int, default=ROTATION_EPOCHS)
    ap.add_argument("--width", type=int, default=WIDTH)
    ap.add_argument("--depth", type=int, default=DEPTH)
    ap.add_argument("--channels", type=int, nargs=2, default=list(CHANNELS), metavar=("C1", "C2"))
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--samples", type=int, default=SAMPLES, help="MC draws of every prediction")
    ap.add_argument("--cutoff", type=float, default=CUTOFF, help="train on the months before this year")
    ap.add_argument("--until", type=float, default=UNTIL, help="predict up to this year")
    ap.add_argument("--weight-decay", type=float, default=WEIGHT_DECAY, help="lambda of the fixed-tau network")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(default_out))
    args = ap.parse_args(argv)
    names = ("regression_epochs", "rotation_epochs", "width", "depth", "channels", "hidden", "samples", "weight_decay")
    _positive(ap, args, names)
    t0 = time.perf_counter()
    reg = regression(
        width=args.width, depth=args.depth, epochs=args.regression_epochs, cutoff=args.cutoff, until=args.until,
        num_samples=args.samples, weight_decay=args.weight_decay, seed=args.seed,
    )  # fmt: skip
    rot = rotation(
        channels=tuple(args.channels), hidden=args.hidden, epochs=args.rotation_epochs, num_samples=args.samples,
        seed=args.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    plot_regression(reg, out.with_name(f"{out.stem}_regression.png"))
    plot_rotation(rot, out.with_name(f"{out.stem}_rotation.png"))
    command = quoted_command("benchmarks/mc_dropout_gp.py", argv)
    record = {**json_ready(reg, rot), "command": command, "seconds": seconds}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    write_results(markdown(reg, rot, command, seconds=seconds, stem=out.stem), out)
    return 0
