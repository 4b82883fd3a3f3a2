"""Finding NCCT/CTA/mask files per patient: folder layouts, a CSV manifest, or an nnU-Net images folder.

Layouts under ``root/<patient>/`` (docs/data_formats.md):

- DICOM: ``NCCT/`` and ``CTA/`` folders (any depth of ``*.dcm`` / extension-less files, as a PACS exports them:
  localizers, MIPs, dose reports and stray files beside the images; the series is chosen by
  ``dataset_conversion.series_policy``; ``CTA/`` may hold several phases);
- NIfTI: ``ncct.nii.gz`` and ``cta.nii.gz`` or ``cta_phase1.nii.gz``, ``cta_phase2.nii.gz``, ...;
- masks: ``masks/rater_*.nii.gz`` (several raters -> STAPLE), ``masks/thrombus.nii.gz`` or ``thrombus.nii.gz``
  (the reference label when present);
- optional ``truth.json`` / ``metadata.json`` with ``occlusion_site`` (or ``site``) used for stratification, and
  ``metadata_columns`` (a flat object of scalars) copied into the row of metadata.csv (``Case.meta
  ["metadata_columns"]``): any exporter may use it; the synthetic generator writes its truth and subgroup columns
  there. The converter knows no exporter by name.

Discovery never raises for one bad patient: the problem is stored in ``Case.error``.
"""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


@dataclass
class Case:
    """One patient. ncct/cta: file or DICOM folder; cta_phases: NIfTI phase files in phase order."""

    patient: str
    case_id: str = ""
    ncct: Path | None = None
    cta: Path | None = None
    cta_phases: list[Path] = field(default_factory=list)
    label: Path | None = None
    rater_masks: list[Path] = field(default_factory=list)
    site: str = "unknown"
    meta: dict = field(default_factory=dict)
    error: str | None = None


def safe_case_id(name: str) -> str:
    """ASCII file-name-safe identifier: accents dropped (NFKD), anything else outside [A-Za-z0-9-] becomes '_'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ident = re.sub(r"[^A-Za-z0-9-]+", "_", ascii_name).strip("_")
    return ident or "case"


def _assign_ids(cases: list[Case]) -> list[Case]:
    seen: dict[str, int] = {}
    for case in cases:
        base = safe_case_id(case.patient)
        n = seen.get(base, 0)
        seen[base] = n + 1
        case.case_id = base if n == 0 else f"{base}-{n + 1}"
    return cases


def _find_file(folder: Path, stem: str) -> Path | None:
    for suffix in IMAGE_SUFFIXES:
        for cand in (folder / f"{stem}{suffix}", folder / f"{stem.upper()}{suffix}"):
            if cand.is_file():
                return cand
    return None


def _find_dir(folder: Path, name: str) -> Path | None:
    for child in folder.iterdir():
        if child.is_dir() and child.name.lower() == name.lower():
            return child
    return None


def _read_site(folder: Path, meta: dict) -> str:
    for name in ("metadata.json", "truth.json"):
        path = folder / name
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            columns = data.get("metadata_columns") if isinstance(data, dict) else None
            if isinstance(columns, dict):
                meta["metadata_columns"] = {str(k): v for k, v in columns.items()
                                            if v is None or isinstance(v, (str, int, float, bool))}
            for key in ("occlusion_site", "site"):
                if isinstance(data, dict) and data.get(key) not in (None, ""):
                    meta["site_source"] = name
                    return str(data[key])
    return "unknown"


def discover_patient(folder: Path) -> Case:
    """Case for one patient folder (``Case.error`` set when NCCT or CTA is missing)."""
    case = Case(patient=folder.name)
    case.ncct = _find_dir(folder, "NCCT") or _find_file(folder, "ncct")
    case.cta = _find_dir(folder, "CTA") or _find_file(folder, "cta")
    if case.cta is None:
        phases = []
        for suffix in IMAGE_SUFFIXES:
            phases += list(folder.glob(f"cta_phase*{suffix}"))
        phases = sorted(phases, key=lambda p: int(re.search(r"phase(\d+)", p.name).group(1)))
        if phases:
            case.cta_phases = phases
    masks = folder / "masks"
    if masks.is_dir():
        case.rater_masks = sorted(p for p in masks.iterdir() if p.name.startswith("rater_")
                                  and p.name.endswith(IMAGE_SUFFIXES))
        case.label = _find_file(masks, "thrombus")
    if case.label is None:
        case.label = _find_file(folder, "thrombus")
    case.site = _read_site(folder, case.meta)
    missing = [n for n, v in (("NCCT", case.ncct), ("CTA", case.cta or case.cta_phases)) if not v]
    if missing:
        case.error = f"missing {' and '.join(missing)} (looked for NCCT/ or ncct.nii.gz, CTA/ or cta[_phaseN].nii.gz)"
    return case


def discover_cases(root: str | Path) -> list[Case]:
    """One ``Case`` per sub-folder of ``root`` (sorted by name; hidden folders skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"input root {root} is not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return _assign_ids([discover_patient(p) for p in folders])


def read_manifest(path: str | Path) -> list[Case]:
    """Cases from a CSV with columns ``patient, ncct, cta`` and optional ``masks`` (';'-separated rater masks),
    ``label``, ``site``, ``ncct_series``, ``cta_series`` (SeriesNumber or SeriesInstanceUID to read from a DICOM
    folder that holds several qualifying series). Relative paths are relative to the manifest's folder."""
    path = Path(path)
    base = path.parent
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"manifest {path} has no rows")
    missing = {"patient", "ncct", "cta"} - set(rows[0])
    if missing:
        raise ValueError(f"manifest {path} lacks column(s) {sorted(missing)}; found {sorted(rows[0])}")

    def resolve(value: str | None) -> Path | None:
        value = (value or "").strip()
        return None if not value else (Path(value) if Path(value).is_absolute() else base / value)

    cases = []
    for row in rows:
        case = Case(patient=row["patient"].strip(), ncct=resolve(row["ncct"]), cta=resolve(row["cta"]),
                    label=resolve(row.get("label")), site=(row.get("site") or "").strip() or "unknown")
        case.rater_masks = [p for p in (resolve(v) for v in (row.get("masks") or "").split(";")) if p]
        for key in ("ncct_series", "cta_series"):  # SeriesNumber / UID when a DICOM folder holds several series
            if (row.get(key) or "").strip():
                case.meta[key] = row[key].strip()
        problems = [f"{n} {p} does not exist" for n, p in (("NCCT", case.ncct), ("CTA", case.cta)) if p and not p.exists()]
        problems += [f"missing {n}" for n, p in (("NCCT", case.ncct), ("CTA", case.cta)) if p is None]
        if problems:
            case.error = "; ".join(problems)
        cases.append(case)
    return _assign_ids(cases)


def discover_nnunet_images(folder: str | Path, file_ending: str = ".nii.gz") -> list[Case]:
    """Cases from an nnU-Net images folder: ``<case>_0000`` = CTA, ``<case>_0001`` = NCCT (for predict)."""
    folder = Path(folder)
    ids = sorted({p.name[: -len(file_ending) - 5] for p in folder.glob(f"*_000[01]{file_ending}")})
    cases = []
    for ident in ids:
        case = Case(patient=ident, case_id=ident, cta=folder / f"{ident}_0000{file_ending}",
                    ncct=folder / f"{ident}_0001{file_ending}")
        missing = [n for n, p in (("CTA (_0000)", case.cta), ("NCCT (_0001)", case.ncct)) if not p.is_file()]
        if missing:
            case.error = f"missing {' and '.join(missing)}"
        cases.append(case)
    return cases
