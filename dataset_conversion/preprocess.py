"""Per-case preprocessing shared by ``convert`` and ``predict``: register NCCT -> CTA, skull-strip, mask.

``preprocess_case(ncct, cta)`` returns the two nnU-Net channels on the CTA grid (``_0000`` = CTA,
``_0001`` = NCCT), outside-brain voxels set to ``OUTSIDE_BRAIN_HU`` (-1024) in both, the brain mask,
the transform and a QC dict.  Scans thicker than ``MAX_SLICE_MM`` are refused unless allowed; then
they are resampled along z to ``THICK_RESAMPLE_MM`` and flagged.
"""
from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from dataset_conversion.registration import RegistrationResult, register_ncct_to_cta, registration_qc
from dataset_conversion.skull_strip import apply_brain_mask, skull_strip

OUTSIDE_BRAIN_HU = -1024
MAX_SLICE_MM = 2.5
THICK_RESAMPLE_MM = 1.0


def check_slice_thickness(image: sitk.Image, thickness_mm: float, name: str, allow_thick: bool) -> tuple[sitk.Image, bool]:
    """Refuse (``ValueError``) a scan with slices thicker than 2.5 mm unless ``allow_thick``; then resample its
    z axis to 1 mm (linear) and return ``(image, True)``. Thin scans come back unchanged with ``False``."""
    thickness_mm = max(float(thickness_mm), float(image.GetSpacing()[2]))
    if thickness_mm <= MAX_SLICE_MM + 1e-3:
        return image, False
    if not allow_thick:
        raise ValueError(f"{name} slice thickness {thickness_mm:.2f} mm > {MAX_SLICE_MM} mm "
                         "(the method is thin-section only; pass --allow-thick-slices to resample and flag it)")
    sp = list(image.GetSpacing())
    size = list(image.GetSize())
    size[2] = int(round(size[2] * sp[2] / THICK_RESAMPLE_MM))
    sp[2] = THICK_RESAMPLE_MM
    out = sitk.Resample(image, size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), sp, image.GetDirection(),
                        OUTSIDE_BRAIN_HU, image.GetPixelID())
    return out, True


def preprocess_case(ncct: sitk.Image, cta: sitk.Image, *, registration_kwargs: dict | None = None) -> dict:
    """NCCT + CTA (HU, any grids) -> dict with keys

    - ``cta``: int16 CTA, outside brain = -1024 HU (channel 0)
    - ``ncct_on_cta``: int16 NCCT registered and resampled onto the CTA grid, outside brain = -1024 HU (channel 1)
    - ``brain_mask``: uint8 brain mask on the CTA grid
    - ``registration``: ``RegistrationResult`` (transform: CTA point -> NCCT point)
    - ``qc``: flat dict (reg_metric, ncc_brain, reg_qc_pass, angles/translations, brain_volume_ml, times)
    Raises ``RegistrationError`` when the registration diverges.
    """
    t0 = time.perf_counter()
    cta = sitk.Cast(cta, sitk.sitkInt16)
    kwargs = dict(registration_kwargs or {})
    reg: RegistrationResult = register_ncct_to_cta(ncct, cta, **kwargs)
    retried = False
    if not reg.qc_pass:  # a local optimum: one retry with denser sampling, keep the better NCC
        retry = register_ncct_to_cta(ncct, cta, **{**kwargs, "n_samples": 4 * kwargs.get("n_samples", 50000),
                                                   "seed": kwargs.get("seed", 1234) + 1})
        retried = True
        if retry.ncc_brain > reg.ncc_brain:
            reg = retry
    t1 = time.perf_counter()
    # where the NCCT does not cover the CTA field of view (resampling default -1024), the CTA stands in
    ncct_arr = sitk.GetArrayViewFromImage(reg.ncct_on_cta)
    outside_fov = ncct_arr == OUTSIDE_BRAIN_HU
    strip_input = sitk.GetImageFromArray(np.where(outside_fov, sitk.GetArrayViewFromImage(cta), ncct_arr))
    strip_input.CopyInformation(cta)
    brain = skull_strip(strip_input, second=cta)
    t2 = time.perf_counter()
    qc_reg = registration_qc(cta, ncct, reg.transform, brain)
    reg.ncc_brain, reg.ncc_peak_margin, reg.qc_pass = qc_reg["ncc_brain"], qc_reg["ncc_peak_margin"], qc_reg["qc_pass"]
    qc = reg.qc_row()
    voxel_ml = float(np.prod(cta.GetSpacing())) / 1000.0
    in_brain = sitk.GetArrayViewFromImage(brain) > 0
    qc.update(reg_retried=retried, ncct_missing_brain_frac=round(float((outside_fov & in_brain).sum()) / max(1, int(in_brain.sum())), 4),
              brain_volume_ml=round(float(sitk.GetArrayViewFromImage(brain).sum()) * voxel_ml, 1),
              time_registration_s=round(t1 - t0, 2), time_skull_strip_s=round(t2 - t1, 2), time_qc_s=round(time.perf_counter() - t2, 2))
    return {"cta": apply_brain_mask(cta, brain, OUTSIDE_BRAIN_HU),
            "ncct_on_cta": apply_brain_mask(reg.ncct_on_cta, brain, OUTSIDE_BRAIN_HU),
            "brain_mask": brain, "registration": reg, "qc": qc}
