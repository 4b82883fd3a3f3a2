"""Small measurement helpers for the synthetic-data tests (independent of nnunet_thrombus.measure)."""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra


def geodesic_length_mm(mask: np.ndarray, spacing_zyx) -> float:
    """Longest shortest path (26-connected, physical step lengths) inside ``mask`` plus one voxel for the
    half voxels beyond the two extreme voxel centres: a skeleton-free centreline length for tubes with
    pointed ends."""
    pts = np.argwhere(mask)
    if len(pts) < 2:
        return float(np.mean(spacing_zyx)) * len(pts)
    index = -np.ones(mask.shape, int)
    index[tuple(pts.T)] = np.arange(len(pts))
    rows, cols, w = [], [], []
    sp = np.asarray(spacing_zyx, float)
    for off in np.array(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1], indexing="ij")).reshape(3, -1).T:
        if not off.any():
            continue
        q = pts + off
        ok = np.all((q >= 0) & (q < mask.shape), axis=1)
        j = -np.ones(len(pts), int)
        j[ok] = index[tuple(q[ok].T)]
        ok = j >= 0
        rows.append(np.flatnonzero(ok)), cols.append(j[ok]), w.append(np.full(ok.sum(), np.linalg.norm(off * sp)))
    g = sparse.csr_matrix((np.concatenate(w), (np.concatenate(rows), np.concatenate(cols))), shape=(len(pts),) * 2)
    d0 = dijkstra(g, indices=0)
    a = int(np.argmax(np.where(np.isfinite(d0), d0, -1)))
    d1 = dijkstra(g, indices=a)
    d1 = np.where(np.isfinite(d1), d1, -1)
    b = int(np.argmax(d1))
    # centreline: centroids of 1-mm shells of geodesic distance from one tip (follows bends, no corner cutting)
    xyz = pts * sp
    shells = np.floor(d1[d1 >= 0] / 1.0).astype(int)
    cents = np.array([xyz[d1 >= 0][shells == k].mean(0) for k in np.unique(shells)])
    path = np.vstack([xyz[a], cents, xyz[b]])
    return float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)) + np.mean(sp))
