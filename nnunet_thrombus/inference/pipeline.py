"""Predict thrombi on NCCT + CTA, as nnU-Net splits it: a predictor built once from the model, then ``predict``.

Library use (the model is loaded once; ``predict`` may be called for any number of inputs)::

    from nnunet_thrombus.inference.options import BatchOptions, ModelOptions, OutputOptions
    from nnunet_thrombus.inference.pipeline import ThrombusCasePredictor

    predictor = ThrombusCasePredictor.from_model(ModelOptions(model="MODEL_DIR", device="cpu"))
    result = predictor.predict("SCANS_DIR", "OUT", OutputOptions(dicom_seg=True), BatchOptions(quiet=True))

``predict_cases(inputs, out_dir, model_options)`` does both in one call (``nnunet_thrombus predict`` uses it).
Tests wrap a ready network (any object with ``predict(images, spacing)``): ``ThrombusCasePredictor(network)``.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from nnunet_thrombus.atomic_io import write_csv
from nnunet_thrombus.calibration.lvo import review_flags
from nnunet_thrombus.calibration.model import ARTIFACTS, DEFAULT, ModelCalibration
from nnunet_thrombus.calibration.postprocessing import Postprocessing
from nnunet_thrombus.calibration.review import case_uncertainty
from nnunet_thrombus.deidentify import identifying_values, key_for_outputs, redact
from nnunet_thrombus.inference import case_outputs as co
from nnunet_thrombus.inference.dicom_seg import write_dicom_seg
from nnunet_thrombus.inference.dicom_sr import write_case_sr
from nnunet_thrombus.inference.inputs import (CaseInputError, PreparedCase, case_headers, find_cases, prepare_case,
                                              select_part)
from nnunet_thrombus.inference.model_files import describe_model, load_predictor, resolve_model, roi_choice
from nnunet_thrombus.inference.options import BatchOptions, ModelOptions, OutputOptions
from nnunet_thrombus.inference.overlay import write_overlay
from nnunet_thrombus.inference.report import (SUMMARY_COLUMNS, CaseFindings, build_report, deidentified_report,
                                              summary_row)
from nnunet_thrombus.model_folder import CascadeModel

logger = logging.getLogger(__name__)

FAILURE_COLUMNS = ["case_id", "stage", "error"]
#: the rules of a ready network given without a model: defaults, every component kept
NO_MODEL_CALIBRATION = ModelCalibration(postprocessing=Postprocessing("none"),
                                        sources={**dict.fromkeys(ARTIFACTS, DEFAULT), "postprocessing": "none"})


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
    return {k: round(float(v), 3) for k, v in t.items()}


def case_findings(result, prep: PreparedCase, images: dict, calibration: ModelCalibration) -> CaseFindings:
    """Post-process the network's ``result`` for ``prep`` (keep or drop each component by evidence, under the model's
    rule) and judge its uncertainty (the model's review rule, on the component flags and those of the model's LVO
    call). ``images``: {"cta", "ncct", "brain"} arrays
    (Z, Y, X) on the CTA grid."""
    post = calibration.postprocessing
    probability = np.asarray(result.probability)
    selection = post.select(np.asarray(result.segmentation, dtype=np.uint8), prep.cta.GetSpacing()[::-1],
                            probability=probability, origin=prep.cta.GetOrigin(), direction=prep.cta.GetDirection(),
                            **images)
    spread = getattr(result, "fold_spread", None) or {}
    uncertainty = case_uncertainty(probability, selection["mask"], images["brain"], fold_std=spread.get("std"),
                                   fold_votes=spread.get("votes"), n_folds=len(result.folds) or 1)
    flags = review_flags(selection, calibration.lvo)
    review = dict(calibration.review.review(uncertainty, flags), rule=calibration.review.to_dict(),
                  source=calibration.sources["review"], flags=flags)
    return CaseFindings(mask=selection["mask"], probability=probability, components=selection["kept"],
                        folds=result.folds, dropped=selection["dropped"], uncertainty=uncertainty, review=review,
                        postprocessing={"rule": post.to_dict(), "source": calibration.sources["postprocessing"],
                                        "flags": selection["flags"]})


def _write_mask(tmp: Path, prep: PreparedCase, findings: CaseFindings, save_probabilities: bool) -> sitk.Image:
    """Write ``thrombus.nii.gz`` on the native CTA grid (and ``probabilities.npz``); returns that mask image."""
    native_mask = mask_img = _image_like(findings.mask, prep.cta)
    if prep.cta.GetSize() != prep.cta_native.GetSize():  # thick slices were resampled: back to the CTA grid
        native_mask = sitk.Resample(mask_img, prep.cta_native, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                    sitk.sitkUInt8)
    co.write_image(native_mask, tmp / co.MASK)
    if save_probabilities:
        co.write_npz(tmp / "probabilities.npz", probability=np.asarray(findings.probability, np.float16),
                     spacing_zyx=np.asarray(prep.cta.GetSpacing()[::-1]), origin_xyz=np.asarray(prep.cta.GetOrigin()),
                     direction=np.asarray(prep.cta.GetDirection()))
    return native_mask


def _write_dicom(tmp: Path, prep: PreparedCase, native_mask: sitk.Image, report: dict, outputs: OutputOptions,
                 key) -> None:
    """``thrombus_seg.dcm`` (and ``thrombus_sr.dcm``, the measurements referencing it) for a DICOM case."""
    if not (outputs.dicom_seg or outputs.dicom_sr) or prep.dicom_cta_folder is None:
        return
    anonymize = outputs.anonymize or outputs.anonymize_seg
    write_dicom_seg(tmp / "thrombus_seg.dcm", native_mask, prep.cta_native, prep.dicom_cta_folder, prep.case_id,
                    series_uid=prep.dicom_series_uid, anonymize=anonymize, key=key)
    if outputs.dicom_sr:
        write_case_sr(tmp / "thrombus_sr.dcm", report, prep.dicom_cta_folder, tmp / "thrombus_seg.dcm",
                      cta_series_uid=prep.dicom_series_uid, anonymize=anonymize, key=key)


def _redact(text: str, anonymize: bool, case, identifying) -> str:
    """``text`` without the case's identifying header values when ``anonymize`` (read here when the case failed
    before its headers were collected)."""
    if not anonymize:
        return text
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


def _deid_key(out_dir: Path, outputs: OutputOptions, quiet: bool):
    """The ``DeidKey`` of de-identified outputs (created when missing), None when nothing is de-identified."""
    if not (outputs.anonymize or (outputs.anonymize_seg and (outputs.dicom_seg or outputs.dicom_sr))):
        return None
    key, created = key_for_outputs(out_dir, outputs.deid_key)
    _progress(quiet, f"de-identification key {'written to' if created else 'read from'} {key.path}: keep it "
                     "to re-link outputs to their sources, delete it to make the link one-way; never share it")
    return key


def _cases_of(inputs, batch: BatchOptions) -> list:
    """The cases of ``inputs`` in this run's part; ``--ncct-series``/``--cta-series`` need a single case."""
    cases = find_cases(inputs)
    if (batch.ncct_series or batch.cta_series) and len(cases) > 1:  # a SeriesNumber means nothing across patients
        raise ValueError("--ncct-series/--cta-series pick a series in one case's folder, but the input holds "
                         f"{len(cases)} cases; give that patient's folder alone as -i")
    return select_part(cases, batch.num_parts, batch.part_id)


@dataclass
class _BatchRun:
    """One ``predict`` call: where and what it writes, and what it has done so far."""

    out_dir: Path
    outputs: OutputOptions
    batch: BatchOptions
    key: object = None  # DeidKey of de-identified outputs
    rows: dict = field(default_factory=dict)  # summary.csv rows by case id, finished cases already there included
    done: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    failure_rows: list = field(default_factory=list)
    current: str | None = None  # the case being predicted (its partial outputs are removed on Ctrl-C)

    @property
    def failures_name(self) -> str:
        b = self.batch
        return "failures.csv" if b.num_parts == 1 else f"failures_part{b.part_id}of{b.num_parts}.csv"

    def write_tables(self, rows: dict | None = None) -> None:
        _write_tables(self.out_dir, self.rows if rows is None else rows, self.failure_rows, self.failures_name)

    def result(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed, "out_dir": str(self.out_dir),
                "timings_s": self.timings}


def _record_failure(run: _BatchRun, case, tag: str, stage: str, exc: Exception, identifying) -> None:
    """Log and record a failed case (called inside its ``except`` block, for the traceback)."""
    anonymize = run.outputs.anonymize
    if isinstance(exc, OSError) and exc.errno is not None:
        msg = co.describe_os_error(exc, case.case_id, run.out_dir)
        stage = "write"
    elif isinstance(exc, CaseInputError):
        msg = str(exc)
    else:
        msg = f"case {case.case_id}: {type(exc).__name__}: {exc}"
        if not run.batch.quiet:
            if anonymize:  # the traceback as text, redacted of the case's header values
                logger.error("%s: unexpected error\n%s", tag,
                             _redact(traceback.format_exc(), anonymize, case, identifying).rstrip())
            else:
                logger.error(f"{tag}: unexpected error", exc_info=True)
    msg = _redact(msg, anonymize, case, identifying)
    run.failed[case.case_id] = msg
    run.failure_rows.append({"case_id": case.case_id, "stage": stage, "error": msg})
    _progress(run.batch.quiet, f"{tag}: FAILED ({msg})", error=True)


def _record_done(run: _BatchRun, tag: str, prep: PreparedCase, report: dict, seconds: float) -> None:
    """Record a finished case, log its line and rewrite the tables."""
    run.rows[prep.case_id] = summary_row(report)
    run.timings[prep.case_id] = report["timings_s"]
    run.done.append(prep.case_id)
    t = report["timings_s"]
    big = report["components"][0]["volume_mm3"] if report["components"] else 0.0
    cached = ", registration cached" if prep.input_info.get("preprocess_cache") == "hit" else ""
    flag = "REVIEW, " if report["review"]["review"] else ""
    _progress(run.batch.quiet, f"{tag}: {flag}{report['call']['call']}, {report['n_components']} component(s), "
                               f"largest {big:.0f} mm3 in {seconds:.2f} s (preprocess {t['preprocess']:.2f}{cached}, "
                               f"coarse {t['coarse']:.2f}, fine {t['fine']:.2f}, export {t['export']:.2f})")
    try:
        run.write_tables()
    except OSError as exc:  # tables are rewritten after the next case; say so and go on
        logger.warning(f"could not update summary.csv ({exc})")


class ThrombusCasePredictor:
    """The cascade with its fitted rules, loaded once; :meth:`predict` runs it over any number of inputs.

    ``network``: a ``ThrombusCascadePredictor`` (or any object with ``predict(images (2, Z, Y, X), spacing_zyx)``
    returning a ``CascadeResult``-like object); ``options``: how it was built (TTA, ROI), recorded in every report;
    ``model``: the resolved ``CascadeModel`` whose rules (LVO call, post-processing, review, ROI threshold) apply
    (None: defaults, every component kept, model "custom predictor").
    """

    def __init__(self, network, options: ModelOptions = ModelOptions(), model: CascadeModel | None = None):
        self.network = network
        self.options = options
        self.calibration = model.calibration if model is not None else NO_MODEL_CALIBRATION
        self.model_info = describe_model(network, options, model)

    @classmethod
    def from_model(cls, options: ModelOptions) -> ThrombusCasePredictor:
        """Resolve the model folder and its rules and load every fold's weights, once. Raises ``ModelError``."""
        model = resolve_model(options)
        roi_restrict, roi_threshold, _, _ = roi_choice(options, model)
        network = load_predictor(model, folds=options.folds, device=options.device, use_mirroring=options.use_tta,
                                 roi_restrict=roi_restrict, roi_threshold=roi_threshold)
        return cls(network, options, model)

    def predict(self, inputs, out_dir, outputs: OutputOptions | None = None, batch: BatchOptions | None = None) -> dict:
        """Predict every case of ``inputs`` (path or list of paths: patient folders, folders of them, nnU-Net
        images folders) into ``out_dir`` (module doc), batch-safe.

        Returns {"done": [ids], "skipped": [ids], "failed": {id: error}, "out_dir": str, "timings_s": {id: {...}}}.
        Raises ``OSError`` (output folder not writable), ``ValueError`` (series flags with several cases),
        ``KeyboardInterrupt`` (Ctrl-C, after removing the partial case).
        """
        outputs, batch, out_dir = outputs or OutputOptions(), batch or BatchOptions(), Path(out_dir)
        co.check_writable(out_dir)
        run = _BatchRun(out_dir, outputs, batch, key=_deid_key(out_dir, outputs, batch.quiet))
        cases = _cases_of(inputs, batch)
        run.rows = _load_reports(out_dir)
        t_batch = time.perf_counter()
        try:
            for i, case in enumerate(cases, start=1):
                self._run_case(case, f"[{i}/{len(cases)}] {case.case_id}", run)
        except KeyboardInterrupt:
            for case in cases:
                co.abandon_case(out_dir, case.case_id)
            run.write_tables(_load_reports(out_dir))
            _progress(False, f"interrupted: {len(run.done)} case(s) finished and kept"
                             + (f", partial outputs of {run.current} removed" if run.current else ""))
            raise
        run.write_tables({**_load_reports(out_dir), **run.rows} if batch.num_parts > 1 else None)
        _progress(batch.quiet, f"{len(run.done)} predicted, {len(run.skipped)} skipped (already done), "
                               f"{len(run.failed)} failed in {time.perf_counter() - t_batch:.1f} s; "
                               f"outputs in {out_dir}")
        if run.failed:
            _progress(batch.quiet, "failed cases:\n" + "\n".join(f"  {k}: {v}" for k, v in run.failed.items()),
                      error=True)
        return run.result()

    def _run_case(self, case, tag: str, run: _BatchRun) -> None:
        """Skip (already done), predict, or record the failure of one case."""
        cid, batch = case.case_id, run.batch
        run.current = cid
        co.abandon_case(run.out_dir, cid)
        if co.verify_case(run.out_dir / cid, cid)[0] and not batch.overwrite:
            run.skipped.append(cid)
            _progress(batch.quiet, f"{tag}: already done, skipped")
            return
        t0 = time.perf_counter()
        stage, identifying = "input", frozenset()
        try:
            prep = prepare_case(case, allow_thick_slices=batch.allow_thick_slices, cache_dir=batch.cache_dir,
                                ncct_series=batch.ncct_series, cta_series=batch.cta_series,
                                anonymize=run.outputs.anonymize)
            identifying = prep.identifying
            stage = "predict"
            report = self.predict_case(prep, run.out_dir, run.outputs, run.key)
        except Exception as exc:  # one bad case must not stop the batch
            co.abandon_case(run.out_dir, cid)
            _record_failure(run, case, tag, stage, exc, identifying)
            run.current = None
            return
        run.current = None
        _record_done(run, tag, prep, report, time.perf_counter() - t0)

    def predict_case(self, prep: PreparedCase, out_dir, outputs: OutputOptions | None = None, key=None) -> dict:
        """Predict, post-process, measure, judge and write one prepared case into ``OUT/<case>/``; returns its
        report. ``key``: the ``DeidKey`` mapping UIDs and dates of de-identified outputs."""
        outputs = outputs or OutputOptions()
        result = self.network.predict(prep.channels(), prep.cta.GetSpacing()[::-1])
        t0 = time.perf_counter()
        images = {"cta": sitk.GetArrayFromImage(prep.cta), "ncct": sitk.GetArrayFromImage(prep.ncct),
                  "brain": sitk.GetArrayFromImage(prep.brain_mask)}
        findings = case_findings(result, prep, images, self.calibration)
        measure_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        tmp = co.start_case(Path(out_dir), prep.case_id)
        native_mask = _write_mask(tmp, prep, findings, outputs.save_probabilities)
        info = dict(self.model_info, roi_fallback=bool(getattr(result, "roi_fallback", False)),
                    fine_tiles=list(getattr(result, "fine_tiles", ()) or ()))
        cal = self.calibration
        report = build_report(prep.case_id, findings, input_info=prep.input_info,
                              registration_qc=prep.registration_qc, model_info=info, rule=cal.lvo,
                              rule_source=cal.sources["lvo"], warnings=list(prep.warnings), timings_s={},
                              phi=prep.phi if outputs.keep_phi else None)
        if outputs.anonymize:
            report = deidentified_report(report, prep.identifying)
        dropped = (np.asarray(result.segmentation, dtype=np.uint8) > 0) & (findings.mask == 0)
        write_overlay(tmp / "overlay.png", images["cta"], images["ncct"], findings.mask, prep.cta.GetSpacing()[::-1],
                      report, images["brain"], dropped=dropped if dropped.any() else None)
        _write_dicom(tmp, prep, native_mask, report, outputs, key)
        report["timings_s"] = _stage_timings(prep, dict(result.timings_s), measure_s, time.perf_counter() - t0)
        co.finish_case(Path(out_dir), prep.case_id, tmp, report)
        return report


def predict_cases(inputs, out_dir, model: ModelOptions | ThrombusCasePredictor, outputs: OutputOptions | None = None,
                  batch: BatchOptions | None = None) -> dict:
    """``ThrombusCasePredictor.from_model(model).predict(inputs, out_dir, outputs, batch)`` in one call (``model``
    may also be a ready ``ThrombusCasePredictor``); see :meth:`ThrombusCasePredictor.predict`. The output folder is
    checked before the model is loaded. Raises ``ModelError`` (bad model) besides what ``predict`` raises."""
    if isinstance(model, ModelOptions):
        co.check_writable(Path(out_dir))
        model = ThrombusCasePredictor.from_model(model)
    return model.predict(inputs, out_dir, outputs, batch)


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
