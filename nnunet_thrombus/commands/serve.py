"""``nnunet_thrombus serve``: a DICOM node over DICOMweb: CT studies in, thrombus SEG + SR back (docs/pacs.md)."""
from __future__ import annotations

import argparse
import logging

from nnunet_thrombus.model_folder import DEFAULT_PLANS, DEFAULT_TRAINER

logger = logging.getLogger(__name__)

#: environment variable holding the DICOMweb password (never a command-line argument: it would show in ps)
PASSWORD_ENV = "NNUNET_THROMBUS_DICOMWEB_PASSWORD"


def _date_range(value: str) -> str:
    import re

    if not re.fullmatch(r"\d{8}(-\d{8})?|\d{8}-|-\d{8}", value):
        raise argparse.ArgumentTypeError(f"study date is YYYYMMDD or a range YYYYMMDD-YYYYMMDD, got {value!r}")
    return value


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "serve", help="DICOM node: predict CT studies of a DICOMweb PACS and store the SEG + SR back.",
        description="Find CT studies on a DICOMweb server (QIDO-RS), retrieve each (WADO-RS), pick the NCCT and CTA "
                    "series by meaning, predict, and store the thrombus DICOM SEG and the measurement SR into the "
                    "study (STOW-RS). Studies that already hold our SR are skipped. Outputs per study in "
                    "OUT/study-<hash>/ as predict writes them, and OUT/pacs_studies.csv. Needs pip install "
                    "'nnunet_thrombus[pacs]'.")
    p.add_argument("--dicomweb", required=True, help="DICOMweb base URL, e.g. http://HOST:8042/dicom-web. Required.")
    p.add_argument("--user", default=None,
                   help=f"HTTP basic-auth user; the password comes from ${PASSWORD_ENV}. Default: no authentication.")
    p.add_argument("-o", "--output", required=True, help="output folder. Required.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("-d", "--dataset", default=None, help="dataset id or name under nnUNet_results. Default: none.")
    src.add_argument("-m", "--model", default=None, help="folder holding the two stage model folders. Default: none.")
    p.add_argument("-tr", "--trainer", default=DEFAULT_TRAINER,
                   help=f"trainer of the model. Default: {DEFAULT_TRAINER}.")
    p.add_argument("-p", "--plans", default=DEFAULT_PLANS, help=f"plans of the model. Default: {DEFAULT_PLANS}.")
    p.add_argument("-f", "--folds", nargs="+", default=None, help="folds to ensemble. Default: every trained fold.")
    p.add_argument("-device", "--device", choices=("cuda", "cpu", "mps"), default=None,
                   help="torch device. Default: cuda when available, else cpu.")
    p.add_argument("--disable-tta", action="store_true", help="no mirroring test-time augmentation. Default: TTA on.")
    p.add_argument("--study", nargs="+", default=None,
                   help="StudyInstanceUID(s) to process. Default: every CT study the search finds.")
    p.add_argument("--study-date", type=_date_range, default=None,
                   help="only studies of this date or range (YYYYMMDD, YYYYMMDD-YYYYMMDD). Default: any date.")
    p.add_argument("--limit", type=int, default=None, help="at most this many studies per search. Default: no limit.")
    p.add_argument("--poll", type=float, default=0.0,
                   help="search again every POLL seconds until Ctrl-C. Default: 0 (one pass, then exit).")
    p.add_argument("--overwrite", action="store_true",
                   help="process studies that already hold our SR again (the new SEG + SR are added beside the old "
                        "ones). Default: skip them.")
    p.set_defaults(func=run, _parser=p)
    return p


def run(args) -> int:
    import os

    if args.poll < 0:
        args._parser.error(f"--poll is seconds >= 0, got {args.poll}")
    if args.limit is not None and args.limit < 1:
        args._parser.error(f"--limit must be >= 1, got {args.limit}")
    if args.study and (args.study_date or args.limit):
        args._parser.error("--study names the studies; do not combine it with --study-date/--limit")
    from nnunet_thrombus.inference.options import ModelOptions
    from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor
    from nnunet_thrombus.model_folder import ModelError
    from nnunet_thrombus.nnunet_env import announce_device
    from nnunet_thrombus.pacs.dicomweb import DicomWebPacs
    from nnunet_thrombus.pacs.node import serve_pacs

    folds = [int(f) if str(f).isdigit() else f for f in args.folds] if args.folds else None
    try:
        device = announce_device(args.device, quiet=False)
        # as predict: the model's ROI threshold, or the whole image where fit-roi found no threshold that keeps clots
        predictor = ThrombusCasePredictor.from_model(ModelOptions(
            model=args.model, dataset=args.dataset, trainer=args.trainer, plans=args.plans, folds=folds, device=device,
            use_tta=not args.disable_tta))
        pacs = DicomWebPacs(args.dicomweb, user=args.user, password=os.environ.get(PASSWORD_ENV))
    except (ModelError, RuntimeError, ValueError, OSError) as exc:
        logger.error(str(exc))
        return 2
    filters = {"ModalitiesInStudy": "CT", **({"StudyDate": args.study_date} if args.study_date else {})}
    result = serve_pacs(pacs, args.output, predictor=predictor, study_uids=args.study, filters=filters,
                        limit=args.limit, overwrite=args.overwrite, poll_s=args.poll)
    logger.info(f"{len(result['stored'])} stud(ies) stored, {len(result['skipped'])} skipped, "
                f"{len(result['failed'])} failed; see {os.path.join(args.output, 'pacs_studies.csv')}")
    return 1 if result["failed"] else 0
