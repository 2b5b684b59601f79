# Study tables (issue 17): one series per exam, timepoints and progression, CAC-DRS,
# baseline table and outcomes. Only for datasets with an exam, timepoints or clinical table
# (or `simulate_clinical`, the demo's simulated study).


rule simulate_clinical:
    input:
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
    output:
        exams="data/{ds}/study/exams.csv",
        clinical="data/{ds}/study/clinical.csv",
        readme="data/{ds}/study/README.md",
    log:
        "logs/{ds}/simulate_clinical.log",
    benchmark:
        "benchmarks/{ds}/simulate_clinical.tsv"
    params:
        settings=settings_json,
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow study simulate results/{wildcards.ds} --settings {params.settings:q} "
        "--out data/{wildcards.ds}/study > {log} 2>&1"


rule study:
    input:
        unpack(study_tables_in),
        scans="results/{ds}/scans.parquet",
        scores="results/{ds}/scores.parquet",
        manifest=manifest_if_dicom,
    output:
        exams=report(
            "results/{ds}/exams.parquet",
            category="Study",
            caption="../report/study.rst",
        ),
        progression="results/{ds}/progression.parquet",
        cac_drs="results/{ds}/cac_drs.parquet",
        table1="results/{ds}/table1.parquet",
        outcomes="results/{ds}/outcomes.parquet",
        km="results/{ds}/km.parquet",
    log:
        "logs/{ds}/study.log",
    benchmark:
        "benchmarks/{ds}/study.tsv"
    params:
        settings=settings_json,
        manifest=lambda wildcards, input: (f"--manifest {input.manifest}" if input.manifest else ""),
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/stats.yaml"
    shell:
        "cacflow study tables results/{wildcards.ds} --settings {params.settings:q} "
        "{params.manifest} > {log} 2>&1"
