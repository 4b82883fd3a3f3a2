"""Fixture for the predict tests: a 4-case tiny synthetic cohort (DICOM, NIfTI, imagesTs) with its PHI values."""
from __future__ import annotations

import shutil

import pydicom
import pytest

from nnunet_thrombus.inference.inputs import PHI_KEYWORDS


@pytest.fixture(scope="session")
def predict_cohort(tmp_path_factory) -> dict:
    """4 tiny synthetic cases (DICOM and NIfTI layouts, nnU-Net images in ``flat``; 2 in imagesTs) and their
    DICOM PHI values."""
    from nnunet_thrombus.synthetic.cohort import CohortSpec, write_cohort

    root = tmp_path_factory.mktemp("predict_cohort") / "synth"
    write_cohort(root, CohortSpec(4, seed=11, preset="tiny", dataset_id=503, n_test=2), formats=("dicom", "nifti"),
                 progress=False)
    phi = set()
    for f in sorted((root / "raw_dicom").glob("*/*/*.dcm")):
        ds = pydicom.dcmread(str(f), stop_before_pixels=True)
        phi |= {str(getattr(ds, k)) for k in PHI_KEYWORDS if str(getattr(ds, k, "") or "")}
    dataset = next((root / "nnUNet_raw").glob("Dataset503_*"))
    flat = root / "nnunet_images"  # all 4 cases in nnU-Net image format: no registration, fast to predict
    flat.mkdir()
    for f in sorted(dataset.glob("images*/*.nii.gz")):
        shutil.copy(f, flat / f.name)
    return {"root": root, "dicom": root / "raw_dicom", "nifti": root / "raw_nifti",
            "images_ts": dataset / "imagesTs", "flat": flat, "phi": sorted(phi)}
