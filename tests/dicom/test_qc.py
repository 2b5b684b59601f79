"""Slice ordering and geometry QC on positions computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cacflow.conventions import Reason
from cacflow.dicom.qc import QcConfig, QcFailure, angle_deg, check_present, order_stack

AXIAL = np.array([1.0, 0, 0, 0, 1, 0])


def stack_positions(n: int, step=(0.0, 0.0, 1.25), origin=(-10.0, 5.0, 100.0)) -> np.ndarray:
    return np.asarray(origin) + np.outer(np.arange(n), step)


def reason_of(orientation, positions, qc: QcConfig | None = None) -> str:
    with pytest.raises(QcFailure) as info:
        order_stack(orientation, positions, qc or QcConfig())
    return info.value.reason.value


def test_order_is_by_position_along_the_normal_not_input_order() -> None:
    pos = stack_positions(12)
    rng = np.random.default_rng(3)
    perm = rng.permutation(12)
    s = order_stack(AXIAL, pos[perm], QcConfig())
    np.testing.assert_array_equal(perm[s.order], np.arange(12))
    np.testing.assert_allclose(s.origin, pos[0])
    assert s.increment_mm == pytest.approx(1.25)
    assert s.tilt_deg == pytest.approx(0.0, abs=1e-9)


def test_feet_first_normal_sorts_descending_z() -> None:
    # rows along -x, columns along +y: normal = (-1,0,0) x (0,1,0) = (0,0,-1)
    orientation = np.array([-1.0, 0, 0, 0, 1, 0])
    pos = stack_positions(12)
    s = order_stack(orientation, pos, QcConfig())
    np.testing.assert_array_equal(s.order, np.arange(11, -1, -1))
    np.testing.assert_allclose(s.normal, [0, 0, -1])
    np.testing.assert_allclose(s.origin, pos[-1])


def test_too_few_slices() -> None:
    assert reason_of(AXIAL, stack_positions(9)) == Reason.TOO_FEW_SLICES
    assert order_stack(AXIAL, stack_positions(10), QcConfig()).order.size == 10


def test_gap_is_strictly_above_factor_times_median() -> None:
    pos = np.delete(stack_positions(13), 6, axis=0)  # one slice missing: a 2.5 mm step
    assert reason_of(AXIAL, pos) == Reason.GAP
    # a step of exactly 1.5 x median is not a gap (but is off the uniform grid)
    z = np.r_[np.arange(6) * 1.0, 5 + 1.5 + np.arange(6) * 1.0]
    pos = np.column_stack([np.zeros(12), np.zeros(12), z])
    assert reason_of(AXIAL, pos, QcConfig(max_gap_factor=1.5)) == Reason.INCONSISTENT_GEOMETRY
    assert reason_of(AXIAL, pos, QcConfig(max_gap_factor=1.4)) == Reason.GAP


def test_duplicate_position() -> None:
    pos = stack_positions(12)
    pos = np.vstack([pos, pos[4] + [0.0, 0.0, 0.005]])
    assert reason_of(AXIAL, pos) == Reason.DUPLICATE_POSITION


def test_irregular_spacing_is_inconsistent_geometry() -> None:
    z = np.array([0, 1, 2, 3, 4.4, 5.4, 6.4, 7.4, 8.4, 9.4, 10.4, 11.4])
    pos = np.column_stack([np.zeros(12), np.zeros(12), z])
    assert reason_of(AXIAL, pos) == Reason.INCONSISTENT_GEOMETRY
    # jitter of 0.05 mm (IPP written with one decimal) is tolerated
    z = np.round(np.arange(12) * 0.625, 1)
    pos = np.column_stack([np.zeros(12), np.zeros(12), z])
    s = order_stack(AXIAL, pos, QcConfig())
    assert s.increment_mm == pytest.approx((z[-1] - z[0]) / 11)


def test_gantry_tilt_angle_and_modes() -> None:
    t = math.radians(12.0)
    # slice plane tilted about x: columns along (0, cos t, sin t); table moves along z
    orientation = np.array([1.0, 0, 0, 0, math.cos(t), math.sin(t)])
    pos = stack_positions(12, step=(0.0, 0.0, 2.0))
    assert reason_of(orientation, pos) == Reason.GANTRY_TILT
    s = order_stack(orientation, pos, QcConfig(gantry_tilt="resample"))
    assert s.tilt_deg == pytest.approx(12.0, abs=1e-9)
    np.testing.assert_allclose(s.step_dir, [0, 0, 1])
    assert s.increment_mm == pytest.approx(2.0)  # along the table when resampled


def test_small_tilt_below_threshold_is_kept_on_the_normal() -> None:
    t = math.radians(0.3)
    orientation = np.array([1.0, 0, 0, 0, math.cos(t), math.sin(t)])
    s = order_stack(orientation, stack_positions(12, step=(0.0, 0.0, 1.0)), QcConfig())
    assert s.tilt_deg == pytest.approx(0.3, abs=1e-9)
    assert s.increment_mm == pytest.approx(math.cos(t))  # projection on the normal


def test_coronal_series_is_not_axial() -> None:
    coronal = np.array([1.0, 0, 0, 0, 0, -1])
    pos = stack_positions(12, step=(0.0, 1.0, 0.0))
    assert reason_of(coronal, pos) == Reason.NOT_AXIAL


def test_oblique_axial_within_45_degrees_is_kept() -> None:
    a = math.radians(30.0)
    orientation = np.array([1.0, 0, 0, 0, math.cos(a), math.sin(a)])
    normal = np.cross(orientation[:3], orientation[3:])
    s = order_stack(orientation, stack_positions(12, step=tuple(normal)), QcConfig())
    assert angle_deg(s.normal, np.array([0, 0, 1.0])) == pytest.approx(30.0)


def test_missing_geometry() -> None:
    pos = stack_positions(12)
    pos[3] = np.nan
    with pytest.raises(QcFailure, match="ImagePositionPatient missing in 1 of 12"):
        check_present(AXIAL, pos, (0.7, 0.7), 512, 512)
    with pytest.raises(QcFailure, match="PixelSpacing missing"):
        check_present(AXIAL, stack_positions(12), None, 512, 512)


def test_non_orthonormal_orientation() -> None:
    assert reason_of(np.array([1.0, 0, 0, 0.5, 1, 0]), stack_positions(12)) == (
        Reason.INCONSISTENT_GEOMETRY
    )


def test_qc_config_from_config() -> None:
    assert QcConfig.from_config(None) == QcConfig()
    qc = QcConfig.from_config({"min_slices": 3, "gantry_tilt": "resample"})
    assert (qc.min_slices, qc.gantry_tilt, qc.max_gap_factor) == (3, "resample", 1.5)
    with pytest.raises(ValueError, match="qc.bogus"):
        QcConfig.from_config({"bogus": 1})
    with pytest.raises(ValueError, match="gantry_tilt"):
        QcConfig(gantry_tilt="shear")
