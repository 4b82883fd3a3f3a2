"""What ``nnunet_thrombus benchmark`` compares (variants) and under which compute budget (budgets).

Every variant trains on the same plans (``ThrombusPlans``), the same fold (0) and the same ``THROMBUS_*`` short
schedule, so the only difference between two rows of the table is the model.

| variant | trainer | stages |
| --- | --- | --- |
| ``vanilla_3d_fullres`` | ``nnUNetTrainer_envSchedule`` (PlainConvUNet, nnU-Net's recipe) | 3d_fullres |
| ``vanilla_cascade`` | ``nnUNetTrainer_envSchedule`` | 3d_lowres -> 3d_cascade_fullres |
| ``ours`` | ``ThrombusCascadeTrainer`` | 3d_lowres -> 3d_cascade_fullres |
| ``noCBAM``, ``noPyramidFusion`` | ``ThrombusCascadeTrainer_<switch>`` | both stages, own stage 1 |
| ``noCoarseFeatures`` | ``ThrombusCascadeTrainer_noCoarseFeatures`` | fine stage only; stage 1 of ``ours`` |

Budgets (``smoke`` runs in CI, ``cpu`` is the committed table, ``gpu`` is documented for a GPU machine):

| budget | data | plans | schedule per stage | TTA |
| --- | --- | --- | --- | --- |
| smoke | tiny preset, 10 cases (3 test) | features 8-16-32, patch 32x48x48 | 1 epoch x 2 iterations | off |
| cpu | demo preset, 24 cases (6 test) | features 8-16-32-64, patch 24x48x48 | fine 8 x 101 iterations (the demo's fine stage), coarse 12 x 101, AdamW 1e-3 | off |
| gpu | paper preset, 100 cases (25 test) | paper plans | 100 epochs x 250 iterations, SGD (the paper's) | on |
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """One row of the benchmark table. ``stage1_from``: trainer whose 3d_lowres model this variant reuses."""

    name: str
    label: str
    trainer: str
    cascade: bool
    stage1_from: str | None = None

    @property
    def stage1_trainer(self) -> str:
        return self.stage1_from or self.trainer


VANILLA = "nnUNetTrainer_envSchedule"
VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("vanilla_3d_fullres", "vanilla nnU-Net 3d_fullres", VANILLA, cascade=False),
    Variant("vanilla_cascade", "vanilla nnU-Net cascade", VANILLA, cascade=True),
    Variant("ours", "ThrombusCascadeTrainer (ours)", "ThrombusCascadeTrainer", cascade=True),
    Variant("noCBAM", "ours without CBAM", "ThrombusCascadeTrainer_noCBAM", cascade=True),
    Variant("noPyramidFusion", "ours without pyramid fusion", "ThrombusCascadeTrainer_noPyramidFusion",
            cascade=True),
    Variant("noCoarseFeatures", "ours without coarse features", "ThrombusCascadeTrainer_noCoarseFeatures",
            cascade=True, stage1_from="ThrombusCascadeTrainer"),
)}
#: the reference row: every timing is also given as a ratio to it
REFERENCE = "vanilla_3d_fullres"


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

    def epochs_for(self, configuration: str) -> int:
        """Epochs for one nnU-Net configuration: ``coarse_epochs`` for ``3d_lowres``, ``epochs`` otherwise."""
        if configuration == "3d_lowres" and self.coarse_epochs is not None:
            return self.coarse_epochs
        return self.epochs

    def describe(self) -> str:
        plans = (f"plans preset {self.plan_preset}"
                 + (f", features {'-'.join(map(str, self.features))}" if self.features else "")
                 + (f", patch {'x'.join(map(str, self.patch_size))}" if self.patch_size else ""))
        schedule = (f"every stage {self.epochs} epoch(s)" if self.coarse_epochs in (None, self.epochs) else
                    f"fine stages {self.epochs} epoch(s), 3d_lowres stages {self.coarse_epochs} epoch(s)")
        return (f"budget {self.name}: {plans}; {schedule} x {self.iters} iterations "
                f"({self.val_iters} validation iterations), optimizer {self.optimizer}, fold 0, "
                f"TTA {'off' if self.disable_tta else 'on'}, "
                f"device {self.device}")


BUDGETS: dict[str, Budget] = {b.name: b for b in (
    Budget("smoke", preset="tiny", n_cases=10, n_test=3, plan_preset="cpu", features=(8, 16, 32),
           patch_size=(32, 48, 48), epochs=1, iters=2, val_iters=1, disable_tta=True),
    # the demo's network, and its fine-stage schedule for every full-resolution stage. Every 3d_lowres stage gets
    # 1.5 times as many iterations: at 410-574 iterations our coarse stage (and, in one of two runs, a plain U-Net
    # at that spacing) scored validation Dice 0, so it could not point the fine stage anywhere (issue 9's ROI).
    Budget("cpu", preset="demo", n_cases=24, n_test=6, plan_preset="cpu", features=(8, 16, 32, 64),
           patch_size=(24, 48, 48), epochs=8, iters=101, val_iters=2, disable_tta=True, optimizer="adamw",
           coarse_epochs=12),
    Budget("gpu", preset="paper", n_cases=100, n_test=25, plan_preset="paper", features=None, patch_size=None,
           epochs=100, iters=250, val_iters=50, disable_tta=False, device="cuda"),
)}


def get_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise ValueError(f"unknown budget {name!r}; choose one of {sorted(BUDGETS)}")
    return BUDGETS[name]


def select_variants(names=None) -> list[Variant]:
    """Variants in run order; the reference row is always included and ``ours`` is run before
    ``noCoarseFeatures`` (whose stage 1 it provides). Unknown names raise ValueError."""
    names = list(VARIANTS) if not names else list(names)
    bad = [n for n in names if n not in VARIANTS]
    if bad:
        raise ValueError(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    wanted = set(names) | {REFERENCE}
    return [v for n, v in VARIANTS.items() if n in wanted]
