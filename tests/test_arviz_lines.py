"""The same numbers under both ArviZ lines: ArviZ 0.2x (Python 3.11, ``make test``) and ArviZ 1.x (arviz-base,
arviz-stats, arviz-plots; Python >= 3.12, ``make test-py312``).

One environment holds one line, so the numbers that bayesdrop reads from an InferenceData (PSIS-LOO, WAIC,
``az.compare``, calibration, the entropy decomposition) are computed here from a fixed set of draws, built in the
test with NumPy and a fixed seed in the layout :func:`bayesdrop.to_inference_data` writes, and compared with
reference values in ``tests/data/arviz_lines_reference.json``.

How the reference file was made: under ArviZ 0.23.4 (Python 3.11.7, ``.venv``) with
``BAYESDROP_WRITE_ARVIZ_REFERENCE=1 .venv/bin/python -m pytest tests/test_arviz_lines.py``; the test then passed
unchanged under ArviZ 1.3.0 (arviz-base 1.3.1, arviz-stats 1.3.3; Python 3.12.1, ``.venv312``) and under
ArviZ 0.23.4 again.  The draws use S = 200, where the two lines' PSIS tails have the same length (40 draws);
elsewhere their Pareto fits differ a little (``bayesdrop.diagnostics.arviz.psislw``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.special import logsumexp, xlogy

from bayesdrop import diagnostics as D
from bayesdrop.diagnostics import arviz as _arviz

REFERENCE = Path(__file__).parent / "data" / "arviz_lines_reference.json"
S, N, C = 200, 40, 4  # draws, points, classes
TOL = 1e-6


def _draws(seed: int, sharpness: float) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities ``(S, N, C)`` of S networks (softmax of per-point logits plus per-draw noise) and labels
    ``(N,)`` (the most probable class, a quarter of them flipped)."""
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.normal(size=(1, N, C)) + rng.normal(scale=0.8, size=(S, N, C))
    probs = np.exp(logits - logsumexp(logits, axis=-1, keepdims=True))
    y = probs.mean(0).argmax(-1)
    flip = rng.random(N) < 0.25
    y[flip] = (y[flip] + 1) % C
    return probs, y.astype(np.int64)


def _idata(probs: np.ndarray, y: np.ndarray) -> object:
    """An InferenceData with the groups, variables and dims of ``bd.to_inference_data`` for a classifier."""
    ll = np.log(probs[:, np.arange(N), y])
    rng = np.random.default_rng(1)
    y_rep = np.stack([[rng.choice(C, p=p) for p in draw] for draw in probs[:20]])  # a few replicated labels
    y_rep = np.concatenate([y_rep, np.resize(y_rep, (S - 20, N))])
    return _arviz.from_dict(
        posterior_predictive={"y": y_rep[None], "probs": probs[None]},
        log_likelihood={"y": ll[None]},
        observed_data={"y": y},
        coords={"obs_id": np.arange(N), "class": np.arange(C)},
        dims={"y": ["obs_id"], "probs": ["obs_id", "class"]},
        attrs={"bayesdrop_noise": "shared"},
    )


def _numbers() -> dict[str, float]:
    """What the library reports for the fixed draws: LOO / WAIC, calibration, uncertainty and a comparison."""
    good, bad = (_idata(*_draws(seed, sharpness)) for seed, sharpness in ((0, 2.5), (1, 0.7)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto k and WAIC notes: counted in loo_summary
        loo = D.loo_summary(good)
        rows = D.compare_loo({"good": good, "bad": bad})
    cal = D.calibration(good)
    unc = D.uncertainty(good)
    out = {k: float(loo[k]) for k in ("elpd_loo", "se", "p_loo", "lppd", "elpd_waic", "se_waic", "p_waic", "k_max")}
    out.update({f"count {k}": float(loo[k]) for k in ("k<=0.5", "0.5<k<=0.7", "0.7<k<=1", "k>1", "good_k")})
    out.update({f"calibration {k}": float(v) for k, v in cal.items()})
    out.update({f"uncertainty {k} sum": float(np.sum(v)) for k, v in unc.items()})
    for row in rows:
        out.update(
            {
                f"compare {row['name']} {k}": float(row[k])
                for k in ("rank", "elpd_loo", "elpd_diff", "se", "dse", "weight")
            }
        )
    return out


def test_the_numbers_equal_the_reference_of_the_other_arviz_line():
    numbers = _numbers()
    if os.environ.get("BAYESDROP_WRITE_ARVIZ_REFERENCE"):
        meta = {"arviz": str(_arviz.az().__version__), "S": S, "N": N, "C": C}
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps({"generated_with": meta, "numbers": numbers}, indent=2, sort_keys=True) + "\n")
    reference = json.loads(REFERENCE.read_text())["numbers"]
    assert set(numbers) == set(reference)
    for key, value in numbers.items():
        assert value == pytest.approx(reference[key], rel=TOL, abs=TOL), (key, _arviz.major_version())


def test_the_numbers_agree_with_their_formulas():
    """The line-independent part, by formula in NumPy: lppd, WAIC (variance with ddof 0, ArviZ's standard error),
    p_loo = lppd - elpd_loo, ECE over 15 equal-width bins, the NLL and the mutual information."""
    probs, y = _draws(0, 2.5)
    idata = _idata(probs, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loo = D.loo_summary(idata)
    ll = np.log(probs[:, np.arange(N), y])
    lppd_i = logsumexp(ll, axis=0) - np.log(S)
    waic_i = lppd_i - ll.var(axis=0)
    assert loo["lppd"] == pytest.approx(lppd_i.sum(), rel=1e-12)
    assert loo["elpd_waic"] == pytest.approx(waic_i.sum(), rel=1e-12)
    assert loo["p_waic"] == pytest.approx(ll.var(axis=0).sum(), rel=1e-12)
    assert loo["se_waic"] == pytest.approx(np.sqrt(N * waic_i.var()), rel=1e-12)
    assert loo["p_loo"] == pytest.approx(loo["lppd"] - loo["elpd_loo"], rel=1e-9)
    assert loo["elpd_loo"] <= loo["lppd"]
    mean = probs.mean(0)
    conf, correct = mean.max(-1), (mean.argmax(-1) == y)
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    cal = D.calibration(idata)
    assert cal["ece"] == pytest.approx(ece, abs=1e-12)
    assert cal["nll"] == pytest.approx(-lppd_i.mean(), rel=1e-12)
    assert cal["accuracy"] == pytest.approx(correct.mean())
    entropy = -xlogy(mean, mean).sum(-1)
    mi = entropy - (-xlogy(probs, probs).sum(-1)).mean(0)
    np.testing.assert_allclose(D.uncertainty(idata)["mutual_information"], mi, rtol=1e-12, atol=1e-15)
    assert set(_arviz.groups(idata)) == {"posterior_predictive", "log_likelihood", "observed_data"}
    assert _arviz.group(idata, "posterior_predictive")["probs"].dims == ("chain", "draw", "obs_id", "class")
