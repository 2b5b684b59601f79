"""Real backgrounds with inserted calcium: the copy, its points and its truth.

The truth is recomputed here independently from the pixels read back from the written
DICOM files with pydicom and connected-components-3d (26-connected components >= 130 HU
holding a point, Agatston by its definition), not by the package's reference builder.
"""

from __future__ import annotations

import cc3d
import numpy as np
import pandas as pd
import pydicom
import pytest
import yaml
from scipy import ndimage

from cacflow.conventions import ScoringConventions
from cacflow.heart import dilate, find_heart
from cacflow.insert import insert_cohort, read_series
from wf import REAL_SERIES, REPO

BACKGROUND = "a0001_5mm_B"  # 64 slices of 5 mm: the quickest real series to copy
CONV = ScoringConventions.from_config(
    yaml.safe_load((REPO / "config" / "config.yaml").read_text())["scoring"]
)
"""The default config's conventions (1 mm² minimum lesion area), as the insert rule uses."""


@pytest.fixture(scope="module")
def inserted(tmp_path_factory, real_series):
    real_series(BACKGROUND)  # skips when the shared data is absent
    out = tmp_path_factory.mktemp("inserted")
    insert_cohort([str(REAL_SERIES[BACKGROUND])], out, [11, 12], 8, [None, 200.0], CONV)
    return out


def _agatston(hu: np.ndarray, comp: np.ndarray, pixel_mm2: float, inc: float) -> float:
    total = 0.0
    for k in np.flatnonzero(comp.any(axis=(1, 2))):
        peak = hu[k][comp[k]].max()
        weight = sum(peak >= e for e in (130, 200, 300, 400))
        total += comp[k].sum() * pixel_mm2 * weight
    return total * inc / 3.0


@pytest.fixture(scope="module")
def gated(tmp_path_factory, real_series):
    real_series(BACKGROUND)
    out = tmp_path_factory.mktemp("gated")
    insert_cohort([str(REAL_SERIES[BACKGROUND])], out, [13], 8, [200.0], CONV, gated=True)
    return out


def test_truth_equals_an_independent_recomputation(inserted) -> None:
    truth = pd.read_csv(inserted / "truth.csv")
    assert len(truth) == 4 * 4 and set(truth["fov_mm"]) == {0.0, 200.0}
    _check_truth(inserted)


def test_gated_copy_truth_equals_an_independent_recomputation(gated) -> None:
    _check_truth(gated)


def test_gated_copy_has_a_gated_scans_geometry_and_the_same_anatomy(gated) -> None:
    """512² over the 200 mm FOV (0.39 mm pixels), a range that holds the reader's heart z
    range (shared real_ct README) and is no longer than a gated scan's, and at the 200 mm
    crop's original pixel centres the same HU (the copy's image sampled there by linear
    interpolation; calcium and the reconstruction circle's rim left out): median absolute
    difference 0.5 HU, 4.6 HU when shifted by half an original pixel."""
    from cacflow.insert import crop_fov

    copy = read_series(next((gated / "dicom").iterdir()))
    g = copy.volume.geometry
    assert copy.volume.array.shape[1:] == (512, 512)
    assert int(copy.datasets[0].Rows) == int(copy.datasets[0].Columns) == 512
    assert g.spacing[0] == pytest.approx(200.0 / 512, rel=0.01)
    z = np.array([float(d.ImagePositionPatient[2]) for d in copy.datasets])
    lo, hi = -354.0, -294.0  # the reader's heart z range of A0001 (test_heart.HEART_Z_MM)
    assert z.min() <= lo and z.max() >= hi
    assert z.max() - z.min() <= 200.0  # a gated range (12-20 cm), not the chest's 315 mm
    original = read_series(REAL_SERIES[BACKGROUND])
    crop = crop_fov(original, find_heart(original.volume), 200.0).volume
    cg = crop.geometry
    k0 = int(np.rint(cg.world_to_index(np.array([0.0, 0.0, z.min()]))[2]))
    diffs = []
    for k in range(len(z)):
        ref = crop.array[k0 + k]
        jj, ii = np.mgrid[8 : ref.shape[0] - 8, 8 : ref.shape[1] - 8]
        world = cg.index_to_world(
            np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k0 + k)], axis=1).astype(float)
        )
        idx = np.array([g.world_to_index(w) for w in world[::97]])
        assert np.allclose(idx[:, 2], k, atol=1e-3)
        got = ndimage.map_coordinates(copy.volume.array[k], idx[:, [1, 0]].T, order=1)
        want = ref[8:-8, 8:-8].ravel()[::97]
        ok = (want > -1000) & (want < 130) & (got > -1000) & (got < 130)
        diffs.append(np.abs(got - want)[ok])
    assert np.median(np.concatenate(diffs)) < 3.0


def _check_truth(inserted) -> None:
    ann = pd.read_csv(inserted / "annotations.csv")
    truth = pd.read_csv(inserted / "truth.csv")
    assert len(ann) > 0
    for uid, tr in truth.groupby("series_uid"):
        series = read_series(
            next(
                p.parent
                for p in inserted.rglob("*.dcm")
                if pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID == uid
            )
        )
        vol = series.volume
        hu = vol.array
        labels = cc3d.connected_components(hu >= 130, connectivity=26)
        by_artery = {"LAD": 0.0, "LCX": 0.0, "RCA": 0.0}
        seen = set()
        for p in ann[ann["series_uid"] == uid].itertuples():
            x, y, z = np.rint(vol.geometry.world_to_index(np.array([p.x, p.y, p.z]))).astype(int)
            comp_id = labels[z, y, x]
            if comp_id == 0 or comp_id in seen:
                continue
            seen.add(comp_id)
            comp = labels == comp_id
            area = vol.geometry.pixel_area_mm2
            if max(comp[k].sum() for k in range(comp.shape[0])) * area < 1.0 * (1 - 1e-9):
                continue  # below the 1 mm² minimum lesion size of the default config
            by_artery[p.label] += _agatston(hu, comp, area, vol.geometry.increment_mm)
        got = tr.set_index("artery")["agatston"]
        for art, value in by_artery.items():
            assert got[art] == pytest.approx(value, rel=1e-6, abs=1e-6), (uid, art)
        assert got["total"] == pytest.approx(sum(by_artery.values()), rel=1e-6, abs=1e-6)


def test_copies_are_new_series_and_the_original_is_untouched(inserted) -> None:
    original = read_series(REAL_SERIES[BACKGROUND])
    uids = {
        pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID
        for p in inserted.rglob("*.dcm")
    }
    assert len(uids) == 4  # 2 seeds x 2 fields of view
    assert str(original.datasets[0].SeriesInstanceUID) not in uids
    again = read_series(REAL_SERIES[BACKGROUND])
    assert np.array_equal(original.volume.array, again.volume.array)


def test_lesions_lie_on_the_heart_surface_and_are_calcium(inserted) -> None:
    ann = pd.read_csv(inserted / "annotations.csv")
    chest = next(d for d in (inserted / "dicom").iterdir() if "fov" not in d.name)
    series = read_series(chest)
    heart = find_heart(series.volume)
    g = series.volume.geometry
    near = dilate(
        heart.full_mask(series.volume.array.shape),
        12.0,
        np.array([g.spacing[2], g.spacing[1], g.spacing[0]]),
    )
    uid = str(series.datasets[0].SeriesInstanceUID)
    pts = ann[ann["series_uid"] == uid]
    assert len(pts)
    for p in pts.itertuples():
        x, y, z = np.rint(g.world_to_index(np.array([p.x, p.y, p.z]))).astype(int)
        assert near[z, y, x]
        assert series.volume.array[z, y, x] > series.volume.array.mean()


def test_same_seed_same_bytes(tmp_path, real_series) -> None:
    real_series(BACKGROUND)
    for name in ("a", "b"):
        insert_cohort([str(REAL_SERIES[BACKGROUND])], tmp_path / name, [11], 4, [200.0])
    a = sorted((tmp_path / "a").rglob("*.dcm"))
    b = sorted((tmp_path / "b").rglob("*.dcm"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert (tmp_path / "a" / "truth.csv").read_text() == (tmp_path / "b" / "truth.csv").read_text()
