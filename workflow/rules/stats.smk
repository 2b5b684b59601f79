# Agreement of every method with the reference, risk-category confusion, detection, subgroups.


rule stats:
    input:
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
        lesions="results/{ds}/lesions.parquet",
        points="results/{ds}/reference_points.parquet",
    output:
        agreement="results/{ds}/agreement.parquet",
        confusion="results/{ds}/confusion.parquet",
        detection="results/{ds}/detection.parquet",
        subgroups="results/{ds}/subgroups.parquet",
        csv=directory("results/{ds}/tables"),
    log:
        "logs/{ds}/stats.log",
    benchmark:
        "benchmarks/{ds}/stats.tsv"
    params:
        settings=settings_json,
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow stats results/{wildcards.ds} --settings {params.settings:q} > {log} 2>&1"


# CAC-negative triage of `segment` (seed 003): share of truly negative scans excluded,
# false negatives, bootstrap CIs.
rule triage:
    input:
        parts=triage_parts,
        scores="results/{ds}/scores.parquet",
    output:
        "results/{ds}/triage.parquet",
    log:
        "logs/{ds}/triage.log",
    benchmark:
        "benchmarks/{ds}/triage.tsv"
    params:
        settings=settings_json,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow triage {input.parts} --scores {input.scores} --out {output} "
        "--settings {params.settings:q} > {log} 2>&1"
