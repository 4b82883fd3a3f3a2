"""ESCAPE-NA1 / PRoVe-IT-style NCCT + CTA studies -> nnU-Net raw dataset (DESIGN.md sec. 3).

``convert_trial_dataset`` discovers cases (or reads a manifest), converts each one independently (in parallel with
``ConversionOptions.n_jobs``), and writes ``Dataset{id}_{name}/`` with imagesTr/labelsTr/imagesTs/labelsTs,
brain_masks/, transforms/, dataset.json, metadata.csv, qc.csv and splits_final.json.
A case that fails (bad input, diverged registration) leaves no files; its error is printed, listed
in qc.csv and in the returned dict.  Every file is written under a temporary name and renamed.
Re-running skips cases whose outputs and state record (``.convert_state/<case>.json``) are intact.
``ConversionOptions(anonymize=True)`` (``--anonymize``, for sharing a dataset): metadata.csv, qc.csv, the state
records and the progress lines hold no DICOM header value the de-identification profile removes
(``nnunet_thrombus.deidentify``): series UIDs are replaced by the key's UIDs (the same ones a de-identified SEG made
with the same key carries), series descriptions are left out, free text is redacted; the key is ``deid_key.txt`` in
the dataset folder unless ``deid_key`` names a file (move it out before sharing the folder).

Script use: ``python -m dataset_conversion.convert_trial -i ROOT -o NNUNET_RAW`` (same flags as
``nnunet_thrombus convert``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from dataset_conversion.case_io import (QC_COLUMNS, META_COLUMNS, atomic_write_image, atomic_write_text,
                                        load_label, outputs_valid, write_qc_png)
from dataset_conversion.conversion_options import ConversionOptions
from dataset_conversion.convert_args import add_arguments, check, to_options
from dataset_conversion.ct_reader import read_image
from dataset_conversion.dicom_scan import folder_headers
from dataset_conversion.discovery import Case, discover_cases, read_manifest
from dataset_conversion.preprocess import check_slice_thickness, preprocess_case
from dataset_conversion.series_policy import series_table
from dataset_conversion.splits import make_folds, pick_test_cases
from nnunet_thrombus import atomic_io
from nnunet_thrombus.atomic_io import cleanup_temp_files, write_csv
from nnunet_thrombus.console import configure_logging, level_from_flags
from nnunet_thrombus.deidentify import (check_case_sources, identifying_values, key_for_outputs, load_key,
                                        redact_tree)

logger = logging.getLogger(__name__)

FILE_ENDING = ".nii.gz"


def _read_scans(case: Case, options: ConversionOptions) -> tuple[tuple, tuple]:
    """``((ncct, ncct_info), (cta, cta_info))`` of one case as int16 HU images (``ct_reader.read_image``): the CTA
    phase from ``options.cta_phase`` (a phase file, or a phase of a multiphase DICOM folder), the series from the
    manifest's per-case columns, else from the series flags."""
    phase = options.cta_phase
    if case.cta_phases:
        if phase is not None and not 1 <= phase <= len(case.cta_phases):
            raise ValueError(f"CTA phase {phase} requested, {len(case.cta_phases)} phase file(s) found")
        idx = (phase or (2 if len(case.cta_phases) >= 2 else 1)) - 1
        cta, cta_info = read_image(case.cta_phases[idx])
        cta_info.update(phase=idx + 1, n_series=len(case.cta_phases))
    else:
        cta, cta_info = read_image(case.cta, phase=phase, flag="--cta-series",
                                   series=case.meta.get("cta_series") or options.cta_series)
    ncct, ncct_info = read_image(case.ncct, multiphase=False, flag="--ncct-series",
                                 series=case.meta.get("ncct_series") or options.ncct_series)
    return (ncct, ncct_info), (cta, cta_info)


def _write_outputs(out: Path, case_id: str, split: str, result: dict, label, qc_png: bool) -> list[str]:
    """Write one case's images, label, brain mask, transform (and QC PNG) under temporary names, then publish them
    together; returns their paths relative to ``out``."""
    images = "imagesTr" if split == "train" else "imagesTs"
    labels = "labelsTr" if split == "train" else "labelsTs"
    files = {f"{images}/{case_id}_0000{FILE_ENDING}": result["cta"],
             f"{images}/{case_id}_0001{FILE_ENDING}": result["ncct_on_cta"],
             f"brain_masks/{case_id}{FILE_ENDING}": result["brain_mask"]}
    if label is not None:
        files[f"{labels}/{case_id}{FILE_ENDING}"] = label
    temps = [atomic_write_image(img, out / rel, defer=True) for rel, img in files.items()]
    tfm = out / "transforms" / f"{case_id}.tfm"
    tfm.parent.mkdir(parents=True, exist_ok=True)
    tmp_tfm = atomic_io.tmp_name(tfm)
    sitk.WriteTransform(result["registration"].transform, str(tmp_tfm))
    temps.append((tmp_tfm, tfm))
    if qc_png:
        temps.append(write_qc_png(result["cta"], result["ncct_on_cta"], label,
                                  out / "qc_png" / f"{case_id}.png", defer=True))
    atomic_io.publish(temps)  # all outputs exist under temporary names: publish them together
    return [str(final.relative_to(out)) for _, final in temps]


def _flags(reg, thick: bool, ncct_info: dict, cta_info: dict, qc: dict) -> list[str]:
    """Why a converted case needs a look: failed registration QC, resampled thick slices or gantry tilt, a label
    more than 5 % outside the brain mask."""
    flags = []
    if not reg.qc_pass:
        flags.append(f"registration QC failed: NCC {reg.ncc_brain:.3f}, peak margin {reg.ncc_peak_margin:+.3f}")
    if thick:
        flags.append("thick slices resampled to 1 mm")
    flags += [f"{name} gantry tilt {info['gantry_tilt_deg']:.1f} deg resampled to an orthogonal grid"
              for name, info in (("NCCT", ncct_info), ("CTA", cta_info)) if info.get("tilt_corrected")]
    if qc.get("label_outside_brain_frac", 0) > 0.05:
        flags.append(f"{qc['label_outside_brain_frac']:.0%} of the label lies outside the brain mask")
    return flags


def _convert_scans(record: dict, case: Case, out: Path, scans: tuple, options: ConversionOptions, uid) -> None:
    """Preprocess the read ``scans`` of ``case``, write its outputs and fill ``record`` (status, split, qc, meta,
    outputs). ``uid`` maps a series UID to what the tables show (the key's UID when anonymizing)."""
    (ncct_native, ncct_info), (cta_native, cta_info) = scans
    cta, cta_thick = check_slice_thickness(cta_native, cta_info["slice_thickness_mm"], "CTA",
                                           options.allow_thick_slices)
    ncct, ncct_thick = check_slice_thickness(ncct_native, ncct_info["slice_thickness_mm"], "NCCT",
                                             options.allow_thick_slices)
    result = preprocess_case(ncct, cta)
    reg = result["registration"]
    label, label_meta = load_label(case, cta_native, ncct_native, result["cta"], reg.transform, options.masks_on)
    qc = dict(result["qc"])
    qc.update(label_meta.pop("qc", {}))
    if label is None and record["split"] == "train":
        record["split"] = "test"
        label_meta["note"] = "no thrombus mask found: put in imagesTs without label"
    record["outputs"] = _write_outputs(out, case.case_id, record["split"], result, label, options.qc_png)
    series_cols = {**series_table(ncct_info, "ncct", descriptions=not options.anonymize),
                   **series_table(cta_info, "cta", descriptions=not options.anonymize)}
    qc.update(series_cols)
    flags = _flags(reg, cta_thick or ncct_thick, ncct_info, cta_info, qc)
    record["status"] = "flagged" if flags else "ok"
    record["error"] = "; ".join(flags)
    record["qc"] = qc
    record["meta"] = {"site": case.site, "cta_phase": cta_info.get("phase"), "cta_n_series": cta_info.get("n_series"),
                      "cta_source": cta_info["source"], "cta_series_uid": uid(cta_info.get("series_uid", "")),
                      "ncct_series_uid": uid(ncct_info.get("series_uid", "")),
                      "cta_slice_thickness_mm": round(cta_info["slice_thickness_mm"], 3),
                      "ncct_slice_thickness_mm": round(ncct_info["slice_thickness_mm"], 3),
                      "thick_slices_resampled": cta_thick or ncct_thick, **series_cols, **label_meta,
                      **case.meta.get("metadata_columns", {})}


def _redacted(record: dict, case: Case, identifying: frozenset) -> dict:
    """``record`` without any header value of the case's DICOM files that de-identification removes."""
    if not identifying:  # failed before its headers were collected
        try:
            identifying = identifying_values(folder_headers(case.ncct, case.cta))
        except Exception:  # unreadable headers: nothing of them can be in the record either
            identifying = frozenset()
    return redact_tree(record, identifying)


def _convert_one(case: Case, dataset_dir: str, split: str, options: ConversionOptions,
                 key_file: str | None = None) -> dict:
    """Convert one case; returns a record (never raises). Files are only renamed into place at the end.
    ``key_file``: the de-identification key when ``options.anonymize``."""
    t0 = time.perf_counter()
    out = Path(dataset_dir)
    record = {"case_id": case.case_id, "patient": case.patient, "split": split, "status": "failed", "error": "",
              "qc": {}, "meta": {}, "outputs": [], "options": options.case_options()}
    identifying = frozenset()
    try:
        if case.error:
            raise ValueError(case.error)
        scans = _read_scans(case, options)
        uid = str
        if options.anonymize:
            key = load_key(key_file)
            uid = key.uid
            (_, ncct_info), (_, cta_info) = scans
            identifying = check_case_sources(case.case_id, folder_headers(case.ncct, case.cta),
                                             [cta_info.get("series_uid"), ncct_info.get("series_uid")])
        _convert_scans(record, case, out, scans, options, uid)
    except Exception as exc:  # one bad case must not stop the others
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["qc"]["time_s"] = round(time.perf_counter() - t0, 2)
    if options.anonymize:
        record = _redacted(record, case, identifying)
    if record["status"] != "failed":
        atomic_write_text(out / ".convert_state" / f"{case.case_id}.json", json.dumps(record, indent=1, default=str))
    return record


def _worker_init() -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _remove_outputs(out: Path, record: dict) -> None:
    for rel in record.get("outputs", []):
        (out / rel).unlink(missing_ok=True)
    (out / ".convert_state" / f"{record['case_id']}.json").unlink(missing_ok=True)


def _prepare_folder(out: Path, options: ConversionOptions, say) -> str | None:
    """Create (or, with ``options.overwrite``, recreate) the dataset folder ``out`` and its sub-folders, remove
    temporary files of an interrupted run; returns the de-identification key file when anonymizing, else None."""
    if options.overwrite and out.exists():
        shutil.rmtree(out)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "brain_masks", "transforms", ".convert_state"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cleanup_temp_files(out)
    if not options.anonymize:
        return None
    key, created = key_for_outputs(out, options.deid_key)
    say(f"de-identification key {'written to' if created else 'read from'} {key.path}: keep it to re-link, "
        "delete it to make the link one-way; move it out before sharing the dataset")
    return str(key.path)


def _resume(out: Path, cases: list[Case], plan: dict[str, str], case_options: dict) -> tuple[dict, list[Case]]:
    """Records of cases already converted with the same options, split and patient and intact outputs (marked
    ``skipped``), and the cases to (re)convert; outputs of cases no longer in the input, or to be redone, are
    removed."""
    records, todo = {}, []
    known = {p.stem: p for p in (out / ".convert_state").glob("*.json")}
    for case_id, state_path in known.items():  # outputs of cases that are no longer in the input
        if case_id not in plan:
            _remove_outputs(out, json.loads(state_path.read_text(encoding="utf-8")))
    for case in cases:
        state = known.get(case.case_id)
        if state is not None:
            old = json.loads(state.read_text(encoding="utf-8"))
            same_split = old["split"] == plan[case.case_id] or "no thrombus mask" in old["meta"].get("note", "")
            if old.get("options") == case_options and old.get("patient") == case.patient and same_split \
                    and outputs_valid(out, old["outputs"]):
                records[case.case_id] = dict(old, skipped=True)
                continue
            _remove_outputs(out, old)
        todo.append(case)
    return records, todo


def _convert_cases(todo: list[Case], out: Path, plan: dict[str, str], options: ConversionOptions,
                   key_file: str | None, say) -> dict[str, dict]:
    """Records of the ``todo`` cases, converted one after the other or in ``options.n_jobs`` processes."""
    records = {}
    if options.n_jobs == 1 or len(todo) <= 1:
        results = (_convert_one(c, str(out), plan[c.case_id], options, key_file) for c in todo)
        for i, rec in enumerate(results, start=1):
            records[rec["case_id"]] = rec
            _report(say, i, len(todo), rec)
    else:
        with ProcessPoolExecutor(max_workers=options.n_jobs, mp_context=get_context("spawn"),
                                 initializer=_worker_init) as ex:
            futures = [ex.submit(_convert_one, c, str(out), plan[c.case_id], options, key_file) for c in todo]
            for i, fut in enumerate(as_completed(futures), start=1):
                rec = fut.result()
                records[rec["case_id"]] = rec
                _report(say, i, len(todo), rec)
    return records


def convert_trial_dataset(input_root: str | os.PathLike | None, nnunet_raw_dir: str | os.PathLike,
                          options: ConversionOptions | None = None) -> dict:
    """Convert a trial-style folder (or the manifest ``options.manifest``; ``input_root`` may then be None) to
    ``nnunet_raw_dir/Dataset{id:03d}_{name}`` (``ConversionOptions``; default options when None).

    Returns ``{"dataset_dir", "converted", "skipped", "failed": {case_id: error}, "flagged", "records"}``.
    """
    options = options or ConversionOptions()

    def say(text: str) -> None:  # progress: INFO, DEBUG with ``quiet``; failures are logged as errors below
        logger.log(logging.DEBUG if options.quiet else logging.INFO, text)

    cases = read_manifest(options.manifest) if options.manifest else discover_cases(input_root)
    if not cases:
        raise ValueError(f"no cases found in {options.manifest or input_root}")
    out = Path(nnunet_raw_dir) / options.dataset_folder_name
    key_file = _prepare_folder(out, options, say)
    test_ids = pick_test_cases([c for c in cases if not c.error], options.test_fraction, options.test_cases,
                               options.seed)
    plan = {c.case_id: ("test" if c.case_id in test_ids else "train") for c in cases}
    records, todo = _resume(out, cases, plan, options.case_options())
    say(f"{len(cases)} case(s) found, {len(records)} already converted, {len(todo)} to convert "
        f"({options.n_jobs} process(es)) -> {out}")
    t0 = time.perf_counter()
    records.update(_convert_cases(todo, out, plan, options, key_file, say))
    ordered = [records[c.case_id] for c in cases]
    _write_tables(out, ordered, options.dataset_id, options.dataset_name, options.seed, say)
    failed = {r["case_id"]: f"{r['patient']}: {r['error']}" for r in ordered if r["status"] == "failed"}
    flagged = {r["case_id"]: r["error"] for r in ordered if r["status"] == "flagged"}
    say(f"done in {time.perf_counter() - t0:.1f} s: {sum(r['status'] != 'failed' for r in ordered)} converted "
        f"({sum(bool(r.get('skipped')) for r in ordered)} skipped as already done), {len(flagged)} flagged, "
        f"{len(failed)} failed")
    for case_id, err in failed.items():
        logger.error(f"FAILED {case_id} ({err})")
    for case_id, err in flagged.items():
        logger.warning(f"flagged {case_id}: {err}")
    return {"dataset_dir": str(out), "converted": [r["case_id"] for r in ordered if r["status"] != "failed"],
            "skipped": [r["case_id"] for r in ordered if r.get("skipped")], "failed": failed, "flagged": flagged,
            "records": ordered}


def _report(say, i: int, n: int, rec: dict) -> None:
    qc = rec.get("qc", {})
    detail = f"NCC {qc['ncc_brain']:.3f}" if "ncc_brain" in qc else rec["error"].splitlines()[0]
    say(f"[{i}/{n}] {rec['case_id']}: {rec['status']} in {qc.get('time_s', 0):.1f} s ({detail})")


def _write_tables(out: Path, records: list[dict], dataset_id: int, dataset_name: str, seed: int, say) -> None:
    good = [r for r in records if r["status"] != "failed"]
    train = [r for r in good if r["split"] == "train"]
    folds = make_folds([r["case_id"] for r in train], [r["meta"].get("site", "unknown") for r in train], seed=seed)
    fold_of = {cid: k for k, fold in enumerate(folds) for cid in fold["val"]}
    meta_rows, qc_rows = [], []
    for r in records:
        meta_rows.append({"case_id": r["case_id"], "patient": r["patient"], "split": r["split"] if r in good else "",
                          "fold": fold_of.get(r["case_id"], ""), **r.get("meta", {})})
        qc_rows.append({"case_id": r["case_id"], "patient": r["patient"], "status": r["status"],
                        "error": r["error"].splitlines()[0] if r["error"] else "", **r.get("qc", {})})
    write_csv(out / "metadata.csv", meta_rows, META_COLUMNS, extra="append")
    write_csv(out / "qc.csv", qc_rows, QC_COLUMNS, extra="append")
    if folds:
        atomic_write_text(out / "splits_final.json", json.dumps(folds, indent=1))
        pre = os.environ.get("nnUNet_preprocessed")
        if pre and (Path(pre) / out.name).is_dir():
            atomic_io.copy_file(out / "splits_final.json", Path(pre) / out.name / "splits_final.json")
            say(f"splits_final.json copied to {Path(pre) / out.name}")
    tmp = atomic_io.tmp_name(out / "json")
    tmp.mkdir(exist_ok=True)
    generate_dataset_json(str(tmp), channel_names={"0": "CT", "1": "CT"}, labels={"background": 0, "thrombus": 1},
                          num_training_cases=len(train), file_ending=FILE_ENDING, dataset_name=dataset_name,
                          description="NCCT registered to CTA, skull-stripped (outside brain = -1024 HU); "
                                      "channel 0 = CTA, channel 1 = NCCT on the CTA grid",
                          converted_by="nnunet_thrombus convert", license="see source data",
                          outside_brain_hu=-1024, n_test_cases=sum(r["split"] == "test" for r in good))
    atomic_io.publish([(tmp / "dataset.json", out / "dataset.json")])
    tmp.rmdir()


def main(argv: list[str] | None = None) -> int:
    """Script entry: same flags as ``nnunet_thrombus convert``."""
    parser = argparse.ArgumentParser(prog="python -m dataset_conversion.convert_trial", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    check(args)
    configure_logging(level_from_flags(quiet=args.quiet))
    return 1 if convert_trial_dataset(args.input, args.output, to_options(args))["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
