"""DICOM ingestion: discover (headers) -> group into series -> QC -> NIfTI volumes.

- :mod:`cacflow.dicom.discover`: header-only walk of a folder, the series manifest, batches.
- :mod:`cacflow.dicom.grouping`: series keys (``<UID>_<k>``) and header-level exclusions.
- :mod:`cacflow.dicom.read`: what a file is, one-read slices, stored values to HU.
- :mod:`cacflow.dicom.qc`: slice order, gaps, duplicates, tilt (``QcConfig``).
- :mod:`cacflow.dicom.convert`: volumes and the scans table.
- :mod:`cacflow.dicom.write`: writing CT series (tests, benchmarks, synthetic data).
"""
