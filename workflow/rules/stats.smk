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
