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

With a test profile (:data:`TEST_PROFILES`, ``CohortSpec(..., test_profile="benchmark")``) the test part
is built case by case from a fixed recipe instead (:func:`plan_test_part`): so many clot-free heads with
and without calcified arteries, so many clots per site, isodense and small clots. That makes the test
part's subgroups certain, not a matter of luck (see :func:`plan_cohort`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from tqdm import tqdm

from nnunet_thrombus.atomic_io import write_image, write_text
from nnunet_thrombus.synthetic.dicom_io import fake_patient, uid, write_series
from nnunet_thrombus.synthetic.phantom import SyntheticCase, generate_case
from nnunet_thrombus.synthetic.thrombus import SITE_PROBABILITIES
# DISTAL_SITES: where a clot under 30 mm^3 fits at every preset's calibre
from nnunet_thrombus.vocabulary import CLOT_SITES, DISTAL_SITES

#: metadata.csv columns (one row per case; truth of the generator, see docs/synthetic_data.md). Subgroup
#: columns for evaluation: ``site``, ``isodense``, ``size_class`` (of the mask volume: ``<30``, ``30-40``,
#: ``>=40`` mm^3, ``none``), ``clot_free_calcified``; ``stratum`` is what the cohort plan asked for.
METADATA_COLUMNS = ("case", "split", "stratum", "site", "side", "lvo", "volume_mm3", "label_volume_mm3",
                    "size_class", "length_mm", "ncct_density_hu", "cta_density_hu", "perviousness_hu", "isodense",
                    "calcification", "n_calcifications", "calcification_max_hu", "clot_free_calcified",
                    "calcifications", "slice_thickness_mm", "seed")
SKULL_STRIP_HU = -1024
ISODENSE_SHARE, ISODENSE_MIN_SHARE = 0.15, 0.10   # share of occluded cases with an isodense clot (38-45 HU)
SIZE_CLASSES_MM3 = (30.0, 40.0)   # size_class boundaries of the clot mask volume, mm^3
#: a planned "small" clot is shortened until its mask is below this (mm^3): under 30 with a margin
SMALL_CLOT_TARGET_MM3 = 27.0


@dataclass(frozen=True)
class CaseSpec:
    """What one planned case must contain; ``None`` leaves a field to :func:`generate_case`'s random draw.

    site: ICA, M1, M2, ACA or none; side: L, R or None; isodense / calcification: forced on or off or
    None; small: shorten the clot until its mask is under :data:`SMALL_CLOT_TARGET_MM3`; thick: 5 mm NCCT;
    split: "train" or "test".
    """

    site: str
    side: str | None = None
    isodense: bool | None = None
    calcification: bool | None = None
    small: bool = False
    thick: bool = False
    split: str = "train"

    @property
    def stratum(self) -> str:
        """Short label of what was asked, e.g. ``M2 L small isodense``, ``none calcified``."""
        if self.site == "none":
            return "none" + {True: " calcified", False: " plain", None: ""}[self.calcification]
        words = [self.site] + ([self.side] if self.side else []) + (["small"] if self.small else [])
        words += ["isodense"] if self.isodense else []
        words += ["calcified"] if self.calcification else []
        return " ".join(words)

    def overrides(self) -> dict:
        """Keyword overrides for :func:`generate_case`."""
        out = {"site": self.site, "thick_slices": self.thick}
        for key in ("side", "isodense", "calcification"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.small:
            out["max_clot_volume_mm3"] = SMALL_CLOT_TARGET_MM3
        return out


@dataclass(frozen=True)
class TestProfile:
    """Recipe of a test part of ``n`` cases (shares of n or of its clots, with floors).

    clot-free heads: ``max(min_clot_free, round(clot_free_share * n))``, of which
    ``max(min_clot_free_calcified, ceil(calcified_share * clot-free))`` have calcified arteries;
    clots: the rest, split over sites by ``site_shares`` (largest remainder, each site at least one once
    there are 4 clots); isodense clots ``max(min_isodense, ceil(isodense_share * clots))``; small clots
    (M2/ACA only) ``max(min_small, ceil(small_share * clots))``; clots that also have calcifications
    elsewhere ``round(calcified_clot_share * clots)``. ``min_test``: the smallest n for which the floors
    are guaranteed (smaller n is refused for ``strict`` profiles, otherwise only proportional).
    """

    name: str
    min_test: int
    strict: bool
    clot_free_share: float
    min_clot_free: int
    calcified_share: float
    min_clot_free_calcified: int
    site_shares: tuple
    isodense_share: float
    min_isodense: int
    small_share: float
    min_small: int
    calcified_clot_share: float
    guarantees: str


TEST_PROFILES = {
    # the benchmark's test set: >= 40 test cases, >= 30 with clots, >= 10 clot-free (some calcified), every site, isodense and
    # clots under 30 mm^3
    "benchmark": TestProfile(
        "benchmark", min_test=40, strict=False, clot_free_share=0.25, min_clot_free=0, calcified_share=0.6,
        min_clot_free_calcified=0, site_shares=(("ICA", 0.2), ("M1", 0.3), ("M2", 0.25), ("ACA", 0.25)),
        isodense_share=0.2, min_isodense=1, small_share=0.25, min_small=1, calcified_clot_share=0.3,
        guarantees="n >= 40: >= 30 clots (ICA, M1, M2, ACA each >= 6), >= 10 clot-free of which >= 6 calcified, "
                   ">= 6 isodense, >= 8 small (mask < 30 mm^3)"),
    # the trust evaluation: >= 20 clot-free with calcifications, >= 20 M2/ACA, >= 20 isodense, >= 20 under 40 mm^3
    "evaluation": TestProfile(
        "evaluation", min_test=60, strict=True, clot_free_share=0.35, min_clot_free=24, calcified_share=0.8,
        min_clot_free_calcified=20, site_shares=(("ICA", 0.14), ("M1", 0.2), ("M2", 0.33), ("ACA", 0.33)),
        isodense_share=0.3, min_isodense=20, small_share=0.35, min_small=20, calcified_clot_share=0.3,
        guarantees="n >= 60: >= 20 clot-free with calcified arteries, >= 20 M2/ACA clots, >= 20 isodense, "
                   ">= 20 small (mask < 30 mm^3, so also < 40 mm^3), every site"),
}


def _atomic_text(path: Path, text: str) -> None:
    write_text(path, text)


def _atomic_image(img: sitk.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(img, path)


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


def _largest_remainder(n: int, shares: dict) -> dict:
    """Split ``n`` over the keys of ``shares`` (proportional, largest remainder, ties in key order)."""
    names, probs = list(shares), np.array(list(shares.values()), float)
    raw = probs / probs.sum() * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return dict(zip(names, (int(c) for c in counts)))


def _round_robin(groups: dict, n_pick: int, first: int = 0) -> set:
    """``n_pick`` items taken in turn from the lists in ``groups`` (starting with the ``first``-th group,
    each list in its own order), so picks spread over the groups; fewer when the lists run out."""
    queues = [list(v) for v in groups.values()]
    picked: set = set()
    k = first
    while len(picked) < n_pick and any(queues):
        q = queues[k % len(queues)]
        if q:
            picked.add(q.pop(0))
        k += 1
    return picked


def plan_test_part(n_test: int, profile: str = "benchmark", rng: np.random.Generator | None = None) -> list[CaseSpec]:
    """The test part of a cohort as ``n_test`` :class:`CaseSpec` (split "test"), built from a fixed recipe.

    ``profile``: a key of :data:`TEST_PROFILES`. The counts depend only on ``n_test`` and the profile (never on
    luck); ``rng`` only shuffles the order of the cases. Clots are listed site by site in turn (ICA, M1, M2,
    ACA, ICA, ...); isodense, small and calcified clots are taken from the sites in turn, so they fall on
    every site (small: M2 and ACA only); sides alternate L, R within a site. Raises ValueError when a strict
    profile (``evaluation``) gets fewer than its ``min_test`` cases.
    """
    if profile not in TEST_PROFILES:
        raise ValueError(f"unknown test profile {profile!r}; choose one of {sorted(TEST_PROFILES)}")
    prof = TEST_PROFILES[profile]
    n = int(n_test)
    if n < 0:
        raise ValueError(f"n_test must be >= 0, got {n_test}")
    if prof.strict and n < prof.min_test:
        raise ValueError(f"test profile {profile!r} needs at least {prof.min_test} test cases to hold its minimums "
                         f"({prof.guarantees}); got {n}: pass a larger test size")
    n_free = min(n, max(prof.min_clot_free, int(round(prof.clot_free_share * n))))
    if n >= 2:
        n_free = max(n_free, 1)
        n_free = min(n_free, n - 1)
    n_clots = n - n_free
    n_calc_free = min(n_free, max(prof.min_clot_free_calcified, math.ceil(prof.calcified_share * n_free)))
    sites = _largest_remainder(n_clots, dict(prof.site_shares))
    if n_clots >= len(CLOT_SITES):  # every site at least once
        for site in CLOT_SITES:
            while sites[site] == 0:
                donor = max(sites, key=lambda k: sites[k])
                sites[donor] -= 1
                sites[site] += 1
    # interleave sites: ICA, M1, M2, ACA, ICA, ... with sides alternating within a site
    queues = {s: [("L" if k % 2 == 0 else "R") for k in range(c)] for s, c in sites.items()}
    clots = []
    while any(queues.values()):
        for site in CLOT_SITES:
            if queues[site]:
                clots.append([site, queues[site].pop(0)])
    n_iso = min(n_clots, max(prof.min_isodense, math.ceil(prof.isodense_share * n_clots))) if n_clots else 0
    n_distal = sum(site in DISTAL_SITES for site, _ in clots)
    n_small = min(n_distal, max(prof.min_small, math.ceil(prof.small_share * n_clots))) if n_clots else 0
    n_calc_clot = int(round(prof.calcified_clot_share * n_clots))
    by_site = {site: [i for i, (s, _) in enumerate(clots) if s == site] for site in CLOT_SITES}
    iso = _round_robin(by_site, n_iso, first=0)
    small = _round_robin({s: by_site[s][::-1] for s in DISTAL_SITES}, n_small, first=0)
    calc = _round_robin({s: by_site[s][len(by_site[s]) // 2:] + by_site[s][:len(by_site[s]) // 2]
                         for s in CLOT_SITES}, n_calc_clot, first=1)
    specs = [CaseSpec(site, side, isodense=i in iso, calcification=i in calc, small=i in small, split="test")
             for i, (site, side) in enumerate(clots)]
    specs += [CaseSpec("none", None, isodense=False, calcification=k < n_calc_free, split="test")
              for k in range(n_free)]
    if rng is not None:
        order = rng.permutation(len(specs))
        specs = [specs[i] for i in order]
    return specs


def plan_cohort(n_cases: int, n_test: int, seed: int = 0, test_profile: str | None = None,
                thick_fraction: float = 0.0) -> list[CaseSpec]:
    """Per-case recipe of a cohort: ``n_cases`` :class:`CaseSpec`, the last ``n_test`` of them the test part.

    ``test_profile=None``: the classic random-by-quota cohort (sites by :func:`site_quota` over all cases,
    15% isodense, calcifications left to chance), exactly as earlier versions wrote it. With a profile
    (``"benchmark"`` or ``"evaluation"``, :data:`TEST_PROFILES`): the training part keeps the quota rules
    (and half of its clot-free heads get calcified arteries, so a model sees mimics in training), and the
    test part comes from :func:`plan_test_part`, whose composition is fixed by ``n_test`` and the profile.
    ``thick_fraction`` of all cases get 5 mm NCCT slices. Deterministic in ``seed``.
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if not 0 <= n_test < n_cases:
        raise ValueError(f"n_test must be in [0, n_cases), got n_test={n_test}, n_cases={n_cases}")
    rng = np.random.default_rng([seed, n_cases])
    n_train = n_cases - n_test
    sites = site_quota(n_cases if test_profile is None else n_train, rng)
    thick = set(rng.choice(n_cases, int(round(thick_fraction * n_cases)), replace=False).tolist())
    occluded = [i for i, s in enumerate(sites) if s != "none"]
    n_iso = max(int(np.ceil(ISODENSE_MIN_SHARE * len(occluded))), int(round(ISODENSE_SHARE * len(occluded))))
    isodense = set(rng.choice(occluded, n_iso, replace=False).tolist()) if occluded else set()
    if test_profile is None:
        return [CaseSpec(s, isodense=i in isodense, thick=i in thick, split="test" if i >= n_train else "train")
                for i, s in enumerate(sites)]
    free = [i for i, s in enumerate(sites) if s == "none"]
    calcified = set(free[::2])
    train = [CaseSpec(s, isodense=i in isodense, calcification=True if i in calcified else None, thick=i in thick)
             for i, s in enumerate(sites)]
    test = plan_test_part(n_test, test_profile, np.random.default_rng([seed, n_cases, n_test]))
    test = [replace(spec, thick=(n_train + k) in thick) for k, spec in enumerate(test)]
    return train + test


def size_class(label_volume_mm3: float, occluded: bool) -> str:
    """Subgroup of a clot by its mask volume: ``<30``, ``30-40``, ``>=40`` (mm^3) or ``none``."""
    if not occluded:
        return "none"
    a, b = SIZE_CLASSES_MM3
    return f"<{a:g}" if label_volume_mm3 < a else f"{a:g}-{b:g}" if label_volume_mm3 < b else f">={b:g}"


def metadata_row(truth: dict, split: str, stratum: str = "") -> dict:
    """One metadata.csv row (:data:`METADATA_COLUMNS`) from a case's ``truth`` dict."""
    def num(v, nd=2):
        return "" if v is None else round(float(v), nd)

    calcs = truth.get("calcifications", [])
    return {
        "case": truth["case_id"], "split": split, "stratum": stratum, "site": truth["site"],
        "side": truth["side"] or "", "lvo": int(truth["lvo"]), "volume_mm3": num(truth["volume_mm3"]),
        "label_volume_mm3": num(truth["label_volume_mm3"]),
        "size_class": size_class(truth["label_volume_mm3"], truth["occluded"]),
        "length_mm": num(truth["length_mm"]), "ncct_density_hu": num(truth["ncct_density_hu"]),
        "cta_density_hu": num(truth.get("cta_density_hu")), "perviousness_hu": num(truth["perviousness_hu"]),
        "isodense": int(truth["isodense"]), "calcification": int(bool(calcs)), "n_calcifications": len(calcs),
        "calcification_max_hu": num(max((c["hu"] for c in calcs), default=None), 1),
        "clot_free_calcified": int(bool(calcs) and not truth["occluded"]),
        "calcifications": json.dumps([{"kind": c["kind"], "vessel": c["vessel"], "centre_mm": c["centre_mm"],
                                       "radius_mm": c["radius_mm"], "hu": c["hu"]} for c in calcs],
                                     separators=(",", ":")) if calcs else "",
        "slice_thickness_mm": truth["slice_thickness_mm"], "seed": truth["seed"],
    }


def truth_columns(truth: dict) -> dict:
    """The truth and subgroup columns of :func:`metadata_row` that a converter adds to its own metadata.csv
    (everything but case, split, stratum, site and slice thickness, which the converter writes itself)."""
    row = metadata_row(truth, split="")
    return {k: v for k, v in row.items() if k not in ("case", "split", "stratum", "site", "slice_thickness_mm")}


def composition(rows: list[dict], split: str = "test") -> dict:
    """Counts of the subgroups among metadata ``rows`` of one split (from the recorded truth, not the plan)."""
    rows = [r for r in rows if r["split"] == split]
    clots = [r for r in rows if r["site"] != "none"]
    return {
        "n": len(rows), "clots": len(clots), "clot_free": len(rows) - len(clots),
        "clot_free_calcified": sum(int(r["clot_free_calcified"]) for r in rows),
        "sites": {s: sum(r["site"] == s for r in clots) for s in CLOT_SITES},
        "m2_aca": sum(r["site"] in DISTAL_SITES for r in clots), "isodense": sum(int(r["isodense"]) for r in clots),
        "under_30_mm3": sum(r["size_class"] == "<30" for r in clots),
        "under_40_mm3": sum(r["size_class"] in ("<30", "30-40") for r in clots),
    }


def check_composition(counts: dict, profile: str) -> list[str]:
    """Guarantees of ``profile`` that ``counts`` (from :func:`composition`) miss; [] when all hold or when
    the test part is smaller than the profile's ``min_test``."""
    prof = TEST_PROFILES[profile]
    if counts["n"] < prof.min_test:
        return []
    need = {"benchmark": {"clots": 30, "clot_free": 10, "clot_free_calcified": 1, "isodense": 1, "under_30_mm3": 1},
            "evaluation": {"clot_free_calcified": 20, "m2_aca": 20, "isodense": 20, "under_40_mm3": 20}}[profile]
    missing = [f"{k} {counts[k]} < {v}" for k, v in need.items() if counts[k] < v]
    missing += [f"no {s} clot" for s, c in counts["sites"].items() if c == 0]
    return missing


def _write_masks(case: SyntheticCase, folder: Path) -> None:
    _atomic_image(case.label, folder / "masks" / "thrombus.nii.gz")
    for k, r in enumerate(case.rater_masks, start=1):
        _atomic_image(r, folder / "masks" / f"rater_{k}.nii.gz")
    # metadata_columns: the columns any converter copies into its metadata.csv (it reads them by this key only)
    truth = {**case.truth, "metadata_columns": truth_columns(case.truth)}
    _atomic_text(folder / "truth.json", json.dumps(truth, indent=1))


def _skull_strip(img: sitk.Image, brain: sitk.Image) -> sitk.Image:
    arr = sitk.GetArrayFromImage(img)
    arr[sitk.GetArrayFromImage(brain) == 0] = SKULL_STRIP_HU
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(img)
    return out


@dataclass(frozen=True)
class CohortSpec:
    """What cohort to generate.

    n_cases: patients; seed: cohort seed (case ``i`` is drawn with seed ``seed * 100000 + i``); preset: head
    geometry preset (:mod:`nnunet_thrombus.synthetic.presets`); dataset_id / dataset_name: the nnU-Net dataset
    ``Dataset<id>_<name>``; n_test: cases put in imagesTs/labelsTs (the last ``n_test`` case ids; None: round(25%));
    n_raters: rater masks per case; thick_fraction: share of cases whose NCCT has 5 mm slices; test_profile: None
    (classic quota cohort) or a key of :data:`TEST_PROFILES` for a test part of fixed composition
    (:func:`plan_cohort`). Bad values raise ``ValueError``.
    """

    n_cases: int
    seed: int = 0
    preset: str = "tiny"
    dataset_id: int = 501
    dataset_name: str = "SynthThrombus"
    n_test: int | None = None
    n_raters: int = 0
    thick_fraction: float = 0.0
    test_profile: str | None = None

    def __post_init__(self):
        if self.n_cases < 1:
            raise ValueError(f"n_cases must be >= 1, got {self.n_cases}")
        if not 0.0 <= self.thick_fraction <= 1.0:
            raise ValueError(f"thick_fraction must be in [0, 1], got {self.thick_fraction}")
        if not 0 <= self.test_cases < self.n_cases:
            raise ValueError(f"n_test must be in [0, n_cases), got n_test={self.n_test}, n_cases={self.n_cases}")

    @property
    def test_cases(self) -> int:
        return int(round(0.25 * self.n_cases)) if self.n_test is None else int(self.n_test)

    def dataset_folder(self, out_dir: Path) -> Path:
        return Path(out_dir) / "nnUNet_raw" / f"Dataset{self.dataset_id:03d}_{self.dataset_name}"


def write_cohort(out_dir, spec: CohortSpec, formats=("dicom", "nifti"), overwrite: bool = False,
                 progress: bool = True) -> dict:
    """Generate ``spec.n_cases`` patients and write them under ``out_dir`` in the raw ``formats`` ('dicom',
    'nifti') and as an nnU-Net raw dataset; returns a summary dict (counts per site / LVO / no occlusion, test-part
    composition, seconds per case, paths), also written to ``cohort_summary.json``.

    Refuses a non-empty ``out_dir`` unless ``overwrite`` (then only the folders this function writes are replaced).
    ``summary["test_composition"]`` counts the test subgroups from the recorded truth and
    ``summary["composition_missing"]`` lists the profile's guarantees it misses (empty when they hold).
    """
    bad = sorted(set(formats) - {"dicom", "nifti"})
    if bad:
        raise ValueError(f"unknown formats {bad}; use 'dicom' and/or 'nifti'")
    plan = plan_cohort(spec.n_cases, spec.test_cases, spec.seed, spec.test_profile,
                       spec.thick_fraction)  # validates the profile first
    out, ds_dir = Path(out_dir), spec.dataset_folder(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output folder {out} is not empty; pass overwrite=True (--overwrite) to replace it")
        for sub in (out / "raw_dicom", out / "raw_nifti", ds_dir):
            shutil.rmtree(sub, ignore_errors=True)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (ds_dir / sub).mkdir(parents=True, exist_ok=True)
    rows, times = [], []
    for i in tqdm(range(spec.n_cases), desc=f"synth {spec.preset}", disable=not progress, unit="case"):
        t0 = time.perf_counter()
        rows.append(_write_case(spec, plan[i], i, out, formats))
        times.append(time.perf_counter() - t0)
    _write_dataset_files(spec, ds_dir, rows)
    counts_site = {s: sum(r["site"] == s for r in rows) for s in SITE_PROBABILITIES}
    test_composition = composition(rows, "test")
    summary = {
        "n_cases": spec.n_cases, "n_train": spec.n_cases - spec.test_cases, "n_test": spec.test_cases,
        "preset": spec.preset, "seed": spec.seed, "counts_site": counts_site, "n_lvo": sum(r["lvo"] for r in rows),
        "n_no_occlusion": counts_site["none"], "n_isodense": sum(r["isodense"] for r in rows),
        "n_thick": sum(case.thick for case in plan), "test_profile": spec.test_profile,
        "test_composition": test_composition,
        "composition_missing": check_composition(test_composition, spec.test_profile) if spec.test_profile else [],
        "seconds_per_case": float(np.mean(times)), "case_seconds": [round(t, 3) for t in times],
        "paths": {"dataset": str(ds_dir), "raw_dicom": str(out / "raw_dicom") if "dicom" in formats else None,
                  "raw_nifti": str(out / "raw_nifti") if "nifti" in formats else None},
    }
    _atomic_text(out / "cohort_summary.json", json.dumps(summary, indent=1))
    return summary


def _write_case(spec: CohortSpec, planned: CaseSpec, i: int, out: Path, formats) -> dict:
    """Generate case ``i`` as ``planned`` and write its raw folders (``formats``) and its nnU-Net images and label
    (skull-stripped, NCCT on the CTA grid); returns its metadata.csv row."""
    case_id = f"SYN_{i:04d}"
    case = generate_case(spec.seed * 100_000 + i, spec.preset, case_id=case_id, n_raters=spec.n_raters,
                         **planned.overrides())
    if "nifti" in formats:
        f = out / "raw_nifti" / case_id
        _atomic_image(case.ncct, f / "ncct.nii.gz")
        _atomic_image(case.cta, f / "cta.nii.gz")
        _write_masks(case, f)
    if "dicom" in formats:
        f = out / "raw_dicom" / case_id
        f.mkdir(parents=True, exist_ok=True)
        patient = fake_patient(case_id, i)
        study, frame = uid(spec.seed, case_id, "study"), uid(spec.seed, case_id, "frame")
        write_series(case.ncct, f / "NCCT", patient, study, uid(spec.seed, case_id, "ncct"), frame, 2,
                     "NCCT HEAD", "101530", contrast=False)
        write_series(case.cta, f / "CTA", patient, study, uid(spec.seed, case_id, "cta"), frame, 3,
                     "CTA HEAD NECK", "102210", contrast=True)
        _write_masks(case, f)
    ds_dir = spec.dataset_folder(out)
    part = "Ts" if planned.split == "test" else "Tr"
    img_dir, lab_dir = ds_dir / f"images{part}", ds_dir / f"labels{part}"
    _atomic_image(_skull_strip(case.cta, case.brain_mask), img_dir / f"{case_id}_0000.nii.gz")
    _atomic_image(_skull_strip(case.ncct_on_cta, case.brain_mask), img_dir / f"{case_id}_0001.nii.gz")
    _atomic_image(case.label, lab_dir / f"{case_id}.nii.gz")
    return metadata_row(case.truth, planned.split, planned.stratum)


def _write_dataset_files(spec: CohortSpec, ds_dir: Path, rows: list[dict]) -> None:
    """nnU-Net's dataset.json and our metadata.csv (one row per case)."""
    dataset = {"name": spec.dataset_name,
               "description": "synthetic paired NCCT + CTA stroke cohort (nnunet_thrombus synth)",
               "channel_names": {"0": "CT", "1": "CT"}, "labels": {"background": 0, "thrombus": 1},
               "numTraining": spec.n_cases - spec.test_cases, "file_ending": ".nii.gz",
               "reference": "nnunet_thrombus synthetic phantom", "licence": "CC0",
               "synthetic": {"preset": spec.preset, "seed": spec.seed, "skull_strip_hu": SKULL_STRIP_HU,
                             "channels": {"0": "CTA", "1": "NCCT registered to CTA (true transform)"}}}
    _atomic_text(ds_dir / "dataset.json", json.dumps(dataset, indent=2))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METADATA_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _atomic_text(ds_dir / "metadata.csv", buf.getvalue())
