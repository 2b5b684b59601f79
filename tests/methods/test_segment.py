"""Method `segment`: candidate rule, votes, weights file, tiny training + inference end to
end on phantoms written here, triage operating point and table (hand-computed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cacflow.cli import main as cli_main
from cacflow.conventions import Label
from cacflow.methods.hu_threshold import predict_mask
from cacflow.methods.segment.data import (
    CORONARY,
    N_CLASSES,
    N_INPUTS,
    Crop,
    coarse_any,
    coarse_inputs,
    coarse_targets,
    component_vote,
    majority_vote,
    to_coarse,
)
from cacflow.methods.segment.infer import (
    TRIAGE_FILE,
    SegmentModel,
    infer_dir,
    label_candidates,
    predict_volume,
)
from cacflow.methods.segment.model import FORMAT, load_checkpoint
from cacflow.methods.segment.settings import SegmentTrainSettings
from cacflow.methods.segment.train import train
from cacflow.methods.segment.triage import operating_point, triage_table
from cacflow.methods.torchutil import save_checkpoint
from cacflow.score import write_labels
from cacflow.synth import plan_cohort
from cacflow.synth.cohort import synth_scan_v2
from cacflow.volume import Geometry, Volume, read_volume, write_volume

SHAPE = (24, 64, 64)  # z, y, x
SPACING = (2.0, 2.0, 1.5)  # x, y, z mm
TINY = SegmentTrainSettings(
    ensemble=2,
    epochs=1,
    iterations=2,
    batch=2,
    spacing_mm=4.0,
    crop_voxels=16,
    patch_voxels=16,
    channels=(4, 8, 16),
)


def phantom(seed: int) -> tuple[Volume, np.ndarray]:
    """Body ellipse (40 HU) with noise, a bright unlabelled bar (bone) and three lesions
    (LAD, RCA, TAC); returns (volume, reference label mask)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    hu = np.full(SHAPE, -1000.0, dtype=np.float32)
    hu[((x - 31.5) / 28.0) ** 2 + ((y - 31.5) / 20.0) ** 2 <= 1.0] = 40.0
    hu += rng.normal(0.0, 10.0, size=SHAPE).astype(np.float32)
    hu[:, 10:12, 5:20] = 700.0
    lab = np.zeros(SHAPE, dtype=np.uint8)
    for label, (cz, cy, cx) in (
        (Label.LAD, (10, 25, 38)),
        (Label.RCA, (14, 36, 24)),
        (Label.TAC, (4, 40, 44)),
    ):
        cx += int(rng.integers(-2, 3))
        hu[cz : cz + 2, cy : cy + 2, cx : cx + 3] = rng.uniform(150.0, 600.0)
        lab[cz : cz + 2, cy : cy + 2, cx : cx + 3] = label
    geom = Geometry((-63.0, -63.0, -17.25), SPACING, slice_thickness_mm=3.0)
    return Volume(hu, geom, {"series_uid": f"1.2.9.{seed}"}), lab


def write_phantoms(root: Path, seeds: list[int]) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    for s in seeds:
        vol, lab = phantom(s)
        write_volume(vol, images / f"1.2.9.{s}.nii")
        write_labels(lab, vol, labels / f"1.2.9.{s}.nii")
    return images, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("segment")
    images, labels = write_phantoms(root, [1, 2, 3])
    train(images, labels, root / "m.pt", settings=TINY, device="cpu", threads=1, log=lambda m: None)
    return root, images


# --- grid, inputs, targets ----------------------------------------------------------------
def test_coarse_inputs_and_targets_hand_computed() -> None:
    hu = np.full((4, 4, 4), -1000.0, dtype=np.float32)
    hu[0, 0, 0] = 500.0  # one bright voxel in block (0, 0, 0)
    lab = np.zeros((4, 4, 4), dtype=np.uint8)
    lab[0, 0, 0] = Label.LCX
    lab[2:4, 2:4, 2] = Label.RCA  # 4 RCA voxels ...
    lab[2, 2, 3] = Label.LAD  # ... beat 1 LAD voxel in block (1, 1, 1)
    crop = Crop((0, 0, 0), (2, 2, 2), (2, 2, 2), "given")
    x = coarse_inputs(hu, crop, 130.0)
    assert x.shape == (N_INPUTS, 2, 2, 2)
    mean0 = (500.0 - 7000.0) / 8.0  # block mean, below the window: 0
    assert x[0, 0, 0, 0] == pytest.approx(max(0.0, (mean0 + 200.0) / 1200.0))
    assert x[1, 0, 0, 0] == pytest.approx(0.2 + 0.8 * (500.0 - 130.0) / 870.0)
    assert (x[1].ravel()[1:] == 0).all()
    assert x[2, 0, 0, 0] == -1.0 and x[4, 1, 1, 1] == 1.0
    y = coarse_targets(lab, crop)
    assert y[0, 0, 0] == Label.LCX and y[1, 1, 1] == Label.RCA
    assert y.sum() == Label.LCX + Label.RCA
    # crop hanging over the image: padding, no labels
    shifted = Crop((-2, 0, 0), (2, 2, 2), (2, 2, 2), "given")
    assert (coarse_targets(lab, shifted)[0] == 0).all()
    assert (coarse_inputs(hu, shifted, 130.0)[1, 0] == 0).all()
    # analysis voxel centres in coarse coordinates: voxel 0 and 1 of a 2-block at -0.25, 0.25
    np.testing.assert_allclose(to_coarse(np.array([[0, 1, 3]]), crop), [[-0.25, 0.25, 1.25]])


def test_no_label_below_the_threshold() -> None:
    """Whatever the network says, only candidate voxels (>= threshold) get a label."""
    rng = np.random.default_rng(0)
    hu = rng.uniform(-100.0, 400.0, size=(8, 8, 8)).astype(np.float32)
    crop = Crop((0, 0, 0), (2, 2, 2), (4, 4, 4), "given")
    probs = rng.random((3, N_CLASSES, 4, 4, 4)).astype(np.float32)
    probs[:, 0] = 0.0  # the network calls every voxel calcium
    for by_component in (True, False):
        mask = label_candidates(hu, crop, probs, 130.0, by_component=by_component)
        assert mask.shape == hu.shape and mask.dtype == np.uint8
        assert (mask[hu < 130.0] == 0).all()
        assert (mask[hu >= 130.0] > 0).all()
    # outside the crop: background
    small = Crop((0, 0, 0), (1, 1, 1), (4, 4, 4), "given")
    mask = label_candidates(hu, small, probs, 130.0)
    assert (mask[4:] == 0).all() and (mask[:, 4:] == 0).all()


def test_majority_vote_hand_made() -> None:
    votes = np.array([[1, 2, 3, 0, 7], [1, 2, 2, 5, 7], [4, 3, 1, 5, 0]])
    # col 0: 1,1,4 -> 1; col 1: 2,2,3 -> 2; col 2: 3,2,1 tie -> smallest 1;
    # col 3: 0,5,5 -> 5; col 4: 7,7,0 -> 7
    np.testing.assert_array_equal(majority_vote(votes), [1, 2, 1, 5, 7])
    np.testing.assert_array_equal(majority_vote(votes[:1]), votes[0])


def test_component_vote_hand_made() -> None:
    labels = np.array([1, 1, 2, 3, 3, 0, 0, 5])
    comps = np.array([7, 7, 7, 2, 2, 2, 9, 9])
    # comp 7: 1,1,2 -> 1; comp 2: 3,3,0 -> 3; comp 9: 0,5 tie -> 0
    np.testing.assert_array_equal(component_vote(labels, comps), [1, 1, 1, 3, 3, 3, 0, 0])


# --- weights ------------------------------------------------------------------------------
def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint({"format": FORMAT, "config": {}, "members": [{"x": 1}]}, path)
    assert load_checkpoint(path)["members"] == [{"x": 1}]
    Path(f"{path}.sha256").write_text("0" * 64 + "  m.pt\n")
    with pytest.raises(ValueError, match="does not match"):
        load_checkpoint(path)
    Path(f"{path}.sha256").unlink()
    with pytest.raises(ValueError, match="no checksum file"):
        load_checkpoint(path)


def test_other_weights_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.pt"
    save_checkpoint({"format": "cacflow-direct/1"}, path)
    with pytest.raises(ValueError, match="not a cacflow-segment"):
        load_checkpoint(path)


# --- training and inference ---------------------------------------------------------------
def test_tiny_training_then_inference(trained, tmp_path: Path) -> None:
    root, images = trained
    model = root / "m.pt"
    summary = json.loads(model.with_suffix(".json").read_text())
    assert summary["n_scans"] == 3 and len(summary["members"]) == 2
    ckpt = load_checkpoint(model)
    assert [m["seed"] for m in ckpt["members"]] == [0, 1]
    for m in ckpt["members"]:
        assert m["validation_series"]  # each member has its own held-out scan
    out = tmp_path / "out"
    n = infer_dir(images, out, model=model, device="cpu", settings={"ensemble": 2})
    assert n == 3
    for p in sorted(images.glob("*.nii")):
        img, mask = read_volume(p), read_volume(out / p.name)
        assert mask.array.shape == img.array.shape
        np.testing.assert_allclose(mask.geometry.origin, img.geometry.origin)
        assert (mask.array[img.array < 130.0] == 0).all()
        assert set(np.unique(mask.array)) <= set(range(N_CLASSES))
    tri = pd.read_parquet(out / TRIAGE_FILE)
    assert list(tri.columns) == [
        "series_uid",
        "triage_score",
        "triage_negative",
        "n_models",
        "crop_centred_on",
    ]
    assert len(tri) == 3 and (tri["n_models"] == 2).all()
    # single model, and more models than the file holds
    infer_dir(images, tmp_path / "one", model=model, device="cpu", settings={"single_model": True})
    assert (pd.read_parquet(tmp_path / "one" / TRIAGE_FILE)["n_models"] == 1).all()
    with pytest.raises(ValueError, match="holds 2 models"):
        infer_dir(images, tmp_path / "x", model=model, device="cpu", settings={"ensemble": 3})


def test_same_seed_same_weights(trained, tmp_path: Path) -> None:
    root, _ = trained
    images, labels = root / "images", root / "labels"
    again = tmp_path / "again.pt"
    train(images, labels, again, settings=TINY, device="cpu", threads=1, log=lambda m: None)
    a, b = load_checkpoint(root / "m.pt"), load_checkpoint(again)
    for ma, mb in zip(a["members"], b["members"], strict=True):
        for k in ma["state"]:
            torch.testing.assert_close(ma["state"][k], mb["state"][k], rtol=0, atol=0)


def test_cli_train_and_infer(trained, tmp_path: Path) -> None:
    root, images = trained
    out = tmp_path / "cli.pt"
    args = [
        "train-segment",
        "--images",
        str(images),
        "--labels",
        str(root / "labels"),
        "--out",
        str(out),
        "--ensemble",
        "1",
        "--epochs",
        "1",
        "--iterations",
        "1",
        "--batch",
        "1",
        "--spacing-mm",
        "4",
        "--crop",
        "16",
        "--patch",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
    ]
    assert cli_main(args) == 0
    rc = cli_main(
        [
            "infer",
            "segment",
            str(images),
            str(tmp_path / "o"),
            "--model",
            str(out),
            "--settings",
            json.dumps({"ensemble": 1}),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "o").glob("*.nii"))) == 3


# --- triage -------------------------------------------------------------------------------
def test_operating_point_has_no_false_negative_on_validation() -> None:
    scores = np.array([0.9, 0.05, 0.3, 0.2, 0.6])
    positive = np.array([True, False, True, False, False])
    t = operating_point(scores, positive)
    assert t == 0.3  # the smallest positive score
    negative = scores < t
    assert not (negative & positive).any()
    assert negative.tolist() == [False, True, False, True, False]
    assert operating_point(scores, np.zeros(5, dtype=bool)) == 0.0  # nothing called negative


def test_triage_table_hand_computed() -> None:
    tri = pd.DataFrame(
        {"series_uid": list("abcde"), "triage_negative": [True, True, False, False, True]}
    )
    scores = pd.DataFrame(
        {
            "series_uid": list("abcde"),
            "method": "reference",
            "artery": "total",
            "agatston": [0.0, 0.0, 0.0, 12.0, 3.0],
        }
    )
    t = triage_table(tri, scores, n_boot=200, seed=0).set_index("statistic")
    assert t.loc["negative_excluded_fraction", "value"] == pytest.approx(2 / 3)
    assert t.loc["false_negatives", "value"] == 1  # scan e
    assert t.loc["false_negative_rate", "value"] == pytest.approx(0.5)
    assert t.loc["n_negative", "value"] == 3 and t.loc["n_positive", "value"] == 2
    assert t.loc["called_negative_fraction", "value"] == pytest.approx(0.6)
    lo, hi = t.loc["negative_excluded_fraction", ["ci_low", "ci_high"]]
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0
    assert (t["n"] == 5).all() and (t["method"] == "segment").all()
    # no reference: only the called-negative share
    alone = triage_table(tri, None, n_boot=50).set_index("statistic")
    assert list(alone.index) == ["called_negative_fraction"]


def test_report_section_is_added() -> None:
    from cacflow.methods.segment.report import triage_section

    tri = pd.DataFrame({"series_uid": list("ab"), "triage_negative": [True, False]})
    scores = pd.DataFrame(
        {"series_uid": list("ab"), "method": "reference", "artery": "total", "agatston": [0, 5]}
    )
    page = triage_section(triage_table(tri, scores, n_boot=20))
    assert 'id="triage"' in page and "100.0 %" in page  # the one negative scan is excluded


def test_region_detection_hand_computed() -> None:
    from cacflow.methods.segment.evaluate import region_detection

    les = pd.DataFrame(
        {
            "series_uid": ["a", "a", "a", "a", "b"],
            "method": ["reference", "reference", "segment", "segment", "segment"],
            "artery": ["TAC", "TAC", "TAC", "LAD", "TAC"],
            "x": [0.0, 50.0, 1.0, 0.0, 0.0],
            "y": 0.0,
            "z": 0.0,
        }
    )
    t = region_detection(les, "segment", ("TAC",)).iloc[0]
    # one of two reference TAC lesions found; two segment TAC lesions, one real
    assert (t["n_reference"], t["n_method"], t["matched"]) == (2, 2, 1)
    assert t["f1"] == pytest.approx(0.5)


# --- anatomy gate ---------------------------------------------------------------------------
def test_coarse_any_hand_computed() -> None:
    crop = Crop((-1, 0, 0), (2, 2, 2), (2, 2, 2), "given")
    mask = np.zeros((4, 4, 4), dtype=bool)
    mask[0, 3, 3] = True  # analysis z 0 lies in coarse block z 0 (the crop starts at z -1)
    mask[2, 0, 0] = True  # analysis z 2: coarse block z 1
    mask[3, 3, 3] = True  # analysis z 3 lies beyond the crop's 4 voxels (z -1..2)
    want = np.zeros((2, 2, 2), dtype=bool)
    want[0, 1, 1] = want[1, 0, 0] = True
    np.testing.assert_array_equal(coarse_any(mask, crop), want)


SHIPPED = Path(__file__).resolve().parents[2] / "resources" / "models" / "segment.pt"


@pytest.mark.slow
def test_anatomy_gate_keeps_the_coronary_labels_hu_threshold_accepts() -> None:
    """On a v2 scan (512², seed 31, scan 1) the shipped networks label coronary calcium
    both where the ``hu-threshold`` anatomy accepts it and where it does not; the gate
    keeps the first, clears the second, leaves every other label alone and can only lower
    the triage score."""
    plan = plan_cohort(2, 31, (3.0,), 0.0)[0]
    scan = synth_scan_v2(plan, 31, 512, ("gate-test",))
    vol = Volume(scan.rendered.hu, scan.rendered.grid.geometry())
    model = SegmentModel.load(SHIPPED, "cpu")
    raw, raw_row = predict_volume(model, vol, 130.0, gate=False)
    gated, row = predict_volume(model, vol, 130.0, gate=True)
    accepted = predict_mask(vol) > 0
    coronary = np.isin(raw, CORONARY)
    assert (coronary & accepted).any() and (coronary & ~accepted).any()  # both sides tested
    np.testing.assert_array_equal(gated[coronary & accepted], raw[coronary & accepted])
    assert not gated[coronary & ~accepted].any()
    np.testing.assert_array_equal(gated[~coronary], raw[~coronary])
    assert row["triage_score"] <= raw_row["triage_score"]
