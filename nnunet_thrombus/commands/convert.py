"""``nnunet_thrombus convert``: trial-style NCCT + CTA folders -> nnU-Net raw dataset."""
from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "convert", help="convert NCCT + CTA studies to an nnU-Net raw dataset",
        description="Register NCCT to CTA, skull-strip, build STAPLE consensus labels, write an nnU-Net raw "
                    "dataset with metadata.csv, qc.csv and splits_final.json.")
    from dataset_conversion.convert_args import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from dataset_conversion.convert_args import check, to_options

    check(args)
    options = to_options(args)
    # SimpleITK and nnU-Net: imported only to convert, so that --help stays instant
    from dataset_conversion.convert_trial import convert_trial_dataset

    result = convert_trial_dataset(args.input, args.output, options)
    return 1 if result["failed"] else 0
