"""The benchmark table: one row per variant; accuracy with confidence intervals, the paired comparison with
ours, subgroups, the seed-to-seed spread, and costs.

Columns of ``benchmark.csv`` (the Markdown shows the same with units):

- accuracy (cases with a reference thrombus unless stated): ``dice_median`` with its percentile-bootstrap 95% CI
  ``dice_ci_low``/``dice_ci_high`` (:data:`~nnunet_thrombus.evaluation.statistics.BOOTSTRAP_RESAMPLES` resamples,
  seed 0), ``dice_q1``/``dice_q3``; ``hd95_mm`` (median over cases where both masks are non-empty, DESIGN.md) with
  ``hd95_ci_low``/``hd95_ci_high``; ``assd_mm``; ``volume_r``/``length_r`` (Pearson);
  ``fp_components_per_case`` (mean over all test cases of the predicted components that touch no reference voxel,
  :mod:`~nnunet_thrombus.benchmark.case_metrics`); ``clot_free_specificity`` (clot-free test heads with no reported
  thrombus / clot-free test heads) with its Wilson 95% CI; ``lvo_sensitivity``/``lvo_specificity`` (all test
  cases) with Wilson 95% CIs; ``n_test``, ``n_with_clot``, ``n_clot_free``;
- paired comparison with ours (:data:`~nnunet_thrombus.benchmark.budgets.OURS`), over the same test cases:
  ``dice_diff`` = median of per-case (ours - this row) Dice, its bootstrap 95% CI and the two-sided Wilcoxon
  signed-rank ``dice_diff_p``; the same for HD95 (``hd95_diff*``, over cases where both rows have an HD95;
  a positive HD95 difference means ours is farther off) with ``hd95_diff_n`` pairs; ``beyond_seed_spread``:
  |median Dice difference| larger than the largest seed-to-seed |median Dice difference| of this run;
- cost: ``train_epoch_s``, ``train_total_s``, ``train_peak_mb``, ``infer_case_s``, ``infer_peak_mb``, each with a
  ``*_ratio`` column = value / value of the reference row (``vanilla_3d_fullres_seed0``), which reads 1.0.

``subgroups.csv``: median Dice (bootstrap 95% CI) per row by occlusion site (metadata ``site``) and by reference
clot volume (``<30 mm3`` / ``>=30 mm3``). ``seed_spread``: for each model trained with two seeds, the paired
(seed 1 - seed 0) difference, with the same statistics as the comparison with ours.
"""
from __future__ import annotations

import math

import numpy as np

from nnunet_thrombus.evaluation.evaluate import evidence_columns
from nnunet_thrombus.evaluation.statistics import BOOTSTRAP_RESAMPLES, median_ci, paired_difference, subgroup_medians

ACCURACY = ["dice_median", "dice_ci_low", "dice_ci_high", "dice_q1", "dice_q3", "hd95_mm", "hd95_ci_low",
            "hd95_ci_high", "assd_mm", "volume_r", "length_r", "fp_components_per_case", "clot_free_specificity",
            "clot_free_spec_ci_low", "clot_free_spec_ci_high", "lvo_sensitivity", "lvo_sens_ci_low",
            "lvo_sens_ci_high", "lvo_specificity", "lvo_spec_ci_low", "lvo_spec_ci_high", "n_test", "n_with_clot",
            "n_clot_free"]
#: the trust figures (``evaluation.evaluate.evidence_columns``); the uncertainty and review ones need
#: ``nnunet_thrombus predict`` reports: our cascade rows have them, the ``nnUNetv2_predict`` rows read NaN
EVIDENCE = ["m2_aca_detection", "fp_calls_per_clot_free_head", "uncertainty_spearman_rho",
            "uncertainty_auroc_poor_dice", "review_sensitivity", "review_specificity", "dropped_on_reference"]
COMPARISON = ["dice_diff", "dice_diff_ci_low", "dice_diff_ci_high", "dice_diff_p", "dice_diff_n", "hd95_diff",
              "hd95_diff_ci_low", "hd95_diff_ci_high", "hd95_diff_p", "hd95_diff_n", "beyond_seed_spread"]
COSTS = ["train_epoch_s", "train_total_s", "train_peak_mb", "infer_case_s", "infer_peak_mb"]
COLUMNS = (["variant", "label", "trainer", "plans", "seed"] + ACCURACY + EVIDENCE + COMPARISON
           + [c for k in COSTS for c in (k, f"{k}_ratio")])
#: the subgroups of ``subgroups.csv``: (case-row key, title)
SUBGROUP_KEYS = (("site", "site"), ("size_group", "clot volume"))
SUBGROUP_COLUMNS = ["variant", "group_by", "group", "n", "dice_median", "dice_ci_low", "dice_ci_high"]
NAN = float("nan")


def accuracy_columns(summary: dict, case_rows: list[dict], fp_per_case: dict) -> dict:
    """The accuracy columns from an ``evaluate_folder`` summary, its per-case rows (``read_case_rows``) and the
    false-positive components per case (``{case: n}``)."""
    m, c = summary["metrics"], summary["correlation"]
    lvo, occ = summary["detection"]["lvo_vs_non_lvo"], summary["detection"]["occlusion_vs_none"]
    seg = [r for r in case_rows if r["ref_present"]]
    dice = median_ci([r["dice"] for r in seg])
    hd95 = median_ci([r["hd95_mm"] for r in seg])
    fps = [fp_per_case[r["case"]] for r in case_rows if r["case"] in fp_per_case]
    return {"dice_median": dice["median"], "dice_ci_low": dice["ci"][0], "dice_ci_high": dice["ci"][1],
            "dice_q1": m["dice"]["q1"], "dice_q3": m["dice"]["q3"],
            "hd95_mm": hd95["median"], "hd95_ci_low": hd95["ci"][0], "hd95_ci_high": hd95["ci"][1],
            "assd_mm": m["assd_mm"]["median"], "volume_r": c["volume"]["pearson"]["r"],
            "length_r": c["length"]["pearson"]["r"],
            "fp_components_per_case": float(np.mean(fps)) if fps else NAN,
            "clot_free_specificity": occ["specificity"], "clot_free_spec_ci_low": occ["specificity_ci"][0],
            "clot_free_spec_ci_high": occ["specificity_ci"][1],
            "lvo_sensitivity": lvo["sensitivity"], "lvo_sens_ci_low": lvo["sensitivity_ci"][0],
            "lvo_sens_ci_high": lvo["sensitivity_ci"][1], "lvo_specificity": lvo["specificity"],
            "lvo_spec_ci_low": lvo["specificity_ci"][0], "lvo_spec_ci_high": lvo["specificity_ci"][1],
            "n_test": summary["n_cases"], "n_with_clot": len(seg), "n_clot_free": occ["tn"] + occ["fp"]}


def evidence(summary: dict) -> dict:
    """The :data:`EVIDENCE` columns of an ``evaluate_folder`` summary (NaN where the summary lacks them)."""
    cols = evidence_columns(summary)
    return {k: cols.get(k, NAN) for k in EVIDENCE}


def cost_columns(cost, n_cases: int) -> dict:
    """The cost columns (no ratios yet) of a :class:`~nnunet_thrombus.benchmark.runner.VariantCost`."""
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    return {"train_epoch_s": float(sum(np.mean(e) for e in cost.epoch_seconds)),
            "train_total_s": float(sum(s.seconds for s in cost.train_steps)),
            "train_peak_mb": float(max(s.peak_mb for s in cost.train_steps)),
            "infer_case_s": float(sum(s.seconds for s in cost.predict_steps)) / n_cases,
            "infer_peak_mb": float(max(s.peak_mb for s in cost.predict_steps))}


def add_ratios(rows: list[dict], reference: str) -> list[dict]:
    """Add ``<cost>_ratio`` = value / reference row's value to every row (in place; returns ``rows``)."""
    ref = [r for r in rows if r["variant"] == reference]
    if len(ref) != 1:
        raise ValueError(f"need exactly one reference row {reference!r}, got variants {[r['variant'] for r in rows]}")
    for key in COSTS:
        base = ref[0][key]
        for r in rows:
            r[f"{key}_ratio"] = r[key] / base if base > 0 else NAN
    return rows


def _aligned(a_rows: list[dict], b_rows: list[dict], key: str, clots_only: bool = True) -> tuple[list, list]:
    """Values of ``key`` for the cases both row lists hold (with a reference clot when ``clots_only``), in the
    order of ``a_rows``. ``ValueError`` when the two rows were evaluated on different case sets."""
    b = {r["case"]: r for r in b_rows}
    if set(b) != {r["case"] for r in a_rows}:
        raise ValueError(f"paired comparison needs the same test cases in both rows; differing: "
                         f"{sorted(set(b) ^ {r['case'] for r in a_rows})}")
    xs, ys = [], []
    for r in a_rows:
        if clots_only and not r["ref_present"]:
            continue
        xs.append(r[key])
        ys.append(b[r["case"]][key])
    return xs, ys


def paired_stats(a_rows: list[dict], b_rows: list[dict], n_resamples: int = BOOTSTRAP_RESAMPLES) -> dict:
    """Paired (a - b) per-case differences in Dice and HD95 over the cases with a reference clot:
    ``{"dice": paired_difference(...), "hd95_mm": paired_difference(...)}``."""
    return {key: paired_difference(*_aligned(a_rows, b_rows, key), n_resamples=n_resamples)
            for key in ("dice", "hd95_mm")}


def comparison_columns(stats: dict | None) -> dict:
    if stats is None:
        return {k: NAN for k in COMPARISON if k != "beyond_seed_spread"} | {"beyond_seed_spread": ""}
    d, h = stats["dice"], stats["hd95_mm"]
    return {"dice_diff": d["median"], "dice_diff_ci_low": d["ci"][0], "dice_diff_ci_high": d["ci"][1],
            "dice_diff_p": d["p"], "dice_diff_n": d["n"], "hd95_diff": h["median"], "hd95_diff_ci_low": h["ci"][0],
            "hd95_diff_ci_high": h["ci"][1], "hd95_diff_p": h["p"], "hd95_diff_n": h["n"], "beyond_seed_spread": ""}


def add_comparisons(rows: list[dict], cases: dict, ours: str, seed_pairs, n_resamples: int = BOOTSTRAP_RESAMPLES
                    ) -> dict:
    """Fill the comparison columns of every row (ours - row) and return the seed spread
    ``{model: {"rows": [seed0, seed1], "stats": paired (seed1 - seed0)}}`` for each seed pair that ran.

    ``cases``: ``{variant: per-case rows}``. ``beyond_seed_spread`` is ``yes``/``no`` when a seed spread exists
    (|median Dice difference| > the largest seed-to-seed |median Dice difference|), else empty.
    """
    spread = {}
    for first, second in seed_pairs:
        if first in cases and second in cases:
            spread[first.rsplit("_seed", 1)[0]] = {"rows": [first, second],
                                                   "stats": paired_stats(cases[second], cases[first], n_resamples)}
    widest = max((abs(s["stats"]["dice"]["median"]) for s in spread.values()
                  if not math.isnan(s["stats"]["dice"]["median"])), default=NAN)
    for r in rows:
        stats = None if ours not in cases or r["variant"] == ours else paired_stats(cases[ours], cases[r["variant"]],
                                                                                     n_resamples)
        r.update(comparison_columns(stats))
        if stats is not None and not math.isnan(widest) and not math.isnan(r["dice_diff"]):
            r["beyond_seed_spread"] = "yes" if abs(r["dice_diff"]) > widest else "no"
    return spread


def subgroup_rows(variant: str, case_rows: list[dict], n_resamples: int = BOOTSTRAP_RESAMPLES) -> list[dict]:
    """Rows of ``subgroups.csv`` for one variant: median Dice by site and by clot volume (cases with a clot)."""
    seg = [r for r in case_rows if r["ref_present"]]
    out = []
    for key, _ in SUBGROUP_KEYS:
        for group, s in subgroup_medians(seg, key, "dice", n_resamples=n_resamples).items():
            out.append({"variant": variant, "group_by": key, "group": group, "n": s["n"] + s["n_nan"],
                        "dice_median": s["median"], "dice_ci_low": s["ci"][0], "dice_ci_high": s["ci"][1]})
    return out


def _isnan(x) -> bool:
    return x is None or x == "" or (isinstance(x, float) and math.isnan(x))


def _f(x, fmt="{:.2f}") -> str:
    return "n/a" if x is None or x == "" or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _pct(x) -> str:
    return _f(None if x is None or (isinstance(x, float) and math.isnan(x)) else 100 * x, "{:.1f}")


def _ci(r: dict, key: str, lo: str, hi: str, pct: bool = False) -> str:
    f = _pct if pct else _f
    return f"{f(r[key])} ({f(r[lo])}-{f(r[hi])})"


def _p(p) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _diff(stats_cols: dict, key: str, pct: bool) -> str:
    f = (lambda v: _f(None if math.isnan(v) else 100 * v, "{:+.1f}")) if pct else (lambda v: _f(v, "{:+.2f}"))
    if math.isnan(stats_cols[key]):
        return "n/a"
    return f"{f(stats_cols[key])} ({f(stats_cols[key + '_ci_low'])} to {f(stats_cols[key + '_ci_high'])})"


def to_markdown(rows: list[dict], header: list[str], subgroups: list[dict] | None = None,
                seed_spread: dict | None = None, ours_label: str = "ours") -> str:
    """Markdown: ``header`` lines, then the accuracy table, the paired comparison with ours, the seed spread, the
    subgroup medians and the cost table (value and ratio to the reference)."""
    lines = list(header) + [
        "", "### Accuracy (95% CIs: bootstrap for medians, Wilson for proportions)", "",
        "| variant | Dice % median (95% CI) | Dice % IQR | HD95 mm median (95% CI) | FP components / case | "
        "clot-free specificity (95% CI) | LVO sensitivity (95% CI) | LVO specificity (95% CI) | volume r | "
        "length r |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {_ci(r, 'dice_median', 'dice_ci_low', 'dice_ci_high', pct=True)} | "
            f"{_pct(r['dice_q1'])}-{_pct(r['dice_q3'])} | {_ci(r, 'hd95_mm', 'hd95_ci_low', 'hd95_ci_high')} | "
            f"{_f(r['fp_components_per_case'])} | "
            f"{_ci(r, 'clot_free_specificity', 'clot_free_spec_ci_low', 'clot_free_spec_ci_high')} "
            f"(n={r['n_clot_free']}) | {_ci(r, 'lvo_sensitivity', 'lvo_sens_ci_low', 'lvo_sens_ci_high')} | "
            f"{_ci(r, 'lvo_specificity', 'lvo_spec_ci_low', 'lvo_spec_ci_high')} | {_f(r['volume_r'])} | "
            f"{_f(r['length_r'])} |")
    if any(k in r for r in rows for k in EVIDENCE):
        lines += ["", "### Detection of distal clots and trust", "",
                  "| variant | M2/ACA detection | FP calls per clot-free head | uncertainty vs Dice, Spearman rho | "
                  "AUROC of uncertainty for Dice < 0.6 | review sensitivity | review specificity |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['label']} | " + " | ".join(_f(r.get(k)) for k in EVIDENCE[:6]) + " |")
        lines.append("")
        lines.append("Uncertainty and review come from `nnunet_thrombus predict`'s report.json (one fold here, so the "
                     "uncertainty is the mean binary entropy in the clot, or the peak probability in a clot-free "
                     "head); rows predicted with `nnUNetv2_predict` (vanilla, our loss) have no report and read n/a.")
    lines += ["", f"### Paired per-case differences: {ours_label} minus each row", "",
              "Median of the per-case differences over test cases with a clot, bootstrap 95% CI, two-sided Wilcoxon "
              "signed-rank p. Dice in percentage points (positive: ours better); HD95 in mm over cases where both "
              "rows have one (positive: ours farther off).", "",
              "| row | Dice diff (95% CI) | p | HD95 diff mm (95% CI) | p (pairs) | beyond seed spread |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if _isnan(r.get("dice_diff_n", NAN)):
            continue  # ours itself, or no paired rows
        lines.append(f"| {r['label']} | {_diff(r, 'dice_diff', True)} | {_p(r['dice_diff_p'])} | "
                     f"{_diff(r, 'hd95_diff', False)} | {_p(r['hd95_diff_p'])} ({r['hd95_diff_n']}) | "
                     f"{r['beyond_seed_spread'] or 'n/a'} |")
    if seed_spread:
        lines += ["", "### Seed-to-seed spread (seed 1 minus seed 0, same cases)", "",
                  "| model | Dice diff (95% CI) | p | HD95 diff mm (95% CI) | p (pairs) |",
                  "| --- | --- | --- | --- | --- |"]
        for model, s in seed_spread.items():
            cols = comparison_columns(s["stats"])
            lines.append(f"| {model} | {_diff(cols, 'dice_diff', True)} | {_p(cols['dice_diff_p'])} | "
                         f"{_diff(cols, 'hd95_diff', False)} | {_p(cols['hd95_diff_p'])} ({cols['hd95_diff_n']}) |")
    if subgroups:
        for key, title in SUBGROUP_KEYS:
            groups = sorted({g["group"] for g in subgroups if g["group_by"] == key})
            if not groups:
                continue
            lines += ["", f"### Median Dice % by {title} (n cases)", "",
                      "| variant | " + " | ".join(groups) + " |", "| --- |" + " --- |" * len(groups)]
            labels = {r["variant"]: r["label"] for r in rows}
            for r in rows:
                cells = []
                for g in groups:
                    hit = [s for s in subgroups if s["variant"] == r["variant"] and s["group_by"] == key
                           and s["group"] == g]
                    cells.append(f"{_pct(hit[0]['dice_median'])} ({hit[0]['n']})" if hit else "n/a")
                lines.append(f"| {labels[r['variant']]} | " + " | ".join(cells) + " |")
    lines += ["", "### Cost (ratio to the reference row)", "",
              "| variant | train s/epoch (ratio) | train total s (ratio) | train peak MiB (ratio) | "
              "inference s/case (ratio) | inference peak MiB (ratio) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [f"{_f(r[k], '{:.1f}')} ({_f(r[f'{k}_ratio'])}x)" for k in COSTS]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
