"""``nnunet_thrombus train``: ``nnUNetv2_train`` for one fold, with the schedule, optimizer and seed as flags.

The results folder is nnU-Net's (``<trainer>__<plans>__<configuration>/fold_k``); every flag given is written to
``training_recipe.json`` as an override of the trainer's recipe. Flags left out keep the recipe (and any
``THROMBUS_*`` variables).
"""
from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", description=__doc__,
                              help="train one fold like nnUNetv2_train, with schedule, optimizer and seed flags")
    p.add_argument("dataset", help="dataset id or name")
    p.add_argument("configuration", help="nnU-Net configuration, e.g. 3d_lowres or 3d_cascade_fullres")
    p.add_argument("fold", help="fold (0-4 or all)")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER, help=f"trainer class (default: {DEFAULT_TRAINER})")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans identifier (default: {DEFAULT_PLANS})")
    p.add_argument("-device", "--device", default="cuda", choices=["cuda", "cpu", "mps"],
                   help="torch device (default: cuda)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: the recipe's)")
    p.add_argument("--iters", type=int, default=None, help="training iterations per epoch (default: the recipe's)")
    p.add_argument("--val-iters", type=int, default=None,
                   help="validation iterations per epoch (default: the recipe's)")
    p.add_argument("--save-every", type=int, default=None, help="checkpoint every N epochs (default: the recipe's)")
    p.add_argument("--oversample-fg", type=float, default=None,
                   help="share of each batch forced to contain thrombus, 0-1 (default: the recipe's)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="optimizer (default: the recipe's)")
    p.add_argument("--lr", type=float, default=None, help="initial learning rate (default: the optimizer's)")
    p.add_argument("--mirroring", dest="mirroring", action="store_true", default=None,
                   help="test-time mirroring on (default: the recipe's)")
    p.add_argument("--no-mirroring", dest="mirroring", action="store_false",
                   help="test-time mirroring off; augmentation then mirrors left-right only")
    p.add_argument("--mirror-augment", choices=["all", "left-right", "off"], default=None,
                   help="mirror augmentation axes (default: left-right without test-time mirroring, else all)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed Python's, numpy's and torch's generators first (default: unseeded)")
    p.add_argument("--c", dest="continue_training", action="store_true",
                   help="continue from the latest checkpoint (default: off)")
    p.add_argument("--val", dest="only_validation", action="store_true",
                   help="only run the final validation (default: off)")
    p.add_argument("--npz", action="store_true", help="save validation probabilities (default: off)")
    p.set_defaults(func=run)


def run(args) -> int:
    from nnunet_thrombus.commands._nnunet_paths import find_our_trainers
    from nnunet_thrombus.training.overrides import TrainingSettings
    from nnunet_thrombus.training.run import train_model

    try:
        settings = TrainingSettings(num_epochs=args.epochs, num_iterations_per_epoch=args.iters,
                                    num_val_iterations_per_epoch=args.val_iters, save_every=args.save_every,
                                    oversample_foreground_percent=args.oversample_fg, mirroring=args.mirroring,
                                    mirror_augment=args.mirror_augment, optimizer=args.optimizer, lr=args.lr,
                                    seed=args.seed)
    except ValueError as exc:
        raise SystemExit(f"nnunet_thrombus train: {exc}") from None
    find_our_trainers()
    import multiprocessing

    import torch

    if args.device == "cpu":  # as nnUNetv2_train sets them
        torch.set_num_threads(multiprocessing.cpu_count())
    elif args.device == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    train_model(args.dataset, args.configuration, args.fold, args.trainer, args.plans, settings, args.device,
                continue_training=args.continue_training, only_validation=args.only_validation,
                export_probabilities=args.npz)
    return 0
