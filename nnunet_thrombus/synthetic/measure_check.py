"""``measure/`` against the generator's truth: volume, length, NCCT core density, perviousness, side, site.

For ``n_per_site`` phantoms of every clot site (ICA, M1, M2, ACA) this measures truth masks with
:func:`nnunet_thrombus.measure.measure_components` (the report's own code) and compares the result with
what the generator recorded, one row per case and an error table per site (docs/metrics.md):

- ``fine``: the patient's clot at adult anatomy (``crop_preset``, default ``paper``: full-size head, real
  calibre) rendered on a ``crop_mm`` isotropic grid around it (:func:`clot_crop`), noise-free, blur-free,
  without beam-hardening streaks: volume, length, core density and perviousness. This checks the
  measurement *methods*; the voxels are small against the clot (M2 radius about 1 mm). The small presets
  shrink the head but keep real vessel calibre, so their arteries bend tighter than adult ones.
- ``preset``: the whole case at the preset's resolution (``tiny``: 1.5 mm voxels) as a model sees it
  (noise, point-spread function, streaks, NCCT resampled onto the CTA): side and site (the targets), and
  for information the other errors, which there are dominated by the voxel size and the blur.

Truth: ``volume_mm3`` = the rendered clot's volume (:func:`clot_volume_mm3`), ``length_mm`` = the clot's
centreline length, density / perviousness = the intrinsic clot HU over the same core that ``measure`` uses
(mask eroded by one voxel, 6-connected), side and site as drawn.

Run: ``python -m nnunet_thrombus.synthetic.measure_check --n-per-site 30`` (SYNTHETIC).
"""
from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.console import configure_logging, print_result
from nnunet_thrombus.measure import measure_components
from nnunet_thrombus.synthetic.phantom import clot_crop, generate_case
from nnunet_thrombus.vocabulary import CLOT_SITES

logger = logging.getLogger(__name__)

QUANTITIES = ("volume_mm3", "length_mm", "density_hu", "perviousness_hu")
#: targets: relative errors (volume, length), absolute HU (density, perviousness), accuracy (side, site)
TARGETS = {"volume_mm3": 0.02, "length_mm": 0.10, "density_hu": 3.0, "perviousness_hu": 3.0, "side": 1.0,
           "site": 0.95}


def _measured(comps: list[dict]) -> dict:
    big = comps[0]
    return {"volume_mm3": sum(c["volume_mm3"] for c in comps), "length_mm": big["length_mm"],
            "density_hu": big["ncct_mean_hu"], "perviousness_hu": big["perviousness_hu"], "side": big["side"],
            "site": big["site"], "components": len(comps)}


def measure_case(seed: int, site: str, preset: str = "tiny", crop_mm: float = 0.25,
                 crop_preset: str = "paper") -> dict:
    """One phantom with a clot at ``site``: ``{"case", "seed", "site", "truth", "fine", "preset"}``, where
    ``truth`` holds the generator's values and ``fine`` / ``preset`` the measured ones (see module doc)."""
    case = generate_case(seed, preset, site=site)
    t = case.truth
    geo = dict(spacing=case.label.GetSpacing()[::-1], origin=case.label.GetOrigin(), direction=case.label.GetDirection())
    preset_comps = measure_components(sitk.GetArrayFromImage(case.label) > 0,
                                      sitk.GetArrayFromImage(case.ncct_on_cta).astype(np.float64),
                                      sitk.GetArrayFromImage(case.cta).astype(np.float64),
                                      sitk.GetArrayFromImage(case.brain_mask) > 0, **geo)
    crop = clot_crop(seed, crop_preset, crop_mm, site=site, streaks=False)
    fine_comps = measure_components(crop["label"] > 0, crop["ncct"].astype(np.float64),
                                    crop["cta"].astype(np.float64), None, spacing=crop["spacing"],
                                    origin=crop["origin"])
    return {"case": t["case_id"], "seed": seed, "site": site,
            "truth": {"volume_mm3": t["volume_mm3"], "length_mm": t["length_mm"], "side": t["side"],
                      "site": t["site"], "density_hu": t["core_ncct_hu"], "perviousness_hu": t["core_perviousness_hu"],
                      "fine_density_hu": crop["core_ncct_hu"], "fine_perviousness_hu": crop["core_perviousness_hu"],
                      "fine_volume_mm3": crop["volume_mm3"], "fine_length_mm": crop["length_mm"]},
            "fine": _measured(fine_comps), "preset": _measured(preset_comps)}


def run_check(n_per_site: int = 30, preset: str = "tiny", crop_mm: float = 0.25, first_seed: int = 0,
              crop_preset: str = "paper") -> list[dict]:
    """:func:`measure_case` for ``n_per_site`` seeds per site (seed = first_seed + 1000 x site index + k, so
    the four sites are different patients)."""
    return [measure_case(first_seed + 1000 * i + k, site, preset, crop_mm, crop_preset)
            for i, site in enumerate(CLOT_SITES) for k in range(n_per_site)]


def errors(row: dict, which: str) -> dict:
    """Errors of one row at ``which`` ("fine" or "preset"): relative for volume and length, HU for density
    and perviousness (against the core truth of the same grid), booleans for side and site."""
    tr, m = row["truth"], row[which]
    pre = "fine_" if which == "fine" else ""
    dens_true, perv_true = tr[f"{pre}density_hu"], tr[f"{pre}perviousness_hu"]
    vol_true, len_true = tr[f"{pre}volume_mm3"], tr[f"{pre}length_mm"]
    return {"volume_mm3": abs(m["volume_mm3"] - vol_true) / vol_true,
            "length_mm": abs(m["length_mm"] - len_true) / len_true,
            "density_hu": abs(m["density_hu"] - dens_true), "perviousness_hu": abs(m["perviousness_hu"] - perv_true),
            "side": m["side"] == tr["side"], "site": m["site"] == tr["site"]}


def error_table(rows: list[dict], which: str = "fine") -> dict:
    """Per site and overall (``all``): median and maximum error of each quantity, side and site accuracy
    (always from the preset-resolution case), and ``pass`` per :data:`TARGETS` entry (every case within
    the volume/length/HU targets; side and site accuracy at least the target)."""
    out = {}
    for group in CLOT_SITES + ("all",):
        sel = [r for r in rows if group in ("all", r["site"])]
        if not sel:
            continue
        err = [errors(r, which) for r in sel]
        loc = [errors(r, "preset") for r in sel]
        entry = {"n": len(sel)}
        for q in QUANTITIES:
            vals = np.array([e[q] for e in err], float)
            entry[q] = {"median": float(np.median(vals)), "max": float(vals.max())}
        entry["side"] = float(np.mean([e["side"] for e in loc]))
        entry["site"] = float(np.mean([e["site"] for e in loc]))
        entry["pass"] = {q: bool(entry[q]["max"] <= TARGETS[q]) for q in QUANTITIES}
        entry["pass"].update(side=entry["side"] >= TARGETS["side"], site=entry["site"] >= TARGETS["site"])
        out[group] = entry
    return out


def to_markdown(table: dict) -> str:
    """The error table as Markdown (one row per site and one for all cases)."""
    lines = ["| site | n | volume error median / max | length error median / max | density error median / max (HU) "
             "| perviousness error median / max (HU) | side correct | site correct |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for group, t in table.items():
        lines.append(
            f"| {group} | {t['n']} | {100 * t['volume_mm3']['median']:.2f}% / {100 * t['volume_mm3']['max']:.2f}% "
            f"| {100 * t['length_mm']['median']:.1f}% / {100 * t['length_mm']['max']:.1f}% "
            f"| {t['density_hu']['median']:.2f} / {t['density_hu']['max']:.2f} "
            f"| {t['perviousness_hu']['median']:.2f} / {t['perviousness_hu']['max']:.2f} "
            f"| {100 * t['side']:.0f}% | {100 * t['site']:.1f}% |")
    return "\n".join(lines)


def misses(rows: list[dict], which: str = "fine") -> list[str]:
    """One line per case that misses a target (volume/length/HU at ``which``, side/site at the preset)."""
    out = []
    for r in rows:
        e, loc = errors(r, which), errors(r, "preset")
        pre = "fine_" if which == "fine" else ""
        bad = [f"{q} {r[which][q]:.2f} vs {r['truth'][pre + q]:.2f}" for q in ("volume_mm3", "length_mm")
               if e[q] > TARGETS[q]]
        bad += [f"{q} error {e[q]:.2f} HU" for q in ("density_hu", "perviousness_hu") if e[q] > TARGETS[q]]
        bad += [f"{q} {r['preset'][q]} vs {r['truth'][q]}" for q in ("side", "site") if not loc[q]]
        if bad:
            out.append(f"{r['case']} {r['site']} (seed {r['seed']}): " + "; ".join(bad))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="measure/ against the synthetic generator's truth (SYNTHETIC)")
    ap.add_argument("-n", "--n-per-site", type=int, default=30, help="phantoms per site (default: 30)")
    ap.add_argument("-p", "--preset", default="tiny", help="generator preset (default: tiny)")
    ap.add_argument("--crop-mm", type=float, default=0.25, help="voxel size of the fine clot crops, mm (default: 0.25)")
    ap.add_argument("--crop-preset", default="paper", help="anatomy of the fine clot crops (default: paper)")
    ap.add_argument("--first-seed", type=int, default=0, help="first seed (default: 0)")
    args = ap.parse_args(argv)
    configure_logging()
    t0 = time.perf_counter()
    rows = run_check(args.n_per_site, args.preset, args.crop_mm, args.first_seed, args.crop_preset)
    for which in ("fine", "preset"):
        table = error_table(rows, which)
        # the tables are this script's result (stdout); the misses and the timing are log lines
        print_result(f"\n{which}: volume, length, density, perviousness on "
                     f"{f'{args.crop_mm:g} mm {args.crop_preset} clot crops (noise-free)' if which == 'fine' else f'the {args.preset} scans'}; "
                     f"side and site on the {args.preset} scans\n{to_markdown(table)}\ntargets hold: {table['all']['pass']}")
        for line in misses(rows, which):
            logger.warning(f"{which}: {line}")
    logger.info(f"{len(rows)} cases in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
