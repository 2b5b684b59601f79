# One self-contained HTML report per dataset, and the DICOM SEG files of the scans it
# pictures (config report.seg).


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
        seg=seg_output,
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
        seg=seg_arg,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow report results/{wildcards.ds} --settings {params.settings:q} "
        "--out {output} {params.feedback} {params.qc} {params.seg} > {log} 2>&1"


rule seg:
    input:
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
        manifest=manifest_path,
    output:
        directory("results/{ds}/seg"),
    log:
        "logs/{ds}/seg.log",
    benchmark:
        "benchmarks/{ds}/seg.tsv"
    params:
        settings=settings_json,
        work=work_dir,
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow seg {params.work} {input.manifest} --scans {input.scans} "
        "--scores {input.scores} --settings {params.settings:q} --out {output} > {log} 2>&1"
