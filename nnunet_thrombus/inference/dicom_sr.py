"""DICOM SR measurement report of one case (TID 1500, Comprehensive 3D SR, highdicom), for PACS import.

The SR holds what ``report.json`` holds about the clot, so a radiologist sees the numbers in the viewer:

- one volumetric ROI group (TID 1411) per kept thrombus component, largest first, referencing segment 1 of the
  thrombus SEG (which holds every kept component) and the CTA series it was drawn on; tracking identifier
  ``Thrombus component <index>``. Measurements (TID 300): volume (mm3), length (mm), mean diameter (mm), NCCT mean
  and median density, CTA mean attenuation, perviousness (CTA - NCCT) in Hounsfield units (UCUM ``[hnsf'U]``) and
  relative density (UCUM ``{ratio}``); qualitative evaluations: occlusion site (ICA, M1, M2, ACA as SNOMED CT
  arteries, "other" as a private code) and side (SNOMED CT Left / Right); the finding site repeats the artery
  with its laterality;
- one case-level group (TID 1501), tracking identifier ``Thrombus case summary``: total thrombus volume, number of
  kept components, the LVO call (qualitative: LVO / non-LVO occlusion / no occlusion) and the review flag
  (qualitative: SNOMED CT Yes / No). Every group names the algorithm and its version; the observer is a device.

Concepts come from SNOMED CT (SCT), DICOM (DCM) and UCUM where they exist; the rest use the private coding
scheme ``99NNUNETTHR`` (``PRIVATE_CODES``, documented in ``docs/pacs.md``), declared in the SR's Coding Scheme
Identification Sequence. A value that is null in the report (e.g. the length of a blob without a skeleton) is left
out of the SR. ``read_sr_values`` reads the values back in the shape ``report_sr_values`` gives them.

The writer takes the source CTA datasets and the SEG as arguments (the ones the SEG was built from), so whatever
de-identification those carry the SR carries too: its patient and study modules are copied from the sources and it
references the SEG and source UIDs as given. ``write_case_sr(anonymize=True, key=...)`` builds it from the same
minimal de-identified source copies as the anonymized SEG (``nnunet_thrombus.deidentify.deidentify_sources``, same
key, so the same UIDs), moves its own dates back by the same shift (times become 000000), records the profile
(``DeidentifiedSources.stamp``) and refuses to write an SR that still holds a source value the profile removes.
"""
from __future__ import annotations

import datetime
import math

import pydicom
from pydicom.dataset import Dataset

from nnunet_thrombus import __version__
from nnunet_thrombus.atomic_io import atomic_path
from nnunet_thrombus.deidentify import DeidentificationError, dataset_leaks, deidentify_sources
from nnunet_thrombus.inference.dicom_seg import sorted_series

# highdicom (and pydicom's code dictionary) are imported inside the functions that build SR content: they load when
# an SR is written, not when predict starts

#: private coding scheme of concepts no standard terminology has
PRIVATE_SCHEME = "99NNUNETTHR"
#: private concepts: key -> (code value, code meaning)
PRIVATE_CODES = {
    "ncct_density": ("NTH001", "Thrombus density on non-contrast CT"),
    "cta_attenuation": ("NTH002", "Thrombus attenuation on CT angiography"),
    "perviousness": ("NTH003", "Thrombus perviousness (CTA minus NCCT)"),
    "relative_density": ("NTH004", "Thrombus density relative to contralateral side"),
    "n_components": ("NTH005", "Number of thrombus components"),
    "occlusion_site": ("NTH010", "Occlusion site"),
    "other_site": ("NTH011", "Other intracranial artery"),
    "lvo_call": ("NTH020", "Large vessel occlusion call"),
    "LVO": ("NTH021", "Large vessel occlusion"),
    "non-LVO occlusion": ("NTH022", "Occlusion not of a large vessel"),
    "no occlusion": ("NTH023", "No occlusion"),
    "review": ("NTH030", "Human review recommended"),
    "review_reasons": ("NTH031", "Reasons for review"),
}
#: report site -> SNOMED CT artery (code value, meaning); "other" is the private code
SITE_CODES = {"ICA": ("86117002", "Internal carotid artery"), "M1": ("414722000", "Middle Cerebral Artery M1 Segment"),
              "M2": ("414723005", "Middle Cerebral Artery M2 Segment"), "ACA": ("60176003", "Anterior Cerebral Artery")}
#: report side -> SNOMED CT laterality
SIDE_CODES = {"L": ("7771000", "Left"), "R": ("24028007", "Right")}
#: per-component report key -> (concept, derivation or None, UCUM unit); concept is ("SCT"|"DCM"|PRIVATE key)
COMPONENT_MEASUREMENTS = {
    "volume_mm3": (("SCT", "118565006", "Volume"), None, ("mm3", "cubic millimeter")),
    "length_mm": (("SCT", "410668003", "Length"), None, ("mm", "millimeter")),
    "mean_diameter_mm": (("SCT", "81827009", "Diameter"), "mean", ("mm", "millimeter")),
    "ncct_mean_hu": ("ncct_density", "mean", ("[hnsf'U]", "Hounsfield unit")),
    "ncct_median_hu": ("ncct_density", "median", ("[hnsf'U]", "Hounsfield unit")),
    "cta_mean_hu": ("cta_attenuation", "mean", ("[hnsf'U]", "Hounsfield unit")),
    "perviousness_hu": ("perviousness", None, ("[hnsf'U]", "Hounsfield unit")),
    "relative_density": ("relative_density", None, ("{ratio}", "ratio")),
}
#: case-level report key -> (concept, derivation, unit)
CASE_MEASUREMENTS = {
    "total_volume_mm3": (("SCT", "118565006", "Volume"), None, ("mm3", "cubic millimeter")),
    "n_components": ("n_components", None, ("{components}", "components")),
}
DERIVATIONS = {"mean": ("373098007", "Mean"), "median": ("373099004", "Median")}
CASE_TRACKING = "Thrombus case summary"
SR_SERIES_DESCRIPTION = "Thrombus measurements (nnunet_thrombus)"
SR_SERIES_NUMBER = 9902


def _code(concept):
    """highdicom CodedConcept of a (scheme, value, meaning) tuple or a ``PRIVATE_CODES`` key."""
    from highdicom.sr import CodedConcept

    if isinstance(concept, str):
        value, meaning = PRIVATE_CODES[concept]
        return CodedConcept(value, PRIVATE_SCHEME, meaning)
    scheme, value, meaning = concept
    return CodedConcept(value, scheme, meaning)


def _unit(unit):
    from highdicom.sr import CodedConcept

    return CodedConcept(unit[0], "UCUM", unit[1])


def _finite(value) -> bool:
    return value is not None and not isinstance(value, bool) and math.isfinite(float(value))


def _measurements(values: dict, table: dict, algorithm) -> list:
    import highdicom as hd

    out = []
    for key, (concept, derivation, unit) in table.items():
        if not _finite(values.get(key)):
            continue
        deriv = _code(("SCT", *DERIVATIONS[derivation])) if derivation else None
        out.append(hd.sr.Measurement(name=_code(concept), value=float(values[key]), unit=_unit(unit),
                                     derivation=deriv, algorithm_id=algorithm))
    return out


def _site_code(site: str):
    return _code(("SCT", *SITE_CODES[site])) if site in SITE_CODES else _code("other_site")


def _component_group(comp: dict, seg, algorithm):
    import highdicom as hd

    site, side = str(comp.get("site") or "other"), comp.get("side")
    laterality = _code(("SCT", *SIDE_CODES[side])) if side in SIDE_CODES else None
    qualitative = [hd.sr.QualitativeEvaluation(_code("occlusion_site"), _site_code(site))]
    if laterality is not None:
        qualitative.append(hd.sr.QualitativeEvaluation(_code(("SCT", "272741003", "Laterality")), laterality))
    source_series = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    segment = hd.sr.ReferencedSegment(sop_class_uid=str(seg.SOPClassUID), sop_instance_uid=str(seg.SOPInstanceUID),
                                      segment_number=1,
                                      source_series=hd.sr.SourceSeriesForSegmentation(source_series))
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=f"Thrombus component {int(comp['index'])}"),
        referenced_segment=segment, finding_type=_code(("SCT", "396339007", "Thrombus")),
        algorithm_id=algorithm,
        finding_sites=[hd.sr.FindingSite(anatomic_location=_site_code(site), laterality=laterality)],
        measurements=_measurements(comp, COMPONENT_MEASUREMENTS, algorithm), qualitative_evaluations=qualitative)


def _case_group(report: dict, algorithm):
    import highdicom as hd

    call = str(report["call"]["call"])
    review = bool((report.get("review") or {}).get("review"))
    yes_no = ("373066001", "Yes") if review else ("373067005", "No")
    values = {"total_volume_mm3": report["total_volume_mm3"], "n_components": report["n_components"]}
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(identifier=CASE_TRACKING),
        finding_type=_code(("SCT", "396339007", "Thrombus")), algorithm_id=algorithm,
        measurements=_measurements(values, CASE_MEASUREMENTS, algorithm),
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(_code("lvo_call"), _code(call)),
                                 hd.sr.QualitativeEvaluation(_code("review"), _code(("SCT", *yes_no)))])


def _coding_scheme_item():
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = "nnunet_thrombus private concepts"
    item.CodingSchemeResponsibleOrganization = "nnunet_thrombus project"
    return item


def build_dicom_sr(report: dict, sources: list, seg, *, series_uid: str, sop_instance_uid: str,
                   date_shift_days: int = 0, deid=None):
    """The Comprehensive 3D SR (TID 1500) of ``report`` (a ``report.json`` dict).

    sources: the CTA source datasets the SEG was built from (headers are enough; their patient and study modules,
    de-identified or not, are copied); seg: the SEG dataset (pydicom or highdicom) whose segment 1 is the thrombus;
    series_uid / sop_instance_uid: the SR's own UIDs; date_shift_days: how far the SR's own dates move back (the
    anonymized SEG's shift; 0 keeps today) -- times then become 000000; deid: the ``DeidentifiedSources`` the
    ``sources`` come from (their shift is used and the SR is stamped de-identified), None for plain sources.
    Returns a ``highdicom.sr.Comprehensive3DSR``.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes  # pydicom's code dictionary: loaded with highdicom, when an SR is built

    if not sources:
        raise ValueError(f"case {report.get('case_id')}: no source CTA datasets for the DICOM SR")
    algorithm = hd.sr.AlgorithmIdentification(name="nnunet_thrombus cascade", version=__version__)
    device = hd.sr.DeviceObserverIdentifyingAttributes(uid=hd.UID(), manufacturer_name="nnunet_thrombus",
                                                       model_name="ThrombusCascade")
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    groups = [_case_group(report, algorithm)]
    groups += [_component_group(c, seg, algorithm) for c in report.get("components", [])]
    content = hd.sr.MeasurementReport(observation_context=context,
                                      procedure_reported=_code(("SCT", "77343006", "Angiography")),
                                      imaging_measurements=groups, title=codes.DCM.ImagingMeasurementReport)
    sr = hd.sr.Comprehensive3DSR(evidence=[*sources, seg], content=content[0], series_instance_uid=series_uid,
                                 series_number=SR_SERIES_NUMBER, sop_instance_uid=sop_instance_uid,
                                 instance_number=1, manufacturer="nnunet_thrombus", is_complete=True,
                                 is_final=False, is_verified=False, series_description=SR_SERIES_DESCRIPTION)
    sr.CodingSchemeIdentificationSequence = [_coding_scheme_item()]
    first = sources[0]
    for key in ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
                "LongitudinalTemporalInformationModified"):
        if key in first:
            setattr(sr, key, first[key].value)
    if deid is not None:
        date_shift_days = deid.shift_days
    if date_shift_days:
        _shift_own_dates(sr, date_shift_days)
    if deid is not None:
        deid.stamp(sr)
    return sr


def _shift_own_dates(sr, days: int) -> None:
    """Move the SR's creation dates back by ``days`` and blank its creation times (the anonymized SEG's rule)."""
    for date_key, time_key in (("ContentDate", "ContentTime"), ("InstanceCreationDate", "InstanceCreationTime"),
                               ("SeriesDate", "SeriesTime")):
        if date_key in sr and sr[date_key].value:
            text = str(sr[date_key].value)
            day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - datetime.timedelta(days=days)
            setattr(sr, date_key, day.strftime("%Y%m%d"))
        if time_key in sr:
            setattr(sr, time_key, "000000")

    def walk(items):
        for item in items:
            for key in ("ObservationDateTime", "DateTime"):
                if key in item and item[key].value:
                    text = str(item[key].value)
                    day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])) - datetime.timedelta(days=days)
                    setattr(item, key, day.strftime("%Y%m%d") + "000000")
            if "ContentSequence" in item:
                walk(item.ContentSequence)
    walk(sr.ContentSequence)


def write_dicom_sr(path, report: dict, sources: list, seg, *, series_uid: str | None = None,
                   sop_instance_uid: str | None = None, date_shift_days: int = 0, deid=None,
                   originals: list | None = None) -> dict:
    """Write ``build_dicom_sr`` to ``path`` (temp name, then renamed); new UIDs when none are given.

    deid / originals: the ``DeidentifiedSources`` of ``sources`` and the source headers they were made from; the
    SR is then checked against those (``deidentify.dataset_leaks``) before it is written.
    Returns {"series_uid": str, "sop_instance_uid": str, "n_components": int}."""
    import highdicom as hd

    sr = build_dicom_sr(report, sources, seg, series_uid=series_uid or hd.UID(),
                        sop_instance_uid=sop_instance_uid or hd.UID(), date_shift_days=date_shift_days, deid=deid)
    if deid is not None and originals is not None:
        where = dataset_leaks(sr, originals)
        if where:
            raise DeidentificationError("the anonymized SR would carry source values the profile removes, in "
                                        f"{', '.join(where)}; not written")
    with atomic_path(path) as tmp:
        sr.save_as(str(tmp), enforce_file_format=True)
    return {"series_uid": str(sr.SeriesInstanceUID), "sop_instance_uid": str(sr.SOPInstanceUID),
            "n_components": len(report.get("components", []))}


def write_case_sr(path, report: dict, cta_folder, seg_path, *, cta_series_uid: str | None = None,
                  anonymize: bool = False, key=None) -> dict:
    """The SR of one predicted case beside its SEG (``seg_path``), from the CTA series in ``cta_folder``
    (``cta_series_uid``: which one, as given to the SEG writer; None: the folder's only CT series).

    anonymize: the SEG was written with ``anonymize=True`` under ``key`` (a ``deidentify.DeidKey``, required then);
    the SR is built from the same minimal de-identified source copies (same case id, date shift and UID mapping),
    so it references exactly what the SEG does."""
    sources = sorted_series(cta_folder, cta_series_uid)
    seg = pydicom.dcmread(str(seg_path))
    if not anonymize:
        return write_dicom_sr(path, report, sources, seg)
    if key is None:
        raise ValueError(f"case {report.get('case_id')}: an anonymized SR needs the key its SEG was written with "
                         "(deidentify.key_for_outputs), or its references would not match the SEG")
    deid = deidentify_sources(sources, key, str(report["case_id"]))
    return write_dicom_sr(path, report, deid.datasets, seg, deid=deid, originals=sources)


def report_sr_values(report: dict) -> dict:
    """The values of ``report`` that the SR carries, in ``read_sr_values``' shape: {"case": {...}, "components":
    {"Thrombus component <index>": {...}}}; numbers as floats, site/side/call as report strings, review a bool."""
    def numbers(values: dict, table: dict) -> dict:
        return {k: float(values[k]) for k in table if _finite(values.get(k))}

    case = numbers({"total_volume_mm3": report["total_volume_mm3"], "n_components": report["n_components"]},
                   CASE_MEASUREMENTS)
    case.update(call=str(report["call"]["call"]), review=bool((report.get("review") or {}).get("review")))
    comps = {}
    for c in report.get("components", []):
        row = numbers(c, COMPONENT_MEASUREMENTS)
        row["site"] = str(c.get("site") or "other") if str(c.get("site") or "other") in SITE_CODES else "other"
        if c.get("side") in SIDE_CODES:
            row["side"] = c["side"]
        comps[f"Thrombus component {int(c['index'])}"] = row
    return {"case": case, "components": comps}


def _measurement_key(name, derivation, table: dict) -> str | None:
    for key, (concept, deriv, _unit) in table.items():
        code = _code(concept)
        want_deriv = DERIVATIONS[deriv][0] if deriv else None
        got_deriv = derivation.value if derivation is not None else None
        if name.value == code.value and name.scheme_designator == code.scheme_designator and got_deriv == want_deriv:
            return key
    return None


def read_sr_values(path) -> dict:
    """Values of an SR written by ``write_dicom_sr``, read back with highdicom (shape of ``report_sr_values``)."""
    import highdicom as hd

    sr = hd.sr.srread(str(path))
    content = sr.content
    reverse_site = {v[0]: k for k, v in SITE_CODES.items()}
    reverse_side = {v[0]: k for k, v in SIDE_CODES.items()}
    reverse_call = {PRIVATE_CODES[c][0]: c for c in ("LVO", "non-LVO occlusion", "no occlusion")}
    out = {"case": {}, "components": {}}
    for group in content.get_image_measurement_groups():
        if group.tracking_identifier != CASE_TRACKING:
            continue
        for m in group.get_measurements():
            key = _measurement_key(m.name, m.derivation, CASE_MEASUREMENTS)
            if key:
                out["case"][key] = float(m.value)
        for q in group.get_qualitative_evaluations():
            if q.name.value == PRIVATE_CODES["lvo_call"][0]:
                out["case"]["call"] = reverse_call[q.value.value]
            elif q.name.value == PRIVATE_CODES["review"][0]:
                out["case"]["review"] = q.value.value == "373066001"
    for group in content.get_volumetric_roi_measurement_groups():
        row = {}
        for m in group.get_measurements():
            key = _measurement_key(m.name, m.derivation, COMPONENT_MEASUREMENTS)
            if key:
                row[key] = float(m.value)
        for q in group.get_qualitative_evaluations():
            if q.name.value == PRIVATE_CODES["occlusion_site"][0]:
                row["site"] = reverse_site.get(q.value.value, "other")
            elif q.name.value == "272741003":
                row["side"] = reverse_side[q.value.value]
        out["components"][str(group.tracking_identifier)] = row
    return out
