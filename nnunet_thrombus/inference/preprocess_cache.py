"""Per-case cache of registration and skull stripping, keyed by a hash of the input scans.

Registering the NCCT to the CTA and skull-stripping take most of a case's preprocessing time (tens of seconds on a
whole head) and do not depend on the model, so ``predict`` keeps their result: re-running it with another model,
other folds or other options on the same scans reads them back instead of redoing them.

Key: BLAKE2b of the cache format version, the package version, and both scans as read (voxel values, pixel type,
size, spacing, origin, direction), so a changed scan, a changed reader (e.g. thick slices resampled) or a new
release gives a new key; the file names and formats do not matter (the same scans as DICOM or NIfTI share a key).

Where: ``--cache-dir`` or ``$NNUNET_THROMBUS_CACHE`` when the user names a folder, else ``OUT/.preprocess_cache``
inside the output folder (``default_cache_dir``): registered patient voxels are never left in a home folder by
default. ``--no-cache`` turns it off.

Entry: ``<cache_dir>/<key>/`` holding ``cta.mha``, ``ncct_on_cta.mha``, ``brain_mask.mha`` (uncompressed MetaImage,
which keeps spacing, origin and direction exactly) and ``qc.json``. An entry is written into a temporary folder
and renamed into place, so a crash or a parallel worker never leaves a half-written entry under the key; an entry
that cannot be read is removed and recomputed. The cache holds voxel data of the scans but no DICOM tags; delete
the folder to clear it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus import __version__
from nnunet_thrombus.atomic_io import publish_dir, write_json

#: bump when dataset_conversion.preprocess changes what it returns for the same scans
CACHE_FORMAT = 1
#: environment variable naming a shared cache folder (default: inside the prediction's output folder)
CACHE_ENV = "NNUNET_THROMBUS_CACHE"
#: the cache's folder inside the output folder when the user names none (patient voxels stay with the outputs)
OUTPUT_CACHE_NAME = ".preprocess_cache"
_IMAGES = ("cta", "ncct_on_cta", "brain_mask")


def default_cache_dir(output_dir: str | os.PathLike, named: str | os.PathLike | None = None) -> Path:
    """``named`` when given (a folder the user named: ``--cache-dir``, or ``$NNUNET_THROMBUS_CACHE``, which the
    command line reads), else ``<output_dir>/.preprocess_cache``.

    The cache holds registered patient voxels, so by default it is kept with the outputs of the same patients and
    never in a home folder: on a shared clinical workstation nothing is left outside the folder the user chose."""
    if named:
        return Path(named)
    return Path(output_dir) / OUTPUT_CACHE_NAME


def scans_key(ncct: sitk.Image, cta: sitk.Image) -> str:
    """Hex key (40 characters) of the two scans as read: voxel values and geometry, not file names."""
    h = hashlib.blake2b(digest_size=20)
    h.update(f"nnunet_thrombus {__version__} preprocess cache {CACHE_FORMAT}".encode())
    for name, img in (("ncct", ncct), ("cta", cta)):
        header = (name, img.GetPixelIDTypeAsString(), img.GetSize(), img.GetSpacing(), img.GetOrigin(),
                  img.GetDirection(), img.GetNumberOfComponentsPerPixel())
        h.update(repr(header).encode())
        h.update(np.ascontiguousarray(sitk.GetArrayViewFromImage(img)).tobytes())
    return h.hexdigest()


def load(cache_dir: Path, key: str) -> dict | None:
    """The cached ``{"cta", "ncct_on_cta", "brain_mask", "qc"}`` for ``key``, or None (absent or unreadable; an
    unreadable entry is removed)."""
    entry = Path(cache_dir) / key
    if not entry.is_dir():
        return None
    try:
        out = {name: sitk.ReadImage(str(entry / f"{name}.mha")) for name in _IMAGES}
        out["qc"] = json.loads((entry / "qc.json").read_text())
    except (RuntimeError, OSError, ValueError):
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return out


def store(cache_dir: Path, key: str, result: dict) -> Path | None:
    """Write ``result`` (``preprocess_case``'s dict) under ``key``; returns the entry folder, or None when the cache
    folder cannot be written (the prediction goes on without the cache). Never leaves a partial entry."""
    cache_dir = Path(cache_dir)
    entry = cache_dir / key
    tmp = None
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
        for name in _IMAGES:
            sitk.WriteImage(result[name], str(tmp / f"{name}.mha"), False)
        write_json(tmp / "qc.json", result["qc"])
        return publish_dir(tmp, entry, replace=False)  # another worker may have stored the key first: keep theirs
    except OSError:
        return None
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def preprocess_cached(ncct: sitk.Image, cta: sitk.Image, cache_dir: Path | None, compute) -> tuple[dict, str]:
    """``compute(ncct, cta)`` (registration + skull stripping) through the cache at ``cache_dir``.

    Returns (result, status) with status ``"off"`` (no ``cache_dir``), ``"hit"`` or ``"miss"`` (computed and
    stored when the folder is writable). A hit returns the stored images and QC, the same values a miss computes.
    """
    if cache_dir is None:
        return compute(ncct, cta), "off"
    key = scans_key(ncct, cta)
    cached = load(cache_dir, key)
    if cached is not None:
        return cached, "hit"
    result = compute(ncct, cta)
    store(cache_dir, key, result)
    return result, "miss"


__all__ = ["CACHE_ENV", "CACHE_FORMAT", "OUTPUT_CACHE_NAME", "default_cache_dir", "scans_key", "load", "store",
           "preprocess_cached"]
