"""The secret key of de-identification and what it derives: new UIDs (HMAC-SHA256, ``2.25.<int>``) and the
per-patient date shift; its file (written whole or not at all, mode 0600, never overwritten)."""
from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID_dictionary

from nnunet_thrombus.deidentify.errors import DeidentificationError

#: default name of the key file written beside the outputs when the user names none
KEY_FILE_NAME = "deid_key.txt"
_KEY_HEADER = "nnunet_thrombus de-identification key v1"
#: how far back dates move (days, inclusive range); one shift per source patient under one key
DATE_SHIFT_DAYS = (365, 3650)


@dataclass(frozen=True)
class DeidKey:
    """A de-identification secret (32 random bytes) and the file it lives in (None when not stored)."""

    secret: bytes = field(repr=False)  # never printed in a log or traceback
    path: Path | None = None

    def _digest(self, purpose: str, text: str) -> bytes:
        return hmac.new(self.secret, f"{purpose}\x00{text}".encode("utf-8"), hashlib.sha256).digest()

    def uid(self, old: str) -> str:
        """New UID ``2.25.<128-bit integer>`` for ``old``: the same under one key, unrelated across keys. UIDs the
        DICOM standard defines (SOP classes, transfer syntaxes) come back unchanged."""
        old = str(old).strip()
        if not old or old in UID_dictionary:
            return old
        return "2.25." + str(int.from_bytes(self._digest("uid", old)[:16], "big"))

    def shift_days(self, patient: str) -> int:
        """Days every date of ``patient`` (an identity string of the source) moves back, in ``DATE_SHIFT_DAYS``."""
        lo, hi = DATE_SHIFT_DAYS
        return lo + int.from_bytes(self._digest("date", patient)[:8], "big") % (hi - lo + 1)


def new_key(path: str | os.PathLike | None = None) -> DeidKey:
    """A fresh random key, written to ``path`` (mode 0600, whole or not at all, never overwriting:
    ``FileExistsError``) when given."""
    key = DeidKey(secrets.token_bytes(32), Path(path) if path is not None else None)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(f"{_KEY_HEADER}\n{key.secret.hex()}\n")
            os.link(tmp, path)  # appears complete or not at all; FileExistsError when another writer was first
        finally:
            tmp.unlink(missing_ok=True)
    return key


def load_key(path: str | os.PathLike) -> DeidKey:
    """The key stored in ``path`` by ``new_key``; ``DeidentificationError`` naming the file when it is not one."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise DeidentificationError(f"cannot read the de-identification key {path} ({exc})") from exc
    hexes = [w for w in lines if re.fullmatch(r"[0-9a-fA-F]{64}", w)]
    if not hexes:
        raise DeidentificationError(f"{path} is not a de-identification key (expected 64 hex digits after the "
                                    f"line '{_KEY_HEADER}'); give another --deid-key or delete the file")
    return DeidKey(bytes.fromhex(hexes[0]), path)


def key_for_outputs(out_dir: str | os.PathLike, key_file: str | os.PathLike | None = None) -> tuple[DeidKey, bool]:
    """The key of a run writing into ``out_dir``: ``key_file`` when given (created there if it does not exist),
    else ``out_dir/deid_key.txt`` (created on the first run, reused after). Returns ``(key, created)``."""
    path = Path(key_file) if key_file is not None else Path(out_dir) / KEY_FILE_NAME
    if path.exists():
        return load_key(path), False
    try:
        return new_key(path), True
    except FileExistsError:  # a parallel worker of the same run wrote it first: use theirs
        return load_key(path), False


def shift_date(value: str, days: int) -> str:
    """``YYYYMMDD`` (a DA, or the date part of a DT) moved back by ``days``; "" when it is not a date."""
    text = str(value).strip()
    if len(text) < 8 or not text[:8].isdigit():
        return ""
    try:
        day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return ""
    return (day - datetime.timedelta(days=days)).strftime("%Y%m%d")


def patient_identity(ds) -> str:
    """The source's patient identity the date shift is keyed on: PatientID, else PatientName + birth date, else
    the StudyInstanceUID (so every study of one patient shifts alike under one key)."""
    pid = str(getattr(ds, "PatientID", "") or "").strip()
    if pid:
        return "id:" + pid
    name = str(getattr(ds, "PatientName", "") or "").strip()
    if name:
        return f"name:{name}|{getattr(ds, 'PatientBirthDate', '')}"
    return "study:" + str(getattr(ds, "StudyInstanceUID", ""))
