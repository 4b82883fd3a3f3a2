"""``overlay.png``: axial, coronal and sagittal views through the thrombus with its contour and the numbers.

Top row: CTA maximum-intensity slab (``slab_mm`` thick) where contrast-filled vessels and the filling defect
show; bottom row: NCCT slice (hyperdense clot). The contour is the predicted mask (red). Views cross at the
largest component's centroid, or at the brain's centre when there is no clot (then the title says so). Components
post-processing dropped (``dropped``, e.g. a calcification) are drawn in yellow, dashed.
Arrays are (z, y, x); ``spacing`` (z, y, x) mm sets each view's aspect ratio. Only the case id is printed.
"""
from __future__ import annotations

import numpy as np

from nnunet_thrombus.atomic_io import save_figure

CTA_WINDOW = (-50.0, 450.0)
NCCT_WINDOW = (0.0, 90.0)


def _centre(mask: np.ndarray, brain: np.ndarray | None, bbox=None) -> tuple[int, int, int]:
    if bbox is not None:
        sub = np.zeros_like(mask, dtype=bool)
        sub[bbox[0]:bbox[3], bbox[1]:bbox[4], bbox[2]:bbox[5]] = mask[bbox[0]:bbox[3], bbox[1]:bbox[4],
                                                                      bbox[2]:bbox[5]] > 0
        if sub.any():
            return tuple(int(round(c)) for c in np.argwhere(sub).mean(axis=0))
    ref = brain if brain is not None and brain.any() else np.ones(mask.shape, bool)
    return tuple(int(round(c)) for c in np.argwhere(ref > 0).mean(axis=0))


def _view(vol: np.ndarray, axis: int, index: int, half: int, mip: bool) -> np.ndarray:
    lo, hi = max(0, index - half), min(vol.shape[axis], index + half + 1)
    if mip:
        sl = np.take(vol, range(lo, hi), axis=axis).max(axis=axis)
    else:
        sl = np.take(vol, index, axis=axis)
    return sl if axis == 0 else sl[::-1]  # coronal/sagittal: head up


def overlay_text(report: dict) -> str:
    """Short lines of numbers for the figure title: "REVIEW" first when the case is flagged, case id, call,
    uncertainty (bits), components dropped by post-processing, largest kept component."""
    head = f"{report['case_id']}: {report['call']['call']}"
    review, unc = report.get("review") or {}, report.get("uncertainty") or {}
    if review.get("review"):
        head = "REVIEW - " + head
    if unc.get("score") is not None:
        head += f", uncertainty {unc['score']:.2f} bits"
    dropped = report.get("dropped_components") or []
    if dropped:
        head += f", {len(dropped)} component(s) dropped"
    comps = report["components"]
    if not comps:
        return head + " - no thrombus found (views through the brain centre)"
    c = comps[0]
    fmt = lambda v, u, nd=0: "n/a" if v is None else f"{v:.{nd}f} {u}"  # noqa: E731
    line = (f"volume {fmt(c['volume_mm3'], 'mm3')}, length {fmt(c['length_mm'], 'mm', 1)}, site {c['site']} "
            f"{c['side'] or ''}, NCCT {fmt(c['ncct_mean_hu'], 'HU')}, perviousness {fmt(c['perviousness_hu'], 'HU')}")
    warn = ", ".join(w["code"] for w in report["warnings"])
    return f"{head} ({len(comps)} component(s))\n{line}" + (f"\nwarnings: {warn}" if warn else "")


def render_overlay(cta: np.ndarray, ncct: np.ndarray, mask: np.ndarray, spacing, report: dict,
                   brain: np.ndarray | None = None, slab_mm: float = 10.0, dropped: np.ndarray | None = None):
    """matplotlib Figure (2 x 3 panels) of the case; caller saves and closes it. ``dropped``: (z, y, x) mask of the
    components post-processing removed, or None."""
    from matplotlib.figure import Figure  # matplotlib loads when an overlay is drawn, not when predict starts

    comps = report["components"]
    centre = _centre(mask, brain, comps[0]["bbox"] if comps else None)
    sz, sy, sx = (float(s) for s in spacing)
    fig = Figure(figsize=(10.5, 7.2))
    axes = fig.subplots(2, 3)
    views = [(0, "axial", sy / sx), (1, "coronal", sz / sx), (2, "sagittal", sz / sy)]
    for col, (axis, name, aspect) in enumerate(views):
        half = max(0, int(round(slab_mm / 2 / float(spacing[axis]))))
        for row, (vol, window, mip) in enumerate(((cta, CTA_WINDOW, True), (ncct, NCCT_WINDOW, False))):
            ax = axes[row, col]
            ax.imshow(_view(vol, axis, centre[axis], half, mip), cmap="gray", vmin=window[0], vmax=window[1],
                      aspect=aspect, interpolation="nearest")
            m = _view(mask.astype(np.uint8), axis, centre[axis], half if mip else 0, True)
            if m.any():
                ax.contour(m, levels=[0.5], colors="red", linewidths=1.0)
            if dropped is not None:
                d = _view(dropped.astype(np.uint8), axis, centre[axis], half if mip else 0, True)
                if d.any():
                    ax.contour(d, levels=[0.5], colors="yellow", linewidths=1.0, linestyles="dashed")
            ax.set_xticks([])
            ax.set_yticks([])
            label = "CTA MIP %g mm" % slab_mm if mip else "NCCT"
            ax.set_title(f"{name}, {label}", fontsize=9)
    fig.suptitle(overlay_text(report), fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86, wspace=0.05, hspace=0.15)
    return fig


def write_overlay(path, cta: np.ndarray, ncct: np.ndarray, mask: np.ndarray, spacing, report: dict,
                  brain: np.ndarray | None = None, dpi: int = 100, dropped: np.ndarray | None = None) -> None:
    """Render and save ``overlay.png`` atomically (temp name + ``os.replace``)."""
    fig = render_overlay(cta, ncct, mask, spacing, report, brain, dropped=dropped)
    save_figure(fig, path, dpi=dpi)
