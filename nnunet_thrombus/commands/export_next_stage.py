"""``nnunet_thrombus export-next-stage``: rebuild stage-1 ``predicted_next_stage`` from existing checkpoints."""
import logging

from nnunet_thrombus.model_folder import CHECKPOINT, COARSE, DEFAULT_PLANS, DEFAULT_TRAINER

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export-next-stage", description=__doc__,
                              help="write the coarse stage's predictions for the fine stage without retraining")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help=f"stage-1 trainer (default: {DEFAULT_TRAINER})")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans identifier (default: {DEFAULT_PLANS})")
    p.add_argument("-c", "--configuration", default=COARSE, help=f"stage-1 configuration (default: {COARSE})")
    p.add_argument("-device", "--device", default=None, choices=["cuda", "cpu", "mps"],
                   help="torch device (default: cuda when available, else cpu; the choice is printed)")
    p.add_argument("--mirroring", action="store_true", help="test-time mirroring (default: off)")
    p.add_argument("-chk", "--checkpoint", default=CHECKPOINT, help=f"checkpoint file name (default: {CHECKPOINT})")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_thrombus.commands._nnunet_paths import find_our_trainers
    from nnunet_thrombus.nnunet_env import announce_device
    from nnunet_thrombus.training.stage_one import export_next_stage

    find_our_trainers()  # stage 1 is loaded by nnU-Net's own predictor, which finds trainers by name
    info = export_next_stage(args.dataset, args.trainer, args.plans, args.configuration,
                             announce_device(args.device), args.mirroring, args.checkpoint)
    logger.info(f"predicted_next_stage written for {len(info['out_of_fold']) + len(info['in_sample'])} cases "
                f"(stage-1 folds {info['folds']}; out-of-fold: {len(info['out_of_fold'])}, "
                f"in-sample (optimistic): {len(info['in_sample'])})")
    return 0
