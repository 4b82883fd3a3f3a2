"""Table-2-style summary of per-case evaluation rows, and its Markdown rendering.

Which cases enter which number (docs/metrics.md):
- segmentation metrics (Dice, HD95, ASSD, NSD) and volume/length agreement: cases whose reference
  has a thrombus; HD95/ASSD of cases with an empty prediction are NaN and counted in ``n_nan``;
- detection: all cases (occlusion vs no occlusion; LVO vs non-LVO, where non-LVO includes no occlusion);
- subgroups (site, size < 30 mm^3 vs larger by reference volume, isodense vs hyperdense, the metadata's size class
  and clot-free-with-calcification) when the rows carry them: Dice, detection, and false-positive calls (a clot
  called in a clot-free head of that subgroup);
- false-positive calls per clot-free head: all cases;
- trust (rows with an ``uncertainty``, from ``predict``'s reports): Spearman rho between uncertainty and Dice and the
  AUROC of the uncertainty for Dice < 0.6, both over cases with a reference clot (a missed clot counts, Dice 0);
  sensitivity and specificity of the ``review`` flag for bad cases (Dice < 0.6, a miss or a false-positive call),
  over all cases.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from nnunet_thrombus.evaluation.statistics import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bland_altman, median_iqr,
                                                   pearson, sensitivity_specificity, spearman)
from nnunet_thrombus.vocabulary import POOR_DICE

SEG_METRICS = ("dice", "hd95_mm", "assd_mm", "nsd_1mm")
MEASURES = ("ref_length_mm", "pred_length_mm", "length_error_mm", "abs_length_error_mm",
            "ref_volume_mm3", "pred_volume_mm3", "volume_error_mm3", "abs_volume_error_mm3")
GROUP_KEYS = ("site", "size_group", "density_group", "size_class", "clot_free_calcified")


def auroc(scores, positives, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
          seed: int = BOOTSTRAP_SEED) -> dict:
    """Area under the ROC curve of ``scores`` (higher = more likely positive) for boolean ``positives``: the share of
    (positive, negative) pairs the score orders correctly, ties counting one half (Mann-Whitney U / (n_pos n_neg)).

    ``ci``: percentile bootstrap interval, the positives and the negatives each resampled with replacement at their
    own count (``n_resamples`` draws from ``numpy.random.default_rng(seed)``, as ``statistics.bootstrap_ci``), so
    every resample has both classes. {"auroc", "ci": [low, high], "n_pos", "n_neg"}; NaN when either class is
    empty."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return {"auroc": float("nan"), "ci": [float("nan"), float("nan")], "n_pos": n_pos, "n_neg": n_neg}
    ranks = rankdata(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    # pair matrix: 1 where the positive scores above the negative, 1/2 for a tie; a resample weights its rows and
    # columns by how often each case was drawn
    pairs = (s[y][:, None] > s[~y][None, :]) + 0.5 * (s[y][:, None] == s[~y][None, :])
    rng = np.random.default_rng(seed)
    w_pos = np.stack([np.bincount(i, minlength=n_pos) for i in rng.integers(0, n_pos, (n_resamples, n_pos))])
    w_neg = np.stack([np.bincount(i, minlength=n_neg) for i in rng.integers(0, n_neg, (n_resamples, n_neg))])
    resampled = np.einsum("rp,pn,rn->r", w_pos, pairs, w_neg) / (n_pos * n_neg)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(resampled, [100 * alpha, 100 * (1 - alpha)])
    return {"auroc": float(u / (n_pos * n_neg)), "ci": [float(low), float(high)], "n_pos": n_pos, "n_neg": n_neg}


def trust_summary(rows: list[dict]) -> dict | None:
    """Uncertainty vs Dice and the review flag (module docstring); None when no row has an uncertainty."""
    rated = [r for r in rows if r.get("uncertainty") is not None]
    if not rated:
        return None
    seg = [r for r in rated if r["ref_present"]]
    out = {"n_cases": len(rated),
           "spearman_vs_dice": spearman([r["uncertainty"] for r in seg], [r["dice"] for r in seg]),
           "auroc_poor_dice": auroc([r["uncertainty"] for r in seg], [r["dice"] < POOR_DICE for r in seg]),
           "review": _counts(rated, "bad", "review"),
           "n_review": sum(bool(r["review"]) for r in rated),
           "dropped_on_reference": sum(bool(r.get("dropped_on_reference")) for r in rated)}
    out["review"]["n_bad"] = sum(bool(r["bad"]) for r in rated)
    return out


def false_positives(rows: list[dict]) -> dict:
    """False-positive calls (a clot called in a clot-free head): count, clot-free heads, and their ratio."""
    free = [r for r in rows if not r["ref_present"]]
    n_fp = sum(bool(r["pred_present"]) for r in free)
    return {"calls": n_fp, "clot_free_heads": len(free),
            "per_clot_free_head": n_fp / len(free) if free else float("nan")}


def _counts(rows, truth: str, pred: str) -> dict:
    c = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for r in rows:
        t, p = bool(r[truth]), bool(r[pred])
        c["tp" if t and p else "fn" if t else "fp" if p else "tn"] += 1
    return sensitivity_specificity(**c)


def summarise(rows: list[dict]) -> dict:
    """Summary dict of per-case rows (see module docstring)."""
    seg = [r for r in rows if r["ref_present"]]
    out = {"n_cases": len(rows), "n_with_reference_thrombus": len(seg), "metrics": {}, "correlation": {},
           "bland_altman": {}, "detection": {}, "subgroups": {}}
    for key in SEG_METRICS + MEASURES:
        out["metrics"][key] = median_iqr([r[key] for r in seg])
    for q in ("length", "volume"):
        unit = "mm" if q == "length" else "mm3"
        ref = [r[f"ref_{q}_{unit}"] for r in seg]
        pred = [r[f"pred_{q}_{unit}"] for r in seg]
        out["correlation"][q] = {"pearson": pearson(ref, pred), "spearman": spearman(ref, pred)}
        out["bland_altman"][q] = bland_altman(ref, pred)
    out["detection"]["occlusion_vs_none"] = _counts(rows, "ref_present", "pred_present")
    out["detection"]["lvo_vs_non_lvo"] = _counts(rows, "ref_lvo", "pred_lvo")
    out["false_positives"] = false_positives(rows)
    out["trust"] = trust_summary(rows)
    for key in GROUP_KEYS:
        values = sorted({str(r[key]) for r in rows if r.get(key) not in (None, "")})
        if not values:
            continue
        out["subgroups"][key] = {}
        for v in values:
            sub = [r for r in rows if str(r.get(key)) == v]
            sub_seg = [r for r in sub if r["ref_present"]]
            out["subgroups"][key][v] = {
                "n": len(sub), "dice": median_iqr([r["dice"] for r in sub_seg]),
                "detection": _counts(sub, "ref_present", "pred_present"),
                "false_positives": false_positives(sub),
            }
    return out


def _fmt(x, digits=2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _miqr(s: dict, scale: float = 1.0, digits: int = 2) -> str:
    if s["n"] == 0:
        return "n/a"
    return f"{_fmt(s['median'] * scale, digits)} ({_fmt(s['q1'] * scale, digits)} to {_fmt(s['q3'] * scale, digits)})"


def _pct_ci(d: dict, key: str) -> str:
    num = d["tp"] if key == "sensitivity" else d["tn"]
    den = d["tp"] + d["fn"] if key == "sensitivity" else d["tn"] + d["fp"]
    if den == 0:
        return "n/a"
    lo, hi = d[f"{key}_ci"]
    return f"{100 * d[key]:.1f}% ({num}/{den}; 95% CI {100 * lo:.1f}-{100 * hi:.1f})"


def to_markdown(summary: dict) -> str:
    """A pasteable Markdown table of the summary (Table 2 of the paper, plus detection and subgroups)."""
    m = summary["metrics"]
    lines = [f"Cases: {summary['n_cases']} ({summary['n_with_reference_thrombus']} with a reference thrombus)", "",
             "| metric | median (IQR) |", "| --- | --- |"]
    labels = [("dice", "Dice (%)", 100.0), ("assd_mm", "ASSD (mm)", 1.0), ("hd95_mm", "HD95 (mm)", 1.0),
              ("nsd_1mm", "NSD@1mm (%)", 100.0), ("ref_length_mm", "Reference length (mm)", 1.0),
              ("pred_length_mm", "Prediction length (mm)", 1.0), ("length_error_mm", "Length difference (mm)", 1.0),
              ("abs_length_error_mm", "Absolute length difference (mm)", 1.0),
              ("ref_volume_mm3", "Reference volume (mm^3)", 1.0), ("pred_volume_mm3", "Prediction volume (mm^3)", 1.0),
              ("volume_error_mm3", "Volume difference (mm^3)", 1.0),
              ("abs_volume_error_mm3", "Absolute volume difference (mm^3)", 1.0)]
    for key, label, scale in labels:
        extra = f" ({m[key]['n_nan']} undefined)" if m[key]["n_nan"] else ""
        lines.append(f"| {label} | {_miqr(m[key], scale)}{extra} |")
    for q in ("length", "volume"):
        c = summary["correlation"][q]
        lines.append(f"| {q.capitalize()} correlation, Pearson r (p) | {_fmt(c['pearson']['r'])} "
                     f"(p={_fmt(c['pearson']['p'], 3)}) |")
        lines.append(f"| {q.capitalize()} correlation, Spearman r (p) | {_fmt(c['spearman']['r'])} "
                     f"(p={_fmt(c['spearman']['p'], 3)}) |")
    lines += ["", "| detection | sensitivity | specificity |", "| --- | --- | --- |"]
    for key, label in (("occlusion_vs_none", "occlusion vs no occlusion"), ("lvo_vs_non_lvo", "LVO vs non-LVO")):
        d = summary["detection"][key]
        lines.append(f"| {label} | {_pct_ci(d, 'sensitivity')} | {_pct_ci(d, 'specificity')} |")
    fp = summary.get("false_positives")
    if fp:
        lines.append(f"| false-positive calls per clot-free head | {fp['calls']}/{fp['clot_free_heads']} = "
                     f"{_fmt(fp['per_clot_free_head'])} | |")
    for key, groups in summary["subgroups"].items():
        lines += ["", f"| {key} | n | Dice (%) median (IQR) | detection sensitivity | false-positive calls |",
                  "| --- | --- | --- | --- | --- |"]
        for v, g in groups.items():
            f = g.get("false_positives") or {"calls": 0, "clot_free_heads": 0}
            lines.append(f"| {v} | {g['n']} | {_miqr(g['dice'], 100.0)} | {_pct_ci(g['detection'], 'sensitivity')} | "
                         f"{f['calls']}/{f['clot_free_heads']} clot-free |")
    trust = summary.get("trust")
    if trust:
        sp, au, rv = trust["spearman_vs_dice"], trust["auroc_poor_dice"], trust["review"]
        lines += ["", f"Uncertainty and review ({trust['n_cases']} cases with a report)", "",
                  "| measure | value |", "| --- | --- |",
                  f"| Spearman rho, uncertainty vs Dice (n={sp['n']}) | {_fmt(sp['r'])} (p={_fmt(sp['p'], 3)}) |",
                  f"| AUROC of uncertainty for Dice < {POOR_DICE:g} ({au['n_pos']} poor / {au['n_neg']} good) | "
                  f"{_fmt(au['auroc'])} (95% CI {_fmt(au['ci'][0])}-{_fmt(au['ci'][1])}) |",
                  f"| review flag: sensitivity for bad cases | {_pct_ci(rv, 'sensitivity')} |",
                  f"| review flag: specificity | {_pct_ci(rv, 'specificity')} |",
                  f"| cases flagged for review | {trust['n_review']} |",
                  f"| cases where post-processing dropped a component over the reference | "
                  f"{trust['dropped_on_reference']} |"]
    raters = summary.get("raters")
    if raters:
        lines += ["", f"Rater study ({raters['n_cases']} cases, STAPLE consensus, threshold 0.5)", "",
                  "| segmenter | Dice vs consensus (%) median (IQR) |", "| --- | --- |"]
        for name, s in raters["dice_vs_consensus"].items():
            lines.append(f"| {name} | {_miqr(s, 100.0)} |")
    return "\n".join(lines) + "\n"
