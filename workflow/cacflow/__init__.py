"""cacflow: coronary artery calcium scoring from DICOM to study tables."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs ~65 ms, paid by every step otherwise.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("cacflow")
        except PackageNotFoundError:  # a source tree without installation
            return "0.0.0+unknown"
    raise AttributeError(f"module 'cacflow' has no attribute {name!r}")
