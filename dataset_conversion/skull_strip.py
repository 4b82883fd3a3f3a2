"""CT skull stripping without a network: HU window + morphology + largest component + hole filling.

Steps (on a copy resampled to >= 1 mm working spacing, then brought back to the scan grid):

1. soft tissue: ``-15 <= HU <= 100`` (CSF, grey/white matter, fresh blood, hyperdense clot);
2. open with a ball of ``erode_mm`` (3 mm): cuts thin bridges from brain to scalp / orbits through foramina;
3. largest connected component = brain;
4. close with a ball of ``close_mm`` (4 mm) and fill holes slice by slice and in 3D, which puts back
   contrast-filled vessels (CTA, > 100 HU) and calcifications lying inside the brain;
5. remove voxels above ``bone_hu`` (300 HU) that are connected to the skull, so the inner table never
   stays in the mask;
6. at full resolution, add back a ``rim_mm`` (1.5 mm) rim of voxels below ``rim_max_hu`` (700 HU, about
   half way between brain and cortical bone) around the mask: brain voxels blurred with the inner table
   by partial volume read 100-700 HU (on both scans when ``second`` is given).

The working image is padded by edge replication first, so a brain cut by the field of view keeps its
edge slices.

Works on NCCT and CTA; the converter uses the NCCT registered on the CTA grid (no contrast).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def _ball(radius_mm: float, spacing) -> list[int]:
    return [max(1, int(round(radius_mm / s))) for s in spacing]


def _to_working(ct: sitk.Image, spacing_mm: float) -> sitk.Image:
    old_sp = np.array(ct.GetSpacing())
    new_sp = np.maximum(old_sp, spacing_mm)
    if np.allclose(new_sp, old_sp):
        return sitk.Cast(ct, sitk.sitkFloat32)
    size = [int(max(1, round(s))) for s in np.array(ct.GetSize()) * old_sp / new_sp]
    return sitk.Resample(sitk.Cast(ct, sitk.sitkFloat32), size, sitk.Transform(), sitk.sitkLinear, ct.GetOrigin(),
                         [float(s) for s in new_sp], ct.GetDirection(), -1024.0, sitk.sitkFloat32)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    mask = ndimage.binary_fill_holes(mask)
    for z in range(mask.shape[0]):
        if mask[z].any():
            mask[z] = ndimage.binary_fill_holes(mask[z])
    return mask


def skull_strip(ct: sitk.Image, *, soft_window_hu=(-15.0, 100.0), bone_hu: float = 300.0, erode_mm: float = 3.0,
                close_mm: float = 4.0, rim_mm: float = 1.5, rim_max_hu: float = 700.0,
                working_spacing_mm: float = 1.0, second: sitk.Image | None = None) -> sitk.Image:
    """Brain mask (uint8 0/1, same grid as ``ct``) of a head CT in HU.

    second: optional other scan on the same grid (the converter passes the native CTA when ``ct`` is the
    NCCT resampled onto it): a rim voxel is only added when both scans read below ``rim_max_hu`` there,
    so the blur that resampling adds at the inner table cannot pull bone in.

    Raises ``ValueError`` when no brain-like soft tissue is found (e.g. the image is not a head CT).
    """
    if ct.GetDimension() != 3:
        raise ValueError(f"skull_strip expects a 3D image, got dimension {ct.GetDimension()}")
    work = _to_working(ct, working_spacing_mm)
    sp = work.GetSpacing()
    edge_pad = [r + 2 for r in _ball(max(erode_mm, close_mm), sp)]
    work = sitk.ZeroFluxNeumannPad(work, edge_pad, edge_pad)
    soft = sitk.BinaryThreshold(work, soft_window_hu[0], soft_window_hu[1], 1, 0)
    opened = sitk.BinaryDilate(sitk.BinaryErode(soft, _ball(erode_mm, sp), sitk.sitkBall), _ball(erode_mm, sp),
                               sitk.sitkBall)
    comps = sitk.RelabelComponent(sitk.ConnectedComponent(opened), sortByObjectSize=True)
    brain = sitk.Cast(comps == 1, sitk.sitkUInt8)
    if sitk.GetArrayViewFromImage(brain).sum() == 0:
        raise ValueError("skull_strip: no soft tissue in the brain window was found; is this a head CT in HU?")
    brain = sitk.And(brain, soft)  # undo what the dilation added outside the window
    pad = [r + 1 for r in _ball(close_mm, sp)]
    padded = sitk.ConstantPad(brain, pad, pad, 0)
    closed = sitk.BinaryMorphologicalClosing(padded, _ball(close_mm, sp), sitk.sitkBall)
    closed = sitk.Crop(closed, pad, pad)
    arr = _fill_holes(sitk.GetArrayFromImage(closed).astype(bool))
    # bone connected to the skull never belongs to the brain (vessels inside the brain are not connected to it)
    bone = sitk.GetArrayFromImage(work) > bone_hu
    labels, n = ndimage.label(bone)
    if n:
        sizes = ndimage.sum(bone, labels, index=np.arange(1, n + 1))
        skull = labels == (int(np.argmax(sizes)) + 1)
        arr &= ~skull
        labels, n = ndimage.label(arr)
        if n > 1:
            sizes = ndimage.sum(arr, labels, index=np.arange(1, n + 1))
            arr = labels == (int(np.argmax(sizes)) + 1)
    mask = sitk.GetImageFromArray(arr.astype(np.float32))
    mask.CopyInformation(work)
    mask = sitk.Crop(mask, edge_pad, edge_pad)
    work = sitk.Crop(work, edge_pad, edge_pad)
    if work.GetSize() != ct.GetSize():
        mask = sitk.Resample(mask, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        full = sitk.GetArrayFromImage(mask) >= 0.5
        # at full resolution, drop bone voxels along the mask edge (partial volume of the coarse grid)
        edge = full & ~ndimage.binary_erosion(full, iterations=2)
        full &= ~(edge & (sitk.GetArrayViewFromImage(ct) > bone_hu))
    else:
        full = sitk.GetArrayFromImage(mask) >= 0.5
    # partial-volume rim: brain voxels next to the inner table read 100-300 HU; take them back
    rim = sitk.GetImageFromArray(full.astype(np.uint8))
    rim.CopyInformation(ct)
    grown = sitk.GetArrayFromImage(sitk.BinaryDilate(rim, _ball(rim_mm, ct.GetSpacing()), sitk.sitkBall)) > 0
    ct_arr = sitk.GetArrayViewFromImage(ct)
    soft_rim = (ct_arr >= soft_window_hu[0]) & (ct_arr < rim_max_hu)
    if second is not None:
        if second.GetSize() != ct.GetSize():
            raise ValueError(f"second image size {second.GetSize()} differs from ct size {ct.GetSize()}")
        sec = sitk.GetArrayViewFromImage(second)
        soft_rim &= (sec >= soft_window_hu[0]) & (sec < rim_max_hu)
    full |= grown & soft_rim
    out = sitk.GetImageFromArray(full.astype(np.uint8))
    out.CopyInformation(ct)
    return out


def apply_brain_mask(image: sitk.Image, mask: sitk.Image, fill: float = -1024) -> sitk.Image:
    """Copy of ``image`` with voxels outside ``mask`` (same grid) set to ``fill`` HU; pixel type kept."""
    if image.GetSize() != mask.GetSize():
        raise ValueError(f"image size {image.GetSize()} and mask size {mask.GetSize()} differ")
    arr = sitk.GetArrayFromImage(image)
    arr[sitk.GetArrayViewFromImage(mask) == 0] = fill
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out
