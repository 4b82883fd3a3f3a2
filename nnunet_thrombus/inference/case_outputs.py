"""Per-case output folders that a reader never sees half-written, and the check that lets a batch resume.

A case is written into ``OUT/.<case>.partial/`` (each file itself via temp name + ``os.replace``), with
``report.json`` last; its ``outputs`` field lists every other file and its size. Then the folder is renamed to
``OUT/<case>/``. ``verify_case`` re-checks a finished folder: report parses, names the case, every listed file
exists with its recorded size, and the mask's NIfTI header reads. Re-running skips cases that verify and
redoes the others (partial folders are deleted).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import SimpleITK as sitk

from nnunet_thrombus import atomic_io
from nnunet_thrombus.atomic_io import write_json
from nnunet_thrombus.inference.report import SCHEMA_VERSION

REPORT = "report.json"
MASK = "thrombus.nii.gz"


def partial_dir(out_dir: Path, case_id: str) -> Path:
    return Path(out_dir) / f".{case_id}.partial"


def start_case(out_dir: Path, case_id: str) -> Path:
    """Fresh, empty ``OUT/.<case>.partial/`` (an older one from an interrupted run is deleted)."""
    tmp = partial_dir(out_dir, case_id)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_image(image: sitk.Image, path: Path) -> None:
    """Compressed NIfTI / any ITK image, atomically (:func:`nnunet_thrombus.atomic_io.write_image`)."""
    atomic_io.write_image(image, path)


def write_npz(path: Path, **arrays) -> None:
    """``np.savez_compressed``, atomically."""
    atomic_io.write_npz(path, **arrays)


def output_sizes(folder: Path) -> dict:
    """{file name: {"bytes": size}} of the files already in ``folder`` (temp files excluded)."""
    return {p.name: {"bytes": p.stat().st_size} for p in sorted(Path(folder).iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name != REPORT}


def finish_case(out_dir: Path, case_id: str, tmp: Path, report: dict) -> Path:
    """Write the report (listing the other files) into ``tmp`` and rename ``tmp`` to ``OUT/<case>``."""
    report["outputs"] = output_sizes(tmp)
    write_json(tmp / REPORT, report)
    mask = os.umask(0)
    os.umask(mask)
    for path in tmp.iterdir():  # temp files are created 0600; give the final files the user's usual mode
        os.chmod(path, 0o666 & ~mask)
    # an older, unverifiable result is replaced
    return atomic_io.publish_dir(tmp, Path(out_dir) / case_id)


def abandon_case(out_dir: Path, case_id: str) -> None:
    """Delete the partial folder of ``case_id`` (after an error or Ctrl-C)."""
    tmp = partial_dir(out_dir, case_id)
    if tmp.exists():
        shutil.rmtree(tmp, ignore_errors=True)


def verify_case(folder: Path, case_id: str | None = None) -> tuple[bool, str]:
    """``(True, "")`` when ``folder`` holds a complete result, else ``(False, reason)``."""
    folder = Path(folder)
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return False, f"report.json unreadable ({type(exc).__name__})"
    if report.get("schema_version") != SCHEMA_VERSION:
        return False, f"report schema {report.get('schema_version')!r} != {SCHEMA_VERSION}"
    if case_id is not None and report.get("case_id") != case_id:
        return False, f"report is for case {report.get('case_id')!r}"
    outputs = report.get("outputs") or {}
    if MASK not in outputs:
        return False, f"{MASK} not listed in the report"
    for name, meta in outputs.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != meta.get("bytes"):
            return False, f"{name} missing or of the wrong size"
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(folder / MASK))
        reader.ReadImageInformation()
    except RuntimeError:
        return False, f"{MASK} header unreadable"
    return True, ""


def describe_os_error(exc: OSError, case_id: str, out_dir: Path) -> str:
    """A user-facing message for a failed write: disk full, permission denied, or the raw error."""
    where = getattr(exc, "filename", None) or out_dir
    if exc.errno == errno.ENOSPC:
        return (f"case {case_id}: disk full while writing {where} (No space left on device); free space under "
                f"{out_dir} and re-run: finished cases are kept and skipped")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"case {case_id}: permission denied writing {where}; choose a writable output folder with -o"
    return f"case {case_id}: could not write outputs ({exc})"


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` and prove a file can be written there; ``PermissionError``/``OSError`` with a clear
    message otherwise."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        kind = "disk full" if exc.errno == errno.ENOSPC else "not writable"
        raise OSError(exc.errno, f"output folder {out_dir} is {kind} ({exc.strerror}); choose another folder "
                                 f"with -o or fix its permissions/space") from exc
