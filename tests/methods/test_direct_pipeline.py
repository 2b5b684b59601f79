"""Direct method end to end on small phantoms: inference, scores, training, CLI, shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cacflow.cli import main as cli_main
from cacflow.conventions import (
    ARTERIES,
    DEFAULT_SCHEMES,
    IncrementFactor,
    Label,
    ScoringConventions,
)
from cacflow.methods.direct.atlas import ATLAS_SHAPE, HeartBox
from cacflow.methods.direct.infer import (
    HEATMAP_SUFFIX,
    REGISTRATION_FILE,
    DirectModel,
    heatmap,
    infer_dir,
    network_volume,
    predict_volume,
    prediction_rows,
)
from cacflow.methods.direct.model import (
    RegistrationNet,
    ScoringNet,
    load_checkpoint,
    make_checkpoint,
    save_checkpoint,
    sha256_of,
)
from cacflow.methods.direct.runtime import resolve_device
from cacflow.methods.direct.scores import PREDICTIONS_FILE, scores_from_predictions
from cacflow.score import write_labels
from cacflow.stats import categorize
from cacflow.tables import read_table
from cacflow.volume import Geometry, Volume, read_volume, write_volume

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "resources" / "models" / "direct.pt"
SPACING = (2.0, 2.0, 1.5)  # x, y, z mm
SHAPE = (24, 64, 64)  # z, y, x
BOX = HeartBox((-30.0, -30.0, -12.0), (30.0, 30.0, 12.0))


def phantom(seed: int) -> tuple[Volume, np.ndarray]:
    """A body ellipse (40 HU) in air with a 'heart' and three calcified lesions (LAD, RCA,
    LM), a rib-like bright bar (not labelled) and noise; returns (volume, label mask)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    hu = np.full(SHAPE, -1000.0, dtype=np.float32)
    body = ((x - 31.5) / 28.0) ** 2 + ((y - 31.5) / 20.0) ** 2 <= 1.0
    hu[body] = 40.0
    hu += rng.normal(0.0, 10.0, size=SHAPE).astype(np.float32)
    hu[:, 10:12, 5:20] = 700.0
    lab = np.zeros(SHAPE, dtype=np.uint8)
    for label, (cz, cy, cx) in (
        (Label.LAD, (10, 25, 38)),
        (Label.RCA, (14, 36, 24)),
        (Label.LM, (6, 28, 30)),
    ):
        cz, cy, cx = cz + int(rng.integers(-1, 2)), cy, cx + int(rng.integers(-2, 3))
        hu[cz : cz + 2, cy : cy + 2, cx : cx + 3] = rng.uniform(150.0, 600.0)
        lab[cz : cz + 2, cy : cy + 2, cx : cx + 3] = label
    origin = (-63.0, -63.0, -17.25)
    geom = Geometry(origin, SPACING, slice_thickness_mm=3.0)
    return Volume(hu, geom, {"series_uid": f"1.2.3.{seed}"}), lab


def write_phantoms(root: Path, seeds: list[int]) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    for s in seeds:
        vol, lab = phantom(s)
        write_volume(vol, images / f"1.2.3.{s}.nii")
        write_labels(lab, vol, labels / f"1.2.3.{s}.nii")
    return images, labels


def random_model(path: Path) -> Path:
    """Untrained networks (fixed seed) with the test box: registration = identity."""
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


# --- scores from slice predictions --------------------------------------------------------


def test_scores_from_predictions_hand_computed() -> None:
    pred = pd.DataFrame(
        {
            "series_uid": ["a"] * 6 + ["b"] * 3,
            "slice": [0, 0, 0, 1, 1, 1, 0, 0, 0],
            "artery": list(ARTERIES) * 3,
            "pseudo_agatston": [10.0, 0.0, 3.0, 6.0, 1.5, 0.0, 0.0, 0.0, 0.0],
        }
    )
    out = scores_from_predictions(pred, 1.0, 2.5, ScoringConventions())
    got = out.set_index(["series_uid", "artery"])["agatston"]
    # increment/3: factor 1/3
    assert got["a", "LAD"] == pytest.approx(16.0 / 3.0)
    assert got["a", "LCX"] == pytest.approx(1.5 / 3.0)
    assert got["a", "RCA"] == pytest.approx(3.0 / 3.0)
    assert got["a", "total"] == pytest.approx(20.5 / 3.0)
    assert (got["b"] == 0.0).all()
    assert list(out["artery"]) == [*ARTERIES, "total"] * 2
    assert out[["volume_mm3", "mass_mg", "n_lesions"]].isna().all().all()
    conv = ScoringConventions(increment_factor=IncrementFactor.INCREMENT_OVER_THICKNESS)
    out2 = scores_from_predictions(pred, 1.0, 2.5, conv).set_index(["series_uid", "artery"])
    assert out2.loc[("a", "total"), "agatston"] == pytest.approx(20.5 * 0.4)


# --- inference ----------------------------------------------------------------------------


def test_infer_dir_outputs_and_determinism(tmp_path: Path) -> None:
    images, _ = write_phantoms(tmp_path, [1, 2])
    model = random_model(tmp_path / "m.pt")
    n = infer_dir(images, tmp_path / "out", model=model, device="cpu", threads=1, heatmaps=1)
    assert n == 2
    pred = read_table(tmp_path / "out" / PREDICTIONS_FILE)
    assert list(pred.columns) == ["series_uid", "slice", "artery", "pseudo_agatston"]
    assert len(pred) == 2 * SHAPE[0] * len(ARTERIES)
    assert (pred["pseudo_agatston"] >= 0).all()
    reg = read_table(tmp_path / "out" / REGISTRATION_FILE).set_index("series_uid")
    # identity registration: slices with |(k - 11.5) * 1.5| <= 12 mm, i.e. 4..19
    assert (reg["first_slice"] == 4).all() and (reg["last_slice"] == 19).all()
    assert (reg["window_width"] == 32).all() and (reg["window_x0"] == 16).all()
    outside = pred[(pred["slice"] < 4) | (pred["slice"] > 19)]
    assert (outside["pseudo_agatston"] == 0).all()
    # the untrained model predicts something inside the window
    assert pred["pseudo_agatston"].sum() > 0
    # heatmap of the first series: each slice sums to its predicted total (mm^2 x weight)
    uid = "1.2.3.1"
    hm = read_volume(tmp_path / "out" / f"{uid}{HEATMAP_SUFFIX}.nii").array
    per_slice = pred[pred["series_uid"] == uid].groupby("slice")["pseudo_agatston"].sum()
    np.testing.assert_allclose(hm.sum(axis=(1, 2)), per_slice.to_numpy(), rtol=1e-4, atol=1e-4)
    assert not (tmp_path / "out" / f"1.2.3.2{HEATMAP_SUFFIX}.nii").exists()
    # same input, same predictions
    infer_dir(images, tmp_path / "again", model=model, device="cpu", threads=1, heatmaps=0)
    again = read_table(tmp_path / "again" / PREDICTIONS_FILE)
    pd.testing.assert_frame_equal(pred, again)


def test_infer_refuses_tampered_weights(tmp_path: Path) -> None:
    images, _ = write_phantoms(tmp_path, [1])
    model = random_model(tmp_path / "m.pt")
    Path(f"{model}.sha256").write_text("0" * 64 + "  m.pt\n")
    with pytest.raises(ValueError, match="does not match"):
        infer_dir(images, tmp_path / "out", model=model, device="cpu")
    rc = cli_main(["infer", "direct", str(images), str(tmp_path / "o2"), "--model", str(model)])
    assert rc != 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_device_choice_falls_back_to_cpu() -> None:
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_unknown_device_is_refused() -> None:
    with pytest.raises((ValueError, RuntimeError)):
        resolve_device("tpu")


# --- training -----------------------------------------------------------------------------


def test_train_smoke_through_the_cli(tmp_path: Path) -> None:
    """Two tiny iterations of each network from the CLI; the result loads and infers."""
    images, labels = write_phantoms(tmp_path, [1, 2, 3])
    out = tmp_path / "models" / "direct.pt"
    args = ["train-direct", "--images", str(images), "--labels", str(labels), "--out", str(out)]
    args += ["--epochs", "1", "--reg-iterations", "2", "--device", "cpu", "--threads", "1"]
    assert cli_main(args) == 0
    assert Path(f"{out}.sha256").read_text().split()[0] == sha256_of(out)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["n_scans"] == 3 and summary["settings"]["epochs"] == 1
    assert summary["target_inside_windows_min"] == pytest.approx(1.0)
    ckpt = load_checkpoint(out)
    lo, hi = np.array(ckpt["config"]["box_lo"]), np.array(ckpt["config"]["box_hi"])
    assert np.all(hi > lo)
    assert ckpt["atlas"].shape == ATLAS_SHAPE
    n = infer_dir(images, tmp_path / "pred", model=out, device="cpu", threads=1, heatmaps=0)
    assert n == 3


def test_training_needs_labels(tmp_path: Path) -> None:
    images, _ = write_phantoms(tmp_path, [1])
    (tmp_path / "empty").mkdir()
    rc = cli_main(
        ["train-direct", "--images", str(images), "--labels", str(tmp_path / "empty")]
        + ["--out", str(tmp_path / "m.pt"), "--device", "cpu"]
    )
    assert rc != 0


# --- the shipped model ----------------------------------------------------------------------


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights yet")
def test_shipped_model_checksum_and_card() -> None:
    digest = sha256_of(SHIPPED)
    ckpt = load_checkpoint(SHIPPED)
    assert ckpt["config"]["arteries"] == list(ARTERIES)
    assert SHIPPED.stat().st_size < 8 * 2**20
    card = (SHIPPED.parent / "MODEL_CARD.md").read_text()
    assert digest in card


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights yet")
def test_shipped_atlas_is_the_shipped_models(tmp_path: Path) -> None:
    """resources/models/direct_atlas.{nii,json} are what export_atlas writes from the
    shipped weights (so they cannot drift from the model they describe)."""
    from cacflow.methods.direct.model import export_atlas
    from cacflow.volume import read_volume

    export_atlas(SHIPPED, tmp_path / "atlas.nii")
    shipped = SHIPPED.parent / "direct_atlas.nii"
    assert (tmp_path / "atlas.nii").read_bytes() == shipped.read_bytes()
    got, want = read_volume(tmp_path / "atlas.nii"), read_volume(shipped)
    assert got.meta == want.meta
    assert want.meta["model_sha256"] == sha256_of(SHIPPED)
    ckpt = load_checkpoint(SHIPPED)
    np.testing.assert_array_equal(want.array, ckpt["atlas"].numpy())
    assert want.meta["heart_box_lo_mm"] == ckpt["config"]["box_lo"]


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights yet")
def test_shipped_model_scores_synthetic_scans(tmp_path: Path) -> None:
    """The shipped model on fresh synthetic scans (DICOM -> convert -> 3/1.5 mm ->
    reference), against the scoring engine on the reference masks."""
    from cacflow.dicom.convert import QcConfig, convert_dir
    from cacflow.methods.direct.evaluate import score_pairs
    from cacflow.reference import reference_batch
    from cacflow.resample import resample_dir
    from cacflow.synth import generate_cohort

    generate_cohort(tmp_path / "c", 3, 777)
    convert_dir(tmp_path / "c" / "dicom", tmp_path / "native", QcConfig(), workers=1)
    resample_dir(tmp_path / "native", tmp_path / "img", 3.0, 1.5)
    reference_batch(tmp_path / "img", tmp_path / "c" / "annotations.csv", tmp_path / "lab", {})
    table = score_pairs(SHIPPED, tmp_path / "img", tmp_path / "lab", ScoringConventions())
    assert len(table) == 3
    # (measured when the model shipped: totals 554.8 / 0 / 18.3 -> 612.7 / 0 / 19.6)
    for a in (*ARTERIES, "total"):
        ref, got = table[f"ref_{a}"].to_numpy(), table[f"direct_{a}"].to_numpy()
        assert np.all(np.abs(got - ref) <= 10.0 + 0.2 * ref), (a, list(ref), list(got))
        assert np.all(got[ref == 0] == 0)
    scheme = DEFAULT_SCHEMES["A"]
    np.testing.assert_array_equal(
        categorize(table["ref_total"].to_numpy(), scheme),
        categorize(table["direct_total"].to_numpy(), scheme),
    )


def test_network_volume_keeps_the_field_of_view_and_its_centre() -> None:
    rng = np.random.default_rng(0)
    g = Geometry((-80.0, 20.0, -300.0), (0.3125, 0.3125, 1.5), slice_thickness_mm=3.0)
    vol = Volume(rng.normal(40.0, 10.0, (4, 512, 512)).astype(np.float32), g)
    net = network_volume(vol, 0.78)
    assert net.array.shape == (4, 205, 205)  # int(512 * 0.3125 / 0.78)
    sx, sy, sz = net.geometry.spacing
    assert sx >= 0.78 and sy >= 0.78 and sz == 1.5
    assert 205 * sx == pytest.approx(512 * 0.3125)  # the same field of view
    centre = np.array([(512 - 1) / 2.0, (512 - 1) / 2.0, 1.0])
    net_centre = np.array([(205 - 1) / 2.0, (205 - 1) / 2.0, 1.0])
    np.testing.assert_allclose(
        net.geometry.index_to_world(net_centre), g.index_to_world(centre), atol=1e-6
    )
    assert network_volume(vol, 0.3) is vol  # pixels large enough: the analysis grid


@pytest.mark.skipif(not SHIPPED.exists(), reason="no shipped weights yet")
def test_small_pixels_are_scored_on_the_network_grid() -> None:
    """A 2 mm phantom and the same image upsampled to 1 mm: with ``min_pixel_mm`` 2 the
    network sees the upsampled one back at 2 mm and gives nearly the same total (+17 %:
    the linear round trip smooths the image), on the 1 mm grid itself a 16 times smaller
    one; the decision-feedback map lies on the analysis grid and sums, slice by slice, to
    the predicted scores."""
    from scipy import ndimage

    vol, _ = phantom(5)
    model = DirectModel.load(SHIPPED, "cpu")
    g = vol.geometry
    fine_arr = ndimage.zoom(vol.array, (1, 2, 2), order=1, grid_mode=True, mode="nearest")
    d = np.asarray(g.direction, float).reshape(3, 3)
    corner = g.index_to_world(np.array([-0.5, -0.5, 0.0]))
    sx, sy = g.spacing[0] / 2.0, g.spacing[1] / 2.0
    origin = corner + d[:, 0] * sx / 2.0 + d[:, 1] * sy / 2.0
    fine = Volume(
        fine_arr.astype(np.float32),
        Geometry(tuple(origin), (sx, sy, g.spacing[2]), g.direction, g.slice_thickness_mm),
    )

    def total(v: Volume, pred) -> float:
        return float(prediction_rows("s", pred, v.geometry)["pseudo_agatston"].sum())

    native = total(vol, predict_volume(model, vol))
    pred = predict_volume(model, fine, min_pixel_mm=2.0, keep_density=True)
    assert pred.grid_shape == tuple(vol.array.shape[1:])
    assert native > 10.0  # the phantom holds calcium
    assert total(fine, pred) == pytest.approx(native, rel=0.25)
    assert total(fine, predict_volume(model, fine)) < 0.5 * native  # what the grid does
    hm = heatmap(fine, pred)
    assert hm.shape == fine.array.shape
    want = pred.scores_px.sum(axis=1) * pred.grid.pixel_area_mm2
    np.testing.assert_allclose(hm.sum(axis=(1, 2)), want, rtol=1e-4, atol=1e-3)
