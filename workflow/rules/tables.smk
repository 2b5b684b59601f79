# The dataset's scans / scores / lesions / reference_points tables from its batch outputs
# (not-scorable verdicts applied, rows sorted by key: independent of batch or job order).


rule tables:
    input:
        manifest=manifest_if_dicom,
        native=per_batch("results/{ds}/work/native/{batch}"),
        scores=score_parts("scores"),
        lesions=score_parts("lesions"),
        points=reference_parts,
    output:
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
        lesions="results/{ds}/lesions.parquet",
        points="results/{ds}/reference_points.parquet",
    log:
        "logs/{ds}/tables.log",
    benchmark:
        "benchmarks/{ds}/tables.tsv"
    params:
        settings=settings_json,
        dicom=gather_args,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow tables --settings {params.settings:q} {params.dicom} "
        "--out-dir results/{wildcards.ds} > {log} 2>&1"
