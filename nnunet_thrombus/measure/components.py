"""Per-component thrombus measurements, the rows of a case report.

Convention: arrays are (z, y, x) as ``SimpleITK.GetArrayFromImage`` gives, all on one grid (the CTA
grid); ``spacing`` is (z, y, x) mm; ``origin`` (x, y, z) mm and ``direction`` (9 floats) are ITK's
patient geometry (LPS), e.g. ``image.GetOrigin()`` and ``image.GetDirection()``.
Components are 26-connected and sorted by volume, largest first.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.masks import label_components
from nnunet_thrombus.measure._arrays import as_mask, bbox_slices, check_same_shape
from nnunet_thrombus.measure.density import cta_hu, density_hu, perviousness_hu, relative_density
from nnunet_thrombus.measure.length import length_mm, mean_diameter_mm
from nnunet_thrombus.measure.location import (ImageGeometry, SiteThresholds, brain_frame, centroid_mm,
                                              normalised_brain_coordinates, side, site_from_coordinates)


def measure_components(mask, ncct=None, cta=None, brain_mask=None, spacing=(1.0, 1.0, 1.0),
                       origin=(0.0, 0.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1),
                       site_thresholds: SiteThresholds = SiteThresholds()) -> list[dict]:
    """Measure every 26-connected thrombus component.

    Args:
        mask: (z, y, x) thrombus mask (nonzero = thrombus).
        ncct: (z, y, x) NCCT in HU on the same grid, or None (density fields become None).
        cta: (z, y, x) CTA in HU, or None (CTA and perviousness fields become None).
        brain_mask: (z, y, x) brain mask, or None (relative density None; the site frame and the
            midline then come from the image extent).
        spacing: (z, y, x) mm. origin: (x, y, z) mm. direction: 9 floats (ITK).
        site_thresholds: ``SiteThresholds`` for ``classify_site``.

    Returns:
        list of dicts sorted by volume (largest first) with keys ``index`` (1-based rank),
        ``volume_mm3``, ``length_mm``, ``mean_diameter_mm``, ``centroid_mm`` ([x, y, z] patient mm),
        ``side`` ("L"/"R"), ``bbox`` ([z0, y0, x0, z1, y1, x1] array indices, half-open),
        ``ncct_mean_hu``, ``ncct_median_hu``, ``relative_density`` (clot / mirrored contralateral
        NCCT), ``cta_mean_hu``, ``perviousness_hu`` (HU), ``site`` and ``site_coordinates``
        ([lr, ap, si]). An empty mask gives [].
    """
    m = as_mask(mask)
    check_same_shape(mask=m, ncct=ncct, cta=cta, brain_mask=brain_mask)
    geo = ImageGeometry(tuple(float(s) for s in spacing), tuple(origin), tuple(direction))
    box = bbox_slices(m, margin=1)
    if box is None:
        return []
    labels, n = label_components(m[box])
    frame = brain_frame(geo, brain_mask, m.shape)
    sp = np.asarray(geo.spacing, dtype=float)
    out = []
    for lab in range(1, n + 1):
        sub = labels == lab
        comp = np.zeros_like(m)
        comp[box] = sub
        cbox = bbox_slices(comp)
        length = length_mm(sub, sp)
        centre = centroid_mm(sub, ImageGeometry(geo.spacing, tuple(geo.index_to_patient([s.start for s in box])),
                                                geo.direction))
        coords = normalised_brain_coordinates(centre, frame)
        row = {
            "volume_mm3": float(sub.sum()) * float(np.prod(sp)),
            "length_mm": length,
            "mean_diameter_mm": mean_diameter_mm(sub, sp, length=length),
            "centroid_mm": [float(v) for v in centre],
            "side": side(centre, frame["midline_x_mm"]),
            "bbox": [s.start for s in cbox] + [s.stop for s in cbox],
            "site": site_from_coordinates(*coords, site_thresholds),
            "site_coordinates": [round(c, 4) for c in coords],
            "ncct_mean_hu": None, "ncct_median_hu": None, "relative_density": None,
            "cta_mean_hu": None, "perviousness_hu": None,
        }
        if ncct is not None:
            dens = density_hu(np.asarray(ncct)[cbox], comp[cbox])
            row["ncct_mean_hu"], row["ncct_median_hu"] = dens["mean_hu"], dens["median_hu"]
            if brain_mask is not None:
                rel = relative_density(ncct, comp, brain_mask, direction=geo.direction)
                row["relative_density"] = None if np.isnan(rel["ratio"]) else rel["ratio"]
        if cta is not None:
            row["cta_mean_hu"] = cta_hu(np.asarray(cta)[cbox], comp[cbox])
            if ncct is not None:
                row["perviousness_hu"] = perviousness_hu(np.asarray(cta)[cbox], np.asarray(ncct)[cbox], comp[cbox])
        out.append(row)
    out.sort(key=lambda r: -r["volume_mm3"])
    for i, row in enumerate(out, start=1):
        row["index"] = i
    return out


def measure_components_from_images(label, ncct=None, cta=None, brain_mask=None, **kwargs) -> list[dict]:
    """``measure_components`` on SimpleITK images (label grid sets the geometry; others must match)."""
    arr = lambda im: None if im is None else sitk.GetArrayFromImage(im)  # noqa: E731
    return measure_components(arr(label), arr(ncct), arr(cta), arr(brain_mask),
                              spacing=label.GetSpacing()[::-1], origin=label.GetOrigin(),
                              direction=label.GetDirection(), **kwargs)
