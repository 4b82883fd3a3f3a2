import numpy as np
import pytest

from nnunet_thrombus.evaluation.statistics import (bland_altman, median_iqr, pearson, sensitivity_specificity,
                                                   spearman, wilson_ci)


def test_wilson_known_values():
    # textbook values (Newcombe 1998): 8/10 -> 0.4902-0.9433; 0/10 -> 0-0.2775
    assert wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_ci(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert all(np.isnan(wilson_ci(0, 0)))
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(5, 3)


def test_sensitivity_specificity_paper_numbers():
    # the paper's external LVO result: 32/34 sensitivity, 48/49 specificity
    s = sensitivity_specificity(tp=32, fn=2, fp=1, tn=48)
    assert s["sensitivity"] == pytest.approx(0.9412, abs=1e-4)
    assert s["specificity"] == pytest.approx(0.9796, abs=1e-4)
    assert s["sensitivity_ci"][0] < 0.9412 < s["sensitivity_ci"][1]
    with pytest.raises(ValueError, match="fn"):
        sensitivity_specificity(1, -1, 0, 0)


def test_median_iqr_drops_nan():
    s = median_iqr([1, 2, 3, 4, 5, float("nan")])
    assert (s["median"], s["q1"], s["q3"], s["n"], s["n_nan"]) == (3.0, 2.0, 4.0, 5, 1)
    assert np.isnan(median_iqr([])["median"])


def test_correlations():
    x = np.arange(10.0)
    assert pearson(x, 2 * x + 1)["r"] == pytest.approx(1.0)
    assert spearman(x, x ** 3)["r"] == pytest.approx(1.0)
    assert pearson(x, -x)["p"] < 1e-6
    assert np.isnan(pearson([1, 2], [1, 2])["r"])


def test_bland_altman():
    ref = np.array([10.0, 20.0, 30.0, 40.0])
    pred = ref + np.array([1.0, 3.0, 1.0, 3.0])
    ba = bland_altman(ref, pred)
    sd = np.std([1, 3, 1, 3], ddof=1)
    assert ba["bias"] == pytest.approx(2.0) and ba["sd"] == pytest.approx(sd)
    assert ba["loa_high"] == pytest.approx(2.0 + 1.96 * sd)


# ----------------------------------------------------------------- bootstrap, Wilcoxon, paired differences
import math

from scipy import stats as sps

from nnunet_thrombus.evaluation.statistics import (BOOTSTRAP_RESAMPLES, bootstrap_ci, median_ci,
                                                   paired_difference, subgroup_medians, wilcoxon_signed_rank)


def test_bootstrap_ci_exact_on_two_values():
    # resampling [0, 1] twice: median = mean of the two draws, 0 / 0.5 / 1 with probability 1/4, 1/2, 1/4.
    # So the 2.5th and 97.5th percentiles are 0 and 1, and the 30th and 70th both 0.5.
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], confidence=0.4) == (0.5, 0.5)
    # the shares of 0 and of 1 are 1/4 each (binomial SD over 10,000 resamples 0.0043): the 26th/74th percentiles
    # are 0.5 and the 24th/76th are 0 and 1, which pins both shares between 0.24 and 0.26
    assert bootstrap_ci([0.0, 1.0], confidence=0.48) == (0.5, 0.5)
    assert bootstrap_ci([0.0, 1.0], confidence=0.52) == (0.0, 1.0)


def test_bootstrap_ci_exact_on_three_and_constant_values():
    # median of 3 draws from {1, 2, 3} is 1 with probability 7/27 (two or three 1s) > 2.5%: CI is [1, 3]
    assert bootstrap_ci([3.0, 1.0, 2.0, float("nan")]) == (1.0, 3.0)
    assert bootstrap_ci([4.2] * 7) == (4.2, 4.2)
    assert all(math.isnan(v) for v in bootstrap_ci([float("nan")]))
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.0)


def test_bootstrap_ci_is_seeded_and_has_the_textbook_width():
    x = np.random.default_rng(3).normal(size=400)
    a, b = bootstrap_ci(x), bootstrap_ci(x)
    assert a == b  # fixed seed
    assert bootstrap_ci(x, seed=1) != a
    # the sample median's SD is sqrt(pi/2)/sqrt(n) = 0.0627 for unit normal data, n = 400: 95% width 0.246
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * math.sqrt(math.pi / 2) / 20, rel=0.25)
    assert a[0] < np.median(x) < a[1]
    ref = sps.bootstrap((x,), np.median, n_resamples=10_000, method="percentile",
                        random_state=np.random.default_rng(0)).confidence_interval
    assert a == pytest.approx((ref.low, ref.high), abs=0.02)


def test_median_ci_fields():
    s = median_ci([1, 2, 3, 4, 5, float("nan")])
    assert s == {"median": 3.0, "ci": [1.0, 5.0], "n": 5, "n_nan": 1, "n_resamples": BOOTSTRAP_RESAMPLES,
                 "seed": 0}
    assert math.isnan(median_ci([])["median"]) and median_ci([])["n"] == 0


def test_wilcoxon_exact_values_by_hand():
    # n = 5, all positive: P(W- = 0) = 1/32, two-sided 2/32
    assert wilcoxon_signed_rank([1, 2, 3, 4, 5])["p"] == pytest.approx(0.0625)
    # one negative of rank 2: W- = 2; subsets of {1..5} with rank sum <= 2 are {}, {1}, {2}: p = 2 * 3/32
    w = wilcoxon_signed_rank([1, -2, 3, 4, 5])
    assert (w["statistic"], w["p"], w["method"]) == (2.0, pytest.approx(0.1875), "exact")
    # zeros are discarded (zero_method "wilcox"); the exhaustive permutation of the rest equals the exact 2/32
    w = wilcoxon_signed_rank([0, 0, 1, 2, 3, 4, 5])
    assert (w["p"], w["n_zero"], w["method"], w["n"]) == (pytest.approx(0.0625), 2, "permutation", 7)
    # every difference zero: no evidence, p = 1; none finite: NaN
    assert wilcoxon_signed_rank([0.0, 0.0, float("nan")])["p"] == 1.0
    assert math.isnan(wilcoxon_signed_rank([float("nan")])["p"])


def test_wilcoxon_ties_normal_approximation_by_hand():
    # 14 differences with ties -> normal approximation. |d| ranks: 1s -> 2.5, 2s -> 6.5, 3s -> 10.5, 4s -> 13.5.
    # W- = 2 * 13.5 = 27, W+ = 105 - 27 = 78; mean n(n+1)/4 = 52.5;
    # var = n(n+1)(2n+1)/24 - sum(t^3 - t)/48 = 253.75 - (3 * 60 + 6)/48 = 249.875; z = 25.5 / sqrt(249.875)
    d = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, -4, -4]
    w = wilcoxon_signed_rank(d)
    z = 25.5 / math.sqrt(249.875)
    assert (w["statistic"], w["method"], w["ties"]) == (27.0, "asymptotic", True)
    assert w["p"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)  # = 0.10671
    assert w["p"] == pytest.approx(0.10671, abs=1e-5)


def test_wilcoxon_matches_scipy():
    rng = np.random.default_rng(0)
    for n in (6, 12, 20, 60):
        d = np.round(rng.normal(0.1, 1.0, n), 1)  # rounding makes ties and zeros
        d[:2] = 0.0
        ours = wilcoxon_signed_rank(d)
        ref = sps.wilcoxon(d, zero_method="wilcox")
        assert ours["p"] == pytest.approx(float(ref.pvalue), rel=1e-12)
        assert ours["statistic"] == float(ref.statistic)


def test_paired_difference_by_hand():
    # HD95-like values: ours - other = [1, 2, 3, 4, 5] on five cases, a NaN pair dropped
    r = paired_difference([5, 6, 7, 8, 9, float("nan")], [4, 4, 4, 4, 4, 3.0])
    assert (r["median"], r["mean"], r["n"], r["n_dropped"]) == (3.0, 3.0, 5, 1)
    assert r["p"] == pytest.approx(0.0625) and r["method"] == "exact"
    # median of 5 draws from {1..5} is 1 with probability 0.0579 > 2.5%: CI [1, 5]
    assert r["ci"] == [1.0, 5.0]
    same = paired_difference([0.5, 0.7, 0.0], [0.5, 0.7, 0.0])
    assert (same["median"], same["ci"], same["p"], same["n_zero"]) == (0.0, [0.0, 0.0], 1.0, 3)
    with pytest.raises(ValueError, match="same length"):
        paired_difference([1, 2], [1])


def test_subgroup_medians():
    rows = [{"site": "M1", "dice": 0.8}, {"site": "M1", "dice": 0.6}, {"site": "ICA", "dice": 0.9},
            {"site": None, "dice": 1.0}, {"site": "", "dice": 0.0}, {"site": "M2", "dice": float("nan")}]
    g = subgroup_medians(rows, "site")
    assert list(g) == ["ICA", "M1", "M2"]
    assert g["M1"]["median"] == pytest.approx(0.7) and g["M1"]["n"] == 2
    assert g["M1"]["ci"] == pytest.approx([0.6, 0.8])
    assert (g["ICA"]["median"], g["ICA"]["ci"], g["ICA"]["n"]) == (0.9, [0.9, 0.9], 1)
    assert g["M2"]["n"] == 0 and g["M2"]["n_nan"] == 1
