"""``nnunet_thrombus fit-roi``: choose the fine stage's ROI threshold on validation cases, stored with the model."""
import logging

from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER

logger = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "fit-roi", description=__doc__ + " Runs each fold's coarse stage on that fold's validation cases (imagesTr, "
        "labelsTr of the raw dataset) and, among the thresholds at which every validation clot lies inside the "
        "region the fine stage visits, keeps the one that runs the fewest windows; writes roi_threshold.json in the "
        "fine-stage folder, which predict uses unless --roi-threshold is given.",
        help="choose the ROI threshold of the fine stage on validation cases and store it with the model")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name. Required.")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help=f"trainer. Default: {DEFAULT_TRAINER}.")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans identifier. Default: {DEFAULT_PLANS}.")
    p.add_argument("-device", "--device", choices=("cuda", "cpu", "mps"), default=None,
                   help="torch device. Default: cuda when available, else cpu (the choice is printed).")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="errors only, as the global -q (the result is in roi_threshold.json). Default: per-case "
                        "lines, the table and the result line.")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_thrombus.calibration.model import FILES
    from nnunet_thrombus.calibration.roi import format_table
    from nnunet_thrombus.inference.validation_fit import fit_roi_threshold
    from nnunet_thrombus.model_folder import COARSE, FINE, ModelError, raw_dataset_folder, stage_folder
    from nnunet_thrombus.nnunet_env import announce_device

    device = announce_device(args.device, quiet=args.quiet)
    try:
        coarse = stage_folder(args.dataset, COARSE, args.trainer, args.plans)
        fine = stage_folder(args.dataset, FINE, args.trainer, args.plans)
        info = fit_roi_threshold(coarse, fine, raw_dataset_folder(args.dataset), device=device,
                                 progress=logger.info)
    except (ModelError, FileNotFoundError) as exc:
        logger.error(str(exc))
        return 2
    logger.info("\n".join(format_table(info["table"])))
    kept = " (no threshold kept every clot: the default stays)" if info["default_kept"] else ""
    logger.info(f"ROI threshold {info['threshold']}{kept} from {info['n_cases']} validation cases; written to "
                f"{fine / FILES['roi']}")
    return 0
