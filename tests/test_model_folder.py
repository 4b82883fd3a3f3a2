"""model_folder (one owner of a trained model on disk), recipes, device choice, atomic I/O and the import rules."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_thrombus import model_folder as mf

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "nnunet_thrombus"


def _stage(root: Path, trainer: str, plans: str, config: str, folds=(0,), recipe: dict | None = None) -> Path:
    stage = root / f"{trainer}__{plans}__{config}"
    stage.mkdir(parents=True)
    (stage / "plans.json").write_text("{}")
    (stage / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT", "1": "CT"}}))
    for f in folds:
        (stage / f"fold_{f}").mkdir()
        (stage / f"fold_{f}" / "checkpoint_final.pth").write_bytes(b"x")
        if recipe is not None:
            (stage / f"fold_{f}" / mf.RECIPE_FILE).write_text(json.dumps(dict(recipe, fold=f)))
    return stage


def _cascade(root: Path, trainer: str = mf.DEFAULT_TRAINER, plans: str = mf.DEFAULT_PLANS, **kw) -> Path:
    for config in (mf.COARSE, mf.FINE):
        _stage(root, trainer, plans, config, **kw)
    return root


def test_names_are_nnunets(monkeypatch, tmp_path):
    from nnunetv2.utilities.file_path_utilities import get_output_folder

    assert mf.stage_identifier("T", "P", "3d_lowres") == "T__P__3d_lowres"
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    assert mf.stage_folder("Dataset501_X", mf.FINE, "ThrombusCascadeTrainer_noCBAM", "nnUNetPlans", fold=0) == \
        Path(get_output_folder("Dataset501_X", "ThrombusCascadeTrainer_noCBAM", "nnUNetPlans", mf.FINE, 0))
    monkeypatch.delenv("nnUNet_results")
    with pytest.raises(mf.ModelError, match="nnUNet_results is not set"):
        mf.stage_folder("Dataset501_X", mf.FINE)


def test_resolve_picks_the_trainer_and_plans_asked_for(tmp_path):
    root = _cascade(tmp_path / "m", recipe={"name": "paper", "optimizer": "SGD", "initial_lr": 0.01,
                                            "lr_schedule": "poly 0.9", "num_epochs": 1000,
                                            "num_iterations_per_epoch": 250, "mirroring": True, "overrides": {}})
    _cascade(root, "ThrombusCascadeTrainer_noCBAM", "nnUNetPlans", folds=(0, 1))
    ours = mf.resolve_cascade(model_folder=root)
    ablation = mf.resolve_cascade(model_folder=root, trainer="ThrombusCascadeTrainer_noCBAM", plans="nnUNetPlans")
    assert ours.fine_dir.name == "ThrombusCascadeTrainer__ThrombusPlans__3d_cascade_fullres" and ours.folds == (0,)
    assert ablation.fine_dir.name == "ThrombusCascadeTrainer_noCBAM__nnUNetPlans__3d_cascade_fullres"
    assert ablation.folds == (0, 1) and ablation.describe()["trainer"] == "ThrombusCascadeTrainer_noCBAM"
    assert ours.recipe["label"] == "paper: SGD lr 0.01 poly 0.9, 1000 x 250 it, mirroring"
    assert ablation.recipe["label"] == "unknown (no training_recipe.json)" and ablation.recipe[mf.FINE] is None
    with pytest.raises(mf.ModelError, match="trained cascades here: -tr ThrombusCascadeTrainer -p ThrombusPlans; "
                                            "-tr ThrombusCascadeTrainer_noCBAM -p nnUNetPlans"):
        mf.resolve_cascade(model_folder=root, trainer="ThrombusCascadeTrainer_plain")


def test_variant_reusing_another_trainers_stage1(tmp_path):
    """``_patchContext`` / ``_noCoarseFeatures`` train only a fine stage, on ThrombusCascadeTrainer's stage 1; the fine
    stage's training_recipe.json names it and -tr finds both stages."""
    root = _cascade(tmp_path / "m")
    _stage(root, "ThrombusCascadeTrainer_patchContext", mf.DEFAULT_PLANS, mf.FINE,
           recipe={"name": "paper", "stage1_trainer": "ThrombusCascadeTrainer"})
    model = mf.resolve_cascade(model_folder=root, trainer="ThrombusCascadeTrainer_patchContext")
    assert model.coarse_dir.name == "ThrombusCascadeTrainer__ThrombusPlans__3d_lowres"
    assert model.fine_dir.name == "ThrombusCascadeTrainer_patchContext__ThrombusPlans__3d_cascade_fullres"
    _stage(root, "ThrombusCascadeTrainer_noCoarseFeatures", mf.DEFAULT_PLANS, mf.FINE)  # no recipe: own stage 1
    with pytest.raises(mf.ModelError, match="lacks ThrombusCascadeTrainer_noCoarseFeatures__ThrombusPlans__3d_lowres"):
        mf.resolve_cascade(model_folder=root, trainer="ThrombusCascadeTrainer_noCoarseFeatures")


def test_roi_threshold_resolved_once(tmp_path):
    from nnunet_thrombus.calibration.roi import resolve_roi_threshold

    root = _cascade(tmp_path / "m")
    model = mf.resolve_cascade(model_folder=root)
    fine = model.fine_dir
    assert (model.calibration.roi.threshold, model.calibration.sources["roi"]) == (0.1, "default")
    (fine / "roi_threshold.json").write_text(json.dumps({"threshold": 0.3}))
    model = mf.resolve_cascade(model_folder=root)
    assert (model.calibration.roi.threshold, model.calibration.sources["roi"]) == (0.3, f"{fine.name}/roi_threshold.json")
    assert resolve_roi_threshold(fine) == (0.3, f"{fine.name}/roi_threshold.json")
    assert resolve_roi_threshold(fine, override=0.2) == (0.2, "command line")
    (fine / "roi_threshold.json").write_text(json.dumps({"threshold": 1.5}))
    with pytest.raises(mf.ModelError, match="not a probability.*fit-roi"):
        mf.resolve_cascade(model_folder=root)


def test_recipe_folds_differ_and_label_names_overrides(tmp_path):
    base = {"name": "paper", "optimizer": "AdamW", "initial_lr": 0.001, "lr_schedule": "poly 0.9", "num_epochs": 2,
            "num_iterations_per_epoch": 5, "mirroring": False, "overrides": {"optimizer": "adamw"}}
    stage = _stage(tmp_path, "T", "P", mf.FINE, folds=(0, 1), recipe=base)
    assert mf.load_recipe(stage)["folds_differ"] is False  # only the fold number differs
    (stage / "fold_1" / mf.RECIPE_FILE).write_text(json.dumps(dict(base, num_epochs=3)))
    recipe = mf.load_recipe(stage)
    assert recipe["folds_differ"] is True and mf.load_recipe(stage, [0])["folds_differ"] is False
    assert mf.recipe_label(recipe) == ("paper + overrides: AdamW lr 0.001 poly 0.9, 2 x 5 it, "
                                       "no mirroring (optimizer=adamw) [folds trained with different "
                                       "recipes]")


def test_recipe_label_names_mirror_augmentation():
    base = {"name": "cpuShort", "optimizer": "AdamW", "initial_lr": 0.001, "lr_schedule": "poly 0.9",
            "num_epochs": 8, "num_iterations_per_epoch": 100, "mirroring": False}
    assert mf.recipe_label(base).endswith("8 x 100 it, no mirroring")  # written before mirror_augment existed
    lr = dict(base, mirror_augment="left-right", augmentation_mirror_axes=[2])
    assert mf.recipe_label(lr).endswith("8 x 100 it, no test-time mirroring, left-right mirror augmentation")
    assert mf.recipe_label(dict(lr, mirror_augment="off", augmentation_mirror_axes=None)).endswith("no mirroring")
    assert mf.recipe_label(dict(lr, mirroring=True)).endswith("it, mirroring")


def test_quiet_nnunet_keeps_stdout_and_replays_it_on_failure(capsys, caplog):
    with mf.quiet_nnunet():
        print("Inspecting module: x")
    assert capsys.readouterr().out == ""
    with pytest.raises(RuntimeError):
        with mf.quiet_nnunet():
            print("Searching in: /somewhere")
            raise RuntimeError("trainer not found")
    assert capsys.readouterr().out == ""
    assert [r.levelname for r in caplog.records] == ["ERROR"] and "Searching in: /somewhere" in caplog.text


def test_device_choice(monkeypatch, caplog):
    import logging

    import torch

    from nnunet_thrombus.nnunet_env import announce_device, choose_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == ("cpu", "no CUDA device found")
    with pytest.raises(ValueError, match="no CUDA device"):
        choose_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "FakeGPU")
    caplog.set_level(logging.INFO, logger="nnunet_thrombus")
    assert announce_device() == "cuda" and "device: cuda (CUDA available (FakeGPU)" in caplog.text
    assert announce_device("cpu") == "cpu"


def test_atomic_writers_leave_no_partial_file(tmp_path):
    from nnunet_thrombus import atomic_io

    target = tmp_path / "a.json"
    atomic_io.write_json(target, {"x": float("nan"), "p": tmp_path})
    assert json.loads(target.read_text()) == {"x": None, "p": str(tmp_path)}

    class Boom:
        def savefig(self, path, **kw):
            Path(path).write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_io.save_figure(Boom(), tmp_path / "f.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


# ------------------------------------------------------------------------------------------------ import rules
def _imports(path: Path) -> set[str]:
    """Every module named by an import statement in ``path`` (top level and inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_inference_never_imports_training_and_conversion_never_imports_commands():
    upward = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("nnunet_thrombus.training"))
              for p in (PKG / "inference").glob("*.py")}
    assert {k: v for k, v in upward.items() if v} == {}
    circle = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.startswith("nnunet_thrombus.commands"))
              for p in (ROOT / "dataset_conversion").glob("*.py")}
    assert {k: v for k, v in circle.items() if v} == {}


def test_one_atomic_writer():
    """``os.replace``/``os.rename`` appear in the atomic-I/O module only."""
    allowed = {"nnunet_thrombus/atomic_io.py"}
    found = set()
    for path in list(PKG.rglob("*.py")) + list((ROOT / "dataset_conversion").glob("*.py")) + \
            list((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("replace", "rename") and isinstance(node.func.value, ast.Name) and \
                    node.func.value.id == "os":
                found.add(str(path.relative_to(ROOT)))
    assert found - allowed == set()


@pytest.mark.parametrize("module", ["nnunet_thrombus.model_folder", "nnunet_thrombus.inference.hu_threshold",
                                    "nnunet_thrombus.inference.model_files", "nnunet_thrombus.atomic_io"])
def test_torch_free_modules(module):
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'nnunetv2.training') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
