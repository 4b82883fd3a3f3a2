"""The stage-1 error message, the deep-supervision weights and the optimizer choice."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nnunet_thrombus.training import stage_one
from nnunet_thrombus.training.overrides import TrainingSettings


def test_missing_stage1_predictions_name_folds_and_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    pm = SimpleNamespace(dataset_name="Dataset501_SynthThrombus", plans_name="ThrombusPlans")
    folder = stage_one.predicted_next_stage_folder(pm, "3d_lowres", "3d_cascade_fullres", "ThrombusCascadeTrainer")
    s1 = tmp_path / "Dataset501_SynthThrombus" / "ThrombusCascadeTrainer__ThrombusPlans__3d_lowres"
    (s1 / "fold_2").mkdir(parents=True)
    (s1 / "fold_2" / "checkpoint_final.pth").write_bytes(b"x")
    (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / folder / "A.b2nd").write_bytes(b"x")
    with pytest.raises(FileNotFoundError) as err:
        stage_one.require_previous_stage_predictions(pm, "3d_lowres", "3d_cascade_fullres", "ThrombusCascadeTrainer",
                                                     ["A", "B", "C"], folder)
    msg = str(err.value)
    assert "2 are missing (B, C)" in msg
    assert "trained: [2], missing folds: [0, 1, 3, 4]" in msg
    assert "nnUNetv2_train 501 3d_lowres 0 -tr ThrombusCascadeTrainer -p ThrombusPlans" in msg
    assert "nnunet_thrombus export-next-stage -d 501" in msg
    stage_one.require_previous_stage_predictions(pm, "3d_lowres", "3d_cascade_fullres", "ThrombusCascadeTrainer",
                                                 ["A"], folder)


def test_missing_stage1_checkpoint_names_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    pm = SimpleNamespace(dataset_name="Dataset501_SynthThrombus", plans_name="ThrombusPlans")
    with pytest.raises(FileNotFoundError, match="nnUNetv2_train 501 3d_lowres 3 -tr ThrombusCascadeTrainer"):
        stage_one.stage1_checkpoint(pm, "3d_lowres", 3, "ThrombusCascadeTrainer", "3d_cascade_fullres")


def test_deep_supervision_weights_halve_and_sum_to_one():
    """nnU-Net zeroes the lowest level's weight; the paper halves per level and normalises, keeping all levels.
    The Dice term inside is the present-class Dice."""
    from nnunet_thrombus.training.losses import PresentClassSoftDiceLoss
    from nnunet_thrombus.training.trainer import ThrombusCascadeTrainer

    trainer = object.__new__(ThrombusCascadeTrainer)
    trainer.enable_deep_supervision = True
    trainer.is_ddp = False
    trainer.label_manager = SimpleNamespace(has_regions=False, ignore_label=None)
    trainer.configuration_manager = SimpleNamespace(batch_dice=False)
    trainer._get_deep_supervision_scales = lambda: [[1, 1, 1], [.5, .5, .5], [.25, .25, .25], [.125, .125, .125]]
    loss = trainer._build_loss()
    np.testing.assert_allclose(loss.weight_factors, np.array([8, 4, 2, 1]) / 15)
    assert isinstance(loss.loss.dc, PresentClassSoftDiceLoss)


def test_short_schedule_builds_the_chosen_optimizer():
    """SGD Nesterov 0.99 at lr 0.01 by default (the paper); AdamW at 1e-3 when asked; frozen parameters left out;
    poly decay either way."""
    import torch

    from nnunet_thrombus.training.short_run import ShortScheduleMixin

    class Stub(ShortScheduleMixin):
        def __init__(self, overrides):
            self.initial_lr, self.weight_decay, self.num_epochs = 1e-2, 3e-5, 10
            self._apply_short_schedule(overrides)
            self.network = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
            self.network[0].requires_grad_(False)

    opt, sched = Stub(TrainingSettings()).configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.99
    assert opt.param_groups[0]["lr"] == 1e-2 and len(opt.param_groups[0]["params"]) == 2
    opt, sched = Stub(TrainingSettings(optimizer="adamw")).configure_optimizers()
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == 1e-3
    sched.step(5)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 5 / 10) ** 0.9)


def test_command_failure_lists_the_cause_printed_before_worker_tracebacks(tmp_path):
    """nnU-Net's preprocessing workers print their own tracebacks after the main process fails; the error raised for
    a failed command must still carry the cause, and only from this command's part of an appended log."""
    from nnunet_thrombus.training.workflow import command_failure

    log = tmp_path / "predict.log"
    worker_noise = [f"  File \"managers.py\", line {i}, in serve_client\n" for i in range(40)]
    log.write_text("$ earlier command\nValueError: from an earlier command\n"
                   "$ nnUNetv2_predict -i in -o out\nTraceback (most recent call last):\n"
                   "nnunet_thrombus.networks.cascade_net.MissingCoarseContextError: use nnunet_thrombus predict\n"
                   + "".join(worker_noise) + "KeyError: '7f1493a6b610'\n" + "".join(worker_noise)
                   + "multiprocessing.managers.RemoteError: \n")
    message = str(command_failure(["nnUNetv2_predict", "-i", "in"], 1, log))
    listed = message.split("errors it printed:\n")[1].split("log ")[0].splitlines()
    assert listed == ["  nnunet_thrombus.networks.cascade_net.MissingCoarseContextError: use nnunet_thrombus predict",
                      "  KeyError: '7f1493a6b610'"]
    assert message.count("in serve_client") == 25 - 1  # the tail: 25 lines, the last one the RemoteError
