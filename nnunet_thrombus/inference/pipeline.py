"""``predict_cases``: NCCT + CTA scans -> per-case thrombus mask, report, overlay (and DICOM SEG), batch-safe.

Per case (``OUT/<case>/``): ``thrombus.nii.gz`` on the CTA grid, ``report.json`` (``docs/report_schema.json``),
``overlay.png``, optionally ``probabilities.npz``, ``thrombus_seg.dcm`` and ``thrombus_sr.dcm``; plus
``OUT/summary.csv`` (one row per finished case) and ``OUT/failures.csv``. Stages per case: preprocess (read,
register, skull-strip, checks), coarse and fine (``ThrombusCascadePredictor``), measure, export. A failing case
is recorded and the batch goes on; outputs are staged in ``OUT/.<case>.partial/`` and renamed when complete, so an
interrupted batch resumes (finished cases that verify are skipped). Ctrl-C removes the partial case and re-raises
``KeyboardInterrupt``.

With ``anonymize`` no output holds a DICOM header value the de-identification profile removes
(``nnunet_thrombus.deidentify``, docs/deidentification.md): the SEG is built from minimal de-identified source
headers, the report drops series descriptions, free text (errors, tracebacks) is redacted, and the key of the
UID/date mapping is ``OUT/deid_key.txt`` unless the user names one.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
import traceback
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.atomic_io import write_csv
from nnunet_thrombus.calibration.lvo import LVOThresholds
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.calibration.review import ReviewRule, case_uncertainty
from nnunet_thrombus.calibration.roi import resolve_roi_threshold
from nnunet_thrombus.inference import case_outputs as co
from nnunet_thrombus.inference.inputs import CaseInputError, PreparedCase, find_cases, prepare_case, select_part
from nnunet_thrombus.inference.model_files import load_predictor
from nnunet_thrombus.inference.report import SUMMARY_COLUMNS, build_report, summary_row
from nnunet_thrombus.model_folder import CascadeModel, resolve_cascade

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = ["case_id", "stage", "error"]


def _progress(quiet: bool, text: str, error: bool = False) -> None:
    """A progress record: INFO, or DEBUG when ``quiet`` (predict run as an inner step, e.g. by the demo); errors
    always at ERROR."""
    if error:
        logger.error(text)
    else:
        logger.log(logging.DEBUG if quiet else logging.INFO, text)


def _image_like(array: np.ndarray, reference: sitk.Image, pixel=sitk.sitkUInt8) -> sitk.Image:
    img = sitk.Cast(sitk.GetImageFromArray(array), pixel)
    img.CopyInformation(reference)
    return img


def _stage_timings(prep: PreparedCase, model_t: dict, measure_s: float, export_s: float) -> dict:
    coarse = model_t.get("coarse_preprocess", 0.0) + model_t.get("coarse", 0.0)
    fine = model_t.get("fine_preprocess", 0.0) + model_t.get("fine", 0.0)
    t = {"preprocess": prep.preprocess_s, "coarse": coarse, "fine": fine,
         "export": model_t.get("export", 0.0) + export_s, "measure": measure_s}
    t["total"] = sum(t.values())
    return t


def predict_one(prep: PreparedCase, predictor, out_dir: Path, *, rule: LVOThresholds, rule_source: str,
                model_info: dict, save_probabilities: bool = False, dicom_seg: bool = False,
                anonymize: bool = False, anonymize_seg: bool = False, deid_key=None, keep_phi: bool = False,
                postprocessing=None, postprocessing_source: str = "none", review_rule=None,
                review_source: str = "default", dicom_sr: bool = False) -> dict:
    """Predict, post-process (keep or drop each component by evidence: the model's validated rule, or every component
    kept when ``postprocessing`` is None), measure, judge the uncertainty (``review_rule``: the model's
    ``ReviewRule``, default thresholds when None) and write one prepared case into ``OUT/<case>/``; returns its
    report. ``anonymize``: de-identified outputs, UIDs and dates mapped with ``deid_key`` (a ``DeidKey``);
    ``anonymize_seg``: the SEG only."""
    # highdicom (DICOM SEG) and matplotlib (overlay) load only when a case is written
    from nnunet_thrombus.inference.dicom_seg import write_dicom_seg
    from nnunet_thrombus.inference.overlay import write_overlay

    result = predictor.predict(prep.channels(), prep.cta.GetSpacing()[::-1])
    seg = np.asarray(result.segmentation, dtype=np.uint8)
    t0 = time.perf_counter()
    cta, ncct = sitk.GetArrayFromImage(prep.cta), sitk.GetArrayFromImage(prep.ncct)
    brain = sitk.GetArrayFromImage(prep.brain_mask)
    post = Postprocessing("none") if postprocessing is None else postprocessing
    probability = np.asarray(result.probability)
    selection = post.select(seg, prep.cta.GetSpacing()[::-1], probability=probability, ncct=ncct, cta=cta,
                            brain=brain, origin=prep.cta.GetOrigin(), direction=prep.cta.GetDirection())
    dropped_mask = (seg > 0) & (selection["mask"] == 0)
    seg, components = selection["mask"], selection["kept"]
    spread = getattr(result, "fold_spread", None) or {}
    uncertainty = case_uncertainty(probability, seg, brain, fold_std=spread.get("std"), fold_votes=spread.get("votes"),
                                   n_folds=len(result.folds) or 1)
    review_rule = ReviewRule() if review_rule is None else review_rule
    review = dict(review_rule.review(uncertainty, selection["flags"]), rule=review_rule.to_dict(),
                  source=review_source)
    measure_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tmp = co.start_case(out_dir, prep.case_id)
    mask_img = _image_like(seg, prep.cta)
    native_mask = mask_img
    if prep.cta.GetSize() != prep.cta_native.GetSize():  # thick slices were resampled: back to the CTA grid
        native_mask = sitk.Resample(mask_img, prep.cta_native, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                    sitk.sitkUInt8)
    co.write_image(native_mask, tmp / co.MASK)
    if save_probabilities:
        co.write_npz(tmp / "probabilities.npz", probability=np.asarray(result.probability, np.float16),
                     spacing_zyx=np.asarray(prep.cta.GetSpacing()[::-1]), origin_xyz=np.asarray(prep.cta.GetOrigin()),
                     direction=np.asarray(prep.cta.GetDirection()))
    warnings = list(prep.warnings)
    info = dict(model_info, roi_fallback=bool(getattr(result, "roi_fallback", False)),
                fine_tiles=list(getattr(result, "fine_tiles", ()) or ()))
    report = build_report(prep.case_id, components=components, probability=np.asarray(result.probability),
                          mask=seg, input_info=prep.input_info, registration_qc=prep.registration_qc,
                          model_info=info, folds=result.folds, rule=rule, rule_source=rule_source,
                          warnings=warnings, timings_s={}, phi=prep.phi if keep_phi else None,
                          dropped=selection["dropped"], uncertainty=uncertainty, review=review,
                          postprocessing={"rule": post.to_dict(), "source": postprocessing_source,
                                          "flags": selection["flags"]})
    if anonymize:
        from nnunet_thrombus.inference.report import deidentified_report

        report = deidentified_report(report, prep.identifying)
    write_overlay(tmp / "overlay.png", cta, ncct, seg, prep.cta.GetSpacing()[::-1], report, brain,
                  dropped=dropped_mask if dropped_mask.any() else None)
    if (dicom_seg or dicom_sr) and prep.dicom_cta_folder is not None:
        write_dicom_seg(tmp / "thrombus_seg.dcm", native_mask, prep.cta_native, prep.dicom_cta_folder,
                        prep.case_id, series_uid=prep.dicom_series_uid, anonymize=anonymize or anonymize_seg,
                        key=deid_key)
        if dicom_sr:  # the measurements as a DICOM SR referencing that SEG
            from nnunet_thrombus.inference.dicom_sr import write_case_sr

            write_case_sr(tmp / "thrombus_sr.dcm", report, prep.dicom_cta_folder, tmp / "thrombus_seg.dcm",
                          cta_series_uid=prep.dicom_series_uid, anonymize=anonymize or anonymize_seg,
                          key=deid_key)
    timings = _stage_timings(prep, dict(result.timings_s), measure_s, time.perf_counter() - t0)
    report["timings_s"] = {k: round(float(v), 3) for k, v in timings.items()}
    co.finish_case(out_dir, prep.case_id, tmp, report)
    return report


def _redact(text: str, anonymize: bool, case, identifying) -> str:
    """``text`` without the case's identifying header values when ``anonymize`` (read here when the case failed
    before its headers were collected)."""
    if not anonymize:
        return text
    from nnunet_thrombus.deidentify import identifying_values, redact
    from nnunet_thrombus.inference.inputs import case_headers

    if not identifying:
        try:
            identifying = identifying_values(case_headers(case))
        except Exception:  # unreadable headers: nothing of them can be in the text either
            identifying = frozenset()
    return redact(text, identifying)


def _load_reports(out_dir: Path) -> dict:
    rows = {}
    for path in sorted(Path(out_dir).glob(f"*/{co.REPORT}")):
        if path.parent.name.startswith("."):
            continue
        try:
            rows[path.parent.name] = summary_row(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, IndexError):
            continue
    return rows


def _write_tables(out_dir: Path, rows: dict, failures: list, failures_name: str) -> None:
    write_csv(out_dir / "summary.csv", [rows[k] for k in sorted(rows)], SUMMARY_COLUMNS)
    write_csv(out_dir / failures_name, failures, FAILURE_COLUMNS)


def predict_cases(inputs, out_dir, *, model=None, dataset=None, predictor=None, folds=None, device: str = "cpu",
                  use_tta: bool = True, roi_restrict: bool = True, save_probabilities: bool = False,
                  dicom_seg: bool = False, anonymize: bool = False, anonymize_seg: bool = False, deid_key=None,
                  keep_phi: bool = False,
                  allow_thick_slices: bool = False, num_parts: int = 1, part_id: int = 0, overwrite: bool = False,
                  quiet: bool = False, roi_threshold: float | None = None, cache_dir=None, trainer: str | None = None,
                  plans: str | None = None, ncct_series: str | None = None, cta_series: str | None = None,
                  dicom_sr: bool = False) -> dict:
    """Predict every case of ``inputs`` (path or list of paths) into ``out_dir``.

    Model: ``model`` (a folder holding the two stage folders, or a resolved ``CascadeModel``) or ``dataset`` (id/name under
    ``nnUNet_results``), trained with ``trainer`` under ``plans`` (None: ``model_folder``'s defaults); tests may
    pass a ready ``predictor`` (any object with ``predict(images, spacing)``).
    ``ncct_series`` / ``cta_series``: SeriesNumber or SeriesInstanceUID to read from the case's DICOM folder when
    several series qualify equally (``prepare_case``); only with a single case in ``inputs`` (ValueError otherwise).
    ``dicom_sr``: also write ``thrombus_sr.dcm`` (the measurements, ``inference.dicom_sr``) and the SEG it references.
    ``anonymize``: de-identify every output (module doc); ``anonymize_seg``: the DICOM SEG only, the same way;
    ``deid_key``: path of the key file for either (created when missing; None: ``OUT/deid_key.txt``).
    ``anonymize`` with ``keep_phi``: ValueError.
    Returns {"done": [ids], "skipped": [ids], "failed": {id: error}, "out_dir": str, "timings_s": {id: {...}}}.
    Raises ``ModelError`` (bad model), ``OSError`` (output folder not writable), ``KeyboardInterrupt`` (Ctrl-C,
    after removing the partial case).
    """
    out_dir = Path(out_dir)
    if anonymize and keep_phi:
        raise ValueError("anonymize and keep_phi contradict each other; give one")
    co.check_writable(out_dir)
    key = None
    if anonymize or (anonymize_seg and (dicom_seg or dicom_sr)):
        from nnunet_thrombus.deidentify import key_for_outputs

        key, created = key_for_outputs(out_dir, deid_key)
        _progress(quiet, f"de-identification key {'written to' if created else 'read from'} {key.path}: keep it "
                         "to re-link outputs to their sources, delete it to make the link one-way; never share it")
    rule, rule_source, model_info = LVOThresholds(), "default", {"model": "custom predictor"}
    roi_source = "default" if roi_threshold is None else "command line"
    postprocessing, postprocessing_source, review_rule, review_source = None, "none", None, "default"
    if predictor is None or model is not None or dataset is not None:
        names = {k: v for k, v in (("trainer", trainer), ("plans", plans)) if v is not None}
        files = model if isinstance(model, CascadeModel) else resolve_cascade(dataset=dataset, model_folder=model,
                                                                              folds=folds, **names)
        cal = files.calibration
        rule, rule_source, model_info = cal.lvo, cal.sources["lvo"], files.describe()
        postprocessing, postprocessing_source = cal.postprocessing, cal.sources["postprocessing"]
        review_rule, review_source = cal.review, cal.sources["review"]
        if predictor is None:
            if roi_threshold is None:
                roi_threshold, roi_source = cal.roi.threshold, cal.sources["roi"]
                if roi_restrict and cal.roi.whole_image:
                    roi_restrict = False  # fit-roi: the coarse stage misses validation clots; look everywhere
                    model_info["roi_restrict_source"] = (f"{files.fine_dir.name}/roi_threshold.json: no threshold "
                                                         "kept every validation clot inside the ROI")
            predictor = load_predictor(files, folds=folds, device=device, use_mirroring=use_tta,
                                       roi_restrict=roi_restrict, roi_threshold=roi_threshold)
    if hasattr(predictor, "roi_threshold") and roi_threshold != predictor.roi_threshold:  # a ready predictor's own
        roi_threshold, roi_source = predictor.roi_threshold, "predictor"
    model_info.update(tta=bool(use_tta), roi_restrict=bool(roi_restrict))
    if roi_restrict:
        if roi_threshold is None:
            roi_threshold, roi_source = resolve_roi_threshold()
        model_info["roi_threshold"] = float(roi_threshold)
        model_info["roi_threshold_source"] = roi_source
    cases = find_cases(inputs)
    if (ncct_series or cta_series) and len(cases) > 1:  # a SeriesNumber means nothing across patients
        raise ValueError("--ncct-series/--cta-series pick a series in one case's folder, but the input holds "
                         f"{len(cases)} cases; give that patient's folder alone as -i")
    cases = select_part(cases, num_parts, part_id)
    failures_name = "failures.csv" if num_parts == 1 else f"failures_part{part_id}of{num_parts}.csv"
    rows = _load_reports(out_dir)
    done, skipped, failed, timings = [], [], {}, {}
    failure_rows: list[dict] = []
    current = None
    t_batch = time.perf_counter()
    try:
        for i, case in enumerate(cases, start=1):
            current = case.case_id
            tag = f"[{i}/{len(cases)}] {case.case_id}"
            co.abandon_case(out_dir, case.case_id)
            ok, why = co.verify_case(out_dir / case.case_id, case.case_id)
            if ok and not overwrite:
                skipped.append(case.case_id)
                _progress(quiet, f"{tag}: already done, skipped")
                continue
            t0 = time.perf_counter()
            stage = "input"
            identifying = frozenset()
            try:
                prep = prepare_case(case, allow_thick_slices=allow_thick_slices, cache_dir=cache_dir,
                                    ncct_series=ncct_series, cta_series=cta_series, anonymize=anonymize)
                identifying = prep.identifying
                stage = "predict"
                report = predict_one(prep, predictor, out_dir, rule=rule, rule_source=rule_source,
                                     model_info=model_info, save_probabilities=save_probabilities,
                                     dicom_seg=dicom_seg, anonymize=anonymize, anonymize_seg=anonymize_seg,
                                     deid_key=key, keep_phi=keep_phi,
                                     postprocessing=postprocessing, postprocessing_source=postprocessing_source,
                                     review_rule=review_rule, review_source=review_source, dicom_sr=dicom_sr)
            except Exception as exc:  # one bad case must not stop the batch
                co.abandon_case(out_dir, case.case_id)
                if isinstance(exc, OSError) and exc.errno is not None:
                    msg = co.describe_os_error(exc, case.case_id, out_dir)
                    stage = "write"
                elif isinstance(exc, CaseInputError):
                    msg = str(exc)
                else:
                    msg = f"case {case.case_id}: {type(exc).__name__}: {exc}"
                    if not quiet:
                        if anonymize:  # the traceback as text, redacted of the case's header values
                            logger.error("%s: unexpected error\n%s", tag,
                                         _redact(traceback.format_exc(), anonymize, case, identifying).rstrip())
                        else:
                            logger.error(f"{tag}: unexpected error", exc_info=True)
                msg = _redact(msg, anonymize, case, identifying)
                failed[case.case_id] = msg
                failure_rows.append({"case_id": case.case_id, "stage": stage, "error": msg})
                _progress(quiet, f"{tag}: FAILED ({msg})", error=True)
                current = None
                continue
            current = None
            rows[case.case_id] = summary_row(report)
            timings[case.case_id] = report["timings_s"]
            done.append(case.case_id)
            t = report["timings_s"]
            big = report["components"][0]["volume_mm3"] if report["components"] else 0.0
            cached = ", registration cached" if prep.input_info.get("preprocess_cache") == "hit" else ""
            flag = "REVIEW, " if report["review"]["review"] else ""
            _progress(quiet, f"{tag}: {flag}{report['call']['call']}, {report['n_components']} component(s), largest "
                             f"{big:.0f} mm3 in {time.perf_counter() - t0:.2f} s (preprocess {t['preprocess']:.2f}"
                             f"{cached}, "
                             f"coarse {t['coarse']:.2f}, fine {t['fine']:.2f}, export {t['export']:.2f})")
            try:
                _write_tables(out_dir, rows, failure_rows, failures_name)
            except OSError as exc:  # tables are rewritten after the next case; say so and go on
                logger.warning(f"could not update summary.csv ({exc})")
    except KeyboardInterrupt:
        for case in cases:
            co.abandon_case(out_dir, case.case_id)
        _write_tables(out_dir, {**_load_reports(out_dir)}, failure_rows, failures_name)
        _progress(False, f"interrupted: {len(done)} case(s) finished and kept"
                         + (f", partial outputs of {current} removed" if current else ""))
        raise
    rows = {**_load_reports(out_dir), **rows} if num_parts > 1 else rows
    _write_tables(out_dir, rows, failure_rows, failures_name)
    _progress(quiet, f"{len(done)} predicted, {len(skipped)} skipped (already done), {len(failed)} failed "
                     f"in {time.perf_counter() - t_batch:.1f} s; outputs in {out_dir}")
    if failed:
        _progress(quiet, "failed cases:\n" + "\n".join(f"  {k}: {v}" for k, v in failed.items()), error=True)
    return {"done": done, "skipped": skipped, "failed": failed, "out_dir": str(out_dir), "timings_s": timings}


def read_failures(out_dir, name: str = "failures.csv") -> list[dict]:
    """Rows of ``OUT/failures.csv`` (case_id, stage, error)."""
    text = (Path(out_dir) / name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def rebuild_tables(out_dir, failed: dict | None = None) -> None:
    """Rewrite ``summary.csv`` from every finished case's report and merge the parts' failure tables
    (``failures_part*of*.csv``) into ``failures.csv``; used after a split run (Ray or ``--num-parts``)."""
    out_dir = Path(out_dir)
    rows = []
    for path in sorted(out_dir.glob("failures_part*of*.csv")):
        rows += read_failures(out_dir, path.name)
    known = {r["case_id"] for r in rows}
    rows += [{"case_id": k, "stage": "", "error": v} for k, v in (failed or {}).items() if k not in known]
    _write_tables(out_dir, _load_reports(out_dir), sorted(rows, key=lambda r: r["case_id"]), "failures.csv")
