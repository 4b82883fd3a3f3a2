"""Synthetic paired NCCT + CTA head phantoms with known intracranial thrombi.

numpy / scipy / SimpleITK / pydicom only (no torch). Entry points:

- :func:`nnunet_thrombus.synthetic.phantom.generate_case` -> one :class:`SyntheticCase` in memory;
- :func:`nnunet_thrombus.synthetic.cohort.write_cohort` -> raw DICOM/NIfTI folders + an nnU-Net raw dataset.

The anatomy is built in continuous millimetre coordinates (ellipsoidal shells, spline centrelines),
so the presets in :mod:`.presets` change only the sampling grid (spacing, field of view, head scale).
See ``docs/synthetic_data.md``.
"""
