"""File side of the converter: atomic writes, output validation, CSV tables, QC PNGs, mask loading.

Atomic writes go through :mod:`nnunet_thrombus.atomic_io` (``.tmp-<pid>-<name>`` in the final folder, then
``os.replace``); ``defer=True`` returns ``(tmp, final)`` so a case can publish all its files at once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from dataset_conversion.registration import apply_transform_to_mask
from dataset_conversion.staple import staple_consensus
from nnunet_thrombus import atomic_io
from nnunet_thrombus.masks import dice

QC_COLUMNS = ["case_id", "patient", "status", "error", "reg_metric", "ncc_brain", "ncc_peak_margin", "reg_qc_pass", "reg_iterations",
              "rot_x_deg", "rot_y_deg", "rot_z_deg", "trans_x_mm", "trans_y_mm", "trans_z_mm", "brain_volume_ml", "ncct_missing_brain_frac",
              "label_voxels", "label_outside_brain_frac", "n_raters", "rater_dice_vs_staple",
              "rater_sensitivity", "rater_specificity", "label_vs_staple_dice", "time_registration_s",
              "time_skull_strip_s", "time_s"]
META_COLUMNS = ["case_id", "patient", "split", "fold", "site", "cta_phase", "cta_n_series", "cta_source",
                "cta_series_uid", "ncct_series_uid", "cta_slice_thickness_mm", "ncct_slice_thickness_mm",
                "thick_slices_resampled", "label_source", "masks_on", "n_raters", "note"]


def atomic_write_image(image: sitk.Image, final: Path, defer: bool = False):
    """Write ``image`` (compressed) to a temporary name next to ``final`` (folder created); rename unless ``defer``
    (then ``(tmp, final)`` for :func:`nnunet_thrombus.atomic_io.publish`)."""
    Path(final).parent.mkdir(parents=True, exist_ok=True)
    return atomic_io.write_image(image, final, defer=defer)


def atomic_write_text(final: Path, text: str) -> Path:
    """Text file written atomically (folder created)."""
    Path(final).parent.mkdir(parents=True, exist_ok=True)
    return atomic_io.write_text(final, text)


def outputs_valid(root: Path, outputs: list[str]) -> bool:
    """True when every listed output exists and its header can be read (images) / it is non-empty."""
    for rel in outputs:
        path = Path(root) / rel
        if not path.is_file() or path.stat().st_size == 0:
            return False
        if rel.endswith(".nii.gz"):
            try:
                reader = sitk.ImageFileReader()
                reader.SetFileName(str(path))
                reader.ReadImageInformation()
            except RuntimeError:
                return False
    return True


def _window_u8(image: sitk.Image, lo: float = -20, hi: float = 120) -> np.ndarray:
    arr = np.clip((sitk.GetArrayViewFromImage(image).astype(np.float32) - lo) / (hi - lo), 0, 1)
    return (arr * 255).astype(np.uint8)


def write_qc_png(cta: sitk.Image, ncct: sitk.Image, label: sitk.Image | None, final: Path, defer: bool = False):
    """Checkerboard (8 tiles) of CTA and registered NCCT on the axial slice through the label centroid
    (or the middle slice), brain window [-20, 120] HU, next to the NCCT with the label outline."""
    a, b = _window_u8(cta), _window_u8(ncct)
    z = a.shape[0] // 2
    lab = None
    if label is not None:
        lab = sitk.GetArrayViewFromImage(label) > 0
        if lab.any():
            z = int(np.round(np.argwhere(lab)[:, 0].mean()))
    tile_y, tile_x = max(1, a.shape[1] // 8), max(1, a.shape[2] // 8)
    yy, xx = np.indices(a.shape[1:])
    checker = np.where(((yy // tile_y) + (xx // tile_x)) % 2 == 0, a[z], b[z])
    right = b[z].copy()
    if lab is not None:
        sl = lab[z]
        edge = sl & ~ndimage.binary_erosion(sl)
        right[edge] = 255
    panel = np.concatenate([checker, right], axis=1)[::-1]  # superior up for the usual LPS axial display
    Path(final).parent.mkdir(parents=True, exist_ok=True)
    return atomic_io.write_image(sitk.GetImageFromArray(panel), final, defer=defer, compress=False)


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """Same size, spacing (1e-3 rel), origin (0.01 mm) and direction (1e-4)."""
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=1e-3)
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-2)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-4))


def _read_mask(path: Path) -> sitk.Image:
    try:
        mask = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise ValueError(f"mask {path}: corrupt or unreadable ({str(exc).strip().splitlines()[-1]})") from exc
    return sitk.Cast(mask > 0, sitk.sitkUInt8)


def load_label(case, cta_native: sitk.Image, ncct_native: sitk.Image, cta_final: sitk.Image,
               transform: sitk.Transform, masks_on: str) -> tuple[sitk.Image | None, dict]:
    """Label (uint8 on ``cta_final``'s grid) and metadata for a case.

    Masks drawn on the NCCT go through ``transform`` (CTA point -> NCCT point), label-aware; masks on the CTA
    are copied (or resampled when the CTA was resampled for thick slices).  A mask whose grid matches neither
    scan raises ``ValueError``.  With >= 2 rater masks, STAPLE gives the consensus and per-rater Dice; the
    label is ``thrombus`` when present, otherwise the consensus (or the only rater).
    """
    grids = {"cta": cta_native, "ncct": ncct_native}
    order = [masks_on, "ncct" if masks_on == "cta" else "cta"]
    meta: dict = {"masks_on": masks_on, "n_raters": len(case.rater_masks), "label_source": "", "qc": {}}
    notes = []

    def carry(path: Path) -> sitk.Image:
        mask = _read_mask(path)
        for name in order:
            if same_grid(mask, grids[name]):
                if name != masks_on:
                    notes.append(f"{path.name} is on the {name.upper()} grid, not {masks_on.upper()}")
                if name == "cta":
                    return mask if same_grid(mask, cta_final) else apply_transform_to_mask(mask, cta_final,
                                                                                          sitk.Transform())
                return apply_transform_to_mask(mask, cta_final, transform)
        raise ValueError(f"mask {path.name} geometry (size {mask.GetSize()}, spacing "
                         f"{tuple(round(s, 3) for s in mask.GetSpacing())}) matches neither the CTA "
                         f"(size {cta_native.GetSize()}) nor the NCCT (size {ncct_native.GetSize()})")

    raters = [carry(p) for p in case.rater_masks]
    label = carry(case.label) if case.label else None
    qc = meta["qc"]
    qc["n_raters"] = len(raters)
    if len(raters) >= 2:
        consensus, stats = staple_consensus(raters)
        qc["rater_dice_vs_staple"] = ";".join(f"{s['dice_vs_consensus']:.3f}" for s in stats)
        qc["rater_sensitivity"] = ";".join(f"{s['sensitivity']:.3f}" for s in stats)
        qc["rater_specificity"] = ";".join(f"{s['specificity']:.4f}" for s in stats)
        if label is None:
            label, meta["label_source"] = consensus, "staple"
        else:
            qc["label_vs_staple_dice"] = round(dice(sitk.GetArrayViewFromImage(label),
                                                    sitk.GetArrayViewFromImage(consensus)), 4)
    elif raters and label is None:
        label, meta["label_source"] = raters[0], "rater_1"
    if label is not None:
        meta["label_source"] = meta["label_source"] or "thrombus"
        lab = sitk.GetArrayViewFromImage(label) > 0
        qc["label_voxels"] = int(lab.sum())
        outside = sitk.GetArrayViewFromImage(cta_final) == -1024
        qc["label_outside_brain_frac"] = round(float((lab & outside).sum()) / max(1, int(lab.sum())), 4)
    if notes:
        meta["note"] = "; ".join(notes)
    return label, meta
