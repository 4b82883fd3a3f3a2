"""ThrombusCascadeTrainer: the coarse-to-fine model of Zhu et al. (AJNR 2023) inside ``nnUNetv2_train``.

One trainer name serves both stages, because nnU-Net finds a cascade's previous-stage predictions through the
trainer name:

- ``3d_lowres`` (stage 1, coarse): :class:`ThrombusCoarseUNet` (CBAM + scale-aware pyramid fusion).
- ``3d_cascade_fullres`` (stage 2, fine): :class:`ThrombusCascadeNet`; its coarse branch is loaded from the same
  fold's stage-1 ``checkpoint_final.pth`` and frozen (``freeze_coarse``). With the global coarse context (the
  default, ``coarse_context = "global"``) the coarse branch runs once over each whole training case (cached,
  :class:`~nnunet_thrombus.training.global_context.CoarseContextBank`) and every patch samples those features at
  its voxels' positions, carried through nnU-Net's augmentation by
  :class:`~nnunet_thrombus.training.global_context.PositionDataLoader`.

Recipe (paper, where explicit): SGD Nesterov momentum 0.99, lr 0.01, poly decay 0.9, weight decay 3e-5, batch 2
(from the plans), Dice + CE with deep-supervision weights halving per level and normalised to sum 1 (nnU-Net zeroes
the lowest level; the paper does not), nnU-Net's augmentation (rotation, scaling, low-resolution simulation, ...).
Named recipes (short CPU schedules) are subclasses (:mod:`nnunet_thrombus.training.recipes`); run-time overrides
come from :mod:`nnunet_thrombus.training.overrides`.

How it extends nnU-Net (2.8): whole-method overrides, as nnU-Net's own variants do. ``get_dataloaders`` and
``perform_actual_validation`` of the global-context fine stage name nnU-Net's loader and predictor classes inside
nnU-Net's methods, so ours follow those methods with our classes
(:func:`~nnunet_thrombus.training.global_context.position_dataloaders`,
:func:`~nnunet_thrombus.training.context_validation.validate_with_coarse_context`). A global-context fine stage
loaded by nnU-Net's own predictor (``nnUNetv2_predict``) stops at its first window with
:class:`~nnunet_thrombus.networks.cascade_net.MissingCoarseContextError`, which names the command that can run it.
"""
from __future__ import annotations

import numpy as np
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_thrombus.networks.cascade_net import unwrap_network
from nnunet_thrombus.training import stage_one
from nnunet_thrombus.training.context_validation import validate_with_coarse_context
from nnunet_thrombus.training.global_context import CoarseContextBank, position_dataloaders, split_positions
from nnunet_thrombus.training.losses import PresentClassSoftDiceLoss
from nnunet_thrombus.training.network_builder import NetworkSwitches, build_thrombus_network
from nnunet_thrombus.training.overrides import DEFAULT_CONTEXT_CACHE_GB
from nnunet_thrombus.training.short_run import ShortScheduleMixin


class ThrombusCascadeTrainer(ShortScheduleMixin, nnUNetTrainer):
    #: ablation switches (see :class:`NetworkSwitches`); variants in :mod:`nnunet_thrombus.training.variants`
    use_cbam = True
    use_pyramid_fusion = True
    use_coarse_features = True
    freeze_coarse = True
    #: source of the fine stage's coarse features: "global" (one whole-case coarse pass) or "patch" (per patch)
    coarse_context = "global"
    #: trainer whose stage-1 results (checkpoint, predicted_next_stage) the fine stage uses; None = this trainer
    stage1_trainer_name: str | None = None
    #: share of training samples whose coarse features come from another training case (see
    #: :meth:`context_keys`); 0 = always their own case
    context_swap_probability = 0.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = 1e-2
        self.weight_decay = 3e-5
        self._apply_short_schedule()
        if self.is_cascaded and self.stage1_trainer_name is not None:
            self.folder_with_segs_from_previous_stage = stage_one.predicted_next_stage_folder(
                self.plans_manager, self.configuration_manager.previous_stage_name, self.configuration_name,
                self.stage1_trainer_name)
        self.coarse_branch_status = "not used"
        self._context_bank: CoarseContextBank | None = None

    @classmethod
    def network_switches(cls) -> NetworkSwitches:
        return NetworkSwitches(cls.use_cbam, cls.use_pyramid_fusion, cls.use_coarse_features, cls.freeze_coarse,
                               cls.coarse_context)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        """nnU-Net's (new) signature; a classmethod so ablation variants pass their switches. The predictor calls it
        with the plans of the results folder, so ``nnUNetv2_predict`` rebuilds the same network."""
        return build_thrombus_network(plans_manager, configuration_manager, num_input_channels,
                                      num_output_channels, enable_deep_supervision, cls.network_switches())

    # ------------------------------------------------------------------ setup
    def initialize(self):
        already = self.was_initialized
        super().initialize()
        if already:
            return
        net = unwrap_network(self.network)
        if self.is_cascaded and getattr(net, "use_coarse_features", False):
            ckpt = stage_one.stage1_checkpoint(self.plans_manager, self.configuration_manager.previous_stage_name,
                                               self.fold, self.stage1_trainer_name or self.__class__.__name__,
                                               self.configuration_name)
            net.load_coarse_weights(ckpt)
            frozen = not any(p.requires_grad for p in net.coarse_branch.parameters())
            self.coarse_branch_status = f"loaded from {ckpt}, {'frozen' if frozen else 'fine-tuned'}"
        elif self.is_cascaded:
            self.coarse_branch_status = "disabled (use_coarse_features=False)"
        self.print_to_log_file(f"ThrombusCascadeTrainer: configuration {self.configuration_name}, network "
                               f"{type(net).__name__}, switches {self.network_switches()}, "
                               f"coarse branch: {self.coarse_branch_status}")

    def _build_loss(self):
        """Dice + CE as nnU-Net builds it, with two changes: the Dice term scores only (sample, class) pairs whose
        reference holds the class (:class:`PresentClassSoftDiceLoss`; nnU-Net's rewards predicting nothing on
        thrombus-free patches), and the deep-supervision weights halve per level and are normalised with no level
        zeroed (the paper)."""
        if self.label_manager.has_regions:
            raise ValueError("ThrombusCascadeTrainer expects a label map (background/thrombus), not regions")
        loss = DC_and_CE_loss({"batch_dice": self.configuration_manager.batch_dice, "smooth": 1e-5, "do_bg": False,
                               "ddp": self.is_ddp}, {}, weight_ce=1, weight_dice=1,
                              ignore_label=self.label_manager.ignore_label, dice_class=PresentClassSoftDiceLoss)
        if self.enable_deep_supervision:
            n = len(self._get_deep_supervision_scales())
            weights = np.array([1 / (2 ** i) for i in range(n)])
            loss = DeepSupervisionWrapper(loss, tuple(weights / weights.sum()))
        return loss

    def on_train_start(self):
        if self.is_cascaded:
            tr_keys, val_keys = self.do_split()
            stage_one.require_previous_stage_predictions(
                self.plans_manager, self.configuration_manager.previous_stage_name, self.configuration_name,
                self.stage1_trainer_name or self.__class__.__name__, list(tr_keys) + list(val_keys),
                self.folder_with_segs_from_previous_stage)
        super().on_train_start()

    # ------------------------------------------------------------------ global coarse context
    def uses_global_context(self) -> bool:
        return self.is_cascaded and getattr(unwrap_network(self.network), "uses_global_context", False)

    def context_bank(self) -> CoarseContextBank:
        """Whole-case coarse contexts of this fold's cases (``context_cache_gb`` of the run-time overrides, default 8,
        of memory)."""
        if self._context_bank is None:
            net = unwrap_network(self.network)
            cases = self.dataset_class(self.preprocessed_dataset_folder, None)
            n_img = net.num_image_channels
            self._context_bank = CoarseContextBank(
                lambda key: np.asarray(cases.load_case(key)[0][:n_img]), net.whole_case_coarse_pass, self.device,
                int((self.context_cache_gb or DEFAULT_CONTEXT_CACHE_GB) * 2 ** 30))
        return self._context_bank

    def context_keys(self, keys, train: bool) -> list:
        """Whose coarse context each sample of a batch gets: its own case, or, while training and with probability
        :attr:`context_swap_probability`, another training case seen so far (features at the same positions).

        Stage 1 is trained on the very cases the fine stage trains on, so on them its features point at the clot
        every time, and a fine stage can learn to copy them; on a new patient the coarse stage misses small clots
        and the copying fine stage misses them too. A swapped context (another head's features at the same place,
        where that head has no clot) shows the fine stage what a coarse miss looks like, while the clot stays in
        its image channels."""
        keys = list(keys)
        seen = self.__dict__.setdefault("_context_keys_seen", [])
        for k in keys:
            if k not in seen:
                seen.append(k)
        if not train or self.context_swap_probability <= 0:
            return keys
        out = []
        for k in keys:
            others = [o for o in seen if o != k]
            swap = others and np.random.uniform() < self.context_swap_probability
            out.append(others[np.random.randint(len(others))] if swap else k)
        return out

    def batch_context(self, batch: dict, train: bool = False) -> tuple[dict, list]:
        """Split the position channels off ``batch["data"]`` and sample each sample's case context at them
        (``train``: the context keys of :meth:`context_keys`; otherwise each sample's own case)."""
        data, positions = split_positions(batch["data"])
        bank = self.context_bank()
        keys = self.context_keys(batch["keys"], train=True) if train else list(batch["keys"])
        features = unwrap_network(self.network).context_features([bank[k] for k in keys], positions.to(self.device))
        return {**batch, "data": data}, features

    def get_dataloaders(self):
        """nnU-Net's; with the global context, its loaders carry each patch's case positions."""
        if not self.uses_global_context():
            return super().get_dataloaders()
        return position_dataloaders(self)

    def _step_with_context(self, step, batch: dict, train: bool = False) -> dict:
        """Run nnU-Net's ``step`` (train or validation) with the batch's coarse features in scope."""
        if not self.uses_global_context():
            return step(batch)
        batch, features = self.batch_context(batch, train=train)
        with unwrap_network(self.network).using_coarse_features(features):
            return step(batch)

    def train_step(self, batch: dict) -> dict:
        return self._step_with_context(super().train_step, batch, train=True)

    def validation_step(self, batch: dict) -> dict:
        return self._step_with_context(super().validation_step, batch)

    def _write_whole_head_next_stage(self) -> None:
        net = unwrap_network(self.network)
        if self.is_cascaded or not stage_one.has_whole_head_pass(net) or self.local_rank != 0:
            return
        if not self.configuration_manager.next_stage_names:
            return
        _, val_keys = self.do_split()
        info = stage_one.write_whole_head_next_stage(net, [None], self.plans_manager, self.configuration_name,
                                                     val_keys, self.output_folder_base, self.device)
        self.print_to_log_file(f"predicted_next_stage: {len(val_keys)} held-out cases rewritten from one whole-head "
                               f"pass each ({info['seconds_per_case']:.2f} s per case), as predict computes it")

    def on_epoch_end(self):
        if self._context_bank is not None:
            st = self._context_bank.stats
            self.print_to_log_file(f"coarse contexts: {st['misses']} whole-case passes in {st['compute_s']:.1f} s, "
                                   f"{st['hits']} cache hits, {st['stored_bytes'] / 2 ** 20:.1f} MB stored")
        super().on_epoch_end()

    def perform_actual_validation(self, save_probabilities: bool = False):
        """nnU-Net's validation; with the global context its predictor runs one whole-case coarse pass per case.

        Stage 1 (a configuration with a next stage): nnU-Net writes the held-out cases' maps for the fine stage
        with its sliding window; they are then rewritten from one whole-head pass per case, the coarse map that
        ``predict`` feeds the fine stage, so the fine stage trains on what it will see."""
        if not self.uses_global_context():
            result = super().perform_actual_validation(save_probabilities)
            self._write_whole_head_next_stage()
            return result
        return validate_with_coarse_context(self, save_probabilities)
