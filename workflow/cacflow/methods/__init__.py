"""Scoring methods: one module (or package) per method, each turning an HU volume (axis
order (z, y, x)) into a label mask (uint8, :class:`cacflow.conventions.Label` values) that
the scoring engine scores exactly like the reference standard.

Every method is an entry of :data:`cacflow.methods.registry.METHODS` (name, output
kind, weights, GPU, entry points, training domain); :func:`run_method` runs one by name.
Method modules are imported lazily, so importing this package is cheap (no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_method(
    method: str,
    images: Path,
    out_dir: Path,
    scoring: dict[str, Any],
    *,
    model: Path | None = None,
    device: str = "auto",
    settings: dict[str, Any] | None = None,
) -> int:
    """Run registered method ``method`` (:mod:`cacflow.methods.registry`) on every analysis
    volume of ``images`` into ``out_dir``; returns the number of series."""
    from cacflow.methods.registry import get

    infer = get(method).entry("infer")
    return int(
        infer(images, out_dir, scoring=scoring, model=model, device=device, settings=settings)
    )
