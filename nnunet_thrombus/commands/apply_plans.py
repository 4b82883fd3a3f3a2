"""``nnunet_thrombus apply-plans``: write the cascade plans (paper / auto / cpu preset) into a planned dataset."""
import argparse
import logging

from nnunet_thrombus.model_folder import DEFAULT_PLANS

logger = logging.getLogger(__name__)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (e.g. 501)")
    parser.add_argument("--preset", choices=["auto", "cpu", "paper"], default="auto",
                        help="paper: the paper's spacing/patch/features/BN; auto: nnU-Net's 3d_fullres + cascade; "
                             "cpu: reduced features and patch (default: auto)")
    parser.add_argument("-p", "-pl", "--plans-name", "--plans", dest="plans_name", default=DEFAULT_PLANS,
                        help="identifier of the plans written; nnUNetPlans adds 3d_lowres + 3d_cascade_fullres to "
                             "nnU-Net's own plans and leaves its 3d_fullres as nnU-Net made it (the original file kept "
                             f"as nnUNetPlans.orig.json) (default: {DEFAULT_PLANS})")
    parser.add_argument("--source-plans", default="nnUNetPlans", help="plans to start from (default: nnUNetPlans)")
    parser.add_argument("--ct-window", choices=["foreground", "vessel"], default="foreground",
                        help="CT normalisation window: nnU-Net's thrombus-percentile clip or a fixed vessel window "
                             "(default: foreground)")
    parser.add_argument("--patch-size", type=int, nargs=3, default=None, help="override patch size (z y x)")
    parser.add_argument("--features", type=int, nargs="+", default=None, help="override features per stage")
    parser.add_argument("--batch-size", type=int, default=None, help="override batch size")
    parser.add_argument("--coarse-spacing", nargs="+", default=["paper"], metavar="MM",
                        help="spacing of the coarse stage (3d_lowres): 'paper' for the paper's 1.08 0.844 0.844 mm "
                             "with each axis capped at the fine spacing; 'ratio' for the fine spacing times the "
                             "paper's coarse/fine ratio (1.08/0.625, 0.844/0.488); or Z Y X in mm, none finer than "
                             "the fine spacing (default: paper)")
    parser.add_argument("--preprocess", action="store_true",
                        help="also run nnUNetv2_preprocess for 3d_fullres and 3d_lowres (default: off)")
    parser.add_argument("-np", "--num-processes", type=int, default=1,
                        help="processes for --preprocess (default: 1)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("apply-plans", help="write the two-stage plans into a planned nnU-Net dataset",
                                   description=__doc__)
    _configure(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from nnunet_thrombus.training.thrombus_plans import apply_plans, configurations_to_preprocess

    coarse_spacing = args.coarse_spacing
    if coarse_spacing in (["paper"], ["ratio"]):
        coarse_spacing = coarse_spacing[0]
    else:
        try:
            coarse_spacing = [float(v) for v in coarse_spacing]
        except ValueError:
            coarse_spacing = None
        if coarse_spacing is None or len(coarse_spacing) != 3:
            logger.error(f"apply-plans: --coarse-spacing takes 'paper', 'ratio' or three numbers in mm (Z Y X), "
                         f"got {' '.join(args.coarse_spacing)}")
            return 2
    try:
        path = apply_plans(args.dataset, preset=args.preset, plans_name=args.plans_name,
                           source_plans=args.source_plans, ct_window=args.ct_window, patch_size=args.patch_size,
                           features=args.features, batch_size=args.batch_size,
                           coarse_spacing=coarse_spacing)
    except (ValueError, FileNotFoundError) as exc:
        logger.error(f"nnunet_thrombus apply-plans: {exc}")
        return 2
    logger.info(f"wrote {path}")
    configs = configurations_to_preprocess(json.loads(path.read_text()))
    if args.preprocess:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess

        from nnunet_thrombus.training.thrombus_plans import preprocess_dataset_id

        preprocess([preprocess_dataset_id(args.dataset)], plans_identifier=args.plans_name,
                   configurations=tuple(configs), num_processes=(args.num_processes,) * len(configs))
    else:
        logger.info(f"next: nnUNetv2_preprocess -d {args.dataset} -plans_name {args.plans_name} -c {' '.join(configs)}")
    return 0


def standalone_main(argv=None) -> int:
    from nnunet_thrombus.console import configure_logging

    parser = argparse.ArgumentParser(prog="apply_plans.py", description=__doc__)
    _configure(parser)
    args = parser.parse_args(argv)
    configure_logging()
    return run(args)
