"""Every tutorial runs at quick size (``BAYESDROP_QUICK=1``) and its figures are checked.

A tutorial writes ``NN_results.json`` into ``BAYESDROP_TUTORIAL_OUT``; ``CHECKS``
holds one function per tutorial asserting what its text claims.  A new
tutorial without checks fails ``test_every_tutorial_has_checks``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def _check_01(r):
    relu = r["relu"]
    assert relu["std_beyond"] > 2 * relu["std_inside"]  # uncertainty grows away from the data
    assert 0.05 < relu["noise_scale"] < 0.3  # the data's noise is 0.1


def _check_02(r):
    assert r["kl_theta"] == 0  # q(theta) and p(theta | k) share k: eq. 7 has no KL for the gates
    assert r["st_grad_scale"] > 0 and r["st_max_error"] <= 1e-6 * r["st_grad_scale"]  # d theta / d k = 1
    p = r["presets"]
    assert p["dropout++(0)"]["mean_k"] < p["dropout++(flat)"]["mean_k"] < p["dropout++(1)"]["mean_k"]
    assert p["dropout++(flat)"]["mean_k"] - p["dropout++(0)"]["mean_k"] > 0.05
    assert p["dropout++(1)"]["mean_k"] > 0.99  # the prior holds every gate at 1
    assert p["dropout++(0.5)"]["mean_k"] < p["dropout++(flat)"]["mean_k"]  # pulled towards 0.5
    assert p["sal"]["frac_near_half"] < 0.5  # SAL gates leave the prior's antimode 0.5 (all start there)
    assert all(v["acc"] > 0.6 for v in p.values())
    g = r["input_gates"]
    assert g["centre"] > g["border"] + 0.05 and g["corr_pixel_std"] > 0.5  # Figure 2g: the centre is kept
    assert g["acc"] > 0.8
    arch = [r["sal_architecture"][k] for k in sorted(r["sal_architecture"], key=float)]  # by growing b/a
    for wider, narrower in zip(arch[:-1], arch[1:]):  # a larger b/a gives a smaller network (Table 1)
        assert all(n <= w for w, n in zip(wider["widths"], narrower["widths"]))
    assert sum(arch[-1]["widths"]) < sum(arch[0]["widths"])
    assert min(arch[0]["widths"]) > 0 and arch[0]["params_pruned"] < arch[0]["params_dense"]
    assert abs(arch[0]["pruned_acc"] - arch[0]["acc"]) <= 0.02  # pruned gates were (near) 0
    if not r["quick"]:  # the full-size claims of the text (tutorials/output/02_results.json)
        assert len(arch) == 3 and g["centre"] > g["border"] + 0.3
        assert p["sal"]["frac_middle"] < 0.1
        assert all(a["frac_0_or_1"] > 0.95 and a["pruned_acc"] > 0.9 for a in arch)
        assert all(abs(a["pruned_acc"] - a["acc"]) <= 0.01 for a in arch)
        assert arch[-1]["params_pruned"] < 0.1 * arch[-1]["params_dense"]


def _check_03(r):
    for e in r["eq14"].values():  # eq. 16 minimises eq. 14, at the value of Prop. 3
        assert abs(e["gamma_argmin"] / e["gamma_star"] - 1) < 0.01  # the grid step is 0.58 %
        assert abs(e["min_kl"] - e["prop3"]) < 1e-5 and e["max_diff_torch_kl"] < 1e-10
    for key in ("prop3_random", "prop3_trained"):  # the KL part of the VBD ELBO is sum 0.5 log(1 + 1/alpha)
        assert r[key]["clamped"] == 0
        assert r[key]["max_error_per_weight"] < 1e-9
        assert r[key]["elbo_error"] < 1e-9 * r[key]["kl"]
    c = r["kl_curves"]
    assert c["molchanov_max_error_la_in_4"] < 0.01  # Molchanov et al.'s fit of the log-uniform KL
    assert abs(c["gap_at_la_-8"] - c["k1"]) < 0.01 and abs(c["gap_at_la_8"]) < 1e-3
    assert c["vbd_max_increment_in_log_alpha"] < 0 and c["vd_max_increment_in_log_alpha"] < 0
    assert c["vbd_min_increment_in_inv_alpha"] > 0 and c["vbd_max_second_difference_in_inv_alpha"] < 0  # Prop. 4
    runs = r["runs"]
    vd = runs["vd"]
    assert vd["ratio"] == 1 and vd["frac_log_alpha_over_3"] == 0 and vd["max_log_alpha"] <= 0  # alpha <= 1
    assert vd["median_log_alpha"] > vd["median_log_alpha_init"] + 0.5 and vd["acc_mc"] > 0.9  # the KL raises alpha
    for name in ("sparse-vd", "vbd"):
        run = runs[name]
        assert run["median_log_alpha_init"] < 0 < 3 < run["median_log_alpha"]  # the rates moved: most weights pruned
        assert run["frac_log_alpha_over_3"] > 0.8 and run["ratio"] > 5
        assert run["acc_mc"] > 0.9 and run["acc_pruned"] >= run["acc_weight_scaling"] - 0.02
        assert run["params_pruned"] < 0.75 * run["params_dense"]  # whole units go (the plain network is smaller)
    assert runs["vbd, no warm-up"]["acc_mc"] < runs["vbd"]["acc_mc"] - 0.2  # without warm-up the KL wins
    assert runs["vbd, no warm-up"]["frac_log_alpha_over_3"] > runs["vbd"]["frac_log_alpha_over_3"]
    if not r["quick"]:  # the full-size claims of the text (tutorials/output/03_results.json)
        assert vd["median_log_alpha"] > vd["median_log_alpha_init"] + 2  # the text: from -8 to -5.43 in 30 epochs
        assert all(
            runs[n]["ratio"] > 30 and runs[n]["params_pruned"] < 0.2 * runs[n]["params_dense"]
            for n in ("sparse-vd", "vbd")
        )
        assert runs["vbd, no warm-up"]["acc_mc"] < 0.2


def _check_04(r):
    assert r["accuracy"] > 0.8
    assert 0.05 < r["ece"] < 0.4  # MC dropout with p = 0.5 is under-confident on digits
    assert r["mean_confidence"] < r["accuracy"]
    assert r["entropy_wrong"] > r["entropy_correct"]
    assert r["mi_noise"] > 1.5 * r["mi_test"]  # epistemic uncertainty flags the noise images
    assert r["mi_auroc"] > 0.9
    assert isinstance(r["pareto_k_over_0.7"], int) and 0 <= r["pareto_k_over_0.7"] <= r["n_loo"]
    assert r["lppd"] > r["elpd_loo"]
    assert 0.6 < r["coverage90_support"] <= 1
    assert r["coverage90_grid"] < r["coverage90_support"]  # MC dropout under-covers beyond the data
    assert r["coverage50_support"] < r["coverage80_support"] < r["coverage90_support"] <= r["coverage95_support"]
    assert r["std_outside"] > 1.5 * r["std_support"]
    assert r["netcdf_roundtrip"]


def _check_05(r):
    assert r["loss_last"] < r["loss_first"] and r["fit_nll_last"] < r["fit_nll_first"] - 0.3
    assert r["aleatoric_edge"] > 1.5 * r["aleatoric_centre"]  # true noise: 0.05 + 0.15 |x|
    assert r["epistemic_outside"] > r["epistemic_inside"]


def _check_06(r):
    assert r["exact_max_error"] < 1e-6
    assert r["mc"]["50"]["nll"] < r["mc"]["1"]["nll"]
    assert r["weight_scaling"]["acc"] > 0.85


def _check_07(r):
    d = r["draws"]  # one training draw of each method on 256 training images, read from the traced sites
    for kind, p in (("element", 0.5), ("spatial", 0.5)):  # the noise on the first convolution's pooled maps
        assert d[kind]["values"] == [0.0, 1 / (1 - p)] and abs(d[kind]["frac_dropped"] - p) < 0.1
    assert d["spatial"]["draw_shape"][1:] == [1, 1]  # one draw per feature map ...
    assert d["spatial"]["frac_maps_partially_dropped"] == 0  # ... so a map is kept or dropped whole
    assert d["element"]["draw_shape"][1:] == [4, 4] and d["element"]["frac_maps_partially_dropped"] > 0.9
    assert d["pixels"]["values"] == [0.0, 1.25] and abs(d["pixels"]["frac_dropped"] - 0.2) < 0.05
    c = d["cutout"]
    assert c["side"] == 4 and c["n_inside"] > 0 and c["all_rectangles"]
    assert c["area_inside_min"] == c["area_inside_max"] == c["side"] ** 2  # the whole square inside the borders
    assert c["area_clipped_max"] <= c["side"] * (c["side"] - 1)  # clipped at a border: at least a row less
    assert d["same_conv1_maps"]
    for name in ("maxpool-dropout", "avgpool-dropout", "stochastic-pooling", "max-drop"):
        assert d[name]["reproduce_max_error"] < 1e-6  # the weights drawn are the ones the layer used
    mp = d["maxpool-dropout"]
    assert mp["values"] == [0.0, 1.0] and abs(mp["frac_dropped"] - 0.5) < 0.1  # not rescaled
    assert mp["chosen_not_kept"] == 0 and mp["output_is_max_of_kept"] < 1e-6
    assert d["avgpool-dropout"]["values"] == [0.0, 2.0]  # inverted
    sp = d["stochastic-pooling"]
    assert sp["one_per_window"] and sp["chosen_zero"] == 0  # one element, never one of probability 0
    assert 0 <= sp["threshold_range"][0] <= sp["threshold_range"][1] <= 1
    md = d["max-drop"]  # the multiplier 1 - M, M ~ N(0.02, 0.05)
    assert abs(md["multiplier_mean"] - 0.98) < 0.02 and abs(md["multiplier_std"] - 0.05**0.5) < 0.02
    demo = r["demo"]
    w = demo["window_1234"]  # the 16 masks of one window against the deterministic network
    assert abs(w["enumeration"] - 3.0625) < 1e-6 and abs(w["probabilistic"] - w["enumeration"]) < 1e-6
    assert abs(w["scaled"] - 2) < 1e-6  # (1 - p) max differs
    assert len(demo["random_max_error"]) == 3 and all(e < 1e-6 for e in demo["random_max_error"].values())
    neg = demo["window_negative"]  # the rule needs non-negative activations
    assert abs(neg["enumeration"] + 0.0625) < 1e-6 and abs(neg["probabilistic"] + 1.625) < 1e-6
    st = demo["stochastic"]
    assert all(abs(f - q) < 0.02 for f, q in zip(st["frequencies"], st["probabilities"]))
    assert abs(st["test_rule"] - 3) < 1e-6 and abs(st["mc_mean"] - 3) < 0.05
    cmp = r["comparison"]
    assert len(cmp) == 8
    assert all(v["mc_err"] < 0.4 and v["rule_err"] < 0.4 for v in cmp.values())  # every configuration learns
    assert abs(cmp["no dropout"]["mc_nll"] - cmp["no dropout"]["rule_nll"]) < 1e-6  # nothing drawn
    assert "scaled_err" in cmp["maxpool-dropout"]
    if not r["quick"]:  # the full-size claims of the text (tutorials/output/07_results.json)
        runs = {k: v["runs"] for k, v in cmp.items()}
        none = runs["no dropout"]
        assert len(none) == 3
        for k in ("maxpool-dropout", "avgpool-dropout", "stochastic-pooling", "max-drop"):  # on every seed
            assert all(a["mc_err"] < b["mc_err"] for a, b in zip(runs[k], none))
        for key in ("mc_err", "mc_nll", "rule_err", "rule_nll"):
            assert min(cmp, key=lambda k: cmp[k][key]) == "stochastic-pooling"
        assert cmp["maxpool-dropout"]["mc_err"] - cmp["stochastic-pooling"]["mc_err"] < 1 / 360
        bern, spatial = runs["bernoulli"], runs["spatial"]
        assert all(a["mc_err"] > b["mc_err"] and a["mc_nll"] > b["mc_nll"] for a, b in zip(bern, none))
        assert cmp["bernoulli"]["mc_nll"] > 6 * cmp["no dropout"]["mc_nll"]
        assert cmp["bernoulli"]["mc_confidence"] < 1 - cmp["bernoulli"]["mc_err"] - 0.15  # under-confident
        assert all(a["mc_nll"] < b["mc_nll"] and a["rule_nll"] < b["rule_nll"] for a, b in zip(spatial, bern))
        assert cmp["spatial"]["mc_err"] < cmp["bernoulli"]["mc_err"]
        assert cmp["spatial"]["rule_nll"] > cmp["no dropout"]["rule_nll"]
        for k in cmp:  # the rule's NLL below the MC predictive's wherever there is noise
            assert k == "no dropout" or all(x["rule_nll"] < x["mc_nll"] for x in runs[k])
        least_confident = sorted(cmp, key=lambda k: cmp[k]["mc_confidence"])[:3]
        assert sorted(least_confident) == ["bernoulli", "cutout", "spatial"]
        assert all(1.8 < cmp[k]["mc_nll"] / cmp[k]["rule_nll"] < 3 for k in least_confident)
        for k in ("stochastic-pooling", "max-drop"):
            assert cmp[k]["mc_nll"] - cmp[k]["rule_nll"] < 0.01 and cmp[k]["mc_ece"] < 0.02
        assert all(a["rule_err"] < b["rule_err"] for a, b in zip(runs["cutout"], none))  # the whole image
        mp = runs["maxpool-dropout"]  # the scaled max against probabilistic weighted pooling
        assert all(x["scaled_err"] > x["rule_err"] and x["scaled_nll"] > 2 * x["rule_nll"] for x in mp)
        assert cmp["maxpool-dropout"]["scaled_err"] > cmp["no dropout"]["rule_err"]


def _check_08(r):
    assert r["mask_h_shape"][1:] == [1, 32] and r["mask_x_all_ones"]  # one mask per sequence; one feature kept
    assert abs(r["mask_h_kept"] - 0.75) < 0.05  # 2048 draws of Bernoulli(0.75): 5 SE is 0.05
    assert r["time_dims"] == ["chain", "draw", "obs_id", "time"]
    assert r["std_by_step"][-1] > r["std_by_step"][0]  # the band widens with the horizon
    assert 0.70 <= r["coverage_90"] <= 0.99 and r["coverage_50"] < r["coverage_90"]
    assert all(e < s for e, s in zip(r["epistemic_by_step"], r["std_by_step"]))
    assert r["januaries"] == 12 and r["rmse"] < 1.0  # ppm
    if not r["quick"]:  # the full-size claims of the text (tutorials/output/08_results.json)
        assert r["spearman_std_step"] > 0.9 and 0.70 <= r["band_coverage_januaries"] <= 0.99
        assert all(e < 0.5 * s for e, s in zip(r["epistemic_by_step"], r["std_by_step"]))  # mostly aleatoric
        assert abs(r["rmse_det"] - r["rmse"]) < 0.1 * r["rmse"]


def _check_09(r):
    assert r["elbo"]["rel_error"] < 1e-5  # the traced ELBO is the dropout objective with weight decay
    assert r["tau"]["mask_sites"] == ["net.2.noise", "net.4.noise"]  # the single input is not dropped
    assert abs(r["tau"]["tau_back"] / r["tau"]["tau"] - 1) < 1e-9  # model_precision inverts the weight decay
    v = r["regression"]["variants"]
    assert set(v) == {"relu", "tanh", "relu, fixed tau"}
    assert not v["relu, fixed tau"]["learn_noise"] and abs(v["relu, fixed tau"]["tau"] / r["tau"]["tau"] - 1) < 1e-5
    assert all(x["identity_max_error"] < 1e-5 for x in v.values())  # std^2 = 1/tau + the variance of the draws
    assert v["relu"]["ratio"] > 1.5 and v["relu"]["ratio"] > v["tanh"]["ratio"]
    for c in r["calibration"].values():
        for where in ("heldout", "after"):
            assert 0 <= c[where]["50"] <= c[where]["90"] <= 1
    rot = r["rotation"]
    assert len(rot["table"]) == 12 and all(row["mutual_information"] >= -1e-6 for row in rot["table"])
    assert r["arviz"]["max_diff_mi"] < 1e-5 and r["arviz"]["max_diff_entropy"] < 1e-5  # = bd.diagnostics.uncertainty
    if not r["quick"]:  # the full-size claims of the text (tutorials/output/09_results.json)
        assert v["relu"]["ratio"] > 3 and v["relu, fixed tau"]["ratio"] > 3  # the ReLU bands fan out
        assert v["tanh"]["ratio"] < 1.2 and v["tanh"]["std_last_quarter"] < v["relu"]["std_last_quarter"] / 2
        cal = r["calibration"]
        for name in ("relu", "relu, fixed tau"):  # a little under-covered within the data
            assert 0.35 < cal[name]["heldout"]["50"] < 0.5 and 0.75 < cal[name]["heldout"]["90"] < 0.9
        assert cal["tanh"]["heldout"]["50"] >= 0.5 and cal["tanh"]["heldout"]["90"] >= 0.9
        assert all(0.8 < c["rmse_heldout_ppm"] / r["seasonal_std_ppm"] < 1.2 for c in cal.values())  # no season
        assert cal["relu"]["after"]["90"] > 0.9 and cal["tanh"]["after"]["90"] < 0.3
        table = rot["table"]
        assert table[0]["prediction"] == 1 and table[0]["probability"] > 0.99 and rot["mi_0"] < 0.01
        assert rot["mi_middle_min"] > rot["mi_0"]  # higher at each middle angle than upright ...
        assert rot["mi_outer_mean"] > rot["mi_middle_mean"]  # ... but not peaked there
        peaks = sorted(table, key=lambda row: -row["mutual_information"])[:2]
        assert sorted(row["angle"] for row in peaks) == [30.0, 90.0]
        preds = [row["prediction"] for row in table]
        assert [c for i, c in enumerate(preds) if i == 0 or c != preds[i - 1]] == [1, 6, 4, 7, 1]
        assert r["arviz"]["mi_middle_mean"] > r["arviz"]["mi_0"]


CHECKS = {
    "01": _check_01,
    "02": _check_02,
    "03": _check_03,
    "04": _check_04,
    "05": _check_05,
    "06": _check_06,
    "07": _check_07,
    "08": _check_08,
    "09": _check_09,
}


def test_every_tutorial_has_checks():
    assert TUTORIALS
    missing = [t.name for t in TUTORIALS if t.name[:2] not in CHECKS]
    assert not missing, f"tutorials without checks in tests/test_tutorials.py: {missing}"


# The two longest quick runs (the CNN and forecasting tutorials, ~20 s each) are slow tests: their methods have
# fast end-to-end tests of their own, and the notebook test keeps a quick tutorial run in the default suite.
SLOW_TUTORIALS = ("07", "08")


@pytest.mark.parametrize(
    "path",
    [pytest.param(t, marks=pytest.mark.slow) if t.name[:2] in SLOW_TUTORIALS else t for t in TUTORIALS],
    ids=lambda p: p.stem,
)
def test_tutorial_runs_and_its_figures_hold(path, tmp_path):
    env = {**os.environ, "BAYESDROP_QUICK": "1", "BAYESDROP_TUTORIAL_OUT": str(tmp_path), "MPLBACKEND": "Agg"}
    if os.environ.get("PYTEST_XDIST_WORKER"):  # make test: two workers on two cores, one thread each
        env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    results = json.loads((tmp_path / f"{path.name[:2]}_results.json").read_text())
    CHECKS[path.name[:2]](results)


QUICKEST = ROOT / "tutorials" / "06_weight_scaling_vs_mc.py"  # about 8 s at quick size


def _copy_of_the_tutorials(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """``tmp_path/tutorials`` holding the quickest tutorial and its committed outputs (``output/06_*``), and the
    outputs' digests: a repository of one tutorial, to run as the user would without touching this one."""
    here = tmp_path / "tutorials"
    (here / "output").mkdir(parents=True)
    shutil.copy(QUICKEST, here)
    for f in (ROOT / "tutorials" / "output").glob(f"{QUICKEST.name[:2]}_*"):
        shutil.copy(f, here / "output")
    return here, _digests(here / "output")


def _digests(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir() if f.is_file()}


@pytest.mark.slow  # 17 s; the notebook test below checks the same invariant (from tutorials/) in the default suite
def test_a_quick_run_never_writes_over_the_committed_outputs(tmp_path):
    """Run as a script from the repository root with ``BAYESDROP_QUICK=1`` and no ``BAYESDROP_TUTORIAL_OUT``: the
    full-size outputs in ``tutorials/output/`` stay as they are; the quick ones go to ``tutorials/output/quick/``."""
    here, before = _copy_of_the_tutorials(tmp_path)
    assert {"06_results.json", "06_weight_scaling_vs_mc.png"} <= set(before)
    env = {k: v for k, v in os.environ.items() if k != "BAYESDROP_TUTORIAL_OUT"}
    env.update(BAYESDROP_QUICK="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(Path("tutorials") / QUICKEST.name)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _digests(here / "output") == before
    CHECKS["06"](json.loads((here / "output" / "quick" / "06_results.json").read_text()))
    assert (here / "output" / "quick" / "06_weight_scaling_vs_mc.png").stat().st_size > 1000


def test_a_tutorial_executes_as_a_notebook_at_quick_size(tmp_path, monkeypatch):
    """``make notebooks``' conversion (jupytext) executed end to end by nbclient in the notebook's folder, as
    ``jupyter nbconvert --execute`` does, at quick size: it runs, and its outputs go to ``output/quick/``, not over
    the committed ones."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    here, before = _copy_of_the_tutorials(tmp_path)
    notebook = jupytext.read(here / QUICKEST.name)
    monkeypatch.delenv("BAYESDROP_TUTORIAL_OUT", raising=False)
    for key, value in (("BAYESDROP_QUICK", "1"), ("MPLBACKEND", "Agg"), ("OMP_NUM_THREADS", "1")):
        monkeypatch.setenv(key, value)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(here)}}
    )
    client.execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert _digests(here / "output") == before
    results = json.loads((here / "output" / "quick" / "06_results.json").read_text())
    CHECKS["06"](results)
