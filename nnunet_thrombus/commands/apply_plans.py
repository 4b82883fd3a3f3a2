"""``nnunet_thrombus apply-plans``: write the cascade plans (paper / auto / cpu preset) into a planned dataset."""
import argparse


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (e.g. 501)")
    parser.add_argument("--preset", choices=["auto", "cpu", "paper"], default="auto",
                        help="paper: the paper's spacing/patch/features/BN; auto: nnU-Net's 3d_fullres + cascade; "
                             "cpu: reduced features and patch (default: auto)")
    parser.add_argument("-pl", "--plans-name", default="ThrombusPlans",
                        help="identifier of the plans written (use nnUNetPlans to add the cascade in place, the "
                             "original kept as nnUNetPlans.orig.json) (default: ThrombusPlans)")
    parser.add_argument("--source-plans", default="nnUNetPlans", help="plans to start from (default: nnUNetPlans)")
    parser.add_argument("--ct-window", choices=["foreground", "vessel"], default="foreground",
                        help="CT normalisation window: nnU-Net's thrombus-percentile clip or a fixed vessel window "
                             "(default: foreground)")
    parser.add_argument("--patch-size", type=int, nargs=3, default=None, help="override patch size (z y x)")
    parser.add_argument("--features", type=int, nargs="+", default=None, help="override features per stage")
    parser.add_argument("--batch-size", type=int, default=None, help="override batch size")
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
    from nnunet_thrombus.training.thrombus_plans import apply_plans

    path = apply_plans(args.dataset, preset=args.preset, plans_name=args.plans_name, source_plans=args.source_plans,
                       ct_window=args.ct_window, patch_size=args.patch_size, features=args.features,
                       batch_size=args.batch_size)
    print(f"wrote {path}")
    if args.preprocess:
        from nnunetv2.experiment_planning.plan_and_preprocess_api import preprocess

        from nnunet_thrombus.training.thrombus_plans import preprocess_dataset_id

        preprocess([preprocess_dataset_id(args.dataset)], plans_identifier=args.plans_name,
                   configurations=("3d_fullres", "3d_lowres"), num_processes=(args.num_processes,) * 2)
    else:
        print(f"next: nnUNetv2_preprocess -d {args.dataset} -plans_name {args.plans_name} -c 3d_fullres 3d_lowres")
    return 0


def standalone_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="apply_plans.py", description=__doc__)
    _configure(parser)
    return run(parser.parse_args(argv))
