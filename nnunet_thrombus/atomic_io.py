"""Atomic file writers, one module for conversion, inference, evaluation, training and the demo.

Every writer puts the bytes under a temporary name in the target's own folder (``.tmp-<pid>-<name>``, so the
rename never crosses file systems) and then ``os.replace``-s it onto the final name: a reader sees the old file or
the new one, never half of one. A failure removes the temporary file. ``defer=True`` (images) returns
``(tmp, final)`` so a caller can publish several files together (:func:`publish`). ``cleanup_temp_files`` deletes
leftovers of an interrupted run. Only numpy is imported at module level; SimpleITK and matplotlib figures are
passed in by the caller.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

TMP_PREFIX = ".tmp-"


def tmp_name(final) -> Path:
    """The temporary name ``final`` is written under before the rename (same folder)."""
    final = Path(final)
    return final.with_name(f"{TMP_PREFIX}{os.getpid()}-{final.name}")


@contextmanager
def atomic_path(final, mode: int | None = None):
    """Yield a temporary path next to ``final``; on normal exit rename it onto ``final``, on error delete it.
    ``mode``: file permissions to set before the rename (default: left as created)."""
    final = Path(final)
    tmp = tmp_name(final)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def json_safe(obj):
    """JSON-ready copy: NaN/inf -> None, numpy scalars and arrays -> Python numbers and lists, tuples -> lists,
    paths -> strings, dict keys -> strings."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return json_safe(obj.tolist())
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj, indent: int = 2) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN written as null, numpy values as numbers)."""
    return write_text(path, json.dumps(json_safe(obj), indent=indent) + "\n")


def write_csv(path, rows: list[dict], fieldnames: list[str], extra: str = "ignore") -> Path:
    """Write dict rows as CSV atomically; NaN and None become empty cells. Keys of ``rows`` not in ``fieldnames``
    are left out (``extra="ignore"``) or written after them in first-seen order (``extra="append"``)."""
    if extra not in ("ignore", "append"):
        raise ValueError(f"extra must be 'ignore' or 'append', got {extra!r}")
    if extra == "append":
        fieldnames = list(fieldnames) + list(dict.fromkeys(k for r in rows for k in r if k not in fieldnames))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
                         for k, v in row.items()})
    return write_text(path, buf.getvalue())


def write_image(image, path, defer: bool = False, compress: bool = True):
    """Write a SimpleITK image (compressed NIfTI or any ITK format) atomically. ``defer``: write the temporary
    file only and return ``(tmp, final)`` for :func:`publish`; else return ``path``."""
    final = Path(path)
    tmp = tmp_name(final)
    try:
        sitk.WriteImage(image, str(tmp), compress)
        if defer:
            return tmp, final
        os.replace(tmp, final)
    finally:
        if not defer and tmp.exists():
            tmp.unlink()
    return final


def publish(pairs) -> None:
    """Rename each deferred ``(tmp, final)`` pair onto its final name."""
    for tmp, final in pairs:
        os.replace(tmp, final)


def publish_dir(tmp_dir, final, replace: bool = True) -> Path:
    """Rename a finished folder ``tmp_dir`` onto ``final``. ``replace``: an older ``final`` is deleted first; else a
    ``final`` that already exists (another process published the same content first) is kept and ``tmp_dir`` left
    for the caller to delete."""
    final = Path(final)
    if not replace:
        try:
            os.rename(tmp_dir, final)
        except OSError:
            if not final.is_dir():
                raise
        return final
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp_dir, final)
    return final


def write_npz(path, **arrays) -> Path:
    """``numpy.savez_compressed`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path)


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), dpi=dpi, format="png", bbox_inches="tight")
    return Path(path)


def copy_file(src, dst) -> Path:
    """Copy ``src`` to ``dst`` atomically (contents only)."""
    return write_bytes(dst, Path(src).read_bytes())


def cleanup_temp_files(root) -> int:
    """Delete ``.tmp-*`` leftovers of an interrupted run anywhere under ``root``; returns how many."""
    n = 0
    for path in Path(root).rglob(f"{TMP_PREFIX}*"):
        if path.is_file():
            path.unlink()
            n += 1
    return n
