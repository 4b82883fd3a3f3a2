"""The DICOM node: take CT studies from a PACS over DICOMweb, predict, store the thrombus SEG and SR back.

- ``dicomweb``: the PACS as seen through DICOMweb (QIDO-RS search, WADO-RS retrieve, STOW-RS store);
- ``study_layout``: a retrieved study's series sorted into the ``NCCT/`` + ``CTA/`` patient folder predict reads;
- ``node``: one pass (or a polling loop) over the studies: skip, retrieve, predict, store, log.
"""
