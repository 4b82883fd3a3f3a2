"""Summary statistics for evaluation tables (DESIGN.md sec 5).

All functions take plain sequences of numbers; NaN entries are dropped where stated.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats


def _finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    return arr[np.isfinite(arr)]


def median_iqr(values) -> dict:
    """Median and interquartile range (25th, 75th percentile, linear interpolation) of the finite
    values; ``n`` counts them and ``n_nan`` the dropped NaN/inf entries. All NaN when none is finite."""
    arr = np.asarray(values, dtype=float).reshape(-1)
    fin = arr[np.isfinite(arr)]
    if fin.size == 0:
        nan = float("nan")
        return {"median": nan, "q1": nan, "q3": nan, "n": 0, "n_nan": int(arr.size)}
    q1, med, q3 = np.percentile(fin, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "n": int(fin.size),
            "n_nan": int(arr.size - fin.size)}


def _paired(x, y):
    x = np.asarray(x, dtype=float).reshape(-1)
    y = np.asarray(y, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def pearson(x, y) -> dict:
    """Pearson r and two-sided p over pairs where both are finite; NaN with fewer than 3 pairs or
    constant input."""
    x, y = _paired(x, y)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": float("nan"), "p": float("nan"), "n": int(x.size)}
    res = stats.pearsonr(x, y)
    return {"r": float(res.statistic), "p": float(res.pvalue), "n": int(x.size)}


def spearman(x, y) -> dict:
    """Spearman rho and two-sided p over finite pairs; NaN with fewer than 3 pairs or constant input."""
    x, y = _paired(x, y)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"r": float("nan"), "p": float("nan"), "n": int(x.size)}
    res = stats.spearmanr(x, y)
    return {"r": float(res.statistic), "p": float(res.pvalue), "n": int(x.size)}


def wilson_ci(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when ``total`` is 0."""
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"need 0 <= successes <= total, got successes={successes}, total={total}")
    if total == 0:
        return float("nan"), float("nan")
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = successes / total
    denom = 1.0 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def sensitivity_specificity(tp: int, fn: int, fp: int, tn: int, confidence: float = 0.95) -> dict:
    """Sensitivity TP/(TP+FN) and specificity TN/(TN+FP) with Wilson CIs (NaN when undefined)."""
    for name, v in (("tp", tp), ("fn", fn), ("fp", fp), ("tn", tn)):
        if int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    tp, fn, fp, tn = int(tp), int(fn), int(fp), int(tn)
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"sensitivity": sens, "sensitivity_ci": list(wilson_ci(tp, tp + fn, confidence)),
            "specificity": spec, "specificity_ci": list(wilson_ci(tn, tn + fp, confidence)),
            "tp": tp, "fn": fn, "fp": fp, "tn": tn}


def bland_altman(reference, prediction) -> dict:
    """Bland-Altman agreement of prediction vs reference over finite pairs.

    Differences are prediction - reference; limits of agreement are bias +- 1.96 SD (ddof=1).
    """
    ref, pred = _paired(reference, prediction)
    if ref.size < 2:
        nan = float("nan")
        return {"bias": nan, "sd": nan, "loa_low": nan, "loa_high": nan, "n": int(ref.size)}
    diff = pred - ref
    bias, sd = float(diff.mean()), float(diff.std(ddof=1))
    return {"bias": bias, "sd": sd, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd, "n": int(ref.size)}
