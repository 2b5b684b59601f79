"""Synthetic chest-CT cohort: real DICOM series, point annotations and the exact truth.

Domains: ``v1`` (default, the fast phantom) and ``v2`` (the look of real CT:
:mod:`~cacflow.synth.scene_v2`, :mod:`~cacflow.synth.phantom_v2`,
:mod:`~cacflow.synth.kernels`).
Modules: :mod:`~cacflow.synth.scene` (what is where, mm), :mod:`~cacflow.synth.phantom`
(voxels and noise), :mod:`~cacflow.synth.truth` (exact scores),
:mod:`~cacflow.synth.dicomwriter` (files), :mod:`~cacflow.synth.cohort` (the cohort).
"""

from cacflow.synth.cohort import DOMAINS, CohortMix, generate_cohort, plan_cohort, synth_scan
from cacflow.synth.dicomwriter import FAKE_NAME_MARKER, FAKE_PHYSICIAN_MARKER, fake_identity
from cacflow.synth.scene_v2 import AcquisitionMix

__all__ = [
    "AcquisitionMix",
    "DOMAINS",
    "CohortMix",
    "FAKE_NAME_MARKER",
    "FAKE_PHYSICIAN_MARKER",
    "fake_identity",
    "generate_cohort",
    "plan_cohort",
    "synth_scan",
]
