"""The method registry is the one list of methods: schema, weights and entry points agree."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cacflow.config import REPO_ROOT, ConfigError, check_model_weights, load_schema
from cacflow.methods import registry
from cacflow.methods.registry import METHODS, get


def test_schema_enum_is_the_registry() -> None:
    enum = load_schema()["properties"]["methods"]["items"]["enum"]
    assert list(enum) == list(METHODS)


@pytest.mark.parametrize("name", list(METHODS))
def test_entry_points_resolve(name: str) -> None:
    m = get(name)
    assert callable(m.entry("infer"))
    if m.output == "slice_scores":
        assert callable(m.entry("score_predictions"))
    else:
        assert m.score_predictions is None


@pytest.mark.parametrize("m", registry.with_weights(), ids=lambda m: m.name)
def test_shipped_weights_match_their_sha256(m: registry.Method) -> None:
    weights = REPO_ROOT / m.weights
    digest = (REPO_ROOT / f"{m.weights}.sha256").read_text().split()[0]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("name", list(METHODS))
def test_conda_env_of_each_method_exists(name: str) -> None:
    assert (REPO_ROOT / get(name).conda_env).is_file()


def test_unknown_method_is_one_line_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown method 'nope' \(known: hu-threshold, direct"):
        get("nope")


def test_missing_weights_name_the_methods_config_key(tmp_path: Path) -> None:
    config = {"methods": ["direct"], "direct": {"weights": str(tmp_path / "none.pt")}}
    with pytest.raises(ConfigError, match=r"config key 'direct.weights': no such file"):
        check_model_weights(config, tmp_path)
    check_model_weights({"methods": ["hu-threshold"]}, tmp_path)  # needs no weights
