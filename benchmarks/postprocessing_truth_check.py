"""Post-processing on truth-based predictions, old rule vs evidence rule. SYNTHETIC.

For each generated head (demo preset, wall calcifications and plaques forced on; sites M2, ACA, M1, ICA and
clot-free in turn) the "prediction" is the reference clot plus every calcification grown by one voxel (a network's
mimic; calcium within two voxels of the clot left out, so components are either clot or mimic). It is post-processed
by the replaced rule (largest 26-connected component only, emptied below the LVO rule's 5 mm^3) and by the evidence
rule with its default thresholds (``Postprocessing()``), and counted: clots kept, mimic components dropped, clot-free
heads left with a component (a false call). No network is involved: this isolates the post-processing step.

    python benchmarks/postprocessing_truth_check.py -n 40
"""
from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--cases", type=int, default=40, help="heads (default: 40)")
    ap.add_argument("--seed", type=int, default=7000, help="first case seed (default: 7000)")
    ap.add_argument("--preset", default="demo", help="synthetic preset (default: demo)")
    args = ap.parse_args(argv)
    from nnunet_thrombus.console import configure_logging

    configure_logging()  # progress lines on stderr; the results below are this script's stdout

    import numpy as np
    import SimpleITK as sitk
    from scipy import ndimage

    from nnunet_thrombus.calibration.postprocessing import Postprocessing
    from nnunet_thrombus.calibration.lvo import LVOThresholds
    from nnunet_thrombus.synthetic.phantom import generate_case
    from nnunet_thrombus.synthetic.render import TISSUE_CODES

    pp, old_min = Postprocessing(), LVOThresholds().min_volume_mm3
    sites = (["M2", "ACA", "M1", "ICA", "none"] * args.cases)[: args.cases]
    tot = dict(clots=0, old_kept_clot=0, new_kept_clot=0, small_clots=0, old_kept_small=0, new_kept_small=0,
               mimic_components=0, old_dropped_mimic=0, new_dropped_mimic=0, clot_free=0, clot_free_old_call=0,
               clot_free_new_call=0, multiple_candidates=0)
    for i, site in enumerate(sites):
        case = generate_case(args.seed + i, args.preset, site=site, calcification=True)
        arr = sitk.GetArrayFromImage
        cta, ncct = arr(case.cta).astype(np.float32), arr(case.ncct_on_cta).astype(np.float32)
        brain, clot = arr(case.brain_mask) > 0, arr(case.label) > 0
        calc = case.tissue == TISSUE_CODES["calcification"]
        mimic = ndimage.binary_dilation(calc) & ~ndimage.binary_dilation(clot, iterations=2)
        pred, sp = clot | mimic, case.cta.GetSpacing()[::-1]
        sel = pp.select(pred, sp, ncct=ncct, cta=cta, brain=brain, origin=case.cta.GetOrigin(),
                        direction=case.cta.GetDirection(), reference=clot)
        labels, k = ndimage.label(pred, structure=np.ones((3, 3, 3), bool))
        old = np.zeros_like(pred)
        if k:
            sizes = np.bincount(labels.ravel())[1:]
            if sizes.max() * np.prod(sp) >= old_min:
                old = labels == int(np.argmax(sizes)) + 1
        comps = sel["kept"] + sel["dropped"]
        n_mimic = sum(not c["overlaps_reference"] for c in comps)
        tot["mimic_components"] += n_mimic
        tot["new_dropped_mimic"] += sum(not c["overlaps_reference"] for c in sel["dropped"])
        old_kept_mimic = int(old.any() and not (old & clot).any())
        tot["old_dropped_mimic"] += n_mimic - old_kept_mimic
        if clot.any():
            small = float(clot.sum() * np.prod(sp)) < 30.0
            kept_new = any(c["overlaps_reference"] for c in sel["kept"])
            kept_old = bool((old & clot).any())
            tot["clots"] += 1
            tot["small_clots"] += small
            tot["new_kept_clot"] += kept_new
            tot["old_kept_clot"] += kept_old
            tot["new_kept_small"] += small and kept_new
            tot["old_kept_small"] += small and kept_old
            tot["multiple_candidates"] += "multiple_candidates" in sel["flags"]
        else:
            tot["clot_free"] += 1
            tot["clot_free_new_call"] += bool(sel["kept"])
            tot["clot_free_old_call"] += bool(old.any())
        logger.info(f"{case.case_id} {site}: {n_mimic} mimic component(s); evidence rule keeps "
                    f"{[round(c['volume_mm3'], 1) for c in sel['kept']]} mm3; old rule keeps the "
                    f"{'clot' if (old & clot).any() else 'mimic' if old.any() else 'nothing'}")
    print(json.dumps(tot, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
