"""The converter's command-line flags, shared by ``nnunet_thrombus convert`` and
``python -m dataset_conversion.convert_trial``, and the ``ConversionOptions`` they make. Imports only argparse and
the options dataclass, so ``--help`` stays instant and neither entry point needs the other (no import circle
between ``dataset_conversion`` and ``nnunet_thrombus.commands``).
"""
from __future__ import annotations

import argparse

from dataset_conversion.conversion_options import ConversionOptions


def add_series_flags(parser: argparse.ArgumentParser, scope: str, cta_note: str = "") -> None:
    """``--ncct-series`` / ``--cta-series``, shared by ``convert`` and ``predict``: which DICOM series to read when
    a folder holds several that qualify equally. ``scope`` says where the choice applies (``predict``: a single
    patient folder; ``convert``: every case, a manifest column per case); ``cta_note`` adds to the CTA help."""
    parser.add_argument("--ncct-series", default=None,
                        help="SeriesNumber (or SeriesInstanceUID) of the NCCT series to read when a DICOM folder "
                             f"holds several that qualify equally {scope}. Default: chosen by meaning "
                             "(docs/data_formats.md).")
    parser.add_argument("--cta-series", default=None,
                        help=f"the same for the CTA series{cta_note}. Default: chosen by meaning.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The convert flags."""
    parser.add_argument("-i", "--input", default=None,
                        help="root folder with one sub-folder per patient (layouts: docs/data_formats.md). "
                             "Default: none (required unless --manifest)")
    parser.add_argument("-o", "--output", required=True, help="nnU-Net raw folder (nnUNet_raw). Default: none (required)")
    parser.add_argument("-d", "--dataset-id", type=int, default=501, help="dataset id. Default: 501")
    parser.add_argument("-n", "--name", default="Thrombus", help="dataset name. Default: Thrombus")
    parser.add_argument("-m", "--masks-on", choices=("cta", "ncct"), default="cta",
                        help="scan the thrombus masks were drawn on. Default: cta")
    parser.add_argument("-p", "--cta-phase", type=int, default=None,
                        help="CTA phase (1-based, acquisition order) for multiphase CTA. Default: 2 when several "
                             "phases exist, else the only one")
    add_series_flags(parser, scope="(a manifest column picks per case)", cta_note=" (overrides --cta-phase)")
    parser.add_argument("-t", "--test-fraction", type=float, default=0.0,
                        help="fraction of cases held out as imagesTs/labelsTs (stratified by site). Default: 0.0")
    parser.add_argument("--test-cases", nargs="+", default=None,
                        help="explicit held-out patients (overrides --test-fraction). Default: none")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="parallel processes. Default: 1")
    parser.add_argument("--qc-png", action="store_true", help="write checkerboard QC PNGs to qc_png/. Default: off")
    parser.add_argument("--allow-thick-slices", action="store_true",
                        help="accept slices thicker than 2.5 mm (resampled to 1 mm and flagged). Default: refuse")
    parser.add_argument("--manifest", default=None,
                        help="CSV with columns patient,ncct,cta[,masks,label,site] instead of discovery. Default: none")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the existing dataset folder first instead of resuming. Default: resume")
    parser.add_argument("--anonymize", action="store_true",
                        help="de-identified metadata.csv / qc.csv for sharing: keyed series UIDs, no series "
                             "descriptions, no header value in any table or log (docs/deidentification.md). "
                             "Default: off")
    parser.add_argument("--deid-key", default=None, metavar="FILE",
                        help="key file of the --anonymize UID mapping (created when missing). Default: "
                             "deid_key.txt in the dataset folder")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="errors only (failed cases still show), as nnunet_thrombus's global -q. Default: off")


def check(args: argparse.Namespace) -> None:
    """``SystemExit`` with the usage error when neither an input folder nor a manifest is given."""
    if not args.input and not args.manifest:
        raise SystemExit("nnunet_thrombus convert: error: give -i/--input or --manifest")


def to_options(args: argparse.Namespace) -> ConversionOptions:
    """The ``ConversionOptions`` of parsed convert flags (``convert_trial_dataset`` takes them after the input
    and output folders, ``-i`` and ``-o``)."""
    return ConversionOptions(dataset_id=args.dataset_id, dataset_name=args.name, masks_on=args.masks_on,
                             cta_phase=args.cta_phase, test_fraction=args.test_fraction, test_cases=args.test_cases,
                             n_jobs=args.jobs, qc_png=args.qc_png, allow_thick_slices=args.allow_thick_slices,
                             manifest=args.manifest, overwrite=args.overwrite, quiet=args.quiet,
                             ncct_series=getattr(args, "ncct_series", None),
                             cta_series=getattr(args, "cta_series", None),
                             anonymize=getattr(args, "anonymize", False), deid_key=getattr(args, "deid_key", None))
