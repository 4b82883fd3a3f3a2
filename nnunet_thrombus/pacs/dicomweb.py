"""The PACS as seen through DICOMweb (``dicomweb-client``): QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Only the few calls the node needs, with their answers reduced to plain values (UIDs, descriptions, paths), so the
node's logic reads without DICOM JSON. Install with ``pip install "nnunet_thrombus[pacs]"``.
"""
from __future__ import annotations

import logging
from pathlib import Path

import pydicom

log = logging.getLogger(__name__)

#: DICOM JSON tags used below
STUDY_UID, SERIES_UID, MODALITY, SERIES_DESCRIPTION = "0020000D", "0020000E", "00080060", "0008103E"
SERIES_NUMBER, FAILED_SOP_SEQUENCE = "00200011", "00081198"


def _value(item: dict, tag: str, default=""):
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else default


class DicomWebPacs:
    """One DICOMweb server (``url``: its base, e.g. ``http://HOST:8042/dicom-web``).

    user/password: HTTP basic authentication (None: none); timeout_s: per request."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None, timeout_s: float = 60.0):
        try:
            from dicomweb_client.api import DICOMwebClient
        except ImportError as exc:  # the optional extra is missing
            raise RuntimeError("the DICOM node needs dicomweb-client: pip install 'nnunet_thrombus[pacs]'") from exc
        import requests

        session = requests.Session()
        if user:
            session.auth = (user, password or "")
        self.url = url.rstrip("/")
        self.client = DICOMwebClient(self.url, session=session, timeout=timeout_s)

    def find_studies(self, filters: dict | None = None, limit: int | None = None) -> list[str]:
        """StudyInstanceUIDs of the studies matching the QIDO ``filters`` (e.g. {"ModalitiesInStudy": "CT",
        "StudyDate": "20260101-20261231"}), at most ``limit`` (None: as many as the server returns at once)."""
        # one request: dicomweb-client's paging (get_remaining) never ends against servers that ignore offset
        found = self.client.search_for_studies(search_filters=dict(filters or {}), limit=limit)
        return [str(_value(s, STUDY_UID)) for s in found if _value(s, STUDY_UID)]

    def series(self, study_uid: str) -> list[dict]:
        """The series of one study: [{"uid", "modality", "description", "number"}]."""
        found = self.client.search_for_series(study_instance_uid=study_uid,
                                              fields=["SeriesDescription", "Modality", "SeriesNumber"])
        return [{"uid": str(_value(s, SERIES_UID)), "modality": str(_value(s, MODALITY)),
                 "description": str(_value(s, SERIES_DESCRIPTION)), "number": _value(s, SERIES_NUMBER, None)}
                for s in found]

    def download_series(self, study_uid: str, series_uid: str, folder) -> list[Path]:
        """Every instance of one series written into ``folder`` (one file each, as sent); returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, ds in enumerate(self.client.iter_series(study_uid, series_uid)):
            path = folder / f"{i:05d}.dcm"
            ds.save_as(str(path), enforce_file_format=True)
            paths.append(path)
        return paths

    def store(self, paths, study_uid: str) -> None:
        """STOW-RS of the DICOM files ``paths`` into ``study_uid``, in one request; raises ``RuntimeError`` when
        the server refuses any of them (its FailedSOPSequence), naming them."""
        datasets = [pydicom.dcmread(str(p)) for p in paths]
        answer = self.client.store_instances(datasets=datasets, study_instance_uid=study_uid)
        failed = getattr(answer, "FailedSOPSequence", None) or []
        if failed:
            uids = [str(getattr(f, "ReferencedSOPInstanceUID", "?")) for f in failed]
            raise RuntimeError(f"the PACS refused {len(uids)} of {len(datasets)} instance(s): {uids}")
