"""The converted synthetic dataset passes nnU-Net's own planning with --verify_dataset_integrity."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_plan_and_preprocess_verifies_converted_dataset(converted, tmp_path):
    raw = Path(converted["dicom"]["raw"])
    env = dict(os.environ, nnUNet_raw=str(raw), nnUNet_preprocessed=str(tmp_path / "pre"),
               nnUNet_results=str(tmp_path / "res"), OMP_NUM_THREADS="1")
    exe = shutil.which("nnUNetv2_plan_and_preprocess", path=str(Path(sys.executable).parent)) or \
        "nnUNetv2_plan_and_preprocess"
    proc = subprocess.run([exe, "-d", "501", "-c", "3d_fullres", "--verify_dataset_integrity", "-np", "1", "-npfp", "1"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pre = tmp_path / "pre" / "Dataset501_Thrombus"
    assert (pre / "nnUNetPlans.json").is_file()
    assert len(list((pre / "nnUNetPlans_3d_fullres").glob("*.b2nd"))) + \
        len(list((pre / "nnUNetPlans_3d_fullres").glob("*.npz"))) >= 6
