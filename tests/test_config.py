"""Config validation: a bad config fails before any job, in one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cacflow.config import ConfigError, dataset_settings, validate
from wf import REPO, copy_config, run_snakemake


@pytest.fixture()
def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid(default_config: dict) -> None:
    validate(default_config, base=REPO)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c.update(colour="red"), "'colour'"),
        (lambda c: c["scoring"].update(treshold_hu=100), "'scoring.treshold_hu'"),
        (lambda c: c["scoring"].update(connectivity=5), "'scoring.connectivity'"),
        (lambda c: c["datasets"].update({"bad name!": {"dicom_dir": "."}}), "'datasets'"),
        (lambda c: c.update(run=["nope"]), "'run'"),
        (
            lambda c: (
                c["datasets"].update({"x": {"dicom_dir": "/no/such/dir"}}) or c["run"].append("x")
            ),
            "'datasets.x.dicom_dir'",
        ),
        (lambda c: c["schemes"].update(D={"edges": [1]}), "'schemes.D'"),
        (lambda c: c["direct"].update(weights="missing.pt"), "'direct.weights'"),
        (lambda c: c["datasets"]["demo"]["resample"].update(thickness_mm=-1), "thickness_mm"),
    ],
)
def test_bad_config_names_the_key(default_config: dict, mutate, key: str) -> None:
    cfg = copy.deepcopy(default_config)
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        validate(cfg, base=REPO)
    message = str(err.value)
    assert key in message
    assert "\n" not in message


def test_dataset_settings_synthetic_paths(default_config: dict) -> None:
    s = dataset_settings(default_config, "demo")
    assert s["dicom_dir"] == "data/demo/dicom"
    assert s["annotations"] == "data/demo/annotations.csv"
    assert s["sources"] == ["reference", "hu-threshold", "direct"]
    assert s["has_dicom"] and s["has_reference"]
    changed = copy.deepcopy(default_config)
    changed["scoring"]["threshold_hu"] = 100
    assert dataset_settings(changed, "demo")["config_hash"] != s["config_hash"]


def test_statistics_only_dataset_has_no_methods(default_config: dict, tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    ref.write_text("series_uid,agatston\na,0\n")
    cfg = copy.deepcopy(default_config)
    cfg["datasets"] = {"study": {"reference_scores": str(ref), "external_scores": {"x": str(ref)}}}
    cfg["run"] = ["study"]
    validate(cfg)
    s = dataset_settings(cfg, "study")
    assert not s["has_dicom"]
    assert s["methods"] == []
    assert s["sources"] == ["reference", "x"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("scoring:\n  threshold: 120\n", "scoring.threshold"),
        (
            "datasets:\n  mine:\n    dicom_dir: /does/not/exist\nrun: [mine]\n",
            "datasets.mine.dicom_dir",
        ),
        ("datasets:\n  'my data':\n    dicom_dir: .\nrun: ['my data']\n", "datasets"),
    ],
)
def test_snakemake_fails_before_any_job(tmp_path: Path, text: str, key: str) -> None:
    copy_config(tmp_path)
    user = tmp_path / "my.yaml"
    user.write_text(text)
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(user), check=False)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cacflow:")]
    assert len(lines) == 1, proc.stderr
    assert key in lines[0]
    assert not (tmp_path / "results").exists()


def test_version_is_the_installed_distributions() -> None:
    """cacflow.__version__ (provenance, --version) is what pip installed from pyproject."""
    from importlib.metadata import version

    import cacflow

    assert cacflow.__version__ == version("cacflow")


def _leaves(node: dict, path: str = ""):
    """(key path, schema node) of every leaf key of the schema (objects are walked)."""
    node = next((b for b in node.get("oneOf", []) if b.get("type") == "object"), node)
    props = node.get("properties")
    if not props:
        yield path, node
        return
    for key, sub in props.items():
        yield from _leaves(sub, f"{path}.{key}" if path else key)


def test_every_config_key_has_a_description() -> None:
    from cacflow.config import load_schema

    schema = load_schema()
    leaves = list(_leaves(schema)) + list(_leaves(schema["$defs"]["dataset"], "datasets.*"))
    assert len(leaves) > 90  # the walk reaches the nested keys
    missing = [path for path, node in leaves if not node.get("description")]
    assert missing == []


def test_convention_dataclasses_default_to_the_schema() -> None:
    """The engine's dataclass defaults are the schema's (one home for every default)."""
    from cacflow.config import default_of
    from cacflow.conventions import ScoringConventions
    from cacflow.scorable import ScorableConfig

    assert ScoringConventions.from_config(default_of("scoring")) == ScoringConventions()
    assert ScorableConfig.from_config(default_of("scorable")) == ScorableConfig()
    assert default_of("datasets", "*", "resample") == {"thickness_mm": 3.0, "increment_mm": 1.5}


def test_schema_is_parsed_once_and_callers_cannot_change_it() -> None:
    from cacflow.config import _parsed_schema, default_of, load_schema

    load_schema()
    misses = _parsed_schema.cache_info().misses
    schema = load_schema()
    schema["properties"]["direct"]["properties"]["epochs"]["default"] = 99
    defaults = default_of("direct")
    defaults["epochs"] = 98
    assert default_of("direct")["epochs"] == 10
    assert load_schema()["properties"]["direct"]["properties"]["epochs"]["default"] == 10
    assert _parsed_schema.cache_info().misses == misses
