"""cacflow: coronary artery calcium scoring from DICOM to study tables."""

from __future__ import annotations

from cacflow._version import __version__

__all__ = ["__version__"]
