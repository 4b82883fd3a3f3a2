"""Shared fixtures: one small synthetic cohort (generator of nnunet_thrombus.synthetic) converted once."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))


def truth_transform(truth: dict) -> sitk.Euler3DTransform:
    t = truth["ncct_transform"]
    tr = sitk.Euler3DTransform()
    tr.SetCenter([float(v) for v in t["center_mm"]])
    tr.SetRotation(*[float(v) for v in t["angles_rad"]])
    tr.SetTranslation([float(v) for v in t["translation_mm"]])
    return tr


def mean_tre_mm(estimated: sitk.Transform, truth: sitk.Transform, brain: sitk.Image, step: int = 7) -> float:
    """Mean distance (mm) between where both transforms send brain voxel centres of the CTA grid."""
    idx = np.argwhere(sitk.GetArrayFromImage(brain) > 0)[::step]
    pts = [brain.TransformIndexToPhysicalPoint([int(v) for v in p[::-1]]) for p in idx]
    return float(np.mean([np.linalg.norm(np.subtract(estimated.TransformPoint(p), truth.TransformPoint(p)))
                          for p in pts]))


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


def load_truth(case_dir: Path) -> dict:
    return json.loads((case_dir / "truth.json").read_text(encoding="utf-8"))
