# One self-contained HTML report per dataset.


rule report:
    input:
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
        lesions="results/{ds}/lesions.parquet",
        agreement="results/{ds}/agreement.parquet",
        confusion="results/{ds}/confusion.parquet",
        detection="results/{ds}/detection.parquet",
        subgroups="results/{ds}/subgroups.parquet",
        feedback=feedback_dirs,
        study=study_outputs,
        triage=triage_output,
    output:
        report(
            "results/{ds}/report.html",
            category="Reports",
            caption="../report/report.rst",
        ),
    log:
        "logs/{ds}/report.log",
    benchmark:
        "benchmarks/{ds}/report.tsv"
    params:
        settings=settings_json,
        feedback=lambda wildcards, input: (
            "--feedback " + " ".join(input.feedback) if input.feedback else ""
        ),
        qc=qc_args,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow report results/{wildcards.ds} --settings {params.settings:q} "
        "--out {output} {params.feedback} {params.qc} > {log} 2>&1"
