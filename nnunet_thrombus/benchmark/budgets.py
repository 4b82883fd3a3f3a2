"""What ``nnunet_thrombus benchmark`` compares (variants) and under which compute budget (budgets).

Every variant trains on the same plans (``ThrombusPlans``; the vessel-window row on ``ThrombusPlansVessel``, which
differs only in its CT normalisation window), the same fold (0), the same short schedule and optimizer (flags of
``nnunet_thrombus train``), and gets the same post-processing step, so the only difference between two rows of the
table is what the row names. Every row is trained with a fixed seed (``nnunet_thrombus train --seed``; part of its
name, ``_seed<k>``, and of its results folder, ``nnUNet_results/seed<k>``); vanilla 3d_fullres, the vanilla cascade
and ours are trained with two seeds, to show the seed-to-seed spread beside the differences between rows.

| variant | trainer | stages |
| --- | --- | --- |
| ``vanilla_3d_fullres_seed0/1`` | ``nnUNetTrainer_envSchedule`` (PlainConvUNet, nnU-Net's loss and recipe) | 3d_fullres |
| ``vanilla_cascade_seed0/1`` | ``nnUNetTrainer_envSchedule`` | 3d_lowres -> 3d_cascade_fullres |
| ``ours_seed0/1`` | ``ThrombusCascadeTrainer`` (global coarse context) | 3d_lowres -> 3d_cascade_fullres |
| ``ours_patchContext_seed0`` | ``ThrombusCascadeTrainer_patchContext`` (coarse features from the fine patch) | fine stage; stage 1 of ``ours_seed0`` |
| ``noCoarseFeatures_seed0`` | ``ThrombusCascadeTrainer_noCoarseFeatures`` | fine stage; stage 1 of ``ours_seed0`` |
| ``noCBAM_seed0``, ``noPyramidFusion_seed0`` | ``ThrombusCascadeTrainer_<switch>`` | both stages, own stage 1 |
| ``plainOurLoss_3d_fullres_seed0`` | ``ThrombusCascadeTrainer_plain`` (PlainConvUNet-equal network, our loss) | 3d_fullres |
| ``ours_vesselWindow_seed0`` | ``ThrombusCascadeTrainer`` on ``ThrombusPlansVessel`` (``apply-plans --ct-window vessel``) | both stages |

Budgets (``smoke`` runs in CI, ``cpu`` is the committed table, ``gpu`` is documented for a GPU machine):

| budget | data | plans | schedule per stage | TTA |
| --- | --- | --- | --- | --- |
| smoke | tiny preset, 10 cases (3 test) | features 8-16-32, patch 32x48x48 | 1 epoch x 1 iteration | off |
| cpu | demo preset, 80 cases (40 test) | features 8-16-32-64, patch 24x48x48 | fine 8 x 101 iterations (the demo's fine stage) at AdamW 1e-3, coarse 12 x 101 at AdamW 3e-3 | off |
| gpu | paper preset, 140 cases (40 test) | paper plans | 100 epochs x 250 iterations, SGD (the paper's) | on |

With TTA off, training mirrors the heads left-right only (``--no-mirroring``, :mod:`~nnunet_thrombus.training.mirroring`);
with TTA on, nnU-Net's three axes, in augmentation and at test time.
"""
from __future__ import annotations

from dataclasses import dataclass

from nnunet_thrombus.model_folder import COARSE, VANILLA_TRAINER

PLANS = "ThrombusPlans"
#: plans identical to ``PLANS`` but for the CT window (``apply-plans --ct-window vessel``)
VESSEL_PLANS = "ThrombusPlansVessel"


@dataclass(frozen=True)
class Variant:
    """One row of the benchmark table.

    ``configuration``: ``3d_fullres`` (one stage) or ``cascade`` (``3d_lowres`` -> ``3d_cascade_fullres``);
    ``stage1_from``: trainer whose 3d_lowres model (same plans, same seed) this variant reuses; ``seed``: the
    seed every stage of the row is trained with (``nnunet_thrombus train --seed``); ``plans``: plans identifier.
    """

    name: str
    label: str
    trainer: str
    cascade: bool
    stage1_from: str | None = None
    seed: int = 0
    plans: str = PLANS

    @property
    def stage1_trainer(self) -> str:
        return self.stage1_from or self.trainer

    @property
    def configuration(self) -> str:
        """The nnU-Net configuration whose predictions are the row's output."""
        return "3d_cascade_fullres" if self.cascade else "3d_fullres"

    @property
    def thrombus_predict(self) -> bool:
        """Predicted with ``nnunet_thrombus predict`` (our cascades: one whole-case coarse pass, which the
        global-context fine stage needs and ``nnUNetv2_predict`` cannot give), else with ``nnUNetv2_predict``."""
        return self.cascade and self.trainer.startswith(OURS_TRAINER)

    @property
    def ct_window(self) -> str:
        return "vessel" if self.plans == VESSEL_PLANS else "foreground"


OURS_TRAINER = "ThrombusCascadeTrainer"


def _seeded(name: str, label: str, trainer: str, cascade: bool, seed: int = 0, **kw) -> Variant:
    return Variant(f"{name}_seed{seed}", f"{label} (seed {seed})", trainer, cascade, seed=seed, **kw)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    _seeded("vanilla_3d_fullres", "vanilla nnU-Net 3d_fullres", VANILLA_TRAINER, cascade=False),
    _seeded("vanilla_3d_fullres", "vanilla nnU-Net 3d_fullres", VANILLA_TRAINER, cascade=False, seed=1),
    _seeded("vanilla_cascade", "vanilla nnU-Net cascade", VANILLA_TRAINER, cascade=True),
    _seeded("vanilla_cascade", "vanilla nnU-Net cascade", VANILLA_TRAINER, cascade=True, seed=1),
    _seeded("ours", "ours, global coarse context", OURS_TRAINER, cascade=True),
    _seeded("ours", "ours, global coarse context", OURS_TRAINER, cascade=True, seed=1),
    _seeded("ours_patchContext", "ours, patch-local coarse features", "ThrombusCascadeTrainer_patchContext",
            cascade=True, stage1_from=OURS_TRAINER),
    _seeded("noCoarseFeatures", "ours without coarse features", "ThrombusCascadeTrainer_noCoarseFeatures",
            cascade=True, stage1_from=OURS_TRAINER),
    _seeded("noCBAM", "ours without CBAM", "ThrombusCascadeTrainer_noCBAM", cascade=True),
    _seeded("noPyramidFusion", "ours without pyramid fusion", "ThrombusCascadeTrainer_noPyramidFusion", cascade=True),
    _seeded("plainOurLoss_3d_fullres", "vanilla 3d_fullres network, our loss", "ThrombusCascadeTrainer_plain",
            cascade=False),
    _seeded("ours_vesselWindow", "ours, --ct-window vessel", OURS_TRAINER, cascade=True, plans=VESSEL_PLANS),
)}
#: the reference row: every timing is also given as a ratio to it
REFERENCE = "vanilla_3d_fullres_seed0"
#: the row every other row is compared with, case by case
OURS = "ours_seed0"
#: seed replicates: (seed-0 row, seed-1 row), for the seed-to-seed spread
SEED_PAIRS = (("vanilla_3d_fullres_seed0", "vanilla_3d_fullres_seed1"), ("vanilla_cascade_seed0", "vanilla_cascade_seed1"),
              ("ours_seed0", "ours_seed1"))


@dataclass(frozen=True)
class Budget:
    """Data, plans and training schedule shared by all variants of one benchmark run."""

    name: str
    preset: str
    n_cases: int
    n_test: int
    plan_preset: str
    features: tuple | None
    patch_size: tuple | None
    epochs: int
    iters: int
    val_iters: int
    disable_tta: bool
    device: str = "cpu"
    optimizer: str = "sgd"
    #: epochs of every ``3d_lowres`` stage (ours, the ablations', vanilla cascade's); None = ``epochs``
    coarse_epochs: int | None = None
    #: initial learning rate of every stage; None = the optimizer's default (SGD 0.01, AdamW 1e-3)
    lr: float | None = None
    #: initial learning rate of every ``3d_lowres`` stage; None = ``lr``
    coarse_lr: float | None = None

    def epochs_for(self, configuration: str) -> int:
        """Epochs for one nnU-Net configuration: ``coarse_epochs`` for ``3d_lowres``, ``epochs`` otherwise."""
        if configuration == COARSE and self.coarse_epochs is not None:
            return self.coarse_epochs
        return self.epochs

    def lr_for(self, configuration: str) -> float | None:
        """Initial learning rate for one nnU-Net configuration (None: the optimizer's default)."""
        if configuration == COARSE and self.coarse_lr is not None:
            return self.coarse_lr
        return self.lr

    def describe(self) -> str:
        plans = (f"plans preset {self.plan_preset}"
                 + (f", features {'-'.join(map(str, self.features))}" if self.features else "")
                 + (f", patch {'x'.join(map(str, self.patch_size))}" if self.patch_size else ""))
        schedule = (f"every stage {self.epochs} epoch(s)" if self.coarse_epochs in (None, self.epochs) else
                    f"fine stages {self.epochs} epoch(s), 3d_lowres stages {self.coarse_epochs} epoch(s)")
        lr = "default lr" if self.lr is None else f"lr {self.lr:g}"
        if self.coarse_lr is not None:
            lr += f" (3d_lowres stages {self.coarse_lr:g})"
        return (f"budget {self.name}: {plans}; {schedule} x {self.iters} iterations "
                f"({self.val_iters} validation iterations), optimizer {self.optimizer} {lr}, fold 0, "
                f"TTA {'off' if self.disable_tta else 'on'}, "
                f"device {self.device}")


BUDGETS: dict[str, Budget] = {b.name: b for b in (
    Budget("smoke", preset="tiny", n_cases=10, n_test=3, plan_preset="cpu", features=(8, 16, 32),
           patch_size=(32, 48, 48), epochs=1, iters=1, val_iters=1, disable_tta=True),
    # the demo's network, and its fine-stage schedule for every full-resolution stage. Every 3d_lowres stage gets
    # 1.5 times as many iterations: at 410-574 iterations our coarse stage (and, in one of two runs, a plain U-Net
    # at that spacing) scored validation Dice 0, so it could not point the fine stage anywhere (the fine stage's ROI).
    # 40 test patients (>= 30 with a clot, >= 10 clot-free) and 40 training patients (fold 0: 32 train,
    # 8 validation): 808 fine iterations x batch 2 see each training patient about 50 times (docs/benchmark.md).
    # Every 3d_lowres stage trains at AdamW 3e-3: at 1e-3 our coarse stage found 0/4 held-out clots after 301
    # iterations, at 3e-3 2-3/4 (the demo's DEMO_COARSE_LR, same finding).
    Budget("cpu", preset="demo", n_cases=80, n_test=40, plan_preset="cpu", features=(8, 16, 32, 64),
           patch_size=(24, 48, 48), epochs=8, iters=101, val_iters=2, disable_tta=True, optimizer="adamw",
           coarse_epochs=12, coarse_lr=3e-3),
    Budget("gpu", preset="paper", n_cases=140, n_test=40, plan_preset="paper", features=None, patch_size=None,
           epochs=100, iters=250, val_iters=50, disable_tta=False, device="cuda"),
)}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose one of {sorted(BUDGETS)}")
    return BUDGETS[name]


def select_variants(names=None) -> list[Variant]:
    """Variants in table order. The reference row and ours (the row every other one is compared with) are always
    included; rows that reuse another trainer's stage 1 come after it. Unknown names raise ValueError."""
    names = list(VARIANTS) if not names else list(names)
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    wanted = set(names) | {REFERENCE, OURS}
    return [v for n, v in VARIANTS.items() if n in wanted]
