# cacflow: CT cohorts from DICOM to coronary artery calcium scores and study tables.
# This file is the table of contents: configuration, one rule file per stage, the target.


configfile: "config/config.yaml"


# Optional image for `--sdm apptainer` (docs/cluster.md).
if config.get("container"):

    container: config["container"]


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/discover.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/resample.smk"
include: "workflow/rules/reference.smk"
include: "workflow/rules/infer.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/train.smk"


rule all:
    default_target: True
    input:
        final_targets,
