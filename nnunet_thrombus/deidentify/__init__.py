"""De-identification by allow-list, after DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile).

Two ideas, each with one owner here:

- **Allow-list.** A DICOM writer (the SEG, any other object derived from a CT series) is fed *minimal copies* of
  the source headers (``deidentify_sources``): geometry and pixel description copied, patient and study identity
  replaced as the profile says, and nothing else. Every attribute not named in ``GEOMETRY_KEYWORDS`` /
  ``IDENTITY_ACTIONS`` (private tags, free text, request sequences, equipment, operators, ...) is absent by
  construction, so a scanner or RIS attribute nobody listed cannot slip through.
- **Secret-keyed mapping.** ``DeidKey`` holds a random secret; new UIDs and the date shift are HMAC-SHA256 values
  of that secret, so the same source UID maps to the same new UID under one key (a SEG still references the same
  de-identified study across runs), and nobody without the key can recompute the mapping from a case id. Keep the
  key file to re-link outputs to their sources; delete it to make the link one-way.

Non-DICOM outputs (reports, tables, logs) take no header value by design; ``identifying_values`` lists the values
the profile acts on in the source headers so that ``redact`` / ``redact_tree`` / ``leaked_values`` can prove it
(and scrub free text such as error messages). Writers call ``DeidentifiedSources.stamp`` on their finished
dataset to record the profile and options applied (PS3.16 CID 7050 codes).

Modules: ``profile`` (the tables), ``key`` (secret, UIDs, date shift, key file), ``sources`` (minimal copies for
DICOM writers), ``text`` (identifying values, redaction, leak check, per-case refusals). Import from here.

Out of scope, and refused rather than passed: pixel data with burned-in text (``refuse_burned_in``: a source
flagged ``BurnedInAnnotation`` YES, or a secondary capture).
"""
from __future__ import annotations

from nnunet_thrombus.deidentify.errors import DeidentificationError
from nnunet_thrombus.deidentify.key import (DATE_SHIFT_DAYS, KEY_FILE_NAME, DeidKey, key_for_outputs, load_key, new_key,
                                            patient_identity, shift_date)
from nnunet_thrombus.deidentify.profile import (BASIC_PROFILE, FUNCTIONAL_GROUPS_KEEP, GEOMETRY_KEYWORDS,
                                                IDENTITY_ACTIONS, PROFILE_CODES)
from nnunet_thrombus.deidentify.sources import DeidentifiedSources, deidentify_sources, minimal_source, refuse_burned_in
from nnunet_thrombus.deidentify.text import (MIN_REDACT_LENGTH, REDACTED, check_case_sources, dataset_leaks,
                                             identifying_values, leaked_values, redact, redact_tree)

__all__ = ["BASIC_PROFILE", "DATE_SHIFT_DAYS", "FUNCTIONAL_GROUPS_KEEP", "GEOMETRY_KEYWORDS", "IDENTITY_ACTIONS",
           "KEY_FILE_NAME", "MIN_REDACT_LENGTH", "PROFILE_CODES", "REDACTED", "DeidKey", "DeidentificationError",
           "DeidentifiedSources", "check_case_sources", "dataset_leaks", "deidentify_sources", "identifying_values",
           "key_for_outputs", "leaked_values", "load_key", "minimal_source", "new_key", "patient_identity", "redact",
           "redact_tree", "refuse_burned_in", "shift_date"]
