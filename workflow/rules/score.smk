# One scoring engine for the reference and every method: Agatston / volume / mass per
# artery and per lesion, then the dataset's scans / scores / lesions tables.


rule score:
    input:
        images="results/{ds}/work/resampled/{batch}",
        labels="results/{ds}/work/labels/{source}/{batch}",
        native="results/{ds}/work/native/{batch}",
    output:
        scores="results/{ds}/work/scores/{source}/{batch}.parquet",
        lesions="results/{ds}/work/lesions/{source}/{batch}.parquet",
    log:
        "logs/{ds}/score/{source}/{batch}.log",
    benchmark:
        "benchmarks/{ds}/score/{source}/{batch}.tsv"
    params:
        scoring=section_json("scoring"),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/imaging.yaml"
    shell:
        "cacflow score {input.images} {input.labels} --scans {input.native}/scans.parquet "
        "--method {wildcards.source} --scoring {params.scoring:q} "
        "--scores {output.scores} --lesions {output.lesions} > {log} 2>&1"


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
        "cacflow gather --settings {params.settings:q} {params.dicom} "
        "--out-dir results/{wildcards.ds} > {log} 2>&1"
