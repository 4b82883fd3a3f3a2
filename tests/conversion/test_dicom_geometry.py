"""Slice geometry from frame headers alone: order along the normal, spacing (mm) and a uniform gantry tilt
measured in degrees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dataset_conversion.dicom_geometry import slice_geometry
from dataset_conversion.dicom_scan import Frame, ScanError


def _frames(z_mm: np.ndarray, tilt_deg: float = 0.0) -> list[Frame]:
    """Axial frames at heights ``z_mm``, shifted along the column direction (+y) by tan(tilt) per mm of z."""
    shift = np.tan(np.radians(tilt_deg))
    return [Frame(Path(f"IM{k:03d}.dcm"), None, np.array([-100.0, -120.0 + shift * z, z]),
                  np.array([1.0, 0, 0, 0, 1.0, 0]), (0.5, 0.5), 64, 64, 1.0, -1024.0, 1.5, None)
            for k, z in enumerate(z_mm)]


def test_shuffled_tilted_stack_is_ordered_and_its_tilt_measured():
    z = np.arange(30) * 1.5
    order = np.random.default_rng(0).permutation(30)
    geo = slice_geometry(Path("CTA"), _frames(z[order], tilt_deg=12.0))
    assert np.array_equal(order[geo["order"]], np.arange(30))  # back in height order
    assert geo["step"] == pytest.approx(1.5)
    assert geo["tilted"] and geo["tilt_deg"] == pytest.approx(12.0, abs=1e-6)
    assert geo["drift_mm_per_mm"] == pytest.approx([0.0, np.tan(np.radians(12.0))])
    untilted = slice_geometry(Path("CTA"), _frames(z))
    assert not untilted["tilted"] and untilted["tilt_deg"] == pytest.approx(0.0)


def test_missing_slice_and_duplicate_position_refused():
    z = np.delete(np.arange(30) * 1.5, 11)
    with pytest.raises(ScanError, match=r"CTA: missing slice\(s\): slice gaps range 1.500-3.000 mm"):
        slice_geometry(Path("CTA"), _frames(z))
    with pytest.raises(ScanError, match="1 duplicate slice position"):
        slice_geometry(Path("CTA"), _frames(np.r_[np.arange(10) * 1.5, 6.0]))
