"""The benchmark table: one row per variant, accuracy from ``evaluate_folder`` and costs from the runner.

Columns (CSV names; the Markdown table shows the same with units):

- accuracy: ``dice_median``, ``dice_q1``, ``dice_q3`` (cases with a reference thrombus), ``hd95_mm``, ``assd_mm``
  (medians; NaN when no case has both masks non-empty), ``volume_r``, ``length_r`` (Pearson), ``lvo_sensitivity``,
  ``lvo_specificity`` (LVO vs non-LVO over all test cases);
- cost: ``train_epoch_s``, ``train_total_s``, ``train_peak_mb``, ``infer_case_s``, ``infer_peak_mb``, each with a
  ``*_ratio`` column = value / value of the reference row (``vanilla_3d_fullres``), so the reference reads 1.0.
"""
from __future__ import annotations

import math

import numpy as np

ACCURACY = ["dice_median", "dice_q1", "dice_q3", "hd95_mm", "assd_mm", "volume_r", "length_r", "lvo_sensitivity",
            "lvo_specificity", "n_test"]
COSTS = ["train_epoch_s", "train_total_s", "train_peak_mb", "infer_case_s", "infer_peak_mb"]
COLUMNS = ["variant", "label", "trainer"] + ACCURACY + [c for k in COSTS for c in (k, f"{k}_ratio")]


def accuracy_columns(summary: dict) -> dict:
    """The accuracy columns from an ``evaluate_folder`` summary."""
    m, c, d = summary["metrics"], summary["correlation"], summary["detection"]["lvo_vs_non_lvo"]
    return {"dice_median": m["dice"]["median"], "dice_q1": m["dice"]["q1"], "dice_q3": m["dice"]["q3"],
            "hd95_mm": m["hd95_mm"]["median"], "assd_mm": m["assd_mm"]["median"],
            "volume_r": c["volume"]["pearson"]["r"], "length_r": c["length"]["pearson"]["r"],
            "lvo_sensitivity": d["sensitivity"], "lvo_specificity": d["specificity"], "n_test": summary["n_cases"]}


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
            r[f"{key}_ratio"] = r[key] / base if base > 0 else float("nan")
    return rows


def _f(x, fmt="{:.2f}") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def to_markdown(rows: list[dict], header: list[str]) -> str:
    """Markdown: ``header`` lines, the accuracy table and the cost table (value and ratio to the reference)."""
    lines = list(header) + ["", "| variant | Dice % median (IQR) | HD95 mm | ASSD mm | volume r | length r | "
                                "LVO sens | LVO spec |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        dice = (f"{_f(100 * r['dice_median'], '{:.1f}')} ({_f(100 * r['dice_q1'], '{:.1f}')}-"
                f"{_f(100 * r['dice_q3'], '{:.1f}')})")
        lines.append(f"| {r['label']} | {dice} | {_f(r['hd95_mm'])} | {_f(r['assd_mm'])} | {_f(r['volume_r'])} | "
                     f"{_f(r['length_r'])} | {_f(r['lvo_sensitivity'])} | {_f(r['lvo_specificity'])} |")
    lines += ["", "| variant | train s/epoch (ratio) | train total s (ratio) | train peak MiB (ratio) | "
                  "inference s/case (ratio) | inference peak MiB (ratio) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [f"{_f(r[k], '{:.1f}')} ({_f(r[f'{k}_ratio'])}x)" for k in COSTS]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
