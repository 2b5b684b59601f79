"""The phantom in memory: HU bounds, isolation of calcifications (also after slab
averaging), anatomy of the coronary paths, and the variety a cohort needs."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest

from cacflow.synth import plan_cohort, synth_scan
from cacflow.synth.cohort import ScanPlan
from cacflow.synth.phantom import clearance_slices

KEY = ("test",)
CORONARY = ("LM", "LAD", "LCX", "RCA")


@pytest.fixture(scope="module")
def scans():
    """Twelve scans at matrix 128 (all three thicknesses, a few without coronary calcium)."""
    return [synth_scan(p, 21, 128, KEY) for p in plan_cohort(12, 21, (1.0, 2.5, 3.0), 0.25)]


def _calc_mask(scan) -> np.ndarray:
    mask = np.zeros(scan.rendered.hu.shape, dtype=bool)
    for c in scan.rendered.calcifications:
        mask[tuple(c.index.T)] = True
    return mask


def test_hu_bounds_keep_calcium_to_bone_and_calcifications(scans) -> None:
    for s in scans:
        hu, bone = s.rendered.hu, s.rendered.bone
        calc = _calc_mask(s)
        assert hu.dtype == np.int16
        assert hu[~bone & ~calc].max() <= 120
        assert hu[bone].min() >= 200
        if calc.any():
            assert hu[calc].min() >= 130
        assert not (bone & calc).any()
        assert hu.min() >= -1024
        assert (hu < -700).mean() > 0.2  # air and lungs are there


def test_each_calcification_is_one_isolated_component(scans) -> None:
    for s in scans:
        labels = cc3d.connected_components(s.rendered.hu >= 130, connectivity=26)
        for c in s.rendered.calcifications:
            ids = np.unique(labels[tuple(c.index.T)])
            assert ids.size == 1 and ids[0] > 0
            assert int((labels == ids[0]).sum()) == len(c.index)


def _slab_average(hu: np.ndarray, inc: float, thick: float = 3.0, step: float = 1.5):
    """Slabs of ``thick`` mm every ``step`` mm (overlap-weighted means of native slices);
    returns the slabs and, per slab, the native slices with a positive weight."""
    n = hu.shape[0]
    lo_cells = (np.arange(n) - 0.5) * inc
    out, members = [], []
    start = -inc / 2
    while start + thick <= (n - 0.5) * inc + 1e-9:
        w = np.clip(
            np.minimum(start + thick, lo_cells + inc) - np.maximum(start, lo_cells), 0, None
        )
        idx = np.flatnonzero(w > 1e-9)
        out.append(np.tensordot(w[idx] / w[idx].sum(), hu[idx].astype(float), axes=1))
        members.append(idx)
        start += step
    return np.stack(out), members


def test_calcifications_stay_apart_after_slab_averaging(scans) -> None:
    """At 3 mm slabs every 1.5 mm no calcium component mixes two objects (or bone)."""
    for s in scans:
        r = s.rendered
        objects = np.where(r.bone, -1, 0).astype(np.int32)
        for n, c in enumerate(r.calcifications, start=1):
            objects[tuple(c.index.T)] = n
        slabs, members = _slab_average(r.hu, r.grid.increment_mm)
        labels = cc3d.connected_components(slabs >= 130, connectivity=26)
        pairs = set()
        for j, idx in enumerate(members):
            lab = labels[j]
            for k in idx:
                sel = (lab > 0) & (objects[k] != 0)
                pairs |= set(zip(lab[sel].tolist(), objects[k][sel].tolist(), strict=True))
        owners: dict[int, set[int]] = {}
        for comp, obj in pairs:
            owners.setdefault(comp, set()).add(obj)
        assert all(len(v) == 1 for v in owners.values())


def test_clearance_grows_for_thin_slices() -> None:
    assert clearance_slices(1.0) == 5  # 4.5 mm guard + one increment: 6 mm apart
    assert clearance_slices(2.5) == 2
    assert clearance_slices(3.0) == 2


def test_coronary_lesions_follow_their_arteries(scans) -> None:
    """LAD anterior-left, LCX left, RCA right of the heart centre (LPS: +x left, -y anterior)."""
    for s in scans:
        hx, hy, _ = s.scene.anatomy.heart_centre
        for c in s.rendered.calcifications:
            x, y, _ = c.calc.centre
            if c.label == "LAD":
                assert x > hx and y < hy
            elif c.label == "LCX":
                assert x > hx
            elif c.label == "RCA":
                assert x < hx


def test_cohort_has_the_variety_it_promises(scans) -> None:
    coronary = [
        (c, t)
        for s in scans
        for c, t in zip(s.rendered.calcifications, s.truths, strict=True)
        if c.label in CORONARY
    ]
    assert {c.label for c, _ in coronary} == set(CORONARY)
    bands = {
        min(4, max(1, 1 + (t.peak_hu >= 200) + (t.peak_hu >= 300) + (t.peak_hu >= 400)))
        for _, t in coronary
    }
    assert bands == {1, 2, 3, 4}
    volumes = [t.volume_mm3 for _, t in coronary]
    assert min(volumes) <= 10.0 and max(volumes) >= 100.0
    assert any(c.label == "TAC" for s in scans for c in s.rendered.calcifications)
    assert {s.scene.acquisition.thickness_mm for s in scans} == {1.0, 2.5, 3.0}
    assert len({s.scene.acquisition.kernel for s in scans}) >= 3
    assert sum(s.scene.severity == "none" for s in scans) == 3
    noise = [s.scene.acquisition.noise_sd_hu for s in scans]
    assert 10 <= min(noise) and max(noise) <= 25


def test_a_scan_does_not_depend_on_the_cohort_size() -> None:
    a = synth_scan(ScanPlan(2, 3.0, False), 4, 64, KEY)
    b = synth_scan(ScanPlan(2, 3.0, False), 4, 64, KEY)
    assert np.array_equal(a.rendered.hu, b.rendered.hu)
    c = synth_scan(ScanPlan(3, 3.0, False), 4, 64, KEY)
    assert not np.array_equal(a.rendered.hu, c.rendered.hu)


def test_slice_z_coverage_is_modest(scans) -> None:
    for s in scans:
        g = s.rendered.grid
        extent = (g.shape[0] - 1) * g.increment_mm
        assert 110 <= extent <= 160
