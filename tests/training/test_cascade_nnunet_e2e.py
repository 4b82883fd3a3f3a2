"""The user's commands, as subprocesses: nnUNetv2_train (both stages) and nnUNetv2_predict with the cascade."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

pytestmark = pytest.mark.slow


def _train_losses(model_dir):
    ckpt = torch.load(model_dir / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    return ckpt["logging"]["train_losses"], ckpt


def test_both_stages_train_and_loss_goes_down(tiny_cascade):
    for key in ("coarse_dir", "fine_dir"):
        losses, ckpt = _train_losses(tiny_cascade[key])
        assert len(losses) == 2
        assert losses[-1] < losses[0], f"{key}: train loss did not go down: {losses}"
        assert ckpt["trainer_name"] == "ThrombusCascadeTrainer"
    log = next((tiny_cascade["fine_dir"] / "fold_0").glob("training_log_*.txt")).read_text()
    assert "coarse branch: loaded from" in log and "frozen" in log


def test_fine_checkpoint_carries_the_stage1_weights_frozen(tiny_cascade):
    _, coarse = _train_losses(tiny_cascade["coarse_dir"])
    _, fine = _train_losses(tiny_cascade["fine_dir"])
    cw, fw = coarse["network_weights"], fine["network_weights"]
    branch = {k[len("coarse_branch."):]: v for k, v in fw.items() if k.startswith("coarse_branch.")}
    assert branch, "fine checkpoint has no coarse_branch weights"
    shared = [k for k in branch if k in cw]
    assert len(shared) == len(cw)
    assert all(torch.equal(branch[k], cw[k]) for k in shared), "frozen coarse branch changed during fine training"


def test_plans_define_the_cascade_with_our_networks(tiny_cascade):
    cfg = tiny_cascade["plans"]["configurations"]
    assert cfg["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    assert cfg["3d_cascade_fullres"]["previous_stage"] == "3d_lowres"
    assert cfg["3d_cascade_fullres"]["architecture"]["network_class_name"].endswith("ThrombusCascadeNet")
    ratio = np.array(cfg["3d_lowres"]["spacing"]) / np.array(cfg["3d_fullres"]["spacing"])
    np.testing.assert_allclose(ratio, [1.08 / 0.625, 0.844 / 0.488, 0.844 / 0.488], rtol=1e-6)


def test_nnunetv2_predict_cascade_keeps_input_geometry(tiny_cascade, tmp_path):
    """nnUNetv2_predict runs stage 1 and the patch-context fine stage; the global-context fine stage (the default),
    whose windows need the whole-head coarse pass, stops with the command that can run it."""
    from nnunet_thrombus.training.workflow import short_schedule, train

    ws = tiny_cascade["ws"]
    images_ts = tiny_cascade["cohort"]["dataset"] / "imagesTs"
    low, fine = tmp_path / "lowres", tmp_path / "fine"
    common = ["-d", "501", "-p", "ThrombusPlans", "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1",
              "-nps", "1"]
    ws.run(["nnUNetv2_predict", "-i", images_ts, "-o", low, "-c", "3d_lowres", "-tr", "ThrombusCascadeTrainer",
            *common], "predict_test")
    with pytest.raises(RuntimeError, match="nnunet_thrombus predict"):
        ws.run(["nnUNetv2_predict", "-i", images_ts, "-o", tmp_path / "refused", "-c", "3d_cascade_fullres",
                "-tr", "ThrombusCascadeTrainer", "-prev_stage_predictions", low, *common], "predict_refused")
    train(ws, 501, "3d_cascade_fullres", 0, "ThrombusCascadeTrainer_patchContext", "ThrombusPlans",
          short_schedule(1, 4, 1))
    ws.run(["nnUNetv2_predict", "-i", images_ts, "-o", fine, "-c", "3d_cascade_fullres",
            "-tr", "ThrombusCascadeTrainer_patchContext", "-prev_stage_predictions", low, *common], "predict_test")
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in images_ts.glob("*_0000.nii.gz"))
    assert len(cases) == 3
    for case in cases:
        ref = sitk.ReadImage(str(images_ts / f"{case}_0000.nii.gz"))
        out = sitk.ReadImage(str(fine / f"{case}.nii.gz"))
        assert out.GetSize() == ref.GetSize()
        np.testing.assert_allclose(out.GetSpacing(), ref.GetSpacing(), atol=1e-5)
        np.testing.assert_allclose(out.GetOrigin(), ref.GetOrigin(), atol=1e-4)
        assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1}
    info = json.loads((tiny_cascade["coarse_dir"] / "predicted_next_stage" / "export_info.json").read_text())
    assert info["folds"] == [0] and len(info["out_of_fold"]) >= 1


def test_interrupted_training_resumes_with_c(tiny_cascade, tmp_path):
    """nnU-Net's --c continues from the last checkpoint: a third epoch on top of the two trained ones."""
    import shutil

    from nnunet_thrombus.training.overrides import TrainingSettings
    from nnunet_thrombus.training.workflow import train_arguments

    ws = tiny_cascade["ws"]
    results = tmp_path / "results"
    shutil.copytree(ws.results, results)
    settings = TrainingSettings(num_epochs=3, num_iterations_per_epoch=4, num_val_iterations_per_epoch=1,
                                save_every=1, mirroring=False)
    ws.run(["nnunet_thrombus", "train", "501", "3d_lowres", "0", "-tr", "ThrombusCascadeTrainer", "-p",
            "ThrombusPlans", "-device", "cpu", *train_arguments(settings), "--c"], "resume",
           nnUNet_results=str(results))
    before, _ = _train_losses(tiny_cascade["coarse_dir"])
    after, _ = _train_losses(results / tiny_cascade["coarse_dir"].relative_to(ws.results))
    assert len(after) == 3 and after[:2] == before


def test_fit_lvo_on_validation_and_predict_uses_it(tiny_cascade, tmp_path):
    import shutil

    from nnunet_thrombus.calibration.lvo import LVOThresholds
    from nnunet_thrombus.calibration.postprocessing import Postprocessing
    from nnunet_thrombus.inference.validation_fit import fit_lvo_from_validation
    from nnunet_thrombus.model_folder import resolve_cascade

    model = tmp_path / "model"
    shutil.copytree(tiny_cascade["ws"].results / "Dataset501_SynthThrombus", model)
    fine = model / tiny_cascade["fine_dir"].name
    info = fit_lvo_from_validation(fine, tiny_cascade["cohort"]["dataset"])
    val_cases = sorted(p.name[:-7] for p in (fine / "fold_0" / "validation").glob("*.nii.gz"))
    assert info["cases"] == val_cases and info["n_cases"] == len(val_cases) >= 1
    assert sum(info["counts_truth_to_call"].values()) == len(val_cases)
    rule = LVOThresholds.load(fine / "lvo_thresholds.json")
    assert rule.to_dict() == info["thresholds"]
    files = resolve_cascade(model_folder=model, folds=[0])
    assert files.calibration.sources["lvo"].endswith("lvo_thresholds.json")
    # the post-processing rule is chosen on the same validation cases and travels with the model
    assert info["postprocessing"]["rule"] == Postprocessing.load(fine / "postprocessing.json").rule
    assert set(info["postprocessing"]["validation_mean_dice"]) == {"none", "evidence"}
    # no --npz: the fold's cascade predicted its validation cases, so the review flag is fitted and stored too
    review = json.loads((fine / "review_rule.json").read_text())
    assert review["n_cases"] == len(val_cases) and set(review["cases"]) == set(val_cases)
    assert files.calibration.postprocessing == Postprocessing.load(fine / "postprocessing.json")
    assert files.describe()["postprocessing"] == files.calibration.postprocessing.rule


def test_fit_roi_on_validation_and_predict_uses_it(tiny_cascade, tmp_path):
    import shutil

    from nnunet_thrombus.calibration.roi import THRESHOLDS, ROIThreshold
    from nnunet_thrombus.inference.options import BatchOptions, ModelOptions
    from nnunet_thrombus.inference.pipeline import predict_cases
    from nnunet_thrombus.inference.validation_fit import fit_roi_threshold
    from nnunet_thrombus.model_folder import resolve_cascade
    from nnunet_thrombus.vocabulary import DEFAULT_ROI_THRESHOLD

    FILE = ROIThreshold.FILE

    model = tmp_path / "model"
    shutil.copytree(tiny_cascade["ws"].results / "Dataset501_SynthThrombus", model)
    coarse, fine = model / tiny_cascade["coarse_dir"].name, model / tiny_cascade["fine_dir"].name
    assert resolve_cascade(model_folder=model, folds=[0]).calibration.sources["roi"] == "default"
    info = fit_roi_threshold(coarse, fine, tiny_cascade["cohort"]["dataset"], progress=lambda _: None)
    val_cases = sorted(p.name[:-7] for p in (fine / "fold_0" / "validation").glob("*.nii.gz"))
    assert sorted(info["cases"]) == val_cases and info["n_cases"] == len(val_cases) >= 1
    stored = json.loads((fine / FILE).read_text())
    assert stored["threshold"] == info["threshold"] and set(stored["table"]) == {str(t) for t in THRESHOLDS}
    # the rule: the chosen threshold keeps every validation clot inside and runs no more windows than a safe other
    safe = [t for t in THRESHOLDS if all(c[str(t)]["coverage"] >= 1.0 for c in stored["cases"].values())]
    assert info["default_kept"] == (not safe)
    if safe:
        share = {t: stored["table"][str(t)]["median_window_share"] for t in safe}
        assert info["threshold"] in safe and share[info["threshold"]] == min(share.values())
    else:
        assert info["threshold"] == DEFAULT_ROI_THRESHOLD
    files = resolve_cascade(model_folder=model, folds=[0])
    assert files.calibration.roi.threshold == info["threshold"] and files.calibration.sources["roi"].endswith(FILE)
    case = sorted((tiny_cascade["cohort"]["dataset"] / "imagesTs").glob("*_0000.nii.gz"))[0]
    inp = tmp_path / "in"
    inp.mkdir()
    for f in case.parent.glob(case.name.replace("_0000.nii.gz", "_000*.nii.gz")):
        shutil.copy(f, inp / f.name)
    for given, source in ((None, FILE), (0.25, "command line")):
        out = tmp_path / f"out_{given}"
        res = predict_cases(inp, out, ModelOptions(model=files, folds=[0], use_tta=False, roi_threshold=given),
                            batch=BatchOptions(quiet=True))
        assert len(res["done"]) == 1
        report = json.loads(next(out.glob("*/report.json")).read_text())
        assert report["model"]["roi_threshold"] == (info["threshold"] if given is None else given)
        assert report["model"]["roi_threshold_source"].endswith(source)


def test_stage1_export_is_the_coarse_map_predict_feeds_the_fine_stage(tiny_cascade):
    """The fine stage trains on ``predicted_next_stage``; ``predict`` feeds it the threshold of one whole-head coarse
    pass. For an out-of-fold training case both must be the same map, voxel for voxel."""
    import blosc2

    from nnunet_thrombus.inference.cascade_predictor import ThrombusCascadePredictor

    info = json.loads((tiny_cascade["coarse_dir"] / "predicted_next_stage" / "export_info.json").read_text())
    assert info["coarse_map"] == "whole-head pass (as predict)"
    assert info["seconds_per_case"] > 0
    key = sorted(info["out_of_fold"])[0]
    exported = np.asarray(blosc2.open(str(tiny_cascade["coarse_dir"] / "predicted_next_stage" / "3d_cascade_fullres"
                                          / f"{key}.b2nd"), mode="r")[:])
    images_tr = tiny_cascade["cohort"]["dataset"] / "imagesTr"
    channels = [sitk.ReadImage(str(images_tr / f"{key}_000{c}.nii.gz")) for c in (0, 1)]
    images = np.stack([sitk.GetArrayFromImage(im).astype(np.float32) for im in channels])
    spacing = tuple(reversed(channels[0].GetSpacing()))
    pred = ThrombusCascadePredictor(str(tiny_cascade["coarse_dir"]), str(tiny_cascade["fine_dir"]), folds=(0,),
                                    device="cpu", use_mirroring=False)
    _, dct = pred.coarse_stage(images, spacing)
    fed = np.asarray(dct["data"][-1]).astype(np.uint8)
    assert fed.shape == exported.shape
    assert int((fed != exported).sum()) == 0
    # not all thrombus: the tiny stage 1 marked 400 and 6640 of 61440 voxels in two runs (CPU training is not
    # bit-reproducible, so no tighter bound)
    assert int(exported.sum()) < exported.size
