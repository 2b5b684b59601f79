# Configuration checks and the few input functions the rules share.
import json
import sys
import types

from snakemake.utils import validate

from cacflow.config import (
    ConfigError,
    dataset_settings,
    model_weights,
    put_scripts_on_path,
    synth_arguments,
)
from cacflow.config import validate as check_config

try:
    check_config(config)
except ConfigError as err:
    sys.exit(f"cacflow: {err}")
validate(config, "../schemas/config.schema.yaml")

put_scripts_on_path()

SETTINGS = {ds: dataset_settings(config, ds) for ds in config["datasets"]}
DATASETS = "|".join(SETTINGS) or "__none__"
METHODS = "|".join(config["methods"]) or "__none__"


wildcard_constraints:
    ds=DATASETS,
    batch=r"b[0-9]+",
    method=METHODS,
    source=f"reference|{METHODS}",


def settings_json(wildcards):
    """The dataset's resolved settings as one JSON argument (quoted in the shell line)."""
    return json.dumps(SETTINGS[wildcards.ds], sort_keys=True)


def section_json(name):
    """Input function: one config section of the dataset as JSON."""
    return lambda wildcards: json.dumps(SETTINGS[wildcards.ds].get(name) or {}, sort_keys=True)


def dicom_dir(wildcards):
    return SETTINGS[wildcards.ds]["dicom_dir"]


def manifest_path(wildcards):
    """A user-given manifest, else the discover checkpoint's output."""
    given = SETTINGS[wildcards.ds].get("manifest")
    return given or f"results/{wildcards.ds}/manifest.parquet"


def batch_ids(ds):
    """Batch ids of a dataset: from a given manifest (no header pass) or after discovery."""
    from cacflow.dicom.discover import manifest_batches

    given = SETTINGS[ds].get("manifest")
    path = given or checkpoints.discover.get(ds=ds).output[0]
    return manifest_batches(path, config["batch_size"])


def per_batch(pattern):
    """Input function: ``pattern`` expanded over the dataset's batches."""

    def inputs(wildcards):
        if not SETTINGS[wildcards.ds]["has_dicom"]:
            return []
        return [pattern.format(ds=wildcards.ds, batch=b) for b in batch_ids(wildcards.ds)]

    return inputs


def scored_sources(ds):
    s = SETTINGS[ds]
    refs = ["reference"] if "annotations" in s else []
    return refs + s["methods"] if s["has_dicom"] else []


def score_parts(kind):
    """Input function: per-batch score (or lesion) tables of every source."""

    def inputs(wildcards):
        ds = wildcards.ds
        if not SETTINGS[ds]["has_dicom"]:
            return []
        return [
            f"results/{ds}/work/{kind}/{src}/{b}.parquet"
            for src in scored_sources(ds)
            for b in batch_ids(ds)
        ]

    return inputs


def annotations(wildcards):
    return SETTINGS[wildcards.ds]["annotations"]


def resample_args(wildcards):
    geometry = SETTINGS[wildcards.ds]["resample"]
    if geometry is None:
        return "--native"
    thickness = geometry.get("thickness_mm", 3.0)
    increment = geometry.get("increment_mm", 1.5)
    return f"--thickness {float(thickness)} --increment {float(increment)}"


def final_targets(wildcards):
    return [f"results/{ds}/report.html" for ds in config["run"]]


def synth_args(wildcards):
    return " ".join(synth_arguments(SETTINGS[wildcards.ds]["synthetic"]))


def manifest_if_dicom(wildcards):
    return manifest_path(wildcards) if SETTINGS[wildcards.ds]["has_dicom"] else []


def reference_parts(wildcards):
    if "annotations" not in SETTINGS[wildcards.ds]:
        return []
    return per_batch("results/{ds}/work/labels/reference/{batch}")(wildcards)


MODEL_WEIGHTS = {"direct": model_weights(config)}
GPU_METHODS = {"direct"}


def model_weights(wildcards):
    """Shipped weights of a method that needs them (checked against their sha256 on load)."""
    return [MODEL_WEIGHTS[wildcards.method]] if wildcards.method in MODEL_WEIGHTS else []


def model_arg(wildcards):
    return f"--model {MODEL_WEIGHTS[wildcards.method]}" if wildcards.method in MODEL_WEIGHTS else ""


def method_gpus(wildcards):
    return 1 if wildcards.method in GPU_METHODS else 0


def gather_args(wildcards):
    """Where `cacflow gather` finds the batch parts (the inputs above only order the DAG)."""
    ds = wildcards.ds
    if not SETTINGS[ds]["has_dicom"]:
        return ""
    sources = " ".join(scored_sources(ds))
    return (
        f"--manifest {manifest_path(wildcards)} --batch-size {config['batch_size']} "
        f"--work results/{ds}/work --sources {sources}"
    )


def feedback_dirs(wildcards):
    """Report input: analysis volumes and `direct` predictions of the first batch (their
    decision-feedback maps become the report's example figures); none without `direct`."""
    s = SETTINGS[wildcards.ds]
    if not s["has_dicom"] or "direct" not in s["methods"]:
        return []
    batches = batch_ids(wildcards.ds)
    if not batches:
        return []
    b, ds = batches[0], wildcards.ds
    return [f"results/{ds}/work/resampled/{b}", f"results/{ds}/work/labels/direct/{b}"]


# Study tables (study.smk)


def study_tables_in(wildcards):
    """The dataset's exam / timepoints / clinical tables (simulated ones for the demo)."""
    from cacflow.study.run import study_inputs

    return study_inputs(SETTINGS[wildcards.ds])


def study_outputs(wildcards):
    """Report input: the study tables of a dataset that has a study, else nothing."""
    from cacflow.study.run import STUDY_TABLES, study_enabled

    if not study_enabled(SETTINGS[wildcards.ds]):
        return []
    return [f"results/{wildcards.ds}/{name}.parquet" for name in STUDY_TABLES]


# Training of the `direct` method (train.smk)

DIRECT = {"train_dataset": "train", "epochs": 10, "seed": 0, "reg_iterations": 100}
DIRECT |= config.get("direct") or {}


TRAIN_SET = types.SimpleNamespace(ds=DIRECT["train_dataset"])


def training_inputs(pattern):
    """Input function: ``pattern`` over the batches of the training dataset."""
    return lambda wildcards: per_batch(pattern)(TRAIN_SET)
