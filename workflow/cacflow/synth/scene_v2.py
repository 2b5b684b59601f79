"""The v2 synthetic domain ("looks like real CT"): anatomy, acquisition and cohort mix, mm.

Same frame and conventions as :mod:`cacflow.synth.scene` (LPS mm; heart paths by azimuth
and elevation), whose calcification proposals (coronary, valve, aortic) v2 reuses on the
heart ellipsoid of :attr:`AnatomyV2.base`. What v2 adds, each choice calibrated to the
shared real series (``shared/data/real_ct``, README "Synthetic cohort"):

- 512-pixel matrices; a *chest* field of view (the whole body, 0.6-0.9 mm pixels) or a
  *cardiac* one (160-250 mm centred near the heart, 0.3-0.5 mm pixels, body and lungs cut
  by the image edge); padding outside the reconstruction circle;
- slice thickness 0.625-5 mm; ECG-gated (sharp coronaries) or not (motion blur);
- vendor kernels (:mod:`cacflow.synth.kernels`) with their PSF and correlated noise;
- anatomy sized like the real scans: body, lungs, heart chambers, myocardium, epicardial
  fat, pericardium, ascending aorta, arch and descending aorta, spine (cancellous core,
  cortical shell), ribs, sternum, costal cartilage (calcified in some scans); stents.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cacflow.synth import kernels as kn
from cacflow.synth import scene as sc

FOV_KINDS = ("chest", "cardiac")
DEFAULT_V2_MATRIX = 512
DEFAULT_V2_THICKNESSES_MM = (0.625, 1.0, 1.5, 2.5, 3.0, 5.0)
DEFAULT_FOV_P = {"chest": 0.5, "cardiac": 0.5}
DEFAULT_KERNEL_P = {"soft": 0.45, "medium": 0.25, "sharp": 0.15, "lung": 0.15}
DEFAULT_GATED_P = 0.5
DEFAULT_STENT_P = 0.08

# --- tissue HU (non-contrast) ---------------------------------------------------------
BLOOD_HU = 40.0  # shared series: blood pool 38-42 HU
MYOCARDIUM_HU = 48.0
EPICARDIAL_FAT_HU = -100.0
PERICARDIUM_HU = 30.0
LUNG_HU = -860.0
CANCELLOUS_HU = (200.0, 400.0)
CORTICAL_HU = (750.0, 1100.0)
CARTILAGE_HU = 110.0
CARTILAGE_CALCIUM_HU = (300.0, 800.0)
CARTILAGE_CALCIFIED_P = 0.6
STENT_HU = 14000.0
"""Intrinsic HU of stent struts; partial volume and the PSF bring the written peak to
2000-3071 HU."""

# --- geometry (mm), measured on the mid-heart slices of the shared series ---------------
CAVITY_SEMI_X_MM = (112.0, 132.0)
CAVITY_SEMI_Y_MM = (80.0, 95.0)
CHEST_WALL_MM = (8.0, 12.0)
SUBCUTANEOUS_FAT_MM = (6.0, 22.0)
"""Body width 258-332 mm (shared series: 321-326 mm)."""
HEART_SEMI_MM = ((45.0, 55.0), (39.0, 49.0), (30.0, 43.0))
"""Heart width 90-110 mm, depth 78-98 mm (measured 90-109 / 78-99), z extent 60-86 mm
(shared README: 60-85 mm)."""
HEART_OFFSET_X_MM = (8.0, 30.0)
HEART_OFFSET_Y_MM = (30.0, 45.0)
"""Heart centre to the left of and anterior to the body centre (measured 8-34 / 32-47)."""
EPICARDIAL_FAT_MM = (4.0, 8.0)
PERICARDIUM_MM = 1.5
ARCH_ABOVE_HEART_MM = (20.0, 45.0)
ARCH_HEIGHT_MM = (12.0, 20.0)
CORONARY_RADIUS_MM = {"LM": 2.0, "LAD": 1.8, "LCX": 1.6, "RCA": 1.9}
"""Proximal lumen radius of each coronary artery (non-contrast: blood HU in the fat)."""
LUNG_VESSELS = (40, 80)
LUNG_VESSEL_RADIUS_MM = (0.8, 3.5)
COVERAGE_BELOW_HEART_MM = (8.0, 20.0)
COVERAGE_ABOVE_HEART_MM = (25.0, 55.0)
CHEST_FOV_MM = (330.0, 360.0, 380.0, 400.0, 431.0, 460.0)
CARDIAC_FOV_MM = (160.0, 250.0)
CARDIAC_CENTRE_JITTER_MM = 12.0
BODY_CENTRE_Y_MM = (0.0, 30.0)
"""Body centre posterior of the reconstruction centre in a chest FOV (measured 0-31)."""
MOTION_MM = {"LM": (0.5, 1.5), "LAD": (1.0, 3.0), "LCX": (1.0, 3.0), "RCA": (2.0, 6.0)}
"""In-plane motion blur of a coronary lesion in a non-gated scan (length of the path)."""
DOSE_JITTER = (0.9, 1.1)
"""Per-scan factor on the kernel's nominal noise SD (tube current / body size)."""


@dataclass(frozen=True)
class AcquisitionMix:
    """The v2 cohort mix: chances of each field of view (``fov_p``: chest, cardiac) and
    kernel class (``kernel_p``: soft, medium, sharp, lung), the share of ECG-gated scans
    (``gated_p``) and of scans with a coronary stent (``stent_p``). ``kernels``, when not
    empty, names the only kernels to draw from (uniformly), as ``Manufacturer/Name``
    (e.g. ``Philips/B``, :data:`cacflow.synth.kernels.KERNELS`); ``kernel_p`` is then
    unused. Weights are normalised."""

    fov_p: tuple[float, ...] = tuple(DEFAULT_FOV_P.values())
    kernel_p: tuple[float, ...] = tuple(DEFAULT_KERNEL_P.values())
    gated_p: float = DEFAULT_GATED_P
    stent_p: float = DEFAULT_STENT_P
    kernels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, n in (("fov_p", len(FOV_KINDS)), ("kernel_p", len(kn.SHARPNESS_CLASSES))):
            w = tuple(float(v) for v in getattr(self, name))
            if len(w) != n or min(w) < 0 or sum(w) <= 0:
                raise ValueError(f"{name} needs {n} non-negative weights with a positive sum")
            object.__setattr__(self, name, tuple(v / sum(w) for v in w))
        for name in ("gated_p", "stent_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        object.__setattr__(self, "kernels", tuple(self.kernels))
        for spec in self.kernels:
            kernel_of_spec(spec)  # raises on an unknown name

    def key(self) -> tuple[object, ...]:
        return ("v2", *self.fov_p, *self.kernel_p, self.gated_p, self.stent_p, *self.kernels)


def kernel_of_spec(spec: str) -> kn.Kernel:
    """The kernel named ``Manufacturer/Name`` (e.g. ``SIEMENS/B35f``)."""
    maker, sep, name = spec.partition("/")
    try:
        if not sep:
            raise KeyError(spec)
        return kn.kernel_named(maker, name)
    except KeyError:
        known = ", ".join(f"{k.manufacturer}/{k.name}" for k in kn.KERNELS)
        raise ValueError(f"unknown kernel {spec!r}; known: {known}") from None


@dataclass(frozen=True)
class AnatomyV2:
    """v2 shapes (mm, LPS). ``base`` holds the heart ellipsoid (outer myocardium), aortas
    and spine in v1's terms, so v1's calcification proposals apply."""

    base: sc.Anatomy
    pericardium_mm: float
    arch_z: float
    arch_height: float
    cancellous_hu: float
    cortical_hu: float
    cartilage_calcified: bool
    chambers: tuple[tuple[np.ndarray, np.ndarray], ...] = field(default=())
    """Blood-filled chambers (centre, semi-axes), mm."""
    lung_vessels: tuple[tuple[tuple[float, float, float], tuple[float, float], float], ...] = ()
    """Pulmonary vessels: (point (x, y, z), in-plane drift (dx/dz, dy/dz), radius), mm."""


@dataclass(frozen=True)
class AcquisitionV2(sc.Acquisition):
    """v1's acquisition plus the v2 facts: field of view kind, reconstruction centre,
    gating, kernel model and the padding HU outside the reconstruction circle."""

    fov_kind: str
    centre: tuple[float, float]
    gated: bool
    kernel_model: kn.Kernel
    padding_hu: int


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def sample_anatomy(rng: np.random.Generator) -> AnatomyV2:
    """Draw a v2 anatomy (body centre at x = y = 0; the acquisition places the FOV)."""
    cav = (_u(rng, CAVITY_SEMI_X_MM), _u(rng, CAVITY_SEMI_Y_MM))
    wall, fat = _u(rng, CHEST_WALL_MM), _u(rng, SUBCUTANEOUS_FAT_MM)
    epi = _u(rng, EPICARDIAL_FAT_MM)
    semi = np.array([_u(rng, r) for r in HEART_SEMI_MM])
    hx = _u(rng, HEART_OFFSET_X_MM)
    hy = -_u(rng, HEART_OFFSET_Y_MM)
    y_min = -cav[1] + semi[1] + epi + PERICARDIUM_MM + 4.0  # clear of the anterior wall
    hy = max(hy, y_min)
    hz = float(rng.uniform(-600.0, 200.0))  # table positions of the shared series
    spine_r = _u(rng, (15.0, 19.0))
    spine = (0.0, cav[1] - 22.0)
    desc_r = _u(rng, (10.0, 13.0))
    desc = (spine[0] + 28.0, spine[1] - 26.0)
    asc_r = _u(rng, (13.0, 17.0))
    asc = (hx - 0.35 * semi[0], hy + 0.25 * semi[1])
    base = sc.Anatomy(
        body_centre=(0.0, 0.0),
        cavity_semi=cav,
        wall_mm=wall,
        fat_mm=fat,
        heart_centre=np.array([hx, hy, hz]),
        heart_semi=semi,
        epicardial_fat_mm=epi,
        spine_centre=spine,
        spine_radius=spine_r,
        vertebra_phase_mm=float(rng.uniform(0.0, sc.VERTEBRA_PITCH_MM)),
        desc_aorta_centre=desc,
        desc_aorta_radius=desc_r,
        asc_aorta_centre=asc,
        asc_aorta_radius=asc_r,
        asc_aorta_z0=hz + sc.ASCENDING_AORTA_START * semi[2],
        rib_phase_mm=float(rng.uniform(0.0, sc.RIB_PITCH_MM)),
        tissue_jitter_hu={k: float(rng.normal(0.0, 5.0)) for k in ("fat", "muscle", "blood")},
    )
    c = np.array([hx, hy, hz])
    chambers = (
        (c + semi * np.array([0.30, 0.10, -0.20]), semi * np.array([0.42, 0.45, 0.55])),  # LV
        (c + semi * np.array([-0.20, -0.40, -0.15]), semi * np.array([0.45, 0.30, 0.50])),  # RV
        (c + semi * np.array([0.05, 0.45, 0.35]), semi * np.array([0.40, 0.30, 0.35])),  # LA
        (c + semi * np.array([-0.50, 0.05, 0.15]), semi * np.array([0.30, 0.35, 0.45])),  # RA
    )
    vessels = []
    for _ in range(int(rng.integers(*LUNG_VESSELS))):
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        x = side * float(rng.uniform(0.1, 0.95)) * cav[0]
        y = float(rng.uniform(-0.8, 0.8)) * cav[1]
        drift = (float(rng.normal(0.0, 0.6)), float(rng.normal(0.0, 0.6)))
        r = float(rng.uniform(*LUNG_VESSEL_RADIUS_MM))
        vessels.append(((x, y, hz), drift, r))
    return AnatomyV2(
        base=base,
        pericardium_mm=PERICARDIUM_MM,
        arch_z=hz + semi[2] + _u(rng, ARCH_ABOVE_HEART_MM),
        arch_height=_u(rng, ARCH_HEIGHT_MM),
        cancellous_hu=_u(rng, CANCELLOUS_HU),
        cortical_hu=_u(rng, CORTICAL_HU),
        cartilage_calcified=bool(rng.uniform() < CARTILAGE_CALCIFIED_P),
        chambers=chambers,
        lung_vessels=tuple(vessels),
    )


def _choice(rng: np.random.Generator, names: tuple[str, ...], p: tuple[float, ...]) -> str:
    return names[int(rng.choice(len(names), p=np.asarray(p)))]


def sample_acquisition(
    rng: np.random.Generator,
    anat: AnatomyV2,
    thickness_mm: float,
    matrix: int,
    mix: AcquisitionMix,
) -> AcquisitionV2:
    """Scanner, kernel, field of view, gating and the grid covering the heart with margins."""
    if mix.kernels:
        kernel = kernel_of_spec(mix.kernels[int(rng.integers(len(mix.kernels)))])
        sharpness, manufacturer = kernel.sharpness, kernel.manufacturer
    else:
        sharpness = _choice(rng, kn.SHARPNESS_CLASSES, mix.kernel_p)
        vendors = tuple(kn.SCANNER_MODELS)
        manufacturer = vendors[int(rng.integers(len(vendors)))]
        options = kn.kernels_of(manufacturer, sharpness)
        kernel = options[int(rng.integers(len(options)))]
    models = kn.SCANNER_MODELS[manufacturer]
    model = models[int(rng.integers(len(models)))]
    fov_kind = _choice(rng, FOV_KINDS, mix.fov_p)
    gated = bool(rng.uniform() < mix.gated_p)
    base = anat.base
    if fov_kind == "chest":
        fov = float(CHEST_FOV_MM[int(rng.integers(len(CHEST_FOV_MM)))])
        centre = (round(float(rng.uniform(-10.0, 10.0)), 1), round(-_u(rng, BODY_CENTRE_Y_MM), 1))
    else:
        fov = round(_u(rng, CARDIAC_FOV_MM), 1)
        j = rng.uniform(-CARDIAC_CENTRE_JITTER_MM, CARDIAC_CENTRE_JITTER_MM, size=2)
        centre = (
            round(float(base.heart_centre[0] + j[0]), 1),
            round(float(base.heart_centre[1] + j[1]), 1),
        )
    pixel = round(fov / matrix, 6)
    x0 = round(centre[0] - (matrix - 1) / 2.0 * pixel, 3)
    y0 = round(centre[1] - (matrix - 1) / 2.0 * pixel, 3)
    hz, az = base.heart_centre[2], base.heart_semi[2]
    z_lo = hz - az - _u(rng, COVERAGE_BELOW_HEART_MM)
    z_hi = hz + az + _u(rng, COVERAGE_ABOVE_HEART_MM)
    n = int(np.floor((z_hi - z_lo) / thickness_mm)) + 1
    noise = kernel.noise_sd_hu(thickness_mm) * _u(rng, DOSE_JITTER)
    order = sc.INSTANCE_ORDERS[int(rng.choice(len(sc.INSTANCE_ORDERS), p=sc.INSTANCE_ORDER_P))]
    return AcquisitionV2(
        manufacturer=manufacturer,
        model=model,
        kernel=kernel.name,
        sharpness=sharpness,
        noise_sd_hu=round(noise, 2),
        thickness_mm=float(thickness_mm),
        matrix=int(matrix),
        fov_mm=fov,
        pixel_mm=pixel,
        origin=(x0, y0, round(z_lo, 2)),
        n_slices=n,
        instance_order=order,
        fov_kind=fov_kind,
        centre=centre,
        gated=gated,
        kernel_model=kernel,
        padding_hu=kn.PADDING_HU_OF[manufacturer],
    )


def propose_stent(rng: np.random.Generator, anatomy: sc.Anatomy) -> sc.Calcification:
    """A coronary stent (label STENT): a thin tube 8-18 mm long on a proximal LAD, LCX or
    RCA segment; :mod:`cacflow.synth.phantom_v2` renders its wall only."""
    label = ("LAD", "LCX", "RCA")[int(rng.integers(3))]
    s = float(rng.uniform(0.05, 0.4))
    centre, axes = sc.path_frame(anatomy, label, s, 0.0)
    semi = np.array([_u(rng, (4.0, 9.0)), 1.5, 1.5])
    return sc.Calcification("STENT", centre, axes, semi, STENT_HU, False)


def propose_arch(rng: np.random.Generator, anat: AnatomyV2) -> sc.Calcification:
    """An aortic-arch wall calcification (label TAC) on the top of the arch."""
    b = anat.base
    t = float(rng.uniform(0.2, 0.8))
    ax, ay = b.asc_aorta_centre
    dx, dy = b.desc_aorta_centre
    theta = np.pi * t
    mx, my = (ax + dx) / 2.0, (ay + dy) / 2.0
    ux, uy = (ax - mx), (ay - my)
    cx, cy = mx + ux * np.cos(theta), my + uy * np.cos(theta)
    cz = anat.arch_z + anat.arch_height * np.sin(theta)
    r = 0.5 * (b.asc_aorta_radius + b.desc_aorta_radius)
    centre = np.array([cx, cy, cz + r])
    axes = np.eye(3)
    semi = np.array([_u(rng, (1.0, 3.0)), _u(rng, (1.0, 3.0)), _u(rng, (0.8, 1.5))])
    return sc.Calcification("TAC", centre, axes, semi, _u(rng, sc.TAC_PEAK_HU), False)
