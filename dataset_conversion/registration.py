"""Rigid registration of the NCCT onto the CTA grid (SimpleITK, Euler3D, Mattes mutual information).

Recipe (DESIGN.md sec. 3): both scans are clipped to [-200, 1500] HU and resampled to a working
spacing of about 1 mm (never finer than the scan); the metric is Mattes MI (48 bins) sampled on a
regular grid of about 50,000 points per level inside the CTA head mask (HU > -400); the transform starts
from the head masks' centres of mass (``CenteredTransformInitializer`` with MOMENTS on binary head
masks, which is robust to the air value), then a regular-step gradient descent (step 2 mm, relaxation 0.7, min step 1e-4) runs on 3 levels
(shrink 4/2/1 of the working grid, smoothing 2/1/0 mm).  The returned transform maps CTA (fixed)
points to NCCT (moving) points, as ``sitk.Resample`` expects.

QC (``registration_qc``): the normalised cross-correlation (NCC) of CTA and registered NCCT, both
clipped to [-50, 150] HU, inside the brain mask dilated by 4 mm (so the inner skull table and the
CSF/brain edges drive it) where the NCCT has data (not its outside-field-of-view fill), and the same NCC
after moving the NCCT by +-2 mm along each axis. The absolute NCC depends on noise (0.54-0.77 for
aligned tiny synthetic cases, 0.86 for a low-noise phantom), so the pass rule is that the result sits on
the NCC peak (no 2 mm shift raises NCC by more than 0.01) with NCC >= 0.2; a failing case is flagged in
qc.csv, still converted. NCC < 0.2, or a rotation > 45 deg / shift > 80 mm, counts as diverged:
``RegistrationError``, case not converted.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

QC_NCC_FAIL = 0.2
QC_SHIFT_MM = 2.0
QC_ROTATE_DEG = 0.0  # rotation probes off: NCC's rotational peak is too broad (false flags on aligned cases)
QC_PEAK_TOLERANCE = 0.01
MAX_ROTATION_DEG = 45.0
MAX_TRANSLATION_MM = 80.0
AIR_HU = -1024


class RegistrationError(ValueError):
    """Registration diverged or produced an implausible transform."""


@dataclass
class RegistrationResult:
    """transform: CTA point -> NCCT point (sitk.Euler3DTransform); ncct_on_cta: int16 on the CTA grid."""

    transform: sitk.Transform
    ncct_on_cta: sitk.Image
    final_metric: float
    ncc_brain: float
    qc_pass: bool
    ncc_peak_margin: float = float("nan")
    parameters: dict = field(default_factory=dict)
    n_iterations: int = 0
    stop_condition: str = ""

    def qc_row(self) -> dict:
        row = {"reg_metric": round(self.final_metric, 5), "ncc_brain": round(self.ncc_brain, 4),
               "ncc_peak_margin": round(self.ncc_peak_margin, 4), "reg_qc_pass": self.qc_pass,
               "reg_iterations": self.n_iterations}
        row.update({k: round(v, 4) for k, v in self.parameters.items()})
        return row


def _working_image(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """float32 copy clipped to [-200, 1500] HU, block-averaged (``BinShrink``) by integer factors towards
    ``spacing_mm`` per axis (never finer than the input); averaging is the anti-aliasing."""
    factors = [max(1, int(spacing_mm / s + 1e-6)) for s in image.GetSpacing()]
    if any(f > 1 for f in factors):
        image = sitk.BinShrink(sitk.Cast(image, sitk.sitkFloat32), factors)
    return sitk.Clamp(sitk.Cast(image, sitk.sitkFloat32), sitk.sitkFloat32, -200.0, 1500.0)


def head_mask(image: sitk.Image, threshold_hu: float = -400.0) -> sitk.Image:
    """Largest connected component of ``image > threshold_hu`` (uint8), i.e. the head without the table."""
    mask = sitk.BinaryThreshold(image, threshold_hu, 30000.0, 1, 0)
    comps = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    return sitk.Cast(comps == 1, sitk.sitkUInt8)


def euler_parameters(transform: sitk.Transform) -> dict:
    """angles (deg) and translation (mm) of an Euler3D transform as a flat dict."""
    euler = sitk.Euler3DTransform(transform) if not isinstance(transform, sitk.Euler3DTransform) else transform
    ax, ay, az, tx, ty, tz = euler.GetParameters()
    return {"rot_x_deg": float(np.degrees(ax)), "rot_y_deg": float(np.degrees(ay)), "rot_z_deg": float(np.degrees(az)),
            "trans_x_mm": float(tx), "trans_y_mm": float(ty), "trans_z_mm": float(tz)}


def _ncc_arrays(x: np.ndarray, y: np.ndarray, clip=(-50.0, 150.0)) -> float:
    if x.size < 10:
        return float("nan")
    x = np.clip(x.astype(np.float64), *clip)
    y = np.clip(y.astype(np.float64), *clip)
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def masked_ncc(a: sitk.Image, b: sitk.Image, mask: sitk.Image, clip=(-50.0, 150.0)) -> float:
    """Normalised cross-correlation of two images on the same grid inside ``mask`` (values clipped to ``clip`` HU)."""
    m = sitk.GetArrayViewFromImage(mask) > 0
    return _ncc_arrays(sitk.GetArrayViewFromImage(a)[m], sitk.GetArrayViewFromImage(b)[m], clip)


def registration_qc(cta: sitk.Image, ncct: sitk.Image, transform: sitk.Transform, brain_mask: sitk.Image,
                    shift_mm: float = QC_SHIFT_MM, rotate_deg: float = QC_ROTATE_DEG, grid_mm: float = 1.0) -> dict:
    """QC of a finished registration on a >= ``grid_mm`` copy of the CTA grid, inside the brain mask dilated by 4 mm.

    ``ncc_brain``: NCC (HU clipped to [-50, 150]) of CTA and NCCT mapped with ``transform``;
    ``ncc_peak_margin``: ``ncc_brain`` minus the best NCC after moving the NCCT by +-``shift_mm`` along x, y, z
    (and rotating it by +-``rotate_deg`` about each axis when > 0) (>= 0 when the result sits on the NCC peak,
    independent of the noise level that sets the absolute NCC);
    ``qc_pass``: ``ncc_brain >= QC_NCC_FAIL`` and ``ncc_peak_margin >= -QC_PEAK_TOLERANCE``.
    All NCCs use the same voxels: those where the NCCT has data for every probe (inside its grid, and no
    interpolation touching a voxel <= ``AIR_HU``, the reader's outside-field-of-view fill, e.g. the wedges of a
    de-tilted series).
    """
    ref = _working_image(cta, grid_mm)
    region = sitk.Resample(sitk.Cast(brain_mask > 0, sitk.sitkFloat32), ref, sitk.Transform(), sitk.sitkLinear, 0.0,
                           sitk.sitkFloat32) >= 0.5
    region = sitk.BinaryDilate(sitk.Cast(region, sitk.sitkUInt8), [max(1, int(round(4.0 / s))) for s in ref.GetSpacing()],
                               sitk.sitkBall)
    euler = sitk.Euler3DTransform(transform)
    # the NCCT's own no-data voxels (a reader's outside-field-of-view fill, e.g. the wedges a de-tilted series
    # carries) are not tissue: the NCC skips every voxel whose interpolation touches one
    no_data = sitk.Cast(sitk.Cast(ncct, sitk.sitkFloat32) <= AIR_HU + 0.5, sitk.sitkFloat32)

    def moved_ncct(offset) -> np.ndarray:
        moved = sitk.Euler3DTransform(euler)
        moved.SetTranslation([float(a + b) for a, b in zip(euler.GetTranslation(), offset[3:])])
        moved.SetRotation(*[float(a + np.radians(b)) for a, b in zip(
            (euler.GetAngleX(), euler.GetAngleY(), euler.GetAngleZ()), offset[:3])])
        img = sitk.GetArrayFromImage(sitk.Resample(ncct, ref, moved, sitk.sitkLinear, float("nan"), sitk.sitkFloat32))
        gap = sitk.GetArrayFromImage(sitk.Resample(no_data, ref, moved, sitk.sitkLinear, 1.0, sitk.sitkFloat32))
        img[gap > 0] = np.nan
        return img

    # (rx, ry, rz deg, tx, ty, tz mm): the result, then +-shift_mm along each axis and +-rotate_deg about each
    probes = range(6) if rotate_deg > 0 else range(3, 6)
    offsets = [(0.0,) * 6] + [tuple(sign * (rotate_deg if i < 3 else shift_mm) * (i == k) for i in range(6))
                              for k in probes for sign in (-1, 1)]
    stack = [moved_ncct(o) for o in offsets]
    # common voxels inside the NCCT field of view for all shifts, so the FOV edge cannot bias the comparison
    valid = (sitk.GetArrayViewFromImage(region) > 0) & np.all([np.isfinite(a) for a in stack], axis=0)
    fixed = sitk.GetArrayViewFromImage(ref)
    values = [_ncc_arrays(fixed[valid], a[valid]) for a in stack]
    centre, margin = values[0], values[0] - max(values[1:])
    return {"ncc_brain": centre, "ncc_peak_margin": margin,
            "qc_pass": bool(centre >= QC_NCC_FAIL and margin >= -QC_PEAK_TOLERANCE)}


def register_ncct_to_cta(ncct: sitk.Image, cta: sitk.Image, *, brain_mask: sitk.Image | None = None,
                         working_spacing_mm: float = 1.0, n_samples: int = 50000,
                         max_iterations: int = 200, seed: int = 1234) -> RegistrationResult:
    """Rigidly register ``ncct`` (moving) to ``cta`` (fixed).

    brain_mask: optional uint8 mask on the CTA grid for the NCC QC; by default the CTA head mask eroded by 10 mm.
    Returns a ``RegistrationResult`` (NCCT resampled linearly onto the CTA grid as int16, air = -1024 HU).
    Raises ``RegistrationError`` when the optimiser fails or the result counts as diverged (see module doc).
    """
    if n_samples < 1000:
        raise ValueError(f"n_samples must be >= 1000, got {n_samples}")
    fixed = _working_image(cta, working_spacing_mm)
    moving = _working_image(ncct, working_spacing_mm)
    fixed_head, moving_head = head_mask(fixed), head_mask(moving)
    init = sitk.CenteredTransformInitializer(
        sitk.Cast(fixed_head, sitk.sitkFloat32), sitk.Cast(moving_head, sitk.sitkFloat32),
        sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=48)
    shrink = [4, 2, 1]
    n_head = max(1, int(sitk.GetArrayViewFromImage(fixed_head).sum()))
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentagePerLevel([float(min(1.0, n_samples * f**3 / n_head)) for f in shrink], seed)
    reg.SetMetricFixedMask(sitk.BinaryDilate(fixed_head, [2, 2, 2]))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-4, numberOfIterations=max_iterations,
                                                 relaxationFactor=0.7, gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    try:
        transform = reg.Execute(fixed, moving)
    except RuntimeError as exc:
        raise RegistrationError(f"registration failed: {str(exc).strip().splitlines()[-1]}") from exc
    metric = float(reg.GetMetricValue())
    euler = sitk.Euler3DTransform(sitk.CompositeTransform(transform).GetBackTransform()
                                  if isinstance(transform, sitk.CompositeTransform) else transform)
    params = euler_parameters(euler)
    # translation relative to the geometric centres (the raw parameter depends on the rotation centre)
    shift = np.array(euler.TransformPoint(euler.GetCenter())) - np.array(euler.GetCenter())
    ncct_on_cta = sitk.Resample(ncct, cta, euler, sitk.sitkLinear, AIR_HU, sitk.sitkInt16)
    # divergence check on the working grid (the converter recomputes the QC with the real brain mask)
    if brain_mask is None:
        brain_mask = sitk.BinaryErode(fixed_head, [max(1, int(round(10.0 / s))) for s in fixed.GetSpacing()],
                                      sitk.sitkBall)
    qc = registration_qc(cta, ncct, euler, brain_mask, grid_mm=working_spacing_mm)
    ncc = qc["ncc_brain"]
    rotation = max(abs(params[k]) for k in ("rot_x_deg", "rot_y_deg", "rot_z_deg"))
    if not np.isfinite(metric) or not np.isfinite(ncc):
        raise RegistrationError(f"registration diverged: metric {metric}, NCC {ncc}")
    if rotation > MAX_ROTATION_DEG or np.linalg.norm(shift) > MAX_TRANSLATION_MM:
        raise RegistrationError(f"registration diverged: rotation {rotation:.1f} deg, shift "
                                f"{np.linalg.norm(shift):.1f} mm (limits {MAX_ROTATION_DEG} deg, {MAX_TRANSLATION_MM} mm)")
    if ncc < QC_NCC_FAIL:
        raise RegistrationError(f"registration diverged: NCC inside the brain {ncc:.3f} < {QC_NCC_FAIL}")
    return RegistrationResult(transform=euler, ncct_on_cta=ncct_on_cta, final_metric=metric, ncc_brain=ncc,
                              qc_pass=qc["qc_pass"], ncc_peak_margin=qc["ncc_peak_margin"], parameters=params,
                              n_iterations=int(reg.GetOptimizerIteration()),
                              stop_condition=reg.GetOptimizerStopConditionDescription())


def apply_transform_to_mask(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """Carry a label image (e.g. drawn on the NCCT) onto ``reference``'s grid with ``transform`` (reference -> mask
    points), label-aware (``sitkLabelGaussian``, which keeps thin labels better than nearest neighbour); uint8."""
    return sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), reference, transform, sitk.sitkLabelGaussian, 0,
                         sitk.sitkUInt8)
