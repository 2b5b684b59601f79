"""Reconstruction kernels of the v2 synthetic domain: resolution (MTF / PSF) and noise.

A kernel is modelled by its modulation transfer function in the axial plane,
``MTF(f) = (1 + e u) exp(-u)`` with ``u = (f / fc)^2`` (``f`` in cycles/mm): ``fc`` sets
the resolution, ``e`` > 0 lifts mid frequencies above 1, which gives sharp and lung
kernels their edge overshoot. Filtered back-projection noise has the noise power spectrum
``NPS(f) ~ f MTF(f)^2`` (ramp times kernel squared): white Gaussian noise filtered by
``sqrt(NPS)`` has the texture of the kernel, and is scaled to the kernel's standard
deviation in homogeneous tissue, ``sd_ref_hu`` at slice thickness ``t_ref_mm``; the SD
scales as ``sqrt(t_ref / t)`` with the slice thickness ``t``.

Calibration (README "Synthetic cohort", measured on shared/data/real_ct): ``fc`` of the
measured kernels is chosen so that the neighbour autocorrelation of the noise at the
series' pixel size equals the one measured in a blood ROI; ``sd_ref_hu`` is the measured
SD. Kernels marked ``measured=False`` take their class's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft as sfft

SHARPNESS_CLASSES = ("soft", "medium", "sharp", "lung")
"""Kernel classes of the v2 domain, softest first."""


@dataclass(frozen=True)
class Kernel:
    """One vendor kernel: name as written in ConvolutionKernel, class, MTF parameters
    (``fc_per_mm``, ``enhance``) and noise SD ``sd_ref_hu`` (HU) at ``t_ref_mm``."""

    manufacturer: str
    name: str
    sharpness: str
    fc_per_mm: float
    enhance: float
    sd_ref_hu: float
    t_ref_mm: float
    measured: bool = False

    def noise_sd_hu(self, thickness_mm: float) -> float:
        """Nominal noise SD (HU) in homogeneous tissue at ``thickness_mm``."""
        return self.sd_ref_hu * float(np.sqrt(self.t_ref_mm / thickness_mm))


# Class defaults (not measured here): SD at 5 mm and MTF parameters near the measured
# kernels of the class (soft: B 6.2; medium: B40f 14.2; sharp: D 10.6 -- bone kernels are
# noisier; lung: L 40.3, B70f 53.8, all HU at 5 mm).
_CLASS = {
    "soft": (0.36, 0.0, 6.5),
    "medium": (0.46, 0.2, 12.0),
    "sharp": (0.52, 0.8, 20.0),
    "lung": (0.45, 1.5, 40.0),
}


def _k(manufacturer: str, name: str, sharpness: str) -> Kernel:
    fc, e, sd = _CLASS[sharpness]
    return Kernel(manufacturer, name, sharpness, fc, e, sd, 5.0)


KERNELS: tuple[Kernel, ...] = (
    # measured on shared/data/real_ct (blood ROI, see README): SD and neighbour correlation
    Kernel("Philips", "B", "soft", 0.348, 0.0, 6.2, 5.0, True),  # A0001 5 mm: 6.2 HU, rho1 .51
    Kernel("Philips", "D", "sharp", 0.434, 0.5, 23.6, 1.0, True),  # LIDC 1 mm: 23.6, rho1 .26
    Kernel("Philips", "L", "lung", 0.424, 1.5, 40.3, 5.0, True),  # A0001 5 mm: 40.3, rho1 .09
    Kernel("SIEMENS", "B40f", "medium", 0.507, 0.0, 11.2, 8.0, True),  # A0002 8 mm: 11.2, .43
    Kernel("SIEMENS", "B70f", "lung", 0.587, 1.5, 42.5, 8.0, True),  # A0002 8 mm: 42.5, .05
    # class values (not measured)
    _k("Philips", "XCA", "soft"),
    _k("Philips", "C", "medium"),
    _k("SIEMENS", "B35f", "soft"),
    _k("SIEMENS", "B30f", "soft"),
    _k("SIEMENS", "B60f", "sharp"),
    _k("GE MEDICAL SYSTEMS", "SOFT", "soft"),
    _k("GE MEDICAL SYSTEMS", "STANDARD", "medium"),
    _k("GE MEDICAL SYSTEMS", "BONE", "sharp"),
    _k("GE MEDICAL SYSTEMS", "LUNG", "lung"),
    _k("TOSHIBA", "FC12", "soft"),
    _k("TOSHIBA", "FC18", "medium"),
    _k("TOSHIBA", "FC30", "sharp"),
    _k("TOSHIBA", "FC52", "lung"),
)

SCANNER_MODELS = {
    "Philips": ("Brilliance 16P", "iCT 256", "Brilliance 64"),
    "SIEMENS": ("Sensation 10", "SOMATOM Definition AS+", "SOMATOM Force"),
    "GE MEDICAL SYSTEMS": ("LightSpeed VCT", "Revolution CT", "Discovery CT750 HD"),
    "TOSHIBA": ("Aquilion ONE", "Aquilion PRIME"),
}
PADDING_HU_OF = {"Philips": -1024, "SIEMENS": -2048, "GE MEDICAL SYSTEMS": -2048, "TOSHIBA": -2048}
"""HU that each vendor writes outside the reconstruction circle (PixelPaddingValue)."""


def kernels_of(manufacturer: str, sharpness: str) -> list[Kernel]:
    return [k for k in KERNELS if k.manufacturer == manufacturer and k.sharpness == sharpness]


def kernel_named(manufacturer: str, name: str) -> Kernel:
    for k in KERNELS:
        if k.manufacturer == manufacturer and k.name == name:
            return k
    raise KeyError(f"no kernel {name!r} of {manufacturer!r}")


def mtf(kernel: Kernel, f_per_mm: np.ndarray) -> np.ndarray:
    """Modulation transfer function at spatial frequencies ``f_per_mm`` (cycles/mm)."""
    u = (np.asarray(f_per_mm, dtype=np.float64) / kernel.fc_per_mm) ** 2
    return (1.0 + kernel.enhance * u) * np.exp(-u)


def _radial_freq(n_y: int, n_x: int, pixel_mm: float, real: bool) -> np.ndarray:
    fy = np.fft.fftfreq(n_y, d=pixel_mm)
    fx = np.fft.rfftfreq(n_x, d=pixel_mm) if real else np.fft.fftfreq(n_x, d=pixel_mm)
    return np.hypot(fy[:, None], fx[None, :])


@lru_cache(maxsize=32)
def noise_filter(kernel: Kernel, n_y: int, n_x: int, pixel_mm: float) -> np.ndarray:
    """rfft2-domain amplitude filter (float32, (n_y, n_x // 2 + 1)) that turns unit white
    noise into noise of unit SD with the kernel's NPS."""
    full = np.sqrt(_radial_freq(n_y, n_x, pixel_mm, real=False)) * mtf(
        kernel, _radial_freq(n_y, n_x, pixel_mm, real=False)
    )
    scale = 1.0 / np.sqrt(np.mean(full**2))
    f = _radial_freq(n_y, n_x, pixel_mm, real=True)
    return (np.sqrt(f) * mtf(kernel, f) * scale).astype(np.float32)


@lru_cache(maxsize=32)
def resolution_filter(kernel: Kernel, n_y: int, n_x: int, pixel_mm: float) -> np.ndarray:
    """rfft2-domain MTF (float32) of the kernel on an (n_y, n_x) grid of ``pixel_mm``."""
    return mtf(kernel, _radial_freq(n_y, n_x, pixel_mm, real=True)).astype(np.float32)


def psf_kernel(kernel: Kernel, pixel_mm: float, half_px: int | None = None) -> np.ndarray:
    """In-plane point-spread function (float64, (2h+1, 2h+1), sums to 1) on the pixel grid:
    the inverse transform of the MTF, cropped to ``half_px`` (default: 3 mm)."""
    h = half_px if half_px is not None else max(2, int(np.ceil(3.0 / pixel_mm)))
    n = 4 * h + 8
    spec = mtf(kernel, _radial_freq(n, n, pixel_mm, real=False))
    psf = np.fft.fftshift(np.real(np.fft.ifft2(spec)))
    c = n // 2
    out = psf[c - h : c + h + 1, c - h : c + h + 1]
    return out / out.sum()


_CHUNK = 16
"""Slices transformed together (memory vs. call overhead)."""


def _filtered(stack: np.ndarray, filt: np.ndarray) -> np.ndarray:
    """Each slice of ``stack`` ((n, y, x), float32) filtered by the rfft2-domain ``filt``."""
    shape = stack.shape[1:]
    spec = sfft.rfft2(stack, axes=(-2, -1), workers=1)
    spec *= filt
    return sfft.irfft2(spec, s=shape, axes=(-2, -1), workers=1).astype(np.float32)


def add_correlated_noise(
    rng: np.random.Generator, img: np.ndarray, kernel: Kernel, pixel_mm: float, sd_hu: float
) -> None:
    """Add kernel-textured Gaussian noise of SD ``sd_hu`` (HU) to ``img`` ((z, y, x),
    float32) in place, slice by slice (in-plane correlation; slices independent)."""
    _, n_y, n_x = img.shape
    filt = noise_filter(kernel, n_y, n_x, pixel_mm) * np.float32(sd_hu)
    for k0 in range(0, img.shape[0], _CHUNK):
        k1 = min(k0 + _CHUNK, img.shape[0])
        white = rng.standard_normal((k1 - k0, n_y, n_x), dtype=np.float32)
        img[k0:k1] += _filtered(white, filt)


def blur_inplane(img: np.ndarray, kernel: Kernel, pixel_mm: float) -> None:
    """Apply the kernel's MTF to every axial slice of ``img`` ((z, y, x), float32) in place.

    The image is treated as periodic; callers pad with air far from the edge or accept the
    wrap of a few mm at the border."""
    _, n_y, n_x = img.shape
    filt = resolution_filter(kernel, n_y, n_x, pixel_mm)
    for k0 in range(0, img.shape[0], _CHUNK):
        k1 = min(k0 + _CHUNK, img.shape[0])
        img[k0:k1] = _filtered(img[k0:k1], filt)
