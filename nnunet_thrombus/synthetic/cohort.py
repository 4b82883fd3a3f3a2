"""Write a synthetic cohort to disk: raw per-patient folders (DICOM and/or NIfTI) and an nnU-Net raw dataset.

Layout under ``out_dir`` (see docs/synthetic_data.md)::

    raw_dicom/<case>/NCCT/*.dcm, CTA/*.dcm, masks/thrombus.nii.gz, masks/rater_<k>.nii.gz, truth.json
    raw_nifti/<case>/ncct.nii.gz, cta.nii.gz, masks/..., truth.json
    nnUNet_raw/Dataset<id>_<name>/imagesTr|imagesTs/<case>_0000.nii.gz (CTA), <case>_0001.nii.gz
        (NCCT on the CTA grid through the true transform), labelsTr|labelsTs/<case>.nii.gz,
        dataset.json, metadata.csv

In the nnU-Net images, voxels outside the brain mask (intracranial space) are set to -1024 HU in both
channels (skull stripping, DESIGN.md section 3). Occlusion sites are assigned by quota (largest
remainder of :data:`SITE_PROBABILITIES` x n) and shuffled, and 15% (at least 10%) of the occluded
cases get an isodense clot, so every cohort has the stated class balance.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.synthetic.dicom_io import fake_patient, uid, write_series
from nnunet_thrombus.synthetic.phantom import SyntheticCase, generate_case
from nnunet_thrombus.synthetic.thrombus import SITE_PROBABILITIES

METADATA_COLUMNS = ("case", "split", "site", "side", "lvo", "volume_mm3", "length_mm", "ncct_density_hu",
                    "perviousness_hu", "isodense", "slice_thickness_mm")
SKULL_STRIP_HU = -1024
ISODENSE_SHARE, ISODENSE_MIN_SHARE = 0.15, 0.10   # share of occluded cases with an isodense clot (38-45 HU)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp_{path.name}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _atomic_image(img: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp_{path.name}")
    sitk.WriteImage(img, str(tmp), useCompression=True)
    os.replace(tmp, path)


def site_quota(n_cases: int, rng: np.random.Generator) -> list[str]:
    """Shuffled list of ``n_cases`` sites with counts proportional to :data:`SITE_PROBABILITIES`."""
    names, probs = list(SITE_PROBABILITIES), np.array(list(SITE_PROBABILITIES.values()))
    raw = probs * n_cases
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n_cases - counts.sum()]:
        counts[i] += 1
    sites = [s for s, c in zip(names, counts) for _ in range(c)]
    rng.shuffle(sites)
    return sites


def _write_masks(case: SyntheticCase, folder: Path) -> None:
    _atomic_image(case.label, folder / "masks" / "thrombus.nii.gz")
    for k, r in enumerate(case.rater_masks, start=1):
        _atomic_image(r, folder / "masks" / f"rater_{k}.nii.gz")
    _atomic_text(folder / "truth.json", json.dumps(case.truth, indent=1))


def _skull_strip(img: sitk.Image, brain: sitk.Image) -> sitk.Image:
    arr = sitk.GetArrayFromImage(img)
    arr[sitk.GetArrayFromImage(brain) == 0] = SKULL_STRIP_HU
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


def write_cohort(out_dir, n_cases: int, seed: int = 0, preset: str = "tiny", dataset_id: int = 501,
                 dataset_name: str = "SynthThrombus", n_test: int | None = None, n_raters: int = 0,
                 formats=("dicom", "nifti"), thick_fraction: float = 0.0, overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Generate ``n_cases`` patients and write them under ``out_dir``; returns a summary dict
    (counts per site / LVO / no occlusion, seconds per case, paths).

    n_test: cases put in imagesTs/labelsTs (default round(25%)); n_raters: rater masks per case;
    formats: raw layouts to write ('dicom', 'nifti'); thick_fraction: share of cases whose NCCT has
    5 mm slices. Refuses a non-empty ``out_dir`` unless ``overwrite`` (then only the folders this
    function writes are replaced).
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    bad = sorted(set(formats) - {"dicom", "nifti"})
    if bad:
        raise ValueError(f"unknown formats {bad}; use 'dicom' and/or 'nifti'")
    if not 0.0 <= thick_fraction <= 1.0:
        raise ValueError(f"thick_fraction must be in [0, 1], got {thick_fraction}")
    n_test = int(round(0.25 * n_cases)) if n_test is None else int(n_test)
    if not 0 <= n_test < n_cases:
        raise ValueError(f"n_test must be in [0, n_cases), got n_test={n_test}, n_cases={n_cases}")
    out = Path(out_dir)
    ds_dir = out / "nnUNet_raw" / f"Dataset{dataset_id:03d}_{dataset_name}"
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out} is not empty; pass overwrite=True (--overwrite) to replace it")
        for sub in (out / "raw_dicom", out / "raw_nifti", ds_dir):
            shutil.rmtree(sub, ignore_errors=True)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (ds_dir / sub).mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng([seed, n_cases])
    sites = site_quota(n_cases, rng)
    thick = set(rng.choice(n_cases, int(round(thick_fraction * n_cases)), replace=False).tolist())
    occluded = [i for i, s in enumerate(sites) if s != "none"]
    n_iso = max(int(np.ceil(ISODENSE_MIN_SHARE * len(occluded))), int(round(ISODENSE_SHARE * len(occluded))))
    isodense = set(rng.choice(occluded, n_iso, replace=False).tolist()) if occluded else set()
    test_ids = set(range(n_cases - n_test, n_cases))
    rows, times = [], []
    from tqdm import tqdm

    for i in tqdm(range(n_cases), desc=f"synth {preset}", disable=not progress, unit="case"):
        case_id = f"SYN_{i:04d}"
        t0 = time.perf_counter()
        case = generate_case(seed * 100_000 + i, preset, case_id=case_id, site=sites[i], n_raters=n_raters,
                             thick_slices=i in thick, isodense=i in isodense)
        if "nifti" in formats:
            f = out / "raw_nifti" / case_id
            _atomic_image(case.ncct, f / "ncct.nii.gz")
            _atomic_image(case.cta, f / "cta.nii.gz")
            _write_masks(case, f)
        if "dicom" in formats:
            f = out / "raw_dicom" / case_id
            f.mkdir(parents=True, exist_ok=True)
            patient = fake_patient(case_id, i)
            study, frame = uid(seed, case_id, "study"), uid(seed, case_id, "frame")
            write_series(case.ncct, f / "NCCT", patient, study, uid(seed, case_id, "ncct"), frame, 2,
                         "NCCT HEAD", "101530", contrast=False)
            write_series(case.cta, f / "CTA", patient, study, uid(seed, case_id, "cta"), frame, 3,
                         "CTA HEAD NECK", "102210", contrast=True)
            _write_masks(case, f)
        split = "test" if i in test_ids else "train"
        img_dir, lab_dir = (ds_dir / "imagesTs", ds_dir / "labelsTs") if split == "test" else \
            (ds_dir / "imagesTr", ds_dir / "labelsTr")
        _atomic_image(_skull_strip(case.cta, case.brain_mask), img_dir / f"{case_id}_0000.nii.gz")
        _atomic_image(_skull_strip(case.ncct_on_cta, case.brain_mask), img_dir / f"{case_id}_0001.nii.gz")
        _atomic_image(case.label, lab_dir / f"{case_id}.nii.gz")
        tr = case.truth
        rows.append({"case": case_id, "split": split, "site": tr["site"], "side": tr["side"] or "",
                     "lvo": int(tr["lvo"]), "volume_mm3": round(tr["volume_mm3"], 2),
                     "length_mm": round(tr["length_mm"], 2),
                     "ncct_density_hu": "" if tr["ncct_density_hu"] is None else round(tr["ncct_density_hu"], 2),
                     "perviousness_hu": "" if tr["perviousness_hu"] is None else round(tr["perviousness_hu"], 2),
                     "isodense": int(tr["isodense"]), "slice_thickness_mm": tr["slice_thickness_mm"]})
        times.append(time.perf_counter() - t0)

    n_train = n_cases - n_test
    dataset = {"name": dataset_name, "description": "synthetic paired NCCT + CTA stroke cohort (nnunet_thrombus synth)",
               "channel_names": {"0": "CT", "1": "CT"}, "labels": {"background": 0, "thrombus": 1},
               "numTraining": n_train, "file_ending": ".nii.gz", "reference": "nnunet_thrombus synthetic phantom",
               "licence": "CC0", "synthetic": {"preset": preset, "seed": seed, "skull_strip_hu": SKULL_STRIP_HU,
                                               "channels": {"0": "CTA", "1": "NCCT registered to CTA (true transform)"}}}
    _atomic_text(ds_dir / "dataset.json", json.dumps(dataset, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_text(ds_dir / "metadata.csv", buf.getvalue())

    counts_site = {s: sum(r["site"] == s for r in rows) for s in SITE_PROBABILITIES}
    summary = {
        "n_cases": n_cases, "n_train": n_train, "n_test": n_test, "preset": preset, "seed": seed,
        "counts_site": counts_site, "n_lvo": sum(r["lvo"] for r in rows), "n_no_occlusion": counts_site["none"],
        "n_isodense": sum(r["isodense"] for r in rows), "n_thick": len(thick),
        "seconds_per_case": float(np.mean(times)), "case_seconds": [round(t, 3) for t in times],
        "paths": {"dataset": str(ds_dir), "raw_dicom": str(out / "raw_dicom") if "dicom" in formats else None,
                  "raw_nifti": str(out / "raw_nifti") if "nifti" in formats else None},
    }
    _atomic_text(out / "cohort_summary.json", json.dumps(summary, indent=1))
    return summary
