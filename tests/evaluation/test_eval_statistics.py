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
