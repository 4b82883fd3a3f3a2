"""Fast tests of the benchmark's bookkeeping: variants, budgets, seeds, log parsing, false-positive components,
paired comparisons, subgroups, cost columns, ratios, Markdown; and that the "vanilla network, our loss" row is
PlainConvUNet with our loss."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from nnunet_thrombus.benchmark.budgets import (BUDGETS, OURS, REFERENCE, SEED_PAIRS, VARIANTS, VESSEL_PLANS,
                                               get_budget, select_variants)
from nnunet_thrombus.benchmark.case_metrics import false_positive_components
from nnunet_thrombus.benchmark.runner import StepCost, VariantCost, epoch_times, seed_workspace
from nnunet_thrombus.benchmark.table import (COLUMNS, COSTS, EVIDENCE, add_comparisons, add_ratios, cost_columns,
                                             subgroup_rows, to_markdown)


def test_rows_of_issue_18():
    names = list(VARIANTS)
    assert names == ["vanilla_3d_fullres_seed0", "vanilla_3d_fullres_seed1", "vanilla_cascade_seed0",
                     "vanilla_cascade_seed1", "ours_seed0",
                     "ours_seed1", "ours_patchContext_seed0", "noCoarseFeatures_seed0", "noCBAM_seed0",
                     "noPyramidFusion_seed0", "plainOurLoss_3d_fullres_seed0", "ours_vesselWindow_seed0"]
    assert all(v.name.endswith(f"_seed{v.seed}") for v in VARIANTS.values())
    assert VARIANTS["ours_seed1"].seed == 1 and VARIANTS["ours_seed1"].trainer == VARIANTS[OURS].trainer
    plain = VARIANTS["plainOurLoss_3d_fullres_seed0"]
    assert (plain.trainer, plain.configuration) == ("ThrombusCascadeTrainer_plain", "3d_fullres")
    vessel = VARIANTS["ours_vesselWindow_seed0"]
    assert (vessel.plans, vessel.ct_window, vessel.trainer) == (VESSEL_PLANS, "vessel", "ThrombusCascadeTrainer")
    assert {v.plans for n, v in VARIANTS.items() if n != vessel.name} == {"ThrombusPlans"}
    # the patch-context and no-coarse-feature fine stages use ours' stage 1 (same plans, same seed)
    for n in ("ours_patchContext_seed0", "noCoarseFeatures_seed0"):
        assert VARIANTS[n].stage1_trainer == "ThrombusCascadeTrainer" and VARIANTS[n].seed == 0
    assert [n for n, v in VARIANTS.items() if v.thrombus_predict] == [
        "ours_seed0", "ours_seed1", "ours_patchContext_seed0", "noCoarseFeatures_seed0", "noCBAM_seed0",
        "noPyramidFusion_seed0", "ours_vesselWindow_seed0"]
    assert SEED_PAIRS == (("vanilla_3d_fullres_seed0", "vanilla_3d_fullres_seed1"),
                          ("vanilla_cascade_seed0", "vanilla_cascade_seed1"), ("ours_seed0", "ours_seed1"))


def test_select_variants_adds_reference_and_ours_and_keeps_run_order():
    names = [v.name for v in select_variants(["noCoarseFeatures_seed0"])]
    assert names == [REFERENCE, OURS, "noCoarseFeatures_seed0"]
    assert len(select_variants()) == len(VARIANTS) == 12


@pytest.mark.parametrize("bad", [["nope"], ["ours", "vanilla"]])
def test_select_variants_rejects_unknown(bad):
    with pytest.raises(ValueError, match="unknown variants"):
        select_variants(bad)


def test_budgets():
    assert set(BUDGETS) == {"smoke", "cpu", "gpu"}
    smoke = get_budget("smoke")
    assert smoke.features == (8, 16, 32) and smoke.patch_size == (32, 48, 48)
    assert "1 iterations" in smoke.describe() and "every stage 1 epoch(s)" in smoke.describe()
    cpu = get_budget("cpu")
    assert (cpu.epochs_for("3d_fullres"), cpu.epochs_for("3d_cascade_fullres"), cpu.epochs_for("3d_lowres")) == \
        (8, 8, 12)
    assert cpu.n_test >= 40 and cpu.n_cases - cpu.n_test >= 40
    assert "fine stages 8 epoch(s), 3d_lowres stages 12 epoch(s) x 101 iterations" in cpu.describe()
    with pytest.raises(ValueError, match="unknown budget 'huge'"):
        get_budget("huge")


def test_seed_workspace_keeps_models_apart(tmp_path):
    from nnunet_thrombus.training.workflow import NnunetWorkspace

    ws = NnunetWorkspace.under(tmp_path)
    s0, s1 = seed_workspace(ws, 0), seed_workspace(ws, 1)
    assert s0.results == tmp_path / "nnUNet_results" / "seed0" and s1.results.name == "seed1"
    assert s0.results.is_dir() and (s0.raw, s0.preprocessed) == (ws.raw, ws.preprocessed)
    assert ws.results == tmp_path / "nnUNet_results"  # the original is unchanged


def test_training_seed_makes_initialisation_repeatable():
    import torch

    from nnunet_thrombus.training.run import seed_everything

    def draw(seed):
        seed_everything(seed)
        return torch.rand(3), np.random.rand(3)

    a, b, c = draw(3), draw(3), draw(4)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


def test_epoch_times_reads_newest_log(tmp_path):
    fold = tmp_path / "fold_0"
    fold.mkdir()
    (fold / "training_log_2020_01_01_00_00_00.txt").write_text("x: Epoch time: 99.0 s\n")
    (fold / "training_log_2020_01_02_00_00_00.txt").write_text(
        "2020-01-02 00:00:01: Epoch time: 12.5 s \nlr 0.01\n2020-01-02 00:00:02: Epoch time: 7.25 s \n")
    assert epoch_times(tmp_path) == [12.5, 7.25]
    with pytest.raises(FileNotFoundError):
        epoch_times(tmp_path, fold=1)


def test_false_positive_components():
    ref = np.zeros((6, 8, 8), bool)
    ref[1:3, 1:3, 1:3] = True
    pred = np.zeros_like(ref)
    pred[2:4, 2:4, 2:4] = True  # overlaps the clot: not a false positive
    pred[5, 6, 6] = True  # isolated voxel
    pred[0, 6, 0] = pred[1, 7, 1] = True  # two voxels touching by a corner: one component (26-connectivity)
    assert false_positive_components(pred, ref) == 2
    assert false_positive_components(pred, np.zeros_like(ref)) == 3  # clot-free: every component counts
    assert false_positive_components(np.zeros_like(ref), ref) == 0
    with pytest.raises(ValueError, match="shape"):
        false_positive_components(pred, ref[:-1])


def _cost():
    c = VariantCost()
    c.train_steps = [StepCost(10.0, 500.0), StepCost(2.0, 900.0), StepCost(30.0, 700.0)]
    c.predict_steps = [StepCost(6.0, 300.0), StepCost(9.0, 400.0)]
    c.epoch_seconds = [[4.0, 6.0], [10.0, 12.0]]
    return c


def test_cost_columns_sum_stages():
    cols = cost_columns(_cost(), n_cases=3)
    assert cols == {"train_epoch_s": 16.0, "train_total_s": 42.0, "train_peak_mb": 900.0, "infer_case_s": 5.0,
                    "infer_peak_mb": 400.0}
    with pytest.raises(ValueError, match="n_cases"):
        cost_columns(_cost(), 0)


def _cases(dice, hd95, site=None, size=None):
    """Per-case rows as read_case_rows gives them; case 'free' is clot-free."""
    rows = [{"case": f"c{i}", "dice": d, "hd95_mm": h, "ref_present": True, "site": (site or [None] * 9)[i],
             "size_group": (size or [None] * 9)[i]} for i, (d, h) in enumerate(zip(dice, hd95))]
    return rows + [{"case": "free", "dice": 0.0, "hd95_mm": float("nan"), "ref_present": False, "site": None,
                    "size_group": None}]


def test_paired_comparisons_and_seed_spread_by_hand():
    ours = _cases([0.9, 0.8, 0.7, 0.6, 0.5], [2.0, 3.0, 4.0, 5.0, 6.0])
    other = _cases([0.8, 0.6, 0.4, 0.2, 0.0], [2.0, 3.0, 4.0, 5.0, float("nan")])
    ours1 = _cases([0.9, 0.8, 0.7, 0.6, 0.45], [2.0, 3.0, 4.0, 5.0, 6.0])
    rows = [{"variant": n} for n in ("other", OURS, "ours_seed1")]
    spread = add_comparisons(rows, {"other": other, OURS: ours, "ours_seed1": ours1}, OURS, SEED_PAIRS,
                             n_resamples=2000)
    r = rows[0]
    # ours - other = 0.1, 0.2, 0.3, 0.4, 0.5 on the five clots: median 0.3, all positive -> exact p = 2/32
    assert r["dice_diff"] == pytest.approx(0.3) and r["dice_diff_p"] == pytest.approx(0.0625)
    assert r["dice_diff_n"] == 5 and r["dice_diff_ci_low"] == pytest.approx(0.1)
    # HD95: four pairs, all differences zero (the NaN pair is dropped): p = 1
    assert (r["hd95_diff"], r["hd95_diff_n"], r["hd95_diff_p"]) == (0.0, 4, 1.0)
    assert math.isnan(rows[1]["dice_diff"]) and rows[1]["beyond_seed_spread"] == ""
    # seed spread of ours: seed1 - seed0 = (0, 0, 0, 0, -0.05): median 0 -> |0.3| is beyond it
    assert spread["ours"]["rows"] == [OURS, "ours_seed1"]
    assert spread["ours"]["stats"]["dice"]["median"] == pytest.approx(0.0)
    assert r["beyond_seed_spread"] == "yes" and rows[2]["beyond_seed_spread"] == "no"
    with pytest.raises(ValueError, match="same test cases"):
        add_comparisons(rows[:2], {"other": other[:-1], OURS: ours}, OURS, SEED_PAIRS)


def test_subgroup_rows():
    cases = _cases([0.9, 0.5, 0.7], [1.0, 1.0, 1.0], site=["M1", "M1", "ICA"], size=["<30 mm3", ">=30 mm3",
                                                                                     ">=30 mm3"])
    rows = subgroup_rows("v", cases, n_resamples=500)
    got = {(r["group_by"], r["group"]): (r["n"], r["dice_median"]) for r in rows}
    assert got == {("site", "ICA"): (1, 0.7), ("site", "M1"): (2, pytest.approx(0.7)),
                   ("size_group", "<30 mm3"): (1, 0.9), ("size_group", ">=30 mm3"): (2, pytest.approx(0.6))}


def _row(variant, label, dice, cost):
    r = {"variant": variant, "label": label, "trainer": "t", "plans": "ThrombusPlans", "seed": 0,
         **{k: cost for k in COSTS}}
    r.update(dice_median=dice, dice_ci_low=0.25, dice_ci_high=0.75, dice_q1=0.3, dice_q3=0.7, hd95_mm=1.0,
             hd95_ci_low=0.5, hd95_ci_high=2.0, assd_mm=0.5, volume_r=float("nan"), length_r=0.9,
             fp_components_per_case=0.25, clot_free_specificity=0.9, clot_free_spec_ci_low=0.6,
             clot_free_spec_ci_high=0.98, lvo_sensitivity=1.0, lvo_sens_ci_low=0.7, lvo_sens_ci_high=1.0,
             lvo_specificity=0.5, lvo_spec_ci_low=0.2, lvo_spec_ci_high=0.8, n_test=40, n_with_clot=30,
             n_clot_free=10, **{k: float("nan") for k in EVIDENCE})
    r.update(m2_aca_detection=0.75, fp_calls_per_clot_free_head=0.2)
    return r


def test_ratios_and_markdown():
    rows = [_row(REFERENCE, "vanilla", 0.5, 2.0), _row(OURS, "ours", 0.6, 3.0)]
    add_ratios(rows, REFERENCE)
    assert all(rows[0][f"{k}_ratio"] == 1.0 for k in COSTS)
    assert all(rows[1][f"{k}_ratio"] == 1.5 for k in COSTS)
    cases = {REFERENCE: _cases([0.5, 0.4, 0.3], [1.0, 2.0, 3.0], site=["M1", "M2", "ICA"]),
             OURS: _cases([0.6, 0.6, 0.6], [1.0, 1.0, 1.0], site=["M1", "M2", "ICA"])}
    add_comparisons(rows, cases, OURS, SEED_PAIRS, n_resamples=200)
    assert set(COLUMNS) <= set(rows[1]) and set(COLUMNS) <= set(rows[0])
    sub = subgroup_rows(REFERENCE, cases[REFERENCE], 200) + subgroup_rows(OURS, cases[OURS], 200)
    md = to_markdown(rows, ["# title"], sub, {}, ours_label="ours")
    assert "| ours | 60.0 (25.0-75.0) | 30.0-70.0 | 1.00 (0.50-2.00) | 0.25 | 0.90 (0.60-0.98) (n=10) |" in md
    # ours - vanilla: Dice +10, +20, +30 points (median +20); HD95 0, -1, -2 mm (median -1)
    assert "| vanilla | +20.0 (+10.0 to +30.0) | 0.250 | -1.00 (-2.00 to +0.00) | 0.500 (3) | n/a |" in md
    assert "| vanilla | 30.0 (1) | 50.0 (1) | 40.0 (1) |" in md  # by site: ICA, M1, M2
    assert "| ours | 0.75 | 0.20 | n/a | n/a | n/a | n/a |" in md  # trust table: no predict reports here
    assert "3.0 (1.50x)" in md
    with pytest.raises(ValueError, match="reference"):
        add_ratios(rows[1:], REFERENCE)
    assert math.isnan(add_ratios([dict(rows[0], train_epoch_s=0.0)], REFERENCE)[0]["train_epoch_s_ratio"])


def _fake_config(arch_kwargs):
    return SimpleNamespace(network_arch_class_name="nnunet_thrombus.networks.coarse_net.ThrombusCoarseUNet",
                           network_arch_init_kwargs=arch_kwargs,
                           network_arch_init_kwargs_req_import=["conv_op", "norm_op", "dropout_op", "nonlin"],
                           previous_stage_name=None, data_identifier="ThrombusPlans_3d_fullres", batch_dice=True,
                           pool_op_kernel_sizes=[[1, 1, 1], [1, 2, 2], [2, 2, 2]])


def test_plain_our_loss_row_is_plain_conv_unet_with_our_loss():
    """ThrombusCascadeTrainer_plain on 3d_fullres builds, from the same plans and seed, the very network vanilla
    nnU-Net builds (same weights, same output); only the loss differs (present-class Dice, no zeroed
    deep-supervision level)."""
    import torch
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from nnunet_thrombus.training.losses import PresentClassSoftDiceLoss
    from nnunet_thrombus.training.variants import ThrombusCascadeTrainer_plain, nnUNetTrainer_envSchedule

    # plans-style arch kwargs (dotted class paths), as apply-plans writes them
    arch = dict(n_stages=3, features_per_stage=[4, 8, 16], conv_op="torch.nn.modules.conv.Conv3d",
                kernel_sizes=[[3, 3, 3]] * 3, strides=[1, [1, 2, 2], 2], n_conv_per_stage=2,
                n_conv_per_stage_decoder=[1, 1], conv_bias=True,
                norm_op="torch.nn.modules.instancenorm.InstanceNorm3d", norm_op_kwargs={"eps": 1e-5, "affine": True},
                dropout_op=None, dropout_op_kwargs=None, nonlin="torch.nn.LeakyReLU", nonlin_kwargs={"inplace": True},
                use_cbam=True, use_pyramid_fusion=True)
    cm = _fake_config(arch)
    nets = []
    for cls in (ThrombusCascadeTrainer_plain, nnUNetTrainer_envSchedule):
        torch.manual_seed(0)
        nets.append(cls.build_network_architecture(None, cm, 2, 2, True).eval())
    ours, vanilla = nets
    assert type(vanilla).__name__ == "PlainConvUNet"
    a, b = ours.state_dict(), vanilla.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 2, 8, 12, 12)
    with torch.no_grad():
        for oa, ob in zip(ours(x), vanilla(x)):
            torch.testing.assert_close(oa, ob, rtol=0, atol=0)

    def loss_of(cls):
        t = object.__new__(cls)
        t.label_manager = SimpleNamespace(has_regions=False, ignore_label=None)
        t.configuration_manager, t.is_ddp, t.enable_deep_supervision = cm, False, True
        t.device = torch.device("cpu")
        t._get_deep_supervision_scales = lambda: [[1, 1, 1], [1, 0.5, 0.5], [0.5, 0.25, 0.25]]
        return cls._build_loss(t)

    ours_loss, vanilla_loss = loss_of(ThrombusCascadeTrainer_plain), loss_of(nnUNetTrainer_envSchedule)
    assert isinstance(ours_loss.loss.dc, PresentClassSoftDiceLoss)
    assert type(vanilla_loss.loss.dc) is MemoryEfficientSoftDiceLoss
    assert ours_loss.weight_factors == pytest.approx((4 / 7, 2 / 7, 1 / 7))  # halving, normalised, none zeroed
    assert vanilla_loss.weight_factors == pytest.approx((2 / 3, 1 / 3, 0.0))  # nnU-Net zeroes the lowest level


def test_prepare_data_generates_the_benchmark_cohort(tmp_path, monkeypatch):
    """--synthetic N --test M: write_cohort gets the benchmark test profile and M (default: the budget's test part,
    at most half the cohort); nonsense M is refused before generating anything."""
    import nnunet_thrombus.benchmark.runner as runner
    from nnunet_thrombus.benchmark.runner import prepare_data

    calls = []

    def fake_write_cohort(out_dir, spec, **kw):
        calls.append(dict(kw, n_cases=spec.n_cases, n_test=spec.n_test, test_profile=spec.test_profile,
                          preset=spec.preset, seed=spec.seed))
        (out_dir / "nnUNet_raw" / "Dataset501_SynthThrombus").mkdir(parents=True, exist_ok=True)
        return {"composition_missing": []}

    monkeypatch.setattr(runner, "write_cohort", fake_write_cohort)
    monkeypatch.delenv("nnUNet_raw", raising=False)
    raw, name = prepare_data(None, tmp_path / "a", 501, get_budget("cpu"), 80, None, 3, False)
    assert name == "Dataset501_SynthThrombus" and raw == tmp_path / "a" / "synth" / "nnUNet_raw"
    assert (calls[0]["n_cases"], calls[0]["n_test"], calls[0]["test_profile"], calls[0]["preset"],
            calls[0]["seed"]) == (80, 40, "benchmark", "demo", 3)
    prepare_data(None, tmp_path / "b", 501, get_budget("cpu"), 50, "tiny", 0, False, n_test=12)
    assert (calls[1]["n_cases"], calls[1]["n_test"], calls[1]["preset"]) == (50, 12, "tiny")
    prepare_data(None, tmp_path / "c", 501, get_budget("cpu"), 30, None, 0, False)
    assert calls[2]["n_test"] == 15  # half of 30: the budget's 40 would leave nothing to train on
    for bad in (30, 0):
        with pytest.raises(ValueError, match="--test"):
            prepare_data(None, tmp_path / "d", 501, get_budget("cpu"), 30, None, 0, False, n_test=bad)
    assert len(calls) == 3
    with pytest.raises(ValueError, match="--synthetic N"):
        prepare_data(tmp_path / "none", tmp_path / "e", 501, get_budget("cpu"), None, None, 0, False)


def test_run_measured_peak_is_the_command_not_ours(tmp_path):
    """A child's peak RSS must not inherit the benchmark process's own size (Linux counts a forked child from its
    parent's peak): with 400 MiB held here, a command that allocates about 50 MiB reports well under 400 MiB."""
    import sys

    from nnunet_thrombus.benchmark.runner import run_measured
    from nnunet_thrombus.training.workflow import NnunetWorkspace

    ws = NnunetWorkspace.under(tmp_path)
    ballast = np.ones(400 * 2 ** 20 // 8)  # 400 MiB touched in this process
    cost = run_measured(ws, [sys.executable, "-c", "b = bytearray(50 * 2 ** 20)"], "peak")
    assert 50 <= cost.peak_mb < 200 and cost.seconds > 0
    with pytest.raises(RuntimeError, match="command failed"):
        run_measured(ws, [sys.executable, "-c", "import sys; sys.exit(3)"], "fail")
    assert "exit(3)" in (ws.log_dir / "fail.log").read_text()
    del ballast
