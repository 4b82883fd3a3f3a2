"""``nnunet_thrombus export-next-stage``: rebuild stage-1 ``predicted_next_stage`` from existing checkpoints."""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export-next-stage", description=__doc__,
                              help="write the coarse stage's predictions for the fine stage without retraining")
    p.add_argument("-d", "--dataset", required=True, help="dataset id or name")
    p.add_argument("-tr", "--trainer", default="ThrombusCascadeTrainer",
                   help="stage-1 trainer (default: ThrombusCascadeTrainer)")
    p.add_argument("-p", "--plans", default="ThrombusPlans", help="plans identifier (default: ThrombusPlans)")
    p.add_argument("-c", "--configuration", default="3d_lowres", help="stage-1 configuration (default: 3d_lowres)")
    p.add_argument("-device", "--device", default="cpu", choices=["cpu", "cuda", "mps"], help="(default: cpu)")
    p.add_argument("--mirroring", action="store_true", help="test-time mirroring (default: off)")
    p.add_argument("-chk", "--checkpoint", default="checkpoint_final.pth",
                   help="checkpoint file name (default: checkpoint_final.pth)")
    p.set_defaults(func=run)


def run(args) -> int:
    import os

    from nnunet_thrombus.nnunet_env import ext_trainer_value

    os.environ["nnUNet_extTrainer"] = ext_trainer_value(os.environ.get("nnUNet_extTrainer"))
    from nnunet_thrombus.training.stage_one import export_next_stage

    info = export_next_stage(args.dataset, args.trainer, args.plans, args.configuration, args.device,
                             args.mirroring, args.checkpoint)
    print(f"predicted_next_stage written for {len(info['out_of_fold']) + len(info['in_sample'])} cases "
          f"(stage-1 folds {info['folds']}; out-of-fold: {len(info['out_of_fold'])}, "
          f"in-sample (optimistic): {len(info['in_sample'])})")
    return 0
