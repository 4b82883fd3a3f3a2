"""Training settings: parsing the THROMBUS_* variables, validating fields, and the layering recipe -> environment ->
call arguments that a trainer applies."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nnunet_thrombus.training.overrides import TrainingSettings, from_environment
from nnunet_thrombus.training.recipes import CPU_SHORT
from nnunet_thrombus.training.short_run import ShortScheduleMixin


def test_environment_variables_parse_to_fields():
    got = from_environment({"THROMBUS_NUM_EPOCHS": "3", "THROMBUS_ITERS_PER_EPOCH": "7", "THROMBUS_LR": "3e-4",
                            "THROMBUS_OPTIMIZER": "AdamW", "THROMBUS_NO_MIRRORING": "1",
                            "THROMBUS_MIRROR_AUGMENT": " LR ", "THROMBUS_OVERSAMPLE_FG": "0.75",
                            "THROMBUS_CONTEXT_CACHE_GB": "2", "THROMBUS_VAL_ITERS": ""})
    assert got.given() == {"num_epochs": 3, "num_iterations_per_epoch": 7, "lr": 3e-4, "optimizer": "adamw",
                           "mirroring": False, "mirror_augment": "left-right", "oversample_foreground_percent": 0.75,
                           "context_cache_gb": 2.0}
    assert from_environment({"THROMBUS_NO_MIRRORING": "0"}).mirroring is True
    assert from_environment({}).given() == {}


@pytest.mark.parametrize("var,bad", [
    ("THROMBUS_VAL_ITERS", "0"), ("THROMBUS_VAL_ITERS", "-2"), ("THROMBUS_VAL_ITERS", "ten"),
    ("THROMBUS_OVERSAMPLE_FG", "1.5"), ("THROMBUS_OVERSAMPLE_FG", "half"), ("THROMBUS_NO_MIRRORING", "yes please"),
    ("THROMBUS_MIRROR_AUGMENT", "sideways"), ("THROMBUS_OPTIMIZER", "rmsprop"), ("THROMBUS_LR", "0"),
    ("THROMBUS_LR", "fast"), ("THROMBUS_CONTEXT_CACHE_GB", "-1"),
])
def test_bad_variables_are_refused_by_name(var, bad):
    with pytest.raises(ValueError, match=var):
        from_environment({var: bad})


@pytest.mark.parametrize("kwargs,field", [
    ({"num_epochs": 0}, "num_epochs"), ({"save_every": 2.5}, "save_every"), ({"lr": 1.0}, "lr"),
    ({"optimizer": "adam"}, "optimizer"), ({"mirror_augment": "lr"}, "mirror_augment"), ({"seed": -1}, "seed"),
    ({"oversample_foreground_percent": -0.1}, "oversample_foreground_percent"),
])
def test_bad_fields_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=field):
        TrainingSettings(**kwargs)


def test_later_settings_win_and_a_new_optimizer_drops_the_old_learning_rate():
    merged = CPU_SHORT.then(TrainingSettings(num_epochs=3, optimizer="sgd"))
    assert (merged.num_epochs, merged.num_iterations_per_epoch, merged.optimizer, merged.lr) == (3, 100, "sgd", None)
    assert CPU_SHORT.then(TrainingSettings(lr=3e-3)).lr == 3e-3
    assert CPU_SHORT.then(TrainingSettings()) == CPU_SHORT


class _Dummy(ShortScheduleMixin):
    recipe_name, recipe = "cpuShort", CPU_SHORT

    def __init__(self, overrides=None):
        self.num_epochs, self.num_iterations_per_epoch, self.initial_lr = 1000, 250, 0.01
        self.num_val_iterations_per_epoch, self.save_every, self.oversample_foreground_percent = 50, 50, 0.33
        self._apply_short_schedule(overrides)


def _state(d):
    return d.num_epochs, d.num_iterations_per_epoch, d.optimizer_name, d.initial_lr, d.no_mirroring, d.mirror_augment


def test_recipe_then_overrides_then_call_arguments(monkeypatch):
    assert _state(_Dummy(TrainingSettings())) == (8, 100, "adamw", 1e-3, True, "left-right")
    d = _Dummy(TrainingSettings(num_epochs=3, mirroring=True, optimizer="sgd"))
    assert _state(d) == (3, 100, "sgd", 0.01, False, "all")
    # an in-process call's arguments go over the environment's overrides (none here) and the recipe
    monkeypatch.setattr("nnunet_thrombus.training.short_run.environment_overrides", lambda: TrainingSettings())
    d.apply_overrides(TrainingSettings(num_iterations_per_epoch=5, lr=3e-3, seed=4))
    assert _state(d) == (8, 5, "adamw", 3e-3, True, "left-right")
    assert d.run_overrides.given() == {"num_iterations_per_epoch": 5, "lr": 3e-3, "seed": 4}


def test_every_trainer_a_name_refers_to_is_a_class_statement():
    """Recipes are written out (grep finds them): every trainer the plugin folder re-exports is defined by a class
    statement of that name in the package, and a _cpuShort twin's stage 1 is the _cpuShort stage 1."""
    import nnunet_thrombus
    import nnunet_thrombus.nnunet_ext.thrombus_trainers as ext

    root = Path(nnunet_thrombus.__file__).parent
    defined = {node.name for path in root.rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ClassDef)}
    exported = {n for n, v in vars(ext).items() if isinstance(v, type)}
    assert len(exported) == 18 and exported <= defined
    for name in ("ThrombusCascadeTrainer", "ThrombusCascadeTrainer_noCBAM", "ThrombusCascadeTrainer_plain",
                 "nnUNetTrainer_envSchedule"):
        variant = getattr(ext, f"{name}_cpuShort")
        assert issubclass(variant, getattr(ext, name)) and variant.recipe_name == "cpuShort"
        assert variant.recipe.num_iterations_per_epoch == 100
    assert ext.ThrombusCascadeTrainer_noCoarseFeatures_cpuShort.stage1_trainer_name == \
        "ThrombusCascadeTrainer_cpuShort"
    assert ext.ThrombusCascadeTrainer.recipe_name == "paper" and ext.ThrombusCascadeTrainer.recipe.given() == {}


def test_train_flags_round_trip_through_the_command_line():
    from nnunet_thrombus.cli import build_parser
    from nnunet_thrombus.training.workflow import short_schedule, train_arguments

    settings = short_schedule(7, 43, 2, oversample_fg=0.5, optimizer="adamw", lr=3e-3, seed=1)
    args = build_parser().parse_args(["train", "501", "3d_lowres", "0", *train_arguments(settings)])
    assert (args.epochs, args.iters, args.val_iters, args.save_every, args.oversample_fg, args.optimizer, args.lr,
            args.mirroring, args.seed) == (7, 43, 2, 7, 0.5, "adamw", 3e-3, False, 1)
    assert "--lr" not in train_arguments(short_schedule(optimizer="adamw"))


def test_trainer_lookup_needs_no_environment(monkeypatch):
    """Models load in this process without nnUNet_extTrainer: ours by name, nnU-Net's through its own lookup."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from nnunet_thrombus.nnunet_env import trainer_class
    from nnunet_thrombus.training.recipes import ThrombusCascadeTrainer_patchContext_cpuShort

    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    assert trainer_class("ThrombusCascadeTrainer_patchContext_cpuShort") is ThrombusCascadeTrainer_patchContext_cpuShort
    assert trainer_class("nnUNetTrainer") is nnUNetTrainer
