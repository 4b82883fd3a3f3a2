"""Pixel data of DICOM CT frames as HU: decoding (any transfer syntax pydicom can decode) and the rescale to HU.

Uncompressed, deflate and RLE data decode with pydicom alone; JPEG lossless, JPEG-LS and JPEG 2000 need the
``pylibjpeg`` / ``pylibjpeg-openjpeg`` / ``pylibjpeg-libjpeg`` / ``pyjpegls`` plugins (the ``dicom`` extra), and a
missing decoder is named in the error. One file per slice and one enhanced / legacy-converted multi-frame file
decode alike; each frame's RescaleSlope/Intercept is applied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from dataset_conversion.dicom_scan import Frame, ScanError


def _read_pixels(path: Path) -> np.ndarray:
    """The stored pixel values of one file, (frames, rows, cols); a decode failure names the file, the transfer
    syntax and the missing decoders."""
    ds = None
    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as exc:  # missing decoder plugin, truncated or damaged pixel data
        ts = ds.file_meta.get("TransferSyntaxUID") if ds is not None and hasattr(ds, "file_meta") else None
        hint = ""
        if ts is not None and ts.is_compressed:
            hint = (f" (transfer syntax {ts.name}: are the decoders installed? "
                    "pip install 'nnunet_thrombus[dicom]')")
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise ScanError(f"{path}: pixel data could not be decoded ({type(exc).__name__}: {last}){hint}; "
                        "export the series again") from exc
    return arr if arr.ndim == 3 else arr[None]


def decode_hu(frames: list[Frame]) -> np.ndarray:
    """(n, rows, cols) int16 HU of ``frames`` in the given order (slope/intercept of each frame applied, rounded,
    clipped to the int16 range; integer rescales stay in integer arithmetic)."""
    out = np.empty((len(frames), frames[0].rows, frames[0].cols), np.int16)
    cache: dict[Path, np.ndarray] = {}
    for k, f in enumerate(frames):
        if f.path not in cache:
            cache.clear()
            cache[f.path] = _read_pixels(f.path)
        plane = cache[f.path][f.index or 0]
        if plane.shape != (f.rows, f.cols):
            raise ScanError(f"{f.path}: pixel data shape {plane.shape} does not match Rows/Columns {f.rows}x{f.cols}")
        if f.slope == 1.0 and float(f.intercept).is_integer():
            value = plane.astype(np.int32) + int(f.intercept)
        else:
            value = np.rint(plane.astype(np.float64) * f.slope + f.intercept)
        np.clip(value, -32768, 32767, out=value)
        out[k] = value
    return out


def check_hu(image: sitk.Image, where: str) -> None:
    """Refuse empty images and pixel values that are not plausible HU (e.g. rescale not applied): the 1st
    percentile must lie in [-3100, -300] HU (air around the head) and the 99.9th at most 5000 HU."""
    arr = sitk.GetArrayViewFromImage(image)
    if arr.size == 0 or float(arr.max()) == float(arr.min()):
        raise ScanError(f"{where}: empty image (all voxels equal {float(arr.min()) if arr.size else 'n/a'})")
    sample = arr[:: max(1, arr.shape[0] // 16)]
    lo, hi = np.percentile(sample, [1, 99.9])
    if lo > -300 or lo < -3100 or hi > 5000:
        raise ScanError(f"{where}: intensities do not look like HU (1st pct {lo:.0f}, 99.9th pct {hi:.0f}); "
                        "is RescaleSlope/Intercept missing, or is this not a CT of the head with surrounding air?")
