"""ESCAPE-NA1 / PRoVe-IT-style NCCT + CTA studies -> nnU-Net raw dataset (DESIGN.md sec. 3).

``convert_trial_dataset`` discovers cases (or reads a manifest), converts each one independently
(in parallel with ``n_jobs``), and writes ``Dataset{id}_{name}/`` with imagesTr/labelsTr/imagesTs/
labelsTs, brain_masks/, transforms/, dataset.json, metadata.csv, qc.csv and splits_final.json.
A case that fails (bad input, diverged registration) leaves no files; its error is printed, listed
in qc.csv and in the returned dict.  Every file is written under a temporary name and renamed.
Re-running skips cases whose outputs and state record (``.convert_state/<case>.json``) are intact.
``anonymize=True`` (``--anonymize``, for sharing a dataset): metadata.csv, qc.csv, the state records and the
progress lines hold no DICOM header value the de-identification profile removes (``nnunet_thrombus.deidentify``):
series UIDs are replaced by the key's UIDs (the same ones a de-identified SEG made with the same key carries),
series descriptions are left out, free text is redacted; the key is ``deid_key.txt`` in the dataset folder unless
``deid_key`` names a file (move it out before sharing the folder).

Script use: ``python -m dataset_conversion.convert_trial -i ROOT -o NNUNET_RAW`` (same flags as
``nnunet_thrombus convert``).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import SimpleITK as sitk
from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

from dataset_conversion.case_io import (QC_COLUMNS, META_COLUMNS, atomic_write_image, atomic_write_text,
                                        load_label, outputs_valid, write_qc_png)
from dataset_conversion.convert_args import add_arguments, check, to_kwargs
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


def _convert_one(case: Case, dataset_dir: str, split: str, options: dict, key_file: str | None = None) -> dict:
    """Convert one case; returns a record (never raises). Files are only renamed into place at the end.
    ``key_file``: the de-identification key when ``options["anonymize"]``."""
    t0 = time.perf_counter()
    out = Path(dataset_dir)
    record = {"case_id": case.case_id, "patient": case.patient, "split": split, "status": "failed", "error": "",
              "qc": {}, "meta": {}, "outputs": [], "options": options}
    anonymize, identifying = bool(options.get("anonymize")), frozenset()
    try:
        if case.error:
            raise ValueError(case.error)
        phase = options["cta_phase"]
        if case.cta_phases:
            if phase is not None and not 1 <= phase <= len(case.cta_phases):
                raise ValueError(f"CTA phase {phase} requested, {len(case.cta_phases)} phase file(s) found")
            idx = (phase or (2 if len(case.cta_phases) >= 2 else 1)) - 1
            cta, cta_info = read_image(case.cta_phases[idx])
            cta_info.update(phase=idx + 1, n_series=len(case.cta_phases))
        else:
            cta, cta_info = read_image(case.cta, phase=phase, flag="--cta-series",
                                       series=case.meta.get("cta_series") or options.get("cta_series"))
        ncct, ncct_info = read_image(case.ncct, multiphase=False, flag="--ncct-series",
                                     series=case.meta.get("ncct_series") or options.get("ncct_series"))
        if anonymize:
            key = load_key(key_file)
            identifying = check_case_sources(case.case_id, folder_headers(case.ncct, case.cta),
                                             [cta_info.get("series_uid"), ncct_info.get("series_uid")])
        cta_native = cta
        cta, cta_thick = check_slice_thickness(cta, cta_info["slice_thickness_mm"], "CTA", options["allow_thick_slices"])
        ncct_native = ncct
        ncct, ncct_thick = check_slice_thickness(ncct, ncct_info["slice_thickness_mm"], "NCCT",
                                                 options["allow_thick_slices"])
        result = preprocess_case(ncct, cta)
        reg = result["registration"]
        label, label_meta = load_label(case, cta_native, ncct_native, result["cta"], reg.transform,
                                       options["masks_on"])
        qc = dict(result["qc"])
        qc.update(label_meta.pop("qc", {}))
        if label is None and split == "train":
            split = record["split"] = "test"
            label_meta["note"] = "no thrombus mask found: put in imagesTs without label"
        images = "imagesTr" if split == "train" else "imagesTs"
        labels = "labelsTr" if split == "train" else "labelsTs"
        files = {f"{images}/{case.case_id}_0000{FILE_ENDING}": result["cta"],
                 f"{images}/{case.case_id}_0001{FILE_ENDING}": result["ncct_on_cta"],
                 f"brain_masks/{case.case_id}{FILE_ENDING}": result["brain_mask"]}
        if label is not None:
            files[f"{labels}/{case.case_id}{FILE_ENDING}"] = label
        temps = [atomic_write_image(img, out / rel, defer=True) for rel, img in files.items()]
        tfm = out / "transforms" / f"{case.case_id}.tfm"
        tfm.parent.mkdir(parents=True, exist_ok=True)
        tmp_tfm = atomic_io.tmp_name(tfm)
        sitk.WriteTransform(reg.transform, str(tmp_tfm))
        temps.append((tmp_tfm, tfm))
        if options["qc_png"]:
            temps.append(write_qc_png(result["cta"], result["ncct_on_cta"], label,
                                      out / "qc_png" / f"{case.case_id}.png", defer=True))
        atomic_io.publish(temps)  # all outputs exist under temporary names: publish them together
        record["outputs"] = [str(final.relative_to(out)) for _, final in temps]
        flags = []
        if not reg.qc_pass:
            flags.append(f"registration QC failed: NCC {reg.ncc_brain:.3f}, peak margin {reg.ncc_peak_margin:+.3f}")
        if cta_thick or ncct_thick:
            flags.append("thick slices resampled to 1 mm")
        flags += [f"{name} gantry tilt {info['gantry_tilt_deg']:.1f} deg resampled to an orthogonal grid"
                  for name, info in (("NCCT", ncct_info), ("CTA", cta_info)) if info.get("tilt_corrected")]
        series_cols = {**series_table(ncct_info, "ncct", descriptions=not anonymize),
                       **series_table(cta_info, "cta", descriptions=not anonymize)}
        qc.update(series_cols)
        if qc.get("label_outside_brain_frac", 0) > 0.05:
            flags.append(f"{qc['label_outside_brain_frac']:.0%} of the label lies outside the brain mask")
        record["status"] = "flagged" if flags else "ok"
        record["error"] = "; ".join(flags)
        record["qc"] = qc
        uid = key.uid if anonymize else str
        record["meta"] = {"site": case.site, "cta_phase": cta_info.get("phase"), "cta_n_series": cta_info.get("n_series"),
                          "cta_source": cta_info["source"], "cta_series_uid": uid(cta_info.get("series_uid", "")),
                          "ncct_series_uid": uid(ncct_info.get("series_uid", "")),
                          "cta_slice_thickness_mm": round(cta_info["slice_thickness_mm"], 3),
                          "ncct_slice_thickness_mm": round(ncct_info["slice_thickness_mm"], 3),
                          "thick_slices_resampled": cta_thick or ncct_thick, **series_cols, **label_meta,
                          **case.meta.get("metadata_columns", {})}
    except Exception as exc:  # one bad case must not stop the others
        record["error"] = f"{type(exc).__name__}: {exc}"
        if options.get("debug"):
            record["error"] += "\n" + traceback.format_exc()
    record["qc"]["time_s"] = round(time.perf_counter() - t0, 2)
    if anonymize:
        if not identifying:  # failed before its headers were collected
            try:
                identifying = identifying_values(folder_headers(case.ncct, case.cta))
            except Exception:  # unreadable headers: nothing of them can be in the record either
                identifying = frozenset()
        record = redact_tree(record, identifying)
    if record["status"] != "failed":
        atomic_write_text(out / ".convert_state" / f"{case.case_id}.json", json.dumps(record, indent=1, default=str))
    return record


def _worker_init() -> None:
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)


def _remove_outputs(out: Path, record: dict) -> None:
    for rel in record.get("outputs", []):
        (out / rel).unlink(missing_ok=True)
    (out / ".convert_state" / f"{record['case_id']}.json").unlink(missing_ok=True)


def convert_trial_dataset(input_root: str | os.PathLike | None, nnunet_raw_dir: str | os.PathLike, dataset_id: int = 501,
                          dataset_name: str = "Thrombus", masks_on: str = "cta", cta_phase: int | None = None,
                          test_fraction: float = 0.0, test_cases: list[str] | None = None, n_jobs: int = 1,
                          qc_png: bool = False, allow_thick_slices: bool = False, manifest: str | None = None,
                          overwrite: bool = False, seed: int = 12345, quiet: bool = False,
                          ncct_series: str | None = None, cta_series: str | None = None, anonymize: bool = False,
                          deid_key: str | None = None) -> dict:
    """Convert a trial-style folder (or a manifest) to ``nnunet_raw_dir/Dataset{id:03d}_{name}``.

    masks_on: grid the masks were drawn on ("cta" or "ncct"; a mask matching the other scan is accepted and noted).
    test_fraction / test_cases: held-out test set (imagesTs/labelsTs), stratified by site with ``seed``.
    ncct_series / cta_series: SeriesNumber or SeriesInstanceUID to read when a DICOM folder's choice is ambiguous
    (every case; a manifest's ``ncct_series`` / ``cta_series`` columns choose per case).
    anonymize / deid_key: de-identified tables for sharing (module doc); deid_key: key file (created when missing;
    default ``deid_key.txt`` in the dataset folder).
    Returns ``{"dataset_dir", "converted", "skipped", "failed": {case_id: error}, "flagged", "records"}``.
    """
    if masks_on not in ("cta", "ncct"):
        raise ValueError(f"masks_on must be 'cta' or 'ncct', got {masks_on!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if not 1 <= int(dataset_id) <= 999:
        raise ValueError(f"dataset_id must be in 1..999, got {dataset_id}")
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")

    def say(text: str) -> None:  # progress: INFO, DEBUG with ``quiet``; failures are logged as errors below
        logger.log(logging.DEBUG if quiet else logging.INFO, text)

    cases = read_manifest(manifest) if manifest else discover_cases(input_root)
    if not cases:
        raise ValueError(f"no cases found in {manifest or input_root}")
    out = Path(nnunet_raw_dir) / f"Dataset{int(dataset_id):03d}_{dataset_name}"
    if overwrite and out.exists():
        shutil.rmtree(out)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs", "brain_masks", "transforms", ".convert_state"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cleanup_temp_files(out)
    options = {"masks_on": masks_on, "cta_phase": cta_phase, "allow_thick_slices": allow_thick_slices,
               "qc_png": qc_png, "ncct_series": ncct_series, "cta_series": cta_series}
    key_file = None
    if anonymize:  # only then in the options, so datasets converted before the switch existed still resume
        options["anonymize"] = True
        key, created = key_for_outputs(out, deid_key)
        key_file = str(key.path)
        say(f"de-identification key {'written to' if created else 'read from'} {key.path}: keep it to re-link, "
            "delete it to make the link one-way; move it out before sharing the dataset")
    test_ids = pick_test_cases([c for c in cases if not c.error], test_fraction, test_cases, seed)
    plan = {c.case_id: ("test" if c.case_id in test_ids else "train") for c in cases}

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
            if old.get("options") == options and old.get("patient") == case.patient and same_split \
                    and outputs_valid(out, old["outputs"]):
                records[case.case_id] = dict(old, skipped=True)
                continue
            _remove_outputs(out, old)
        todo.append(case)
    say(f"{len(cases)} case(s) found, {len(records)} already converted, {len(todo)} to convert "
        f"({n_jobs} process(es)) -> {out}")
    t0 = time.perf_counter()
    if n_jobs == 1 or len(todo) <= 1:
        results = (_convert_one(c, str(out), plan[c.case_id], options, key_file) for c in todo)
        for i, rec in enumerate(results, start=1):
            records[rec["case_id"]] = rec
            _report(say, i, len(todo), rec)
    else:
        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=get_context("spawn"), initializer=_worker_init) as ex:
            futures = [ex.submit(_convert_one, c, str(out), plan[c.case_id], options, key_file) for c in todo]
            for i, fut in enumerate(as_completed(futures), start=1):
                rec = fut.result()
                records[rec["case_id"]] = rec
                _report(say, i, len(todo), rec)
    ordered = [records[c.case_id] for c in cases]
    _write_tables(out, ordered, dataset_id, dataset_name, seed, say)
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
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dataset_conversion.convert_trial", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    check(args)
    configure_logging(level_from_flags(quiet=args.quiet))
    return 1 if convert_trial_dataset(args.input, args.output, **to_kwargs(args))["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
