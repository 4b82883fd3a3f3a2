"""Sample the phantom on a voxel grid and turn tissue fractions into NCCT / CTA Hounsfield units.

``sample_components`` evaluates the continuous anatomy at arbitrary anatomy-frame points (mm) and
returns per-point fractions (tissues, lumen, clot, calcification) plus the position-dependent HU of
the lumen and clot; ``compose`` mixes them into noise-free HU for one modality (linear partial volume);
``render_grid`` does this slab by slab for a grid in any rigid pose; ``acquire`` adds the
point-spread function and correlated Gaussian noise.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from nnunet_thrombus.synthetic.anatomy import BASE_TISSUES, TISSUE_CODES, HeadModel, head_fractions, soft_occupancy
from nnunet_thrombus.synthetic.presets import Grid
from nnunet_thrombus.synthetic.thrombus import Calcification, Occlusion
from nnunet_thrombus.synthetic.vessels import Vessel

CISTERN_MM = 1.2   # CSF sleeve around the basal arteries (basal cisterns, sylvian fissure)
AIR_HU = -1000.0


@dataclass
class Scene:
    """Everything needed to render one patient. ``hu``: modality -> tissue -> HU (intrinsic)."""

    head: HeadModel
    vessels: dict[str, Vessel]
    occlusion: Occlusion | None
    calcifications: list[Calcification]
    hu: dict[str, dict[str, float]]
    vessel_cta_factor: dict[str, float]
    streak: dict = field(default_factory=dict)   # apices, bar and ray parameters, per-modality gain


def _streaks(p: np.ndarray, scene: Scene) -> np.ndarray:
    """Beam-hardening pattern near the skull base (HU for gain 1): a dark band between the petrous
    apices plus thin bright/dark rays from each apex, fading with height above the base."""
    st, head = scene.streak, scene.head
    if not st:
        return np.zeros(p.shape[1], np.float32)
    x, y, z = p
    dz = z - np.float32(head.skull_base_z)
    w_z = np.exp(-np.maximum(dz, 0) / np.float32(st["decay_mm"])) * (dz > -head.base_plate_mm)
    ax, ay = st["apex_xy"]
    dist_bar = np.where(np.abs(x) <= ax, np.abs(y - ay), np.hypot(np.abs(x) - ax, y - ay))
    out = st["bar_hu"] * np.exp(-dist_bar ** 2 / (2 * st["bar_width_mm"] ** 2))
    for (cx, cy), theta, amp in st["rays"]:
        along = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)
        perp = (x - cx) * np.sin(theta) - (y - cy) * np.cos(theta)
        out += amp * np.exp(-perp ** 2 / (2 * 0.8 ** 2)) * (along > 0) / (1 + np.maximum(along, 0) / st["ray_mm"])
    return (out * w_z).astype(np.float32)


def sample_components(p: np.ndarray, scene: Scene, h_mm: float) -> dict[str, np.ndarray]:
    """Per-point fractions and local HU at anatomy-frame points ``p`` (3, n) mm for voxel size ``h_mm``."""
    comp = head_fractions(p, scene.head, h_mm)
    n = p.shape[1]
    for key in ("cistern", "lumen", "lumen_cta_hu", "clot", "clot_hu_offset", "calc", "calc_hu"):
        comp[key] = np.zeros(n, np.float32)
    occ_clot = scene.occlusion
    pieces = {pc.vessel: pc for pc in (occ_clot.pieces if occ_clot else [])}
    blood_cta = scene.hu["cta"]["blood"]
    blood_ncct = scene.hu["ncct"]["blood"]
    for v in scene.vessels.values():
        idx, d, near = v.query(p, CISTERN_MM + h_mm)
        if idx.size == 0:
            continue
        r = v.radius[near]
        t = v.arclength[near]
        lum = soft_occupancy(d - r, h_mm)
        cis = soft_occupancy(d - r - CISTERN_MM, h_mm)
        comp["cistern"][idx] = np.maximum(comp["cistern"][idx], cis)
        hu = np.full(idx.size, blood_cta * scene.vessel_cta_factor[v.segment], np.float32)
        if occ_clot is not None and v.name in occ_clot.distal:
            ramp = np.clip((t - occ_clot.distal[v.name]) / 2.0, 0, 1) if occ_clot.distal[v.name] > 0 else 1.0
            reduced = blood_ncct + occ_clot.distal_factor * (hu - blood_ncct)
            hu = hu + ramp * (reduced - hu)
        better = lum > comp["lumen"][idx]
        comp["lumen"][idx[better]] = lum[better]
        comp["lumen_cta_hu"][idx[better]] = hu[better]
        if v.name in pieces:
            pc = pieces[v.name]
            u = t + pc.offset
            rc = r * occ_clot.radius_scale(u)
            tip = occ_clot.tip_distance(u)
            sd = np.where(tip > 0, np.hypot(d, tip), d - rc)
            clot = np.minimum(soft_occupancy(sd, h_mm), lum)
            comp["clot"][idx] = np.maximum(comp["clot"][idx], clot)
            amp, wl, ph = occ_clot.hu_wave
            comp["clot_hu_offset"][idx] = np.where(clot > 0, amp * np.sin(2 * np.pi * u / wl + ph),
                                                   comp["clot_hu_offset"][idx])
    for c in scene.calcifications:
        lo = c.centres.min(axis=0) - c.radius_mm - h_mm
        hi = c.centres.max(axis=0) + c.radius_mm + h_mm
        inside = np.all((p >= lo[:, None].astype(np.float32)) & (p <= hi[:, None].astype(np.float32)), axis=0)
        idx = np.flatnonzero(inside)
        if idx.size:
            q = p[:, idx]
            dist = np.min([np.linalg.norm(q - ctr[:, None].astype(np.float32), axis=0) for ctr in c.centres], axis=0)
            occ = soft_occupancy(dist - c.radius_mm, h_mm)
            better = occ > comp["calc"][idx]
            comp["calc"][idx[better]] = occ[better]
            comp["calc_hu"][idx[better]] = c.hu
    comp["cistern"] *= comp["intracranial"]
    comp["streak"] = _streaks(p, scene) * comp["head"]
    return comp


def clot_occupancy(p: np.ndarray, scene: Scene, h_mm: float) -> np.ndarray:
    """Clot fraction at anatomy-frame points ``p`` (3, n) for voxels of size ``h_mm``: the ``clot`` channel of
    :func:`sample_components`, computed from the clot's own vessels only (a clot lies in its lumen)."""
    out = np.zeros(p.shape[1], np.float32)
    occ = scene.occlusion
    if occ is None:
        return out
    for pc in occ.pieces:
        v = scene.vessels[pc.vessel]
        idx, d, near = v.query(p, CISTERN_MM + h_mm)
        if idx.size == 0:
            continue
        r, t = v.radius[near], v.arclength[near]
        u = t + pc.offset
        tip = occ.tip_distance(u)
        sd = np.where(tip > 0, np.hypot(d, tip), d - r * occ.radius_scale(u))
        out[idx] = np.maximum(out[idx], np.minimum(soft_occupancy(sd, h_mm), soft_occupancy(d - r, h_mm)))
    return out


def compose(comp: dict[str, np.ndarray], scene: Scene, modality: str) -> np.ndarray:
    """Noise-free HU (float32) of ``modality`` ('ncct' or 'cta') from sampled components."""
    hu_t = scene.hu[modality]
    out = (1.0 - comp["head"]) * np.float32(AIR_HU)
    for name in BASE_TISSUES:
        out += comp[name] * np.float32(hu_t[name])
    out += comp["cistern"] * (np.float32(hu_t["csf"]) - out)
    lumen_hu = comp["lumen_cta_hu"] if modality == "cta" else np.float32(hu_t["blood"])
    out += comp["lumen"] * (lumen_hu - out)
    if scene.occlusion is not None:
        clot_hu = scene.occlusion.ncct_hu + (scene.occlusion.perviousness_hu if modality == "cta" else 0.0)
        out += comp["clot"] * (np.float32(clot_hu) + comp["clot_hu_offset"] - out)
    out += comp["calc"] * (comp["calc_hu"] - out)
    out += comp["streak"] * np.float32(scene.streak.get("gain", {}).get(modality, 0.0))
    return out.astype(np.float32)


def tissue_codes(comp: dict[str, np.ndarray]) -> np.ndarray:
    """Dominant tissue per point as :data:`TISSUE_CODES` (uint8)."""
    stack = np.stack([1.0 - comp["head"], comp["scalp"], comp["cortical_bone"] + comp["diploe"],
                      np.maximum(comp["csf"], comp["cistern"]), comp["grey_matter"], comp["white_matter"],
                      comp["ventricle"]])
    code = np.argmax(stack, axis=0).astype(np.uint8)
    code[comp["lumen"] >= 0.5] = TISSUE_CODES["artery"]
    code[comp["clot"] >= 0.5] = TISSUE_CODES["thrombus"]
    code[comp["calc"] >= 0.5] = TISSUE_CODES["calcification"]
    return code


def render_grid(scene: Scene, grid: Grid, anat_from_grid: tuple[np.ndarray, np.ndarray] | None,
                outputs: tuple[str, ...], max_points: int = 2_000_000) -> dict[str, np.ndarray]:
    """Render ``outputs`` (any of 'ncct', 'cta', 'tissue', 'clot', 'lumen', 'intracranial') on ``grid``.

    ``anat_from_grid`` = (A, b): anatomy point = A @ grid physical point + b (None = identity).
    Arrays come back in ``[z, y, x]`` order (float32; 'tissue' uint8). Rendering runs in z slabs of at
    most ``max_points`` voxels.
    """
    nz, ny, nx = grid.shape_zyx
    h = float(np.mean(grid.spacing_xyz))
    res = {k: np.empty(grid.shape_zyx, np.uint8 if k == "tissue" else np.float32) for k in outputs}
    step = max(1, max_points // (ny * nx))
    for z0 in range(0, nz, step):
        z1 = min(nz, z0 + step)
        p = grid.slab_points(z0, z1)
        if anat_from_grid is not None:
            a, b = anat_from_grid
            p = (a.astype(np.float32) @ p + b.astype(np.float32)[:, None]).astype(np.float32)
        if tuple(outputs) == ("clot",):  # fast path: only the clot's vessels
            res["clot"][z0:z1] = clot_occupancy(p, scene, h).reshape(z1 - z0, ny, nx)
            continue
        comp = sample_components(p, scene, h)
        for k in outputs:
            if k in ("ncct", "cta"):
                val = compose(comp, scene, k)
            elif k == "tissue":
                val = tissue_codes(comp)
            else:
                val = comp[k]
            res[k][z0:z1] = val.reshape(z1 - z0, ny, nx)
    return res


def acquire(clean: np.ndarray, spacing_zyx, psf_sigma_mm: tuple[float, float, float], noise_hu: float,
            rng: np.random.Generator) -> np.ndarray:
    """Blur ``clean`` HU with a Gaussian PSF (sigma in mm, z y x), add correlated Gaussian noise of
    standard deviation ``noise_hu`` and return int16 HU clipped to [-1024, 3071]."""
    sig = [s / sp for s, sp in zip(psf_sigma_mm, spacing_zyx)]
    img = ndimage.gaussian_filter(clean, sig, mode="nearest") if max(sig) > 0 else clean.copy()
    if noise_hu > 0:
        noise = ndimage.gaussian_filter(rng.standard_normal(clean.shape, dtype=np.float32), 0.6)
        img += noise * np.float32(noise_hu / (noise.std() + 1e-6))
    return np.clip(np.rint(img), -1024, 3071).astype(np.int16)
