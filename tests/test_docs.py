"""config/README.md documents every key of the config schema."""

from __future__ import annotations

from cacflow.config import load_schema
from wf import REPO


def _keys(schema: dict, defs: dict, prefix: str = "") -> list[str]:
    out = []
    if "$ref" in schema:
        schema = defs[schema["$ref"].split("/")[-1]]
    for alt in schema.get("oneOf", []):
        out += _keys(alt, defs, prefix)
    for name, sub in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        out.append(key)
        out += _keys(sub, defs, key + ".")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and prefix.rstrip(".") == "datasets":
        out += _keys(extra, defs, "datasets.<name>.")
    return out


def test_every_schema_key_is_documented() -> None:
    schema = load_schema()
    text = (REPO / "config" / "README.md").read_text()
    keys = _keys(schema, schema.get("$defs", {}))
    assert "scoring.threshold_hu" in keys and "datasets.<name>.dicom_dir" in keys

    def documented(key: str) -> bool:
        # the key itself, one of its sub-keys, or the mapping it belongs to has a row
        parts = key.split(".")
        ancestors = [".".join(parts[:i]) for i in range(1, len(parts))]
        return (
            f"`{key}`" in text
            or f"`{key}." in text
            or any(f"`{a}`" in text for a in ancestors if "." in a)
        )

    missing = [k for k in keys if not documented(k)]
    assert not missing, missing
