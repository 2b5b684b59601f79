"""The written cohort: files, headers, geometry, and the truth against an independent
connected-component computation on the DICOM pixels read back."""

from __future__ import annotations

import filecmp
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from cacflow.synth import FAKE_NAME_MARKER, fake_identity, generate_cohort

CORONARY = {"LM": "LAD", "LAD": "LAD", "LCX": "LCX", "RCA": "RCA"}
ARTERIES = ["LAD", "LCX", "RCA", "total"]


def _weight(peak: float) -> int:
    return 0 if peak < 130 else 1 if peak < 200 else 2 if peak < 300 else 3 if peak < 400 else 4


def _scores_of(hu: np.ndarray, mask: np.ndarray, pixel_area: float, inc: float) -> dict:
    """Agatston / volume / mass of the voxels of ``mask`` (test's own arithmetic)."""
    agatston = 0.0
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        vals = hu[k][mask[k]]
        agatston += vals.size * pixel_area * _weight(vals.max())
    n = int(mask.sum())
    return {
        "agatston": agatston * inc / 3.0,
        "volume_mm3": n * pixel_area * inc,
        "mass_mg": 0.001 * float(hu[mask].sum()) * pixel_area * inc,
        "peak_hu": float(hu[mask].max()),
        "n_voxels": n,
    }


def test_tables_have_the_contract_columns(cohort) -> None:
    assert list(cohort.annotations.columns) == ["series_uid", "x", "y", "z", "label", "patient_id"]
    assert list(cohort.truth.columns) == [
        "series_uid",
        "patient_id",
        "artery",
        "agatston",
        "volume_mm3",
        "mass_mg",
        "n_lesions",
        "slice_thickness_mm",
        "increment_mm",
    ]
    assert cohort.scans.series_uid.nunique() == cohort.n_scans
    for _, g in cohort.truth.groupby("series_uid", sort=False):
        assert list(g.artery) == ARTERIES
    assert set(cohort.truth.series_uid) == set(cohort.scans.series_uid)


def test_one_series_per_scan_folder(cohort, series) -> None:
    assert set(series) == set(cohort.scans.series_uid)
    n_files = sum(1 for p in (cohort.root / "dicom").rglob("*") if p.is_file())
    assert n_files == cohort.scans.n_slices.sum()
    for s in series.values():
        assert {str(d.SeriesInstanceUID) for d in s.datasets} == {
            str(s.datasets[0].SeriesInstanceUID)
        }


def test_headers_are_realistic_and_fake(cohort, series) -> None:
    for row in cohort.scans.itertuples():
        s = series[row.series_uid]
        index = int(row.patient_id.rsplit("-", 1)[1]) - 1
        ident = fake_identity(cohort.seed, index)
        sops = set()
        for d in s.datasets:
            assert d.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
            assert d.SOPClassUID == CTImageStorage
            assert d.file_meta.MediaStorageSOPInstanceUID == d.SOPInstanceUID
            assert d.Modality == "CT"
            assert list(d.ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]
            assert str(d.PatientName) == ident.patient_name
            assert str(d.PatientName).startswith(FAKE_NAME_MARKER)
            assert d.PatientBirthDate == ident.birth_date
            assert d.PatientID == row.patient_id
            assert (float(d.RescaleSlope), float(d.RescaleIntercept)) == (1.0, -1024.0)
            assert d.ConvolutionKernel == row.kernel
            assert d.Manufacturer == row.manufacturer
            sops.add(str(d.SOPInstanceUID))
        assert len(sops) == len(s.datasets)
        assert len({str(d.StudyInstanceUID) for d in s.datasets}) == 1


def test_fake_identity_is_deterministic_and_marked() -> None:
    a, b = fake_identity(3, 0), fake_identity(3, 0)
    assert a == b
    assert a.patient_name.startswith(FAKE_NAME_MARKER) and "^" in a.patient_name
    assert len(a.birth_date) == 8 and a.birth_date.isdigit()
    assert fake_identity(3, 1) != a


def test_identifiers_never_reach_the_tables(cohort, series) -> None:
    text = "".join(p.read_text() for p in cohort.root.glob("*.csv"))
    assert FAKE_NAME_MARKER not in text
    for s in series.values():
        assert s.datasets[0].PatientBirthDate not in text


def test_slice_positions_follow_the_normal(cohort, series) -> None:
    for row in cohort.scans.itertuples():
        s = series[row.series_uid]
        d0 = s.datasets[0]
        inc = float(row.increment_mm)
        assert float(d0.SliceThickness) == inc == float(d0.SpacingBetweenSlices)
        assert s.hu.shape[0] == row.n_slices
        for k, d in enumerate(s.datasets):
            expect = s.origin + k * inc * s.normal
            np.testing.assert_allclose(np.array(d.ImagePositionPatient, float), expect, atol=1e-6)
        numbers = sorted(int(d.InstanceNumber) for d in s.datasets)
        assert numbers == list(range(1, len(s.datasets) + 1))


def test_file_names_are_not_in_slice_order(cohort, series) -> None:
    # sorting by name must not give the spatial order (it would hide sorting bugs)
    shuffled = [sorted(s.files) != s.files for s in series.values() if len(s.files) > 2]
    assert all(shuffled)


def test_lesion_truth_equals_its_connected_component(cohort, series) -> None:
    """Each lesion row: its point lies on a >= 130 HU voxel whose 26-connected calcium
    component scores exactly as the truth says and holds no other lesion's point."""
    for uid, rows in cohort.lesions.groupby("series_uid"):
        s = series[uid]
        labels = cc3d.connected_components(s.hu >= 130, connectivity=26)
        area = s.pixel_mm[0] * s.pixel_mm[1]
        seen = set()
        for r in rows.itertuples():
            k, j, i = s.index_of(np.array([r.x, r.y, r.z]))
            assert s.hu[k, j, i] >= 130
            assert s.hu[k, j, i] == r.peak_hu
            comp = int(labels[k, j, i])
            assert comp not in seen, "two lesions share a component"
            seen.add(comp)
            got = _scores_of(s.hu, labels == comp, area, s.increment_mm)
            assert got["n_voxels"] == r.n_voxels
            assert got["peak_hu"] == r.peak_hu
            for key in ("agatston", "volume_mm3", "mass_mg"):
                assert got[key] == pytest.approx(getattr(r, key), abs=2e-6, rel=1e-9)


def test_artery_truth_is_the_sum_of_its_lesions(cohort) -> None:
    les = cohort.lesions[cohort.lesions.label.isin(list(CORONARY))].copy()
    les["artery_check"] = les.label.map(CORONARY)
    assert (les.artery == les.artery_check).all()
    non = cohort.lesions[~cohort.lesions.label.isin(list(CORONARY))]
    assert (non.artery == "").all()
    for uid, g in cohort.truth.groupby("series_uid"):
        t = g.set_index("artery")
        mine = les[les.series_uid == uid]
        for artery in ("LAD", "LCX", "RCA"):
            part = mine[mine.artery == artery]
            assert t.loc[artery, "agatston"] == pytest.approx(part.agatston.sum(), abs=1e-5)
            assert t.loc[artery, "volume_mm3"] == pytest.approx(part.volume_mm3.sum(), abs=1e-5)
            assert t.loc[artery, "n_lesions"] == len(part)
        for col in ("agatston", "volume_mm3", "mass_mg", "n_lesions"):
            parts = t.loc[["LAD", "LCX", "RCA"], col].sum()
            assert t.loc["total", col] == pytest.approx(parts, abs=1e-5)


def test_zero_cac_scans_have_zero_rows_and_no_coronary_points(cohort) -> None:
    zero = cohort.scans[cohort.scans.zero_cac == 1]
    assert len(zero) == round(cohort.n_scans * 0.2)
    for uid in zero.series_uid:
        t = cohort.truth[cohort.truth.series_uid == uid]
        assert (t[["agatston", "volume_mm3", "mass_mg", "n_lesions"]] == 0).all().all()
        pts = cohort.annotations[cohort.annotations.series_uid == uid]
        assert not pts.label.isin(list(CORONARY)).any()
    positive = cohort.scans[cohort.scans.zero_cac == 0].series_uid
    total = cohort.truth[(cohort.truth.artery == "total") & cohort.truth.series_uid.isin(positive)]
    assert (total.agatston > 0).all()


def test_annotations_are_the_annotated_lesions(cohort) -> None:
    ann = cohort.lesions[cohort.lesions.annotated == 1]
    cols = ["series_uid", "x", "y", "z", "label", "patient_id"]
    left = ann[cols].reset_index(drop=True)
    right = cohort.annotations[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)
    coronary = cohort.lesions[cohort.lesions.label.isin(list(CORONARY))]
    assert (coronary.annotated == 1).all()
    assert set(cohort.annotations.label) <= {"LM", "LAD", "LCX", "RCA", "TAC", "AV", "MV"}


def _tree(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_same_bytes_other_seed_other_files(tmp_path: Path) -> None:
    kw = {"matrix": 48, "thicknesses_mm": (3.0,)}
    generate_cohort(tmp_path / "a", 2, 5, **kw)
    generate_cohort(tmp_path / "b", 2, 5, **kw)
    generate_cohort(tmp_path / "c", 2, 6, **kw)
    files = _tree(tmp_path / "a")
    assert files == _tree(tmp_path / "b")
    for rel in files:
        assert filecmp.cmp(tmp_path / "a" / rel, tmp_path / "b" / rel, shallow=False), rel
    assert files != _tree(tmp_path / "c")
    assert (tmp_path / "a/truth.csv").read_bytes() != (tmp_path / "c/truth.csv").read_bytes()


def test_regenerating_replaces_the_previous_dicom(tmp_path: Path) -> None:
    kw = {"matrix": 48, "thicknesses_mm": (3.0,)}
    generate_cohort(tmp_path, 2, 5, **kw)
    generate_cohort(tmp_path, 1, 6, **kw)
    folders = {p.parent for p in (tmp_path / "dicom").rglob("*") if p.is_file()}
    assert len(folders) == 1


@pytest.mark.parametrize(
    "kw",
    [
        {"n_scans": 0},
        {"seed": -1},
        {"thicknesses_mm": ()},
        {"thicknesses_mm": (0.0,)},
        {"matrix": 8},
        {"zero_cac_fraction": 1.5},
    ],
)
def test_bad_arguments_fail(tmp_path: Path, kw: dict) -> None:
    args = {"n_scans": 1, "seed": 1, **kw}
    n, seed = args.pop("n_scans"), args.pop("seed")
    with pytest.raises(ValueError):
        generate_cohort(tmp_path, n, seed, **args)
