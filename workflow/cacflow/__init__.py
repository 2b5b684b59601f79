"""cacflow: coronary artery calcium scoring from DICOM to study tables."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cacflow")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
