"""``nnunet_thrombus fit-lvo``: fit the occlusion / LVO rule on the fine stage's validation predictions."""
import logging

from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER, FINE

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fit-lvo", description=__doc__,
                              help="fit the LVO call thresholds on validation folds and store them with the model")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help=f"trainer (default: {DEFAULT_TRAINER})")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans identifier (default: {DEFAULT_PLANS})")
    p.add_argument("-c", "--configuration", default=FINE,
                   help="configuration whose validation predictions to use (3d_fullres for a single-stage model; "
                        f"default: {FINE})")
    p.add_argument("-m", "--metadata", default=None,
                   help="metadata.csv with case (or case_id) and site (default: the raw dataset's metadata.csv)")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_thrombus.calibration.model import FILES
    from nnunet_thrombus.inference.validation_fit import fit_lvo_from_validation
    from nnunet_thrombus.model_folder import ModelError, raw_dataset_folder, stage_folder

    try:
        fine = stage_folder(args.dataset, args.configuration, args.trainer, args.plans)
        info = fit_lvo_from_validation(fine, raw_dataset_folder(args.dataset), args.metadata)
    except (ModelError, FileNotFoundError, RuntimeError) as exc:
        logger.error(str(exc))
        return 2
    logger.info(f"fitted on {info['n_cases']} validation cases ({', '.join(info['folds'])}): {info['thresholds']}")
    logger.info(f"validation truth -> call: {info['counts_truth_to_call']}; written to {fine / FILES['lvo']}")
    pp = info.get("postprocessing")
    if pp:
        logger.info(f"post-processing: {pp['rule']} (validation mean Dice {pp['validation_mean_dice']}); written to "
                    f"{fine / FILES['postprocessing']}")
    return 0
