"""Converter acceptance on the synthetic raw layouts (DICOM and NIfTI): TRE, label Dice, outputs, resume."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from _registration_truth import load_truth, mean_tre_mm, truth_transform

from nnunet_thrombus.masks import dice


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_registration_within_1mm_and_label_dice(converted, cohort, fmt):
    res = converted[fmt]
    assert res["failed"] == {}
    ds = Path(res["dataset_dir"])
    tres, dices = [], []
    for case_dir in sorted((cohort / f"raw_{fmt}").iterdir()):
        truth = load_truth(case_dir)
        est = sitk.ReadTransform(str(ds / "transforms" / f"{case_dir.name}.tfm"))
        brain = sitk.ReadImage(str(ds / "brain_masks" / f"{case_dir.name}.nii.gz"))
        tres.append(mean_tre_mm(est, truth_transform(truth), brain))
        split = "labelsTr" if (ds / "labelsTr" / f"{case_dir.name}.nii.gz").exists() else "labelsTs"
        lab = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / split / f"{case_dir.name}.nii.gz")))
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(case_dir / "masks" / "thrombus.nii.gz")))
        dices.append(dice(lab > 0, ref > 0))
    assert np.mean(np.array(tres) < 1.0) >= 0.95, tres
    assert min(dices) >= 0.95, dices


def test_outputs_follow_the_data_contract(converted, cohort):
    ds = Path(converted["nifti"]["dataset_dir"])
    meta = json.loads((ds / "dataset.json").read_text())
    assert meta["channel_names"] == {"0": "CT", "1": "CT"}
    assert meta["labels"] == {"background": 0, "thrombus": 1}
    n_tr = len(list((ds / "labelsTr").glob("*.nii.gz")))
    assert meta["numTraining"] == n_tr == 5 and len(list((ds / "imagesTs").glob("*_0000.nii.gz"))) == 1
    case = sorted((ds / "labelsTr").glob("*.nii.gz"))[0].name[:-7]
    cta = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "imagesTr" / f"{case}_0000.nii.gz")))
    ncct = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "imagesTr" / f"{case}_0001.nii.gz")))
    brain = sitk.GetArrayFromImage(sitk.ReadImage(str(ds / "brain_masks" / f"{case}.nii.gz"))) > 0
    assert cta.shape == ncct.shape == brain.shape
    assert np.all(cta[~brain] == -1024) and np.all(ncct[~brain] == -1024)
    assert np.median(ncct[brain]) > 0  # brain tissue, not air: the NCCT channel is aligned and filled
    splits = json.loads((ds / "splits_final.json").read_text())
    assert len(splits) == 5 and sorted(sum((s["val"] for s in splits), [])) == sorted(
        p.name[:-7] for p in (ds / "labelsTr").glob("*.nii.gz"))
    rows = list(csv.DictReader((ds / "qc.csv").open()))
    assert len(rows) == 6 and all(r["status"] in ("ok", "flagged") for r in rows)
    assert all(len(r["rater_dice_vs_staple"].split(";")) == 3 for r in rows)
    meta_rows = list(csv.DictReader((ds / "metadata.csv").open()))
    assert {r["site"] for r in meta_rows} - {"ICA", "M1", "M2", "ACA", "none"} == set()
    # the generator's truth and subgroup columns travel from truth.json into the converter's metadata.csv
    gen = {r["case"]: r for r in csv.DictReader((cohort / "nnUNet_raw" / "Dataset501_SynthThrombus" / "metadata.csv").open())}
    keys = ("lvo", "label_volume_mm3", "size_class", "isodense", "clot_free_calcified", "n_calcifications",
            "ncct_density_hu", "perviousness_hu")
    assert all({k: r[k] for k in keys} == {k: gen[r["patient"]][k] for k in keys} for r in meta_rows)
    assert not list(ds.rglob(".tmp-*"))


def test_rerun_skips_finished_cases_and_redoes_damaged_ones(converted, cohort):
    from dataset_conversion.conversion_options import ConversionOptions
    from dataset_conversion.convert_trial import convert_trial_dataset

    res = converted["dicom"]
    ds = Path(res["dataset_dir"])
    victim = sorted((ds / "imagesTr").glob("*_0001.nii.gz"))[0]
    victim.write_bytes(b"")  # a damaged output must be redone
    again = convert_trial_dataset(cohort / "raw_dicom", res["raw"], ConversionOptions(dataset_id=501, quiet=True))
    assert len(again["skipped"]) == 5 and victim.name[:-12] not in again["skipped"]
    assert victim.stat().st_size > 1000
