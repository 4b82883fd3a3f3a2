"""``ThrombusCasePredictor``: the model is resolved and loaded once, then ``predict`` runs any number of times; its
rules (ROI threshold, whole-image switch) come from the model's calibration."""
from __future__ import annotations

import json
from pathlib import Path

from predict_testlib import FakePredictor

from nnunet_thrombus.calibration.model import ModelCalibration
from nnunet_thrombus.calibration.roi import ROIThreshold
from nnunet_thrombus.inference import model_files, pipeline
from nnunet_thrombus.inference.options import BatchOptions, ModelOptions
from nnunet_thrombus.model_folder import CascadeModel

FITTED = "fine/roi_threshold.json"


def _model(root: Path, roi: ROIThreshold) -> CascadeModel:
    sources = {"postprocessing": "default", "review": "default", "lvo": "default", "roi": FITTED}
    return CascadeModel(root=root, trainer="T", plans="P", coarse_dir=root / "coarse", fine_dir=root / "fine",
                        folds=(0,), calibration=ModelCalibration(roi=roi, sources=sources))


def _counting_loader(monkeypatch, model: CascadeModel) -> dict:
    """Replace folder resolution and network loading by counters that hand out ``model`` and one FakePredictor."""
    seen = {"resolved": 0, "loads": [], "network": FakePredictor()}

    def resolve(**kwargs):
        seen["resolved"] += 1
        return model

    def load(files, **kwargs):
        assert files is model
        seen["loads"].append(kwargs)
        return seen["network"]

    monkeypatch.setattr(model_files, "resolve_cascade", resolve)
    monkeypatch.setattr(pipeline, "load_predictor", load)
    return seen


def test_network_is_loaded_once_for_two_calls_of_two_cases(predict_cohort, tmp_path, monkeypatch):
    seen = _counting_loader(monkeypatch, _model(tmp_path / "MyModel", ROIThreshold(threshold=0.3)))
    predictor = pipeline.ThrombusCasePredictor.from_model(ModelOptions(model=tmp_path / "MyModel", use_tta=False))
    results = [predictor.predict(predict_cohort["images_ts"], tmp_path / out, batch=BatchOptions(quiet=True))
               for out in ("a", "b")]
    assert [len(r["done"]) for r in results] == [2, 2] and not any(r["failed"] for r in results)
    assert seen["resolved"] == 1 and len(seen["loads"]) == 1 and seen["network"].calls == 4
    # the network was built with the model's fitted threshold, and every report says where it came from
    assert seen["loads"][0]["roi_threshold"] == 0.3 and seen["loads"][0]["use_mirroring"] is False
    for report_path in sorted(tmp_path.glob("[ab]/*/report.json")):
        model = json.loads(report_path.read_text())["model"]
        assert (model["model"], model["roi_threshold"], model["roi_threshold_source"]) == ("MyModel", 0.3, FITTED)


def test_whole_image_calibration_turns_the_roi_off_unless_a_threshold_is_given(tmp_path, monkeypatch):
    model = _model(tmp_path / "M", ROIThreshold(threshold=0.2, whole_image=True))
    seen = _counting_loader(monkeypatch, model)
    off = pipeline.ThrombusCasePredictor.from_model(ModelOptions(model=model))
    assert seen["loads"][-1]["roi_restrict"] is False and off.model_info["roi_restrict"] is False
    assert off.model_info["roi_restrict_source"].startswith("fine/roi_threshold.json: no threshold")
    given = pipeline.ThrombusCasePredictor.from_model(ModelOptions(model=model, roi_threshold=0.4))
    assert seen["loads"][-1]["roi_restrict"] is True and seen["loads"][-1]["roi_threshold"] == 0.4
    assert (given.model_info["roi_threshold"], given.model_info["roi_threshold_source"]) == (0.4, "command line")
    assert seen["resolved"] == 0  # a resolved CascadeModel is used as given
