"""How much of each training clot stage 1 marks, in-sample (its own training cases) against out-of-fold.

The fine stage learns from stage 1's output on the fine stage's training cases. When stage 1 was trained on those
same cases (one fold, as in the cpu benchmark), its output there may be cleaner than on new patients. This script
measures it: for every case of a fold's split with a clot, the share of reference clot voxels that the stage-1
prediction in ``predicted_next_stage`` marks (at fine spacing), and whether it marks any (a hit), per site, for the
fold's training cases (in-sample) and its validation cases (out-of-fold).

    python benchmarks/coarse_hits.py --preprocessed PRE/Dataset501_X --stage1 RESULTS/Dataset501_X/TR__PLANS__3d_lowres \
        --metadata RAW/Dataset501_X/metadata.csv [--fold 0] [--plans ThrombusPlans]
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path


def clot_coverage(reference, prediction) -> float:
    """reference, prediction: label arrays of one shape -> share of reference voxels (> 0) the prediction marks
    (> 0); NaN when the reference is empty."""
    import numpy as np

    ref = np.asarray(reference) > 0
    if not ref.any():
        return float("nan")
    return float((np.asarray(prediction)[ref] > 0).mean())


def _load(path: Path):
    import numpy as np

    if path.suffix == ".b2nd":
        import blosc2

        arr = np.asarray(blosc2.open(str(path))[:])
    elif path.suffix == ".npz":
        arr = np.load(path)["seg"]
    else:
        arr = np.load(path)
    return arr[0] if arr.ndim == 4 else arr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preprocessed", required=True, type=Path, help="nnUNet_preprocessed/DatasetXXX. Required.")
    ap.add_argument("--stage1", required=True, type=Path, help="the stage-1 (3d_lowres) model folder. Required.")
    ap.add_argument("--metadata", required=True, type=Path, help="the raw dataset's metadata.csv (site). Required.")
    ap.add_argument("--fold", type=int, default=0, help="Default: 0.")
    ap.add_argument("--plans", default="ThrombusPlans", help="Default: ThrombusPlans.")
    ap.add_argument("--next-stage", default="3d_cascade_fullres", help="Default: 3d_cascade_fullres.")
    args = ap.parse_args(argv)

    split = json.loads((args.preprocessed / "splits_final.json").read_text())[args.fold]
    sites = {r["case"]: r["site"] for r in csv.DictReader(args.metadata.open())}
    seg_dir = args.preprocessed / f"{args.plans}_3d_fullres"
    pred_dir = args.stage1 / "predicted_next_stage" / args.next_stage
    table = {}
    for part, label in (("train", "in-sample (fold's training cases)"), ("val", "out-of-fold (fold's validation)")):
        by_site = defaultdict(list)
        for key in split[part]:
            seg = next((p for p in (seg_dir / f"{key}_seg.b2nd", seg_dir / f"{key}_seg.npy") if p.exists()), None)
            pred = next((p for p in (pred_dir / f"{key}{e}" for e in (".b2nd", ".npz", ".npy")) if p.exists()), None)
            if seg is None or pred is None:
                raise FileNotFoundError(f"{key}: missing {'reference' if seg is None else 'stage-1 prediction'} "
                                        f"in {seg_dir if seg is None else pred_dir}")
            cov = clot_coverage(_load(seg), _load(pred))
            if cov == cov:  # a clot
                by_site[sites.get(key, "?")].append(cov)
        table[label] = {s: {"n": len(v), "hits": sum(c > 0 for c in v), "coverage": [round(c, 2) for c in v]}
                        for s, v in sorted(by_site.items())}
    print(f"stage 1: {args.stage1} (fold {args.fold}); share of clot voxels its predicted_next_stage marks")
    print("| cases | site | clots | marked at all | coverage per clot |")
    print("| --- | --- | --- | --- | --- |")
    for label, rows in table.items():
        for site, r in rows.items():
            print(f"| {label} | {site} | {r['n']} | {r['hits']}/{r['n']} | {', '.join(map(str, r['coverage']))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
