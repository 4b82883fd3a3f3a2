"""Names and numbers that several layers share, defined once (the lowest layer of the package).

Import-free apart from the standard library, so every layer (``dataset_conversion`` included) may use it.

- Occlusion sites: where a clot sits, as the site rule (:mod:`nnunet_thrombus.measure.location`), the generator,
  the converters' ``metadata.csv`` and the LVO rule name them.
- Case-level calls of the occlusion rule.
- ``POOR_DICE``: the Dice below which a segmentation counts as poor (the review flag's "bad case", the evaluation
  table's poor-case count).
- ``DEFAULT_ROI_THRESHOLD``: the fine stage's ROI threshold of a model without a fitted one (here, not in the
  calibration package, so that ``predict --help`` can name it without loading numpy).
"""
from __future__ import annotations

#: clot sites, proximal to distal: internal carotid, middle cerebral M1 and M2 segments, anterior cerebral artery
CLOT_SITES = ("ICA", "M1", "M2", "ACA")
#: the sites of a large-vessel occlusion (LVO)
LVO_SITES = ("ICA", "M1")
#: sites of smaller, distal clots
DISTAL_SITES = ("M2", "ACA")
#: metadata value of a case without a clot
NO_CLOT = "none"
#: the site rule's answer for a clot outside every site zone
OTHER_SITE = "other"
#: case-level calls of the occlusion rule
CALLS = ("no occlusion", "LVO", "non-LVO occlusion")
#: Dice below which a segmentation counts as poor (Patel/Tutino's triage cut)
POOR_DICE = 0.6
#: coarse thrombus probability above which the fine stage looks, when the model has no fitted
#: ``roi_threshold.json`` (:mod:`nnunet_thrombus.calibration.roi` applies it)
DEFAULT_ROI_THRESHOLD = 0.1


def true_call(site: str | None) -> str:
    """The case-level call a reference site implies: ``none`` or empty -> "no occlusion", ICA / M1 -> "LVO",
    any other site -> "non-LVO occlusion"."""
    site = (site or "").strip()
    if site in ("", NO_CLOT, "None"):
        return CALLS[0]
    return CALLS[1] if site in LVO_SITES else CALLS[2]
