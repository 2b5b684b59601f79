"""Workflow configuration: validation with one-line errors, and per-dataset settings.

The schema (workflow/schemas/config.schema.yaml) describes every key; this module turns
its first violation into one line naming the key, checks that input paths exist, and
resolves what one dataset's jobs need into a single mapping (written by the workflow to
``results/<ds>/config.json`` and hashed for provenance).
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from cacflow.provenance import config_hash

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
INPUT_PATH_KEYS = (
    "dicom_dir",
    "annotations",
    "reference_scores",
    "manifest",
    "exams",
    "timepoints",
    "clinical",
)
SECTIONS = (
    "methods",
    "qc",
    "scorable",
    "scoring",
    "schemes",
    "stats",
    "study",
    "report",
    "batch_size",
)


class ConfigError(ValueError):
    """A configuration problem, stated in one line that names the key."""


def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The config schema at ``path``: a copy of its once-parsed YAML, the caller's to change."""
    return copy.deepcopy(_parsed_schema(Path(path)))


@functools.cache
def _parsed_schema(path: Path) -> dict[str, Any]:
    """The schema parsed once per path and process (read-only: never change what it
    returns; :func:`load_schema` gives a copy). libyaml's loader where present: the CLI
    reads defaults from the schema every time it builds its parser."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(), Loader=loader)


def _key(path: Any) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _object_branch(node: dict[str, Any]) -> dict[str, Any]:
    """The object branch of a ``oneOf`` node (e.g. ``resample``: null or an object)."""
    return next((b for b in node.get("oneOf", []) if b.get("type") == "object"), node)


def schema_defaults(node: dict[str, Any]) -> Any:
    """The defaults a schema node gives: an object's ``default`` merged with its
    properties' defaults (recursively; properties without a default are left out), else the
    node's ``default`` (None when it has none). The schema is the one home of every
    default; code reads them from here or from the validated config (Snakemake's
    ``validate`` fills them in)."""
    node = _object_branch(node)
    props = node.get("properties")
    if props is None:
        return copy.deepcopy(node.get("default"))
    out = copy.deepcopy(node.get("default") or {})
    for key, sub in props.items():
        value = schema_defaults(sub)
        if value is not None and (value != {} or "default" in sub):
            out.setdefault(key, value)
    return out


def default_of(*path: str) -> Any:
    """The schema default of config key ``path``, e.g. ``default_of("direct")`` or
    ``default_of("datasets", "*", "resample")`` (a dataset block's key)."""
    schema = _parsed_schema(SCHEMA_PATH)  # schema_defaults returns copies
    keys = list(path)
    node = schema
    if keys[:2] == ["datasets", "*"]:
        node, keys = schema["$defs"]["dataset"], keys[2:]
    for key in keys:
        node = _object_branch(node)["properties"][key]
    return schema_defaults(node)


def check_schema(config: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` for the first schema violation, naming its key."""
    import jsonschema  # here: importing this module (the CLI does) stays cheap

    schema = schema or _parsed_schema(SCHEMA_PATH)  # the validator only reads it
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        prefix = f"{key}." if error.absolute_path else ""
        raise ConfigError(f"config key '{prefix}{extra[0]}' is not a known key")
    if error.validator == "propertyNames":
        raise ConfigError(f"config key '{key}': name {error.message}")
    raise ConfigError(f"config key '{key}': {error.message}")


def check_references(config: dict[str, Any], base: Path = Path(".")) -> None:
    """Datasets in ``run`` exist; every input path of a run dataset exists."""
    datasets = config.get("datasets", {})
    for name in config.get("run", []):
        if name not in datasets:
            raise ConfigError(f"config key 'run': dataset '{name}' is not defined in 'datasets'")
    for name in config.get("run", []):
        ds = datasets[name]
        sources = ("dicom_dir", "synthetic", "inserted", "reference_scores", "manifest")
        if not any(k in ds for k in sources):
            raise ConfigError(
                f"config key 'datasets.{name}': needs dicom_dir, synthetic, inserted, manifest "
                "or reference_scores"
            )
        generated = [k for k in ("dicom_dir", "synthetic", "inserted") if k in ds]
        if len(generated) > 1:
            raise ConfigError(
                f"config key 'datasets.{name}': give one of dicom_dir, synthetic, inserted "
                f"(got {', '.join(generated)})"
            )
        paths = [(k, ds[k]) for k in INPUT_PATH_KEYS if k in ds]
        paths += [
            (f"inserted.backgrounds[{i}]", b)
            for i, b in enumerate(ds.get("inserted", {}).get("backgrounds", []))
        ]
        paths += [(f"external_scores.{k}", v) for k, v in ds.get("external_scores", {}).items()]
        for key, value in paths:
            if not (base / value).exists():
                raise ConfigError(f"config key 'datasets.{name}.{key}': no such path: {value}")


def model_weights(config: dict[str, Any], method: str, base: Path = Path(".")) -> str:
    """Path of a registered method's weights (config key ``<method>.weights``, else the
    registry's default): as given (relative to the working directory), else relative to
    the repository, where the shipped weights live."""
    from cacflow.methods.registry import get

    m = get(method)
    given = (config.get(m.config_section or m.name) or {}).get("weights", m.weights)
    if given is None:
        raise ValueError(f"method '{method}' has no weights")
    if Path(given).is_absolute() or (base / given).exists():
        return str(given)
    shipped = REPO_ROOT / given
    return str(shipped) if shipped.exists() else str(given)


def method_weights(config: dict[str, Any], base: Path = Path(".")) -> dict[str, str]:
    """Weights path of every configured method that needs weights, by method name."""
    from cacflow.methods.registry import with_weights

    wanted = set(config.get("methods", []))
    return {m.name: model_weights(config, m.name, base) for m in with_weights() if m.name in wanted}


def check_model_weights(config: dict[str, Any], base: Path = Path(".")) -> None:
    """Methods that need weights find them (and their sha256) before any job runs."""
    from cacflow.methods.registry import get

    for name, weights in method_weights(config, base).items():
        section = get(name).config_section or name
        for path in (weights, f"{weights}.sha256"):
            if not (base / path).exists():
                raise ConfigError(f"config key '{section}.weights': no such file: {path}")


def validate(config: dict[str, Any], base: Path = Path(".")) -> None:
    """Schema check then path checks; raises :class:`ConfigError` (one line)."""
    check_schema(config)
    check_references(config, base)
    check_model_weights(config, base)


def synthetic_paths(dataset: str) -> dict[str, str]:
    """Where the synth rule writes a synthetic dataset."""
    root = f"data/{dataset}"
    return {
        "dicom_dir": f"{root}/dicom",
        "annotations": f"{root}/annotations.csv",
        "truth": f"{root}/truth.csv",
    }


SEVERITY_KEYS = ("mild", "moderate", "severe", "extensive")
"""Keys of ``synthetic.severity_p``, in the order ``cacflow synth --severity-p`` takes."""


def insert_arguments(spec: dict[str, Any]) -> list[str]:
    """``cacflow insert`` options for a dataset's ``inserted`` block (schema defaults for
    keys left out)."""
    args = ["--background", *(str(b) for b in spec["backgrounds"])]
    args += ["--seeds", *(str(int(s)) for s in spec["seeds"])]
    spec = default_of("datasets", "*", "inserted") | spec
    args += ["--max-lesions", str(int(spec["max_lesions"]))]
    args += ["--fov-mm", *(str(float(f)) for f in spec["fov_mm"])]
    return args + (["--gated"] if spec["gated"] else [])


FOV_KEYS = ("chest", "cardiac")
"""Keys of ``synthetic.fov_p`` (v2), in the order ``cacflow synth --fov-p`` takes."""
KERNEL_KEYS = ("soft", "medium", "sharp", "lung")
"""Keys of ``synthetic.kernel_p`` (v2), in the order ``cacflow synth --kernel-p`` takes."""
V2_DEFAULT_MATRIX = 512
V2_DEFAULT_THICKNESSES_MM = [0.625, 1.0, 1.5, 2.5, 3.0, 5.0]


def synth_arguments(spec: dict[str, Any]) -> list[str]:
    """``cacflow synth`` options for a dataset's ``synthetic`` block (schema defaults for
    keys left out; domain v2 has its own matrix and thickness defaults)."""
    v2 = spec.get("domain", "v1") == "v2"
    default_thick = V2_DEFAULT_THICKNESSES_MM if v2 else [1.0, 2.5, 3.0]
    thicknesses = spec.get("thicknesses_mm", default_thick)
    args = ["--n-scans", str(int(spec["n_scans"])), "--seed", str(int(spec["seed"]))]
    args += ["--matrix", str(int(spec.get("matrix", V2_DEFAULT_MATRIX if v2 else 256)))]
    if v2:
        args += ["--domain", "v2"]
        if "fov_p" in spec:
            args += ["--fov-p", *(str(float(spec["fov_p"][k])) for k in FOV_KEYS)]
        if "kernel_p" in spec:
            args += ["--kernel-p", *(str(float(spec["kernel_p"][k])) for k in KERNEL_KEYS)]
        for key, flag in (("gated_p", "--gated-p"), ("stent_p", "--stent-p")):
            if key in spec:
                args += [flag, str(float(spec[key]))]
        if spec.get("kernels"):
            args += ["--kernels", *(str(k) for k in spec["kernels"])]
    args += ["--thickness", *(str(float(t)) for t in thicknesses)]
    if "zero_cac_fraction" in spec:
        args += ["--zero-cac-fraction", str(float(spec["zero_cac_fraction"]))]
    if "severity_p" in spec:
        args += ["--severity-p", *(str(float(spec["severity_p"][k])) for k in SEVERITY_KEYS)]
    for key, flag in (("AV", "--av-p"), ("MV", "--mv-p")):
        if key in spec.get("valve_p", {}):
            args += [flag, str(float(spec["valve_p"][key]))]
    return args


def dataset_settings(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """Everything one dataset's jobs need: its block (synthetic paths resolved) + sections.

    ``has_dicom`` says whether the per-series stages run; ``has_reference`` whether a
    reference standard exists (annotations or reference_scores); ``sources`` lists the score
    sources in table order. ``config_hash`` hashes all of it except itself.
    """
    ds = copy.deepcopy(config["datasets"][dataset])
    if "synthetic" in ds or "inserted" in ds:
        paths = synthetic_paths(dataset)
        ds.setdefault("dicom_dir", paths["dicom_dir"])
        ds.setdefault("annotations", paths["annotations"])
    ds.setdefault("resample", default_of("datasets", "*", "resample"))
    if ds["resample"] is not None:
        ds["resample"] = default_of("datasets", "*", "resample") | ds["resample"]
    has_dicom = "dicom_dir" in ds or "manifest" in ds
    settings: dict[str, Any] = {"dataset": dataset, **ds}
    for section in SECTIONS:
        settings[section] = copy.deepcopy(config.get(section))
    methods = list(config.get("methods", [])) if has_dicom else []
    settings["methods"] = methods
    settings["has_dicom"] = has_dicom
    settings["has_reference"] = "annotations" in ds or "reference_scores" in ds
    settings["sources"] = (
        (["reference"] if settings["has_reference"] else [])
        + methods
        + sorted(ds.get("external_scores", {}))
    )
    settings["config_hash"] = config_hash(settings)
    return settings


def put_scripts_on_path() -> None:
    """Let rules find ``cacflow`` beside the Python running Snakemake (the venv), even when
    that venv is not activated. A conda env activated by ``--sdm conda`` still comes first."""
    scripts = os.path.dirname(sys.executable)
    os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    # conda envs (--sdm conda) install cacflow from here in envs/<name>.post-deploy.sh
    os.environ.setdefault("CACFLOW_SRC", str(REPO_ROOT))
