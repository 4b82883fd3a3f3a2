"""Counting where clots are lost, per subgroup (the tracing itself runs on a trained model in
benchmarks/trust_eval.py)."""
from __future__ import annotations

from nnunet_thrombus.inference.miss_analysis import summarise_traces


def _t(lost, vol, coarse, fine):
    return {"lost_at": lost, "volume_mm3": vol, "coarse_max": coarse, "fine_max": fine}


def test_summarise_traces_counts_and_medians():
    traces = {"a": _t(None, 20.0, 0.3, 0.9), "b": _t("roi", 10.0, 0.05, 0.0), "c": _t("roi", 30.0, 0.01, 0.1),
              "d": _t(None, 200.0, 0.9, 0.95), "e": _t("post-processing", 40.0, 0.5, 0.8)}
    groups = {"a": "M2", "b": "M2", "c": "M2", "d": "M1", "e": "M1"}
    s = summarise_traces(traces, groups)
    assert s["M2"] == {"n": 3, "found": 1, "lost_at": {"roi": 2}, "median_volume_mm3": 20.0,
                       "median_coarse_max": 0.05, "median_fine_max": 0.1}
    assert s["M1"]["found"] == 1 and s["M1"]["lost_at"] == {"post-processing": 1}
    assert s["M1"]["median_volume_mm3"] == 120.0
