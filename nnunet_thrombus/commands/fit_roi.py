"""``nnunet_thrombus fit-roi``: choose the fine stage's ROI threshold on validation cases, stored with the model."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "fit-roi", description=__doc__ + " Runs each fold's coarse stage on that fold's validation cases (imagesTr, "
        "labelsTr of the raw dataset) and, among the thresholds at which every validation clot lies inside the "
        "region the fine stage visits, keeps the one that runs the fewest windows; writes roi_threshold.json in the "
        "fine-stage folder, which predict uses unless --roi-threshold is given.",
        help="choose the ROI threshold of the fine stage on validation cases and store it with the model")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name. Required.")
    p.add_argument("-tr", "--trainer", default="ThrombusCascadeTrainer",
                   help="trainer. Default: ThrombusCascadeTrainer.")
    p.add_argument("-p", "--plans", default="ThrombusPlans", help="plans identifier. Default: ThrombusPlans.")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="torch device. Default: cpu.")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nnunetv2.paths import nnUNet_raw, nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from nnunet_thrombus.inference.roi_threshold_fit import FILE, fit_roi_threshold, format_table

    name = maybe_convert_to_dataset_name(args.dataset)
    results = Path(str(nnUNet_results)) / name
    coarse = results / f"{args.trainer}__{args.plans}__3d_lowres"
    fine = results / f"{args.trainer}__{args.plans}__3d_cascade_fullres"
    info = fit_roi_threshold(coarse, fine, Path(str(nnUNet_raw)) / name, device=args.device)
    for line in format_table(info["table"]):
        print(line)
    kept = " (no threshold kept every clot: the default stays)" if info["default_kept"] else ""
    print(f"ROI threshold {info['threshold']}{kept} from {info['n_cases']} validation cases; written to "
          f"{fine / FILE}")
    return 0
