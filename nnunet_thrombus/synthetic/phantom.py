"""One synthetic patient: paired NCCT + CTA with a known thrombus (:func:`generate_case`).

The CTA is sampled on the preset grid (identity direction), which is also the anatomy frame. The
NCCT is a separate acquisition: the patient moved by a random rigid transform (up to 10 degrees and
10 mm), so its *content* is rotated and shifted inside a grid that again has identity direction
(the scanner axes do not move); optionally it has 5 mm slices (slab-averaged thin slices).
``truth["ncct_transform"]`` maps a CTA physical point to the NCCT physical point of the same
anatomy, so ``sitk.Resample(ncct, cta, T)`` puts the NCCT onto the CTA grid (that is ``ncct_on_cta``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from nnunet_thrombus.synthetic.anatomy import draw_head
from nnunet_thrombus.synthetic.presets import Grid, get_preset
from nnunet_thrombus.synthetic.raters import rater_masks
from nnunet_thrombus.synthetic.render import Scene, acquire, render_grid
from nnunet_thrombus.synthetic.thrombus import (SITE_PROBABILITIES, clot_centreline, draw_calcifications,
                                                draw_occlusion, place_occlusion)
from nnunet_thrombus.synthetic.vessels import build_arterial_tree
from nnunet_thrombus.vocabulary import CLOT_SITES, LVO_SITES, NO_CLOT

SITES = CLOT_SITES + (NO_CLOT,)
ISODENSE_BELOW_HU = 45.0   # a clot whose intrinsic NCCT HU is below this is "isodense" (grey matter 37-42 HU)
VESSEL_CTA_FACTOR = {"ICA": 1.0, "BA": 0.97, "M1": 0.97, "ACA": 0.93, "M2": 0.92, "PCA": 0.9,
                     "PComm": 0.9, "AComm": 0.9}


@dataclass
class CaseOptions:
    """Overrides accepted by :func:`generate_case` (None = drawn at random from the seed)."""

    case_id: str | None = None
    site: str | None = None            # ICA, M1, M2, ACA or none
    side: str | None = None            # L or R
    isodense: bool | None = None       # P(isodense) = 0.15
    calcification: bool | None = None  # P(wall calcifications) = 0.35
    thick_slices: bool = False         # NCCT with 5 mm slices
    clot_length_mm: float | None = None
    rigid: bool = True                 # False: NCCT in the CTA pose (identity transform)
    noise: bool = True                 # False: no noise (HU checks)
    blur: bool = True                  # False: no PSF
    streaks: bool = True
    n_raters: int = 0
    vessel_calibre: float | None = None  # arterial radius multiplier; None = the preset's
    max_clot_volume_mm3: float | None = None  # shorten the clot until its mask (CTA grid) is below this, mm^3


@dataclass
class SyntheticCase:
    """One patient. Images are SimpleITK; masks uint8 on the CTA grid; ``tissue`` is [z, y, x]."""

    case_id: str
    cta: sitk.Image
    ncct: sitk.Image
    ncct_on_cta: sitk.Image
    label: sitk.Image
    brain_mask: sitk.Image
    skull_mask: sitk.Image
    artery_mask: sitk.Image
    tissue: np.ndarray
    rater_masks: list
    truth: dict
    clean: dict = field(default_factory=dict)   # noise-free, blur-free HU on the CTA grid: 'ncct', 'cta'


def _draw_transform(rng: np.random.Generator, centre: np.ndarray, enabled: bool) -> sitk.Euler3DTransform:
    """Random rigid motion: rotation angle U(1, 10) degrees about a random axis, shift U(2, 10) mm."""
    angles = rng.uniform(-1, 1, 3)
    target = np.deg2rad(rng.uniform(1.0, 10.0))
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(2.0, 10.0)
    tr = sitk.Euler3DTransform()
    tr.SetCenter([float(c) for c in centre])
    if not enabled:
        return tr
    for _ in range(4):  # rescale the Euler angles until the total rotation angle hits the target
        tr.SetRotation(*[float(a) for a in angles])
        m = np.array(tr.GetMatrix()).reshape(3, 3)
        total = np.arccos(np.clip((np.trace(m) - 1) / 2, -1, 1))
        angles = angles * target / max(total, 1e-9)
    tr.SetRotation(*[float(a) for a in angles])
    tr.SetTranslation([float(s) for s in shift])
    return tr


def _draw_scene(rng: np.random.Generator, scale: float, opts: CaseOptions, calibre: float = 1.0,
                calc_rng: np.random.Generator | None = None) -> tuple[Scene, str, str]:
    head = draw_head(rng, scale)
    vessels = build_arterial_tree(rng, scale, calibre_factor=calibre)
    site = opts.site if opts.site is not None else str(rng.choice(list(SITE_PROBABILITIES),
                                                                  p=list(SITE_PROBABILITIES.values())))
    side = opts.side if opts.side is not None else ("L" if rng.random() < 0.5 else "R")
    isodense = opts.isodense if opts.isodense is not None else bool(rng.random() < 0.15)
    calc = opts.calcification if opts.calcification is not None else bool(rng.random() < 0.35)
    occ = None
    if site != "none":
        occ = draw_occlusion(rng, vessels, site, side, scale, head.skull_base_z, isodense, opts.clot_length_mm)
    calcs = draw_calcifications(calc_rng if calc_rng is not None else rng, vessels, occ, head.skull_base_z, calc)
    ncct = {"scalp": rng.uniform(30, 50), "cortical_bone": rng.uniform(1500, 1850), "diploe": rng.uniform(750, 1000),
            "csf": rng.uniform(3, 12), "grey_matter": rng.uniform(37, 42), "white_matter": rng.uniform(22, 27),
            "blood": rng.uniform(40, 45)}
    ncct["ventricle"] = ncct["csf"]
    cta = dict(ncct, scalp=ncct["scalp"] + rng.uniform(5, 15), grey_matter=ncct["grey_matter"] + rng.uniform(1.5, 3),
               white_matter=ncct["white_matter"] + rng.uniform(1, 2.5), blood=rng.uniform(300, 480))
    s = head.scale
    streak = {}
    if opts.streaks:
        ax, ay = 21.0 * s, 6.0 * s
        rays = [((sx * ax, ay), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(-35, 35)))
                for sx in (1, -1) for _ in range(3)]
        streak = {"apex_xy": (ax, ay), "decay_mm": 12.0 * s, "bar_hu": float(rng.uniform(-50, -20)),
                  "bar_width_mm": 2.5 * np.sqrt(s), "rays": rays, "ray_mm": 30.0 * s,
                  "gain": {"ncct": 1.0, "cta": float(rng.uniform(0.8, 1.2))}}
    scene = Scene(head=head, vessels=vessels, occlusion=occ, calcifications=calcs,
                  hu={"ncct": {k: float(v) for k, v in ncct.items()}, "cta": {k: float(v) for k, v in cta.items()}},
                  vessel_cta_factor=VESSEL_CTA_FACTOR, streak=streak)
    return scene, site, side


def _ncct_grid(cta_grid: Grid, thick: bool, thick_mm: float) -> tuple[Grid, int]:
    """NCCT grid (same centre and in-plane sampling as the CTA) and the number of thin sub-slices per slice."""
    if not thick:
        return cta_grid, 1
    sz = cta_grid.spacing_xyz[2]
    nz = max(2, int(round(cta_grid.shape_zyx[0] * sz / thick_mm)))
    sub = max(2, int(round(thick_mm / sz)))
    fine = Grid.centred((nz * sub, *cta_grid.shape_zyx[1:]), (*cta_grid.spacing_xyz[:2], thick_mm / sub),
                        cta_grid.centre_xyz)
    return fine, sub


def _clot_box(scene: Scene, grid: Grid) -> Grid | None:
    """The part of ``grid`` (same voxels) that holds the clot: its bounding box plus two voxels."""
    pts, rad = clot_centreline(scene.occlusion, scene.vessels)
    sp = np.asarray(grid.spacing_xyz)
    lo = np.floor((pts.min(0) - rad.max() - 2 * sp - grid.origin_xyz) / sp).astype(int)
    hi = np.ceil((pts.max(0) + rad.max() + 2 * sp - grid.origin_xyz) / sp).astype(int) + 1
    lo = np.clip(lo, 0, grid.shape_zyx[::-1])
    hi = np.clip(hi, 0, grid.shape_zyx[::-1])
    if np.any(hi <= lo):
        return None
    return Grid(tuple(int(v) for v in (hi - lo)[::-1]), grid.spacing_xyz,
                tuple(float(v) for v in np.asarray(grid.origin_xyz) + lo * sp))


def _clot_label_volume(scene: Scene, grid: Grid) -> float:
    """Volume (mm^3) of the clot mask (occupancy >= 0.5) on ``grid``, rendered only in the clot's bounding box."""
    sub = _clot_box(scene, grid)
    if sub is None:
        return 0.0
    clot = render_grid(scene, sub, None, ("clot",))["clot"]
    return float((clot >= 0.5).sum() * grid.voxel_volume_mm3)


def clot_volume_mm3(scene: Scene, step_fraction: float = 0.15) -> float:
    """Volume (mm^3) of the rendered clot itself: its occupancy integrated on a fine grid (step about
    ``step_fraction`` x the narrowest lumen radius under the clot, 0.1-0.3 mm; the linear occupancy ramp
    makes this second-order accurate: within 0.3% of a 2.5x finer grid on 16 tiny and demo clots).
    Unlike the centreline integral (:meth:`Occlusion.volume_mm3`) it counts where pieces meet at a
    junction (the lumen's round end caps, filled by the clot) and the outside of bends: for ICA clots over
    the carotid T it was 10-30% short while the vessels kinked there, and is within -3..+5% now."""
    occ = scene.occlusion
    if occ is None:
        return 0.0
    r_min = min(float(scene.vessels[pc.vessel].radius.min()) for pc in occ.pieces)
    h = float(np.clip(step_fraction * r_min, 0.1, 0.3))
    pts, rad = clot_centreline(occ, scene.vessels)
    lo = pts.min(0) - rad.max() - 2 * h
    shape_xyz = np.ceil((pts.max(0) + rad.max() + 2 * h - lo) / h).astype(int) + 1
    fine = Grid(tuple(int(v) for v in shape_xyz[::-1]), (h, h, h), tuple(float(v) for v in lo))
    return float(render_grid(scene, fine, None, ("clot",))["clot"].sum(dtype=np.float64) * h ** 3)


def _shrink_clot(scene: Scene, grid: Grid, max_volume_mm3: float, min_length_mm: float = 1.5) -> None:
    """Shorten ``scene.occlusion`` (same start, same HU) until its mask volume on ``grid`` is below
    ``max_volume_mm3``; raises ValueError naming the site when even ``min_length_mm`` is too large."""
    occ = scene.occlusion
    for _ in range(30):
        vol = _clot_label_volume(scene, grid)
        if vol < max_volume_mm3:
            return
        if occ.length_mm <= min_length_mm + 1e-6:
            break
        new = max(min_length_mm, occ.length_mm * min(0.9, 0.95 * max_volume_mm3 / max(vol, 1e-6)))
        place_occlusion(occ, scene.vessels, new)
    raise ValueError(f"a {occ.site} clot cannot be made smaller than {max_volume_mm3:g} mm^3 on this grid "
                     f"(mask {vol:.1f} mm^3 at {occ.length_mm:.1f} mm): ask for a small clot at M2 or ACA, "
                     f"or a larger volume bound")


def _core_truth(occ, label: np.ndarray, hu_offset: np.ndarray) -> dict:
    """True clot HU over the clot *core*, defined as ``measure`` defines it (the mask eroded by one voxel with
    the 6-connected structure where that leaves a voxel, else the whole mask): intrinsic NCCT HU plus the
    internal heterogeneity at those voxels, and the perviousness (CTA - NCCT, the same at every clot voxel)."""
    if occ is None or not label.any():
        return {"core_ncct_hu": None, "core_perviousness_hu": None, "core_voxels": 0}
    core = ndimage.binary_erosion(label > 0, structure=ndimage.generate_binary_structure(3, 1), border_value=0)
    if not core.any():
        core = label > 0
    return {"core_ncct_hu": float(occ.ncct_hu + hu_offset[core].mean()), "core_perviousness_hu": occ.perviousness_hu,
            "core_voxels": int(core.sum())}


def _patient(seed: int, preset: str, overrides: dict):
    """Validated options, preset, the case's random stream (positioned after the scene) and its scene."""
    names = {f.name for f in fields(CaseOptions)}
    bad = sorted(set(overrides) - names)
    if bad:
        raise ValueError(f"unknown overrides {bad}; accepted: {sorted(names)}")
    opts = CaseOptions(**overrides)
    if opts.site is not None and opts.site not in SITES:
        raise ValueError(f"site must be one of {SITES}, got {opts.site!r}")
    if opts.side is not None and opts.side not in ("L", "R"):
        raise ValueError(f"side must be 'L' or 'R', got {opts.side!r}")
    p = get_preset(preset)
    rng = np.random.default_rng(seed)
    calibre = p.vessel_calibre if opts.vessel_calibre is None else float(opts.vessel_calibre)
    scene, site, side = _draw_scene(rng, p.head_scale, opts, calibre, np.random.default_rng([seed, 1]))
    if opts.max_clot_volume_mm3 is not None and scene.occlusion is not None:
        _shrink_clot(scene, p.grid(), float(opts.max_clot_volume_mm3))
    return opts, p, rng, scene, site, side


def clot_crop(seed: int, preset: str = "tiny", spacing_mm: float = 0.25, margin_mm: float = 2.0,
              **overrides) -> dict:
    """The clot of patient ``(seed, preset, overrides)`` (the same patient :func:`generate_case` makes)
    rendered on a fine isotropic grid of ``spacing_mm`` around it (clot bounding box + ``margin_mm``).

    For measurement checks whose errors must not be dominated by the preset's voxel size. Returns a dict:
    ``label`` (uint8 [z, y, x], occupancy >= 0.5), ``ncct`` / ``cta`` (float32 noise-free, blur-free HU, the
    NCCT in the CTA pose), ``spacing`` (z, y, x mm), ``origin`` (x, y, z mm), and the truth on this grid:
    ``volume_mm3`` (analytic), ``length_mm``, ``core_ncct_hu``, ``core_perviousness_hu``, ``core_voxels``.
    Raises ValueError for a case without a clot.
    """
    opts, _, _, scene, site, _ = _patient(seed, preset, overrides)
    occ = scene.occlusion
    if occ is None:
        raise ValueError(f"seed {seed} ({preset}, site {site}) has no clot to crop; pass site=ICA, M1, M2 or ACA")
    pts, rad = clot_centreline(occ, scene.vessels)
    lo = pts.min(0) - rad.max() - margin_mm
    hi = pts.max(0) + rad.max() + margin_mm
    shape_xyz = np.ceil((hi - lo) / spacing_mm).astype(int) + 1
    grid = Grid(tuple(int(v) for v in shape_xyz[::-1]), (float(spacing_mm),) * 3, tuple(float(v) for v in lo))
    maps = render_grid(scene, grid, None, ("cta", "ncct", "clot", "clot_hu_offset"))
    label = (maps["clot"] >= 0.5).astype(np.uint8)
    return {"label": label, "ncct": maps["ncct"], "cta": maps["cta"], "spacing": (float(spacing_mm),) * 3,
            "origin": grid.origin_xyz, "site": site, "volume_mm3": clot_volume_mm3(scene),
            "length_mm": occ.length_mm, **_core_truth(occ, label, maps["clot_hu_offset"])}


def generate_case(seed: int, preset: str = "tiny", **overrides) -> SyntheticCase:
    """Generate one patient deterministically from ``seed`` at ``preset`` (tiny, demo, paper).

    ``overrides``: fields of :class:`CaseOptions` (site, side, isodense, calcification, thick_slices,
    clot_length_mm, rigid, noise, blur, streaks, n_raters, case_id).
    """
    t_start = time.perf_counter()
    opts, p, rng, scene, site, side = _patient(seed, preset, overrides)
    calibre = p.vessel_calibre if opts.vessel_calibre is None else float(opts.vessel_calibre)
    grid = p.grid()
    spacing_zyx = grid.spacing_xyz[::-1]
    transform = _draw_transform(rng, np.round(grid.centre_xyz, 1), opts.rigid)
    sig_ncct, sig_cta = float(rng.uniform(3, 8)), float(rng.uniform(6, 12))
    psf = (p.psf_sigma_mm,) * 3 if opts.blur else (0.0,) * 3
    cta_maps = render_grid(scene, grid, None, ("cta", "ncct", "tissue", "clot", "lumen", "intracranial",
                                               "clot_hu_offset"))
    cta_img = acquire(cta_maps["cta"], spacing_zyx, psf, sig_cta if opts.noise else 0.0, rng)

    # NCCT: anatomy point = R^T (p - c - t) + c for an NCCT physical point p
    m = np.array(transform.GetMatrix()).reshape(3, 3)
    c, t = np.array(transform.GetCenter()), np.array(transform.GetTranslation())
    fine, sub = _ncct_grid(grid, opts.thick_slices, p.thick_slice_mm)
    ncct_clean = render_grid(scene, fine, (m.T, c - m.T @ (c + t)), ("ncct",))["ncct"]
    if sub > 1:
        ncct_clean = ncct_clean.reshape(-1, sub, *ncct_clean.shape[1:]).mean(axis=1)
        ngrid = Grid.centred(ncct_clean.shape, (*grid.spacing_xyz[:2], p.thick_slice_mm), grid.centre_xyz)
    else:
        ngrid = fine
    npsf = (0.0 if sub > 1 else psf[0], psf[1], psf[2])
    ncct_img = acquire(ncct_clean, ngrid.spacing_xyz[::-1], npsf, sig_ncct if opts.noise else 0.0, rng)

    cta = grid.to_sitk(cta_img)
    ncct = ngrid.to_sitk(ncct_img)
    ncct_on_cta = sitk.Resample(ncct, cta, transform, sitk.sitkLinear, -1024.0, sitk.sitkInt16)
    label = (cta_maps["clot"] >= 0.5).astype(np.uint8)
    if scene.occlusion is not None and not label.any() and cta_maps["clot"].max() > 0:
        # a clot thinner than the voxel spacing can miss every voxel centre: keep its fullest voxel
        label.flat[int(np.argmax(cta_maps["clot"]))] = 1
    raters = [grid.to_sitk(r) for r in rater_masks(label, spacing_zyx, opts.n_raters, rng)]
    case_id = opts.case_id or f"SYN_{seed:04d}"
    occ = scene.occlusion
    truth = {
        "case_id": case_id, "preset": preset, "seed": int(seed), "vessel_calibre": calibre, "occluded": occ is not None,
        "site": site if occ else "none", "side": side if occ else None, "lvo": bool(occ and site in LVO_SITES),
        "volume_mm3": clot_volume_mm3(scene),
        "centreline_volume_mm3": occ.volume_mm3(scene.vessels) if occ else 0.0,
        "label_volume_mm3": float(label.sum() * grid.voxel_volume_mm3),
        "length_mm": occ.length_mm if occ else 0.0,
        "ncct_density_hu": occ.ncct_hu if occ else None,
        "perviousness_hu": occ.perviousness_hu if occ else None,
        "cta_density_hu": occ.ncct_hu + occ.perviousness_hu if occ else None,
        **_core_truth(occ, label, cta_maps["clot_hu_offset"]),
        "isodense": bool(occ and occ.ncct_hu < ISODENSE_BELOW_HU),
        "max_clot_volume_mm3": opts.max_clot_volume_mm3,
        "calcification": bool(scene.calcifications),
        "calcifications_mm": [[float(v) for v in cl.centre] for cl in scene.calcifications],
        "calcifications": [cl.to_truth() for cl in scene.calcifications],
        "clot_vessels": [pc.vessel for pc in occ.pieces] if occ else [],
        "centroid_mm": ([float(v) for v in (np.argwhere(label)[:, ::-1] * grid.spacing_xyz + grid.origin_xyz).mean(0)]
                        if label.any() else None),
        "ncct_transform": {"type": "Euler3D", "angles_rad": [transform.GetAngleX(), transform.GetAngleY(),
                                                             transform.GetAngleZ()],
                           "translation_mm": list(transform.GetTranslation()), "center_mm": list(transform.GetCenter()),
                           "maps": "CTA physical point -> NCCT physical point"},
        "slice_thickness_mm": float(ngrid.spacing_xyz[2]),
        "ncct_noise_hu": sig_ncct if opts.noise else 0.0, "cta_noise_hu": sig_cta if opts.noise else 0.0,
        "spacing": list(grid.spacing_xyz), "shape": list(grid.shape_zyx), "origin": list(grid.origin_xyz),
        "ncct_spacing": list(ngrid.spacing_xyz), "ncct_shape": list(ngrid.shape_zyx),
        "tissue_hu": scene.hu,
    }
    truth["generation_s"] = round(time.perf_counter() - t_start, 3)
    tissue = cta_maps["tissue"]
    return SyntheticCase(
        case_id=case_id, cta=cta, ncct=ncct, ncct_on_cta=ncct_on_cta, label=grid.to_sitk(label),
        brain_mask=grid.to_sitk((cta_maps["intracranial"] >= 0.5).astype(np.uint8)),
        skull_mask=grid.to_sitk((tissue == 2).astype(np.uint8)),
        artery_mask=grid.to_sitk((cta_maps["lumen"] >= 0.5).astype(np.uint8)),
        tissue=tissue, rater_masks=raters, truth=truth,
        clean={"cta": cta_maps["cta"], "ncct": cta_maps["ncct"]})


def euler_from_truth(truth: dict) -> sitk.Euler3DTransform:
    """Rebuild the CTA -> NCCT transform recorded in ``truth['ncct_transform']``."""
    d = truth["ncct_transform"]
    tr = sitk.Euler3DTransform()
    tr.SetCenter(d["center_mm"])
    tr.SetRotation(*d["angles_rad"])
    tr.SetTranslation(d["translation_mm"])
    return tr
