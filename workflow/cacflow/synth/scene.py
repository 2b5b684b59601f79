"""What a synthetic scan holds and where: anatomy, acquisition and calcifications, in mm.

A scene is drawn from a random generator (``numpy.random.Generator``) and holds no voxels;
:mod:`cacflow.synth.phantom` samples it on a voxel grid. Positions are mm in the DICOM
patient frame (LPS: x to the patient's left, y to the posterior, z to the head). The
reconstruction centre of every scan is x = y = 0; the body sits near it.

Anatomy, from the outside in: air, subcutaneous fat, chest-wall muscle with ribs and the
sternum, the thoracic cavity (mediastinal fat) holding both lungs, the liver dome, the
descending aorta beside the spine, the heart (an ellipsoid in a shell of epicardial fat)
with the ascending aorta rising from its base. Calcifications are ellipsoids: coronary
lesions on four paths over the heart surface (LM, LAD, LCX, RCA), and non-coronary ones
that must not count as coronary calcium: aortic-wall calcifications (label TAC, on the
descending aorta and on the ascending aorta above the heart), aortic-valve calcifications
(AV, on the aortic root inside the heart) and mitral-annulus calcifications (MV, under the
heart surface at the posterior-left base, near the LCX).

The coronary paths follow the usual anatomy relative to the heart centre, measured as the
azimuth ``phi`` in the axial plane (0 deg = patient's left, -90 deg = anterior, +90 deg =
posterior, +-180 deg = right) and the elevation ``t`` (-1 apex end .. +1 base end):
LM leaves the aortic root to the anterior-left, LAD runs down the anterior-left side to
the apex, LCX runs round the left side to the posterior, RCA runs round the right side.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- tissue HU (nominal, before noise) --------------------------------------------------
AIR_HU = -1000.0
SUBCUTANEOUS_FAT_HU = -100.0
MUSCLE_HU = 45.0
MEDIASTINAL_FAT_HU = -90.0
EPICARDIAL_FAT_HU = -80.0
LUNG_HU = -850.0
LIVER_HU = 58.0
BLOOD_HU = 40.0
MYOCARDIUM_HU = 45.0
SPINAL_CANAL_HU = 20.0
DISC_HU = 80.0
CANCELLOUS_BONE_HU = 260.0
CORTICAL_BONE_HU = 550.0
STERNUM_HU = 380.0
RIB_HU = 450.0

# --- geometry (mm) ----------------------------------------------------------------------
FOV_CHOICES_MM = (320.0, 330.0, 340.0, 350.0, 360.0, 370.0, 380.0, 400.0)
"""Reconstruction diameters; a scan takes the smallest that holds its body plus a margin."""
FOV_MARGIN_MM = 12.0
CAVITY_SEMI_X_MM = (118.0, 138.0)
CAVITY_SEMI_Y_MM = (90.0, 102.0)
CHEST_WALL_MM = (10.0, 14.0)
SUBCUTANEOUS_FAT_MM = (6.0, 20.0)
BODY_SHIFT_MM = 8.0
"""Largest shift of the body centre from the reconstruction centre, per in-plane axis."""
HEART_SEMI_MM = ((50.0, 58.0), (34.0, 40.0), (44.0, 52.0))
"""Ranges of the heart ellipsoid's semi-axes along x, y, z."""
HEART_X_OFFSET_MM = (6.0, 16.0)
"""Heart centre to the patient's left of the body centre."""
EPICARDIAL_FAT_MM = (6.0, 8.0)
HEART_GAP_MM = 8.0
"""Least clearance between the epicardial fat and the chest wall or the descending aorta."""
SPINE_RADIUS_MM = (15.0, 18.0)
SPINE_DEPTH_MM = 20.0
"""Vertebral body centre, anterior to the posterior cavity border."""
VERTEBRA_PITCH_MM = 27.0
DISC_MM = 5.0
DESCENDING_AORTA_RADIUS_MM = (10.0, 12.0)
DESCENDING_AORTA_OFFSET_MM = (30.0, -24.0)
"""Descending aorta centre relative to the vertebral body centre (x left, y anterior < 0)."""
ASCENDING_AORTA_RADIUS_MM = (13.0, 16.0)
ASCENDING_AORTA_OFFSET_MM = (-14.0, 4.0)
"""Ascending aorta centre relative to the heart centre (x, y)."""
ASCENDING_AORTA_START = 0.2
"""The ascending aorta starts this fraction of the heart's z semi-axis above its centre."""
RIB_RADIUS_MM = 4.5
RIB_PITCH_MM = 26.0
RIB_DROP_MM = 70.0
"""A rib descends this far (z) from its posterior to its anterior end."""
RIB_ANGLES_DEG = (68.0, -58.0)
"""Azimuth of a left rib at its posterior and anterior end; right ribs are mirrored."""
COVERAGE_BELOW_HEART_MM = (8.0, 14.0)
COVERAGE_ABOVE_HEART_MM = (24.0, 30.0)
"""Scan range below the heart's lower pole and above its upper pole."""

# --- calcifications ---------------------------------------------------------------------
CORONARY_OFFSET_MM = 3.0
"""Coronary lesion centres lie this far outside the heart surface (in the epicardial fat)."""
PATHS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    # label: ((phi start, phi end) deg, (t start, t end))
    "LM": ((-102.0, -72.0), (0.66, 0.62)),
    "LAD": ((-70.0, -52.0), (0.58, -0.72)),
    "LCX": ((-36.0, 74.0), (0.58, 0.28)),
    "RCA": ((-124.0, -242.0), (0.60, -0.30)),
}
PATH_JITTER_DEG = 5.0
CORONARY_LABELS = ("LM", "LAD", "LCX", "RCA")
CORONARY_LABEL_P = (0.07, 0.38, 0.22, 0.33)
"""Share of coronary lesions per label."""
PEAK_BANDS_HU = ((135.0, 199.0), (200.0, 299.0), (300.0, 399.0), (400.0, 1000.0))
"""Nominal peak HU is drawn from one of the four Agatston weight bands, chosen uniformly."""
SEVERITIES: dict[str, tuple[tuple[int, int], tuple[float, float], tuple[float, float]]] = {
    # name: ((least, most) coronary lesions, semi-axis range along the vessel (mm),
    #        semi-axis range across it (mm))
    "mild": ((1, 3), (0.6, 2.0), (0.6, 1.5)),
    "moderate": ((3, 6), (0.8, 3.5), (0.6, 2.5)),
    "severe": ((6, 10), (1.5, 5.0), (0.8, 3.0)),
    "extensive": ((10, 16), (2.5, 7.0), (1.2, 3.5)),
}
SEVERITY_P = (0.3, 0.3, 0.25, 0.15)
TAC_PER_SCAN = (0, 6)
TAC_SEMI_MM = (1.0, 3.0)
TAC_PEAK_HU = (220.0, 800.0)
TAC_ANGLES_DEG = (-50.0, 40.0)
"""Azimuths (around the descending aorta's axis) where its wall calcifies: away from the
spine and the heart."""
TAC_ABOVE_HEART_MM = 8.0
"""Ascending-aorta calcifications lie at least this far above the heart's upper pole."""
VALVE_P = {"AV": 0.25, "MV": 0.15}
"""Share of scans with aortic-valve (AV) and mitral-annulus (MV) calcification."""
VALVE_PER_SCAN = {"AV": (1, 3), "MV": (1, 2)}
VALVE_PEAK_HU = (250.0, 900.0)
AV_RADIUS_FRACTION = 0.55
"""Aortic-valve calcifications lie on a ring of this fraction of the aortic radius."""
MV_AZIMUTH_DEG = (10.0, 60.0)
MV_ELEVATION = (0.15, 0.40)
MV_DEPTH_MM = (8.0, 12.0)
"""Mitral-annulus calcifications lie this deep inside the heart surface, posterior-left."""
NONCORONARY_ANNOTATED_P = {"TAC": 0.4, "AV": 0.6, "MV": 0.6}
"""Share of scans whose non-coronary calcifications of a kind get annotation points."""

# --- acquisition ------------------------------------------------------------------------
SCANNERS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    # manufacturer, model, ((kernel, sharpness), ...)
    ("SIEMENS", "SOMATOM Force", (("Qr36d", "soft"), ("B35f", "soft"), ("Br40d", "medium"))),
    ("SIEMENS", "SOMATOM Definition AS+", (("B30f", "soft"), ("B45f", "medium"))),
    ("GE MEDICAL SYSTEMS", "Revolution CT", (("STANDARD", "medium"), ("SOFT", "soft"))),
    ("GE MEDICAL SYSTEMS", "LightSpeed VCT", (("STANDARD", "medium"), ("DETAIL", "sharp"))),
    ("TOSHIBA", "Aquilion ONE", (("FC12", "soft"), ("FC03", "soft"), ("FC52", "sharp"))),
    ("Philips", "iCT 256", (("B", "medium"), ("C", "sharp"), ("XCA", "soft"))),
)
NOISE_SD_HU = {"soft": (10.0, 14.0), "medium": (14.0, 19.0), "sharp": (19.0, 25.0)}
NOISE_SMOOTHING_PX = {"soft": 0.9, "medium": 0.5, "sharp": 0.0}
"""In-plane Gaussian sigma (pixels) that correlates the noise of softer kernels."""
INSTANCE_ORDERS = ("descending_z", "ascending_z", "shuffled")
INSTANCE_ORDER_P = (0.5, 0.25, 0.25)
"""How InstanceNumber runs: head to feet (the usual), feet to head, or shuffled."""


@dataclass(frozen=True)
class Calcification:
    """An ellipsoidal calcification.

    centre: mm, LPS. axes: 3x3, columns are the unit principal axes (LPS).
    semi_mm: semi-axis lengths along those columns. peak_hu: nominal HU at the centre.
    label: LM, LAD, LCX, RCA (coronary), TAC (aortic wall), AV (aortic valve) or MV
    (mitral annulus). annotated: gets a point.
    """

    label: str
    centre: np.ndarray
    axes: np.ndarray
    semi_mm: np.ndarray
    peak_hu: float
    annotated: bool


@dataclass(frozen=True)
class Anatomy:
    """Shapes of the phantom, mm, LPS. Ellipses/ellipsoids are axis-aligned."""

    body_centre: tuple[float, float]
    cavity_semi: tuple[float, float]
    wall_mm: float
    fat_mm: float
    heart_centre: np.ndarray
    heart_semi: np.ndarray
    epicardial_fat_mm: float
    spine_centre: tuple[float, float]
    spine_radius: float
    vertebra_phase_mm: float
    desc_aorta_centre: tuple[float, float]
    desc_aorta_radius: float
    asc_aorta_centre: tuple[float, float]
    asc_aorta_radius: float
    asc_aorta_z0: float
    rib_phase_mm: float
    tissue_jitter_hu: dict[str, float] = field(default_factory=dict)

    @property
    def body_semi(self) -> tuple[float, float]:
        d = self.wall_mm + self.fat_mm
        return (self.cavity_semi[0] + d, self.cavity_semi[1] + d)

    @property
    def muscle_semi(self) -> tuple[float, float]:
        return (self.cavity_semi[0] + self.wall_mm, self.cavity_semi[1] + self.wall_mm)


@dataclass(frozen=True)
class Acquisition:
    """Scanner, reconstruction and grid. Pixel spacing and origin are exact DS decimals."""

    manufacturer: str
    model: str
    kernel: str
    sharpness: str
    noise_sd_hu: float
    thickness_mm: float
    matrix: int
    fov_mm: float
    pixel_mm: float
    origin: tuple[float, float, float]
    n_slices: int
    instance_order: str


@dataclass(frozen=True)
class Scene:
    """One synthetic scan: anatomy, acquisition and calcifications (mm, LPS)."""

    anatomy: Anatomy
    acquisition: Acquisition
    severity: str
    calcifications: tuple[Calcification, ...]


def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw body, heart, vessels and bones, keeping the heart clear of the chest wall and of
    the descending aorta by at least :data:`HEART_GAP_MM`."""
    bx, by = (float(v) for v in rng.uniform(-BODY_SHIFT_MM, BODY_SHIFT_MM, size=2))
    cav = (_u(rng, CAVITY_SEMI_X_MM), _u(rng, CAVITY_SEMI_Y_MM))
    wall, fat = _u(rng, CHEST_WALL_MM), _u(rng, SUBCUTANEOUS_FAT_MM)
    epi = _u(rng, EPICARDIAL_FAT_MM)
    spine_r = _u(rng, SPINE_RADIUS_MM)
    spine = (bx, by + cav[1] - SPINE_DEPTH_MM)
    desc_r = _u(rng, DESCENDING_AORTA_RADIUS_MM)
    desc = (spine[0] + DESCENDING_AORTA_OFFSET_MM[0], spine[1] + DESCENDING_AORTA_OFFSET_MM[1])
    semi = np.array([_u(rng, r) for r in HEART_SEMI_MM])
    # y range for the heart centre: clear of the anterior cavity border and the aorta.
    y_lo = by - cav[1] + HEART_GAP_MM + epi
    y_hi = desc[1] - desc_r - HEART_GAP_MM - epi
    semi[1] = min(semi[1], (y_hi - y_lo) / 2.0 - 1.0)
    hy = y_lo + semi[1] + rng.uniform(0.3, 0.7) * (y_hi - y_lo - 2.0 * semi[1])
    hx = bx + _u(rng, HEART_X_OFFSET_MM)
    hz = float(rng.uniform(-180.0, -40.0))
    asc_r = _u(rng, ASCENDING_AORTA_RADIUS_MM)
    asc = (hx + ASCENDING_AORTA_OFFSET_MM[0], hy + ASCENDING_AORTA_OFFSET_MM[1])
    jitter = {k: float(rng.normal(0.0, 8.0)) for k in ("fat", "muscle", "lung", "liver", "blood")}
    return Anatomy(
        body_centre=(bx, by),
        cavity_semi=cav,
        wall_mm=wall,
        fat_mm=fat,
        heart_centre=np.array([hx, hy, hz]),
        heart_semi=semi,
        epicardial_fat_mm=epi,
        spine_centre=spine,
        spine_radius=spine_r,
        vertebra_phase_mm=float(rng.uniform(0.0, VERTEBRA_PITCH_MM)),
        desc_aorta_centre=desc,
        desc_aorta_radius=desc_r,
        asc_aorta_centre=asc,
        asc_aorta_radius=asc_r,
        asc_aorta_z0=hz + ASCENDING_AORTA_START * semi[2],
        rib_phase_mm=float(rng.uniform(0.0, RIB_PITCH_MM)),
        tissue_jitter_hu=jitter,
    )


def sample_acquisition(
    rng: np.random.Generator, anatomy: Anatomy, thickness_mm: float, matrix: int
) -> Acquisition:
    """Scanner, kernel, noise and the voxel grid covering the heart with margins."""
    manufacturer, model, kernels = SCANNERS[int(rng.integers(len(SCANNERS)))]
    kernel, sharpness = kernels[int(rng.integers(len(kernels)))]
    noise = _u(rng, NOISE_SD_HU[sharpness])
    body_extent = max(abs(anatomy.body_centre[0]) + anatomy.body_semi[0], 0.0)
    need = 2.0 * (body_extent + FOV_MARGIN_MM)
    fov = next((f for f in FOV_CHOICES_MM if f >= need), FOV_CHOICES_MM[-1])
    pixel = round(fov / matrix, 6)
    x0 = round(-(matrix - 1) / 2.0 * pixel, 3)
    hz, az = anatomy.heart_centre[2], anatomy.heart_semi[2]
    z_lo = hz - az - _u(rng, COVERAGE_BELOW_HEART_MM)
    z_hi = hz + az + _u(rng, COVERAGE_ABOVE_HEART_MM)
    n = int(np.floor((z_hi - z_lo) / thickness_mm)) + 1
    order = INSTANCE_ORDERS[int(rng.choice(len(INSTANCE_ORDERS), p=INSTANCE_ORDER_P))]
    return Acquisition(
        manufacturer=manufacturer,
        model=model,
        kernel=kernel,
        sharpness=sharpness,
        noise_sd_hu=round(noise, 2),
        thickness_mm=float(thickness_mm),
        matrix=int(matrix),
        fov_mm=fov,
        pixel_mm=pixel,
        origin=(x0, x0, round(z_lo, 2)),
        n_slices=n,
        instance_order=order,
    )


# --- coronary paths -----------------------------------------------------------------------
def heart_surface_point(anatomy: Anatomy, phi_deg: float, t: float, offset_mm: float) -> np.ndarray:
    """Point ``offset_mm`` outside the heart ellipsoid at azimuth ``phi_deg`` and elevation
    ``t`` (see module docstring), mm LPS, offset along the surface normal."""
    c, s = anatomy.heart_centre, anatomy.heart_semi
    phi = np.deg2rad(phi_deg)
    rho = np.sqrt(max(1.0 - t * t, 0.0))
    p = np.array([s[0] * np.cos(phi) * rho, s[1] * np.sin(phi) * rho, s[2] * t])
    normal = p / s**2
    normal /= np.linalg.norm(normal)
    return c + p + offset_mm * normal


def path_frame(
    anatomy: Anatomy, label: str, s: float, rot_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre (mm) and principal axes (columns: along the vessel, across it radially,
    across it tangentially) of a lesion at fraction ``s`` of a coronary path."""
    (p0, p1), (t0, t1) = PATHS[label]

    def at(u: float) -> np.ndarray:
        return heart_surface_point(
            anatomy, p0 + (p1 - p0) * u + rot_deg, t0 + (t1 - t0) * u, CORONARY_OFFSET_MM
        )

    centre = at(s)
    h = 0.01
    tangent = at(min(s + h, 1.0)) - at(max(s - h, 0.0))
    tangent /= np.linalg.norm(tangent)
    radial = centre - anatomy.heart_centre
    radial -= radial.dot(tangent) * tangent
    radial /= np.linalg.norm(radial)
    return centre, np.column_stack([tangent, radial, np.cross(tangent, radial)])


def sample_peak_hu(rng: np.random.Generator) -> float:
    lo, hi = PEAK_BANDS_HU[int(rng.integers(len(PEAK_BANDS_HU)))]
    return float(rng.uniform(lo, hi))


def propose_coronary(
    rng: np.random.Generator,
    anatomy: Anatomy,
    label: str,
    along_mm: tuple[float, float],
    across_mm: tuple[float, float],
) -> Calcification:
    """One candidate coronary lesion on ``label``'s path (proximal positions more likely);
    semi-axes drawn from ``along_mm`` (along the vessel) and ``across_mm`` (mm)."""
    s = float(rng.uniform(0.0, 1.0) ** 1.4)
    rot = float(rng.uniform(-PATH_JITTER_DEG, PATH_JITTER_DEG))
    centre, axes = path_frame(anatomy, label, s, rot)
    a = _u(rng, along_mm)
    b = min(a, _u(rng, across_mm))
    c = min(a, _u(rng, across_mm))
    return Calcification(label, centre, axes, np.array([a, b, c]), sample_peak_hu(rng), True)


def propose_aortic(rng: np.random.Generator, anatomy: Anatomy, z_top: float) -> Calcification:
    """One candidate aortic-wall calcification (label TAC): on the descending aorta, or on
    the ascending aorta above the heart. ``z_top`` is the top of the scan range (mm)."""
    hz, az = anatomy.heart_centre[2], anatomy.heart_semi[2]
    asc_lo = hz + az + TAC_ABOVE_HEART_MM
    if rng.uniform() < 0.5 and asc_lo < z_top - 6.0:
        cx, cy = anatomy.asc_aorta_centre
        r = anatomy.asc_aorta_radius
        ang = float(rng.uniform(-np.pi, np.pi))
        z = float(rng.uniform(asc_lo, z_top - 6.0))
    else:
        cx, cy = anatomy.desc_aorta_centre
        r = anatomy.desc_aorta_radius
        ang = np.deg2rad(float(rng.uniform(*TAC_ANGLES_DEG)))
        z = float(rng.uniform(hz - az, z_top - 6.0))
    radial = np.array([np.cos(ang), np.sin(ang), 0.0])
    tangent = np.array([-np.sin(ang), np.cos(ang), 0.0])
    axes = np.column_stack([tangent, radial, [0.0, 0.0, 1.0]])
    semi = np.array([_u(rng, TAC_SEMI_MM), _u(rng, (0.8, 1.5)), _u(rng, TAC_SEMI_MM)])
    centre = np.array([cx, cy, z]) + r * radial
    return Calcification("TAC", centre, axes, semi, _u(rng, TAC_PEAK_HU), False)


def propose_valve(rng: np.random.Generator, anatomy: Anatomy, label: str) -> Calcification:
    """One candidate valve calcification: AV on the aortic root ring, MV in the
    posterior-left heart base under the atrioventricular groove."""
    if label == "AV":
        cx, cy = anatomy.asc_aorta_centre
        ang = float(rng.uniform(-np.pi, np.pi))
        radial = np.array([np.cos(ang), np.sin(ang), 0.0])
        r = AV_RADIUS_FRACTION * anatomy.asc_aorta_radius
        centre = np.array([cx, cy, anatomy.asc_aorta_z0 + float(rng.uniform(0.0, 4.0))])
        centre = centre + r * radial
        tangent = np.array([-radial[1], radial[0], 0.0])
    elif label == "MV":
        phi, t = _u(rng, MV_AZIMUTH_DEG), _u(rng, MV_ELEVATION)
        centre = heart_surface_point(anatomy, phi, t, -_u(rng, MV_DEPTH_MM))
        ahead = heart_surface_point(anatomy, phi + 1.0, t, -10.0)
        tangent = ahead - heart_surface_point(anatomy, phi - 1.0, t, -10.0)
        tangent /= np.linalg.norm(tangent)
        radial = centre - anatomy.heart_centre
        radial -= radial.dot(tangent) * tangent
        radial /= np.linalg.norm(radial)
    else:
        raise ValueError(f"not a valve label: {label}")
    axes = np.column_stack([tangent, radial, np.cross(tangent, radial)])
    semi = np.array([_u(rng, (1.5, 4.0)), _u(rng, (1.0, 2.0)), _u(rng, (1.0, 2.5))])
    return Calcification(label, centre, axes, semi, _u(rng, VALVE_PEAK_HU), False)
