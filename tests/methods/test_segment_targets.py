"""Issue 16 targets for the shipped `segment` model, read from the workflow's own tables
(``agreement``, ``confusion``, ``detection``, ``lesions``, ``triage``) of runs with
``methods: [segment]`` on the held-out datasets of config/config.yaml (same seeds, so the
same scans as the model card's figures):

- ``heldout_v2``: 24 synthetic v2 scans (seed 2003), never trained on;
- ``inserted``: the two real backgrounds with calcium inserted under seeds 101-105;
- the real CAC-free chest CTs of shared/data/real_ct: every scorable series < 10 and
  called CAC-negative by the triage.

Targets: coronary lesion F1 >= 0.90, ICC >= 0.95, kappa (A) >= 0.90, per-artery ICC >= 0.90,
TAC lesion F1 >= 0.85. A target the shipped model misses is a strict xfail naming the
measured figure (resources/models/MODEL_CARD_segment.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from cacflow.methods.segment.evaluate import region_detection
from wf import REAL_CT, REPO, copy_config, run_snakemake

pytestmark = pytest.mark.slow
WEIGHTS = REPO / "resources" / "models" / "segment.pt"
needs_real = pytest.mark.skipif(not REAL_CT.is_dir(), reason="shared/data/real_ct not present")
CAC_FREE_MAX = 10.0


def _run(tmp_path_factory, name: str, spec: dict | None, targets: list[str]) -> Path:
    """``results/<name>`` of a run with methods [segment]; ``spec`` overrides the
    dataset's entry in config/config.yaml (None: as shipped)."""
    workdir = tmp_path_factory.mktemp(name)
    config = yaml.safe_load(copy_config(workdir).read_text())
    datasets = {name: spec if spec is not None else config["datasets"][name]}
    for ds in datasets.values():
        inserted = ds.get("inserted")
        if inserted:  # the shipped config names the backgrounds relative to the repository
            inserted["backgrounds"] = [
                str((REPO / b).resolve()) if not Path(b).is_absolute() else b
                for b in inserted["backgrounds"]
            ]
    user = {
        "datasets": datasets,
        "run": [name],
        "methods": ["segment"],
        "segment": {"weights": str(WEIGHTS)},
        "stats": {"n_boot": 50},
    }
    (workdir / "user.yaml").write_text(yaml.safe_dump(user))
    paths = [f"results/{name}/{t}" for t in targets]
    run_snakemake(workdir, "--cores", "2", *paths, "--configfile", "user.yaml")
    return workdir / "results" / name


TABLES = ["agreement.parquet", "detection.parquet", "lesions.parquet", "triage.parquet"]


@pytest.fixture(scope="module")
def heldout_v2(tmp_path_factory) -> Path:
    return _run(tmp_path_factory, "heldout_v2", None, TABLES)


@pytest.fixture(scope="module")
def inserted(tmp_path_factory) -> Path:
    return _run(tmp_path_factory, "inserted", None, TABLES)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return _run(
        tmp_path_factory, "real", {"dicom_dir": str(REAL_CT)}, ["scores.parquet", "triage.parquet"]
    )


def _figures(run: Path) -> dict[str, float]:
    ag = pd.read_parquet(run / "agreement.parquet")
    ag = ag[ag["method"] == "segment"].set_index(["artery", "statistic"])["value"]
    det = pd.read_parquet(run / "detection.parquet")
    det = det[det["method"] == "segment"].set_index(["artery", "statistic"])["value"]
    tac = region_detection(pd.read_parquet(run / "lesions.parquet"), "segment", ("TAC",))
    return {
        "f1": float(det[("total", "lesion_f1")]),
        "icc": float(ag[("total", "icc")]),
        "kappa_A": float(ag[("total", "kappa_linear:A")]),
        **{f"icc_{a}": float(ag[(a, "icc")]) for a in ("LAD", "LCX", "RCA")},
        "tac_f1": float(tac["f1"].iloc[0]),
    }


def _check(fig: dict[str, float]) -> None:
    assert fig["f1"] >= 0.90, fig
    assert fig["icc"] >= 0.95, fig
    assert fig["kappa_A"] >= 0.90, fig
    for a in ("LAD", "LCX", "RCA"):
        assert fig[f"icc_{a}"] >= 0.90, fig
    assert fig["tac_f1"] >= 0.85, fig


@pytest.mark.xfail(
    strict=True,
    reason="issue 16 targets not met by the shipped model on heldout_v2: lesion F1 0.846, "
    "kappa(A) 0.77, ICC LAD 0.81 / LCX 0.28, TAC F1 0 (MODEL_CARD_segment.md); ICC 0.967 met",
)
def test_segment_targets_on_heldout_v2(heldout_v2: Path) -> None:
    _check(_figures(heldout_v2))


@needs_real
@pytest.mark.xfail(
    strict=True,
    reason="issue 16 targets not met on held-out inserted calcium: lesion F1 0.351, ICC 0.723, "
    "per-artery ICC 0.57-0.73, kappa(A) 0.61, no TAC reference lesion (MODEL_CARD_segment.md)",
)
def test_segment_targets_on_held_out_inserted_calcium(inserted: Path) -> None:
    _check(_figures(inserted))


def test_triage_has_no_false_negative_on_heldout_v2(heldout_v2: Path) -> None:
    tri = pd.read_parquet(heldout_v2 / "triage.parquet").set_index("statistic")["value"]
    assert tri["false_negatives"] == 0


@needs_real
@pytest.mark.xfail(
    strict=True,
    reason="the shipped model calls 1 of the 20 held-out inserted copies CAC-negative "
    "(MODEL_CARD_segment.md); target 0 false negatives",
)
def test_triage_has_no_false_negative_on_held_out_inserted_calcium(inserted: Path) -> None:
    tri = pd.read_parquet(inserted / "triage.parquet").set_index("statistic")["value"]
    assert tri["false_negatives"] == 0


@needs_real
@pytest.mark.xfail(
    strict=True,
    reason="real CAC-free series scored 117.8 (LIDC-IDRI-0314) and 20.1 (A0001 B), target < 10; "
    "one of the two called negative (MODEL_CARD_segment.md)",
)
def test_real_cac_free_series_below_10_and_called_negative(real: Path) -> None:
    scans = pd.read_parquet(real / "scans.parquet")
    ok = set(scans.loc[scans["status"] == "ok", "series_uid"])
    assert ok, "no scorable real series"
    scores = pd.read_parquet(real / "scores.parquet")
    seg = scores[(scores["method"] == "segment") & (scores["artery"] == "total")]
    totals = seg.set_index("series_uid")["agatston"]
    assert set(totals.index) == ok
    assert (totals < CAC_FREE_MAX).all(), totals.to_dict()
    tri = pd.read_parquet(real / "triage.parquet").set_index("statistic")["value"]
    assert tri["called_negative_fraction"] == 1.0
