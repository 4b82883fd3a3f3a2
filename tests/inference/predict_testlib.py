"""Helpers for the predict tests: a fast fake cascade predictor and output validity checks."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

#: side of the fake predictor's cubic "thrombus", voxels (tiny preset: 1.5 mm -> 27 * 3.375 = 91.1 mm^3)
BLOB = 3


@dataclass
class FakeResult:
    probability: np.ndarray
    segmentation: np.ndarray
    coarse_probability: np.ndarray
    timings_s: dict = field(default_factory=lambda: {"coarse": 0.01, "fine": 0.02, "export": 0.001})
    fine_tiles: tuple = (1, 1)
    roi_fallback: bool = False
    folds: tuple = ("0",)


class FakePredictor:
    """Stands in for ThrombusCascadePredictor: a BLOB^3 cube at the brightest CTA voxel inside the brain,
    probability 0.9 there and 0.05 elsewhere. ``fail_on`` / ``interrupt_on``: call numbers (1-based) that raise."""

    def __init__(self, fail_on=(), interrupt_on=()):
        self.calls = 0
        self.fail_on, self.interrupt_on = set(fail_on), set(interrupt_on)
        self.shapes = []

    def predict(self, images, spacing):
        self.calls += 1
        if self.calls in self.interrupt_on:
            raise KeyboardInterrupt
        if self.calls in self.fail_on:
            raise RuntimeError("fake model failure")
        assert images.ndim == 4 and images.shape[0] == 2 and images.dtype == np.float32
        self.shapes.append(images.shape[1:])
        z, y, x = (s // 2 for s in images.shape[1:])
        prob = np.full(images.shape[1:], 0.05, np.float32)
        prob[z:z + BLOB, y:y + BLOB, x:x + BLOB] = 0.9
        return FakeResult(prob, (prob > 0.5).astype(np.uint8), prob.copy())


def load_schema() -> dict:
    return json.loads((Path(__file__).resolve().parents[2] / "docs" / "report_schema.json").read_text())


def read_image(path) -> sitk.Image:
    from dataset_conversion.ct_reader import read_image as _read

    return _read(path)[0]


def assert_case_valid(folder: Path, cta: sitk.Image, schema: dict) -> dict:
    """Every output of a finished case is valid: mask on the CTA grid, report matches the schema, PNG opens."""
    import matplotlib.image as mpimg

    from nnunet_thrombus.inference.json_schema import schema_errors

    mask = sitk.ReadImage(str(folder / "thrombus.nii.gz"))
    assert mask.GetSize() == cta.GetSize()
    np.testing.assert_allclose(mask.GetSpacing(), cta.GetSpacing(), atol=1e-4)
    np.testing.assert_allclose(mask.GetOrigin(), cta.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(mask.GetDirection(), cta.GetDirection(), atol=1e-5)
    report = json.loads((folder / "report.json").read_text())
    assert schema_errors(report, schema) == []
    png = mpimg.imread(str(folder / "overlay.png"))
    assert png.ndim == 3 and png.shape[0] > 200 and png.shape[1] > 300
    return report
