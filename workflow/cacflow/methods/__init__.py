"""Scoring methods: one module (or package) per method, each turning an HU volume (axis
order (z, y, x)) into a label mask (uint8, :class:`cacflow.conventions.Label` values) that
the scoring engine scores exactly like the reference standard.

- ``hu-threshold`` (:mod:`cacflow.methods.hu_threshold`): classical baseline, no training,
  no annotations; ``predict_mask(vol, threshold_hu)``.

The pipeline imports method modules lazily, so importing this package is cheap.
"""

TRAINING_DOMAIN: dict[str, str] = {
    "hu-threshold": (
        "no training; its anatomical rules were set on the synthetic v1 phantom and on the "
        "five shared real CAC-free chest CTs (LIDC-IDRI-0314, Lung-PET-CT-Dx A0001/A0002), "
        "so its figures on those series are not independent evidence"
    ),
    "direct": (
        "trained on synthetic CT and real backgrounds with inserted calcium (see "
        "resources/models/MODEL_CARD.md for the exact mix); never on real annotated "
        "calcium: retrain with `train_direct` on your own annotated scans"
    ),
}
"""What each method learnt from, as the report states it beside its figures."""
