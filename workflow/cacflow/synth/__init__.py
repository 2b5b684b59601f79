"""Synthetic chest-CT cohort: real DICOM series, point annotations and the exact truth.

Modules: :mod:`~cacflow.synth.scene` (what is where, mm), :mod:`~cacflow.synth.phantom`
(voxels and noise), :mod:`~cacflow.synth.truth` (exact scores),
:mod:`~cacflow.synth.dicomwriter` (files), :mod:`~cacflow.synth.cohort` (the cohort).
"""

from cacflow.synth.cohort import CohortMix, generate_cohort, plan_cohort, synth_scan
from cacflow.synth.dicomwriter import FAKE_NAME_MARKER, FAKE_PHYSICIAN_MARKER, fake_identity

__all__ = [
    "CohortMix",
    "FAKE_NAME_MARKER",
    "FAKE_PHYSICIAN_MARKER",
    "fake_identity",
    "generate_cohort",
    "plan_cohort",
    "synth_scan",
]
