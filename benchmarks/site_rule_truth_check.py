"""Occlusion site of generator truth masks: the brain-box rule, and the ICA calibre check of the LVO rule
(``calibration.lvo.refined_site``). SYNTHETIC.

The ICA calibre floor is fitted (``fit_ica_calibre``) on the truth masks of ``--floor-cases`` ICA patients; the
other patients (ICA, M1 and ACA clots, each a different seed) are then measured by ``measure_components`` (the
report's code) and their sites compared with the site the generator drew. No network is involved: this is the
ceiling the site rule sets on a perfect segmentation.

    python benchmarks/site_rule_truth_check.py -n 40 --preset demo
"""
from __future__ import annotations

import argparse
import json
import logging
import time

logger = logging.getLogger(__name__)

#: first seed of each drawn site (the floor uses the first ``--floor-cases`` ICA seeds)
SEEDS = {"ICA": 20000, "M1": 21000, "ACA": 23000}


def _largest(seed: int, site: str, preset: str) -> dict:
    import numpy as np
    import SimpleITK as sitk

    from nnunet_thrombus.measure.components import measure_components
    from nnunet_thrombus.synthetic.phantom import generate_case

    case = generate_case(seed, preset, site=site)
    lab = sitk.GetArrayFromImage(case.label) > 0
    comps = measure_components(lab, None, None, sitk.GetArrayFromImage(case.brain_mask) > 0,
                               spacing=case.label.GetSpacing()[::-1], origin=case.label.GetOrigin(),
                               direction=case.label.GetDirection())
    return comps[0] if comps else {}


def _first_seed(site: str, floor_cases: int, offset: int) -> int:
    """First evaluated seed of ``site``: past the floor's ICA seeds, shifted by ``offset``."""
    return SEEDS[site] + (floor_cases if site == "ICA" else 0) + offset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--cases", type=int, default=40, help="evaluated patients per site (default: 40)")
    ap.add_argument("--floor-cases", type=int, default=20, help="ICA patients the floor is fitted on (default: 20)")
    ap.add_argument("--offset", type=int, default=0,
                    help="added to every evaluated seed, for patients the rule was not looked at on (default: 0)")
    ap.add_argument("--preset", default="demo", help="synthetic preset (default: demo)")
    ap.add_argument("--out", default=None, help="also write the per-case rows as JSON (default: off)")
    args = ap.parse_args(argv)
    from nnunet_thrombus.calibration.lvo import LVOThresholds, fit_ica_calibre, refined_site
    from nnunet_thrombus.console import configure_logging, print_result

    configure_logging()
    t0 = time.perf_counter()
    floor_comps = [_largest(SEEDS["ICA"] + i, "ICA", args.preset) for i in range(args.floor_cases)]
    floor = fit_ica_calibre([c.get("mean_diameter_mm") for c in floor_comps])
    logger.info(f"ICA calibre floor {floor} mm from {args.floor_cases} ICA truth masks")
    rule = LVOThresholds(min_ica_diameter_mm=floor)
    rows = []
    for site in SEEDS:
        first = _first_seed(site, args.floor_cases, args.offset)
        for seed in range(first, first + args.cases):
            c = _largest(seed, site, args.preset)
            if not c:
                rows.append({"seed": seed, "truth": site, "box": "none", "checked": "none"})
                continue
            checked, note = refined_site(c, rule)
            rows.append({"seed": seed, "truth": site, "box": c["site"], "checked": checked,
                         "diameter_mm": round(c["mean_diameter_mm"], 2), "length_mm": round(c["length_mm"], 1),
                         "lr": c["site_coordinates"][0], "note": note})
            logger.info(f"{site} seed {seed}: brain-box rule {c['site']}, calibre check {checked}")
    lines = [f"SYNTHETIC generator truth masks, preset {args.preset}; ICA calibre floor {floor} mm "
             f"(ICA seeds {SEEDS['ICA']}-{SEEDS['ICA'] + args.floor_cases - 1}); evaluated seeds from "
             + ", ".join(f"{s} {_first_seed(s, args.floor_cases, args.offset)}" for s in SEEDS)
             + f"; {time.perf_counter() - t0:.0f} s",
             "", "| truth site | n | brain-box rule | with the ICA calibre check |", "| --- | --- | --- | --- |"]
    for site in SEEDS:
        sub = [r for r in rows if r["truth"] == site]
        cells = [f"{sum(r[k] == site for r in sub)}/{len(sub)}" for k in ("box", "checked")]
        lines.append(f"| {site} | {len(sub)} | " + " | ".join(cells) + " |")
    wrong = [r for r in rows if r["checked"] != r["truth"]]
    lines += ["", "wrong with the check: " + ("none" if not wrong else "; ".join(
        f"{r['truth']} seed {r['seed']} -> {r['checked']} ({r.get('note') or 'brain-box rule'})" for r in wrong))]
    print_result("\n".join(lines))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"floor_mm": floor, "preset": args.preset, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
