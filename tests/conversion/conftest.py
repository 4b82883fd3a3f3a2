"""Shared fixtures: one small synthetic cohort (generator of nnunet_thrombus.synthetic) converted once."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, CohortSpec(6, seed=3, preset="tiny", n_raters=3), formats=("dicom", "nifti"), progress=False)
    return out


@pytest.fixture(scope="session")
def converted(cohort, tmp_path_factory) -> dict:
    from dataset_conversion.conversion_options import ConversionOptions
    from dataset_conversion.convert_trial import convert_trial_dataset

    results = {}
    for fmt in ("dicom", "nifti"):
        raw = tmp_path_factory.mktemp(f"nnunet_raw_{fmt}")
        options = ConversionOptions(dataset_id=501, quiet=True, test_fraction=0.2 if fmt == "nifti" else 0.0,
                                    n_jobs=2 if fmt == "nifti" else 1)
        results[fmt] = convert_trial_dataset(cohort / f"raw_{fmt}", raw, options)
        results[fmt]["raw"] = raw
    return results
