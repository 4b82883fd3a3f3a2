"""benchmarks/coarse_hits.py: share of each training clot that stage 1 marks, in-sample against out-of-fold."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "coarse_hits.py"


def _module():
    spec = importlib.util.spec_from_file_location("coarse_hits", _SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_clot_coverage_counts_reference_voxels_the_prediction_marks():
    mod = _module()
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[1, 1, :] = 1  # 4 voxels
    pred = np.zeros_like(ref)
    pred[1, 1, :3] = 1
    pred[3, 3, 3] = 1  # outside the clot: no effect
    assert mod.clot_coverage(ref, pred) == 0.75
    assert np.isnan(mod.clot_coverage(np.zeros_like(ref), pred))


def test_table_splits_in_sample_from_out_of_fold_per_site(tmp_path, capsys):
    mod = _module()
    pre, stage1 = tmp_path / "pre", tmp_path / "s1"
    segs, preds = pre / "ThrombusPlans_3d_fullres", stage1 / "predicted_next_stage" / "3d_cascade_fullres"
    segs.mkdir(parents=True)
    preds.mkdir(parents=True)
    (pre / "splits_final.json").write_text(json.dumps([{"train": ["a", "b", "n"], "val": ["c"]}]))
    (tmp_path / "meta.csv").write_text("case,site\na,ACA\nb,ACA\nc,ACA\nn,none\n")
    ref = np.zeros((1, 3, 3, 3), np.uint8)
    ref[0, 1, 1, :2] = 1
    for key, marked in (("a", 2), ("b", 0), ("c", 1), ("n", 0)):
        np.save(segs / f"{key}_seg.npy", ref if key != "n" else np.zeros_like(ref))
        pred = np.zeros((3, 3, 3), np.uint8)
        pred[1, 1, :marked] = 1
        np.savez(preds / f"{key}.npz", seg=pred)
    assert mod.main(["--preprocessed", str(pre), "--stage1", str(stage1), "--metadata", str(tmp_path / "meta.csv")]) == 0
    out = capsys.readouterr().out
    assert "| in-sample (fold's training cases) | ACA | 2 | 1/2 | 1.0, 0.0 |" in out
    assert "| out-of-fold (fold's validation) | ACA | 1 | 1/1 | 0.5 |" in out
    assert "none" not in out  # the clot-free case has no row
