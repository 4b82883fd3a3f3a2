"""The README's "Using it inside nnU-Net" block, run as written (bash, subprocesses) under ``env --cpu`` on tiny data.

It is the card's path: nnU-Net plans, ``apply-plans -p nnUNetPlans`` (vanilla 3d_fullres kept), five stage-1 folds,
the fine stage without ``-p``, a vanilla baseline, nnU-Net's model selection, ``nnUNetv2_predict`` for both stages and
``nnunet_thrombus predict -tr -p``. The schedule is shrunk with ``THROMBUS_*`` variables only, so the commands are
exactly the README's. Then an ablation trained in the same workspace is predicted with ``-tr``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
#: tiny schedule: 1 epoch x 2 iterations, 1 validation iteration (every trainer of the block reads these)
SCHEDULE = {"THROMBUS_NUM_EPOCHS": "1", "THROMBUS_ITERS_PER_EPOCH": "2", "THROMBUS_VAL_ITERS": "1",
            "THROMBUS_SAVE_EVERY": "1"}
#: how training_recipe.json records them (as overrides of the recipe, by field)
RECORDED = {"num_epochs": 1, "num_iterations_per_epoch": 2, "num_val_iterations_per_epoch": 1, "save_every": 1}


def readme_block() -> str:
    """The first ```bash block of the README's "Using it inside nnU-Net" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using it inside nnU-Net", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def _env(work: Path, raw: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "THROMBUS_"))}
    env.update(SCHEDULE, nnUNet_raw=str(raw), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
               nnUNet_results=str(work / "nnUNet_results"), nnUNet_def_n_proc="2",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def card(tiny_cohort, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("card")
    for sub in ("nnUNet_preprocessed", "nnUNet_results"):
        (work / sub).mkdir()
    env = _env(work, tiny_cohort["raw"])
    script = "set -euo pipefail\n" + readme_block()
    proc = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=2400)
    log = proc.stdout + proc.stderr
    (work / "block.log").write_text(log)
    assert proc.returncode == 0, f"README block failed ({proc.returncode}); last lines:\n{log[-4000:]}"
    dataset = "Dataset501_SynthThrombus"
    return {"work": work, "env": env, "log": log, "pre": work / "nnUNet_preprocessed" / dataset,
            "results": work / "nnUNet_results" / dataset, "ts": tiny_cohort["dataset"] / "imagesTs"}


def test_env_cpu_settings_are_accepted_by_nnunet(card):
    exported = subprocess.run([str(Path(sys.executable).parent / "nnunet_thrombus"), "env", "--cpu"],
                              capture_output=True, text=True, check=True).stdout
    assert "export nnUNet_n_proc_DA=1" in exported and "export nnUNet_compile=f" in exported
    # the block ran nnUNetv2_plan_and_preprocess, nnUNetv2_train and nnUNetv2_predict under exactly these settings
    assert "set_num_threads expects a positive integer" not in card["log"]
    assert (card["pre"] / "nnUNetPlans_3d_fullres").is_dir()


def test_apply_plans_in_place_keeps_vanilla_3d_fullres(card):
    plans = json.loads((card["pre"] / "nnUNetPlans.json").read_text())
    orig = json.loads((card["pre"] / "nnUNetPlans.orig.json").read_text())
    cfg = plans["configurations"]
    assert cfg["3d_fullres"] == orig["configurations"]["3d_fullres"]
    assert cfg["3d_fullres"]["architecture"]["network_class_name"].endswith("PlainConvUNet")
    assert cfg["3d_cascade_fullres"]["architecture"]["network_class_name"].endswith("ThrombusCascadeNet")
    assert cfg["3d_cascade_fullres"]["previous_stage"] == "3d_lowres" and cfg["3d_cascade_fullres"]["batch_dice"]
    assert cfg["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    # the cpu preset keeps nnU-Net's spacing, so the fine stage reads 3d_fullres's preprocessed data
    assert cfg["3d_cascade_fullres"]["data_identifier"] == cfg["3d_fullres"]["data_identifier"]
    # the default coarse spacing is the paper's 1.08 x 0.844 x 0.844 mm, each axis capped at the fine spacing
    want = [max(p, f) for p, f in zip((1.08, 0.844, 0.844), cfg["3d_fullres"]["spacing"])]
    assert cfg["3d_lowres"]["spacing"] == pytest.approx(want)


def test_every_fold_trained_and_the_recipe_written(card):
    from nnunet_thrombus.model_folder import load_recipe, recipe_label, trained_folds

    coarse = card["results"] / "ThrombusCascadeTrainer__nnUNetPlans__3d_lowres"
    fine = card["results"] / "ThrombusCascadeTrainer__nnUNetPlans__3d_cascade_fullres"
    vanilla = card["results"] / "nnUNetTrainer_envSchedule__nnUNetPlans__3d_fullres"
    assert trained_folds(coarse) == [0, 1, 2, 3, 4]
    assert trained_folds(fine) == [0] and trained_folds(vanilla) == [0]
    recipe = json.loads((fine / "fold_0" / "training_recipe.json").read_text())
    assert recipe["name"] == "paper" and recipe["trainer"] == "ThrombusCascadeTrainer"
    assert recipe["optimizer"] == "SGD" and recipe["momentum"] == 0.99 and recipe["nesterov"] is True
    assert recipe["initial_lr"] == 0.01 and recipe["lr_schedule"] == "poly 0.9"
    assert (recipe["num_epochs"], recipe["num_iterations_per_epoch"], recipe["num_val_iterations_per_epoch"]) == \
        (1, 2, 1)
    assert recipe["overrides"] == RECORDED and recipe["mirroring"] is True
    assert "PresentClassSoftDiceLoss (batch Dice)" in recipe["loss"] and "deep supervision" in recipe["loss"]
    assert load_recipe(coarse)["folds_differ"] is False
    base = load_recipe(vanilla)
    assert base["trainer"] == "nnUNetTrainer_envSchedule" and "MemoryEfficientSoftDiceLoss" in base["loss"]
    assert recipe_label(base).startswith("paper + overrides: SGD lr 0.01 poly 0.9, 1 x 2 it")


def test_find_best_configuration_compares_vanilla_and_cascade(card):
    info = json.loads((card["results"] / "inference_information.json").read_text())
    assert set(info["all_results"]) == {"nnUNetTrainer_envSchedule__nnUNetPlans__3d_fullres",
                                        "ThrombusCascadeTrainer__nnUNetPlans__3d_cascade_fullres"}
    instructions = (card["results"] / "inference_instructions.txt").read_text()
    best = info["best_model_or_ensemble"]["selected_model_or_models"][0]
    assert f"-tr {best['trainer']} -c {best['configuration']} -p nnUNetPlans" in instructions


def test_nnunet_predict_and_our_predict_agree_on_the_cases(card):
    cases = sorted(p.name[: -len("_0000.nii.gz")] for p in card["ts"].glob("*_0000.nii.gz"))
    assert len(cases) == 3
    for case in cases:
        ref = sitk.ReadImage(str(card["ts"] / f"{case}_0000.nii.gz"))
        out = sitk.ReadImage(str(card["work"] / "out" / f"{case}.nii.gz"))
        assert out.GetSize() == ref.GetSize()
        np.testing.assert_allclose(out.GetOrigin(), ref.GetOrigin(), atol=1e-4)
        report = json.loads((card["work"] / "results" / case / "report.json").read_text())
        model = report["model"]
        assert (model["trainer"], model["plans"]) == ("ThrombusCascadeTrainer", "nnUNetPlans")
        assert model["fine"] == "ThrombusCascadeTrainer__nnUNetPlans__3d_cascade_fullres"
        assert model["recipe"]["3d_cascade_fullres"]["overrides"] == RECORDED
        assert model["recipe"]["label"].startswith("paper + overrides: SGD lr 0.01")


def test_predict_loads_an_ablation_with_tr_and_stays_quiet(card, capfd):
    """ThrombusCascadeTrainer_noCBAM trained in the same workspace (stage 1 fold 0, export-next-stage, stage 2):
    ``predict -tr ThrombusCascadeTrainer_noCBAM`` loads that model (no CBAM module in it) and prints neither
    nnU-Net's trainer-search lines nor anything but its progress."""
    env = card["env"]
    run = [("nnUNetv2_train", "501", "3d_lowres", "0", "-tr", "ThrombusCascadeTrainer_noCBAM", "-device", "cpu"),
           ("nnunet_thrombus", "export-next-stage", "-d", "501", "-tr", "ThrombusCascadeTrainer_noCBAM", "-p",
            "nnUNetPlans", "-device", "cpu"),
           ("nnUNetv2_train", "501", "3d_cascade_fullres", "0", "-tr", "ThrombusCascadeTrainer_noCBAM", "-device",
            "cpu")]
    for cmd in run:
        proc = subprocess.run(cmd, cwd=card["work"], env=dict(env, **_ext(env)), capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{cmd} failed:\n{(proc.stdout + proc.stderr)[-3000:]}"
    case = sorted(card["ts"].glob("*_0000.nii.gz"))[0].name[: -len("_0000.nii.gz")]
    inp = card["work"] / "one_case"
    inp.mkdir(exist_ok=True)
    for f in card["ts"].glob(f"{case}_000*.nii.gz"):
        (inp / f.name).write_bytes(f.read_bytes())
    old = {k: os.environ.get(k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    os.environ.update({k: env[k] for k in old})
    try:
        from nnunet_thrombus.cli import main
        from nnunet_thrombus.inference.model_files import load_predictor
        from nnunet_thrombus.model_folder import resolve_cascade as resolve_model

        capfd.readouterr()
        rc = main(["predict", "-i", str(inp), "-o", str(card["work"] / "ablation"), "-d", "501", "-tr",
                   "ThrombusCascadeTrainer_noCBAM", "-p", "nnUNetPlans", "--no-cache"])
        printed = capfd.readouterr()
        model = resolve_model(dataset=501, trainer="ThrombusCascadeTrainer_noCBAM", plans="nnUNetPlans")
        predictor = load_predictor(model, device="cpu", use_mirroring=False)
        ours = load_predictor(resolve_model(dataset=501, plans="nnUNetPlans", folds=[0]), device="cpu",
                              use_mirroring=False)
    finally:
        for k, v in old.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    assert rc == 0
    assert "Inspecting module" not in printed.out + printed.err and "Searching in" not in printed.out + printed.err
    assert "device: cpu" in printed.err  # progress is logged to stderr
    report = json.loads((card["work"] / "ablation" / case / "report.json").read_text())
    assert report["model"]["trainer"] == "ThrombusCascadeTrainer_noCBAM"
    assert report["model"]["fine"] == "ThrombusCascadeTrainer_noCBAM__nnUNetPlans__3d_cascade_fullres"
    names = [type(m).__name__ for m in predictor.fine.network.modules()]
    assert not any("CBAM" in n for n in names), "the ablation's network has a CBAM block"
    assert any("CBAM" in type(m).__name__ for m in ours.fine.network.modules())


def _ext(env: dict) -> dict:
    from nnunet_thrombus.nnunet_env import CPU_SETTINGS, ext_trainer_value

    return dict(CPU_SETTINGS, nnUNet_extTrainer=ext_trainer_value(env.get("nnUNet_extTrainer")))
