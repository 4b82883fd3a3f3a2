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


# --------------------------------------------------------------------------- bootstrap and paired comparisons
#: resamples of every bootstrap CI in this project, and the seed of its generator (numpy ``default_rng``)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def bootstrap_ci(values, statistic=np.median, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over the finite ``values``.

    ``n_resamples`` resamples of the same size as the data are drawn with replacement from
    ``numpy.random.default_rng(seed)``, ``statistic`` (a numpy reduction taking ``axis``) is computed on each,
    and the CI is the (1 - confidence)/2 and (1 + confidence)/2 percentiles (linear interpolation) of those
    values. The same seed and data give the same CI. (nan, nan) when no value is finite.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    arr = _finite(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(int(n_resamples), arr.size))
    stat = np.asarray(statistic(arr[idx], axis=1), dtype=float)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(stat, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def median_ci(values, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
              seed: int = BOOTSTRAP_SEED) -> dict:
    """Median of the finite ``values`` with its percentile-bootstrap CI (:func:`bootstrap_ci`).

    Returns ``median``, ``ci`` ([low, high]), ``n`` (finite values), ``n_nan`` (dropped), ``n_resamples``, ``seed``.
    """
    arr = np.asarray(values, dtype=float).reshape(-1)
    fin = arr[np.isfinite(arr)]
    med = float(np.median(fin)) if fin.size else float("nan")
    return {"median": med, "ci": list(bootstrap_ci(fin, np.median, n_resamples, confidence, seed)),
            "n": int(fin.size), "n_nan": int(arr.size - fin.size), "n_resamples": int(n_resamples), "seed": int(seed)}


def wilcoxon_signed_rank(differences) -> dict:
    """Two-sided Wilcoxon signed-rank test that the finite paired ``differences`` are symmetric about 0.

    ``scipy.stats.wilcoxon`` with ``zero_method="wilcox"`` (zero differences are discarded) and
    ``method="auto"``, whose documented rule is: exact null distribution for up to 50 differences without
    ties or zeros; with ties or zeros, exhaustive permutations up to 13 differences and the normal
    approximation (corrected for ties and zeros, no continuity correction) above. ``method`` names the
    branch taken. When every difference is zero there is no evidence either way: p = 1.0 (``method``
    ``"all zero"``); with no finite difference p is NaN.

    Returns ``statistic`` (the smaller of the signed rank sums), ``p``, ``n`` (finite differences),
    ``n_zero``, ``ties`` (True when non-zero absolute differences repeat) and ``method``.
    """
    d = _finite(differences)
    nonzero = d[d != 0]
    ties = bool(np.unique(np.abs(nonzero)).size < nonzero.size)
    out = {"n": int(d.size), "n_zero": int(d.size - nonzero.size), "ties": ties}
    if d.size == 0:
        return {**out, "statistic": float("nan"), "p": float("nan"), "method": "no data"}
    if nonzero.size == 0:
        return {**out, "statistic": 0.0, "p": 1.0, "method": "all zero"}
    res = stats.wilcoxon(d, zero_method="wilcox", method="auto", alternative="two-sided")
    if not ties and out["n_zero"] == 0:
        method = "exact" if d.size <= 50 else "asymptotic"
    else:
        method = "permutation" if d.size <= 13 else "asymptotic"
    return {**out, "statistic": float(res.statistic), "p": float(res.pvalue), "method": method}


def paired_difference(a, b, n_resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = 0.95,
                      seed: int = BOOTSTRAP_SEED) -> dict:
    """Per-case paired difference ``a - b`` (same cases, same order) over the pairs where both are finite.

    Returns ``median`` and ``mean`` of the differences, ``ci`` (percentile-bootstrap CI of the median
    difference, resampling cases: :func:`bootstrap_ci`), the Wilcoxon signed-rank result (``p``, ``statistic``,
    ``method``, ``n_zero``, ``ties``; :func:`wilcoxon_signed_rank`), ``n`` (pairs used) and ``n_dropped``
    (pairs with a NaN on either side, e.g. HD95 of an empty mask).
    """
    x = np.asarray(a, dtype=float).reshape(-1)
    y = np.asarray(b, dtype=float).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired samples must have the same length, got {x.size} and {y.size}")
    ok = np.isfinite(x) & np.isfinite(y)
    d = x[ok] - y[ok]
    w = wilcoxon_signed_rank(d)
    nan = float("nan")
    return {"median": float(np.median(d)) if d.size else nan, "mean": float(np.mean(d)) if d.size else nan,
            "ci": list(bootstrap_ci(d, np.median, n_resamples, confidence, seed)), "p": w["p"],
            "statistic": w["statistic"], "method": w["method"], "n_zero": w["n_zero"], "ties": w["ties"],
            "n": int(d.size), "n_dropped": int(x.size - d.size), "n_resamples": int(n_resamples), "seed": int(seed)}


def subgroup_medians(rows, group_key: str, value_key: str = "dice", n_resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = BOOTSTRAP_SEED) -> dict:
    """``{group: median_ci(values)}`` over ``rows`` (dicts) grouped by ``row[group_key]``; rows whose group is
    None or empty are left out (e.g. the size group of a clot-free case). Groups are sorted by name."""
    groups: dict = {}
    for r in rows:
        g = r.get(group_key)
        if g is None or str(g) in ("", "None", "nan"):
            continue
        groups.setdefault(str(g), []).append(r.get(value_key, float("nan")))
    return {g: median_ci(v, n_resamples=n_resamples, seed=seed) for g, v in sorted(groups.items())}
