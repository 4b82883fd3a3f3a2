"""The DICOM node: CT studies from a DICOMweb PACS -> predict -> thrombus SEG + SR stored back into each study.

Per study (``process_study``):

1. **skip** a study that already holds our SR (Modality SR, SeriesDescription ``SR_SERIES_DESCRIPTION``), unless
   ``overwrite`` (the new SEG and SR are then stored beside the old ones: DICOMweb cannot delete);
2. **retrieve** its CT series (WADO-RS) into a work folder inside ``OUT`` (patient data stays with the outputs,
   removed when the study is done) and sort them into ``NCCT/`` + ``CTA/`` by meaning (``study_layout``);
3. **predict** it as ``nnunet_thrombus predict --dicom-sr`` would, with the node's ``ThrombusCasePredictor`` (the model
   loaded once, for all studies), into ``OUT/<case>/``, the case
   id being ``study-`` + a hash of the StudyInstanceUID (no patient data in folder names); the SEG and SR keep the
   study's patient and study modules (never anonymized: they must open over the patient's images);
4. **store** the SEG and the SR (STOW-RS, one request) into the study.

Nothing is stored unless the SEG and the SR of the study were both written, so a failure at any step leaves the
PACS as it was; it is logged with the study, the step and the error, and the node goes on with the next study.
Every study's outcome is appended to ``OUT/pacs_studies.csv`` (time, study uid, case id, status, detail).
"""
from __future__ import annotations

import csv
import datetime
import hashlib
import logging
import shutil
import tempfile
import time
from pathlib import Path

from nnunet_thrombus.inference.dicom_sr import SR_SERIES_DESCRIPTION
from nnunet_thrombus.inference.options import BatchOptions, OutputOptions
from nnunet_thrombus.pacs.study_layout import split_study

log = logging.getLogger(__name__)

LOG_NAME = "pacs_studies.csv"
LOG_COLUMNS = ["time", "study_uid", "case_id", "status", "detail"]
SEG_NAME, SR_NAME = "thrombus_seg.dcm", "thrombus_sr.dcm"


def study_case_id(study_uid: str) -> str:
    """Case id (output folder name) of a study: ``study-`` + 12 hex digits of a hash of its UID."""
    return "study-" + hashlib.blake2b(study_uid.encode(), digest_size=6).hexdigest()


def already_processed(series: list[dict]) -> bool:
    """True when the study's series (``DicomWebPacs.series``) include an SR this node stored."""
    return any(s["modality"] == "SR" and s["description"] == SR_SERIES_DESCRIPTION for s in series)


def _append_log(out_dir: Path, row: dict) -> None:
    path = out_dir / LOG_NAME
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def process_study(pacs, study_uid: str, out_dir, *, predictor, overwrite: bool = False) -> dict:
    """Skip, retrieve, predict and store one study (module doc). ``predictor``: a ``ThrombusCasePredictor``
    (``inference.pipeline``), built once and used for every study. Returns {"study_uid", "case_id", "status": "stored" |
    "skipped" | "failed", "detail", "stage"}; never raises for a bad study (Ctrl-C still stops)."""
    out_dir = Path(out_dir)
    case_id = study_case_id(study_uid)
    result = {"study_uid": study_uid, "case_id": case_id, "status": "failed", "detail": "", "stage": "search"}
    work = None
    t0 = time.perf_counter()
    try:
        series = pacs.series(study_uid)
        if already_processed(series) and not overwrite:
            result.update(status="skipped", detail="already holds a thrombus SR (give --overwrite to redo)")
            return result
        result["stage"] = "retrieve"
        work = Path(tempfile.mkdtemp(prefix=".pacs_", dir=out_dir))
        downloads = {s["uid"]: pacs.download_series(study_uid, s["uid"], work / "download" / f"{k:03d}")
                     for k, s in enumerate(series) if s["modality"] == "CT"}
        downloads = {uid: files for uid, files in downloads.items() if files}
        result["stage"] = "sort"
        choices = split_study(downloads, work / case_id)
        for c in choices:
            log.info("%s: series %s %r -> %s (%s)", case_id, c.number, c.description, c.scan or "left out", c.reason)
        result["stage"] = "predict"
        res = predictor.predict(work / case_id, out_dir, OutputOptions(dicom_sr=True),
                                BatchOptions(overwrite=True, quiet=True))
        if case_id not in res["done"]:
            raise RuntimeError(res["failed"].get(case_id) or f"predict did not finish {case_id}")
        outputs = [out_dir / case_id / SEG_NAME, out_dir / case_id / SR_NAME]
        missing = [p.name for p in outputs if not p.is_file()]
        if missing:
            raise RuntimeError(f"predict wrote no {', '.join(missing)} (no DICOM CTA to reference?)")
        result["stage"] = "store"
        pacs.store(outputs, study_uid)
        result.update(status="stored", stage="done",
                      detail=f"SEG + SR stored in {time.perf_counter() - t0:.1f} s")
    except Exception as exc:  # one bad study must not stop the node
        result["detail"] = f"{result['stage']}: {type(exc).__name__}: {exc}"
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    return result


def serve_pacs(pacs, out_dir, *, predictor, study_uids=None, filters: dict | None = None,
               limit: int | None = None, overwrite: bool = False, poll_s: float = 0.0,
               max_passes: int | None = None) -> dict:
    """Process the studies ``study_uids`` (None: every study QIDO finds with ``filters``, at most ``limit``), once,
    or every ``poll_s`` seconds until Ctrl-C (or ``max_passes`` passes), with ``predictor`` (a
    ``ThrombusCasePredictor``). Returns {"stored": [uids],
    "skipped": [uids], "failed": {uid: detail}} over all passes; each outcome is logged and appended to
    ``OUT/pacs_studies.csv``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"stored": [], "skipped": [], "failed": {}}
    passes = 0
    while True:
        passes += 1
        uids = list(study_uids) if study_uids else pacs.find_studies(filters, limit=limit)
        log.info("pass %d: %d stud%s to look at", passes, len(uids), "y" if len(uids) == 1 else "ies")
        for uid in uids:
            res = process_study(pacs, uid, out_dir, predictor=predictor, overwrite=overwrite)
            _append_log(out_dir, {"time": datetime.datetime.now().isoformat(timespec="seconds"), "study_uid": uid,
                                  "case_id": res["case_id"], "status": res["status"], "detail": res["detail"]})
            if res["status"] == "failed":
                summary["failed"][uid] = res["detail"]
                log.error("study %s (%s): FAILED, PACS unchanged: %s", uid, res["case_id"], res["detail"])
            else:
                summary[res["status"]].append(uid)
                log.info("study %s (%s): %s (%s)", uid, res["case_id"], res["status"], res["detail"])
        if poll_s <= 0 or (max_passes is not None and passes >= max_passes):
            return summary
        time.sleep(poll_s)
