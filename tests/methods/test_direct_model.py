"""Direct method: networks, transform geometry, crops and the weights file."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cacflow.conventions import ScoringConventions
from cacflow.methods.direct.atlas import (
    ATLAS_SHAPE,
    MAX_SCALE,
    REG_SHAPE,
    REG_SPACING_MM,
    HeartBox,
    Transform,
    grid_points,
    ncc,
    params_to_affine,
    raw_to_params,
    registration_grid,
    warp,
)
from cacflow.methods.direct.model import (
    RegistrationNet,
    ScoringNet,
    build_networks,
    load_checkpoint,
    log_score_loss,
    make_checkpoint,
    save_checkpoint,
    sha256_of,
)
from cacflow.methods.direct.register import (
    CROP_MULTIPLE,
    input_channels,
    pixel_atlas_xy,
    plan_crop,
    slice_atlas_z,
)

# --- networks -------------------------------------------------------------------------


def test_scoring_net_shapes_and_positivity() -> None:
    torch.manual_seed(0)
    net = ScoringNet().eval()
    x = torch.randn(2, 5, 32, 48)
    with torch.no_grad():
        d = net(x)
        s = net.scores(x)
    assert d.shape == (2, 3, 4, 6)
    assert s.shape == (2, 3)
    assert torch.all(d >= 0)
    torch.testing.assert_close(s, d.sum(dim=(2, 3)))


def test_untrained_scoring_net_counts_agatston_weights() -> None:
    """At the start every gain is 1 and the routing uniform over LAD, LCX, RCA and 'not
    coronary': a cell scores sum(pixel weights) / 4 per artery; no calcium scores 0."""
    torch.manual_seed(0)
    net = ScoringNet().eval()
    hu = np.full((1, 16, 16), 40.0, dtype=np.float32)
    hu[0, 1, 1:4] = [150.0, 250.0, 450.0]  # weights 1 + 2 + 4, in cell (0, 0)
    hu[0, 12, 12] = 129.0  # below the threshold
    x = torch.from_numpy(
        input_channels(hu, np.zeros((2, 16, 16), np.float32), np.zeros(1, np.float32), 130.0)
    )
    with torch.no_grad():
        counts = net.band_counts(x)
        d = net(x)
    np.testing.assert_array_equal(counts[0, :, 0, 0].numpy(), [3, 2, 1, 1])
    assert counts[0, :, 1, 1].sum() == 0
    np.testing.assert_allclose(d[0, :, 0, 0].numpy(), [7 / 4] * 3, rtol=1e-6)
    assert d[0, :, 1, 1].sum() == 0 and d[0, :, 0, 1].sum() == 0


def test_registration_net_starts_at_the_identity() -> None:
    torch.manual_seed(0)
    net = RegistrationNet().eval()
    with torch.no_grad():
        params = raw_to_params(net(torch.rand(2, 1, *REG_SHAPE)))
    expected = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]] * 2)
    torch.testing.assert_close(params, expected)


def test_raw_parameters_are_bounded() -> None:
    raw = torch.tensor([[1.0, -2.0, 0.5, 50.0, 50.0, -50.0]])
    p = raw_to_params(raw)[0]
    assert p[0].item() == pytest.approx(50.0) and p[1].item() == pytest.approx(-100.0)
    assert p[3].item() == pytest.approx(math.pi)
    assert p[4].item() == pytest.approx(MAX_SCALE) and p[5].item() == pytest.approx(1 / MAX_SCALE)


def test_loss_is_the_mean_absolute_log_error() -> None:
    pred = torch.tensor([[0.0, math.e - 1.0, 3.0]])
    target = torch.tensor([[0.0, 0.0, 3.0]])
    assert log_score_loss(pred, target).item() == pytest.approx(1.0 / 3.0)


def test_networks_are_deterministic() -> None:
    torch.manual_seed(1)
    net = ScoringNet().eval()
    x = torch.randn(3, 5, 24, 24)
    with torch.no_grad():
        a, b = net(x), net(x)
    assert torch.equal(a, b)


# --- transform geometry ----------------------------------------------------------------


def test_transform_round_trip_and_affine() -> None:
    t = Transform(tx=5.0, ty=-3.0, tz=12.0, theta=0.3, s_xy=1.2, s_z=0.9)
    p = np.array([[10.0, 20.0, -5.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(t.to_atlas(t.to_scan(p)), p, atol=1e-9)
    # hand-computed: rotate (10, 0, 1) by 90 deg, scale 2 in-plane, 3 in z, then translate
    t90 = Transform(tx=1.0, ty=2.0, tz=3.0, theta=math.pi / 2, s_xy=2.0, s_z=3.0)
    np.testing.assert_allclose(t90.to_scan(np.array([10.0, 0.0, 1.0])), [1.0, 22.0, 6.0], atol=1e-9)
    affine = params_to_affine(torch.tensor([[1.0, 2.0, 3.0, math.pi / 2, 2.0, 3.0]]))[0]
    np.testing.assert_allclose(affine[:, :3].numpy(), t90.linear(), atol=1e-6)
    np.testing.assert_allclose(affine[:, 3].numpy(), [1.0, 2.0, 3.0])


def test_registration_grid_places_a_cube_where_it_is() -> None:
    """A dense cube 40 mm right (+x) and 24 mm posterior (+y) of the grid centre."""
    spacing = (1.5, 1.5, 2.0)  # x, y, z mm
    hu = np.full((60, 128, 128), -1000.0, dtype=np.float32)
    cx = round(63.5 + 40.0 / 1.5)
    cy = round(63.5 + 24.0 / 1.5)
    cz = round(29.5 - 10.0 / 2.0)
    hu[cz - 6 : cz + 6, cy - 8 : cy + 8, cx - 8 : cx + 8] = 1000.0
    grid = registration_grid(hu, spacing)[0]
    assert grid.shape == REG_SHAPE
    w = grid.numpy()
    pts = grid_points(REG_SHAPE, REG_SPACING_MM).numpy()
    centroid = (pts * w[..., None]).sum(axis=(0, 1, 2)) / w.sum()
    expected = [(cx - 63.5) * 1.5, (cy - 63.5) * 1.5, (cz - 29.5) * 2.0]
    np.testing.assert_allclose(centroid, expected, atol=2.0)


def test_identity_warp_reproduces_the_grid_and_ncc() -> None:
    torch.manual_seed(0)
    g = torch.rand(1, 1, *REG_SHAPE)
    ident = params_to_affine(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 1.0]]))
    out = warp(g, ident, grid_points(REG_SHAPE, REG_SPACING_MM))
    torch.testing.assert_close(out, g, atol=1e-5, rtol=0)
    assert ncc(g, g).item() == pytest.approx(1.0, abs=1e-6)
    assert ncc(g, -g).item() == pytest.approx(-1.0, abs=1e-6)
    assert ncc(g, 2 * g + 1).item() == pytest.approx(1.0, abs=1e-6)


# --- crops --------------------------------------------------------------------------------
BOX = HeartBox((-20.0, -10.0, -6.0), (20.0, 14.0, 6.0))


def test_plan_crop_identity_hand_computed() -> None:
    """Grid (z, y, x) = (21, 64, 64), spacing 1 mm in-plane, 1.5 mm slices; centre at
    index 31.5 in-plane and 10 in z. Box x [-20, 20] -> x index [11.5, 51.5] -> [11, 52]
    (42 px) -> 48 px centred: x0 = 11 - 3 = 8. y [-10, 14] -> [21.5, 45.5] -> [21, 46]
    (26 px) -> 32: y0 = 21 - 3 = 18. z [-6, 6] mm -> slices with |k - 10| * 1.5 <= 6."""
    plan = plan_crop((21, 64, 64), (1.0, 1.0, 1.5), Transform(), BOX)
    np.testing.assert_array_equal(plan.slices, np.arange(6, 15))
    assert (plan.x0, plan.width, plan.y0, plan.height) == (8, 48, 18, 32)
    assert plan.width % CROP_MULTIPLE == 0 and plan.height % CROP_MULTIPLE == 0


def test_plan_crop_follows_the_transform() -> None:
    """A translation of (+10, -5, +3) mm moves the window by (10, -5) px and the slices by 2."""
    base = plan_crop((21, 64, 64), (1.0, 1.0, 1.5), Transform(), BOX)
    moved = plan_crop((21, 64, 64), (1.0, 1.0, 1.5), Transform(10.0, -5.0, 3.0), BOX)
    assert (moved.x0 - base.x0, moved.y0 - base.y0) == (10, -5)
    np.testing.assert_array_equal(moved.slices, base.slices + 2)


def test_atlas_coordinates_of_pixels_and_slices() -> None:
    t = Transform(tx=4.0, ty=0.0, tz=1.5, s_xy=2.0, s_z=1.0)
    xy = pixel_atlas_xy((21, 64, 64), (1.0, 1.0, 1.5), t, BOX, 0, 0, 64, 64)
    # atlas x of pixel column i: ((i - 31.5) - 4) / 2; box x centre 0, half 20
    np.testing.assert_allclose(xy[0, 5], ((np.arange(64) - 31.5 - 4.0) / 2.0) / 20.0, rtol=1e-6)
    # atlas y of pixel row j: (j - 31.5) / 2; box y centre 2, half 12
    np.testing.assert_allclose(xy[1, :, 0], ((np.arange(64) - 31.5) / 2.0 - 2.0) / 12.0, rtol=1e-6)
    # slice k: grid z (k - 10) * 1.5 mm, atlas z = (that - 1.5) / 1; box z centre 0, half 6
    z = slice_atlas_z(np.array([10, 11, 14]), (21, 64, 64), (1.0, 1.0, 1.5), t, BOX)
    np.testing.assert_allclose(z, [-1.5 / 6.0, 0.0, 4.5 / 6.0])


def test_input_channels() -> None:
    hu = np.array([[[-2000.0, 0.0], [130.0, 530.0]]], dtype=np.float32)
    xy = np.zeros((2, 2, 2), dtype=np.float32)
    x = input_channels(hu, xy, np.array([0.25], dtype=np.float32), threshold_hu=130.0)
    assert x.shape == (1, 5, 2, 2)
    np.testing.assert_allclose(x[0, 0], [[-1.0, 0.0], [0.13, 0.53]])
    np.testing.assert_allclose(x[0, 1], [[-0.5, -0.5], [0.0, 4.0]])
    np.testing.assert_allclose(x[0, 4], 0.25)


# --- weights file -------------------------------------------------------------------------


def _checkpoint(path: Path) -> Path:
    torch.manual_seed(0)
    ckpt = make_checkpoint(
        RegistrationNet(),
        ScoringNet(),
        torch.zeros(ATLAS_SHAPE),
        BOX.lo,
        BOX.hi,
        ScoringConventions(),
    )
    save_checkpoint(ckpt, path)
    return path


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "m.pt")
    side = Path(f"{path}.sha256").read_text().split()
    assert side == [sha256_of(path), "m.pt"]
    ckpt = load_checkpoint(path)
    reg, score = build_networks(ckpt)
    assert not reg.training and not score.training
    assert ckpt["config"]["box_lo"] == list(BOX.lo)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "m.pt")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.pt: sha256 .* does not match") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_missing_checksum_is_refused(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path / "m.pt")
    Path(f"{path}.sha256").unlink()
    with pytest.raises(ValueError, match="no checksum file"):
        load_checkpoint(path)


class _NotAllowed:
    """An arbitrary class: unpickling it would run code outside torch's allow-list."""

    def __reduce__(self):
        return (print, ("unpickled",))


def test_weights_are_loaded_with_weights_only(tmp_path: Path) -> None:
    """A file with a matching checksum but a non-tensor object is still refused."""
    path = tmp_path / "evil.pt"
    torch.save({"format": "cacflow-direct/1", "payload": _NotAllowed()}, path)
    Path(f"{path}.sha256").write_text(f"{sha256_of(path)}  evil.pt\n")
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_cell_losses_hand_computed() -> None:
    """Two cells: one with 3 (pixels x weight) of RCA calcium, one bright but not coronary;
    a third without bright pixels is ignored."""
    from cacflow.methods.direct.train import cell_losses

    amount = torch.tensor([[[[math.e - 1.0, 5.0, 9.0]]]])  # (1, 1, 1, 3)
    route = torch.tensor([[0.1, 0.1, 0.5, 0.3], [0.2, 0.2, 0.2, 0.4], [0.25] * 4]).T
    route = route.reshape(1, 4, 1, 3)
    target = torch.zeros(1, 3, 1, 3)
    target[0, 2, 0, 0] = 3.0
    counts = torch.tensor([[[[2.0, 7.0, 0.0]]]]).expand(1, 4, 1, 3)
    amount_err = abs(1.0 - math.log(4.0))
    ce = -(math.log(0.5) + math.log(0.4)) / 2.0
    got = cell_losses(amount, route, target, counts).item()
    assert got == pytest.approx(amount_err + ce, rel=1e-5)
