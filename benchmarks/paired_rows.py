"""Paired per-case Dice difference between one benchmark row and others, from a finished run's evaluation folder.

The benchmark table compares ours (global coarse context, seed 0) with every row; this compares any row with any
others, with the same statistics (``evaluation.statistics.paired_difference``: median difference in Dice points
over the test cases with a clot, percentile-bootstrap 95% CI, Wilcoxon signed-rank p).

    python benchmarks/paired_rows.py RUN/evaluation ROW OTHER [OTHER ...]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path


def _dice_by_case(folder: Path) -> dict:
    with open(folder / "metrics.csv", newline="") as f:
        return {r["case"]: (float(r["dice"]) * 100, r["ref_present"] == "True") for r in csv.DictReader(f)}


def main(argv=None) -> int:
    from nnunet_thrombus.evaluation.statistics import paired_difference

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("evaluation", type=Path, help="the run's evaluation folder (<row>/metrics.csv).")
    ap.add_argument("row", help="row name, e.g. noPyramidFusion_seed0.")
    ap.add_argument("others", nargs="+", help="rows to compare it with.")
    args = ap.parse_args(argv)
    a = _dice_by_case(args.evaluation / args.row)
    cases = sorted(c for c, (_, clot) in a.items() if clot)
    print(f"| {args.row} minus | Dice diff (95% CI) | p | pairs |")
    print("| --- | --- | --- | --- |")
    for other in args.others:
        b = _dice_by_case(args.evaluation / other)
        missing = [c for c in cases if c not in b]
        if missing:
            raise SystemExit(f"{other}: no metrics for {len(missing)} case(s), e.g. {missing[0]}; same test set?")
        d = paired_difference([a[c][0] for c in cases], [b[c][0] for c in cases])
        p = "<0.001" if d["p"] < 0.001 else f"{d['p']:.3f}"
        print(f"| {other} | {d['median']:+.1f} ({d['ci'][0]:+.1f} to {d['ci'][1]:+.1f}) | {p} | {d['n']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
