"""Scoring methods: one module (or package) per method, each turning an HU volume (axis
order (z, y, x)) into a label mask (uint8, :class:`cacflow.conventions.Label` values) that
the scoring engine scores exactly like the reference standard.

- ``hu-threshold`` (:mod:`cacflow.methods.hu_threshold`): classical baseline, no training,
  no annotations; ``predict_mask(vol, threshold_hu)``.

The pipeline imports method modules lazily, so importing this package is cheap.
"""
