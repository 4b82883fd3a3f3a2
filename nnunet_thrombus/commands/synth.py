"""``nnunet_thrombus synth``: write a synthetic NCCT + CTA stroke cohort (raw DICOM/NIfTI + nnU-Net raw)."""
from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "synth", help="generate a synthetic paired NCCT + CTA cohort with known thrombi",
        description="Generate N synthetic stroke patients (NCCT + CTA, thrombus masks, truth JSON) as raw "
                    "DICOM/NIfTI folders and an nnU-Net raw dataset.")
    p.add_argument("-o", "--output", required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("-n", "--n-cases", type=int, default=20, help="number of patients (default: 20)")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("-p", "--preset", choices=("tiny", "demo", "paper"), default="tiny",
                   help="geometry preset (default: tiny)")
    p.add_argument("-d", "--dataset-id", type=int, default=501, help="nnU-Net dataset id (default: 501)")
    p.add_argument("--dataset-name", default="SynthThrombus", help="nnU-Net dataset name (default: SynthThrombus)")
    p.add_argument("-t", "--n-test", type=int, default=None, help="test cases (default: 25%% of N)")
    p.add_argument("-k", "--raters", type=int, default=0, help="simulated rater masks per case (default: 0)")
    p.add_argument("-f", "--formats", nargs="+", choices=("dicom", "nifti"), default=["dicom", "nifti"],
                   help="raw layouts to write (default: dicom nifti)")
    p.add_argument("--thick-fraction", type=float, default=0.0,
                   help="share of cases with 5 mm NCCT slices (default: 0.0)")
    p.add_argument("--test-profile", choices=("benchmark", "evaluation"), default=None,
                   help="build the test part from a fixed recipe instead of by chance: 'benchmark' (-t >= 40: >= 30 "
                        "clots at every site, isodense and < 30 mm3 clots, >= 10 clot-free heads, some with "
                        "calcified arteries) or 'evaluation' (-t >= 60: >= 20 each of calcified clot-free heads, "
                        "M2/ACA, isodense and < 40 mm3 clots); see docs/synthetic_data.md (default: none)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cohort (default: off)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q: no progress bar, no summary lines (default: off)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort

    try:
        spec = CohortSpec(args.n_cases, seed=args.seed, preset=args.preset, dataset_id=args.dataset_id,
                          dataset_name=args.dataset_name, n_test=args.n_test, n_raters=args.raters,
                          thick_fraction=args.thick_fraction, test_profile=args.test_profile)
        s = write_cohort(args.output, spec, formats=tuple(args.formats), overwrite=args.overwrite,
                         progress=not args.quiet)
    except ValueError as err:
        logger.error(f"nnunet_thrombus synth: {err}")
        return 2
    sites = ", ".join(f"{k} {v}" for k, v in s["counts_site"].items())
    logger.info(f"{s['n_cases']} cases ({s['n_train']} train, {s['n_test']} test), preset {s['preset']}, "
                f"seed {s['seed']}")
    logger.info(f"sites: {sites}; LVO {s['n_lvo']}, no occlusion {s['n_no_occlusion']}, isodense {s['n_isodense']}, "
                f"thick-slice NCCT {s['n_thick']}")
    c = s["test_composition"]
    logger.info(f"test part: {c['clots']} clots ({', '.join(f'{k} {v}' for k, v in c['sites'].items())}; isodense "
                f"{c['isodense']}, < 30 mm3 {c['under_30_mm3']}, < 40 mm3 {c['under_40_mm3']}), {c['clot_free']} "
                f"clot-free ({c['clot_free_calcified']} with calcified arteries)")
    if s["composition_missing"]:
        logger.error(f"nnunet_thrombus synth: test part misses profile {s['test_profile']!r}: "
                     f"{'; '.join(s['composition_missing'])}")
        return 1
    logger.info(f"{s['seconds_per_case']:.2f} s per case; nnU-Net raw dataset: {s['paths']['dataset']}")
    return 0
