"""Thrombus length and mean cross-sectional diameter.

Convention: ``mask`` is a (z, y, x) array (``SimpleITK.GetArrayFromImage`` order), nonzero = thrombus;
``spacing`` is (z, y, x) in mm. Lengths are in mm and honour anisotropic spacing.

Method (DESIGN.md sec 5, docs/metrics.md):

    largest 26-connected component
      -> 3D curve skeleton (skimage ``skeletonize``, Lee's thinning) on the cropped component
      -> longest shortest-path through the skeleton graph (26-neighbour edges weighted in mm,
         two Dijkstra sweeps)
      -> Gaussian smoothing of the path coordinates (removes the voxel staircase)
      -> extension at both ends: march from each end along the end tangent until leaving the mask
         (when the skeleton is shorter than its two extensions: the longest of the marches in a 20-degree
         cone around the tangent, projected on it)
         (a plain skeleton stops about one radius short of each end)
      -> length = smoothed path length + both extensions

Blobs whose skeleton is a single point (spheres, tiny clots) fall back to the extent of the component
along its principal axis.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from skimage.morphology import skeletonize

from nnunet_thrombus.measure._arrays import as_mask, bbox_slices, check_spacing, largest_component

CONE_DEGREES = (10.0, 20.0)   # extension rays around the end tangent (see _extend)
_HALF_OFFSETS = np.array([o for o in np.ndindex(3, 3, 3) if o > (1, 1, 1)]) - 1  # 13 of 26 neighbours


def length_mm(mask, spacing) -> float:
    """Length of the largest thrombus component along its centre line, in mm.

    Args:
        mask: (z, y, x) array, nonzero voxels are thrombus.
        spacing: (z, y, x) voxel size in mm.

    Returns:
        Length in mm; 0.0 for an empty mask.
    """
    return float(length_details(mask, spacing)["length_mm"])


def mean_diameter_mm(mask, spacing, length: float | None = None) -> float:
    """Mean cross-sectional diameter of the largest component, 2*sqrt(V / (pi * L)), in mm.

    Treats the clot as a cylinder of the measured volume V (mm^3) and length L (mm).

    Args:
        mask: (z, y, x) array, nonzero voxels are thrombus.
        spacing: (z, y, x) voxel size in mm.
        length: precomputed ``length_mm`` of the same mask, to avoid measuring twice.

    Returns:
        Diameter in mm; 0.0 for an empty mask.
    """
    sp = check_spacing(spacing)
    comp = largest_component(as_mask(mask))
    vol = float(np.count_nonzero(comp)) * float(np.prod(sp))
    if vol == 0.0:
        return 0.0
    if length is None:
        length = length_mm(comp, sp)
    if length <= 0:
        raise ValueError(f"length must be positive for a non-empty mask, got {length}")
    return float(2.0 * np.sqrt(vol / (np.pi * length)))


def length_details(mask, spacing, smoothing_sigma_mm: float = 1.0) -> dict:
    """Length with its intermediate results, for reports and overlays.

    Args:
        mask: (z, y, x) array, nonzero voxels are thrombus.
        spacing: (z, y, x) voxel size in mm.
        smoothing_sigma_mm: Gaussian sigma (mm of arc length) used to smooth the skeleton path.

    Returns:
        dict with ``length_mm``, ``method`` ("skeleton", "principal_axis" or "empty"),
        ``skeleton_mm`` (length of the smoothed path before extension), ``extension_mm``
        (the two end extensions) and ``path_index`` ((n, 3) float (z, y, x) voxel indices of the
        smoothed path in the input array, empty for the fallback).
    """
    sp = check_spacing(spacing)
    comp = largest_component(as_mask(mask))
    box = bbox_slices(comp, margin=1)
    result = {"length_mm": 0.0, "method": "empty", "skeleton_mm": 0.0, "extension_mm": (0.0, 0.0),
              "path_index": np.zeros((0, 3))}
    if box is None:
        return result
    sub = comp[box]
    offset = np.array([s.start for s in box], dtype=float)
    # skimage's 3D thinning occasionally deletes a whole even-width tube; the same shape upsampled
    # by 2 (nearest) is thinned correctly, so it is the retry before the principal-axis fallback.
    for factor in (1, 2):
        grid = sub if factor == 1 else sub.repeat(2, 0).repeat(2, 1).repeat(2, 2)
        gsp = sp / factor
        path = _longest_skeleton_path(grid, gsp)
        if path is None:
            continue
        smooth = _smooth_path(path * gsp, smoothing_sigma_mm)
        skel_len = _polyline_length(smooth)
        if skel_len < float(sp.max()):
            continue
        ext = (_extend(smooth[::-1], grid, gsp), _extend(smooth, grid, gsp))
        if skel_len < ext[0] + ext[1]:  # a stub skeleton: its end tangents are unreliable, search a cone
            ext = (_extend(smooth[::-1], grid, gsp, CONE_DEGREES), _extend(smooth, grid, gsp, CONE_DEGREES))
        # grid index i at factor f lies at original index (i + 0.5) / f - 0.5
        index = (smooth / gsp + 0.5) / factor - 0.5 + offset
        result.update(length_mm=skel_len + ext[0] + ext[1], method="skeleton", skeleton_mm=skel_len,
                      extension_mm=ext, path_index=index)
        return result
    result.update(length_mm=principal_axis_extent_mm(sub, sp), method="principal_axis")
    return result


def principal_axis_extent_mm(mask, spacing) -> float:
    """Extent of a (z, y, x) mask along its first principal axis, in mm (fallback length).

    The projection range of the voxel centres plus the width of one voxel projected on the axis.
    """
    sp = check_spacing(spacing)
    pts = np.argwhere(as_mask(mask)) * sp
    if len(pts) == 0:
        return 0.0
    if len(pts) == 1:
        return float(sp.max())
    centred = pts - pts.mean(axis=0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    axis = vecs[:, -1]
    proj = centred @ axis
    return float(proj.max() - proj.min() + np.abs(axis) @ sp)


def _longest_skeleton_path(sub: np.ndarray, sp: np.ndarray) -> np.ndarray | None:
    """(n, 3) int voxel indices of the longest geodesic path through the skeleton, or None."""
    skel = skeletonize(sub.astype(np.uint8)) > 0
    pts = np.argwhere(skel)
    if len(pts) < 2:
        return None
    index = np.full(sub.shape, -1, dtype=np.int64)
    index[tuple(pts.T)] = np.arange(len(pts))
    rows, cols, weights = [], [], []
    for off in _HALF_OFFSETS:
        nb = pts + off
        ok = np.all((nb >= 0) & (nb < sub.shape), axis=1)
        j = np.full(len(pts), -1)
        j[ok] = index[tuple(nb[ok].T)]
        hit = j >= 0
        rows.append(np.flatnonzero(hit))
        cols.append(j[hit])
        weights.append(np.full(int(hit.sum()), float(np.linalg.norm(off * sp))))
    rows, cols, weights = map(np.concatenate, (rows, cols, weights))
    graph = coo_matrix((weights, (rows, cols)), shape=(len(pts), len(pts))).tocsr()
    dist0 = dijkstra(graph, directed=False, indices=0)
    start = int(np.argmax(np.where(np.isfinite(dist0), dist0, -1)))
    dist, pred = dijkstra(graph, directed=False, indices=start, return_predecessors=True)
    end = int(np.argmax(np.where(np.isfinite(dist), dist, -1)))
    order = [end]
    while order[-1] != start:
        order.append(int(pred[order[-1]]))
    return pts[np.array(order[::-1])]


def _smooth_path(path_mm: np.ndarray, sigma_mm: float) -> np.ndarray:
    """Gaussian smoothing of a polyline's coordinates; sigma converted from mm to points."""
    if len(path_mm) < 3 or sigma_mm <= 0:
        return path_mm.astype(float)
    step = _polyline_length(path_mm) / (len(path_mm) - 1)
    sigma = max(sigma_mm / step, 0.5)
    return ndimage.gaussian_filter1d(path_mm.astype(float), sigma, axis=0, mode="nearest")


def _polyline_length(pts: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) if len(pts) > 1 else 0.0


def _extend(path_mm: np.ndarray, sub: np.ndarray, sp: np.ndarray, cone_degrees=()) -> float:
    """Distance in mm from the last point of ``path_mm`` to the mask boundary beyond the path's end.

    The end tangent is the direction from the path point about 3 voxels (or half the path) back to the end
    point. A ray leaves the end point along that tangent (and, with ``cone_degrees``, along 8 directions
    at each of those angles around it); each marches in steps of 0.1 voxel until the trilinearly
    interpolated mask drops below 0.5 (for faces along a grid axis that is the voxel face, as for the
    volume), and the longest march projected on the tangent is the extension. The cone is for stub
    skeletons of short clots: their tangent may be off by several degrees, and a single ray then leaves a
    tapered tip through its side long before its apex; projecting on the tangent keeps a flat end face
    at its true distance.
    """
    total = _polyline_length(path_mm)
    back = min(0.5 * total, 3.0 * float(sp.max()))
    seg = np.linalg.norm(np.diff(path_mm[::-1], axis=0), axis=1)
    k = int(np.searchsorted(np.cumsum(seg), back)) + 1
    tail = path_mm[-1 - min(k, len(path_mm) - 1)]
    direction = path_mm[-1] - tail
    norm = np.linalg.norm(direction)
    if norm == 0:
        return 0.0
    direction /= norm
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    u = np.cross(direction, helper)
    u /= np.linalg.norm(u)
    v = np.cross(direction, u)
    rays = [direction]
    for angle in np.deg2rad(cone_degrees):
        for phi in np.arange(8) * np.pi / 4:
            rays.append(np.cos(angle) * direction + np.sin(angle) * (np.cos(phi) * u + np.sin(phi) * v))
    step = 0.1 * float(sp.min())
    n_steps = int(np.ceil(np.linalg.norm(np.array(sub.shape) * sp) / step)) + 2
    dist = np.arange(1, n_steps + 1) * step
    grid = sub.astype(np.float32)
    best = 0.0
    for ray in rays:
        ray_mm = path_mm[-1] + np.outer(dist, ray)
        # trilinear interpolation of the mask: the boundary is its 0.5 iso-surface, which follows
        # oblique end faces instead of the voxel staircase
        inside = ndimage.map_coordinates(grid, (ray_mm / sp).T, order=1, cval=0.0) >= 0.5
        outside = np.flatnonzero(~inside)
        first_out = int(outside[0]) if outside.size else n_steps
        best = max(best, first_out * step * float(ray @ direction))
    return best
