"""``nnunet_thrombus find-best-configuration``: nnU-Net's model selection for models trained by different trainers.

``nnUNetv2_find_best_configuration ID -c 3d_fullres 3d_cascade_fullres -tr ThrombusCascadeTrainer`` asks for every
trainer x configuration pair, so it stops at the ``ThrombusCascadeTrainer__...__3d_fullres`` folder nobody trained,
and adding ``-tr nnUNetTrainer`` asks for a vanilla ``3d_cascade_fullres`` too. This command takes the pairs that
exist (``TRAINER:CONFIGURATION[:PLANS]``) and hands them to nnU-Net's own ``find_best_configuration``, which
compares their cross-validation Dice, chooses the post-processing and writes ``inference_instructions.txt`` and
``inference_information.json`` under ``nnUNet_results/<Dataset>``.
"""
from __future__ import annotations

import argparse
import logging

from nnunet_thrombus.model_folder import DEFAULT_TRAINER, FINE

logger = logging.getLogger(__name__)


def _model(value: str) -> tuple[str, str, str | None]:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise argparse.ArgumentTypeError(f"expected TRAINER:CONFIGURATION[:PLANS], got {value!r}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "find-best-configuration", description=__doc__,
        help="nnU-Net's find_best_configuration over (trainer, configuration) pairs, e.g. vanilla vs our cascade")
    p.add_argument("dataset", help="dataset id or name. Required.")
    p.add_argument("-m", "--models", nargs="+", type=_model,
                   default=[("nnUNetTrainer", "3d_fullres", None), (DEFAULT_TRAINER, FINE, None)],
                   help="TRAINER:CONFIGURATION[:PLANS] of each trained model. Default: nnUNetTrainer:3d_fullres "
                        "ThrombusCascadeTrainer:3d_cascade_fullres.")
    p.add_argument("-p", "--plans", default="nnUNetPlans",
                   help="plans of the models that name none. Default: nnUNetPlans.")
    p.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4],
                   help="folds whose validation predictions are compared. Default: 0 1 2 3 4.")
    p.add_argument("-np", "--num-processes", type=int, default=1, help="processes. Default: 1.")
    p.add_argument("--disable_ensembling", "--disable-ensembling", action="store_true",
                   help="do not try ensembles (they need training with --npz). Default: try them, as nnU-Net does.")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunetv2.evaluation.find_best_configuration import find_best_configuration

    from nnunet_thrombus.commands._nnunet_paths import find_our_trainers
    from nnunet_thrombus.model_folder import dataset_name

    find_our_trainers()
    models = [{"trainer": t, "configuration": c, "plans": pl or args.plans} for t, c, pl in args.models]
    info = find_best_configuration(dataset_name(args.dataset), models, allow_ensembling=not args.disable_ensembling,
                                   num_processes=args.num_processes, overwrite=True, folds=tuple(args.folds),
                                   strict=True)
    for chosen in info["best_model_or_ensemble"]["selected_model_or_models"]:
        if chosen["configuration"] == FINE:
            logger.info(f"The cascade's fine stage needs its coarse stage's predictions: run nnUNetv2_predict with "
                        f"-c 3d_lowres first and pass its output as -prev_stage_predictions, or run both stages, "
                        f"measurements and reports with:\n  nnunet_thrombus predict -i INPUT_FOLDER -o "
                        f"OUTPUT_FOLDER -d {args.dataset} -tr {chosen['trainer']} -p {chosen['plans_identifier']}")
    return 0
