"""``nnunet_thrombus fit-lvo``: fit the occlusion / LVO rule on the fine stage's validation predictions."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fit-lvo", description=__doc__,
                              help="fit the LVO call thresholds on validation folds and store them with the model")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    p.add_argument("-tr", "--trainer", default="ThrombusCascadeTrainer",
                   help="trainer (default: ThrombusCascadeTrainer)")
    p.add_argument("-p", "--plans", default="ThrombusPlans", help="plans identifier (default: ThrombusPlans)")
    p.add_argument("-m", "--metadata", default=None,
                   help="metadata.csv with case (or case_id) and site (default: the raw dataset's metadata.csv)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from nnunetv2.paths import nnUNet_raw, nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    from nnunet_thrombus.training.lvo_fit import fit_lvo_from_validation

    name = maybe_convert_to_dataset_name(args.dataset)
    fine = Path(str(nnUNet_results)) / name / f"{args.trainer}__{args.plans}__3d_cascade_fullres"
    info = fit_lvo_from_validation(fine, Path(str(nnUNet_raw)) / name, args.metadata)
    print(f"fitted on {info['n_cases']} validation cases ({', '.join(info['folds'])}): {info['thresholds']}")
    print(f"validation truth -> call: {info['counts_truth_to_call']}; written to {fine / 'lvo_thresholds.json'}")
    pp = info.get("postprocessing")
    if pp:
        print(f"post-processing: {pp['rule']} (validation mean Dice {pp['validation_mean_dice']}); written to "
              f"{fine / 'postprocessing.json'}")
    return 0
